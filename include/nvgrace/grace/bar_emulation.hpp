#pragma once
/// \file
/// §3: the emulated BAR registers in config space. Each emulated region has
/// an 8-byte register stored raw as written, read back masked to the BAR size
/// with the 64-bit prefetchable flags; the config windows decide which bytes
/// of an access the emulation owns.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/vfio/intersect.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace nvgrace::grace {

/// Config-space windows of the emulated registers.
inline constexpr std::uint64_t resmem_bar_window = 0x18;
inline constexpr std::uint64_t usemem_bar_window = 0x20;
inline constexpr std::uint64_t bar_window_size = 8;
/// Low bits every emulated BAR reads with: 64-bit, prefetchable.
inline constexpr std::uint64_t emulated_bar_flags = pci::bar_bits::mem_type_64 | pci::bar_bits::mem_prefetch;

/// Config-space offset of region `index`'s register window (0x18 for resmem,
/// 0x20 for usemem). Precondition: index is 2 or 4.
[[nodiscard]] constexpr std::uint64_t bar_window(std::uint32_t index) noexcept {
  NVGRACE_EXPECTS(index == resmem_index || index == usemem_index);
  return index == resmem_index ? resmem_bar_window : usemem_bar_window;
}

/// The 64-bit value an emulated BAR reads as (§3).
[[nodiscard]] constexpr std::uint64_t emulated_bar_read_value(std::uint64_t raw, std::uint64_t reported_size) noexcept {
  return (raw & ~(reported_size - 1)) | emulated_bar_flags;
}

/// Where a config access meets an emulated register.
struct window_hit {
  std::uint32_t region_index = 0;
  vfio::intersection overlap;
};

/// §3.2/§3.3 window choice: the resmem window is tested first, and only if
/// the access misses it is the usemem window tested. A hit on a window whose
/// region is not emulated (Blackwell's index 2) is no hit at all, even for
/// bytes that also fall in the usemem window (§10 E2).
[[nodiscard]] constexpr std::optional<window_hit> find_window(const layout& l, std::uint64_t pos,
                                                              std::uint64_t count) noexcept {
  if (auto hit = vfio::intersect_range(pos, count, resmem_bar_window, bar_window_size)) {
    if (!l.is_emulated(resmem_index)) return std::nullopt;
    return window_hit{resmem_index, *hit};
  }
  if (auto hit = vfio::intersect_range(pos, count, usemem_bar_window, bar_window_size)) {
    return window_hit{usemem_index, *hit};
  }
  return std::nullopt;
}

/// The raw register state of both emulated BARs. Reset value 0 (§3).
class bar_registers {
public:
  /// Zero both registers (open_device and the start of VFIO_DEVICE_RESET).
  constexpr void reset() noexcept {
    resmem_raw_ = 0;
    usemem_raw_ = 0;
  }

  [[nodiscard]] constexpr std::uint64_t raw(std::uint32_t index) const noexcept {
    return index == resmem_index ? resmem_raw_ : usemem_raw_;
  }

  /// The value region `index`'s register reads as.
  [[nodiscard]] constexpr std::uint64_t read_value(const layout& l, std::uint32_t index) const noexcept {
    const auto r = l.region(index);
    NVGRACE_EXPECTS(r.has_value());
    return emulated_bar_read_value(raw(index), r->reported_size);
  }

  /// §3.2: after the core produced `buffer` for a config read at `pos`,
  /// overwrite the bytes the emulation owns.
  constexpr void patch_config_read(const layout& l, std::uint64_t pos, std::span<std::byte> buffer) const noexcept {
    const auto hit = find_window(l, pos, buffer.size());
    if (!hit || hit->overlap.count == 0) return;
    std::array<std::byte, 8> image{};
    store_le<std::uint64_t>(image, 0, read_value(l, hit->region_index));
    for (std::uint64_t i = 0; i < hit->overlap.count; ++i)
      buffer[static_cast<std::size_t>(hit->overlap.buffer_offset + i)] =
          image[static_cast<std::size_t>(hit->overlap.register_offset + i)];
  }

  /// §3.3: a config write at `pos`. When it touches an emulated window, only
  /// the overlapping bytes are stored (raw) and their count is returned: the
  /// caller advances the position by it and writes nothing else. nullopt: the
  /// core handles the whole write.
  constexpr std::optional<std::uint64_t> intercept_config_write(const layout& l, std::uint64_t pos,
                                                                std::span<const std::byte> data) noexcept {
    const auto hit = find_window(l, pos, data.size());
    if (!hit) return std::nullopt;
    std::uint64_t& target = hit->region_index == resmem_index ? resmem_raw_ : usemem_raw_;
    std::array<std::byte, 8> image{};
    store_le<std::uint64_t>(image, 0, target);
    for (std::uint64_t i = 0; i < hit->overlap.count; ++i)
      image[static_cast<std::size_t>(hit->overlap.register_offset + i)] =
          data[static_cast<std::size_t>(hit->overlap.buffer_offset + i)];
    target = load_le<std::uint64_t>(image, 0);
    return hit->overlap.count;
  }

  friend constexpr bool operator==(const bar_registers&, const bar_registers&) = default;

private:
  std::uint64_t resmem_raw_ = 0;
  std::uint64_t usemem_raw_ = 0;
};

/// A BAR-sizing probe as a guest OS runs it.
struct bar_probe {
  std::uint64_t before = 0;  ///< the register as read before the probe
  std::uint64_t after = 0;   ///< the register as read back after the pattern was written
  std::uint64_t size = 0;    ///< the region size `after` implies (pci::bar_size_from_readback)
  friend constexpr bool operator==(bar_probe, bar_probe) = default;
};

namespace detail {
/// A dword config read at `pos` as the guest sees it. The core's value of the
/// emulated windows is irrelevant for an access wholly inside them, so the
/// buffer starts zeroed.
[[nodiscard]] constexpr std::uint32_t read_config_dword(const layout& l, const bar_registers& regs,
                                                        std::uint64_t pos) noexcept {
  std::array<std::byte, 4> bytes{};
  regs.patch_config_read(l, pos, bytes);
  return load_le<std::uint32_t>(bytes, 0);
}
constexpr void write_config_dword(const layout& l, bar_registers& regs, std::uint64_t pos,
                                  std::uint32_t value) noexcept {
  std::array<std::byte, 4> bytes{};
  store_le<std::uint32_t>(bytes, 0, value);
  static_cast<void>(regs.intercept_config_write(l, pos, bytes));
}
}  // namespace detail

/// §3: size emulated region `index` the way an OS sizes a 64-bit BAR, entirely
/// through the config-window logic: read both dwords, write `low_pattern` to
/// the low dword and `high_pattern` to the high one, read both back. `regs`
/// keeps the written pattern afterwards, as a real BAR would (an OS then
/// restores the old value). With all-ones in both dwords the size comes back
/// for every power of two from 16 bytes to 2^63; 0xFFFFFFF0 works as the low
/// pattern, but not as the high one for sizes of 2^32..2^35 (its low bits are
/// address bits 32–35 there). Precondition: `index` is emulated in `l`.
[[nodiscard]] constexpr bar_probe probe_bar_size(const layout& l, bar_registers& regs, std::uint32_t index,
                                                 std::uint32_t low_pattern = 0xFFFFFFFF,
                                                 std::uint32_t high_pattern = 0xFFFFFFFF) noexcept {
  NVGRACE_EXPECTS(l.is_emulated(index));
  const std::uint64_t low = bar_window(index);
  const std::uint64_t high = low + 4;
  const auto read64 = [&] {
    return std::uint64_t{detail::read_config_dword(l, regs, low)} |
           (std::uint64_t{detail::read_config_dword(l, regs, high)} << 32);
  };
  bar_probe probe;
  probe.before = read64();
  detail::write_config_dword(l, regs, low, low_pattern);
  detail::write_config_dword(l, regs, high, high_pattern);
  probe.after = read64();
  probe.size = pci::bar_size_from_readback(probe.after, true);
  return probe;
}

}  // namespace nvgrace::grace
