// The version: the macros, the constexpr value and the CMake project version
// (passed in as NVGRACE_CMAKE_VERSION) are the same, because CMake reads it
// from nvgrace/version.hpp.
#include <nvgrace/version.hpp>

#include <doctest/doctest.h>

#include <string>

#ifndef NVGRACE_CMAKE_VERSION
#error "NVGRACE_CMAKE_VERSION must be the CMake project version"
#endif

static_assert(nvgrace::version.major == NVGRACE_VERSION_MAJOR);
static_assert(nvgrace::version.minor == NVGRACE_VERSION_MINOR);
static_assert(nvgrace::version.patch == NVGRACE_VERSION_PATCH);
static_assert(NVGRACE_VERSION == NVGRACE_VERSION_MAJOR * 10000 + NVGRACE_VERSION_MINOR * 100 + NVGRACE_VERSION_PATCH);
static_assert(nvgrace::version.string == NVGRACE_VERSION_STRING);
static_assert(nvgrace::version.string == NVGRACE_CMAKE_VERSION);
// At 0.x a new minor version may break the API: 0.1.x does not satisfy a request for 0.2 or 0.0.
static_assert(nvgrace::version_info{0, 1, 3, "0.1.3"}.compatible_with(0, 1));
static_assert(nvgrace::version_info{0, 1, 3, "0.1.3"}.compatible_with(0, 1, 3));
static_assert(!nvgrace::version_info{0, 1, 3, "0.1.3"}.compatible_with(0, 1, 4));
static_assert(!nvgrace::version_info{0, 1, 3, "0.1.3"}.compatible_with(0, 0));
static_assert(!nvgrace::version_info{0, 2, 0, "0.2.0"}.compatible_with(0, 1));
static_assert(nvgrace::version_info{1, 4, 0, "1.4.0"}.compatible_with(1, 2));
static_assert(!nvgrace::version_info{2, 0, 0, "2.0.0"}.compatible_with(1, 2));

TEST_CASE("version: the string is MAJOR.MINOR.PATCH of the macros") {
  const std::string expected = std::to_string(NVGRACE_VERSION_MAJOR) + "." + std::to_string(NVGRACE_VERSION_MINOR) +
                               "." + std::to_string(NVGRACE_VERSION_PATCH);
  CHECK(std::string(nvgrace::version.string) == expected);
  CHECK(std::string(NVGRACE_CMAKE_VERSION) == expected);
}
