#pragma once
/// \file
/// Eventfds received from someone else (vfio-user IRQ triggers): telling an
/// eventfd from any other fd, and signalling one without ever blocking.
///
/// An eventfd write blocks while the counter cannot take the value (it stops
/// at 2^64 − 2), unless the file is O_NONBLOCK. Status flags belong to the
/// open file, which the sender shares: it may clear O_NONBLOCK after handing
/// the fd over. `signal_eventfd` therefore checks the flag before every
/// write and sets it again when it is gone. (The one window left is a sender
/// clearing the flag between that check and the write while its counter is
/// full; nothing short of a signal can interrupt a write caught there.)

#include <nvgrace/core/result.hpp>
#include <nvgrace/posix/error.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace nvgrace::posix {

/// True when `fd` is an eventfd: /proc/self/fd/N links to "anon_inode:[eventfd]"
/// (an eventfd has no other mark; fstat shows the inode every anonymous fd shares).
/// Errors: readlink's (EBADF as ENOENT for a closed fd; ENOENT without /proc).
[[nodiscard]] inline result<bool> is_eventfd(int fd) noexcept {
  char path[40];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  static constexpr char eventfd_link[] = "anon_inode:[eventfd]";
  char target[sizeof eventfd_link + 1];
  const ssize_t n = ::readlink(path, target, sizeof target);
  if (n < 0) return last_error();
  return static_cast<std::size_t>(n) == sizeof eventfd_link - 1 &&
         std::memcmp(target, eventfd_link, sizeof eventfd_link - 1) == 0;
}

/// Set O_NONBLOCK on the open file behind `fd`, keeping its other status flags.
[[nodiscard]] inline status set_nonblocking(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return last_error();
  if ((flags & O_NONBLOCK) != 0) return {};
  if (::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return last_error();
  return {};
}

/// Add 1 to an eventfd's counter without blocking (see the file comment):
/// EAGAIN when the counter is full, otherwise fcntl's or write's errno.
[[nodiscard]] inline status signal_eventfd(int fd) noexcept {
  if (auto s = set_nonblocking(fd); !s) return s;
  const std::uint64_t one = 1;
  while (true) {
    const ssize_t n = ::write(fd, &one, sizeof one);
    if (n == static_cast<ssize_t>(sizeof one)) return {};
    if (n < 0 && errno == EINTR) continue;
    return n < 0 ? last_error() : errc::io_error;
  }
}

}  // namespace nvgrace::posix
