#pragma once
/// \file
/// `posix::mapping`: the owner of one mmap(2) mapping, used by every part of
/// nvgrace that maps memory it must unmap (memory types, /dev/vfio mappings),
/// and the page size those mappings are measured in.

#include <nvgrace/core/result.hpp>
#include <nvgrace/posix/error.hpp>

#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <nvgrace/core/errc.hpp>
#include <utility>

namespace nvgrace::posix {

/// The system page size (4096 when sysconf cannot tell).
[[nodiscard]] inline std::uint64_t page_size() noexcept {
  const long size = ::sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<std::uint64_t>(size) : 4096;
}

/// An owned memory mapping, unmapped on destruction. Move-only; a default or
/// moved-from owner holds nothing (data() == nullptr, size() == 0).
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

  /// mmap(2) of `length` bytes of `fd` at `offset` with `prot` and `flags`
  /// (fd -1 with MAP_ANONYMOUS for anonymous memory), owned by the result.
  /// Errors: EOVERFLOW for an offset beyond off_t, otherwise mmap's errno.
  [[nodiscard]] static result<mapping> map(std::size_t length, int prot, int flags, int fd,
                                           std::uint64_t offset) noexcept {
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return errc::value_too_large;
    void* base = ::mmap(nullptr, length, prot, flags, fd, static_cast<off_t>(offset));
    if (base == MAP_FAILED) return last_error();
    return mapping(base, length);
  }

  /// The first mapped byte, or nullptr.
  [[nodiscard]] std::byte* data() const noexcept { return base_; }
  /// The bytes mapped (0 when nothing is owned).
  [[nodiscard]] std::size_t size() const noexcept { return length_; }
  explicit operator bool() const noexcept { return base_ != nullptr; }

  /// Give up ownership without unmapping; returns the base (or nullptr).
  [[nodiscard]] std::byte* release() noexcept {
    length_ = 0;
    return std::exchange(base_, nullptr);
  }

  /// Unmap now (if anything is owned); the owner then holds nothing.
  void reset() noexcept {
    if (base_ != nullptr) ::munmap(base_, length_);
    base_ = nullptr;
    length_ = 0;
  }

private:
  std::byte* base_ = nullptr;
  std::size_t length_ = 0;
};

}  // namespace nvgrace::posix
