#pragma once
/// \file
/// Internals shared by the owning memory types: page rounding, errno
/// conversion and an RAII shared mapping.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <system_error>
#include <utility>

namespace nvgrace::mem::detail {

/// The current errno as a std::errc; never "no error" (a failed call that left
/// errno at 0 still reports a failure).
[[nodiscard]] inline std::errc last_error() noexcept {
  const int e = errno;
  return e != 0 ? static_cast<std::errc>(e) : std::errc::io_error;
}

[[nodiscard]] inline std::uint64_t page_size() noexcept {
  const long size = ::sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<std::uint64_t>(size) : 4096;
}

/// `length` rounded up to whole pages, or EOVERFLOW.
[[nodiscard]] inline result<std::uint64_t> round_to_pages(std::uint64_t length) noexcept {
  const std::uint64_t page = page_size();
  const auto padded = checked_add(length, page - 1);
  if (!padded) return padded.error();
  return align_down(*padded, page);
}

/// Validate a requested memory length and give its mapping length: 0 is
/// EINVAL (mmap(2) maps nothing of length 0); a length that does not fit a
/// size_t / off_t, or overflows when rounded to pages, is EOVERFLOW.
[[nodiscard]] inline result<std::uint64_t> mapping_length(std::uint64_t length) noexcept {
  if (length == 0) return std::errc::invalid_argument;
  if (length > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
      length > std::numeric_limits<std::size_t>::max())
    return std::errc::value_too_large;
  return round_to_pages(length);
}

/// An owned MAP_SHARED read/write mapping; unmapped on destruction.
class shared_mapping {
public:
  shared_mapping() noexcept = default;
  shared_mapping(const shared_mapping&) = delete;
  shared_mapping& operator=(const shared_mapping&) = delete;
  shared_mapping(shared_mapping&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), length_(std::exchange(other.length_, 0)) {}
  shared_mapping& operator=(shared_mapping&& other) noexcept {
    if (this != &other) {
      reset();
      base_ = std::exchange(other.base_, nullptr);
      length_ = std::exchange(other.length_, 0);
    }
    return *this;
  }
  ~shared_mapping() { reset(); }

  /// Map `length` (page multiple) bytes of `fd` at `offset` (page multiple),
  /// or anonymous shared memory when fd < 0. `extra_flags` are OR-ed into MAP_SHARED.
  [[nodiscard]] static result<shared_mapping> create(std::uint64_t length, int fd, std::uint64_t offset,
                                                     int extra_flags = 0) noexcept {
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return std::errc::value_too_large;
    const int flags = MAP_SHARED | extra_flags | (fd < 0 ? MAP_ANONYMOUS : 0);
    void* base = ::mmap(nullptr, static_cast<std::size_t>(length), PROT_READ | PROT_WRITE, flags, fd,
                        static_cast<off_t>(offset));
    if (base == MAP_FAILED) return last_error();
    shared_mapping m;
    m.base_ = static_cast<std::byte*>(base);
    m.length_ = length;
    return m;
  }

  [[nodiscard]] std::byte* base() const noexcept { return base_; }
  [[nodiscard]] std::uint64_t length() const noexcept { return length_; }

private:
  void reset() noexcept {
    if (base_ != nullptr) ::munmap(base_, static_cast<std::size_t>(length_));
    base_ = nullptr;
    length_ = 0;
  }

  std::byte* base_ = nullptr;
  std::uint64_t length_ = 0;
};

/// An owned file descriptor; closed on destruction.
class unique_fd {
public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }

private:
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  int fd_ = -1;
};

}  // namespace nvgrace::mem::detail
