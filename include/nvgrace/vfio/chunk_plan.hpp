#pragma once
/// \file
/// The access-width plan of vfio-pci's region read/write helper (§5.3): a
/// transfer of `count` bytes at `offset` is split into naturally aligned
/// accesses of 8, 4, 2 or 1 bytes, each step taking the widest width that
/// the offset's alignment, the remaining length and `max_width` all allow.
///
/// Examples (§5.3): offset 3, count 13 → 1, 4, 8; offset 6, count 3 → 2, 1;
/// offset 0, count 20 → 8, 8, 4.

#include <nvgrace/core/contracts.hpp>

#include <cstddef>
#include <cstdint>

namespace nvgrace::vfio {

/// Width in bytes (8, 4, 2 or 1) of the next access of a transfer at `offset`
/// with `remaining` bytes left, never wider than `max_width`.
/// Precondition: remaining > 0 (an empty transfer has no next access).
[[nodiscard]] constexpr unsigned next_chunk_width(std::uint64_t offset, std::uint64_t remaining,
                                                  unsigned max_width = 8) noexcept {
  NVGRACE_EXPECTS(remaining > 0);
  // Alignment tests are masks, never div/mod: this sits on the uncached copy path.
  if (max_width >= 8 && remaining >= 8 && (offset & 7u) == 0) return 8;
  if (max_width >= 4 && remaining >= 4 && (offset & 3u) == 0) return 4;
  if (max_width >= 2 && remaining >= 2 && (offset & 1u) == 0) return 2;
  return 1;
}

/// One access of a chunk plan: `width` bytes at `offset`.
struct chunk {
  std::uint64_t offset = 0;
  unsigned width = 0;
  friend constexpr bool operator==(const chunk&, const chunk&) noexcept = default;
};

/// The end of a chunk range (ranges compare an iterator with it).
struct chunk_sentinel {};

/// Forward iterator over the accesses of a transfer; ends at chunk_sentinel.
class chunk_iterator {
public:
  using value_type = chunk;
  using difference_type = std::ptrdiff_t;

  constexpr chunk_iterator() noexcept = default;
  constexpr chunk_iterator(std::uint64_t offset, std::uint64_t remaining, unsigned max_width) noexcept
      : offset_(offset), remaining_(remaining), max_width_(max_width) {}

  [[nodiscard]] constexpr chunk operator*() const noexcept {
    return {offset_, next_chunk_width(offset_, remaining_, max_width_)};
  }
  constexpr chunk_iterator& operator++() noexcept {
    const unsigned width = next_chunk_width(offset_, remaining_, max_width_);
    offset_ += width;
    remaining_ -= width;
    return *this;
  }
  constexpr chunk_iterator operator++(int) noexcept {
    chunk_iterator before = *this;
    ++*this;
    return before;
  }

  friend constexpr bool operator==(const chunk_iterator& a, const chunk_iterator& b) noexcept {
    return a.offset_ == b.offset_ && a.remaining_ == b.remaining_ && a.max_width_ == b.max_width_;
  }
  friend constexpr bool operator==(const chunk_iterator& it, chunk_sentinel) noexcept { return it.remaining_ == 0; }

private:
  std::uint64_t offset_ = 0;
  std::uint64_t remaining_ = 0;
  unsigned max_width_ = 8;
};

/// The accesses of a transfer, as a range: `for (chunk c : chunks(off, n)) ...`.
class chunk_range {
public:
  constexpr chunk_range() noexcept = default;
  constexpr chunk_range(std::uint64_t offset, std::uint64_t count, unsigned max_width) noexcept
      : first_(offset, count, max_width) {}

  [[nodiscard]] constexpr chunk_iterator begin() const noexcept { return first_; }
  [[nodiscard]] constexpr chunk_sentinel end() const noexcept { return {}; }

private:
  chunk_iterator first_;
};

/// The chunk plan of `count` bytes at `offset` with accesses at most `max_width` wide.
/// Precondition: offset + count does not overflow.
[[nodiscard]] constexpr chunk_range chunks(std::uint64_t offset, std::uint64_t count, unsigned max_width = 8) noexcept {
  NVGRACE_EXPECTS(count <= ~offset);
  return {offset, count, max_width};
}

}  // namespace nvgrace::vfio
