#pragma once
/// \file
/// What the in-process device is built from: its options, the presets for Grace
/// Hopper, Grace Blackwell and the plain (fallback) function, and the plain
/// records the device hands out. No locks and no system headers: a VMM that
/// only describes devices includes this alone.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/access_plan.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/dma_buf.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/layout.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace nvgrace::shim {

/// The size of BAR0 (a 64-bit, non-prefetchable memory BAR).
inline constexpr std::uint64_t bar0_size = 16 * MiB;
/// Physical base the helpers give the GPU memory (the spec's examples use it).
inline constexpr std::uint64_t default_memory_base = 0x4000'0000'0000;
/// Bus address of BAR0; the other real BARs follow it, each aligned to its size.
inline constexpr std::uint64_t default_bar0_address = 0x6600'0000'0000;
/// The kernel's MAX_RW_COUNT: read/write never move more in one call.
inline constexpr std::size_t max_rw_count = 0x7FFF'F000;
/// Most ranges one DMA-buf request may carry (the record has a fixed
/// capacity; more → ENOMEM, the kernel's code for a failed allocation).
inline constexpr std::uint32_t max_dma_buf_ranges = 32;
/// Most ioeventfds a plain-mode device stores (more → ENOSPC).
inline constexpr std::size_t max_ioeventfds = 64;
/// The first fake file-descriptor number a DMA-buf export returns.
inline constexpr int first_dma_buf_fd = 1000;
/// VFIO_DEVICE_IOEVENTFD_SIZE_MASK: one of 1, 2, 4, 8 in the low flag bits.
inline constexpr std::uint32_t ioeventfd_size_mask = 0xF;

/// How the device is built.
struct device_options {
  /// The ACPI _DSD properties (§2.1): absent, or size 0 → plain vfio-pci.
  grace::acpi_properties acpi{};
  /// Grace Hopper (1 GiB uncached carve-out) or Blackwell; also written into
  /// the DVSEC so that grace::generation_from_config agrees.
  grace::generation generation = grace::generation::hopper;
  /// PCI device id; nullopt → 0x2342 (GH200) for Hopper, 0x2941 (GB200) for
  /// Blackwell. Must be in grace::known_devices (else ENODEV).
  std::optional<std::uint16_t> device_id;
  /// Which kernel's usemem BAR sizing (§10 E1).
  grace::kernel_rule rule = grace::kernel_rule::current;
  /// resmem reads/writes that reach memory: the documented full count (the
  /// default, as in grace::plan_access) or upstream's short return, which is
  /// what the driver actually does and probably a bug (§5.1, §10 E7).
  grace::resmem_return resmem_quirk = grace::resmem_return::documented;
  /// Size of the real BAR at region 2 (plain mode and Blackwell) and at
  /// region 4 (plain mode): a power of two ≥ 4 KiB, or 0 for no BAR.
  std::uint64_t bar2_size = 16 * MiB;
  std::uint64_t bar4_size = 16 * MiB;
  /// Whether the function can be reset (FLR): DEVICE_GET_INFO's RESET flag;
  /// VFIO_DEVICE_RESET is EINVAL without it.
  bool reset_supported = true;
};

/// Options for a Grace Hopper device with `memlength` bytes of GPU memory at
/// `memphys` (96 GiB on real hardware; any length ≥ 1.5 GiB works, the
/// memory is sparse).
[[nodiscard]] constexpr device_options hopper(std::uint64_t memlength,
                                              std::uint64_t memphys = default_memory_base) noexcept {
  device_options o;
  o.acpi = {memphys, memlength};
  o.generation = grace::generation::hopper;
  return o;
}
/// Options for a Grace Blackwell device (no carve-out; region 2 is a real BAR).
[[nodiscard]] constexpr device_options blackwell(std::uint64_t memlength, std::uint64_t bar2_size = 16 * MiB,
                                                 std::uint64_t memphys = default_memory_base) noexcept {
  device_options o;
  o.acpi = {memphys, memlength};
  o.generation = grace::generation::blackwell;
  o.bar2_size = bar2_size;
  return o;
}
/// Options for the fallback: no usable ACPI memory, plain vfio-pci.
[[nodiscard]] constexpr device_options plain(std::uint64_t bar2_size = 16 * MiB,
                                             std::uint64_t bar4_size = 16 * MiB) noexcept {
  device_options o;
  o.bar2_size = bar2_size;
  o.bar4_size = bar4_size;
  return o;
}

/// What a region index is in this device.
enum class region_kind : std::uint8_t {
  unimplemented,  ///< region info size 0, flags 0; every access EINVAL (BAR1/3/5, ROM)
  emulated,       ///< a Grace memory region behind a fake BAR (§5)
  memory_bar,     ///< a real memory BAR handled by vfio-pci-core
  config,         ///< PCI config space (index 7)
  vga,            ///< absent: region info EINVAL (not a VGA device)
};

/// The record of a DMA-buf export (there is no real dma-buf file: the ioctl
/// returns a fake fd number and the ranges are kept here).
struct dma_buf_export {
  int fd = -1;
  std::uint32_t region_index = 0;
  std::uint32_t open_flags = 0;
  bool revoked = false;  ///< exported while memory decode was off
  std::array<grace::phys_range, max_dma_buf_ranges> ranges{};
  std::uint32_t range_count = 0;

  [[nodiscard]] constexpr std::span<const grace::phys_range> phys_ranges() const noexcept {
    return std::span<const grace::phys_range>(ranges).first(range_count);
  }
};

/// A stored ioeventfd (plain mode only).
struct ioeventfd_entry {
  std::uint32_t index = 0;
  std::uint64_t offset = 0;  ///< inside the BAR
  std::uint64_t data = 0;
  std::uint32_t size = 0;
  int fd = -1;
};


}  // namespace nvgrace::shim
