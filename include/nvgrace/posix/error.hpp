#pragma once
/// \file
/// errno as a value: the one conversion every system-call wrapper of nvgrace uses.

#include <cerrno>
#include <system_error>

namespace nvgrace::posix {

/// The current errno as a std::errc. A failed call that left errno at 0 still
/// reports a failure (EIO) rather than "no error".
[[nodiscard]] inline std::errc last_error() noexcept {
  const int e = errno;
  return e != 0 ? static_cast<std::errc>(e) : std::errc::io_error;
}

}  // namespace nvgrace::posix
