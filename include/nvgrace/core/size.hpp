#pragma once
/// \file
/// The one size syntax of nvgrace (every tool option that takes a byte count
/// or an address uses it), as constexpr code: `parse_size` reads it,
/// `format_size` writes a byte count back in it.
///
///     SIZE  = TERM { "+" TERM }               the terms are added
///     TERM  = HEX | DEC [ " " ] [ UNIT ]
///     HEX   = ( "0x" | "0X" ) hexdigit { hexdigit }     a byte count; no fraction, no unit
///     DEC   = digit { digit } [ "." digit { digit } ]
///     UNIT  = "B" | "K" | "KiB" | "M" | "MiB" | "G" | "GiB" | "T" | "TiB"
///             (1, 2^10, 2^20, 2^30, 2^40; letters in any case)
///
/// So `4096`, `0x1000`, `4K`, `4KiB`, `4 KiB`, `1.5G`, `2G+12345` and
/// `0x400000000000+1G` are all sizes. Units are binary: `K` and `KiB` both
/// mean 1024. The decimal SI units (`KB`, `GB`) are rejected by name, because
/// they are ambiguous. A fraction is exact and must come to whole bytes
/// (`0.5K` is 512, `0.1K` is an error). Nothing else is accepted: no sign, no
/// blanks other than the one before a unit, no digit separators. Every step
/// is overflow-checked: a value above 2^64 - 1 is EOVERFLOW, anything
/// malformed is EINVAL, and the result says which rule failed and where.
/// Terms are read left to right and the first error wins; within a term,
/// malformed text comes before a too-big value, which comes before a
/// fraction that is not whole bytes.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace nvgrace {

/// A parsed size, or why the text is not one.
struct size_parse {
  std::uint64_t bytes = 0;   ///< the value (0 on error)
  errc error{};              ///< EINVAL (malformed) or EOVERFLOW (above 2^64 - 1); {} on success
  text_view reason{};        ///< which rule failed, e.g. "unknown unit"; empty on success
  std::size_t position = 0;  ///< offset in the text where it failed

  [[nodiscard]] constexpr bool ok() const noexcept { return error == errc{}; }
  /// The value as a result<uint64_t> (the reason is dropped).
  [[nodiscard]] constexpr result<std::uint64_t> value() const noexcept {
    if (!ok()) return error;
    return bytes;
  }
};

namespace detail::size_syntax {

[[nodiscard]] constexpr char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
[[nodiscard]] constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
[[nodiscard]] constexpr int hex_digit(char c) noexcept {
  if (is_digit(c)) return c - '0';
  c = lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}
[[nodiscard]] constexpr bool iequals(text_view a, text_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}
[[nodiscard]] constexpr size_parse fail(errc e, text_view why, std::size_t at) noexcept { return {0, e, why, at}; }

/// The shift of a unit (0 for B, 10 for K/KiB, ...), or -1.
[[nodiscard]] constexpr int unit_shift(text_view unit) noexcept {
  if (unit.empty() || iequals(unit, "B")) return 0;
  constexpr text_view letters = "kmgt";
  for (std::size_t i = 0; i < letters.size(); ++i) {
    if (lower(unit[0]) != letters[i]) continue;
    if (unit.size() == 1 || iequals(unit.substr(1), "iB")) return static_cast<int>(10 * (i + 1));
  }
  return -1;
}

/// `fraction` (the digits after the point) times 2^shift, if that is a whole
/// number: double the decimal fraction `shift` times and collect the carries.
/// A whole multiple of 2^-40 has at most 40 significant decimals.
[[nodiscard]] constexpr result<std::uint64_t> fraction_bytes(text_view fraction, int shift) noexcept {
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  if (fraction.empty()) return std::uint64_t{0};
  constexpr std::size_t max_digits = 40;
  if (shift == 0 || fraction.size() > max_digits) return errc::invalid_argument;
  std::array<std::uint8_t, max_digits> digits{};
  for (std::size_t i = 0; i < fraction.size(); ++i) digits[i] = static_cast<std::uint8_t>(fraction[i] - '0');
  std::uint64_t part = 0;
  for (int step = 0; step < shift; ++step) {
    unsigned carry = 0;
    for (std::size_t i = fraction.size(); i-- > 0;) {
      const unsigned doubled = digits[i] * 2u + carry;
      digits[i] = static_cast<std::uint8_t>(doubled % 10);
      carry = doubled / 10;
    }
    part = (part << 1) | carry;
  }
  for (std::size_t i = 0; i < fraction.size(); ++i)
    if (digits[i] != 0) return errc::invalid_argument;
  return part;
}

/// One TERM starting at `text[at]`, ending before `end` (a '+' or the end).
[[nodiscard]] constexpr size_parse term(text_view text, std::size_t at, std::size_t end) noexcept {
  constexpr auto einval = errc::invalid_argument;
  constexpr auto eoverflow = errc::value_too_large;
  const text_view t = text.substr(at, end - at);
  if (t.empty()) return fail(einval, at == 0 ? "empty size" : "a '+' must be followed by a size", at);
  if (t.size() >= 2 && t[0] == '0' && lower(t[1]) == 'x') {
    if (t.size() == 2) return fail(einval, "0x needs hex digits", at + 2);
    std::uint64_t value = 0;
    bool too_big = false;
    for (std::size_t i = 2; i < t.size(); ++i) {
      const int digit = hex_digit(t[i]);
      if (digit < 0) return fail(einval, "a 0x size takes hex digits only (no fraction, no unit)", at + i);
      too_big = too_big || value > (~std::uint64_t{0} >> 4);
      value = (value << 4) | static_cast<std::uint64_t>(digit);
    }
    if (too_big) return fail(eoverflow, "size does not fit in 64 bits", at);
    return {value, {}, {}, 0};
  }
  if (!is_digit(t[0])) return fail(einval, "a size starts with a digit", at);
  // Malformed text is reported before a value that is too big: the digits are
  // all read first, and an overflow only remembered.
  std::size_t i = 0;
  std::uint64_t whole = 0;
  bool too_big = false;
  for (; i < t.size() && is_digit(t[i]); ++i) {
    const auto next = checked_mul(whole, 10);
    const auto sum = next ? checked_add(*next, static_cast<std::uint64_t>(t[i] - '0')) : next;
    too_big = too_big || !sum;
    if (sum) whole = *sum;
  }
  text_view fraction;
  if (i < t.size() && t[i] == '.') {
    const std::size_t start = ++i;
    while (i < t.size() && is_digit(t[i])) ++i;
    fraction = t.substr(start, i - start);
    if (fraction.empty()) return fail(einval, "a '.' needs digits after it", at + start);
  }
  std::size_t unit_at = i;
  if (unit_at < t.size() && t[unit_at] == ' ') {
    ++unit_at;
    if (unit_at == t.size()) return fail(einval, "a space must be followed by a unit", at + unit_at);
  }
  const text_view unit = t.substr(unit_at);
  const int shift = unit_shift(unit);
  if (shift < 0) {
    if (unit.size() == 2 && lower(unit[1]) == 'b' && unit_shift(unit.substr(0, 1)) > 0)
      return fail(einval, "decimal units (KB, MB, GB, TB) are ambiguous: write K or KiB (binary)", at + unit_at);
    return fail(einval, "unknown unit (expected B, K, KiB, M, MiB, G, GiB, T or TiB)", at + unit_at);
  }
  const auto scaled = checked_mul(whole, std::uint64_t{1} << shift);
  if (too_big || !scaled) return fail(eoverflow, "size does not fit in 64 bits", at);
  const auto part = fraction_bytes(fraction, shift);
  if (!part) return fail(einval, "not a whole number of bytes", at);
  const auto total = checked_add(*scaled, *part);
  if (!total) return fail(eoverflow, "size does not fit in 64 bits", at);
  return {*total, {}, {}, 0};
}

}  // namespace detail::size_syntax

/// Read a SIZE (see the file comment for the grammar).
[[nodiscard]] constexpr size_parse parse_size(text_view text) noexcept {
  std::uint64_t total = 0;
  std::size_t at = 0;
  while (true) {
    std::size_t end = at;
    while (end < text.size() && text[end] != '+') ++end;
    const size_parse t = detail::size_syntax::term(text, at, end);
    if (!t.ok()) return t;
    const auto sum = checked_add(total, t.bytes);
    if (!sum) return detail::size_syntax::fail(errc::value_too_large, "size does not fit in 64 bits", at);
    total = *sum;
    if (end == text.size()) return {total, {}, {}, 0};
    at = end + 1;
  }
}

/// A size as text, in a fixed buffer (no allocation): `view()`.
struct size_text {
  std::array<char, 32> chars{};
  std::size_t length = 0;
  [[nodiscard]] constexpr text_view view() const noexcept { return {chars.data(), length}; }
  constexpr void append(text_view s) noexcept {
    for (const char c : s) chars[length++] = c;
  }
  constexpr void append_number(std::uint64_t v) noexcept {
    std::array<char, 20> digits{};
    std::size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) chars[length++] = digits[--n];
  }
};

/// `bytes` in the largest binary unit that shows it exactly with at most four
/// decimals ("1.25 GiB", "512 MiB", "1 TiB"), else in bytes ("4097 B"); "0 B"
/// for 0. The text is a SIZE: parse_size(format_size(n).view()) == n.
[[nodiscard]] constexpr size_text format_size(std::uint64_t bytes) noexcept {
  constexpr std::array<text_view, 4> names{"KiB", "MiB", "GiB", "TiB"};
  size_text out;
  for (int u = 3; u >= 0; --u) {
    const int shift = 10 * (u + 1);
    const std::uint64_t unit = std::uint64_t{1} << shift;
    if (bytes < unit) continue;
    // rest / unit as at most four decimals: exact iff rest * 10^4 is a multiple of unit
    // (rest < 2^40 and 10^4 < 2^14, so the product fits).
    const std::uint64_t rest = bytes & (unit - 1);
    if ((rest * 10000) % unit != 0) continue;
    out.append_number(bytes >> shift);
    if (std::uint64_t frac = rest * 10000 / unit; frac != 0) {
      std::array<char, 4> d{};
      for (int i = 3; i >= 0; --i, frac /= 10) d[static_cast<std::size_t>(i)] = static_cast<char>('0' + frac % 10);
      std::size_t n = 4;
      while (d[n - 1] == '0') --n;
      out.append(".");
      out.append(text_view(d.data(), n));
    }
    out.append(" ");
    out.append(names[static_cast<std::size_t>(u)]);
    return out;
  }
  out.append_number(bytes);
  out.append(" B");
  return out;
}

}  // namespace nvgrace
