#pragma once
/// \file
/// The bridge from `nvgrace::errc` to the standard library's error types:
/// `std::errc`, `std::error_code` and `std::error_condition` (generic
/// category, since every nvgrace error is an errno value). Kept apart from the
/// model, and from the umbrella nvgrace/nvgrace.hpp, because `<system_error>`
/// (which brings `<string>`) costs more to parse than the model itself.
///
///     std::error_code ec = nvgrace::errc::invalid_argument;   // implicit
///     ec == std::errc::invalid_argument;                       // true
///     result.error_code();                                     // on any result

#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/result.hpp>

#include <system_error>
#include <type_traits>

namespace nvgrace {

namespace detail {
template <>
inline constexpr bool error_code_bridge_included<void> = true;
}  // namespace detail

[[nodiscard]] constexpr std::errc to_std_errc(errc e) noexcept { return static_cast<std::errc>(to_errno(e)); }
[[nodiscard]] constexpr errc from_std_errc(std::errc e) noexcept { return static_cast<errc>(static_cast<int>(e)); }

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept { return {to_errno(e), std::generic_category()}; }
[[nodiscard]] inline std::error_condition make_error_condition(errc e) noexcept {
  return {to_errno(e), std::generic_category()};
}

/// The same errno, spelled either way.
[[nodiscard]] constexpr bool operator==(errc a, std::errc b) noexcept { return to_errno(a) == static_cast<int>(b); }

}  // namespace nvgrace

template <>
struct std::is_error_code_enum<nvgrace::errc> : std::true_type {};
