#pragma once
/// \file
/// `posix::unique_fd`: the owner of one file descriptor, used by every part of
/// nvgrace that opens one (memory fds, /dev/vfio, vfio-user sockets).

#include <unistd.h>

#include <utility>

namespace nvgrace::posix {

/// An owned file descriptor, closed on destruction. Move-only; a default or
/// moved-from owner holds -1 (nothing).
class unique_fd {
public:
  unique_fd() noexcept = default;
  /// Take ownership of `fd` (a negative value means "nothing").
  explicit unique_fd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }

  /// The descriptor, or -1.
  [[nodiscard]] int get() const noexcept { return fd_; }
  /// True while a descriptor is owned.
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  /// Give up ownership without closing; returns the descriptor (or -1).
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

  /// Close the owned descriptor (if any) and own `fd` instead. Resetting to
  /// the descriptor already owned keeps it open.
  void reset(int fd = -1) noexcept {
    const int old = std::exchange(fd_, fd < 0 ? -1 : fd);
    // close() is not retried on EINTR: on Linux the descriptor is gone either way.
    if (old >= 0 && old != fd_) ::close(old);
  }

private:
  int fd_ = -1;
};

}  // namespace nvgrace::posix
