#pragma once
// The device-file conformance suite: one set of doctest checks that every
// backend (in-process shim, /dev/vfio, vfio-user client) must pass.
//
// How to use it
// -------------
//   #include "conformance.hpp"   // add ${PROJECT_SOURCE_DIR}/tests/conformance to the include path
//
//   TEST_CASE("conformance: my backend, ivshmem 16 MiB") {
//     nvgrace::conformance::run_conformance(
//         [] { return open_my_backend(); },            // a fresh device for every subcase
//         nvgrace::conformance::ivshmem_expectations(16 << 20));
//   }
//
// The factory is called once per doctest subcase (doctest re-enters the test
// case for each one), so every check starts from a freshly opened device. It
// may return the device file itself (a movable value), a pointer-like handle
// (std::unique_ptr<F>, F*) or a nvgrace::result of either; a failed result or
// null handle fails the test. The device must satisfy vfio::device_file.
//
// `expectations` says what the device is: which region indices exist and
// their reported sizes, real (memory-backed) lengths and flags, which are
// Grace-emulated (sparse-mmap cap over the real length, 0xFF padding,
// emulated BAR register, upstream's short resmem return), which may have data
// written to them, BAR types for sizing, IRQ counts, whether reset works, and
// the config-space size. Build one by hand, or start from
// ivshmem_expectations() (a real vfio-pci ivshmem-plain device, as the
// vfio-guest rig sees it on a 6.1 kernel). Grace-only checks are skipped when
// no region is Grace-emulated.
//
// What it checks (each subcase names its spec section):
//   §4    GET_DEVICE_INFO, region enumeration (absent = EINVAL), IRQ info
//   §4.2  region-info bytes for argsz 31, 32, the full size and more
//   §4.3  the sparse-mmap capability (decoded with vfio::decode_region_caps)
//   §5    read/write at real length −1/0/+1 and BAR end −1/0/+1, and accesses
//         crossing each: exact counts, exact errno, exact bytes (0xFF padding)
//   §3    BAR sizing through config space (access::accessor::size_bars),
//         config restored afterwards; config-space bounds (EFAULT)
//   §7.3  reset: EINVAL without reset support; clears the emulated BARs
//   §9    IOEVENTFD → ENOTTY on Grace devices (only if the backend has ioctl())
//   §6    data written through a mapping reads back through pread and vice
//         versa; mappings are huge-page aligned; no mapping past the real length
//
// The suite writes only to regions marked `data` and to BAR/command registers
// (which it restores). It never assumes the memory starts zeroed.

#include <nvgrace/access/accessor.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace nvgrace::conformance {

/// What one region index should look like.
struct region_expectation {
  bool present = false;           ///< GET_REGION_INFO succeeds (false: EINVAL)
  std::uint64_t size = 0;         ///< region-info size: the reported BAR size
  std::uint32_t flags = 0;        ///< region-info flags, without CAPS
  std::uint64_t real_length = 0;  ///< memory-backed bytes (= size unless Grace-emulated)
  bool grace_emulated = false;    ///< §4.3 sparse cap, §5 padding, §3 emulated BAR register
  bool short_return = false;      ///< §5.1 E7: a transfer reaching memory returns only the memory part
  bool data = false;              ///< plain memory: the suite may write it
  bool bar_64bit = false;         ///< for BAR sizing (indices 0..5 with size > 0)
  bool bar_prefetchable = false;
};

/// What one IRQ index should look like.
struct irq_expectation {
  bool present = false;  ///< false: GET_IRQ_INFO → EINVAL
  std::uint32_t count = 0;
  std::uint32_t flags = 0;
};

/// What the whole device should look like.
struct expectations {
  std::uint32_t num_regions = vfio::pci_num_regions;
  std::uint32_t num_irqs = vfio::pci_num_irqs;
  std::uint32_t device_flags = vfio::device_flags::pci;
  bool reset_supported = false;
  std::uint64_t config_size = pci::config_space_size;
  std::array<region_expectation, vfio::pci_num_regions> regions{};
  std::optional<std::array<irq_expectation, vfio::pci_num_irqs>> irqs;
  /// IOEVENTFD is refused with ENOTTY (the nvgrace full variant, §9).
  bool ioeventfd_enotty = false;

  [[nodiscard]] bool grace() const noexcept {
    return std::any_of(regions.begin(), regions.end(), [](const region_expectation& r) { return r.grace_emulated; });
  }
};

/// A real ivshmem-plain device under vfio-pci (Linux 6.1, the guest of
/// tests/guest/run.sh): BAR0 256 B of 32-bit registers, BAR2
/// `shm_size` bytes of 64-bit prefetchable shared memory, config 256 bytes,
/// no VGA, no reset, no capabilities.
[[nodiscard]] inline expectations ivshmem_expectations(std::uint64_t shm_size = 16 * MiB) {
  constexpr std::uint32_t rwm = vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;
  expectations e;
  e.device_flags = vfio::device_flags::pci;
  e.reset_supported = false;
  e.config_size = 256;
  for (auto& r : e.regions) r.present = true;
  e.regions[0] = {true, 0x100, rwm, 0x100, false, false, false, false, false};
  e.regions[2] = {true, shm_size, rwm, shm_size, false, false, true, true, true};
  e.regions[7] = {true,  256,  vfio::region_flags::read | vfio::region_flags::write, 256, false, false, false,
                  false, false};
  e.regions[8].present = false;
  e.irqs = std::array<irq_expectation, vfio::pci_num_irqs>{{
      {true, 0, vfio::irq_flags::eventfd | vfio::irq_flags::maskable | vfio::irq_flags::automasked},
      {true, 0, vfio::irq_flags::eventfd | vfio::irq_flags::noresize},
      {true, 0, vfio::irq_flags::eventfd | vfio::irq_flags::noresize},
      {false, 0, 0},
      {true, 1, vfio::irq_flags::eventfd | vfio::irq_flags::noresize},
  }};
  return e;
}

namespace detail {

template <class H>
decltype(auto) file_of(H& handle) {
  if constexpr (vfio::device_file<H>)
    return (handle);
  else
    return file_of(*handle);
}

/// The errno of an ioctl() result, whatever its type: a negative integer
/// (kernel style), or a result<...>/status.
template <class R>
int ioctl_errno(const R& r) {
  if constexpr (std::is_integral_v<R>)
    return r < 0 ? static_cast<int>(-r) : 0;
  else
    return r.has_value() ? 0 : to_errno(r.error());
}

template <class F>
concept has_ioctl = requires(F& f, unsigned long request, void* arg) {
  f.ioctl(request, arg);
};

inline std::uint64_t page_size() {
  const long size = ::sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<std::uint64_t>(size) : 4096;
}

/// A byte that depends on the position and a seed.
inline std::byte pattern_byte(std::uint64_t at, unsigned seed) {
  return static_cast<std::byte>(((at * 131u) ^ (seed * 29u) ^ (at >> 8)) & 0xFF);
}

/// The outcome the rules predict for a transfer.
struct predicted {
  nvgrace::errc error{};
  std::size_t count = 0;         ///< returned count
  std::size_t memory_bytes = 0;  ///< of which come from / go to memory (the rest is 0xFF / dropped)
};

/// §5.1/§5.2 (Grace) and vfio-pci-core (plain): EINVAL at or past the end,
/// clipped at the end, memory part vs padding, the upstream short return.
inline predicted predict(const region_expectation& r, std::uint64_t offset, std::size_t count) {
  if (offset >= r.size) return {nvgrace::errc::invalid_argument, 0, 0};
  const auto clipped = static_cast<std::size_t>(std::min<std::uint64_t>(count, r.size - offset));
  const auto memory = offset < r.real_length
                          ? static_cast<std::size_t>(std::min<std::uint64_t>(clipped, r.real_length - offset))
                          : std::size_t{0};
  if (r.short_return && memory > 0) return {{}, memory, memory};
  return {{}, clipped, memory};
}

inline std::vector<std::byte> region_info_query(vfio::device_file auto& file, std::uint32_t index, std::uint32_t argsz,
                                                std::size_t buffer_size, nvgrace::errc& error) {
  std::vector<std::byte> buffer(buffer_size, std::byte{0xA5});
  store_le<std::uint32_t>(buffer, 0, argsz);
  store_le<std::uint32_t>(buffer, 4, 0);
  store_le<std::uint32_t>(buffer, 8, index);
  store_le<std::uint32_t>(buffer, 12, 0);
  const auto s = file.get_region_info(buffer);
  error = s ? nvgrace::errc{} : s.error();
  return buffer;
}

/// The boundary offsets of §5 / §10 E6 for a region: real length −1/0/+1,
/// BAR end −1/0/+1 (deduplicated, never negative).
inline std::vector<std::uint64_t> boundary_offsets(const region_expectation& r) {
  std::vector<std::uint64_t> out;
  for (const std::uint64_t edge : {r.real_length, r.size})
    for (const std::int64_t delta : {-1, 0, 1})
      if (edge > 0 || delta >= 0) out.push_back(edge + static_cast<std::uint64_t>(delta));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

template <class File>
std::uint32_t config_dword(File& file, std::uint64_t offset) {
  std::array<std::byte, 4> bytes{};
  const auto n = file.pread(bytes, vfio::file_offset(vfio::to_index(vfio::region::config), offset));
  REQUIRE(n.has_value());
  REQUIRE(*n == 4);
  return load_le<std::uint32_t>(bytes, 0);
}

template <class File>
void write_config_dword(File& file, std::uint64_t offset, std::uint32_t value) {
  std::array<std::byte, 4> bytes{};
  store_le<std::uint32_t>(bytes, 0, value);
  const auto n = file.pwrite(bytes, vfio::file_offset(vfio::to_index(vfio::region::config), offset));
  REQUIRE(n.has_value());
  REQUIRE(*n == 4);
}

// ---- the checks -------------------------------------------------------------------

template <class File>
void check_enumeration(File& file, const expectations& e) {
  const auto info = file.get_device_info();
  REQUIRE(info.has_value());
  CHECK(info->flags == e.device_flags);
  CHECK(((info->flags & vfio::device_flags::reset) != 0) == e.reset_supported);
  CHECK(info->num_regions == e.num_regions);
  CHECK(info->num_irqs == e.num_irqs);

  for (std::uint32_t index = 0; index < e.regions.size(); ++index) {
    CAPTURE(index);
    nvgrace::errc error{};
    static_cast<void>(region_info_query(file, index, vfio::region_info_size, vfio::region_info_size, error));
    CHECK(error == (e.regions[index].present ? nvgrace::errc{} : nvgrace::errc::invalid_argument));
  }
  nvgrace::errc error{};
  static_cast<void>(region_info_query(file, e.num_regions, vfio::region_info_size, vfio::region_info_size, error));
  CHECK(error == nvgrace::errc::invalid_argument);

  // The accessor sees the same set; an absent index does not shift the others.
  auto accessor = access::accessor<File>::open(file, access::map_none);
  REQUIRE(accessor.has_value());
  for (std::uint32_t index = 0; index < e.regions.size(); ++index) {
    CAPTURE(index);
    const auto r = accessor->find_region(index);
    CHECK((r.has_value()) == e.regions[index].present);
    if (r.has_value()) {
      CHECK(r->info.index == index);
      CHECK(r->size() == e.regions[index].size);
      CHECK(r->file_offset() == vfio::region_offset(index));
    }
  }

  if (e.irqs) {
    for (std::uint32_t index = 0; index < vfio::pci_num_irqs; ++index) {
      CAPTURE(index);
      const irq_expectation& x = (*e.irqs)[index];
      vfio::irq_info irq{sizeof(vfio::irq_info), 0, index, 0};
      const auto s = file.get_irq_info(irq);
      if (!x.present) {
        CHECK(s.error() == nvgrace::errc::invalid_argument);
        continue;
      }
      REQUIRE(s.has_value());
      CHECK(irq.count == x.count);
      CHECK(irq.flags == x.flags);
    }
    vfio::irq_info beyond{sizeof(vfio::irq_info), 0, e.num_irqs, 0};
    CHECK(file.get_irq_info(beyond).error() == nvgrace::errc::invalid_argument);
  }
}

template <class File>
void check_region_info_bytes(File& file, const expectations& e) {
  for (std::uint32_t index = 0; index < e.regions.size(); ++index) {
    const region_expectation& x = e.regions[index];
    if (!x.present) continue;
    CAPTURE(index);
    const std::uint32_t flags = x.flags | (x.grace_emulated ? vfio::region_flags::caps : 0u);
    nvgrace::errc error{};

    // argsz 31: EINVAL (§4.2 step 2).
    static_cast<void>(region_info_query(file, index, 31, 32, error));
    CHECK(error == nvgrace::errc::invalid_argument);

    // argsz 32: the struct; a Grace region asks for 64 and carries no caps yet.
    auto reply = region_info_query(file, index, 32, 32, error);
    REQUIRE(error == nvgrace::errc{});
    auto info = vfio::load_region_info(reply);
    CHECK(info.argsz == (x.grace_emulated ? 64u : 32u));
    CHECK(info.flags == flags);
    CHECK(info.index == index);
    CHECK(info.cap_offset == 0);
    CHECK(info.size == x.size);
    CHECK(info.offset == vfio::region_offset(index));

    // Full size (64): a Grace region's cap follows at 32; otherwise nothing
    // past the struct is written and argsz stays as the caller wrote it.
    reply = region_info_query(file, index, 64, 64, error);
    REQUIRE(error == nvgrace::errc{});
    info = vfio::load_region_info(reply);
    CHECK(info.argsz == 64);
    CHECK(info.flags == flags);
    CHECK(info.size == x.size);
    CHECK(info.offset == vfio::region_offset(index));
    if (x.grace_emulated) {
      CHECK(info.cap_offset == 32);
      CHECK(load_le<std::uint16_t>(reply, 32) == vfio::cap_id::sparse_mmap);
      CHECK(load_le<std::uint16_t>(reply, 34) == 1);  // version
      CHECK(load_le<std::uint32_t>(reply, 36) == 0);  // next: end of chain
      CHECK(load_le<std::uint32_t>(reply, 40) == 1);  // nr_areas
      CHECK(load_le<std::uint32_t>(reply, 44) == 0);  // reserved
      CHECK(load_le<std::uint64_t>(reply, 48) == 0);
      CHECK(load_le<std::uint64_t>(reply, 56) == x.real_length);
    } else {
      CHECK(info.cap_offset == 0);
      CHECK(std::all_of(reply.begin() + 32, reply.end(), [](std::byte b) { return b == std::byte{0xA5}; }));
    }

    // More than needed: argsz kept, nothing written past the reply.
    reply = region_info_query(file, index, 80, 80, error);
    REQUIRE(error == nvgrace::errc{});
    CHECK(load_le<std::uint32_t>(reply, 0) == 80);
    CHECK(std::all_of(reply.begin() + 64, reply.end(), [](std::byte b) { return b == std::byte{0xA5}; }));
  }
}

template <class File>
void check_sparse_caps(File& file, const expectations& e) {
  auto accessor = access::accessor<File>::open(file, access::map_none);
  REQUIRE(accessor.has_value());
  for (std::uint32_t index = 0; index < e.regions.size(); ++index) {
    const region_expectation& x = e.regions[index];
    if (!x.present) continue;
    CAPTURE(index);
    nvgrace::errc error{};
    const auto reply = region_info_query(file, index, 64, 64, error);
    REQUIRE(error == nvgrace::errc{});
    const auto caps = vfio::decode_region_caps(reply);
    REQUIRE(caps.has_value());
    CHECK(caps->sparse_mmap.has_value() == x.grace_emulated);
    CHECK(caps->unknown == 0);
    const auto r = accessor->find_region(index);
    REQUIRE(r.has_value());
    CHECK(r->has_sparse_mmap == x.grace_emulated);
    if (x.grace_emulated) {
      REQUIRE(caps->sparse_mmap->size() == 1);
      CHECK((*caps->sparse_mmap)[0].offset == 0);
      CHECK((*caps->sparse_mmap)[0].size == x.real_length);
      REQUIRE(r->area_count == 1);
      CHECK(r->areas[0] == access::area{0, x.real_length});
    }
  }
}

/// Seed `[from, to)` of a region's memory with pattern `seed` through pwrite,
/// in pieces that never reach past the real length (so no short return).
template <class File>
void seed(File& file, std::uint32_t index, std::uint64_t from, std::uint64_t to, unsigned seed_value) {
  std::vector<std::byte> bytes(static_cast<std::size_t>(to - from));
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = pattern_byte(from + i, seed_value);
  const auto n = file.pwrite(bytes, vfio::file_offset(index, from));
  REQUIRE(n.has_value());
  REQUIRE(*n == bytes.size());
}

template <class File>
void check_boundaries(File& file, const expectations& e) {
  constexpr std::size_t window = 32;
  for (std::uint32_t index = 0; index < e.regions.size(); ++index) {
    const region_expectation& x = e.regions[index];
    if (!x.present || !x.data || x.size == 0) continue;
    CAPTURE(index);
    const std::uint64_t seeded_from = x.real_length > window ? x.real_length - window : 0;
    seed(file, index, seeded_from, x.real_length, 1);
    // The bytes a read should see at `at`: the seed in memory, 0xFF past it.
    const auto expected_byte = [&](std::uint64_t at) {
      return at < x.real_length ? pattern_byte(at, 1) : std::byte{0xFF};
    };

    std::vector<std::pair<std::uint64_t, std::size_t>> cases;
    for (const std::uint64_t at : boundary_offsets(x)) {
      cases.emplace_back(at, 1);
      cases.emplace_back(at, 2);
      if (at >= 8) cases.emplace_back(at - 8, 16);  // crossing the edge
    }
    for (const auto& c : cases) {
      const std::uint64_t offset = c.first;
      const std::size_t count = c.second;
      if (offset < seeded_from) continue;  // only the seeded (known) part of memory
      CAPTURE(offset);
      CAPTURE(count);
      const predicted p = predict(x, offset, count);
      std::vector<std::byte> out(count, std::byte{0x5A});
      const auto n = file.pread(out, vfio::file_offset(index, offset));
      if (p.error != nvgrace::errc{}) {
        CHECK(n.error() == p.error);
        continue;
      }
      REQUIRE(n.has_value());
      CHECK(*n == p.count);
      for (std::size_t i = 0; i < count; ++i) {
        CAPTURE(i);
        if (i < p.count)
          CHECK(out[i] == expected_byte(offset + i));
        else
          CHECK(out[i] == std::byte{0x5A});  // never written past the returned count
      }
    }

    // Writes: the same cases, each followed by a read-back of the window.
    unsigned seed_value = 2;
    for (const auto& c : cases) {
      const std::uint64_t offset = c.first;
      const std::size_t count = c.second;
      if (offset < seeded_from) continue;
      CAPTURE(offset);
      CAPTURE(count);
      seed(file, index, seeded_from, x.real_length, 1);
      const predicted p = predict(x, offset, count);
      std::vector<std::byte> in(count);
      for (std::size_t i = 0; i < count; ++i) in[i] = pattern_byte(offset + i, seed_value);
      const auto n = file.pwrite(in, vfio::file_offset(index, offset));
      if (p.error != nvgrace::errc{}) {
        CHECK(n.error() == p.error);
        continue;
      }
      REQUIRE(n.has_value());
      CHECK(*n == p.count);
      // Read back [seeded_from, min(size, real + window)) one byte at a time
      // where needed to avoid the short return hiding the padding.
      const std::uint64_t until = std::min<std::uint64_t>(x.size, x.real_length + window);
      for (std::uint64_t at = seeded_from; at < until; ++at) {
        std::array<std::byte, 1> b{};
        const auto r = file.pread(b, vfio::file_offset(index, at));
        REQUIRE(r.has_value());
        REQUIRE(*r == 1);
        std::byte want = expected_byte(at);
        if (at >= offset && at - offset < p.memory_bytes) want = in[static_cast<std::size_t>(at - offset)];
        CAPTURE(at);
        CHECK(b[0] == want);
      }
      ++seed_value;
    }

    // The accessor routes an access that is not wholly mapped through the
    // device file: same count, same bytes as pread.
    auto accessor = access::accessor<File>::open(file);
    REQUIRE(accessor.has_value());
    seed(file, index, seeded_from, x.real_length, 1);
    const std::uint64_t across = x.real_length >= 8 ? x.real_length - 8 : 0;
    const predicted p = predict(x, across, 16);
    std::vector<std::byte> via_accessor(16, std::byte{0x5A});
    const auto n = accessor->read(index, across, via_accessor);
    if (p.error != nvgrace::errc{}) {
      CHECK(n.error() == p.error);
    } else {
      REQUIRE(n.has_value());
      CHECK(*n == p.count);
      for (std::size_t i = 0; i < p.count; ++i) CHECK(via_accessor[i] == expected_byte(across + i));
    }
  }
}

template <class File>
void check_bar_sizing(File& file, const expectations& e) {
  auto accessor = access::accessor<File>::open(file, access::map_none);
  REQUIRE(accessor.has_value());
  std::array<std::uint32_t, 7> before{};
  for (unsigned i = 0; i < 6; ++i) before[i] = config_dword(file, pci::reg::base_address(i));
  before[6] = config_dword(file, pci::reg::command) & 0xFFFF;

  const auto bars = accessor->size_bars();
  REQUIRE(bars.has_value());
  for (unsigned bar = 0; bar < 6; ++bar) {
    CAPTURE(bar);
    const region_expectation& x = e.regions[bar];
    const access::bar_info& got = (*bars)[bar];
    CHECK(got.bar == bar);
    if (bar > 0 && e.regions[bar - 1].bar_64bit && e.regions[bar - 1].size != 0) {
      CHECK(got.upper_half);
      CHECK_FALSE(got.implemented);
      continue;
    }
    CHECK_FALSE(got.upper_half);
    const bool implemented = x.present && x.size != 0;
    CHECK(got.implemented == implemented);
    CHECK(got.size == (implemented ? x.size : 0));
    if (implemented) {
      CHECK_FALSE(got.is_io);
      CHECK(got.is_64bit == x.bar_64bit);
      CHECK(got.prefetchable == x.bar_prefetchable);
    }
  }
  // Sizing restored every register it touched.
  for (unsigned i = 0; i < 6; ++i) {
    CAPTURE(i);
    CHECK(config_dword(file, pci::reg::base_address(i)) == before[i]);
  }
  CHECK((config_dword(file, pci::reg::command) & 0xFFFF) == before[6]);
}

template <class File>
void check_config_bounds(File& file, const expectations& e) {
  const std::uint32_t config = vfio::to_index(vfio::region::config);
  std::array<std::byte, 4> bytes{};
  auto n = file.pread(bytes, vfio::file_offset(config, e.config_size - 4));
  REQUIRE(n.has_value());
  CHECK(*n == 4);
  CHECK(file.pread(bytes, vfio::file_offset(config, e.config_size)).error() == nvgrace::errc::bad_address);
  CHECK(file.pread(bytes, vfio::file_offset(config, e.config_size - 2)).error() == nvgrace::errc::bad_address);
  n = file.pread(std::span<std::byte>(bytes).first(0), vfio::file_offset(config, e.config_size + 16));
  REQUIRE(n.has_value());
  CHECK(*n == 0);
  // The IDs are read-only.
  const std::uint32_t ids = config_dword(file, pci::reg::vendor_id);
  write_config_dword(file, pci::reg::vendor_id, ~ids);
  CHECK(config_dword(file, pci::reg::vendor_id) == ids);
}

template <class File>
void check_reset(File& file, const expectations& e) {
  if (!e.grace()) {
    const auto s = file.reset();
    CHECK(s.error() == (e.reset_supported ? nvgrace::errc{} : nvgrace::errc::invalid_argument));
    return;
  }
  for (const std::uint32_t index : {2u, 4u}) {
    const region_expectation& x = e.regions[index];
    if (!x.grace_emulated) continue;
    CAPTURE(index);
    const std::uint64_t at = pci::reg::base_address(index);
    write_config_dword(file, at, 0xFFFF'FFFFu);
    write_config_dword(file, at + 4, 0xFFFF'FFFFu);
    const std::uint64_t sized = ~(x.size - 1) | 0xC;
    CHECK(config_dword(file, at) == static_cast<std::uint32_t>(sized));
    CHECK(config_dword(file, at + 4) == static_cast<std::uint32_t>(sized >> 32));
  }
  const auto s = file.reset();
  CHECK(s.error() == (e.reset_supported ? nvgrace::errc{} : nvgrace::errc::invalid_argument));
  // Zeroed before the core reset runs, so even when it fails (§7.3).
  for (const std::uint32_t index : {2u, 4u}) {
    if (!e.regions[index].grace_emulated) continue;
    CAPTURE(index);
    CHECK(config_dword(file, pci::reg::base_address(index)) == 0x0000'000Cu);
    CHECK(config_dword(file, pci::reg::base_address(index) + 4) == 0);
  }
}

template <class File>
void check_ioeventfd(File& file, const expectations& e) {
  if constexpr (has_ioctl<File>) {
    if (!e.ioeventfd_enotty) return;
    for (const std::uint32_t index : {0u, 2u, 4u}) {  // every BAR, emulated or not (§10 E15)
      CAPTURE(index);
      vfio::device_ioeventfd request{sizeof(vfio::device_ioeventfd), 4, vfio::region_offset(index), 0, -1, 0};
      CHECK(ioctl_errno(file.ioctl(vfio::ioctl::device_ioeventfd, &request)) == ENOTTY);
    }
  } else {
    static_cast<void>(file);
    static_cast<void>(e);
  }
}

template <class File>
void check_mappings(File& file, const expectations& e) {
  auto accessor = access::accessor<File>::open(file);
  REQUIRE(accessor.has_value());
  const std::uint64_t page = page_size();
  for (std::uint32_t index = 0; index < e.regions.size(); ++index) {
    const region_expectation& x = e.regions[index];
    if (!x.present || !x.data || (x.flags & vfio::region_flags::mmap) == 0 || x.real_length < page) continue;
    CAPTURE(index);
    const auto r = accessor->find_region(index);
    REQUIRE(r.has_value());
    REQUIRE(r->mapped_count == 1);
    const access::mapped_area& m = r->mapped[0];
    CHECK(m.offset == 0);
    CHECK(m.length == align_down(x.real_length, page));
    const std::uint64_t alignment = std::min<std::uint64_t>(1 * GiB, std::bit_floor(m.length));
    CHECK(reinterpret_cast<std::uintptr_t>(m.base) % alignment == 0);

    // Through the mapping, then pread.
    const std::array<std::uint64_t, 3> spots{0, m.length / 2, m.length - 16};
    unsigned seed_value = 10;
    for (const std::uint64_t at : spots) {
      CAPTURE(at);
      std::array<std::byte, 16> in{};
      for (std::size_t i = 0; i < in.size(); ++i) in[i] = pattern_byte(at + i, seed_value);
      std::memcpy(m.base + at, in.data(), in.size());
      std::array<std::byte, 16> out{};
      const auto n = file.pread(out, vfio::file_offset(index, at));
      REQUIRE(n.has_value());
      CHECK(*n == 16);
      CHECK(out == in);
      ++seed_value;
    }
    // Through pwrite, then the mapping (and the accessor's mapped fast path).
    for (const std::uint64_t at : spots) {
      CAPTURE(at);
      std::array<std::byte, 16> in{};
      for (std::size_t i = 0; i < in.size(); ++i) in[i] = pattern_byte(at + i, seed_value);
      const auto n = file.pwrite(in, vfio::file_offset(index, at));
      REQUIRE(n.has_value());
      CHECK(*n == 16);
      std::array<std::byte, 16> out{};
      std::memcpy(out.data(), m.base + at, out.size());
      CHECK(out == in);
      std::array<std::byte, 16> via{};
      const auto v = accessor->read(index, at, via);
      REQUIRE(v.has_value());
      CHECK(*v == 16);
      CHECK(via == in);
      ++seed_value;
    }
    // No mapping reaches past the real memory (§6.1 E9) or the BAR.
    const std::uint64_t too_long = align_down(x.real_length, page) + page;
    const auto refused = file.mmap(nullptr, too_long, PROT_READ, vfio::region_offset(index));
    CHECK(refused.error() == nvgrace::errc::invalid_argument);
    if (refused) ::munmap(*refused, static_cast<std::size_t>(too_long));
  }
}

}  // namespace detail

/// Run the whole suite against devices made by `make` (see the file comment).
/// Call it from inside a doctest TEST_CASE.
template <class Factory>
void run_conformance(Factory&& make, const expectations& e) {
  auto handle = make();
  if constexpr (!vfio::device_file<decltype(handle)>) REQUIRE(static_cast<bool>(handle));
  auto& file = detail::file_of(handle);
  using file_type = std::remove_cvref_t<decltype(file)>;
  static_assert(vfio::device_file<file_type>);

  SUBCASE("§4 device info, region enumeration, IRQ info") { detail::check_enumeration(file, e); }
  SUBCASE("§4.2 region-info bytes for argsz 31, 32, full and larger") { detail::check_region_info_bytes(file, e); }
  SUBCASE("§4.3 sparse-mmap capabilities") { detail::check_sparse_caps(file, e); }
  SUBCASE("§5 read/write at the real length and BAR end, and across them") { detail::check_boundaries(file, e); }
  SUBCASE("§3 BAR sizing through config space restores every register") { detail::check_bar_sizing(file, e); }
  SUBCASE("§3.2 config-space bounds and read-only IDs") { detail::check_config_bounds(file, e); }
  SUBCASE("§7.3 reset clears the emulated BARs") { detail::check_reset(file, e); }
  SUBCASE("§9 IOEVENTFD is ENOTTY") { detail::check_ioeventfd(file, e); }
  SUBCASE("§6 mapping and pread/pwrite see the same bytes") { detail::check_mappings(file, e); }
}

}  // namespace nvgrace::conformance
