// The VMM-side accessor (access/accessor.hpp) over the in-process device,
// wrapped where a test must see or steer what crosses the device-file boundary.
#include "shim_fixtures.hpp"

#include <nvgrace/access/accessor.hpp>
#include <nvgrace/backend/shim/shim.hpp>

#include <doctest/doctest.h>

#include <sys/mman.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

using namespace device_test;
using access::accessor;

namespace {

constexpr std::uint32_t resmem = 2;
constexpr std::uint32_t usemem = 4;

/// A device file that forwards to the shim and records (or tampers with)
/// what passes: calls per kind, mappings made, region-info replies.
struct recording_file {
  explicit recording_file(shim_device* device) : inner(device) {}

  shim_device* inner = nullptr;
  int preads = 0;
  int pwrites = 0;
  std::array<int, 16> region_info_calls{};
  std::optional<std::uint32_t> fail_mmap_region;
  std::vector<std::pair<void*, std::uint64_t>> mappings;
  /// Called on each successful region-info reply with the argsz asked for.
  std::function<void(std::span<std::byte>, std::uint32_t)> tamper;

  result<vfio::device_info> get_device_info() { return inner->get_device_info(); }
  status get_region_info(std::span<std::byte> buffer) {
    const std::uint32_t argsz = load_le<std::uint32_t>(buffer, 0);
    const std::uint32_t index = load_le<std::uint32_t>(buffer, 8);
    if (index < region_info_calls.size()) ++region_info_calls[index];
    auto s = inner->get_region_info(buffer);
    if (s && tamper) tamper(buffer, argsz);
    return s;
  }
  status get_irq_info(vfio::irq_info& irq) { return inner->get_irq_info(irq); }
  status reset() { return inner->reset(); }
  result<std::size_t> pread(std::span<std::byte> b, std::uint64_t pos) {
    ++preads;
    return inner->pread(b, pos);
  }
  result<std::size_t> pwrite(std::span<const std::byte> b, std::uint64_t pos) {
    ++pwrites;
    return inner->pwrite(b, pos);
  }
  result<void*> mmap(void* addr, std::uint64_t length, int prot, std::uint64_t pos) {
    if (fail_mmap_region && vfio::region_index_of(pos) == *fail_mmap_region) return nvgrace::errc::not_enough_memory;
    auto p = inner->mmap(addr, length, prot, pos);
    if (p) mappings.emplace_back(*p, length);
    return p;
  }
};
static_assert(vfio::device_file<recording_file>);

bool is_mapped(void* address) {
  unsigned char resident = 0;
  return ::mincore(address, 4096, &resident) == 0;
}

}  // namespace

TEST_CASE("accessor §4: regions by index; VGA's EINVAL marks it absent without shifting config") {
  auto d = make_hopper();
  auto a = accessor<shim_device>::open(d, access::map_none);
  REQUIRE(a.has_value());
  CHECK(a->region_count() == 9);
  CHECK(!a->find_region(8).has_value());
  CHECK(!a->find_region(9).has_value());
  const auto config = a->find_region(7);
  REQUIRE(config.has_value());
  CHECK(config->info.index == 7);
  CHECK(config->size() == 4096);
  CHECK(config->flags() == 0x3);
  const auto bar1 = a->find_region(1);
  REQUIRE(bar1.has_value());  // present, but empty
  CHECK(bar1->size() == 0);
  CHECK(a->device_info().num_irqs == 5);
}

TEST_CASE("accessor §4.2: the argsz retry loop takes every field from the final reply") {
  auto d = make_hopper();
  recording_file f(&d);
  // A reply to the short query carries a stale size; only the final one counts.
  f.tamper = [](std::span<std::byte> reply, std::uint32_t argsz) {
    if (load_le<std::uint32_t>(reply, 8) == usemem && argsz < 64) store_le<std::uint64_t>(reply, 16, 0x1234);
  };
  auto a = accessor<recording_file>::open(f, access::map_none);
  REQUIRE(a.has_value());
  const auto r = a->find_region(usemem);
  REQUIRE(r.has_value());
  CHECK(r->size() == hopper_usemem_bar);
  CHECK(r->info.argsz == 64);
  CHECK(r->info.cap_offset == 32);
  CHECK(f.region_info_calls[usemem] == 2);  // 32, then 64
  CHECK(f.region_info_calls[0] == 1);       // no caps: one query
  REQUIRE(r->area_count == 1);
  CHECK(r->areas[0] == access::area{0, hopper_usemem_real});
}

TEST_CASE("accessor §4.2: a device that keeps asking for more is EPROTO; one asking too much is E2BIG") {
  auto d = make_hopper();
  recording_file f(&d);
  f.tamper = [](std::span<std::byte> reply, std::uint32_t argsz) {
    if (load_le<std::uint32_t>(reply, 8) == usemem) store_le<std::uint32_t>(reply, 0, argsz + 8);
  };
  CHECK(accessor<recording_file>::open(f).error() == nvgrace::errc::protocol_error);
  CHECK(f.region_info_calls[usemem] == static_cast<int>(access::region_info_attempts));
  f.tamper = [](std::span<std::byte> reply, std::uint32_t) {
    if (load_le<std::uint32_t>(reply, 8) == usemem) store_le<std::uint32_t>(reply, 0, access::max_region_info_size + 1);
  };
  CHECK(accessor<recording_file>::open(f).error() == nvgrace::errc::argument_list_too_long);
  // A malformed chain is an error, not "no caps".
  f.tamper = [](std::span<std::byte> reply, std::uint32_t argsz) {
    if (load_le<std::uint32_t>(reply, 8) == usemem && argsz >= 64) store_le<std::uint32_t>(reply, 12, 8);
  };
  CHECK(accessor<recording_file>::open(f).error() == nvgrace::errc::bad_message);
}

TEST_CASE("accessor §6: sparse areas are mapped at huge-page-aligned addresses") {
  auto d = make_hopper();
  auto a = accessor<shim_device>::open(d);
  REQUIRE(a.has_value());
  const auto res = a->find_region(resmem);
  const auto use = a->find_region(usemem);
  REQUIRE(res.has_value());
  REQUIRE(use.has_value());
  REQUIRE(res->mapped_count == 1);
  REQUIRE(use->mapped_count == 1);
  CHECK(res->mapped[0].length == hopper_resmem_real);
  CHECK(reinterpret_cast<std::uintptr_t>(res->mapped[0].base) % GiB == 0);
  CHECK(use->mapped[0].length == hopper_usemem_real);
  CHECK(reinterpret_cast<std::uintptr_t>(use->mapped[0].base) % (512 * MiB) == 0);
  CHECK(res->caching == mem::caching::uncached);
  CHECK(use->caching == mem::caching::cached);
  // BAR0 has no sparse cap: the whole 16 MiB region is one area.
  REQUIRE(a->find_region(0)->mapped_count == 1);
  CHECK(a->find_region(0)->mapped[0].length == 16 * MiB);
  CHECK(reinterpret_cast<std::uintptr_t>(a->find_region(0)->mapped[0].base) % (16 * MiB) == 0);
  // The padding around each mapping was given back.
  CHECK_FALSE(is_mapped(use->mapped[0].base + hopper_usemem_real));
}

TEST_CASE("accessor §6: a failing mapping unwinds every earlier one") {
  auto d = make_hopper();
  recording_file f(&d);
  f.fail_mmap_region = usemem;
  CHECK(accessor<recording_file>::open(f).error() == nvgrace::errc::not_enough_memory);
  REQUIRE(f.mappings.size() == 2);  // BAR0 and resmem were mapped first
  for (const auto& [address, length] : f.mappings) CHECK_FALSE(is_mapped(address));
}

TEST_CASE("accessor §6: destruction unmaps; a move carries the mappings along") {
  auto d = make_hopper();
  void* base = nullptr;
  {
    auto a = accessor<shim_device>::open(d);
    REQUIRE(a.has_value());
    accessor<shim_device> moved = std::move(*a);
    base = moved.find_region(usemem)->mapped[0].base;
    CHECK(is_mapped(base));
  }
  CHECK_FALSE(is_mapped(base));
}

TEST_CASE("accessor §5: accesses inside a mapping use the copy path; others are one pread or pwrite") {
  auto d = make_hopper();
  recording_file f(&d);
  auto a = accessor<recording_file>::open(f);
  REQUIRE(a.has_value());
  const auto data = bytes_of({1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(a->write(usemem, 64, data).value() == 8);
  std::array<std::byte, 8> out{};
  CHECK(a->read(usemem, 64, out).value() == 8);
  CHECK(std::equal(out.begin(), out.end(), data.begin()));
  CHECK(a->read(resmem, hopper_resmem_real - 8, out).value() == 8);  // last bytes of the mapping
  CHECK(f.preads == 0);
  CHECK(f.pwrites == 0);
  // The device sees the bytes written through the mapping.
  CHECK(d.pread(out, at(usemem, 64)).value() == 8);
  CHECK(std::equal(out.begin(), out.end(), data.begin()));

  // Straddling the real end: one call, whatever count the device gives.
  std::array<std::byte, 16> wide{};
  CHECK(a->read(usemem, hopper_usemem_real - 8, wide).value() == 16);
  CHECK(f.preads == 1);
  CHECK(a->read(resmem, hopper_resmem_real - 8, wide).value() == 8);  // the upstream short return stays visible
  CHECK(f.preads == 2);
  CHECK(a->write(usemem, hopper_usemem_real - 8, wide).value() == 16);
  CHECK(f.pwrites == 1);
  CHECK(a->read(usemem, hopper_usemem_bar, wide).error() == nvgrace::errc::invalid_argument);
  CHECK(a->read(7, 0, out).value() == 8);                                // config: never mapped
  CHECK(a->read(8, 0, out).error() == nvgrace::errc::invalid_argument);  // absent: the device says EINVAL
  CHECK(f.preads == 5);
  CHECK(a->read(9, 0, out).error() == nvgrace::errc::invalid_argument);  // beyond num_regions: no call
  CHECK(a->read(usemem, vfio::offset_mask + 1, out).error() == nvgrace::errc::invalid_argument);
  CHECK(f.preads == 5);
  // Zero bytes are the device's business (a read there runs the readiness check).
  CHECK(a->read(usemem, 0, std::span<std::byte>(out).first(0)).value() == 0);
  CHECK(f.preads == 6);
}

TEST_CASE("accessor: without mappings everything goes through the device file") {
  auto d = make_hopper();
  recording_file f(&d);
  auto a = accessor<recording_file>::open(f, access::map_none);
  REQUIRE(a.has_value());
  CHECK(f.mappings.empty());
  std::array<std::byte, 8> out{};
  CHECK(a->read(usemem, 0, out).value() == 8);
  CHECK(f.preads == 1);
  REQUIRE(a->map_areas().has_value());
  CHECK(f.mappings.size() == 3);
  CHECK(a->read(usemem, 0, out).value() == 8);
  CHECK(f.preads == 1);
  a->unmap_areas();
  CHECK_FALSE(is_mapped(f.mappings[0].first));
}

TEST_CASE("accessor §3: config helpers of 1, 2, 4 and 8 bytes") {
  auto d = make_hopper();
  auto a = accessor<shim_device>::open(d, access::map_none);
  REQUIRE(a.has_value());
  CHECK(a->config_read<std::uint8_t>(0x0B).value() == 0x03);
  CHECK(a->config_read<std::uint16_t>(0x00).value() == 0x10DE);
  CHECK(a->config_read<std::uint32_t>(0x00).value() == 0x2342'10DEu);
  CHECK(a->config_read<std::uint64_t>(0x20).value() == 0xC);
  CHECK(a->config_read<std::uint32_t>(4096).error() == nvgrace::errc::bad_address);
  CHECK(a->config_write<std::uint64_t>(0x14, ~std::uint64_t{0}).value() == 4);  // §3.3 E3
  CHECK(d.emulated_bar_raw(resmem) == 0xFFFF'FFFFu);
  CHECK(a->config_write<std::uint8_t>(0x3C, 0x0B).value() == 1);
  CHECK(a->config_read<std::uint8_t>(0x3C).value() == 0x0B);
}

TEST_CASE("accessor §3: BAR sizing saves and restores the command register, decode off meanwhile") {
  auto d = make(shim::plain(16 * MiB, 0));
  recording_file f(&d);
  auto a = accessor<recording_file>::open(f, access::map_none);
  REQUIRE(a.has_value());
  REQUIRE(a->config_write<std::uint16_t>(0x04, 0x0006).value() == 2);
  bool decode_seen_off = false;
  f.tamper = nullptr;
  const auto bars = a->size_bars();
  REQUIRE(bars.has_value());
  decode_seen_off = !d.memory_enabled();  // restored by now
  CHECK_FALSE(decode_seen_off);
  CHECK(a->config_read<std::uint16_t>(0x04).value() == 0x0006);
  CHECK((*bars)[0] == access::bar_info{0, true, false, false, true, false, 16 * MiB});
  CHECK((*bars)[1].upper_half);
  CHECK((*bars)[2] == access::bar_info{2, true, false, false, true, true, 16 * MiB});
  CHECK((*bars)[3].upper_half);
  CHECK((*bars)[4] == access::bar_info{4, false, false, false, false, false, 0});
  const auto one = a->size_bar(2);
  REQUIRE(one.has_value());
  CHECK(*one == (*bars)[2]);
}

TEST_CASE("accessor: caching comes from the caller's policy, else from the device, else cached") {
  // The in-process device says how its regions are touched: Blackwell's index 2 is a real BAR.
  auto b = make(shim::blackwell(blackwell_length));
  auto a = access::open(b, access::map_none);
  REQUIRE(a.has_value());
  CHECK(a->find_region(resmem)->caching == mem::caching::cached);
  CHECK(a->find_region(0)->caching == mem::caching::uncached);  // BAR0 holds registers
  auto h = make_hopper();
  auto d = access::open(h, access::map_none);
  REQUIRE(d.has_value());
  CHECK(d->find_region(resmem)->caching == mem::caching::uncached);
  CHECK(d->find_region(usemem)->caching == mem::caching::cached);
  // The caller's policy wins, whatever the device says.
  auto o = access::open(h, access::map_none.with_uncached(1u << usemem));
  REQUIRE(o.has_value());
  CHECK(o->find_region(resmem)->caching == mem::caching::cached);
  CHECK(o->find_region(usemem)->caching == mem::caching::uncached);
  // A device that cannot say (the recording wrapper has no region_caching): cached, unless
  // the caller applies the Grace rule.
  recording_file file(&h);
  auto plain = access::open(file, access::map_none);
  REQUIRE(plain.has_value());
  CHECK(plain->find_region(resmem)->caching == mem::caching::cached);
  auto graced = access::open(file, access::map_none.with_uncached(grace::uncached_regions(*h.layout())));
  REQUIRE(graced.has_value());
  CHECK(graced->find_region(resmem)->caching == mem::caching::uncached);
  CHECK(graced->find_region(usemem)->caching == mem::caching::cached);
  static_assert(grace::uncached_regions(grace::generation::hopper) == 1u << 2);
  static_assert(grace::uncached_regions(grace::generation::blackwell) == 0);
}

TEST_CASE("accessor: buffers of unsigned char and std::uint8_t work like std::byte ones") {
  auto d = make_hopper();
  auto a = access::open(d);
  REQUIRE(a.has_value());
  const std::array<std::uint8_t, 4> out{0xDE, 0xAD, 0xBE, 0xEF};
  CHECK(a->write(usemem, 100, std::span<const std::uint8_t>(out)).value() == 4);
  std::array<unsigned char, 4> in{};
  CHECK(a->read(usemem, 100, std::span<unsigned char>(in)).value() == 4);
  CHECK(in == std::array<unsigned char, 4>{0xDE, 0xAD, 0xBE, 0xEF});
  std::array<std::byte, 4> raw{};
  CHECK(a->read(usemem, 100, raw).value() == 4);
  CHECK(raw[3] == std::byte{0xEF});
}

TEST_CASE("accessor: accesses inside the mapping (words inline) stay in process and give what the device gives") {
  auto options = shim::hopper(hopper_length + 5);  // resmem's last 5 bytes are a partial page: not mapped
  options.resmem_quirk = grace::resmem_return::documented;
  auto d = make(options);
  recording_file f(&d);
  auto a = accessor<recording_file>::open(f);
  REQUIRE(a.has_value());
  const std::uint64_t real = hopper_resmem_real + 5;
  const auto r = a->find_region(resmem);
  REQUIRE(r.has_value());
  REQUIRE(r->mapped_count == 1);
  const std::uint64_t mapped_end = r->mapped[0].offset + r->mapped[0].length;
  REQUIRE(mapped_end == hopper_resmem_real);
  std::byte* const memory = d.region_memory(resmem)->base;
  for (std::uint64_t i = 0; i < 64; ++i) memory[real - 40 + i] = static_cast<std::byte>(0xC0 + i);  // into the padding

  int mismatches = 0;
  for (std::uint64_t offset = mapped_end - 24; offset <= real + 8; ++offset)
    for (const std::size_t count : {1u, 2u, 3u, 4u, 8u, 16u}) {
      const bool inside = offset + count <= mapped_end;  // a word inline, anything else the copy path
      std::array<std::byte, 16> want{};
      std::array<std::byte, 16> got{};
      want.fill(std::byte{0x11});
      got.fill(std::byte{0x11});
      const auto n = d.pread(std::span(want).first(count), at(resmem, offset));
      const int preads = f.preads;
      const auto m = a->read(resmem, offset, std::span(got).first(count));
      const bool ok =
          n.has_value() == m.has_value() && (!n || *n == *m) && want == got && f.preads == preads + (inside ? 0 : 1);
      if (!ok) {
        ++mismatches;
        MESSAGE("read offset " << offset << " count " << count);
      }
    }
  CHECK(mismatches == 0);

  // Writes: a word inside the mapping lands in memory without a pwrite; one
  // over the mapping's end is one pwrite, its padding part dropped.
  const auto data = bytes_of({1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(a->write(resmem, mapped_end - 8, data).value() == 8);
  CHECK(f.pwrites == 0);
  CHECK(std::equal(data.begin(), data.end(), memory + mapped_end - 8));
  CHECK(a->write(resmem, real - 3, data).value() == 8);
  CHECK(f.pwrites == 1);
  CHECK(std::equal(data.begin(), data.begin() + 3, memory + real - 3));
  CHECK(a->write(resmem, mapped_end - 4, std::span<const std::byte>(data).first(3)).value() == 3);  // not a word
  CHECK(f.pwrites == 1);
  CHECK(std::equal(data.begin(), data.begin() + 3, memory + mapped_end - 4));
  CHECK(a->write(resmem, mapped_end - 2, std::span<const std::byte>(data).first(4)).value() == 4);  // over the end
  CHECK(f.pwrites == 2);
  CHECK(std::equal(data.begin(), data.begin() + 4, memory + mapped_end - 2));
}

TEST_CASE("accessor: after unmapping or a move, no access goes through a stale mapping") {
  auto d = make_hopper();
  recording_file f(&d);
  auto a = accessor<recording_file>::open(f);
  REQUIRE(a.has_value());
  const auto data = bytes_of({9, 8, 7, 6, 5, 4, 3, 2});
  REQUIRE(a->write(usemem, 64, data).value() == 8);
  REQUIRE(f.pwrites == 0);

  accessor<recording_file> moved = std::move(*a);
  std::array<std::byte, 8> out{};
  CHECK(a->read(usemem, 64, out).error() == nvgrace::errc::invalid_argument);  // NOLINT: moved-from on purpose
  CHECK(f.preads == 0);
  CHECK(moved.read(usemem, 64, out).value() == 8);
  CHECK(out == std::array<std::byte, 8>{std::byte{9}, std::byte{8}, std::byte{7}, std::byte{6}, std::byte{5},
                                        std::byte{4}, std::byte{3}, std::byte{2}});
  CHECK(f.preads == 0);

  moved.unmap_areas();
  out.fill(std::byte{0});
  CHECK(moved.read(usemem, 64, out).value() == 8);
  CHECK(f.preads == 1);
  CHECK(out[0] == std::byte{9});
  CHECK(moved.write(usemem, 64, data).value() == 8);
  CHECK(f.pwrites == 1);
}
