# Drives one consumer test (see CMakeLists.txt). Run as
#   cmake -DMODE=find_package|add_subdirectory|install_tree -DWORK_DIR=... -DNVGRACE_SOURCE_DIR=... \
#         -DNVGRACE_VERSION=... -DCONSUMER_SOURCE_DIR=... -DGENERATOR=... -DCXX_COMPILER=... \
#         [-DMAKE_PROGRAM=...] [-DCXX_STANDARD=..] [-DPKG_CONFIG=...] -P run_consumer.cmake
# Every step starts from an empty WORK_DIR, so the test proves a fresh install.
#
# Two more modes check the header check itself:
#   -DMODE=headers -DSTAGE=... -DNVGRACE_SOURCE_DIR=...   only the check that every file
#                   under the source tree's include/nvgrace/ is in STAGE/include/nvgrace/
#   -DMODE=headers_selftest -DWORK_DIR=... -DNVGRACE_SOURCE_DIR=...   a copy of the
#                   headers with one file left out must fail that check, naming the file
cmake_minimum_required(VERSION 3.22)

# Every file under the source tree's include/nvgrace/ must be in STAGE/include/nvgrace/:
# an install rule that skips a header (or a pattern that filters one out) fails here,
# not in a consumer that happens to include it.
function(check_installed_headers stage)
  file(GLOB_RECURSE headers LIST_DIRECTORIES false RELATIVE ${NVGRACE_SOURCE_DIR}/include
       ${NVGRACE_SOURCE_DIR}/include/nvgrace/*)
  list(LENGTH headers count)
  if(count LESS 2)
    message(FATAL_ERROR "consumer test: found ${count} files under ${NVGRACE_SOURCE_DIR}/include/nvgrace")
  endif()
  set(missing "")
  foreach(header IN LISTS headers)
    if(NOT EXISTS ${stage}/include/${header})
      list(APPEND missing include/${header})
    endif()
  endforeach()
  if(missing)
    list(JOIN missing ", " missing)
    message(FATAL_ERROR "consumer test: not installed into ${stage}: ${missing}")
  endif()
  message(STATUS "consumer test: all ${count} headers of include/nvgrace are installed in ${stage}")
endfunction()

if(MODE STREQUAL "headers")
  foreach(var STAGE NVGRACE_SOURCE_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
      message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
    endif()
  endforeach()
  check_installed_headers(${STAGE})
  return()
elseif(MODE STREQUAL "headers_selftest")
  # The control (a full copy) passes; a copy without one header fails and names it.
  set(stage ${WORK_DIR}/stage)
  file(REMOVE_RECURSE ${WORK_DIR})
  file(COPY ${NVGRACE_SOURCE_DIR}/include/nvgrace DESTINATION ${stage}/include)
  set(check ${CMAKE_COMMAND} -DMODE=headers -DSTAGE=${stage} -DNVGRACE_SOURCE_DIR=${NVGRACE_SOURCE_DIR}
            -P ${CMAKE_CURRENT_LIST_FILE})
  execute_process(COMMAND ${check} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: the header check fails on a complete copy:\n${out}")
  endif()
  set(dropped nvgrace/vfio/region_info.hpp)
  file(REMOVE ${stage}/include/${dropped})
  execute_process(COMMAND ${check} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  string(REPLACE "\n" " " flat "${out}")
  if(rc EQUAL 0 OR NOT flat MATCHES "not installed into .*include/${dropped}")
    message(FATAL_ERROR "consumer test: the header check missed ${dropped} (rc ${rc}):\n${out}")
  endif()
  message(STATUS "consumer test (headers_selftest): a missing ${dropped} is caught")
  return()
endif()

foreach(var MODE WORK_DIR NVGRACE_SOURCE_DIR NVGRACE_VERSION CONSUMER_SOURCE_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()

# Run a command, echo it, stream its output, stop on failure.
function(step)
  execute_process(COMMAND ${ARGN} COMMAND_ECHO STDOUT RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test (${MODE}): command failed (${rc}): ${ARGN}")
  endif()
endfunction()

set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Debug
           -DNVGRACE_EXPECTED_VERSION=${NVGRACE_VERSION})
if(MAKE_PROGRAM)
  list(APPEND common -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(CXX_STANDARD)
  list(APPEND common -DCMAKE_CXX_STANDARD=${CXX_STANDARD})
endif()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

if(MODE STREQUAL "find_package")
  set(stage ${WORK_DIR}/stage)
  # 1. The README's install path, as on a machine with only a compiler and CMake:
  #    no NVGRACE_* option at all. The project's own dependencies are hidden, so the
  #    parts around the library (AUTO) turn themselves off instead of failing.
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S ${NVGRACE_SOURCE_DIR} -B ${WORK_DIR}/nvgrace-build ${common}
            -DCMAKE_DISABLE_FIND_PACKAGE_Microsoft.GSL=ON -DCMAKE_DISABLE_FIND_PACKAGE_doctest=ON
            -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
    COMMAND_ECHO STDOUT OUTPUT_VARIABLE configure_log ERROR_VARIABLE configure_log RESULT_VARIABLE rc)
  message("${configure_log}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: configuring nvgrace without its optional dependencies failed")
  endif()
  foreach(part tests tools examples benchmarks)
    if(NOT configure_log MATCHES "nvgrace: not building the ${part}: missing Microsoft.GSL")
      message(FATAL_ERROR "consumer test: the configure log does not say why the ${part} are not built")
    endif()
  endforeach()
  step(${CMAKE_COMMAND} --build ${WORK_DIR}/nvgrace-build)
  step(${CMAKE_COMMAND} --install ${WORK_DIR}/nvgrace-build --prefix ${stage})
  check_installed_headers(${stage})
  foreach(file share/cmake/nvgrace/nvgraceConfig.cmake share/cmake/nvgrace/nvgraceConfigVersion.cmake
               share/cmake/nvgrace/nvgraceTargets.cmake share/pkgconfig/nvgrace.pc)
    if(NOT EXISTS ${stage}/${file})
      message(FATAL_ERROR "consumer test: ${file} was not installed into ${stage}")
    endif()
  endforeach()

  # 2. The consumer through find_package(nvgrace CONFIG REQUIRED).
  step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/consumer-build ${common}
       -DNVGRACE_CONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH=${stage}
       -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
  step(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build)
  step(${WORK_DIR}/consumer-build/nvgrace_consumer)

  # 3. pkg-config: the .pc file alone must be enough to compile the consumer.
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "consumer test: pkg-config not found (apt-get install pkg-config)")
  endif()
  set(pc_env ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${stage}/share/pkgconfig)
  execute_process(COMMAND ${pc_env} ${PKG_CONFIG} --modversion nvgrace
                  OUTPUT_VARIABLE pc_version OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR NOT pc_version STREQUAL NVGRACE_VERSION)
    message(FATAL_ERROR "consumer test: pkg-config --modversion nvgrace gave '${pc_version}' (rc ${rc}), "
                        "expected ${NVGRACE_VERSION}")
  endif()
  execute_process(COMMAND ${pc_env} ${PKG_CONFIG} --cflags nvgrace
                  OUTPUT_VARIABLE pc_cflags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: pkg-config --cflags nvgrace failed (${rc})")
  endif()
  message(STATUS "pkg-config --cflags nvgrace: ${pc_cflags}")
  separate_arguments(pc_flags UNIX_COMMAND "${pc_cflags}")
  if(NOT pc_flags MATCHES "^-I")
    message(FATAL_ERROR "consumer test: expected -I<includedir> from pkg-config, got '${pc_cflags}'")
  endif()
  list(GET pc_flags 0 pc_include)
  string(REGEX REPLACE "^-I" "" pc_include "${pc_include}")
  file(REAL_PATH "${pc_include}" pc_include_real)
  file(REAL_PATH "${stage}/include" stage_include_real)
  if(NOT pc_include_real STREQUAL stage_include_real)
    message(FATAL_ERROR "consumer test: pkg-config include dir ${pc_include_real} is not ${stage_include_real}")
  endif()
  # -std spelling both GCC 12 and Clang 14 accept.
  if(NOT CXX_STANDARD OR CXX_STANDARD EQUAL 20)
    set(std_flag -std=c++20)
  elseif(CXX_STANDARD EQUAL 23)
    set(std_flag -std=c++2b)
  else()
    set(std_flag -std=c++${CXX_STANDARD})
  endif()
  # Plain -I (not SYSTEM) here: the headers themselves must be warning-clean.
  step(${CXX_COMPILER} ${std_flag} -Wall -Wextra -Wpedantic -Werror ${pc_flags}
       -DNVGRACE_CONSUMER_MODE=\"pkg-config\" ${CONSUMER_SOURCE_DIR}/main.cpp -o ${WORK_DIR}/nvgrace_consumer_pc)
  step(${WORK_DIR}/nvgrace_consumer_pc)
elseif(MODE STREQUAL "add_subdirectory")
  # A vendored copy inside a project that installs and exports its own targets
  # (install(EXPORT)): nvgrace's install rules are on by default, so the export
  # can refer to nvgrace::nvgrace and the install tree has nvgrace's headers and
  # package next to the project's.
  set(stage ${WORK_DIR}/stage)
  step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/consumer-build ${common}
       -DNVGRACE_CONSUMER_MODE=add_subdirectory -DNVGRACE_SOURCE_DIR=${NVGRACE_SOURCE_DIR})
  step(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build)
  step(${WORK_DIR}/consumer-build/nvgrace_consumer)
  step(${CMAKE_COMMAND} --install ${WORK_DIR}/consumer-build --prefix ${stage})
  check_installed_headers(${stage})
  foreach(file share/cmake/nvgrace/nvgraceConfig.cmake
               share/cmake/nvgrace_consumer/nvgrace_consumerTargets.cmake bin/nvgrace_consumer)
    if(NOT EXISTS ${stage}/${file})
      message(FATAL_ERROR "consumer test: ${file} was not installed into ${stage}")
    endif()
  endforeach()
  file(READ ${stage}/share/cmake/nvgrace_consumer/nvgrace_consumerTargets.cmake exported)
  if(NOT exported MATCHES "nvgrace::nvgrace")
    message(FATAL_ERROR "consumer test: the consumer's export does not refer to nvgrace::nvgrace")
  endif()
  # The installed export works: a second project finds the consumer's package,
  # which finds nvgrace's, and compiles against the installed headers.
  step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR}/downstream -B ${WORK_DIR}/downstream-build ${common}
       -DCMAKE_PREFIX_PATH=${stage} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
       -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
  step(${CMAKE_COMMAND} --build ${WORK_DIR}/downstream-build)
  step(${WORK_DIR}/downstream-build/nvgrace_downstream)

  # Install rules off: configuring, building and installing still work, and
  # nothing of nvgrace is installed.
  set(stage_off ${WORK_DIR}/stage-off)
  step(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/consumer-build-off ${common}
       -DNVGRACE_CONSUMER_MODE=add_subdirectory -DNVGRACE_SOURCE_DIR=${NVGRACE_SOURCE_DIR}
       -DNVGRACE_INSTALL=OFF -DNVGRACE_CONSUMER_EXPORT=OFF)
  step(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build-off)
  step(${CMAKE_COMMAND} --install ${WORK_DIR}/consumer-build-off --prefix ${stage_off})
  if(EXISTS ${stage_off}/include/nvgrace)
    message(FATAL_ERROR "consumer test: NVGRACE_INSTALL=OFF still installed nvgrace's headers")
  endif()
elseif(MODE STREQUAL "install_tree")
  # The project's own build (tools included), installed as a user would: the
  # tools, their man pages and bash completion land in the prefix and run.
  if(NOT DEFINED PROJECT_BUILD_DIR)
    message(FATAL_ERROR "run_consumer.cmake: PROJECT_BUILD_DIR is not set")
  endif()
  set(stage ${WORK_DIR}/stage)
  step(${CMAKE_COMMAND} --install ${PROJECT_BUILD_DIR} --prefix ${stage})
  check_installed_headers(${stage})
  foreach(tool nvgrace-layout nvgrace-probe nvgrace-vfio-user-server)
    foreach(file bin/${tool} share/man/man1/${tool}.1 share/bash-completion/completions/${tool})
      if(NOT EXISTS ${stage}/${file})
        message(FATAL_ERROR "consumer test: ${file} was not installed into ${stage}")
      endif()
    endforeach()
    execute_process(COMMAND ${stage}/bin/${tool} --version OUTPUT_VARIABLE out RESULT_VARIABLE rc
                    OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT rc EQUAL 0 OR NOT out STREQUAL "${tool} ${NVGRACE_VERSION}")
      message(FATAL_ERROR "consumer test: installed ${tool} --version gave '${out}' (${rc})")
    endif()
  endforeach()
else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()
message(STATUS "consumer test (${MODE}): passed")
