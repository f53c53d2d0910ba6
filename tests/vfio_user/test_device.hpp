#pragma once
// A small test-local device_file: one emulated memory BAR (region 4) over a
// real memfd, the §5 window rules (0xFF padding, clip at the BAR end, EINVAL
// past it), a 256-byte config region, and IRQ info for five indexes. It lets
// the vfio-user tests exercise the server against a device whose every byte
// they control, independent of the shim. `Mappable` decides whether it offers
// `region_source`.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/mem/copy.hpp>
#include <nvgrace/mem/memfd_memory.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <gsl/assert>

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace nvgrace::vfio_user::testing {

template <bool Mappable>
class basic_test_device {
public:
  static constexpr std::uint32_t bar_index = 4;

  /// `memlength` bytes of memory behind a BAR of next_pow2(memlength) bytes.
  explicit basic_test_device(std::uint64_t memlength)
      : memory_(mem::memfd_memory::create(memlength).value()), bar_size_(next_pow2(memlength).value()) {}

  result<vfio::device_info> get_device_info() {
    return vfio::device_info{20, vfio::device_flags::reset | vfio::device_flags::pci, vfio::pci_num_regions,
                             vfio::pci_num_irqs, 0};
  }

  status get_region_info(std::span<std::byte> buffer) {
    if (buffer.size() < vfio::region_info_size) return nvgrace::errc::bad_address;
    const auto request = vfio::load_region_info(buffer);
    if (request.index >= vfio::pci_num_regions) return nvgrace::errc::invalid_argument;
    vfio::region_info info{0, 0, request.index, 0, 0, vfio::region_offset(request.index)};
    vfio::cap_chain<64> caps;
    if (request.index == bar_index) {
      info.size = bar_size_;
      info.flags = vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;
      const vfio::sparse_mmap_area area{0, memory_.length()};
      if (auto s = caps.add_sparse_mmap(std::span<const vfio::sparse_mmap_area>(&area, 1)); !s) return s;
    } else if (request.index == vfio::to_index(vfio::region::config)) {
      info.size = config_.size();
      info.flags = vfio::region_flags::read | vfio::region_flags::write;
    }
    auto written = vfio::encode_region_info(buffer, request.argsz, info, caps);
    if (!written) return written.error();
    return {};
  }

  status get_irq_info(vfio::irq_info& irq) {
    if (irq.argsz < 16 || irq.index >= vfio::pci_num_irqs) return nvgrace::errc::invalid_argument;
    constexpr std::array<std::uint32_t, 5> counts{1, 0, 0, 1, 1};
    irq.count = counts[irq.index];
    irq.flags = vfio::irq_flags::eventfd;
    if (irq.index == 0) irq.flags |= vfio::irq_flags::maskable | vfio::irq_flags::automasked;
    return {};
  }

  status reset() {
    ++resets;
    return {};
  }

  result<std::size_t> pread(std::span<std::byte> out, std::uint64_t pos) {
    const auto index = vfio::region_index_of(pos);
    const auto offset = vfio::offset_in_region(pos);
    if (index == bar_index) {
      if (offset >= bar_size_) return nvgrace::errc::invalid_argument;
      const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), bar_size_ - offset));
      return mem::read_window(memory_.view(), offset, out.first(count));
    }
    if (index == vfio::to_index(vfio::region::config)) {
      if (!range_within(offset, out.size(), config_.size())) return nvgrace::errc::bad_address;
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = config_[offset + i];
      return out.size();
    }
    return nvgrace::errc::invalid_argument;
  }

  result<std::size_t> pwrite(std::span<const std::byte> in, std::uint64_t pos) {
    const auto index = vfio::region_index_of(pos);
    const auto offset = vfio::offset_in_region(pos);
    if (index == bar_index) {
      if (offset >= bar_size_) return nvgrace::errc::invalid_argument;
      const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), bar_size_ - offset));
      return mem::write_window(memory_.view(), offset, in.first(count));
    }
    if (index == vfio::to_index(vfio::region::config)) {
      if (!range_within(offset, in.size(), config_.size())) return nvgrace::errc::bad_address;
      for (std::size_t i = 0; i < in.size(); ++i) config_[offset + i] = in[i];
      return in.size();
    }
    return nvgrace::errc::invalid_argument;
  }

  result<void*> mmap(void* addr, std::uint64_t length, int prot, std::uint64_t pos) {
    const auto index = vfio::region_index_of(pos);
    const auto offset = vfio::offset_in_region(pos);
    if (index != bar_index) return nvgrace::errc::invalid_argument;
    const auto end = checked_add(offset, length);
    if (!end) return nvgrace::errc::value_too_large;
    if (*end > memory_.length()) return nvgrace::errc::invalid_argument;
    void* p = ::mmap(addr, length, prot, MAP_SHARED | (addr != nullptr ? MAP_FIXED : 0), memory_.source().fd,
                     static_cast<off_t>(offset));
    if (p == MAP_FAILED) return static_cast<nvgrace::errc>(errno);
    return p;
  }

  std::optional<mem::map_source> region_source(std::uint32_t index) requires Mappable {
    if (index != bar_index) return std::nullopt;
    return memory_.source();
  }

  /// The memory's bytes, read through the fd (a system call: no data race
  /// with a server thread as far as a race detector can tell).
  [[nodiscard]] std::vector<std::byte> snapshot() const {
    std::vector<std::byte> out(static_cast<std::size_t>(memory_.length()));
    const auto n = ::pread(memory_.source().fd, out.data(), out.size(), 0);
    Expects(n == static_cast<ssize_t>(out.size()));
    return out;
  }
  /// Overwrite memory at `offset` through the fd.
  void poke(std::uint64_t offset, std::span<const std::byte> bytes) const {
    const auto n = ::pwrite(memory_.source().fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    Expects(n == static_cast<ssize_t>(bytes.size()));
  }
  [[nodiscard]] int memory_fd() const noexcept { return memory_.source().fd; }
  [[nodiscard]] std::uint64_t memlength() const noexcept { return memory_.length(); }
  [[nodiscard]] std::uint64_t bar_size() const noexcept { return bar_size_; }

  std::atomic<int> resets{0};

private:
  mem::memfd_memory memory_;
  std::uint64_t bar_size_;
  std::array<std::byte, 256> config_{};
};

using test_device = basic_test_device<true>;
using unmappable_test_device = basic_test_device<false>;

static_assert(vfio::device_file<test_device>);
static_assert(vfio::device_file<unmappable_test_device>);

}  // namespace nvgrace::vfio_user::testing
