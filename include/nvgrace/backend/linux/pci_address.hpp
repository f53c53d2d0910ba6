#pragma once
/// \file
/// PCI addresses as sysfs and VFIO spell them ("0000:01:00.0"), and a small
/// fixed-capacity path string so that building /sys and /dev paths needs no
/// allocation (and so cannot throw).

#include <nvgrace/core/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/text_view.hpp>

namespace nvgrace::linux_vfio {

/// A NUL-terminated path of at most Capacity - 1 characters. Appending past
/// the capacity fails with ENAMETOOLONG and leaves the string unchanged.
template <std::size_t Capacity = 512>
class path_string {
public:
  constexpr path_string() noexcept = default;

  /// A path holding `text`; ENAMETOOLONG if it does not fit, EINVAL if it
  /// contains a NUL (the kernel would see a shorter path than the caller meant).
  [[nodiscard]] static constexpr result<path_string> from(text_view text) noexcept {
    path_string p;
    if (auto s = p.append(text); !s) return s.error();
    return p;
  }

  /// Append `text`; ENAMETOOLONG / EINVAL as for from().
  constexpr status append(text_view text) noexcept {
    if (text.size() > Capacity - 1 - size_) return errc::filename_too_long;
    if (text.find('\0') != text_view::npos) return errc::invalid_argument;
    for (char c : text) bytes_[size_++] = c;
    bytes_[size_] = '\0';
    return {};
  }

  [[nodiscard]] constexpr const char* c_str() const noexcept { return bytes_.data(); }
  [[nodiscard]] constexpr text_view view() const noexcept { return {bytes_.data(), size_}; }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return size_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return size_ == 0; }

private:
  std::array<char, Capacity> bytes_{};
  std::size_t size_ = 0;
};

/// A PCI function address: domain, bus, device (0..31), function (0..7).
struct pci_address {
  std::uint32_t domain = 0;
  std::uint8_t bus = 0;
  std::uint8_t device = 0;
  std::uint8_t function = 0;
  friend constexpr bool operator==(const pci_address&, const pci_address&) noexcept = default;
};

namespace detail {

[[nodiscard]] constexpr int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Exactly `text` as hex digits (1..8 of them), or -1.
[[nodiscard]] constexpr std::int64_t parse_hex(text_view text) noexcept {
  if (text.empty() || text.size() > 8) return -1;
  std::int64_t value = 0;
  for (char c : text) {
    const int d = hex_digit(c);
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

}  // namespace detail

/// Parse "DDDD:BB:DD.F" (domain of 4 to 8 hex digits, as sysfs prints it) or
/// the short "BB:DD.F" (domain 0). Hex digits of either case. Anything else —
/// missing or extra characters, device > 0x1f, function > 7 — is EINVAL.
[[nodiscard]] constexpr result<pci_address> parse_pci_address(text_view text) noexcept {
  // Split from the right: ".F", then ":DD", then ":BB", then an optional domain.
  const auto dot = text.rfind('.');
  if (dot == text_view::npos) return errc::invalid_argument;
  const auto function_text = text.substr(dot + 1);
  const auto head = text.substr(0, dot);
  const auto colon2 = head.rfind(':');
  if (colon2 == text_view::npos) return errc::invalid_argument;
  const auto device_text = head.substr(colon2 + 1);
  const auto head2 = head.substr(0, colon2);
  const auto colon1 = head2.rfind(':');
  const auto bus_text = colon1 == text_view::npos ? head2 : head2.substr(colon1 + 1);
  const auto domain_text = colon1 == text_view::npos ? text_view{} : head2.substr(0, colon1);

  if (function_text.size() != 1 || device_text.size() != 2 || bus_text.size() != 2) return errc::invalid_argument;
  if (colon1 != text_view::npos && (domain_text.size() < 4 || domain_text.size() > 8)) return errc::invalid_argument;
  const auto function = detail::parse_hex(function_text);
  const auto device = detail::parse_hex(device_text);
  const auto bus = detail::parse_hex(bus_text);
  const auto domain = domain_text.empty() ? std::int64_t{0} : detail::parse_hex(domain_text);
  if (function < 0 || device < 0 || bus < 0 || domain < 0) return errc::invalid_argument;
  if (function > 7 || device > 0x1f) return errc::invalid_argument;
  return pci_address{static_cast<std::uint32_t>(domain), static_cast<std::uint8_t>(bus),
                     static_cast<std::uint8_t>(device), static_cast<std::uint8_t>(function)};
}

/// The canonical spelling, as sysfs names the device: "%04x:%02x:%02x.%x",
/// lower-case (a domain above 0xffff takes more digits, as in sysfs).
[[nodiscard]] constexpr path_string<32> to_string(const pci_address& a) noexcept {
  constexpr text_view digits = "0123456789abcdef";
  std::array<char, 20> out{};
  std::size_t n = 0;
  int domain_digits = 4;
  while (domain_digits < 8 && (a.domain >> (4 * domain_digits)) != 0) ++domain_digits;
  for (int i = domain_digits - 1; i >= 0; --i) out[n++] = digits[(a.domain >> (4 * i)) & 0xF];
  out[n++] = ':';
  out[n++] = digits[a.bus >> 4];
  out[n++] = digits[a.bus & 0xF];
  out[n++] = ':';
  out[n++] = digits[(a.device >> 4) & 0xF];
  out[n++] = digits[a.device & 0xF];
  out[n++] = '.';
  out[n++] = digits[a.function & 0xF];
  path_string<32> s;
  static_cast<void>(s.append(text_view(out.data(), n)));  // at most 17 characters: always fits
  return s;
}

}  // namespace nvgrace::linux_vfio
