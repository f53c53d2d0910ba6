// The same window accesses as the copy path, through the two ways a VMM reaches
// an in-process device:
//
//   device/...     shim::memfd_device::pread / pwrite, the device-file members a
//                  VMM calls (and the accessor's slow path): decode the file
//                  position, pick the region, check the device state, copy.
//   accessor/...   access::accessor<shim::memfd_device>::read / write. An access
//                  wholly inside the mapped sparse area (the real memory) is
//                  the copy path on the accessor's own mapping, no device call;
//                  one that straddles the end of the memory or lies in the
//                  padding is outside every mapped area, so it goes to the
//                  device's pread / pwrite, as it would on a real device.
//
// cached = usemem (region 4), uncached = Hopper resmem (region 2). The device
// is a Grace Hopper with 1.75 GiB of (sparse, memfd) memory: usemem is
// 512 MiB behind a 1 GiB BAR, resmem 1.25 GiB behind a 2 GiB BAR, so a 16 MiB
// access fits wholly in memory or wholly in padding in both. The resmem return
// follows the documented semantics (the full count, §5.1), not upstream's short
// return. Every page an access touches is faulted in, in both the device's
// mapping and the accessor's, before anything is timed.
#include "bench_common.hpp"

#include <nvgrace/access/accessor.hpp>
#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <memory>
#include <optional>

namespace nvgrace_bench {
namespace {

using nvgrace::mem::caching;
using shim_device = nvgrace::shim::memfd_device;
using shim_accessor = nvgrace::access::accessor<shim_device>;

/// Hopper memory: 1 GiB carve-out + 768 MiB usable → usemem 512 MiB (BAR 1 GiB), resmem 1.25 GiB (BAR 2 GiB).
inline constexpr std::uint64_t device_memory_length = 1 * nvgrace::GiB + 768 * MiB;

[[nodiscard]] std::uint32_t region_of(caching c) {
  return c == caching::cached ? nvgrace::grace::usemem_index : nvgrace::grace::resmem_index;
}

/// The device and the accessor every device and accessor benchmark calls,
/// placed as a VMM that holds them by value would reach them, and where no
/// copy's stores alias them:
/// - at a fixed address, not behind a pointer in each benchmark's closure:
///   the baseline reaches its memory with one load of a pointer it holds, and
///   a loop of copies waits for every dependent load before its copy can
///   start, so an extra pointer would cost the path a load the baseline does
///   not pay (measured: 1.19–1.32 × instead of 1.05–1.09 × for a device write
///   straddling 4 KiB);
/// - at page offset 512: a load whose page offset matches a store of the
///   previous copy still in flight waits for it (4 KiB aliasing), and the
///   copies measured write page offsets 0x800–0xfff (the linker had put the
///   device at 0x890: 1.13–1.16 ×).
/// docs/performance.md ("Where the time went") has the figures.
struct alignas(4096) placed_objects {
  std::array<std::byte, 512> lead{};
  std::optional<shim_device> device;
  std::optional<shim_accessor> accessor;
};
constinit placed_objects placed;

/// Create placed.device and placed.accessor, their memory faulted in.
void create_placed_objects() {
  std::optional<shim_device>& device = placed.device;
  std::optional<shim_accessor>& accessor = placed.accessor;
  auto options = nvgrace::shim::hopper(device_memory_length);
  options.resmem_quirk = nvgrace::grace::resmem_return::documented;
  auto made = shim_device::create(options);
  if (!made) std::abort();
  device.emplace(std::move(*made));
  const auto layout = device->layout();
  if (!layout) std::abort();
  const window_lengths lengths{layout->usemem.real_length, layout->resmem.real_length};
  for (const caching c : {caching::cached, caching::uncached}) {
    const nvgrace::grace::memregion& r = c == caching::cached ? layout->usemem : layout->resmem;
    if (r.padding() < 16 * MiB || r.real_length < 16 * MiB) std::abort();
  }

  // The open-time reset left reset_done set: the first access polls
  // readiness (the registers say ready) and clears it, so no timed access does.
  std::array<std::byte, 8> probe{};
  if (!device->pread(probe, nvgrace::vfio::region_offset(nvgrace::grace::usemem_index))) std::abort();
  if (device->reset_done()) std::abort();

  // Fault in the device's memory where the benchmarks touch it: the first
  // and the last 16 MiB of each region's real memory.
  for (const caching c : {caching::cached, caching::uncached}) {
    const nvgrace::mem::memory_view v = device->region_memory(region_of(c)).value();
    if (v.caching != c) std::abort();
    std::memset(v.base, 0x3C, 16 * MiB);
    std::memset(v.base + v.length - 16 * MiB, 0x3C, 16 * MiB);
  }

  auto opened = shim_accessor::open(*device);
  if (!opened) std::abort();
  accessor.emplace(std::move(*opened));
  // The accessor maps each region's sparse area (its whole real memory) and
  // treats resmem as uncached; fault in its mapping too.
  for (const caching c : {caching::cached, caching::uncached}) {
    const auto r = accessor->find_region(region_of(c));
    if (!r.has_value() || r->caching != c || r->mapped_count != 1) std::abort();
    const nvgrace::access::mapped_area& m = r->mapped[0];
    if (m.offset != 0 || m.length != lengths.of(c)) std::abort();
    for (std::uint64_t at = 0; at < 16 * MiB; at += 4096) {
      static_cast<void>(*reinterpret_cast<volatile const unsigned char*>(m.base + at));
      static_cast<void>(*reinterpret_cast<volatile const unsigned char*>(m.base + m.length - 16 * MiB + at));
    }
  }
}

/// `placed`, its objects created on the first call.
placed_objects& created() {
  static const bool once = (create_placed_objects(), true);
  static_cast<void>(once);
  return placed;
}

}  // namespace

void register_device_benchmarks() {
  // The lengths come from the layout rules, so the device is created only when
  // a device or accessor benchmark runs.
  const auto layout = nvgrace::grace::derive_layout(nvgrace::shim::default_memory_base, device_memory_length,
                                                    nvgrace::grace::generation::hopper);
  if (!layout) std::abort();
  const window_lengths lengths{layout->usemem.real_length, layout->resmem.real_length};

  // A VMM adds the region's file offset to the offset inside the region, then
  // checks the result; both are part of what is measured.
  register_window_family(
      "device",
      [](caching c) {
        static_cast<void>(created());
        return [base = nvgrace::vfio::region_offset(region_of(c))](std::uint64_t offset, std::span<std::byte> out) {
          return placed.device->pread(out, base + offset).value_or(0);
        };
      },
      [](caching c) {
        static_cast<void>(created());
        return
            [base = nvgrace::vfio::region_offset(region_of(c))](std::uint64_t offset, std::span<const std::byte> in) {
              return placed.device->pwrite(in, base + offset).value_or(0);
            };
      },
      [](caching c, split) -> const std::byte* { return created().device->region_memory(region_of(c))->base; },
      lengths);

  register_window_family(
      "accessor",
      [](caching c) {
        static_cast<void>(created());
        return [index = region_of(c)](std::uint64_t offset, std::span<std::byte> out) {
          return placed.accessor->read(index, offset, out).value_or(0);
        };
      },
      [](caching c) {
        static_cast<void>(created());
        return [index = region_of(c)](std::uint64_t offset, std::span<const std::byte> in) {
          return placed.accessor->write(index, offset, in).value_or(0);
        };
      },
      // In memory: the accessor's own mapping; otherwise the device copies from its memory.
      [](caching c, split s) -> const std::byte* {
        placed_objects& f = created();
        if (s == split::in_memory) return f.accessor->find_region(region_of(c))->mapped[0].base;
        return f.device->region_memory(region_of(c))->base;
      },
      lengths);
}

}  // namespace nvgrace_bench
