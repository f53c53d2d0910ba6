# Runs the in_process example (-DEXAMPLE=path) and checks that its output has these exact lines.
execute_process(COMMAND ${EXAMPLE} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "in_process exited with ${rc}\n${out}\n${err}")
endif()
set(expected
  "device 10de:2342 generation hopper mode emulated"
  "region 2: size 0x80000000 flags 0xf offset 0x20000000000 sparse [0x0 +0x40001000]"
  "region 4: size 0x40000000 flags 0xf offset 0x40000000000 sparse [0x0 +0x20000000]"
  "region 8: absent"
  "BAR0: 64-bit size 0x1000000"
  "BAR2: 64-bit prefetchable size 0x80000000"
  "BAR4: 64-bit prefetchable size 0x40000000"
  "region 4: mapped 0x20000000 bytes, huge-page aligned"
  "write BAR4 @0x1ffffff8 16 bytes: 16"
  "read BAR4 @0x1ffffff8 16 bytes: 16: 11 22 33 44 55 66 77 88 ff ff ff ff ff ff ff ff"
  "read BAR4 @0x3ffffff8 16 bytes: 8: ff ff ff ff ff ff ff ff"
  "read BAR4 @0x40000000 16 bytes: EINVAL"
  "read BAR2 @0x40000ff8 16 bytes: 16: a1 a2 a3 a4 a5 a6 a7 a8 ff ff ff ff ff ff ff ff")
foreach(line IN LISTS expected)
  string(FIND "${out}" "${line}\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "in_process output lacks the line\n  ${line}\n--- output ---\n${out}")
  endif()
endforeach()
