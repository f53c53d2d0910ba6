#pragma once
/// \file
/// The in-process device's state and behaviour (`shim::detail::device_core`):
/// what `shim::device` (backend/shim/device.hpp, which documents what is
/// modelled, the thread safety and the hot paths) is a movable handle to.
/// Internal: include backend/shim/device.hpp.

#include <nvgrace/backend/shim/config_space.hpp>
#include <nvgrace/backend/shim/memory.hpp>
#include <nvgrace/backend/shim/options.hpp>
#include <nvgrace/backend/shim/readiness.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/detail/atomic.hpp>
#include <nvgrace/detail/minmax.hpp>
#include <nvgrace/detail/owned.hpp>
#include <nvgrace/grace/access_plan.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/bar_emulation.hpp>
#include <nvgrace/grace/dma_buf.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/mmap.hpp>
#include <nvgrace/grace/region_info.hpp>
#include <nvgrace/mem/copy.hpp>
#include <nvgrace/mem/device_memory.hpp>
#include <nvgrace/posix/clock.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/posix/mutex.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/dma_buf.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace nvgrace::shim {

struct test_hooks;
template <creatable_memory Memory>
class device;

namespace detail {

[[nodiscard]] constexpr ssize_t negative(errc e) noexcept { return -static_cast<ssize_t>(e); }

/// One region index, fixed at create().
template <class Memory>
struct region_slot {
  region_kind kind = region_kind::unimplemented;
  bool is_resmem = false;
  grace::memregion model{};  ///< emulated: phys base, real length, reported size
  mem::memory_view view{};   ///< the memory behind the region (real length, or the BAR size)
  std::uint64_t size = 0;    ///< what region info reports
  std::uint64_t phys = 0;    ///< physical / bus address of byte 0 (DMA-buf)
  const Memory* backing = nullptr;
  std::uint64_t backing_offset = 0;  ///< view.base − backing->view().base
};

/// Where the fast tiers' data (the state word and the region windows) sit in
/// the device's 4 KiB-aligned object: 256 bytes in, so the last stores of a
/// copy that starts and ends on 1 KiB boundaries never share their page
/// offset (see docs/performance.md, "4 KiB aliasing").
inline constexpr std::size_t fast_data_page_offset = 256;
inline constexpr std::size_t fast_data_alignment = 4096;

/// The device's state and behaviour; `device` is its movable handle.
template <creatable_memory Memory>
class alignas(fast_data_alignment) device_core {
  using mo = nvgrace::detail::order;  // memory orders
  friend class shim::device<Memory>;

public:
  using memory_type = Memory;

  device_core(const device_core&) = delete;
  device_core& operator=(const device_core&) = delete;
  device_core(device_core&&) = delete;
  device_core& operator=(device_core&&) = delete;
  ~device_core() = default;

  /// Probe and open a device (§2.1, §7.5): derive the layout (a failure is
  /// the probe's errno: EINVAL/EOVERFLOW on Hopper with < 1.5 GiB), allocate
  /// the memories, build config space, zero the emulated BARs and attempt the
  /// open-time function reset (which sets reset_done when reset works, so the
  /// first memory access polls readiness). Errors: those of check_options;
  /// ENOMEM when the device object cannot be allocated; the memory's own errors.
  [[nodiscard]] static result<nvgrace::detail::owned<device_core>> create(const device_options& options = {}) noexcept {
    return open_with(options, nullptr);
  }

  /// As create(options), but the GPU memory (both emulated regions) is
  /// `gpu_memory` instead of memory the device allocates: a file that outlives
  /// the process (mem::memfd_memory::open_file), or memory shared with
  /// someone else. The device takes it over; BAR0 and real BARs are still
  /// allocated with Memory::create. Errors: as create(options); EINVAL when the
  /// options describe no GPU memory (plain vfio-pci: the ACPI size is absent
  /// or 0) or `gpu_memory`'s length differs from the ACPI gpu_mem_size.
  [[nodiscard]] static result<nvgrace::detail::owned<device_core>> create(const device_options& options,
                                                                          Memory gpu_memory) noexcept {
    return open_with(options, &gpu_memory);
  }

  /// The checks create() makes before it allocates anything: ENODEV for a
  /// device id outside the driver's table; EINVAL for a BAR size that is not 0
  /// or a power of two ≥ 4 KiB; the layout's errno when the ACPI memory
  /// cannot be carved up (EINVAL/EOVERFLOW on Hopper with < 1.5 GiB, §2.3);
  /// EOVERFLOW for a BAR (real or emulated) larger than a region's 2^40-byte
  /// offset window (VFIO puts region N at N << 40, so its bytes would spill
  /// into the next region: Hopper above 1 TiB + 1 GiB, Blackwell above 1 TiB);
  /// EINVAL for an emulated region with less than 4 KiB of memory (Blackwell
  /// below 4 KiB: its sparse area could not hold one mappable page, and its
  /// BAR would be smaller than any real BAR may be).
  /// Lets a caller validate options before it prepares memory for them.
  [[nodiscard]] static status check_options(const device_options& options) noexcept {
    const auto probed = probe_options(options);
    if (!probed) return probed.error();
    return {};
  }

  // ---- identity -------------------------------------------------------------------

  /// Full variant (emulated BARs) or plain vfio-pci.
  [[nodiscard]] grace::mode mode() const noexcept { return mode_; }
  [[nodiscard]] grace::generation generation() const noexcept { return options_.generation; }
  [[nodiscard]] std::uint16_t device_id() const noexcept { return device_id_; }
  /// The carve-up in the full variant; nullopt in plain mode.
  [[nodiscard]] std::optional<grace::layout> layout() const noexcept {
    if (mode_ != grace::mode::emulated) return std::nullopt;
    return layout_;
  }
  [[nodiscard]] const device_options& options() const noexcept { return options_; }
  [[nodiscard]] region_kind kind(std::uint32_t index) const noexcept {
    return index < vfio::pci_num_regions ? regions_[index].kind : region_kind::vga;
  }

  // ---- kernel-style file operations -----------------------------------------------

  /// The driver's read: a count or −errno; `*ppos` advances as the kernel's
  /// does (§3.2, §5.1, and vfio-pci-core for the other regions).
  [[nodiscard, gnu::always_inline]] ssize_t read(void* buf, std::size_t count, std::uint64_t* ppos) noexcept {
    return tiered_access<grace::direction::read>(static_cast<std::byte*>(buf), count, ppos);
  }

  /// The driver's write; as read (§3.3, §5.2).
  [[nodiscard, gnu::always_inline]] ssize_t write(const void* buf, std::size_t count, std::uint64_t* ppos) noexcept {
    return tiered_access<grace::direction::write>(static_cast<const std::byte*>(buf), count, ppos);
  }

  // ---- vfio::device_file --------------------------------------------------------

  /// VFIO_DEVICE_GET_INFO as a 20-byte reply: flags PCI (| RESET when reset
  /// works), 9 regions, 5 IRQ indices, no capabilities.
  [[nodiscard]] result<vfio::device_info> get_device_info() noexcept {
    if (auto s = ioctl_entry(); !s) return s.error();
    return vfio::device_info{sizeof(vfio::device_info), device_flags(), vfio::pci_num_regions, vfio::pci_num_irqs, 0};
  }

  /// VFIO_DEVICE_GET_REGION_INFO on `buffer` (argsz and index set by the
  /// caller), byte for byte as the kernel replies. EFAULT when the buffer
  /// cannot hold 32 bytes or its argsz claims more than its size (the kernel
  /// would touch memory past it); EINVAL for argsz < 32, an index ≥ 9 or VGA.
  [[nodiscard]] status get_region_info(std::span<std::byte> buffer) noexcept {
    if (auto s = ioctl_entry(); !s) return s;
    if (buffer.size() < vfio::region_info_size) return errc::bad_address;
    if (load_le<std::uint32_t>(buffer, 0) > buffer.size()) return errc::bad_address;
    return region_info_into(buffer);
  }

  /// VFIO_DEVICE_GET_IRQ_INFO: EINVAL for argsz < 16 or index ≥ 5. INTx 1
  /// (pin INTA; EVENTFD|MASKABLE|AUTOMASKED), MSI 1 (one vector), MSI-X 0
  /// (no capability), ERR 1 (PCI Express), REQ 1; all but INTx EVENTFD|NORESIZE.
  [[nodiscard]] status get_irq_info(vfio::irq_info& info) noexcept {
    if (auto s = ioctl_entry(); !s) return s;
    if (info.argsz < sizeof(vfio::irq_info) || info.index >= vfio::pci_num_irqs) return errc::invalid_argument;
    constexpr std::array<std::uint32_t, vfio::pci_num_irqs> counts{1, 1, 0, 1, 1};
    info.count = counts[info.index];
    info.flags = vfio::irq_flags::eventfd;
    if (info.index == static_cast<std::uint32_t>(vfio::irq::intx))
      info.flags |= vfio::irq_flags::maskable | vfio::irq_flags::automasked;
    else
      info.flags |= vfio::irq_flags::noresize;
    return {};
  }

  /// VFIO_DEVICE_RESET: the vfio core's runtime-PM get first (its failure is
  /// EIO before the driver runs, so nothing is zeroed); then both emulated BARs
  /// are zeroed (even if what follows fails), then the core reset: EINVAL when
  /// reset is not supported, an injected failure as injected; success sets
  /// reset_done.
  [[nodiscard]] status reset() noexcept {
    if (auto s = ioctl_entry(); !s) return s;
    posix::lock_guard lock(control_);
    if (mode_ == grace::mode::emulated) bars_.reset();
    if (!options_.reset_supported) return errc::invalid_argument;
    return core_reset();
  }

  /// pread(2) on the device file: read() at `pos`. EINVAL for pos ≥ 2^63.
  [[nodiscard, gnu::always_inline]] result<std::size_t> pread(std::span<std::byte> buffer, std::uint64_t pos) noexcept {
    return tiered_positioned<grace::direction::read>(buffer.data(), buffer.size(), pos);
  }

  /// pwrite(2) on the device file: write() at `pos`.
  [[nodiscard, gnu::always_inline]] result<std::size_t> pwrite(std::span<const std::byte> data,
                                                               std::uint64_t pos) noexcept {
    return tiered_positioned<grace::direction::write>(data.data(), data.size(), pos);
  }

  /// mmap(2) of the device file: MAP_SHARED (MAP_FIXED at `addr` when
  /// non-null) of `length` bytes (rounded up to pages) at file offset `pos`.
  /// The memory backend is mapped for real (its fd at the right offset).
  /// EINVAL: length 0, pos not page-aligned, a region that cannot be mapped,
  /// a mapping past the real memory (§6.1) or past a real BAR; EOVERFLOW:
  /// the end overflows; ENOMEM: the length cannot be page-rounded; ENODEV:
  /// the memory type has no fd; otherwise mmap's errno.
  [[nodiscard]] result<void*> mmap(void* addr, std::uint64_t length, int prot, std::uint64_t pos) noexcept {
    const auto plan = plan_mmap(pos, length);
    if (!plan) return plan.error();
    if constexpr (!mem::mappable_memory<Memory>) {
      static_cast<void>(addr);
      static_cast<void>(prot);
      return errc::no_such_device;
    } else {
      const slot& r = regions_[vfio::region_index_of(pos)];
      const mem::map_source source = r.backing->source();
      const std::uint64_t file_offset = source.offset + r.backing_offset + plan->region_offset;
      if (file_offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return errc::value_too_large;
      void* p = ::mmap(addr, static_cast<std::size_t>(plan->length), prot,
                       MAP_SHARED | (addr != nullptr ? MAP_FIXED : 0), source.fd, static_cast<off_t>(file_offset));
      if (p == MAP_FAILED) return posix::last_error();
      return p;
    }
  }

  /// The checks of mmap() without mapping: which bytes of the region a
  /// mapping of `length` at `pos` covers (length rounded up to pages) and
  /// whether the driver maps them write-combine (resmem, §6.1 step 4).
  [[nodiscard]] result<grace::mmap_plan> plan_mmap(std::uint64_t pos, std::uint64_t length) const noexcept {
    const std::uint64_t page = posix::page_size();
    if (length == 0 || !is_aligned(pos, page)) return errc::invalid_argument;
    const auto rounded = checked_add(length, page - 1);
    if (!rounded) return errc::not_enough_memory;
    const std::uint64_t mapped_length = align_down(*rounded, page);
    const std::uint32_t index = vfio::region_index_of(pos);
    if (index >= vfio::pci_num_regions) return errc::invalid_argument;
    const slot& r = regions_[index];
    const std::uint64_t offset = vfio::offset_in_region(pos);
    if (r.kind == region_kind::emulated) {
      return grace::check_mmap(r.model, r.is_resmem, offset / page, mapped_length,
                               static_cast<unsigned>(std::countr_zero(page)), options_.rule);
    }
    if (r.kind == region_kind::memory_bar) {
      // vfio-pci-core: req_start + req_len must not pass the page-aligned BAR.
      const auto end = checked_add(offset, mapped_length);
      if (!end || *end > r.size) return errc::invalid_argument;
      // vfio-pci-core's own mmap inserts on fault under every rule modelled.
      return grace::mmap_plan{offset, mapped_length, false, grace::stage2_memory::device, false};
    }
    return errc::invalid_argument;
  }

  // ---- memory and state, for servers and tests --------------------------------------

  /// Where region `index`'s memory (its sparse area starting at region
  /// offset 0) can be mapped from: fd + offset. nullopt for regions without
  /// memory, a memory type without an fd, and BAR0 (its readiness registers
  /// must stay read-only to whoever gets the fd). The fd stays owned by the device.
  [[nodiscard]] std::optional<mem::map_source> region_source(std::uint32_t index) const noexcept {
    if constexpr (!mem::mappable_memory<Memory>) {
      static_cast<void>(index);
      return std::nullopt;
    } else {
      if (index >= vfio::pci_num_regions || regions_[index].backing == nullptr) return std::nullopt;
      // BAR0 holds the emulated readiness registers: a mapping in another
      // process could write them (and would miss registers that change with
      // time), so its memory is never handed out.
      if (index == 0) return std::nullopt;
      const slot& r = regions_[index];
      const mem::map_source source = r.backing->source();
      return mem::map_source{source.fd, source.offset + r.backing_offset};
    }
  }

  /// The memory behind region `index` as the copy path sees it (length =
  /// real length, caching as the driver touches it); nullopt when none.
  [[nodiscard]] std::optional<mem::memory_view> region_memory(std::uint32_t index) const noexcept {
    if (index >= vfio::pci_num_regions || regions_[index].backing == nullptr) return std::nullopt;
    return regions_[index].view;
  }

  /// How the driver touches region `index`'s memory (resmem and BAR0 uncached);
  /// nullopt for regions without memory.
  [[nodiscard]] std::optional<mem::caching> region_caching(std::uint32_t index) const noexcept {
    const auto memory = region_memory(index);
    if (!memory) return std::nullopt;
    return memory->caching;
  }

  /// The whole GPU memory (both emulated regions); empty in plain mode.
  [[nodiscard]] const Memory& gpu_memory() const noexcept { return gpu_memory_; }

  /// A 32-bit BAR0 register as the function reads it now (no decode check):
  /// the readiness registers read 0 until the function is ready.
  [[nodiscard]] std::uint32_t bar0_register(std::uint64_t offset) const noexcept {
    std::array<std::byte, 4> bytes{};
    mem::read_memory(regions_[0].view, offset, bytes);
    patch_readiness_registers(offset, bytes);
    return load_le<std::uint32_t>(bytes, 0);
  }
  void set_bar0_register(std::uint64_t offset, std::uint32_t value) noexcept {
    std::array<std::byte, 4> bytes{};
    store_le<std::uint32_t>(bytes, 0, value);
    mem::write_memory(regions_[0].view, offset, bytes);
  }

  /// Use `source` for the §7.1 poll (registers and clock); nullptr restores
  /// the default (this device's BAR0 + steady_clock). `source` must outlive
  /// its use.
  void set_readiness_source(readiness_source* source) noexcept { source_.store(source, mo::release); }

  /// Make runtime-PM resume fail: memory read/write (and core accesses) → EIO.
  void inject_pm_failure(bool fail) noexcept {
    if (fail)
      state_.fetch_or(pm_failed_bit, mo::acq_rel);
    else
      state_.fetch_and(~pm_failed_bit, mo::acq_rel);
  }

  /// The next CXL readiness check sees a reset of the function land right
  /// after its lockless wait (one shot).
  void inject_reset_race() noexcept { reset_race_.store(true, mo::release); }

  /// Make the core part of VFIO_DEVICE_RESET fail with `error` (nullopt: succeed).
  void inject_reset_failure(std::optional<errc> error) noexcept {
    posix::lock_guard lock(control_);
    reset_failure_ = error;
  }

  /// Close the device file: its DMA-bufs are revoked for good and its user
  /// mappings are gone (the kernel closes a device only after the last
  /// mapping). Every later call but open() is EBADF.
  void close() noexcept {
    posix::lock_guard lock(control_);
    revoke_dma_bufs_for_good();
    if (wakeup_fd_ >= 0) wakeup_fd_ = -1;
    zap_mappings();
    state_.fetch_or(closed_bit, mo::acq_rel);
  }

  /// Open the device file again (vfio_pci_core_enable and the driver's
  /// open_device): the virtual config space is rebuilt from the function (so
  /// memory decode is on again and the core BARs hold their assigned
  /// addresses), the emulated BARs read 0, and a function reset is attempted
  /// (its failure is ignored; success sets reset_done). EBUSY, and the device
  /// stays closed, for every open after the first of the fallback variant (a
  /// Grace id without ACPI memory): its open registers a memory-failure range
  /// that its close never unregisters. Precondition: the device is closed.
  [[nodiscard]] status open() noexcept {
    posix::lock_guard lock(control_);
    NVGRACE_EXPECTS((state_.load(mo::relaxed) & closed_bit) != 0);
    if (mode_ == grace::mode::plain && !options_.bare_function) return errc::device_or_resource_busy;
    config_ = config_space(config_params_);
    if (mode_ == grace::mode::emulated) bars_.reset();
    std::uint64_t current = state_.load(mo::relaxed);
    std::uint64_t next = 0;
    do {
      next = (current & ~(closed_bit | pm_engaged_bit)) | memory_enabled_bit;
    } while (!state_.compare_exchange_weak(current, next, mo::acq_rel, mo::relaxed));
    if (options_.reset_supported && !reset_failure_) mark_reset_done();
    return {};
  }

  /// close() then open().
  [[nodiscard]] status reopen() noexcept {
    close();
    return open();
  }

  /// The device file is closed (after close(), or a failed open()).
  [[nodiscard]] bool is_closed() const noexcept { return (state_.load(mo::acquire) & closed_bit) != 0; }

  /// The next memory access will poll readiness.
  [[nodiscard]] bool reset_done() const noexcept { return (state_.load(mo::acquire) & reset_done_bit) != 0; }
  /// COMMAND.MEMORY in the virtual config.
  [[nodiscard]] bool memory_enabled() const noexcept { return (state_.load(mo::acquire) & memory_enabled_bit) != 0; }
  /// Resets (VFIO_DEVICE_RESET, FLR, open) that succeeded so far.
  [[nodiscard]] std::uint32_t reset_count() const noexcept {
    return static_cast<std::uint32_t>(state_.load(mo::acquire) >> epoch_shift);
  }
  /// The raw (unmasked) value of emulated BAR register `index` (2 or 4).
  [[nodiscard]] std::uint64_t emulated_bar_raw(std::uint32_t index) const noexcept {
    posix::lock_guard lock(control_);
    return bars_.raw(index);
  }
  /// The last DMA-buf export still recorded, if any.
  [[nodiscard]] std::optional<dma_buf_export> last_dma_buf() const {
    posix::lock_guard lock(control_);
    if (dma_bufs_.empty()) return std::nullopt;
    return dma_bufs_.back();
  }
  /// The ioeventfds stored (plain mode).
  [[nodiscard]] std::size_t ioeventfd_count() const noexcept {
    posix::lock_guard lock(control_);
    return ioeventfd_count_;
  }
  /// The whole config space as a read of 4096 bytes at offset 0 returns it
  /// (emulated BARs patched in).
  [[nodiscard]] std::array<std::byte, config_space::size> config_snapshot() const noexcept {
    std::array<std::byte, config_space::size> out{};
    posix::lock_guard lock(control_);
    static_cast<void>(config_.read(0, out));
    if (mode_ == grace::mode::emulated) bars_.patch_config_read(layout_, 0, out);
    patch_cxl_status(0, out);
    return out;
  }

  /// The address of the fast tiers' data (a test checks its page offset).
  [[nodiscard]] const void* fast_data() const noexcept { return &state_; }
  /// Bytes of the fast tiers' data from fast_data().
  [[nodiscard]] static constexpr std::size_t fast_data_size() noexcept {
    return sizeof(state_) + sizeof(resmem_window_) + sizeof(usemem_window_);
  }

private:
  using slot = detail::region_slot<Memory>;

  /// What the fast tiers need of one region (see fast_access), immutable
  /// after create(). All zero for a region they leave alone: not emulated,
  /// or resmem with the upstream short return (whose position does not advance).
  struct fast_window {
    std::uintptr_t base = 0;  ///< address of the real memory's byte 0
    /// The real length cut back so that base + word_limit is a multiple of 8:
    /// a naturally aligned access of at most 8 bytes cannot cross such an
    /// address, so one that starts below it ends inside the memory.
    std::uint64_t word_limit = 0;
    std::uint64_t length = 0;    ///< the real memory's length
    std::uint64_t reported = 0;  ///< the reported BAR size; 0: no fast tier
    mem::caching caching = mem::caching::cached;
  };

  /// The fast window of region `index` of `self` (const or not), or nullptr
  /// for a region the driver does not emulate. Chosen by compares and
  /// branches, not by a load indexed by the region: once the branch is
  /// predicted, the window's address does not wait for the decode of a
  /// position (docs/performance.md, "The decode's dependent loads").
  template <class Self>
  [[nodiscard, gnu::always_inline]] static auto fast_window_of(Self& self, std::uint32_t index) noexcept
      -> decltype(&self.usemem_window_) {
    // One if-else chain: with it GCC 12 lays out fast_access instruction for
    // instruction as it was measured.
    if (index == grace::usemem_index) [[likely]]
      return &self.usemem_window_;
    else if (index == grace::resmem_index)
      return &self.resmem_window_;
    else
      return nullptr;
  }

  static constexpr std::uint64_t reset_done_bit = 1u << 0;
  static constexpr std::uint64_t memory_enabled_bit = 1u << 1;
  static constexpr std::uint64_t pm_failed_bit = 1u << 2;
  /// LOW_POWER_ENTRY engaged runtime PM (mappings fault with SIGBUS).
  static constexpr std::uint64_t pm_engaged_bit = 1u << 3;
  /// The device file is closed: every call is EBADF.
  static constexpr std::uint64_t closed_bit = 1u << 4;
  /// The state bits that send a memory access to the full path: a readiness
  /// wait to run, a runtime-PM failure, a closed file. Decode off and low
  /// power do not matter to an access while reset_done is clear (§7.2).
  static constexpr std::uint64_t busy_bits = reset_done_bit | pm_failed_bit | closed_bit;
  static constexpr unsigned epoch_shift = 32;
  static constexpr std::uint64_t epoch_one = std::uint64_t{1} << epoch_shift;
  static constexpr std::uint64_t max_file_offset = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

  /// The default readiness source: this device's BAR0 and the real clock.
  class bar0_source final : public readiness_source {
  public:
    explicit bar0_source(const device_core* d) noexcept : device_(d) {}
    std::uint32_t read32(std::uint64_t offset) noexcept override { return device_->bar0_register(offset); }
    std::uint64_t now_ms() noexcept override { return posix::monotonic_now_ms(); }
    bool sleep_ms(std::uint64_t ms) noexcept override {
      posix::monotonic_sleep_ms(ms);
      return true;  // an in-process sleep is never ended by a fatal signal
    }

  private:
    const device_core* device_;
  };

  device_core() noexcept = default;

  /// What the probe decides from the options alone (§2.1): the device id and,
  /// in the full variant, the GPU memory range and its layout.
  struct probe_result {
    std::uint16_t device_id = 0;
    std::optional<grace::device_memory_range> memory;  ///< nullopt: plain vfio-pci
    grace::layout layout{};
  };

  /// The checks of the options themselves (ENODEV for an id outside the
  /// driver's table, EINVAL for a BAR size that is not 0 or a power of two
  /// ≥ 4 KiB), then the driver's carve-up as a decision (not failed yet: the
  /// driver checks readiness first).
  [[nodiscard]] static result<probe_result> probe_options(const device_options& options,
                                                          grace::layout_failure* failure = nullptr) noexcept {
    constexpr std::uint64_t region_window = vfio::offset_mask + 1;  // VFIO puts region N at N << 40
    constexpr std::uint64_t smallest_bar = 4 * KiB;
    probe_result p;
    p.device_id = options.device_id.value_or(options.generation == grace::generation::hopper ? std::uint16_t{0x2342}
                                                                                             : std::uint16_t{0x2941});
    if (!grace::find_device(grace::nvidia_vendor_id, p.device_id)) return errc::no_such_device;
    for (const std::uint64_t s : {options.bar2_size, options.bar4_size}) {
      if (s != 0 && (!std::has_single_bit(s) || s < smallest_bar)) return errc::invalid_argument;
      if (s > region_window) return errc::value_too_large;
    }
    if (options.bare_function) return p;
    if (const auto memory = grace::fetch_memory(options.acpi)) {
      const auto decision =
          grace::decide_layout(memory->phys_base, memory->length, options.driver_generation(), options.rule);
      if (!decision.ok()) {
        if (failure == nullptr) return grace::to_errc(decision.failure);
        *failure = decision.failure;
        return p;
      }
      // Beyond the driver's rules, what a VFIO file cannot carry: an emulated
      // BAR past the region window, or memory too small to map one page of.
      for (const grace::memregion* m : {&decision.value.usemem, &decision.value.resmem}) {
        if (m->real_length == 0) continue;  // no resmem on Blackwell
        if (m->reported_size > region_window) return errc::value_too_large;
        if (m->real_length < smallest_bar) return errc::invalid_argument;
      }
      p.memory = *memory;
      p.layout = decision.value;
    }
    return p;
  }

  /// The readiness registers and clock before the device exists: the
  /// options' (BAR0 registers and CXL status as their timings say, from the
  /// moment the function powered up).
  class options_source final : public readiness_source {
  public:
    explicit options_source(const device_options& o) noexcept : options_(o), start_(posix::monotonic_now_ms()) {}
    std::uint32_t read32(std::uint64_t offset) noexcept override {
      if (offset != c2c_link_register && offset != hbm_training_register) return 0;
      return bar0_ready(options_.readiness, now_ms() - start_) ? status_ready : 0;
    }
    std::uint64_t now_ms() noexcept override { return posix::monotonic_now_ms(); }
    bool sleep_ms(std::uint64_t ms) noexcept override {
      posix::monotonic_sleep_ms(ms);
      return true;
    }

  private:
    const device_options& options_;
    std::uint64_t start_;
  };

  /// The probe's readiness wait, by kernel rule: none before 6.14; the BAR0
  /// poll (6.14 on), or the CXL wait when the function has a CXL device DVSEC
  /// (7.2). A timeout fails the probe from 6.19 on; before, the status of the
  /// enable that follows overwrote it and the probe went on.
  [[nodiscard]] static status probe_readiness(const device_options& options) noexcept {
    if (!grace::waits_at_probe(options.rule)) return {};
    options_source own(options);
    readiness_source& source = options.readiness_clock != nullptr ? *options.readiness_clock : own;
    const std::uint64_t start = source.now_ms();
    status waited;
    if (options.cxl && grace::has_cxl_readiness(options.rule))
      waited = wait_cxl_ready(source, [&] { return cxl_status_after(*options.cxl, source.now_ms() - start); });
    else
      waited = wait_device_ready(source, grace::waits_are_killable(options.rule));
    if (!grace::probe_timeout_fails(options.rule)) return {};
    return waited;
  }

  /// create(): with `supplied` GPU memory (taken over) or, when nullptr, memory of its own.
  [[nodiscard]] static result<nvgrace::detail::owned<device_core>> open_with(const device_options& options,
                                                                             Memory* supplied) noexcept {
    grace::layout_failure failure = grace::layout_failure::none;
    const auto probed = probe_options(options, &failure);
    if (!probed) return probed.error();
    // The driver waits for the function before it carves the memory.
    if (!options.bare_function) {
      if (auto s = probe_readiness(options); !s) return s.error();
    }
    if (failure != grace::layout_failure::none) return grace::to_errc(failure);
    if (supplied != nullptr && (!probed->memory || supplied->view().length != probed->memory->length))
      return errc::invalid_argument;
    nvgrace::detail::owned<device_core> d(new (std::nothrow) device_core());
    if (!d) return errc::not_enough_memory;
    d->options_ = options;
    d->device_id_ = probed->device_id;
    if (probed->memory) {
      d->mode_ = grace::mode::emulated;
      d->layout_ = probed->layout;
      d->memphys_ = probed->memory->phys_base;
      if (supplied != nullptr) {
        d->gpu_memory_ = std::move(*supplied);
      } else {
        auto gpu = Memory::create(probed->memory->length, mem::caching::cached);
        if (!gpu) return gpu.error();
        d->gpu_memory_ = std::move(*gpu);
      }
    }
    if (auto s = d->build(); !s) return s.error();
    return d;
  }

  [[nodiscard]] std::uint32_t device_flags() const noexcept {
    return vfio::device_flags::pci | (options_.reset_supported ? vfio::device_flags::reset : 0u);
  }

  /// Allocate the real BARs, fill the region table, build config space.
  [[nodiscard]] status build() noexcept {
    const bool emulated = mode_ == grace::mode::emulated;
    // The carve-out exists when the layout has one: Hopper, and every device
    // under the 6.13 rule (which predates the Blackwell case).
    const bool hopper = emulated && layout_.has_resmem();
    std::array<core_bar, 6> bars{};
    std::uint64_t cursor = default_bar0_address;
    const auto place = [&cursor](std::uint64_t size) {
      const std::uint64_t address = (cursor + size - 1) & ~(size - 1);
      cursor = address + size;
      return address;
    };
    constexpr std::uint32_t bar0_flags = pci::bar_bits::mem_type_64;
    constexpr std::uint32_t prefetchable_64 = pci::bar_bits::mem_type_64 | pci::bar_bits::mem_prefetch;

    // BAR0: registers, touched like MMIO (uncached, chunked).
    auto bar0 = Memory::create(bar0_size, mem::caching::uncached);
    if (!bar0) return bar0.error();
    bar0_memory_ = std::move(*bar0);
    bars[0] = {bar0_size, bar0_flags, place(bar0_size)};
    set_memory_bar(0, bar0_memory_, bars[0]);
    set_bar0_register(c2c_link_register, status_ready);
    set_bar0_register(hbm_training_register, status_ready);

    if (emulated) {
      const mem::memory_view gpu = gpu_memory_.view();
      slot& use = regions_[grace::usemem_index];
      use.kind = region_kind::emulated;
      use.model = layout_.usemem;
      use.view = {gpu.base, layout_.usemem.real_length, mem::caching::cached};
      use.size = layout_.usemem.reported_size;
      use.phys = layout_.usemem.phys_base;
      use.backing = &gpu_memory_;
      use.backing_offset = 0;
      if (hopper) {
        slot& res = regions_[grace::resmem_index];
        const std::uint64_t at = layout_.resmem.phys_base - memphys_;
        res.kind = region_kind::emulated;
        res.is_resmem = true;
        res.model = layout_.resmem;
        res.view = {gpu.base + at, layout_.resmem.real_length, mem::caching::uncached};
        res.size = layout_.resmem.reported_size;
        res.phys = layout_.resmem.phys_base;
        res.backing = &gpu_memory_;
        res.backing_offset = at;
      }
    }
    // The function's own BAR2 and BAR4 are in the core's virtual config in every
    // mode: where the driver emulates the region, a config access the emulation
    // does not patch (§3.2, E2 and E4) still reads them. Their memory is a region
    // only where the driver does not emulate it: region 2 on Blackwell and in plain
    // mode, region 4 in plain mode.
    if (options_.bar2_size != 0) {
      bars[2] = {options_.bar2_size, prefetchable_64, place(options_.bar2_size)};
      if (!hopper) {
        auto m = Memory::create(options_.bar2_size, mem::caching::cached);
        if (!m) return m.error();
        bar2_memory_ = std::move(*m);
        set_memory_bar(2, bar2_memory_, bars[2]);
      }
    }
    if (options_.bar4_size != 0) {
      bars[4] = {options_.bar4_size, prefetchable_64, place(options_.bar4_size)};
      if (!emulated) {
        auto m = Memory::create(options_.bar4_size, mem::caching::cached);
        if (!m) return m.error();
        bar4_memory_ = std::move(*m);
        set_memory_bar(4, bar4_memory_, bars[4]);
      }
    }
    for (std::uint32_t index = 0; index < vfio::pci_num_regions; ++index) {
      const slot& r = regions_[index];
      if (r.kind != region_kind::emulated) continue;
      if (r.is_resmem && options_.resmem_quirk == grace::resmem_return::upstream_short) continue;
      const auto base = reinterpret_cast<std::uintptr_t>(r.view.base);
      const std::uintptr_t end = (base + static_cast<std::uintptr_t>(r.view.length)) & ~std::uintptr_t{7};
      fast_window* const window = fast_window_of(*this, index);
      NVGRACE_EXPECTS(window != nullptr);
      *window = {base, end > base ? end - base : 0, r.view.length, r.model.reported_size, r.view.caching};
    }
    regions_[vfio::to_index(vfio::region::config)].kind = region_kind::config;
    regions_[vfio::to_index(vfio::region::config)].size = config_space::size;
    regions_[vfio::to_index(vfio::region::vga)].kind = region_kind::vga;

    config_params params;
    params.device_id = device_id_;
    params.generation = options_.generation;
    params.bars = bars;
    params.flr_supported = options_.reset_supported;
    params.nvidia_dvsec = options_.nvidia_dvsec;
    params.cxl_dvsec = options_.cxl.has_value();
    config_params_ = params;
    config_ = config_space(params);

    readiness_dynamic_ = options_.readiness.ready_after_ms != std::uint64_t{0};
    source_.store(options_.readiness_clock, mo::release);
    last_reset_ms_.store(readiness().now_ms(), mo::release);
    std::uint64_t state = memory_enabled_bit;
    state_.store(state, mo::release);
    // open_device: vfio_pci_core_enable attempts a function reset (the bare
    // function is not opened by anyone).
    if (options_.reset_supported && !options_.bare_function) mark_reset_done();
    return {};
  }

  void set_memory_bar(std::uint32_t index, const Memory& memory, const core_bar& bar) noexcept {
    slot& r = regions_[index];
    r.kind = region_kind::memory_bar;
    r.view = memory.view();
    r.size = bar.size;
    r.phys = bar.address;
    r.backing = &memory;
    r.backing_offset = 0;
  }

  /// Record a successful reset of the function: the readiness registers
  /// start over, a new epoch, and (from 6.19) reset_done, in one step.
  void mark_reset_done() noexcept {
    last_reset_ms_.store(readiness().now_ms(), mo::release);
    const std::uint64_t flag = grace::has_access_readiness(options_.rule) ? reset_done_bit : 0;
    std::uint64_t current = state_.load(mo::relaxed);
    while (!state_.compare_exchange_weak(current, (current + epoch_one) | flag, mo::acq_rel, mo::relaxed)) {
    }
  }

  /// The registers and clock readiness checks use.
  [[nodiscard]] readiness_source& readiness() const noexcept {
    readiness_source* source = source_.load(mo::acquire);
    return source != nullptr ? *source : const_cast<bar0_source&>(default_source_);
  }

  /// Milliseconds since the function's last reset, on the readiness clock.
  [[nodiscard]] std::uint64_t since_reset_ms() const noexcept {
    const std::uint64_t now = readiness().now_ms();
    const std::uint64_t at = last_reset_ms_.load(mo::acquire);
    return now > at ? now - at : 0;
  }

  /// The CXL device DVSEC's Range 1 Size Low as the function reads it now.
  [[nodiscard]] std::uint32_t cxl_status() const noexcept {
    return options_.cxl ? cxl_status_after(*options_.cxl, since_reset_ms()) : 0;
  }

  /// COMMAND.MEMORY as the user wrote it: turning it off zaps the user
  /// mappings and revokes the DMA-bufs; turning it on restores them.
  void set_memory_enabled(bool enabled) noexcept {
    const bool was = (state_.load(mo::acquire) & memory_enabled_bit) != 0;
    if (was == enabled) return;
    if (!enabled) {
      zap_mappings();
      move_dma_bufs(true);
      state_.fetch_and(~memory_enabled_bit, mo::acq_rel);
    } else {
      state_.fetch_or(memory_enabled_bit, mo::acq_rel);
      if ((state_.load(mo::acquire) & pm_engaged_bit) == 0) move_dma_bufs(false);
    }
  }

  /// Bytes of a BAR0 read at `offset` that fall on the readiness registers
  /// read 0 while the function is not ready.
  void patch_readiness_registers(std::uint64_t offset, std::span<std::byte> out) const noexcept {
    if (!readiness_dynamic_ || bar0_ready(options_.readiness, since_reset_ms())) return;
    for (const std::uint64_t reg : {c2c_link_register, hbm_training_register})
      for (std::uint64_t i = 0; i < 4; ++i)
        if (reg + i >= offset && reg + i - offset < out.size())
          out[static_cast<std::size_t>(reg + i - offset)] = std::byte{0};
  }

  /// Bytes of a config read at `offset` that fall on the CXL status dword
  /// take its value now.
  void patch_cxl_status(std::uint64_t offset, std::span<std::byte> out) const noexcept {
    const std::uint64_t at = config_.cxl_status_offset();
    if (at == 0) return;
    const std::uint32_t value = cxl_status();
    for (std::uint64_t i = 0; i < 4; ++i)
      if (at + i >= offset && at + i - offset < out.size())
        out[static_cast<std::size_t>(at + i - offset)] = static_cast<std::byte>((value >> (8 * i)) & 0xFF);
  }

  /// Room for `n` DMA-buf ranges, within the kernel's copy-in limit.
  template <class T>
  [[nodiscard]] static bool allocate(std::vector<T>& v, std::size_t n) noexcept {
    if (n > max_dma_buf_range_bytes / sizeof(vfio::region_dma_range)) return false;
    v.resize(n);
    return true;
  }

  /// The core's reset of the function (VFIO_DEVICE_RESET's second half, or
  /// an FLR through config space): the user mappings are zapped and the
  /// DMA-bufs revoked while it runs, then restored if memory decode is on.
  /// Called under control_.
  [[nodiscard]] status core_reset() noexcept {
    zap_mappings();
    move_dma_bufs(true);
    status done;
    if (reset_failure_)
      done = *reset_failure_;
    else
      mark_reset_done();
    if (memory_enabled()) move_dma_bufs(false);
    return done;
  }

  /// Faults re-establish the user mappings from now on (6.19 and later; the
  /// older mmap-time mappings are not reachable by the zap).
  void zap_mappings() noexcept {
    if (grace::has_access_readiness(options_.rule)) mapping_generation_.fetch_add(1, mo::acq_rel);
  }

  /// Revoke (or restore) every DMA-buf still attached to the device.
  void move_dma_bufs(bool revoked) noexcept {
    for (dma_buf_export& e : dma_bufs_)
      if (!e.detached) e.revoked = revoked;
  }

  /// The device is closed: every DMA-buf is revoked for good.
  void revoke_dma_bufs_for_good() noexcept {
    for (dma_buf_export& e : dma_bufs_) e.revoked = e.detached = true;
  }

  /// What every device ioctl does first in the vfio core: EBADF on a closed
  /// device, the runtime-PM get (EIO when it fails), and a wake-up from a low
  /// power state entered with a wake-up eventfd (signalled, then exited).
  [[nodiscard]] status ioctl_entry() noexcept {
    const std::uint64_t state = state_.load(mo::acquire);
    if ((state & closed_bit) != 0) return errc::bad_file_descriptor;
    if ((state & pm_failed_bit) != 0) return errc::io_error;
    if ((state & pm_engaged_bit) != 0) wake_from_low_power();
    return {};
  }

  void wake_from_low_power() noexcept {
    posix::lock_guard lock(control_);
    if (wakeup_fd_ < 0) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wakeup_fd_, &one, sizeof one);
    wakeup_fd_ = -1;
    exit_low_power_locked();
  }

  void exit_low_power_locked() noexcept {
    state_.fetch_and(~pm_engaged_bit, mo::acq_rel);
    if (memory_enabled()) move_dma_bufs(false);
  }

  /// §7.2 under the read side of memory_lock, entered only when `seen` had
  /// reset_done: memory disabled → EIO; poll (ETIME); on success clear
  /// reset_done unless a reset happened since `seen` was loaded.
  [[gnu::noinline]] status check_ready(std::uint64_t seen) noexcept {
    readiness_source& source = readiness();
    const bool cxl = options_.cxl && grace::has_cxl_readiness(options_.rule);
    // 7.2: the long CXL wait runs before the lock; under it, one look.
    if (cxl) {
      if (auto s = wait_cxl_ready(source, [this] { return cxl_status(); }); !s) return s;
      // Tests: a reset of the function (an FLR) lands between the lockless
      // wait and the locked look, as one can in the driver.
      if (reset_race_.exchange(false, mo::acq_rel)) [[unlikely]] {
        posix::lock_guard lock(control_);
        static_cast<void>(core_reset());
      }
    }
    if ((seen & memory_enabled_bit) == 0) return errc::io_error;
    if (cxl) {
      if (auto s = test_cxl_ready(cxl_status()); !s) return s;
    } else if (auto s = wait_device_ready(source, grace::waits_are_killable(options_.rule)); !s) {
      return s;
    }
    std::uint64_t current = state_.load(mo::relaxed);
    while ((current & reset_done_bit) != 0 && (current >> epoch_shift) == (seen >> epoch_shift)) {
      if (state_.compare_exchange_weak(current, current & ~reset_done_bit, mo::acq_rel, mo::relaxed)) break;
    }
    return {};
  }

  /// The user buffer of an access: written by a read, read by a write.
  template <grace::direction Dir>
  using user_bytes = std::conditional_t<Dir == grace::direction::read, std::byte*, const std::byte*>;

  /// Move `count` bytes between memory at `offset` and the user buffer
  /// (the copy path; `offset + count` is within the memory).
  template <grace::direction Dir>
  [[gnu::always_inline]] static void copy_memory(const mem::memory_view& memory, std::uint64_t offset,
                                                 user_bytes<Dir> buf, std::size_t count) noexcept {
    if constexpr (Dir == grace::direction::read)
      mem::read_memory(memory, offset, std::span<std::byte>(buf, count));
    else
      mem::write_memory(memory, offset, std::span<const std::byte>(buf, count));
  }

  /// Move `count` bytes of the window (memory, then padding) at `offset`
  /// between the region and the user buffer: the one copy path.
  template <grace::direction Dir>
  [[gnu::always_inline]] static void copy_window(const mem::memory_view& memory, std::uint64_t offset,
                                                 user_bytes<Dir> buf, std::size_t count) noexcept {
    if constexpr (Dir == grace::direction::read)
      mem::read_window(memory, offset, std::span<std::byte>(buf, count));
    else
      mem::write_window(memory, offset, std::span<const std::byte>(buf, count));
  }

  // read, write, pread and pwrite on an emulated region come in three tiers:
  // 1. a word: a naturally aligned access of 1, 2, 4 or 8 bytes wholly in
  //    memory on an idle device — one move, inline at the caller;
  // 2. a window: any other access of an idle device that needs no clipping —
  //    the memcpy of its memory part (and, for a read, the memset 0xFF of the
  //    rest), inline at the caller; the uncached chunk plan is one call;
  // 3. everything else — PM, readiness, clipping, EINVAL, the resmem short
  //    return, an empty access, the other regions — one call to the full path
  //    (memory_access, core_read, core_write).
  // Tiers 1 and 2 answer only where grace::plan_access would give the whole
  // count from the window (memory, then padding), no readiness wait and an
  // advance by the count, and move the bytes exactly as the copy path would
  // (§5.1–§5.3); they leave everything else untouched to tier 3. Both share
  // one decode of the position and one load of the state word.

  /// Tiers 1 and 2 for the `count` bytes at file position `pos`: true with
  /// the bytes moved, or false with nothing done.
  template <grace::direction Dir>
  [[nodiscard, gnu::always_inline]] bool fast_access(user_bytes<Dir> buf, std::size_t count,
                                                     std::uint64_t pos) noexcept {
    // The window's loads (and with them the copy's destination and length)
    // start as soon as the branch that picks it is predicted. Indexed by the
    // position, they formed a chain of dependent loads that a loop of copies
    // paid on every access. Either region implies pos < 2^63.
    const fast_window* const chosen = fast_window_of(*this, vfio::region_index_of(pos));
    if (chosen == nullptr) [[unlikely]]
      return false;
    const fast_window& w = *chosen;
    const std::uint64_t offset = vfio::offset_in_region(pos);
    const std::uint64_t state = state_.load(mo::acquire);
    std::byte* const memory = reinterpret_cast<std::byte*>(w.base + static_cast<std::uintptr_t>(offset));
    // Tier 1. An aligned access of at most 8 bytes that starts below
    // word_limit ends at or before it (see fast_window): the whole bounds test.
    if (std::uint64_t{count} - 1 < 8) {
      const std::uint64_t misfit = mem::detail::word_misfit(reinterpret_cast<std::uintptr_t>(memory), count);
      if (((misfit | (state & busy_bits)) == 0) & (offset < w.word_limit)) [[likely]] {
        if constexpr (Dir == grace::direction::read)
          mem::read_word(memory, buf, count);
        else
          mem::write_word(memory, buf, count);
        return true;
      }
    }
    // Tier 2: 1 ≤ count ≤ MAX_RW_COUNT (count − 1 wraps for 0, leaving an
    // empty access to tier 3) and offset + count ≤ reported, which cannot
    // wrap for such a count (offset < 2^40) and implies offset < reported.
    // Three branches, not one on the three conditions combined: each resolves
    // as soon as its own load arrives, and the copy's stores cannot retire
    // before the last of them has.
    if (std::uint64_t{count} - 1 >= max_rw_count) [[unlikely]]
      return false;
    if (offset + count > w.reported) [[unlikely]]
      return false;
    if ((state & busy_bits) != 0) [[unlikely]]
      return false;
    // in_memory_count's value by branches instead of its branchless minimum:
    // predicted, they leave the copy's length one subtraction from the load
    // of the window's length, not a chain of compares and conditional moves.
    std::size_t in_memory = count;
    if (offset + count > w.length) {
      if (offset < w.length)
        in_memory = static_cast<std::size_t>(w.length - offset);
      else
        in_memory = 0;
    }
    if (w.caching != mem::caching::cached) [[unlikely]] {
      uncached_window<Dir>(memory, buf, count, in_memory);
      return true;
    }
    if constexpr (Dir == grace::direction::read) {
      if (in_memory != 0) std::memcpy(buf, memory, in_memory);
      if (in_memory != count) mem::fill_padding(std::span<std::byte>(buf + in_memory, count - in_memory));
    } else {
      if (in_memory != 0) std::memcpy(memory, buf, in_memory);  // the rest is dropped
    }
    return true;
  }

  /// Tier 2 on uncached memory: the §5.3 chunk plan of the `in_memory`
  /// bytes at `memory`, then for a read 0xFF into the rest of the `count`.
  template <grace::direction Dir>
  [[gnu::noinline]] static void uncached_window(std::byte* memory, user_bytes<Dir> buf, std::size_t count,
                                                std::size_t in_memory) noexcept {
    const mem::memory_view view{memory, in_memory, mem::caching::uncached};
    if constexpr (Dir == grace::direction::read)
      mem::read_window(view, 0, std::span<std::byte>(buf, count));
    else
      mem::write_window(view, 0, std::span<const std::byte>(buf, count));
  }

  /// read() and write() past the fast tiers, out of line.
  template <grace::direction Dir>
  [[nodiscard, gnu::noinline]] ssize_t general_access(user_bytes<Dir> buf, std::size_t count,
                                                      std::uint64_t* ppos) noexcept {
    return file_access<Dir>(buf, count, ppos);
  }

  /// read() and write() in full: decode the position; an emulated region goes
  /// to memory_access, every other region to core_read/core_write.
  template <grace::direction Dir>
  [[nodiscard, gnu::always_inline]] ssize_t file_access(user_bytes<Dir> buf, std::size_t count,
                                                        std::uint64_t* ppos) noexcept {
    if (count > max_rw_count) [[unlikely]]
      count = max_rw_count;
    const std::uint32_t index = vfio::region_index_of(*ppos);
    if (index < vfio::pci_num_regions) [[likely]] {
      const slot& r = regions_[index];
      if (r.kind == region_kind::emulated) [[likely]]
        return memory_access<Dir>(r, buf, count, ppos);
    }
    if constexpr (Dir == grace::direction::read)
      return core_read(index, buf, count, ppos);
    else
      return core_write(index, buf, count, ppos);
  }

  /// The tiers of read() and write() (see fast_access).
  template <grace::direction Dir>
  [[nodiscard, gnu::always_inline]] ssize_t tiered_access(user_bytes<Dir> buf, std::size_t count,
                                                          std::uint64_t* ppos) noexcept {
    if (fast_access<Dir>(buf, count, *ppos)) [[likely]] {
      *ppos += count;
      return static_cast<ssize_t>(count);
    }
    return general_access<Dir>(buf, count, ppos);
  }

  /// The tiers of pread() and pwrite().
  template <grace::direction Dir>
  [[nodiscard, gnu::always_inline]] result<std::size_t> tiered_positioned(user_bytes<Dir> buf, std::size_t count,
                                                                          std::uint64_t pos) noexcept {
    if (fast_access<Dir>(buf, count, pos)) [[likely]]
      return count;
    return positioned_access<Dir>(buf, count, pos);
  }

  /// pread() and pwrite() past the fast tiers, out of line: read()/write() at
  /// `pos`, the result as a value.
  template <grace::direction Dir>
  [[nodiscard, gnu::noinline]] result<std::size_t> positioned_access(user_bytes<Dir> buf, std::size_t count,
                                                                     std::uint64_t pos) noexcept {
    if (pos > max_file_offset) [[unlikely]]
      return errc::invalid_argument;
    const ssize_t n = file_access<Dir>(buf, count, &pos);
    if (n < 0) [[unlikely]]
      return static_cast<errc>(-n);
    return static_cast<std::size_t>(n);
  }

  /// §5.1 / §5.2 for an emulated region, in full: PM, the plan, readiness, the copy.
  template <grace::direction Dir>
  [[gnu::noinline]] ssize_t memory_access(const slot& r, user_bytes<Dir> buf, std::size_t count,
                                          std::uint64_t* ppos) noexcept {
    const std::uint64_t state = state_.load(mo::acquire);
    if ((state & closed_bit) != 0) return detail::negative(errc::bad_file_descriptor);
    // Before 6.19 the driver neither wrapped memory accesses in runtime PM nor
    // waited for readiness (reset_done is never set there).
    if ((state & pm_failed_bit) != 0 && grace::has_access_readiness(options_.rule)) [[unlikely]]
      return detail::negative(errc::io_error);
    const auto plan =
        grace::plan_access(Dir, r.model, vfio::offset_in_region(*ppos), count, r.is_resmem, options_.resmem_quirk);
    if (!plan) [[unlikely]]
      return detail::negative(plan.error());
    if (plan->waits_for_ready && (state & reset_done_bit) != 0) [[unlikely]] {
      if (const auto s = check_ready(state); !s) return detail::negative(s.error());
    }
    copy_window<Dir>(r.view, plan->offset, buf, static_cast<std::size_t>(plan->memory_bytes + plan->padding_bytes));
    *ppos += plan->advance;
    return static_cast<ssize_t>(plan->returned);
  }

  /// A real memory BAR (vfio-pci-core): clipped at the BAR end, EINVAL at or
  /// past it, EIO while memory decode is off.
  template <grace::direction Dir>
  [[nodiscard]] static ssize_t memory_bar_access(const slot& r, std::uint64_t state, std::uint64_t offset,
                                                 user_bytes<Dir> buf, std::size_t count, std::uint64_t* ppos) noexcept {
    if (offset >= r.size) return detail::negative(errc::invalid_argument);
    const auto n = static_cast<std::size_t>(nvgrace::detail::min<std::uint64_t>(count, r.size - offset));
    if ((state & memory_enabled_bit) == 0) return detail::negative(errc::io_error);
    copy_memory<Dir>(r.view, offset, buf, n);
    *ppos += n;
    return static_cast<ssize_t>(n);
  }

  /// vfio-pci-core's read for every other region, and §3.2 for config.
  [[gnu::noinline]] ssize_t core_read(std::uint32_t index, std::byte* buf, std::size_t count,
                                      std::uint64_t* ppos) noexcept {
    const std::uint64_t state = state_.load(mo::acquire);
    if ((state & closed_bit) != 0) return detail::negative(errc::bad_file_descriptor);
    if (count == 0) return 0;
    if (index >= vfio::pci_num_regions) return detail::negative(errc::invalid_argument);
    if ((state & pm_failed_bit) != 0) return detail::negative(errc::io_error);
    const slot& r = regions_[index];
    const std::uint64_t offset = vfio::offset_in_region(*ppos);
    const std::span<std::byte> out(buf, count);
    switch (r.kind) {
      case region_kind::memory_bar: {
        const ssize_t n = memory_bar_access<grace::direction::read>(r, state, offset, buf, count, ppos);
        if (index == 0 && n > 0)
          patch_readiness_registers(offset, std::span<std::byte>(buf, static_cast<std::size_t>(n)));
        return n;
      }
      case region_kind::config: {
        posix::lock_guard lock(control_);
        const auto n = config_.read(offset, out);
        if (!n) return detail::negative(n.error());
        if (mode_ == grace::mode::emulated) bars_.patch_config_read(layout_, offset, out);
        patch_cxl_status(offset, out);
        *ppos += *n;
        return static_cast<ssize_t>(*n);
      }
      default: return detail::negative(errc::invalid_argument);
    }
  }

  /// vfio-pci-core's write for every other region, and §3.3 for config.
  [[gnu::noinline]] ssize_t core_write(std::uint32_t index, const std::byte* buf, std::size_t count,
                                       std::uint64_t* ppos) noexcept {
    if ((state_.load(mo::acquire) & closed_bit) != 0) return detail::negative(errc::bad_file_descriptor);
    if (count == 0) return 0;
    if (index >= vfio::pci_num_regions) return detail::negative(errc::invalid_argument);
    const std::uint64_t offset = vfio::offset_in_region(*ppos);
    const std::span<const std::byte> in(buf, count);
    const slot& r = regions_[index];
    if (r.kind == region_kind::config) {
      posix::lock_guard lock(control_);
      // The emulated windows are intercepted before the core (and its PM get) runs.
      if (mode_ == grace::mode::emulated) {
        if (const auto n = bars_.intercept_config_write(layout_, offset, in)) {
          *ppos += *n;
          return static_cast<ssize_t>(*n);
        }
      }
      if ((state_.load(mo::acquire) & pm_failed_bit) != 0) return detail::negative(errc::io_error);
      const auto effects = config_.write(offset, in);
      if (!effects) return detail::negative(effects.error());
      if (effects->command_written) set_memory_enabled((config_.command() & pci::command_bits::memory) != 0);
      // An FLR through config space resets the function like VFIO_DEVICE_RESET
      // but keeps the emulated BARs.
      if (effects->flr_requested) static_cast<void>(core_reset());
      *ppos += effects->count;
      return static_cast<ssize_t>(effects->count);
    }
    const std::uint64_t state = state_.load(mo::acquire);
    if ((state & pm_failed_bit) != 0) return detail::negative(errc::io_error);
    if (r.kind != region_kind::memory_bar) return detail::negative(errc::invalid_argument);
    if (index == 0 && touches_readiness(offset, count)) [[unlikely]]
      return bar0_write_sparing_readiness(r, state, offset, buf, count, ppos);
    return memory_bar_access<grace::direction::write>(r, state, offset, buf, count, ppos);
  }

  /// The BAR0 offsets of the emulated readiness registers (§7.1), 4 bytes each.
  static constexpr std::array<std::uint64_t, 2> readiness_registers{c2c_link_register, hbm_training_register};

  [[nodiscard]] static bool touches_readiness(std::uint64_t offset, std::size_t count) noexcept {
    for (const std::uint64_t reg : readiness_registers)
      if (offset < reg + 4 && reg < offset + count) return true;  // offset < 2^40, count < 2^31: no overflow
    return false;
  }

  /// A BAR0 write that covers readiness register bytes: on hardware they are
  /// status a VM can only read, so those bytes are dropped and the rest is
  /// written; the count is the whole write's, as for any register.
  [[gnu::noinline]] static ssize_t bar0_write_sparing_readiness(const slot& r, std::uint64_t state,
                                                                std::uint64_t offset, const std::byte* buf,
                                                                std::size_t count, std::uint64_t* ppos) noexcept {
    if (offset >= r.size) return detail::negative(errc::invalid_argument);
    const auto n = static_cast<std::size_t>(nvgrace::detail::min<std::uint64_t>(count, r.size - offset));
    if ((state & memory_enabled_bit) == 0) return detail::negative(errc::io_error);
    std::uint64_t at = offset;
    const std::uint64_t end = offset + n;
    for (const std::uint64_t reg : readiness_registers) {  // in increasing order
      if (reg + 4 <= at || reg >= end) continue;
      if (reg > at)
        copy_memory<grace::direction::write>(r.view, at, buf + (at - offset), static_cast<std::size_t>(reg - at));
      at = nvgrace::detail::max(at, reg + 4);
    }
    if (at < end)
      copy_memory<grace::direction::write>(r.view, at, buf + (at - offset), static_cast<std::size_t>(end - at));
    *ppos += n;
    return static_cast<ssize_t>(n);
  }

  /// GET_REGION_INFO into a buffer of at least 32 bytes and at least argsz.
  [[nodiscard]] status region_info_into(std::span<std::byte> buffer) noexcept {
    const std::uint32_t argsz = load_le<std::uint32_t>(buffer, 0);
    const std::uint32_t index = load_le<std::uint32_t>(buffer, 8);
    if (argsz < vfio::region_info_size) return errc::invalid_argument;
    if (index >= vfio::pci_num_regions) return errc::invalid_argument;
    const slot& r = regions_[index];
    if (r.kind == region_kind::emulated) {
      const auto written = grace::region_info_reply(layout_, index, argsz, buffer);
      if (!written) return written.error();
      return {};
    }
    vfio::region_info info{0, 0, index, 0, 0, vfio::region_offset(index)};
    switch (r.kind) {
      case region_kind::memory_bar:
        info.size = r.size;
        info.flags = vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;
        break;
      case region_kind::config:
        info.size = config_space::size;
        info.flags = vfio::region_flags::read | vfio::region_flags::write;
        break;
      case region_kind::vga: return errc::invalid_argument;
      default: break;  // unimplemented BAR or ROM: size 0, flags 0
    }
    const vfio::cap_chain<8> no_caps;
    const auto written = vfio::encode_region_info(buffer, argsz, info, no_caps);
    if (!written) return written.error();
    return {};
  }

public:
  /// vfio-pci-core's IOEVENTFD after the ioctl's own checks (shim/ioctl.hpp):
  /// ENOTTY in the full variant, which refuses every request; in plain mode
  /// the request is validated against the real BAR and stored, never
  /// signalled. `fd` -1 removes a matching entry (ENODEV if none); a
  /// duplicate is EEXIST; more than max_ioeventfds is ENOSPC; an fd that is
  /// not open is EBADF.
  [[nodiscard]] status ioeventfd(std::uint64_t file_offset, std::uint64_t data, std::uint32_t size, int fd) noexcept {
    if (auto s = ioctl_entry(); !s) return s;
    if (mode_ == grace::mode::emulated) return errc::inappropriate_io_control_operation;
    const std::uint32_t index = vfio::region_index_of(file_offset);
    const std::uint64_t pos = vfio::offset_in_region(file_offset);
    if (index > vfio::to_index(vfio::region::bar5)) return errc::invalid_argument;
    const slot& r = regions_[index];
    const std::uint64_t bar_length = r.kind == region_kind::memory_bar ? r.size : 0;
    if (!range_within(pos, size, bar_length)) return errc::invalid_argument;

    posix::lock_guard lock(control_);
    for (std::size_t i = 0; i < ioeventfd_count_; ++i) {
      const ioeventfd_entry& e = ioeventfds_[i];
      if (e.index == index && e.offset == pos && e.data == data && e.size == size) {
        if (fd != -1) return errc::file_exists;
        ioeventfds_[i] = ioeventfds_[--ioeventfd_count_];
        return {};
      }
    }
    if (fd == -1) return errc::no_such_device;
    if (ioeventfd_count_ == max_ioeventfds) return errc::no_space_on_device;
    if (::fcntl(fd, F_GETFD) < 0) return errc::bad_file_descriptor;
    ioeventfds_[ioeventfd_count_++] = {index, pos, data, size, fd};
    return {};
  }

  /// The driver's get_dmabuf_phys and the export, after the vfio core's
  /// checks of the request and its ranges (shim/ioctl.hpp): an emulated region
  /// maps to its real memory; any other memory BAR to the PCI resource (the
  /// core's op); anything else has no provider (EINVAL). A range outside the
  /// memory is EINVAL, an overflowing one EOVERFLOW. Returns the fake fd number
  /// of the export, whose ranges last_dma_buf() then reports.
  [[nodiscard]] result<int> export_dma_buf(std::uint32_t region_index, std::uint32_t open_flags,
                                           std::span<const vfio::region_dma_range> ranges) noexcept {
    if (auto s = ioctl_entry(); !s) return s.error();
    // Before 6.19 there is no DMA_BUF feature at all.
    if (!grace::has_access_readiness(options_.rule)) return errc::inappropriate_io_control_operation;
    if (region_index >= vfio::pci_num_regions) return errc::no_such_device;
    const slot& r = regions_[region_index];
    grace::memregion target = r.model;
    if (r.kind != region_kind::emulated) {
      if (r.kind != region_kind::memory_bar) return errc::invalid_argument;  // no provider
      target = {r.phys, r.size, r.size};
    }
    dma_buf_export record;
    if (!allocate(record.ranges, ranges.size())) return errc::not_enough_memory;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      const auto phys = grace::dma_range_to_phys(target, ranges[i]);
      if (!phys) return phys.error();
      record.ranges[i] = *phys;
    }
    record.region_index = region_index;
    record.open_flags = open_flags;
    posix::lock_guard lock(control_);
    record.revoked = !memory_enabled() || (state_.load(mo::acquire) & pm_engaged_bit) != 0;
    record.fd = next_dma_buf_fd_++;
    dma_bufs_.push_back(std::move(record));
    return dma_bufs_.back().fd;
  }

  /// The exports made so far and not released, in order.
  [[nodiscard]] std::vector<dma_buf_export> dma_bufs() const {
    posix::lock_guard lock(control_);
    return dma_bufs_;
  }

  /// The importer closed DMA-buf `fd`: its record goes. ENOENT if unknown.
  [[nodiscard]] status release_dma_buf(int fd) noexcept {
    posix::lock_guard lock(control_);
    for (auto it = dma_bufs_.begin(); it != dma_bufs_.end(); ++it) {
      if (it->fd != fd) continue;
      dma_bufs_.erase(it);
      return {};
    }
    return errc::no_such_file_or_directory;
  }

  /// VFIO_DEVICE_FEATURE LOW_POWER_ENTRY (and _WITH_WAKEUP when `wakeup_fd`
  /// ≥ 0): the user mappings are zapped and DMA-bufs revoked, runtime PM is
  /// engaged (faults SIGBUS until exit); EINVAL when already engaged. With a
  /// wake-up eventfd, the next ioctl signals it and exits the low power state.
  [[nodiscard]] status low_power_entry(int wakeup_fd) noexcept {
    if (auto s = ioctl_entry(); !s) return s;
    posix::lock_guard lock(control_);
    zap_mappings();
    move_dma_bufs(true);
    if ((state_.load(mo::acquire) & pm_engaged_bit) != 0) return errc::invalid_argument;
    state_.fetch_or(pm_engaged_bit, mo::acq_rel);
    wakeup_fd_ = wakeup_fd;
    return {};
  }

  /// VFIO_DEVICE_FEATURE LOW_POWER_EXIT: runtime PM disengaged and the
  /// DMA-bufs restored if memory decode is on (a no-op when not engaged).
  [[nodiscard]] status low_power_exit() noexcept {
    if (auto s = ioctl_entry(); !s) return s;
    posix::lock_guard lock(control_);
    wakeup_fd_ = -1;
    if ((state_.load(mo::acquire) & pm_engaged_bit) != 0) exit_low_power_locked();
    return {};
  }

  /// Runtime PM engaged by LOW_POWER_ENTRY.
  [[nodiscard]] bool low_power() const noexcept { return (state_.load(mo::acquire) & pm_engaged_bit) != 0; }

  /// How many times the user mappings were zapped (reset, FLR, memory decode
  /// off, low power entry, close). A mapping made at generation g is valid
  /// while this is still g; after, its next touch faults (see fault()).
  [[nodiscard]] std::uint64_t mapping_generation() const noexcept { return mapping_generation_.load(mo::acquire); }

  /// The driver's (huge) fault handler for a touch at `address` of mapping
  /// `v` (made by mmap of this device) with page order `order`: misaligned
  /// huge faults fall back; runtime PM engaged → SIGBUS; otherwise, from
  /// 6.19, the readiness check (a wait after a reset; EIO with memory decode
  /// off; a timeout) must pass, else SIGBUS; then the insert (SIGBUS when
  /// memory decode is off). Before 6.19 (`grace::maps_at_mmap_time`) the
  /// driver's mmap mapped the whole range and had no fault handler: a touch
  /// of an emulated region's mapping is `premapped` at order 0's page, never a
  /// huge insert, never a wait or a SIGBUS (§6.1, §11).
  /// A mapping of a real memory BAR (BAR0, Blackwell's BAR2, the fallback's
  /// BARs) faults through vfio-pci-core's own handler instead: the same
  /// alignment rules, no readiness check, SIGBUS while runtime PM is engaged
  /// or memory decode is off, else the insert at the BAR's address.
  [[nodiscard]] grace::fault_decision fault(const grace::vma& v, std::uint64_t address, unsigned order,
                                            grace::huge_pfnmap platform = {}) noexcept {
    const std::uint32_t index = grace::region_index_of_pgoff(v.pgoff, platform.page_shift);
    const slot* r = index < vfio::pci_num_regions ? &regions_[index] : nullptr;
    if (r != nullptr && r->kind == region_kind::memory_bar) {
      const std::uint64_t state = state_.load(mo::acquire);
      grace::fault_state fs;
      fs.runtime_pm_engaged = (state & (pm_engaged_bit | pm_failed_bit)) != 0;
      fs.memory_enabled = (state & memory_enabled_bit) != 0;
      return grace::decide_fault(grace::memregion{r->phys, r->size, r->size}, v, address, order, fs, platform);
    }
    if (r == nullptr || r->kind != region_kind::emulated) return {grace::fault_outcome::sigbus, 0, 0};
    if (grace::maps_at_mmap_time(options_.rule)) return grace::decide_premapped_touch(r->model, v, address, platform);
    grace::fault_state fs;
    const grace::fault_decision shape = grace::decide_fault(r->model, v, address, order, fs, platform);
    if (shape.outcome == grace::fault_outcome::fallback) return shape;
    std::uint64_t state = state_.load(mo::acquire);
    fs.runtime_pm_engaged = (state & (pm_engaged_bit | pm_failed_bit)) != 0;
    if (!fs.runtime_pm_engaged && (state & reset_done_bit) != 0) {
      // A reset that races the readiness check makes the CXL path retry (the
      // lockless wait again, if reset_done is still set), not fail.
      status s = check_ready(state);
      while (s.error() == errc::resource_unavailable_try_again) {
        const std::uint64_t again = state_.load(mo::acquire);
        if ((again & reset_done_bit) == 0) {
          s = {};
          break;
        }
        s = check_ready(again);
      }
      fs.ready = s.has_value();
      state = state_.load(mo::acquire);
    }
    fs.memory_enabled = (state & memory_enabled_bit) != 0;
    return grace::decide_fault(r->model, v, address, order, fs, platform);
  }

private:
  // The fast tiers' data first, at fast_data_page_offset of the object's
  // page. Why: a load whose address agrees in bits 0–11 with a store still in
  // flight waits for that store (4 KiB aliasing). The last stores of a copy
  // are its head and its tail (glibc writes both after its main loop); for
  // one that starts and ends on 1 KiB boundaries they stay clear of offsets
  // 256–343, so the next access's decode does not wait for them. Where
  // malloc put the object used to decide this.
  std::array<std::byte, fast_data_page_offset> fast_data_lead_{};
  // Read by every memory access (see the file comment).
  nvgrace::detail::atomic_word<std::uint64_t> state_{0};
  // The only regions the driver emulates; immutable after create().
  fast_window resmem_window_{};
  fast_window usemem_window_{};

  // Immutable after create().
  device_options options_{};
  std::uint16_t device_id_ = 0;
  grace::mode mode_ = grace::mode::plain;
  grace::layout layout_{};
  std::uint64_t memphys_ = 0;
  Memory gpu_memory_{};
  Memory bar0_memory_{};
  Memory bar2_memory_{};
  Memory bar4_memory_{};
  std::array<slot, vfio::pci_num_regions> regions_{};
  bar0_source default_source_{this};

  // Read by every memory access (see the file comment).
  nvgrace::detail::atomic_word<readiness_source*> source_{nullptr};
  nvgrace::detail::atomic_word<std::uint64_t> mapping_generation_{0};
  nvgrace::detail::atomic_word<std::uint64_t> last_reset_ms_{0};
  nvgrace::detail::atomic_word<bool> reset_race_{false};  ///< test_hooks::inject_reset_race
  bool readiness_dynamic_ = false;                        ///< immutable after create()

  // Guarded by control_.
  mutable posix::mutex control_;
  config_params config_params_{};  ///< what open() rebuilds config space from
  config_space config_{};
  grace::bar_registers bars_{};
  std::optional<errc> reset_failure_;
  std::vector<dma_buf_export> dma_bufs_;
  int next_dma_buf_fd_ = first_dma_buf_fd;
  int wakeup_fd_ = -1;  ///< LOW_POWER_ENTRY_WITH_WAKEUP's eventfd (not owned)
  std::array<ioeventfd_entry, max_ioeventfds> ioeventfds_{};
  std::size_t ioeventfd_count_ = 0;
};

}  // namespace detail

}  // namespace nvgrace::shim
