# Settings shared by nvgrace's own targets (never by consumers).
#
# nvgrace_project: an INTERFACE target that every project executable links (instead of
# nvgrace::nvgrace): the headers, C++20, warnings as errors, GSL contract checks, sanitizers.

find_package(Microsoft.GSL CONFIG REQUIRED)
find_package(Threads REQUIRED)

add_library(nvgrace_project INTERFACE)
# Inside this build the headers are not SYSTEM: their warnings must surface. So this
# target does not link nvgrace::nvgrace: CMake treats a directory as a system one as soon
# as any linked target marks it SYSTEM, and nvgrace::nvgrace does (for consumers).
# Project targets must therefore link nvgrace_project only, never nvgrace::nvgrace too.
target_compile_features(nvgrace_project INTERFACE cxx_std_20)
target_include_directories(nvgrace_project INTERFACE ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(nvgrace_project INTERFACE Microsoft.GSL::GSL Threads::Threads)
target_compile_definitions(nvgrace_project INTERFACE NVGRACE_USE_GSL)
# The warning set of the project's own targets: the strict one a consumer may build
# with (conversions, shadowing, C casts) must stay clean. Warnings are errors when
# NVGRACE_WERROR is on: scripts/test (and so CI) turns it on; someone building the
# project with a newer compiler gets warnings, not a failed build.
if(DEFINED ENV{CI})
  set(_nvgrace_werror_default ON)
else()
  set(_nvgrace_werror_default OFF)
endif()
option(NVGRACE_WERROR "Treat warnings as errors in nvgrace's own targets (default: on when CI is set)"
       ${_nvgrace_werror_default})
target_compile_options(nvgrace_project INTERFACE -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Wold-style-cast)
if(NVGRACE_WERROR)
  target_compile_options(nvgrace_project INTERFACE -Werror)
endif()
# GCC 12 at -O3 reports -Wrestrict inside libstdc++ for a plain `"text" + std::string`
# (GCC bug 105651, fixed in GCC 13): a false positive that would fail Release builds.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(nvgrace_project INTERFACE -Wno-restrict)
endif()
if(NVGRACE_SANITIZE)
  target_compile_options(nvgrace_project INTERFACE -fsanitize=${NVGRACE_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(nvgrace_project INTERFACE -fsanitize=${NVGRACE_SANITIZE})
endif()

if(NVGRACE_BUILD_FUZZERS AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "NVGRACE_BUILD_FUZZERS needs clang (libFuzzer); configure with -DCMAKE_CXX_COMPILER=clang++")
endif()

# nvgrace_add_test(NAME SOURCES... [LABELS ...]): a doctest executable registered with ctest.
function(nvgrace_add_test name)
  cmake_parse_arguments(ARG "" "" "LABELS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE nvgrace_project nvgrace_doctest_main)
  add_test(NAME ${name} COMMAND ${name})
  if(ARG_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()

# nvgrace_add_static_test(NAME SOURCES...): translation units made only of
# static_asserts; building them is the test.
function(nvgrace_add_static_test name)
  add_library(${name} OBJECT ${ARGN})
  target_link_libraries(${name} PRIVATE nvgrace_project)
endfunction()

# nvgrace_install_tool(TARGET): install a tool executable into bin/ when
# nvgrace's install rules are on (NVGRACE_INSTALL).
function(nvgrace_install_tool target)
  if(NVGRACE_INSTALL)
    install(TARGETS ${target} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endfunction()

# nvgrace_add_fuzzer(NAME SOURCES... [CORPUS DIR]): a libFuzzer executable
# (name it fuzz_<something>). CORPUS defaults to the folder's corpus/ directory.
# Each fuzzer is also a ctest test (label "fuzz") that replays its seed corpus,
# and is listed in <build>/nvgrace-fuzzers.txt for scripts/test's timed runs.
function(nvgrace_add_fuzzer name)
  cmake_parse_arguments(ARG "" "CORPUS" "" ${ARGN})
  if(NOT ARG_CORPUS)
    set(ARG_CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus)
  endif()
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE nvgrace_project)
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  if(IS_DIRECTORY ${ARG_CORPUS})
    add_test(NAME ${name}_corpus COMMAND ${name} -runs=0 ${ARG_CORPUS})
    set_tests_properties(${name}_corpus PROPERTIES LABELS fuzz)
  endif()
  set_property(GLOBAL APPEND PROPERTY NVGRACE_FUZZERS "${name}|${ARG_CORPUS}")
endfunction()

# Writes <build>/nvgrace-fuzzers.txt: one "binary<TAB>corpus" line per fuzzer.
function(nvgrace_write_fuzzer_manifest)
  get_property(fuzzers GLOBAL PROPERTY NVGRACE_FUZZERS)
  set(content "")
  foreach(entry IN LISTS fuzzers)
    string(REPLACE "|" ";" parts "${entry}")
    list(GET parts 0 name)
    list(GET parts 1 corpus)
    string(APPEND content "$<TARGET_FILE:${name}>\t${corpus}\n")
  endforeach()
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/nvgrace-fuzzers.txt CONTENT "${content}")
endfunction()
