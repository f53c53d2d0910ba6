#pragma once
/// \file
/// errno as a value: the one conversion every system-call wrapper of nvgrace uses.

#include <cerrno>
#include <nvgrace/core/errc.hpp>

namespace nvgrace::posix {

/// The current errno as an errc. A failed call that left errno at 0 still
/// reports a failure (EIO) rather than "no error".
[[nodiscard]] inline errc last_error() noexcept {
  const int e = errno;
  return e != 0 ? static_cast<errc>(e) : errc::io_error;
}

}  // namespace nvgrace::posix
