#pragma once
/// \file
/// Overflow-checked arithmetic for offsets and sizes that come from outside.
/// Every overflow is reported as EOVERFLOW (`errc::value_too_large`),
/// the code the driver uses for the same condition.

#include <nvgrace/core/result.hpp>

#include <bit>
#include <cstdint>
#include <limits>

namespace nvgrace {

/// a + b, or EOVERFLOW.
[[nodiscard]] constexpr result<std::uint64_t> checked_add(std::uint64_t a, std::uint64_t b) noexcept {
  if (b > std::numeric_limits<std::uint64_t>::max() - a) return errc::value_too_large;
  return a + b;
}

/// a - b, or EOVERFLOW when b > a (unsigned underflow).
[[nodiscard]] constexpr result<std::uint64_t> checked_sub(std::uint64_t a, std::uint64_t b) noexcept {
  if (b > a) return errc::value_too_large;
  return a - b;
}

/// a * b, or EOVERFLOW.
[[nodiscard]] constexpr result<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) noexcept {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return errc::value_too_large;
  return a * b;
}

/// True when [offset, offset + length) fits inside [0, limit) without overflow.
[[nodiscard]] constexpr bool range_within(std::uint64_t offset, std::uint64_t length, std::uint64_t limit) noexcept {
  return offset <= limit && length <= limit - offset;
}

/// The smallest power of two ≥ value (the kernel's roundup_pow_of_two).
/// 0 has none (EINVAL); values above 2^63 would need 2^64 (EOVERFLOW).
[[nodiscard]] constexpr result<std::uint64_t> next_pow2(std::uint64_t value) noexcept {
  if (value == 0) return errc::invalid_argument;
  if (value > (std::uint64_t{1} << 63)) return errc::value_too_large;
  return std::bit_ceil(value);
}

/// value rounded down to a multiple of the power of two `alignment`.
[[nodiscard]] constexpr std::uint64_t align_down(std::uint64_t value, std::uint64_t alignment) noexcept {
  NVGRACE_EXPECTS(std::has_single_bit(alignment));
  return value & ~(alignment - 1);
}

/// True when value is a multiple of the power of two `alignment`.
[[nodiscard]] constexpr bool is_aligned(std::uint64_t value, std::uint64_t alignment) noexcept {
  NVGRACE_EXPECTS(std::has_single_bit(alignment));
  return (value & (alignment - 1)) == 0;
}

inline constexpr std::uint64_t KiB = std::uint64_t{1} << 10;
inline constexpr std::uint64_t MiB = std::uint64_t{1} << 20;
inline constexpr std::uint64_t GiB = std::uint64_t{1} << 30;
inline constexpr std::uint64_t TiB = std::uint64_t{1} << 40;

}  // namespace nvgrace
