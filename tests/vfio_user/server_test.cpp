// The vfio-user server, command by command, over a real UNIX socket with a
// server thread and a real memfd-backed device. Byte-exact replies.
// "vfio-user PN" = docs/vfio-user.md's protocol reference; "§N" = docs/semantics.md.

#include <nvgrace/backend/vfio_user/server.hpp>

#include "peer_abuse.hpp"
#include "raw_peer.hpp"
#include "requests.hpp"
#include "test_device.hpp"

#include <doctest/doctest.h>

#include <sys/eventfd.h>
#include <sys/stat.h>

#include <fcntl.h>

#include <cstring>
#include <memory>

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using namespace nvgrace::vfio_user::testing;

namespace {

constexpr std::uint64_t memlength = (1u << 20) + 4096 + 100;  // BAR = 2 MiB
constexpr std::uint64_t bar_size = 2u << 20;
constexpr std::uint32_t bar = test_device::bar_index;

struct fixture {
  test_device device{memlength};
  threaded_server<test_device> server{device};
  raw_peer peer = server.connect();
  fixture() { peer.negotiate(); }
};

std::string payload_text(const reply& r, std::size_t from) {
  return std::string(reinterpret_cast<const char*>(r.payload.data() + from), r.payload.size() - from);
}

bool same_file(int a, int b) {
  struct stat sa {
  }, sb{};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

}  // namespace

TEST_CASE("vfio-user P4 VERSION: major 0, minor min(client, ours), our capabilities NUL-terminated") {
  test_device device(memlength);
  server_options options;
  options.minor = 2;
  threaded_server<test_device> server(device, options);
  for (auto [client_minor, expected] : {std::pair{0, 0}, std::pair{1, 1}, std::pair{7, 2}}) {
    auto peer = server.connect();
    auto r = peer.call(make_message(
        11, command::version,
        version_payload(0, static_cast<std::uint16_t>(client_minor), R"({"capabilities":{"max_msg_fds":16}})")));
    const std::string json = R"({"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,)"
                             R"("max_dma_maps":65535,"pgsizes":4096}})";
    CHECK_REPLY(r, 11, command::version, 4 + json.size() + 1);
    CHECK(load_le<std::uint16_t>(r.payload, 0) == 0);
    CHECK(load_le<std::uint16_t>(r.payload, 2) == expected);
    CHECK(payload_text(r, 4) == json + '\0');
  }
}

TEST_CASE("vfio-user P4 VERSION with no JSON (SPDK's client) is accepted") {
  test_device device(memlength);
  threaded_server<test_device> server(device);
  auto peer = server.connect();
  auto r = peer.call(make_message(1, command::version, version_payload(0, 0)));
  CHECK(r.h.flags == message_flags::type_reply);
  CHECK(load_le<std::uint16_t>(r.payload, 2) == 0);
  // Negotiated: other commands work now.
  CHECK_REPLY(peer.call(make_message(2, command::device_get_info, device_info_req())), 2, command::device_get_info, 16);
}

TEST_CASE("vfio-user P5 DEVICE_GET_INFO: argsz 16, flags RESET|PCI, 9 regions, 5 irqs") {
  fixture f;
  auto r = f.peer.call(make_message(3, command::device_get_info, device_info_req()));
  CHECK_REPLY(r, 3, command::device_get_info, 16);
  CHECK(r.payload == bytes_builder().u32(16).u32(3).u32(9).u32(5).bytes());
}

TEST_CASE("vfio-user P5 DEVICE_GET_INFO is tolerant: 20-byte payload, argsz 32 (rust-vmm)") {
  fixture f;
  auto r = f.peer.call(make_message(4, command::device_get_info, device_info_req(32, 20)));
  CHECK_REPLY(r, 4, command::device_get_info, 16);
  CHECK(r.payload == bytes_builder().u32(16).u32(3).u32(9).u32(5).bytes());
}

TEST_CASE("vfio-user P6 §4.3 GET_REGION_INFO argsz 32: the bare struct with argsz 64, no CAPS, no fd") {
  fixture f;
  auto r = f.peer.call(make_message(5, command::device_get_region_info, region_info_req(32, bar)));
  CHECK_REPLY(r, 5, command::device_get_region_info, 32);
  // The wire form: argsz = needed 64, flags READ|WRITE|MMAP without CAPS (the chain is not in
  // this reply; QEMU rejects CAPS with cap_offset < 32), cap_offset 0, size = BAR, offset = the
  // fd offset (0).
  CHECK(r.payload == bytes_builder().u32(64).u32(0x7).u32(bar).u32(0).u64(bar_size).u64(0).bytes());
  CHECK(r.fds.empty());
}

TEST_CASE(
    "vfio-user P6 the device behind the server answers the short query in the kernel form: CAPS set, cap_offset 0") {
  fixture f;
  std::array<std::byte, 32> buffer{};
  store_le<std::uint32_t>(buffer, 0, 32);
  store_le<std::uint32_t>(buffer, 8, bar);
  REQUIRE(f.device.get_region_info(buffer));
  CHECK(std::vector<std::byte>(buffer.begin(), buffer.end()) ==
        bytes_builder().u32(64).u32(0xF).u32(bar).u32(0).u64(bar_size).u64(vfio::region_offset(bar)).bytes());
}

TEST_CASE("vfio-user P6 wire_region_info: CAPS and cap_offset only with the chain") {
  constexpr vfio::region_info kernel_short{64, 0xF, 4, 0, 1u << 30, 0};
  constexpr auto shortened = wire_region_info(kernel_short, 64, false);
  static_assert(shortened.argsz == 64 && shortened.flags == 0x7 && shortened.cap_offset == 0);
  constexpr vfio::region_info kernel_full{80, 0xF, 4, 32, 1u << 30, 0};
  constexpr auto full = wire_region_info(kernel_full, 64, true);
  static_assert(full.argsz == 64 && full.flags == 0xF && full.cap_offset == 32);
  constexpr vfio::region_info no_caps{32, 0x3, 7, 0, 4096, 0};
  static_assert(wire_region_info(no_caps, 32, false).flags == 0x3);
  CHECK(shortened.flags == 0x7);
}

TEST_CASE("vfio-user P6 §4.3 GET_REGION_INFO argsz 64: struct + sparse cap {0, memlength} + the memfd") {
  fixture f;
  auto r = f.peer.call(make_message(6, command::device_get_region_info, region_info_req(64, bar)));
  CHECK_REPLY(r, 6, command::device_get_region_info, 64);
  CHECK(r.payload == bytes_builder()
                         .u32(64)
                         .u32(0xF)
                         .u32(bar)
                         .u32(32)
                         .u64(bar_size)
                         .u64(0)  // info
                         .u16(1)
                         .u16(1)
                         .u32(0)
                         .u32(1)
                         .u32(0)  // cap header, nr_areas, reserved
                         .u64(0)
                         .u64(memlength)  // the area
                         .bytes());
  REQUIRE(r.fds.size() == 1);
  CHECK(same_file(r.fds[0].get(), f.device.memory_fd()));
}

TEST_CASE("vfio-user P6 GET_REGION_INFO never returns more than needed, even for a huge argsz") {
  fixture f;
  auto r = f.peer.call(make_message(7, command::device_get_region_info, region_info_req(4096, bar)));
  CHECK_REPLY(r, 7, command::device_get_region_info, 64);
  CHECK(load_le<std::uint32_t>(r.payload, 0) == 64);
  CHECK(r.fds.size() == 1);
}

TEST_CASE("vfio-user P6 GET_REGION_INFO between 32 and 64 still gets only the struct") {
  fixture f;
  auto r = f.peer.call(make_message(8, command::device_get_region_info, region_info_req(63, bar)));
  CHECK_REPLY(r, 8, command::device_get_region_info, 32);
  CHECK(load_le<std::uint32_t>(r.payload, 0) == 64);
  CHECK(load_le<std::uint32_t>(r.payload, 12) == 0);
  CHECK(r.fds.empty());
}

TEST_CASE("vfio-user P6 GET_REGION_INFO of config and of an unimplemented BAR") {
  fixture f;
  auto config = f.peer.call(make_message(9, command::device_get_region_info, region_info_req(64, 7)));
  CHECK_REPLY(config, 9, command::device_get_region_info, 32);
  CHECK(config.payload == bytes_builder().u32(32).u32(0x3).u32(7).u32(0).u64(256).u64(0).bytes());
  CHECK(config.fds.empty());
  auto bar0 = f.peer.call(make_message(10, command::device_get_region_info, region_info_req(32, 0)));
  CHECK(bar0.payload == bytes_builder().u32(32).u32(0).u32(0).u32(0).u64(0).u64(0).bytes());
}

TEST_CASE("vfio-user P6 a device without region_source: MMAP cleared, no fd, caps kept") {
  unmappable_test_device device(memlength);
  threaded_server<unmappable_test_device> server(device);
  auto peer = server.connect();
  peer.negotiate();
  auto r = peer.call(make_message(5, command::device_get_region_info, region_info_req(64, bar)));
  CHECK_REPLY(r, 5, command::device_get_region_info, 64);
  CHECK(load_le<std::uint32_t>(r.payload, 4) == 0xB);
  CHECK(r.fds.empty());
}

TEST_CASE("vfio-user P4 a client with max_msg_fds 0 gets no region fd and no MMAP") {
  test_device device(memlength);
  threaded_server<test_device> server(device);
  auto peer = server.connect();
  peer.call(make_message(1, command::version, version_payload(0, 0, R"({"capabilities":{"max_msg_fds":0}})")));
  auto r = peer.call(make_message(5, command::device_get_region_info, region_info_req(64, bar)));
  CHECK(load_le<std::uint32_t>(r.payload, 4) == 0xB);
  CHECK(r.fds.empty());
}

TEST_CASE("vfio-user P7 §5 REGION_WRITE then REGION_READ round-trips bytes") {
  fixture f;
  const auto data = pattern(4096, 3);
  auto w = f.peer.call(make_message(20, command::region_write, write_req(0x1000, bar, data)));
  CHECK_REPLY(w, 20, command::region_write, 16);
  CHECK(w.payload == read_req(0x1000, bar, 4096));
  auto r = f.peer.call(make_message(21, command::region_read, read_req(0x1000, bar, 4096)));
  CHECK_REPLY(r, 21, command::region_read, 16 + 4096);
  CHECK(std::equal(data.begin(), data.end(), r.payload.begin() + 16));
  const auto mem = f.device.snapshot();
  CHECK(std::equal(data.begin(), data.end(), mem.begin() + 0x1000));
}

TEST_CASE("vfio-user P7 §5.1 E6 a read crossing memlength gets the memory then 0xFF") {
  fixture f;
  f.device.poke(memlength - 4, bytes_builder().u32(0x04030201).bytes());
  auto r = f.peer.call(make_message(22, command::region_read, read_req(memlength - 4, bar, 8)));
  CHECK_REPLY(r, 22, command::region_read, 16 + 8);
  CHECK(std::vector<std::byte>(r.payload.begin() + 16, r.payload.end()) ==
        bytes_builder().u32(0x04030201).u32(0xFFFFFFFF).bytes());
}

TEST_CASE("vfio-user P7 §5.1 a read crossing the BAR end is short: count = bytes to the end") {
  fixture f;
  auto r = f.peer.call(make_message(23, command::region_read, read_req(bar_size - 3, bar, 8)));
  CHECK_REPLY(r, 23, command::region_read, 16 + 3);
  CHECK(r.payload == bytes_builder().u64(bar_size - 3).u32(bar).u32(3).u8(0xFF).u8(0xFF).u8(0xFF).bytes());
}

TEST_CASE("vfio-user P7 §5.2 a write crossing the BAR end is short; padding writes are dropped") {
  fixture f;
  const auto before = f.device.snapshot();
  auto w = f.peer.call(make_message(24, command::region_write, write_req(bar_size - 2, bar, pattern(8, 1))));
  CHECK_REPLY(w, 24, command::region_write, 16);
  CHECK(w.payload == read_req(bar_size - 2, bar, 2));
  auto p = f.peer.call(make_message(25, command::region_write, write_req(memlength, bar, pattern(64, 2))));
  CHECK(p.payload == read_req(memlength, bar, 64));
  CHECK(f.device.snapshot() == before);
}

TEST_CASE("vfio-user P7 §5.1 offset at the BAR end is EINVAL; count 0 is an empty success") {
  fixture f;
  auto r = f.peer.call(make_message(26, command::region_read, read_req(bar_size, bar, 1)));
  CHECK_ERROR_REPLY(r, 26, command::region_read, EINVAL);
  auto z = f.peer.call(make_message(27, command::region_read, read_req(16, bar, 0)));
  CHECK_REPLY(z, 27, command::region_read, 16);
  CHECK(z.payload == read_req(16, bar, 0));
}

TEST_CASE("vfio-user P7 REGION_READ of exactly max_data_xfer_size (1 MiB) succeeds") {
  fixture f;
  auto r = f.peer.call(make_message(28, command::region_read, read_req(0, bar, 1u << 20)));
  CHECK_REPLY(r, 28, command::region_read, 16 + (1u << 20));
}

TEST_CASE("vfio-user P7 config space (region 7) goes through the same messages") {
  fixture f;
  const auto ones = bytes_builder().u32(0xFFFFFFFF).bytes();
  auto w = f.peer.call(make_message(29, command::region_write, write_req(0x10, 7, ones)));
  CHECK(w.payload == read_req(0x10, 7, 4));
  auto r = f.peer.call(make_message(30, command::region_read, read_req(0x10, 7, 4)));
  CHECK(std::vector<std::byte>(r.payload.begin() + 16, r.payload.end()) == bytes_builder().u32(0xFFFFFFFF).bytes());
}

TEST_CASE("vfio-user P9 DEVICE_GET_IRQ_INFO answers every index") {
  fixture f;
  const std::uint32_t counts[] = {1, 0, 0, 1, 1};
  for (std::uint32_t i = 0; i < 5; ++i) {
    const auto id = static_cast<std::uint16_t>(40 + i);
    auto r = f.peer.call(make_message(id, command::device_get_irq_info, irq_info_req(i)));
    CHECK_REPLY(r, 40 + i, command::device_get_irq_info, 16);
    CHECK(r.payload == bytes_builder().u32(16).u32(i == 0 ? 0x7 : 0x1).u32(i).u32(counts[i]).bytes());
  }
}

TEST_CASE("vfio-user P9 SET_IRQS: an eventfd is stored, triggered, replaced and disabled") {
  namespace fl = vfio::irq_set_flags;
  fixture f;
  unique_fd ev(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const auto assign = set_irqs_req(fl::data_eventfd | fl::action_trigger, 3, 0, 1);
  const auto trigger = set_irqs_req(fl::data_none | fl::action_trigger, 3, 0, 1);
  const auto disable = set_irqs_req(fl::data_none | fl::action_trigger, 3, 0, 0);
  auto a = f.peer.call(make_message(50, command::device_set_irqs, assign), {ev.get()});
  CHECK_REPLY(a, 50, command::device_set_irqs, 0);
  // A loopback trigger (DATA_NONE|TRIGGER, count 1) signals the stored eventfd.
  auto t = f.peer.call(make_message(51, command::device_set_irqs, trigger));
  CHECK_REPLY(t, 51, command::device_set_irqs, 0);
  std::uint64_t value = 0;
  CHECK(::read(ev.get(), &value, sizeof value) == 8);
  CHECK(value == 1);
  // DATA_BOOL trigger with a false entry signals nothing.
  const auto no = bytes_builder().u8(0).bytes();
  const auto bool_trigger = set_irqs_req(fl::data_bool | fl::action_trigger, 3, 0, 1, no);
  auto b = f.peer.call(make_message(52, command::device_set_irqs, bool_trigger));
  CHECK_REPLY(b, 52, command::device_set_irqs, 0);
  CHECK(::read(ev.get(), &value, sizeof value) == -1);
  // Disable (DATA_NONE|TRIGGER, count 0) drops it: a trigger signals nothing.
  auto d = f.peer.call(make_message(53, command::device_set_irqs, disable));
  CHECK_REPLY(d, 53, command::device_set_irqs, 0);
  f.peer.call(make_message(54, command::device_set_irqs, trigger));
  CHECK(::read(ev.get(), &value, sizeof value) == -1);
}

TEST_CASE("vfio-user P9 SET_IRQS disable is accepted for an index with no vectors (QEMU issues it)") {
  namespace fl = vfio::irq_set_flags;
  fixture f;
  const auto disable = set_irqs_req(fl::data_none | fl::action_trigger, 2, 0, 0);
  auto d = f.peer.call(make_message(55, command::device_set_irqs, disable));
  CHECK_REPLY(d, 55, command::device_set_irqs, 0);
}

TEST_CASE("vfio-user P1 disconnect closes the client's IRQ fds; replacing closes the old one") {
  namespace fl = vfio::irq_set_flags;
  test_device device(memlength);
  threaded_server<test_device> server(device);
  const std::size_t before = open_eventfd_count();
  {
    auto peer = server.connect();
    peer.negotiate();
    auto first = make_eventfd();
    peer.call(make_message(1, command::device_set_irqs, set_irqs_req(fl::data_eventfd | fl::action_trigger, 4, 0, 1)),
              {first.get()});
    first.reset();
    CHECK(open_eventfd_count() == before + 1);  // the server's copy
    auto second = make_eventfd();
    peer.call(make_message(2, command::device_set_irqs, set_irqs_req(fl::data_eventfd | fl::action_trigger, 4, 0, 1)),
              {second.get()});
    second.reset();
    CHECK(open_eventfd_count() == before + 1);  // the first replaced (closed), the second kept
  }
  // The client went away: the server closes its eventfd before it serves the next one.
  auto next = server.connect();
  next.negotiate();
  CHECK(open_eventfd_count() == before);
}

TEST_CASE("vfio-user P8 DMA_MAP: accepted, its fd closed; overlap EEXIST; UNMAP echoes 24 bytes") {
  fixture f;
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  unique_fd rd(p[0]), wr(p[1]);
  auto m = f.peer.call(make_message(60, command::dma_map, dma_map_req(3, 0, 0x100000, 0x10000)), {wr.get()});
  CHECK_REPLY(m, 60, command::dma_map, 0);
  wr.reset();
  CHECK(pipe_write_end_closed(rd.get()));
  auto o = f.peer.call(make_message(61, command::dma_map, dma_map_req(3, 0, 0x10F000, 0x2000)));
  CHECK_ERROR_REPLY(o, 61, command::dma_map, EEXIST);
  auto below = f.peer.call(make_message(62, command::dma_map, dma_map_req(1, 0, 0xFF000, 0x2000)));
  CHECK_ERROR_REPLY(below, 62, command::dma_map, EEXIST);
  auto adjacent = f.peer.call(make_message(63, command::dma_map, dma_map_req(1, 0, 0x110000, 0x1000)));
  CHECK_REPLY(adjacent, 63, command::dma_map, 0);
  auto bad = f.peer.call(make_message(64, command::dma_unmap, dma_unmap_req(0, 0x100000, 0x1000)));
  CHECK_ERROR_REPLY(bad, 64, command::dma_unmap, ENOENT);
  auto u = f.peer.call(make_message(65, command::dma_unmap, dma_unmap_req(0, 0x100000, 0x10000)));
  CHECK_REPLY(u, 65, command::dma_unmap, 24);
  CHECK(u.payload == dma_unmap_req(0, 0x100000, 0x10000));
  auto again = f.peer.call(make_message(66, command::dma_map, dma_map_req(3, 0, 0x100000, 0x10000)));
  CHECK_REPLY(again, 66, command::dma_map, 0);
  auto all = f.peer.call(make_message(67, command::dma_unmap, dma_unmap_req(2, 0, 0)));
  CHECK_REPLY(all, 67, command::dma_unmap, 24);
  auto gone = f.peer.call(make_message(68, command::dma_unmap, dma_unmap_req(0, 0x110000, 0x1000)));
  CHECK_ERROR_REPLY(gone, 68, command::dma_unmap, ENOENT);
}

TEST_CASE("vfio-user P10 DEVICE_RESET reaches the device and replies header-only") {
  fixture f;
  auto r = f.peer.call(make_message(70, command::device_reset));
  CHECK_REPLY(r, 70, command::device_reset, 0);
  CHECK(f.device.resets.load() == 1);
}

TEST_CASE("vfio-user P2 NO_REPLY: no reply, even on failure; later replies keep their order") {
  fixture f;
  const auto data = pattern(8, 9);
  f.peer.send(make_message(80, command::region_write, write_req(0, bar, data),
                           message_flags::type_command | message_flags::no_reply));
  f.peer.send(make_message(81, command::region_read, read_req(bar_size, bar, 8),
                           message_flags::type_command | message_flags::no_reply));  // fails silently
  auto r = f.peer.call(make_message(82, command::region_read, read_req(0, bar, 8)));
  CHECK_REPLY(r, 82, command::region_read, 24);
  CHECK(std::equal(data.begin(), data.end(), r.payload.begin() + 16));
  CHECK(f.peer.silent());
}

TEST_CASE("vfio-user P1 pipelined commands in one send are answered in order") {
  fixture f;
  std::vector<std::byte> all;
  for (std::uint16_t id = 90; id < 95; ++id) {
    auto m = make_message(id, command::region_read, read_req(id, bar, 4));
    all.insert(all.end(), m.begin(), m.end());
  }
  f.peer.send(all);
  for (std::uint16_t id = 90; id < 95; ++id) {
    auto r = f.peer.receive();
    CHECK_REPLY(r, id, command::region_read, 20);
  }
}

TEST_CASE("vfio-user P1 a new client must negotiate again and sees the memory the last one wrote") {
  test_device device(memlength);
  threaded_server<test_device> server(device);
  const auto data = pattern(16, 5);
  {
    auto peer = server.connect();
    peer.negotiate();
    peer.call(make_message(1, command::region_write, write_req(64, bar, data)));
  }
  auto peer = server.connect();
  auto early = peer.call(make_message(2, command::region_read, read_req(64, bar, 16)));
  CHECK_ERROR_REPLY(early, 2, command::region_read, EINVAL);
  peer.negotiate();
  auto r = peer.call(make_message(3, command::region_read, read_req(64, bar, 16)));
  CHECK(std::equal(data.begin(), data.end(), r.payload.begin() + 16));
}

TEST_CASE("vfio-user P12 a 1 MiB REGION_WRITE arriving in many pieces is one message") {
  fixture f;
  const auto data = pattern(1u << 20, 11);
  auto w = f.peer.call(make_message(100, command::region_write, write_req(0, bar, data)));
  CHECK_REPLY(w, 100, command::region_write, 16);
  CHECK(w.payload == read_req(0, bar, 1u << 20));
  const auto mem = f.device.snapshot();
  CHECK(std::equal(data.begin(), data.end(), mem.begin()));
}

TEST_CASE("server: request_stop ends run() while a client is connected and idle") {
  test_device device(memlength);
  auto server = std::make_unique<threaded_server<test_device>>(device);
  auto peer = server->connect();
  peer.negotiate();
  server.reset();  // request_stop + join: must not hang
  CHECK(peer.closed());
}
