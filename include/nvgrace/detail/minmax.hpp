#pragma once
/// \file
/// min, max and clamp for the backends, without <algorithm>: in C++20 that
/// header brings the whole ranges library, which costs more to parse than
/// many of the headers that needed nothing else from it.

namespace nvgrace::detail {

template <class T>
[[nodiscard]] constexpr T min(T a, T b) noexcept {
  return b < a ? b : a;
}

template <class T>
[[nodiscard]] constexpr T max(T a, T b) noexcept {
  return a < b ? b : a;
}

/// `value` kept within [low, high]. Precondition: low <= high.
template <class T>
[[nodiscard]] constexpr T clamp(T value, T low, T high) noexcept {
  return value < low ? low : high < value ? high : value;
}

}  // namespace nvgrace::detail
