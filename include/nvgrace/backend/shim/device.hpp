#pragma once
/// \file
/// The in-process nvgrace-gpu device (the "kernel shim"): answers read,
/// write, region info, reset and mmap like the driver's vfio_device_ops, with
/// real memory behind it and no system call on the access path. It implements
/// `vfio::device_file` directly, so the accessor and the conformance suite
/// run on it unchanged. Related headers: shim/options.hpp (what a device is
/// built from), shim/memory.hpp (what memory it can be built on),
/// shim/ioctl.hpp (the kernel's ioctl argument layouts), shim/test_hooks.hpp
/// (fault injection for tests); the state and behaviour behind the handle are
/// in shim/detail/device_core.hpp.
///
/// `device<Memory>` is a movable handle: `device<Memory>::create(options)`
/// gives a `result<device<Memory>>`, used as `dev->layout()`. The state lives
/// in one heap block, because the memory accessors hold its address.
///
/// What it models:
/// - probe (§2): ACPI memory properties → full variant with emulated BARs, or
///   plain vfio-pci (fallback ops) when they are missing or the size is 0; a
///   layout that cannot be derived fails `create` with the driver's errno;
/// - Hopper: region 2 = resmem (uncached), region 4 = usemem (cached), both
///   carved from one memory of `memlength` bytes at phys `memphys`;
///   Blackwell: region 4 = all memory, region 2 = a real 64-bit BAR;
///   plain: regions 2 and 4 are real 64-bit BARs; region 0 is always a 64-bit
///   16 MiB BAR holding the readiness registers (0x1498, 0x200BC = 0xFF),
///   read-only like the hardware status they model (writes skip their bytes);
/// - read/write (§3, §5), GET_REGION_INFO (§4), mmap (§6.1), reset,
///   readiness and runtime PM (§7), DMA-buf (§8), the intercepted ioctls (§9).
///
/// Mapping zaps and faults are modelled as decisions: a mapping made by
/// mmap() is real memory and never faults by itself; mapping_generation()
/// tells that the kernel would have zapped it, and fault() answers what the
/// kernel's handler (the driver's for emulated regions, vfio-pci-core's for
/// real BARs) would do on the next touch.
///
/// Not modelled: interrupts (SET_IRQS → ENOTTY), hot reset, poison handling,
/// and DMA-bufs as real files.
///
/// Thread safety (the driver's memory_lock, without a lock on the fast path):
/// - Device state that memory accesses consult — reset_done, memory decode
///   enabled, runtime-PM failure, and a reset epoch — lives in one atomic
///   word. A read or write loads it once (acquire) and never writes it,
///   except once after a successful readiness wait.
/// - Config space, the emulated BAR registers, reset, ioeventfds and the
///   DMA-buf record share one mutex (none of them is a hot path).
/// - Why this is equivalent to the rwsem: nothing that changes the state
///   word (reset, FLR, decode on/off, PM) touches device memory. So a memory
///   access concurrent with such a change can be placed entirely before it
///   (if its load saw the old state) or after it (new state); its bytes are
///   the same either way. The one write a reader makes — clearing reset_done
///   after a successful wait — is a compare-exchange that only succeeds if
///   the reset epoch is unchanged: if a reset came in during the wait, its
///   reset_done stays set and the next access waits again, exactly as when
///   the kernel's reset waits for the reader to drop memory_lock.
/// - Uncached memory (resmem, BAR0) is touched only with naturally aligned
///   8/4/2/1-byte volatile accesses (mem/copy.hpp), so no aligned access is torn.
/// Region tables and the layout are immutable after create().
///
/// The hot paths are inline at the caller (see fast_access): a naturally
/// aligned access of 1, 2, 4 or 8 bytes wholly inside an emulated region's
/// real memory, on an idle device, is one compare of the region index (which
/// picks the region's window by a branch, not an indexed load), one load of
/// the state word, one test of shape, state and bounds, and one move; any
/// other access of an idle device that needs no clipping is the memcpy (and
/// memset) the copy path would make. Padding on uncached memory costs one
/// call; clipping, EINVAL, PM, readiness and the resmem short return take the
/// full grace::plan_access path out of line. docs/performance.md has the
/// instruction counts and the timings.

#include <nvgrace/backend/shim/config_space.hpp>
#include <nvgrace/backend/shim/detail/device_core.hpp>
#include <nvgrace/backend/shim/memory.hpp>
#include <nvgrace/backend/shim/options.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/detail/owned.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/mmap.hpp>
#include <nvgrace/mem/device_memory.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace nvgrace::shim {

struct test_hooks;

/// The in-process device: a movable handle to its state (see the file comment).
template <creatable_memory Memory>
class device {
  using core = detail::device_core<Memory>;

public:
  using memory_type = Memory;

  device(device&&) noexcept = default;
  device& operator=(device&&) noexcept = default;

  /// Probe and open a device: derive the layout (a failure is the probe's
  /// errno: EINVAL/EOVERFLOW on Hopper with < 1.5 GiB), allocate the memories,
  /// build config space, zero the emulated BARs and attempt the open-time
  /// function reset (which sets reset_done when reset works, so the first
  /// memory access polls readiness). Errors: those of check_options; ENOMEM
  /// when the device cannot be allocated; the memory's own errors.
  [[nodiscard]] static result<device> create(const device_options& options = {}) noexcept {
    return wrap(core::create(options));
  }
  /// As create(options), but the GPU memory (both emulated regions) is
  /// `gpu_memory` instead of memory the device allocates: a file that outlives
  /// the process, or memory shared with someone else. EINVAL when the options
  /// describe no GPU memory (plain mode) or `gpu_memory`'s length differs from
  /// the ACPI size.
  [[nodiscard]] static result<device> create(const device_options& options, Memory gpu_memory) noexcept {
    return wrap(core::create(options, std::move(gpu_memory)));
  }
  /// The checks create() makes before it allocates anything: ENODEV for a
  /// device id outside the driver's table; EINVAL for a BAR size that is not 0
  /// or a power of two ≥ 4 KiB; the layout's errno when the ACPI memory
  /// cannot be carved up; EOVERFLOW for a BAR beyond the 2^40-byte region
  /// window (Blackwell memory above 1 TiB, Hopper above 1 TiB + 1 GiB);
  /// EINVAL for emulated memory below 4 KiB (Blackwell).
  [[nodiscard]] static status check_options(const device_options& options) noexcept {
    return core::check_options(options);
  }

  // ---- identity -------------------------------------------------------------------

  /// Full variant (emulated BARs) or plain vfio-pci.
  [[nodiscard]] grace::mode mode() const noexcept { return core_->mode(); }
  [[nodiscard]] grace::generation generation() const noexcept { return core_->generation(); }
  [[nodiscard]] std::uint16_t device_id() const noexcept { return core_->device_id(); }
  /// The carve-up in the full variant; nullopt in plain mode.
  [[nodiscard]] std::optional<grace::layout> layout() const noexcept { return core_->layout(); }
  [[nodiscard]] const device_options& options() const noexcept { return core_->options(); }
  [[nodiscard]] region_kind kind(std::uint32_t index) const noexcept { return core_->kind(index); }

  // ---- the driver's file operations ------------------------------------------------

  /// The driver's read: a count or −errno; `*ppos` advances as the kernel's does.
  [[nodiscard, gnu::always_inline]] ssize_t read(void* buf, std::size_t count, std::uint64_t* ppos) noexcept {
    return core_->read(buf, count, ppos);
  }
  /// The driver's write; as read.
  [[nodiscard, gnu::always_inline]] ssize_t write(const void* buf, std::size_t count, std::uint64_t* ppos) noexcept {
    return core_->write(buf, count, ppos);
  }

  // ---- vfio::device_file ------------------------------------------------------------

  /// VFIO_DEVICE_GET_INFO: flags PCI (| RESET when reset works), 9 regions, 5 IRQ indices.
  [[nodiscard]] result<vfio::device_info> get_device_info() noexcept { return core_->get_device_info(); }
  /// VFIO_DEVICE_GET_REGION_INFO on `buffer`, byte for byte as the kernel replies.
  [[nodiscard]] status get_region_info(std::span<std::byte> buffer) noexcept { return core_->get_region_info(buffer); }
  /// VFIO_DEVICE_GET_IRQ_INFO.
  [[nodiscard]] status get_irq_info(vfio::irq_info& info) noexcept { return core_->get_irq_info(info); }
  /// VFIO_DEVICE_RESET: the emulated BARs are zeroed first, then the function reset.
  [[nodiscard]] status reset() noexcept { return core_->reset(); }
  /// pread(2) on the device file.
  [[nodiscard, gnu::always_inline]] result<std::size_t> pread(std::span<std::byte> buffer, std::uint64_t pos) noexcept {
    return core_->pread(buffer, pos);
  }
  /// pwrite(2) on the device file.
  [[nodiscard, gnu::always_inline]] result<std::size_t> pwrite(std::span<const std::byte> data,
                                                               std::uint64_t pos) noexcept {
    return core_->pwrite(data, pos);
  }
  /// mmap(2) of the device file (MAP_SHARED; MAP_FIXED at `addr` when non-null).
  [[nodiscard]] result<void*> mmap(void* addr, std::uint64_t length, int prot, std::uint64_t pos) noexcept {
    return core_->mmap(addr, length, prot, pos);
  }
  /// The checks of mmap() without mapping.
  [[nodiscard]] result<grace::mmap_plan> plan_mmap(std::uint64_t pos, std::uint64_t length) const noexcept {
    return core_->plan_mmap(pos, length);
  }

  // ---- the rest of the ioctl surface --------------------------------------------------

  /// VFIO_DEVICE_IOEVENTFD after the ioctl's own checks (see shim/ioctl.hpp).
  [[nodiscard]] status ioeventfd(std::uint64_t file_offset, std::uint64_t data, std::uint32_t size, int fd) noexcept {
    return core_->ioeventfd(file_offset, data, size, fd);
  }
  /// A DMA-buf export after the vfio core's checks (see shim/ioctl.hpp).
  [[nodiscard]] result<int> export_dma_buf(std::uint32_t region_index, std::uint32_t open_flags,
                                           std::span<const vfio::region_dma_range> ranges) noexcept {
    return core_->export_dma_buf(region_index, open_flags, ranges);
  }

  // ---- memory and state, for servers and tests ----------------------------------------

  /// Where region `index`'s memory can be mapped from (fd + offset), if it can
  /// (never BAR0: its readiness registers stay read-only to other processes).
  [[nodiscard]] std::optional<mem::map_source> region_source(std::uint32_t index) const noexcept {
    return core_->region_source(index);
  }
  /// The memory behind region `index` as the copy path sees it; nullopt when none.
  [[nodiscard]] std::optional<mem::memory_view> region_memory(std::uint32_t index) const noexcept {
    return core_->region_memory(index);
  }
  /// How the driver touches region `index`'s memory; nullopt when it has none.
  [[nodiscard]] std::optional<mem::caching> region_caching(std::uint32_t index) const noexcept {
    return core_->region_caching(index);
  }
  /// The whole GPU memory (both emulated regions); empty in plain mode.
  [[nodiscard]] const Memory& gpu_memory() const noexcept { return core_->gpu_memory(); }
  /// A 32-bit BAR0 register as the function holds it (no readiness, no decode check).
  [[nodiscard]] std::uint32_t bar0_register(std::uint64_t offset) const noexcept {
    return core_->bar0_register(offset);
  }
  /// Close the device file (DMA-bufs revoked for good, mappings gone; every
  /// later call but open() is EBADF).
  void close() noexcept { core_->close(); }
  /// Open it again: config space rebuilt, emulated BARs zeroed, a function
  /// reset attempted; EBUSY for every re-open of the fallback variant.
  [[nodiscard]] status open() noexcept { return core_->open(); }
  /// close() then open().
  [[nodiscard]] status reopen() noexcept { return core_->reopen(); }
  [[nodiscard]] bool is_closed() const noexcept { return core_->is_closed(); }
  /// The DMA-buf exports not released yet.
  [[nodiscard]] std::vector<dma_buf_export> dma_bufs() const { return core_->dma_bufs(); }
  /// The importer closed DMA-buf `fd`.
  [[nodiscard]] status release_dma_buf(int fd) noexcept { return core_->release_dma_buf(fd); }
  /// What the vfio core does before any device ioctl: EBADF when closed, EIO
  /// when runtime-PM resume fails, a wake-up from a low power state entered
  /// with a wake-up eventfd. The typed calls do it themselves; shim::ioctl
  /// does it once first, as the core does, so its errno comes first.
  [[nodiscard]] status begin_ioctl() noexcept { return core_->ioctl_entry(); }
  /// LOW_POWER_ENTRY (wakeup_fd -1) or _WITH_WAKEUP.
  [[nodiscard]] status low_power_entry(int wakeup_fd = -1) noexcept { return core_->low_power_entry(wakeup_fd); }
  /// LOW_POWER_EXIT.
  [[nodiscard]] status low_power_exit() noexcept { return core_->low_power_exit(); }
  [[nodiscard]] bool low_power() const noexcept { return core_->low_power(); }
  /// Bumped whenever the user mappings are zapped (see device_core::fault).
  [[nodiscard]] std::uint64_t mapping_generation() const noexcept { return core_->mapping_generation(); }
  /// The fault handler's decision for a touch of mapping `v` at `address`.
  [[nodiscard]] grace::fault_decision fault(const grace::vma& v, std::uint64_t address, unsigned order,
                                            grace::huge_pfnmap platform = {}) noexcept {
    return core_->fault(v, address, order, platform);
  }
  /// The next memory access will poll readiness.
  [[nodiscard]] bool reset_done() const noexcept { return core_->reset_done(); }
  /// COMMAND.MEMORY in the virtual config.
  [[nodiscard]] bool memory_enabled() const noexcept { return core_->memory_enabled(); }
  /// Resets (VFIO_DEVICE_RESET, FLR, open) that succeeded so far.
  [[nodiscard]] std::uint32_t reset_count() const noexcept { return core_->reset_count(); }
  /// The raw (unmasked) value of emulated BAR register `index` (2 or 4).
  [[nodiscard]] std::uint64_t emulated_bar_raw(std::uint32_t index) const noexcept {
    return core_->emulated_bar_raw(index);
  }
  /// The last DMA-buf export still recorded, if any.
  [[nodiscard]] std::optional<dma_buf_export> last_dma_buf() const { return core_->last_dma_buf(); }
  /// The ioeventfds stored (plain mode).
  [[nodiscard]] std::size_t ioeventfd_count() const noexcept { return core_->ioeventfd_count(); }
  /// The whole config space as a read of 4096 bytes at offset 0 returns it.
  [[nodiscard]] std::array<std::byte, config_space::size> config_snapshot() const noexcept {
    return core_->config_snapshot();
  }

private:
  friend struct test_hooks;

  explicit device(nvgrace::detail::owned<core> c) noexcept : core_(std::move(c)) {}
  [[nodiscard]] static result<device> wrap(result<nvgrace::detail::owned<core>> made) noexcept {
    if (!made) return made.error();
    return device(std::move(*made));
  }

  nvgrace::detail::owned<core> core_;
};

}  // namespace nvgrace::shim
