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
    const memregion* r = l.region(index);
    NVGRACE_EXPECTS(r != nullptr);
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

private:
  std::uint64_t resmem_raw_ = 0;
  std::uint64_t usemem_raw_ = 0;
};

}  // namespace nvgrace::grace
