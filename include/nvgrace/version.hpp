#pragma once
/// \file
/// The version of nvgrace. This file is the one source of the version: the
/// top-level CMakeLists.txt reads the three numbers below into project(), so
/// the CMake package version, the pkg-config version and every tool's
/// `--version` come from here. While the major version is 0, a change of the
/// minor version may break the API (the CMake package is SameMinorVersion);
/// CHANGELOG.md says what changed.

#define NVGRACE_VERSION_MAJOR 0
#define NVGRACE_VERSION_MINOR 1
#define NVGRACE_VERSION_PATCH 0

#define NVGRACE_VERSION_STRINGIFY_(x) #x
#define NVGRACE_VERSION_STRINGIFY(x) NVGRACE_VERSION_STRINGIFY_(x)
/// "MAJOR.MINOR.PATCH", e.g. "0.1.0".
#define NVGRACE_VERSION_STRING                     \
  NVGRACE_VERSION_STRINGIFY(NVGRACE_VERSION_MAJOR) \
  "." NVGRACE_VERSION_STRINGIFY(NVGRACE_VERSION_MINOR) "." NVGRACE_VERSION_STRINGIFY(NVGRACE_VERSION_PATCH)
/// One comparable number, MAJOR * 10000 + MINOR * 100 + PATCH (0.1.0 is 100):
/// `#if NVGRACE_VERSION >= 200`.
#define NVGRACE_VERSION (NVGRACE_VERSION_MAJOR * 10000 + NVGRACE_VERSION_MINOR * 100 + NVGRACE_VERSION_PATCH)

#include <nvgrace/core/text_view.hpp>

namespace nvgrace {

/// The version as a value.
struct version_info {
  int major;
  int minor;
  int patch;
  text_view string;  ///< "MAJOR.MINOR.PATCH"

  /// Whether code written against `required` works with this version: the
  /// same major version and at least its minor and patch; while the major
  /// version is 0 the minor version must be equal too (what the CMake package
  /// version check accepts).
  [[nodiscard]] constexpr bool compatible_with(int req_major, int req_minor, int req_patch = 0) const noexcept {
    if (major != req_major) return false;
    if (major == 0) return minor == req_minor && patch >= req_patch;
    return minor > req_minor || (minor == req_minor && patch >= req_patch);
  }
};

/// The version of the headers in use.
inline constexpr version_info version{NVGRACE_VERSION_MAJOR, NVGRACE_VERSION_MINOR, NVGRACE_VERSION_PATCH,
                                      NVGRACE_VERSION_STRING};

static_assert(NVGRACE_VERSION_MAJOR >= 0 && NVGRACE_VERSION_MINOR < 100 && NVGRACE_VERSION_PATCH < 100,
              "NVGRACE_VERSION packs MINOR and PATCH into two decimal digits each");

}  // namespace nvgrace
