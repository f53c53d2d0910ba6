#pragma once
/// \file
/// Device memory backed by an anonymous shared mapping of this process.

#include <nvgrace/core/result.hpp>
#include <nvgrace/mem/detail/mapping.hpp>
#include <nvgrace/mem/device_memory.hpp>
#include <nvgrace/posix/mapping.hpp>

#include <sys/mman.h>

#include <cstdint>
#include <utility>

namespace nvgrace::mem {

/// Owns a `MAP_SHARED | MAP_ANONYMOUS` mapping (page-aligned, page-rounded)
/// that holds `length()` bytes of zero-initialised device memory.
/// The mapping is made with MAP_NORESERVE so a large, sparsely used memory
/// (a model of 96 GiB of HBM, say) costs only the pages that are touched.
/// Not fd-mappable: use memfd_memory when another process, or a second
/// mapping, must see the bytes. Move-only; a default-constructed object is empty.
class anonymous_memory {
public:
  anonymous_memory() noexcept = default;
  anonymous_memory(anonymous_memory&& other) noexcept
      : mapping_(std::move(other.mapping_)), length_(std::exchange(other.length_, 0)), mode_(other.mode_) {}
  anonymous_memory& operator=(anonymous_memory&& other) noexcept {
    mapping_ = std::move(other.mapping_);
    length_ = std::exchange(other.length_, 0);
    mode_ = other.mode_;
    return *this;
  }
  anonymous_memory(const anonymous_memory&) = delete;
  anonymous_memory& operator=(const anonymous_memory&) = delete;
  ~anonymous_memory() = default;

  /// Map `length` bytes. Errors: EINVAL for length 0, EOVERFLOW when the
  /// length cannot be rounded to pages, otherwise mmap's errno (ENOMEM, ...).
  [[nodiscard]] static result<anonymous_memory> create(std::uint64_t length, caching mode = caching::cached) noexcept {
    const auto mapped = detail::mapping_length(length);
    if (!mapped) return mapped.error();
    auto mapping = detail::map_shared(*mapped, -1, 0, MAP_NORESERVE);
    if (!mapping) return mapping.error();
    return anonymous_memory(std::move(mapping).value(), length, mode);
  }

  /// The memory as the copy path sees it.
  [[nodiscard]] memory_view view() const noexcept { return {mapping_.data(), length_, mode_}; }
  /// The exact requested length (the mapping itself is rounded up to pages).
  [[nodiscard]] std::uint64_t length() const noexcept { return length_; }
  /// True for a default-constructed or moved-from object.
  [[nodiscard]] bool empty() const noexcept { return length_ == 0; }

private:
  anonymous_memory(posix::mapping mapping, std::uint64_t length, caching mode) noexcept
      : mapping_(std::move(mapping)), length_(length), mode_(mode) {}

  posix::mapping mapping_;
  std::uint64_t length_ = 0;
  caching mode_ = caching::cached;
};

static_assert(device_memory<anonymous_memory>);
static_assert(!mappable_memory<anonymous_memory>);

}  // namespace nvgrace::mem
