#pragma once
/// \file
/// Device memory that is a caller-provided span (non-owning).

#include <nvgrace/mem/device_memory.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace::mem {

/// Caller-owned bytes used as device memory: a buffer, a mapping made
/// elsewhere, part of a larger memory. The bytes must outlive every use.
/// For uncached memory the span need not be aligned: the chunk plan judges
/// alignment from the address, so accesses stay naturally aligned.
/// Not fd-mappable. Copyable (it owns nothing); the default is empty.
class span_memory {
public:
  constexpr span_memory() noexcept = default;
  constexpr explicit span_memory(std::span<std::byte> bytes, caching mode = caching::cached) noexcept
      : bytes_(bytes), mode_(mode) {}

  /// The memory as the copy path sees it.
  [[nodiscard]] constexpr memory_view view() const noexcept { return {bytes_.data(), bytes_.size(), mode_}; }
  [[nodiscard]] constexpr std::uint64_t length() const noexcept { return bytes_.size(); }
  [[nodiscard]] constexpr bool empty() const noexcept { return bytes_.empty(); }

private:
  std::span<std::byte> bytes_;
  caching mode_ = caching::cached;
};

static_assert(device_memory<span_memory>);
static_assert(!mappable_memory<span_memory>);

}  // namespace nvgrace::mem
