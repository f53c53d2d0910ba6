#pragma once
/// \file
/// What the in-process device is built from: its options, the presets for Grace
/// Hopper, Grace Blackwell and the plain (fallback) function, and the plain
/// records the device hands out. No locks and no system headers: a VMM that
/// only describes devices includes this alone.

#include <nvgrace/backend/shim/readiness.hpp>
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
#include <vector>

namespace nvgrace::shim {

/// The size of BAR0 (a 64-bit, non-prefetchable memory BAR).
inline constexpr std::uint64_t bar0_size = 16 * MiB;
/// Physical base the helpers give the GPU memory (the spec's examples use it).
inline constexpr std::uint64_t default_memory_base = 0x4000'0000'0000;
/// Bus address of BAR0; the other real BARs follow it, each aligned to its size.
inline constexpr std::uint64_t default_bar0_address = 0x6600'0000'0000;
/// The kernel's MAX_RW_COUNT: read/write never move more in one call.
inline constexpr std::size_t max_rw_count = 0x7FFF'F000;
/// The largest array of ranges the kernel copies in for one DMA-buf request:
/// its kmalloc limit (KMALLOC_MAX_SIZE with 4 KiB pages, 4 MiB); more is
/// ENOMEM, as the kernel's allocation fails. There is no other cap.
inline constexpr std::uint64_t max_dma_buf_range_bytes = 4 * MiB;
/// Most ioeventfds a plain-mode device stores (more → ENOSPC).
inline constexpr std::size_t max_ioeventfds = 64;
/// The first fake file-descriptor number a DMA-buf export returns.
inline constexpr int first_dma_buf_fd = 1000;
/// VFIO_DEVICE_IOEVENTFD_SIZE_MASK: one of 1, 2, 4, 8 in the low flag bits.
inline constexpr std::uint32_t ioeventfd_size_mask = 0xF;

/// How the function's BAR0 readiness registers (C2C link at 0x1498, HBM
/// training at 0x200BC) behave: they read 0xFF ("ready") from
/// `ready_after_ms` milliseconds after each reset of the function (and after
/// it was created), and 0 before; nullopt: never ready (the C2C link stays
/// down). The clock is the device's readiness source.
struct bar0_readiness {
  std::optional<std::uint64_t> ready_after_ms = 0;
  friend constexpr bool operator==(const bar0_readiness&, const bar0_readiness&) = default;
};

/// A CXL device DVSEC (vendor 0x1E98, id 0) in extended config space, whose
/// Range 1 Size Low register the 7.2 driver polls instead of BAR0:
/// MEM_INFO_VALID (bit 0) from `valid_after_ms` and MEM_ACTIVE (bit 1) from
/// `active_after_ms` after each reset (nullopt: never), with the
/// Memory_Active_Timeout field (bits 15:13) set to `active_timeout`; or all
/// ones when the function is gone (`gone`).
struct cxl_readiness {
  std::uint8_t active_timeout = 0;  ///< 0..7: 1 s << 2·min(t, 4)
  std::optional<std::uint64_t> valid_after_ms = 0;
  std::optional<std::uint64_t> active_after_ms = 0;
  bool gone = false;
  friend constexpr bool operator==(const cxl_readiness&, const cxl_readiness&) = default;
};

/// Whether the BAR0 readiness registers read "ready" `elapsed_ms` after a reset.
[[nodiscard]] constexpr bool bar0_ready(const bar0_readiness& r, std::uint64_t elapsed_ms) noexcept {
  return r.ready_after_ms && elapsed_ms >= *r.ready_after_ms;
}

/// The CXL Range 1 Size Low register `elapsed_ms` after a reset.
[[nodiscard]] constexpr std::uint32_t cxl_status_after(const cxl_readiness& c, std::uint64_t elapsed_ms) noexcept {
  if (c.gone) return 0xFFFF'FFFFu;
  std::uint32_t status = std::uint32_t{c.active_timeout & 0x7u} << cxl_active_timeout_shift;
  if (c.valid_after_ms && elapsed_ms >= *c.valid_after_ms) status |= cxl_mem_info_valid;
  if (c.active_after_ms && elapsed_ms >= *c.active_after_ms) status |= cxl_mem_active;
  return status;
}

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
  /// Sizes of the function's own BAR2 and BAR4: regions 2 (plain mode and
  /// Blackwell) and 4 (plain mode); where the driver emulates the region they
  /// are still in config space, which reads them where the emulation does not
  /// patch (E2, E4). A power of two ≥ 4 KiB, or 0 for no BAR.
  std::uint64_t bar2_size = 16 * MiB;
  std::uint64_t bar4_size = 16 * MiB;
  /// Whether the function can be reset (FLR): DEVICE_GET_INFO's RESET flag;
  /// VFIO_DEVICE_RESET is EINVAL without it.
  bool reset_supported = true;
  /// The NVIDIA DVSEC is in config space (without it the driver treats every
  /// device as Hopper, whatever `generation` says).
  bool nvidia_dvsec = true;
  /// The BAR0 readiness registers (the legacy readiness path).
  bar0_readiness readiness{};
  /// A CXL device DVSEC: the 7.2 driver then waits on it instead of BAR0.
  std::optional<cxl_readiness> cxl;
  /// The registers and the clock of the device's readiness checks, from the
  /// probe on; nullptr: its own BAR0 (or CXL DVSEC) and the monotonic clock.
  /// Must outlive the device.
  readiness_source* readiness_clock = nullptr;

  /// The bare PCI function as the host sees it before any driver (no ACPI
  /// memory, no driver rules: no probe wait, no readiness on access, any
  /// number of opens): the "hardware" a vfio-user server shows a guest whose
  /// own kernel runs the nvgrace-gpu driver. See physical().
  bool bare_function = false;

  /// The generation the driver decides: Hopper without the NVIDIA DVSEC.
  [[nodiscard]] constexpr grace::generation driver_generation() const noexcept {
    return nvidia_dvsec ? generation : grace::generation::hopper;
  }
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
/// Options for the bare PCI function of a Grace GPU (see
/// device_options::bare_function): a 64-bit 16 MiB BAR0 with the readiness
/// registers, the function's own small BAR2 and BAR4, a PCIe capability with
/// FLR, and the NVIDIA DVSEC telling the generation. The GPU memory is not
/// here: the firmware describes it (ACPI) and it is host memory.
[[nodiscard]] constexpr device_options physical(grace::generation gen, std::uint64_t bar2_size = 64 * KiB,
                                                std::uint64_t bar4_size = 64 * KiB) noexcept {
  device_options o;
  o.generation = gen;
  o.bar2_size = bar2_size;
  o.bar4_size = bar4_size;
  o.bare_function = true;
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
  /// Importers may not use it now: memory decode off (also at export), a reset
  /// under way, runtime PM engaged, or the device closed.
  bool revoked = false;
  /// The device was closed: revoked for good, detached from the device.
  bool detached = false;
  std::vector<grace::phys_range> ranges;

  [[nodiscard]] std::span<const grace::phys_range> phys_ranges() const noexcept { return ranges; }
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
