// The real Grace device (backend/shim) served over vfio-user: what a VMM sees
// on the wire for the Hopper carve-up (§2.3, §4.3, §5.1 E7), and the same
// device reached again through vfio_user::client.

#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>

#include "raw_peer.hpp"
#include "requests.hpp"
#include "shim_device.hpp"

#include <doctest/doctest.h>

#include <sys/mman.h>
#include <sys/stat.h>

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using namespace nvgrace::vfio_user::testing;

namespace {

// Hopper, 1.5 GiB + 300 MiB: usemem 512 MiB behind a 1 GiB BAR (E1 sizing),
// resmem 1324 MiB (uncached, from offset 512 MiB) behind a 2 GiB BAR (§2.3).
constexpr std::uint64_t memlength = 1536 * MiB + 300 * MiB;
constexpr std::uint64_t use_len = 512 * MiB;
constexpr std::uint64_t use_bar = 1 * GiB;
constexpr std::uint64_t res_len = memlength - use_len;
constexpr std::uint64_t res_bar = 2 * GiB;

shim::device_options hopper(grace::resmem_return quirk = grace::resmem_return::upstream_short) {
  auto options = shim::hopper(memlength);
  options.resmem_quirk = quirk;
  return options;
}

struct fixture {
  shim_device device;
  threaded_server<shim_device> server;
  raw_peer peer;
  explicit fixture(const shim::device_options& options = hopper())
      : device(make_shim(options)), server(device), peer(server.connect()) {
    peer.negotiate();
  }
};

bool same_file(int a, int b) {
  struct stat sa {
  }, sb{};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

}  // namespace

TEST_CASE("§4.3 vfio-user P6 Hopper usemem (region 4) on the wire: 1 GiB BAR, area {0, 512 MiB}, fd at offset 0") {
  fixture f;
  auto first = f.peer.call(make_message(1, command::device_get_region_info, region_info_req(32, 4)));
  CHECK_REPLY(first, 1, command::device_get_region_info, 32);
  // The wire form of the short reply: argsz = needed, no CAPS (the chain is not in it).
  CHECK(first.payload == bytes_builder().u32(64).u32(0x7).u32(4).u32(0).u64(use_bar).u64(0).bytes());
  CHECK(first.fds.empty());
  auto full = f.peer.call(make_message(2, command::device_get_region_info, region_info_req(64, 4)));
  CHECK_REPLY(full, 2, command::device_get_region_info, 64);
  CHECK(full.payload == bytes_builder()
                            .u32(64)
                            .u32(0xF)
                            .u32(4)
                            .u32(32)
                            .u64(use_bar)
                            .u64(0)
                            .u16(1)
                            .u16(1)
                            .u32(0)
                            .u32(1)
                            .u32(0)
                            .u64(0)
                            .u64(use_len)
                            .bytes());
  REQUIRE(full.fds.size() == 1);
  CHECK(same_file(full.fds[0].get(), f.device.gpu_memory().source().fd));
}

TEST_CASE("§4.3 vfio-user P6 Hopper resmem (region 2) on the wire: 2 GiB BAR, the fd offset is where resmem starts") {
  fixture f;
  auto full = f.peer.call(make_message(3, command::device_get_region_info, region_info_req(64, 2)));
  CHECK_REPLY(full, 3, command::device_get_region_info, 64);
  CHECK(full.payload == bytes_builder()
                            .u32(64)
                            .u32(0xF)
                            .u32(2)
                            .u32(32)
                            .u64(res_bar)
                            .u64(use_len)
                            .u16(1)
                            .u16(1)
                            .u32(0)
                            .u32(1)
                            .u32(0)
                            .u64(0)
                            .u64(res_len)
                            .bytes());
  CHECK(full.fds.size() == 1);
}

TEST_CASE("§5.1 E7 vfio-user P7 a resmem read crossing its real length comes back short (upstream's return)") {
  fixture f;
  gpu_poke(f.device, memlength - 4, bytes_builder().u32(0xA1B2C3D4).bytes());
  auto r = f.peer.call(make_message(4, command::region_read, read_req(res_len - 4, 2, 16)));
  CHECK_REPLY(r, 4, command::region_read, 16 + 4);
  CHECK(r.payload == bytes_builder().u64(res_len - 4).u32(2).u32(4).u32(0xA1B2C3D4).bytes());
  // Entirely in the padding: the full count of 0xFF.
  auto p = f.peer.call(make_message(5, command::region_read, read_req(res_len, 2, 8)));
  CHECK(p.payload == bytes_builder().u64(res_len).u32(2).u32(8).u64(~std::uint64_t{0}).bytes());
}

TEST_CASE("§5.1 E7 vfio-user P7 with the documented resmem return the same read is whole: memory then 0xFF") {
  fixture f(hopper(grace::resmem_return::documented));
  gpu_poke(f.device, memlength - 4, bytes_builder().u32(0xA1B2C3D4).bytes());
  auto r = f.peer.call(make_message(4, command::region_read, read_req(res_len - 4, 2, 16)));
  CHECK_REPLY(r, 4, command::region_read, 16 + 16);
  CHECK(r.payload ==
        bytes_builder().u64(res_len - 4).u32(2).u32(16).u32(0xA1B2C3D4).u32(0xFFFFFFFF).u64(~std::uint64_t{0}).bytes());
}

TEST_CASE("§5.1 vfio-user P7 usemem: a read crossing the real length is padded, one crossing the BAR end is short") {
  fixture f;
  auto r = f.peer.call(make_message(6, command::region_read, read_req(use_len - 2, 4, 4)));
  CHECK_REPLY(r, 6, command::region_read, 16 + 4);
  CHECK(r.payload[16 + 2] == std::byte{0xFF});
  auto e = f.peer.call(make_message(7, command::region_read, read_req(use_bar - 2, 4, 4)));
  CHECK_REPLY(e, 7, command::region_read, 16 + 2);
  auto x = f.peer.call(make_message(8, command::region_read, read_req(use_bar, 4, 1)));
  CHECK_ERROR_REPLY(x, 8, command::region_read, EINVAL);
}

TEST_CASE("§6.1 the client maps resmem from the passed fd; bytes agree with REGION_READ and the device") {
  auto device = make_shim(hopper());
  threaded_server<shim_device> server(device);
  auto c = client::connect(server.path().c_str()).value();
  auto p = c.mmap(nullptr, 4096, PROT_READ | PROT_WRITE, vfio::file_offset(2, 8192));
  REQUIRE(p);
  std::memcpy(static_cast<std::byte*>(*p) + 8, "\x11\x22\x33\x44", 4);
  std::array<std::byte, 4> back{};
  CHECK(c.pread(back, vfio::file_offset(2, 8192 + 8)).value() == 4);
  CHECK(back == std::array<std::byte, 4>{std::byte{0x11}, std::byte{0x22}, std::byte{0x33}, std::byte{0x44}});
  CHECK(gpu_snapshot_range(device, use_len + 8192 + 8, 4) == std::vector<std::byte>(back.begin(), back.end()));
  ::munmap(*p, 4096);
  // Past resmem's real length (the padding) nothing maps.
  CHECK(c.mmap(nullptr, 4096, PROT_READ, vfio::file_offset(2, res_len & ~std::uint64_t{4095})).error() ==
        nvgrace::errc::invalid_argument);
}
