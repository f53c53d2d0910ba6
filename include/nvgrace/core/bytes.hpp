#pragma once
/// \file
/// Little-endian loads and stores on byte spans, usable in constant
/// expressions. Every wire and register format nvgrace handles (VFIO info
/// structs, config space, vfio-user messages) is little-endian.

#include <nvgrace/core/contracts.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace {

/// Read an unsigned little-endian integer of sizeof(T) bytes at `offset`.
/// Precondition: the bytes lie inside `bytes` (callers bound-check first).
template <std::unsigned_integral T>
[[nodiscard]] constexpr T load_le(std::span<const std::byte> bytes, std::size_t offset = 0) noexcept {
  NVGRACE_EXPECTS(offset <= bytes.size() && sizeof(T) <= bytes.size() - offset);
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    value |= static_cast<T>(static_cast<T>(std::to_integer<std::uint8_t>(bytes[offset + i])) << (8 * i));
  return value;
}

/// Write `value` as sizeof(T) little-endian bytes at `offset`.
template <std::unsigned_integral T>
constexpr void store_le(std::span<std::byte> bytes, std::size_t offset, T value) noexcept {
  NVGRACE_EXPECTS(offset <= bytes.size() && sizeof(T) <= bytes.size() - offset);
  for (std::size_t i = 0; i < sizeof(T); ++i) bytes[offset + i] = static_cast<std::byte>((value >> (8 * i)) & 0xFFu);
}

}  // namespace nvgrace
