#pragma once
/// \file
/// RAII owners for the two kernel resources the /dev/vfio backend holds: file
/// descriptors (container, group, device, iommufd) and memory mappings of a
/// device file. Both are move-only; a moved-from owner owns nothing.

#include <nvgrace/core/result.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

namespace nvgrace::linux_vfio {

namespace detail {

/// The current errno as a std::errc. A failed call that left errno at 0
/// still reports a failure (EIO) rather than "no error".
[[nodiscard]] inline std::errc last_error() noexcept {
  const int e = errno;
  return e != 0 ? static_cast<std::errc>(e) : std::errc::io_error;
}

}  // namespace detail

/// An owned file descriptor, closed on destruction. Default: -1 (owns nothing).
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
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  /// Give up ownership without closing; returns the descriptor (or -1).
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

  /// Close the owned descriptor (if any) and own `fd` instead.
  void reset(int fd = -1) noexcept {
    const int old = std::exchange(fd_, fd < 0 ? -1 : fd);
    // close() is not retried on EINTR: on Linux the descriptor is gone either way.
    if (old >= 0 && old != fd_) ::close(old);
  }

private:
  int fd_ = -1;
};

/// An owned memory mapping (as returned by mmap(2)), unmapped on destruction.
class mapping {
public:
  mapping() noexcept = default;
  /// Take ownership of `length` bytes mapped at `base` (nullptr: nothing).
  mapping(void* base, std::size_t length) noexcept
      : base_(static_cast<std::byte*>(base)), length_(base != nullptr ? length : 0) {}
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  mapping(mapping&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), length_(std::exchange(other.length_, 0)) {}
  mapping& operator=(mapping&& other) noexcept {
    if (this != &other) {
      reset();
      base_ = std::exchange(other.base_, nullptr);
      length_ = std::exchange(other.length_, 0);
    }
    return *this;
  }
  ~mapping() { reset(); }

  [[nodiscard]] std::byte* data() const noexcept { return base_; }
  [[nodiscard]] std::size_t size() const noexcept { return length_; }
  explicit operator bool() const noexcept { return base_ != nullptr; }

  /// Give up ownership without unmapping.
  [[nodiscard]] std::byte* release() noexcept {
    length_ = 0;
    return std::exchange(base_, nullptr);
  }

  /// Unmap now (if anything is owned).
  void reset() noexcept {
    if (base_ != nullptr) ::munmap(base_, length_);
    base_ = nullptr;
    length_ = 0;
  }

private:
  std::byte* base_ = nullptr;
  std::size_t length_ = 0;
};

}  // namespace nvgrace::linux_vfio
