#pragma once
/// \file
/// The synthetic, realistic PCI Express config space of the in-process device,
/// and the "core" semantics of accessing it: what vfio-pci's virtualized
/// config does for every byte the nvgrace emulation does not own (§3.2 step 1,
/// §3.3 last bullet).
///
/// Contents (4096 bytes, extended config space):
/// - IDs from the driver's table, revision 0xA1, class 0x0302 (3D controller),
///   header type 0, interrupt pin INTA;
/// - BAR registers described by `core_bar`s: vfio-pci stores whatever is
///   written and reads back (stored & ~(size − 1)) | flags, so writing
///   all-ones sizes a BAR; an unimplemented BAR and the ROM read 0;
/// - capabilities: power management (0x40) → MSI, 64-bit, one vector (0x48)
///   → PCI Express v2 endpoint (0x60), FLR advertised when reset works;
/// - extended capabilities: the NVIDIA DVSEC (vendor 0x10DE, id 3) at 0x100
///   whose 16-bit word at +0xA has bit 0 set on Blackwell (§2.2).
/// Writable: command (I/O, memory, bus master, parity, SERR, INTx disable),
/// cache line size, latency timer, interrupt line, the BARs, MSI control
/// (enable, multiple message enable) and its address/data, PCIe device and
/// link control. Everything else ignores writes. Writing the FLR bit of
/// device control requests a function-level reset (the bit reads back 0).
///
/// Not thread-safe: the device serializes access.

#include <nvgrace/backend/shim/readiness.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/pci/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace::shim {

/// Offsets of the capabilities the synthetic config space carries.
namespace config_layout {
inline constexpr std::uint16_t power_management = 0x40;
inline constexpr std::uint16_t msi = 0x48;
inline constexpr std::uint16_t express = 0x60;
/// PCIe device capabilities / control registers inside the express capability.
inline constexpr std::uint16_t express_devcap = express + 0x04;
inline constexpr std::uint16_t express_devctl = express + 0x08;
inline constexpr std::uint16_t express_linkctl = express + 0x10;
inline constexpr std::uint16_t dvsec = 0x100;
inline constexpr std::uint16_t dvsec_length = 0x10;
/// The CXL device DVSEC, right after the NVIDIA one (or first, without it).
inline constexpr std::uint16_t cxl_dvsec = 0x110;
inline constexpr std::uint16_t cxl_dvsec_length = 0x3C;
inline constexpr std::uint32_t devcap_flr = 1u << 28;
inline constexpr std::uint16_t devctl_bcr_flr = 0x8000;
inline constexpr std::uint8_t revision = 0xA1;
inline constexpr std::uint32_t class_code = 0x030200;  ///< 3D controller, prog-if 0
inline constexpr std::uint16_t subsystem_id = 0x16EB;
}  // namespace config_layout

/// One BAR as vfio-pci's virtual config sees it.
struct core_bar {
  std::uint64_t size = 0;     ///< power of two; 0 = unimplemented
  std::uint32_t flags = 0;    ///< the low bits: memory type, prefetchable
  std::uint64_t address = 0;  ///< the address the host assigned (initial register value)

  [[nodiscard]] constexpr bool is_64bit() const noexcept {
    return (flags & pci::bar_bits::mem_type_mask) == pci::bar_bits::mem_type_64;
  }
  friend constexpr bool operator==(const core_bar&, const core_bar&) = default;
};

/// What the config space is built from.
struct config_params {
  std::uint16_t vendor_id = grace::nvidia_vendor_id;
  std::uint16_t device_id = 0x2342;
  grace::generation generation = grace::generation::hopper;
  /// Indexed by BAR number; a 64-bit BAR at i also owns register i + 1 (whose entry is ignored).
  std::array<core_bar, 6> bars{};
  bool flr_supported = true;
  /// The NVIDIA DVSEC at 0x100 (without it the driver assumes Hopper).
  bool nvidia_dvsec = true;
  /// A CXL device DVSEC (vendor 0x1E98, id 0) after it; the device patches
  /// its Range 1 Size Low dword on every read (it changes with time).
  bool cxl_dvsec = false;
};

/// Side effects of a core config write the device must act on.
struct config_write_effects {
  std::size_t count = 0;  ///< bytes accepted (the whole access)
  bool command_written = false;
  bool flr_requested = false;
};

class config_space {
public:
  static constexpr std::size_t size = pci::ext_config_space_size;

  constexpr config_space() noexcept = default;
  explicit constexpr config_space(const config_params& p) noexcept : bars_(p.bars) { build(p); }

  /// Core read of `out.size()` bytes at `pos`: EFAULT when pos ≥ 4096 or the
  /// access runs past 4096; otherwise the bytes (BAR registers masked to
  /// their size) and the count.
  [[nodiscard]] constexpr result<std::size_t> read(std::uint64_t pos, std::span<std::byte> out) const noexcept {
    if (!range_within(pos, out.size(), size) || pos == size) return errc::bad_address;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = bytes_[static_cast<std::size_t>(pos) + i];
    // Overlay the BAR registers (0x10..0x27) and the ROM register (always 0).
    for (unsigned bar = 0; bar < 6; ++bar) overlay(pos, out, pci::reg::base_address(bar), bar_read_value(bar));
    overlay(pos, out, pci::reg::rom_address, 0);
    return out.size();
  }

  /// Core write of `in` at `pos`: the same EFAULT rule; writable bits take
  /// the new value, the rest keep theirs; returns the whole count.
  [[nodiscard]] constexpr result<config_write_effects> write(std::uint64_t pos,
                                                             std::span<const std::byte> in) noexcept {
    if (!range_within(pos, in.size(), size) || pos == size) return errc::bad_address;
    config_write_effects effects;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const auto at = static_cast<std::size_t>(pos) + i;
      const auto mask = mask_[at];
      bytes_[at] = (bytes_[at] & ~mask) | (in[i] & mask);
      if (at == pci::reg::command || at == pci::reg::command + 1u) effects.command_written = true;
      if (at == config_layout::express_devctl + 1u && flr_supported_ &&
          (std::to_integer<unsigned>(in[i]) & (config_layout::devctl_bcr_flr >> 8)) != 0)
        effects.flr_requested = true;
    }
    effects.count = in.size();
    return effects;
  }

  /// The command register as last written.
  [[nodiscard]] constexpr std::uint16_t command() const noexcept {
    return load_le<std::uint16_t>(bytes_, pci::reg::command);
  }

  /// The BAR descriptions the space was built with.
  [[nodiscard]] constexpr const core_bar& bar(unsigned n) const noexcept { return bars_[n]; }

  /// The value BAR register `n` (0..5) reads as.
  [[nodiscard]] constexpr std::uint32_t bar_read_value(unsigned n) const noexcept {
    if (bars_[n].size != 0) {
      const std::uint64_t value = (raw_bar(n) & ~(bars_[n].size - 1)) | bars_[n].flags;
      return static_cast<std::uint32_t>(value);
    }
    if (n > 0 && bars_[n - 1].size != 0 && bars_[n - 1].is_64bit()) {
      const std::uint64_t value = (raw_bar(n - 1) & ~(bars_[n - 1].size - 1)) | bars_[n - 1].flags;
      return static_cast<std::uint32_t>(value >> 32);
    }
    return 0;
  }

private:
  /// The stored (unmasked) value of BAR n, 64 bits wide for a 64-bit BAR.
  [[nodiscard]] constexpr std::uint64_t raw_bar(unsigned n) const noexcept {
    std::uint64_t value = load_le<std::uint32_t>(bytes_, pci::reg::base_address(n));
    if (bars_[n].is_64bit() && n < 5)
      value |= std::uint64_t{load_le<std::uint32_t>(bytes_, pci::reg::base_address(n + 1))} << 32;
    return value;
  }

  /// Copy the bytes of a 4-byte register at `reg` that fall inside the access.
  static constexpr void overlay(std::uint64_t pos, std::span<std::byte> out, std::uint64_t reg,
                                std::uint32_t value) noexcept {
    for (std::uint64_t i = 0; i < 4; ++i) {
      const std::uint64_t at = reg + i;
      if (at >= pos && at - pos < out.size())
        out[static_cast<std::size_t>(at - pos)] = static_cast<std::byte>((value >> (8 * i)) & 0xFF);
    }
  }

  constexpr void put8(std::size_t at, std::uint8_t v, std::uint8_t mask = 0) noexcept {
    bytes_[at] = std::byte{v};
    mask_[at] = std::byte{mask};
  }
  constexpr void put16(std::size_t at, std::uint16_t v, std::uint16_t mask = 0) noexcept {
    put8(at, static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(mask));
    put8(at + 1, static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(mask >> 8));
  }
  constexpr void put32(std::size_t at, std::uint32_t v, std::uint32_t mask = 0) noexcept {
    put16(at, static_cast<std::uint16_t>(v), static_cast<std::uint16_t>(mask));
    put16(at + 2, static_cast<std::uint16_t>(v >> 16), static_cast<std::uint16_t>(mask >> 16));
  }

  constexpr void build(const config_params& p) noexcept {
    namespace L = config_layout;
    flr_supported_ = p.flr_supported;
    put16(pci::reg::vendor_id, p.vendor_id);
    put16(pci::reg::device_id, p.device_id);
    // Memory decode on (vfio-pci enables the device at open); no I/O BARs.
    put16(pci::reg::command, pci::command_bits::memory, 0x0547);
    put16(pci::reg::status, pci::status_bits::cap_list);
    put8(pci::reg::revision_id, L::revision);
    put8(pci::reg::class_prog, static_cast<std::uint8_t>(L::class_code));
    put16(pci::reg::class_device, static_cast<std::uint16_t>(L::class_code >> 8));
    put8(0x0C, 0, 0xFF);  // cache line size
    put8(0x0D, 0, 0xFF);  // latency timer
    put8(pci::reg::header_type, 0);
    for (unsigned n = 0; n < 6; ++n) put32(pci::reg::base_address(n), 0, 0xFFFF'FFFFu);
    for (unsigned n = 0; n < 6; ++n) {
      const core_bar& b = p.bars[n];
      if (b.size == 0) continue;
      const std::uint64_t value = b.address | b.flags;
      put32(pci::reg::base_address(n), static_cast<std::uint32_t>(value), 0xFFFF'FFFFu);
      if (b.is_64bit() && n < 5)
        put32(pci::reg::base_address(n + 1), static_cast<std::uint32_t>(value >> 32), 0xFFFF'FFFFu);
    }
    put16(pci::reg::subsystem_vendor_id, p.vendor_id);
    put16(pci::reg::subsystem_id, L::subsystem_id);
    put8(pci::reg::capability_list, L::power_management);
    put8(pci::reg::interrupt_line, 0xFF, 0xFF);
    put8(pci::reg::interrupt_pin, 0x01);

    // Power management v3, D0, no soft reset.
    put8(L::power_management, pci::cap::power_management);
    put8(L::power_management + 1, L::msi);
    put16(L::power_management + 2, 0x0003);
    put16(L::power_management + 4, 0x0008);
    // MSI: 64-bit address, one vector (multiple message capable = 0), disabled.
    put8(L::msi, pci::cap::msi);
    put8(L::msi + 1, L::express);
    put16(L::msi + 2, 0x0080, 0x0071);
    put32(L::msi + 4, 0, 0xFFFF'FFFCu);
    put32(L::msi + 8, 0, 0xFFFF'FFFFu);
    put16(L::msi + 12, 0, 0xFFFF);
    // PCI Express v2, endpoint; 256-byte max payload; FLR when reset works;
    // link: 32 GT/s x16.
    put8(L::express, pci::cap::express);
    put8(L::express + 1, 0x00);
    put16(L::express + 2, 0x0002);
    put32(L::express_devcap, 0x0000'0001u | (p.flr_supported ? L::devcap_flr : 0u));
    put16(L::express_devctl, 0x0010, 0x7FFF);
    put32(L::express + 0x0C, 0x0000'0105u);
    put16(L::express_linkctl, 0x0000, 0x0FFF);
    put16(L::express_linkctl + 2, 0x0105);

    // The NVIDIA DVSEC: header (id 0x23, version 1, next), header 1 (vendor,
    // revision 0, length), header 2 (DVSEC id 3), then the capability word.
    // Extended capabilities start at 0x100: with no NVIDIA DVSEC, the CXL one
    // (or an empty header) is there instead.
    const std::uint16_t cxl_at = p.nvidia_dvsec ? L::cxl_dvsec : L::dvsec;
    if (p.nvidia_dvsec) {
      put32(L::dvsec, pci::encode_ext_cap_header({pci::ext_cap::dvsec, 1, p.cxl_dvsec ? cxl_at : std::uint16_t{0}}));
      put32(L::dvsec + 4, std::uint32_t{grace::nvidia_vendor_id} | (std::uint32_t{L::dvsec_length} << 20));
      put16(L::dvsec + 8, grace::gpu_cap_dvsec_id);
      put16(L::dvsec + grace::gpu_cap_dvsec_word,
            p.generation == grace::generation::blackwell ? grace::mig_supported_with_cached_resmem : 0);
    }
    if (p.cxl_dvsec) {
      // CXL device DVSEC, revision 1: the range registers the 7.2 driver reads.
      put32(cxl_at, pci::encode_ext_cap_header({pci::ext_cap::dvsec, 1, 0}));
      put32(cxl_at + 4, std::uint32_t{cxl_vendor_id} | (1u << 16) | (std::uint32_t{L::cxl_dvsec_length} << 20));
      put16(cxl_at + 8, cxl_device_dvsec_id);
    }
    cxl_status_at_ = p.cxl_dvsec ? static_cast<std::uint16_t>(cxl_at + cxl_range1_size_low) : std::uint16_t{0};
  }

public:
  /// Config offset of the CXL status dword (Range 1 Size Low); 0 when absent.
  [[nodiscard]] constexpr std::uint16_t cxl_status_offset() const noexcept { return cxl_status_at_; }

private:
  std::array<std::byte, size> bytes_{};
  std::array<std::byte, size> mask_{};
  std::array<core_bar, 6> bars_{};
  bool flr_supported_ = false;
  std::uint16_t cxl_status_at_ = 0;
};

}  // namespace nvgrace::shim
