// vfio_user::client: the device-file concept over a socket. Against the real
// server (thread, real memfd device) and against scripted servers that
// misbehave. "vfio-user PN" = docs/vfio-user.md's protocol reference; "§N" = docs/semantics.md.

#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>

#include "raw_peer.hpp"
#include "requests.hpp"
#include "test_device.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using namespace nvgrace::vfio_user::testing;
using namespace std::chrono_literals;

static_assert(vfio::device_file<client>);

namespace {

constexpr std::uint64_t memlength = 3 * 4096 + 100;  // BAR = 16 KiB
constexpr std::uint64_t bar_size = 16384;
constexpr std::uint32_t bar = test_device::bar_index;
const std::uint64_t bar_pos = vfio::region_offset(bar);

struct fixture {
  test_device device{memlength};
  threaded_server<test_device> server{device};
  client c = client::connect(server.path().c_str()).value();
};

std::vector<std::byte> info_buffer(std::uint32_t argsz, std::uint32_t index, std::size_t size = 0) {
  std::vector<std::byte> b(size != 0 ? size : argsz, std::byte{0xAA});
  store_le<std::uint32_t>(b, 0, argsz);
  store_le<std::uint32_t>(b, 4, 0);
  store_le<std::uint32_t>(b, 8, index);
  return b;
}

/// A client connecting on one end of a socketpair while the test plays the server on the other.
struct scripted {
  raw_peer server_end;
  std::future<result<client>> pending;
  static scripted start(client_options options = {}) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    const int client_fd = sv[1];
    return scripted{raw_peer(sv[0]), std::async(std::launch::async, [=] { return client::adopt(client_fd, options); })};
  }
  /// Answer VERSION (with `minor`) and DEVICE_GET_INFO correctly.
  void handshake(std::uint16_t minor = 0) {
    auto v = server_end.receive();
    REQUIRE(v.h.command == 1);
    auto reply = make_message(v.h.id, command::version, version_payload(0, minor, R"({"capabilities":{}})"),
                              message_flags::type_reply);
    server_end.send(reply);
    if (minor != 0) return;
    auto i = server_end.receive();
    REQUIRE(i.h.command == 4);
    server_end.send(make_message(i.h.id, command::device_get_info, bytes_builder().u32(16).u32(3).u32(9).u32(5).bytes(),
                                 message_flags::type_reply));
  }
};

}  // namespace

TEST_CASE("vfio-user P4 client: connect negotiates 0.0 and the 1 MiB transfer size") {
  fixture f;
  CHECK(f.c.connected());
  CHECK(f.c.minor() == 0);
  CHECK(f.c.max_data_xfer_size() == 1u << 20);
  CHECK(f.c.server_capabilities().max_msg_fds == 16u);
  auto info = f.c.get_device_info();
  REQUIRE(info);
  CHECK(info->argsz == 20);
  CHECK(info->flags == 3);
  CHECK(info->num_regions == 9);
  CHECK(info->num_irqs == 5);
  CHECK(info->cap_offset == 0);
}

TEST_CASE("§4.2 client get_region_info argsz 32: what the kernel writes (argsz 64, CAPS, offset index<<40)") {
  fixture f;
  auto b = info_buffer(32, bar, 40);
  REQUIRE(f.c.get_region_info(b));
  CHECK(std::vector<std::byte>(b.begin(), b.begin() + 32) ==
        bytes_builder().u32(64).u32(0xF).u32(bar).u32(0).u64(bar_size).u64(bar_pos).bytes());
  CHECK(b[32] == std::byte{0xAA});  // nothing past the struct
  CHECK(f.c.region_fd(bar) == -1);
}

TEST_CASE("§4.2 client get_region_info argsz 100: argsz echoed, cap at 32, tail untouched, fd kept") {
  fixture f;
  auto b = info_buffer(100, bar);
  REQUIRE(f.c.get_region_info(b));
  CHECK(std::vector<std::byte>(b.begin(), b.begin() + 64) == bytes_builder()
                                                                 .u32(100)
                                                                 .u32(0xF)
                                                                 .u32(bar)
                                                                 .u32(32)
                                                                 .u64(bar_size)
                                                                 .u64(bar_pos)
                                                                 .u16(1)
                                                                 .u16(1)
                                                                 .u32(0)
                                                                 .u32(1)
                                                                 .u32(0)
                                                                 .u64(0)
                                                                 .u64(memlength)
                                                                 .bytes());
  CHECK(std::all_of(b.begin() + 64, b.end(), [](std::byte x) { return x == std::byte{0xAA}; }));
  REQUIRE(f.c.region_fd(bar) >= 0);
  struct stat a {
  }, d{};
  REQUIRE(::fstat(f.c.region_fd(bar), &a) == 0);
  REQUIRE(::fstat(f.device.memory_fd(), &d) == 0);
  CHECK(a.st_ino == d.st_ino);
}

TEST_CASE("§4.2 client get_region_info: argsz < 32 EINVAL, buffer shorter than argsz EFAULT, bad index EINVAL") {
  fixture f;
  auto small = info_buffer(31, bar, 32);
  CHECK(f.c.get_region_info(small).error() == nvgrace::errc::invalid_argument);
  auto lying = info_buffer(64, bar, 32);
  CHECK(f.c.get_region_info(lying).error() == nvgrace::errc::bad_address);
  auto bad = info_buffer(32, 9);
  const auto before = bad;
  CHECK(f.c.get_region_info(bad).error() == nvgrace::errc::invalid_argument);
  CHECK(bad == before);
  CHECK(f.c.connected());
}

TEST_CASE("§6.1 E9 client mmap: from the passed fd; within the sparse area only") {
  fixture f;
  // No GET_REGION_INFO yet: mmap fetches the fd itself.
  auto p = f.c.mmap(nullptr, 4096, PROT_READ | PROT_WRITE, bar_pos + 4096);
  REQUIRE(p);
  auto* bytes = static_cast<std::byte*>(*p);
  bytes[5] = std::byte{0x5A};
  std::array<std::byte, 1> one{};
  REQUIRE(f.c.pread(one, bar_pos + 4096 + 5));
  CHECK(one[0] == std::byte{0x5A});
  CHECK(f.device.snapshot()[4096 + 5] == std::byte{0x5A});
  ::munmap(*p, 4096);
  // memlength = 3 pages + 100: the 4th page runs past the area (the driver's memlength bound).
  CHECK(f.c.mmap(nullptr, 4 * 4096, PROT_READ, bar_pos).error() == nvgrace::errc::invalid_argument);
  CHECK(f.c.mmap(nullptr, 4096, PROT_READ, bar_pos + 3 * 4096).error() == nvgrace::errc::invalid_argument);
  CHECK(f.c.mmap(nullptr, ~std::uint64_t{0}, PROT_READ, bar_pos + 4096).error() == nvgrace::errc::value_too_large);
  CHECK(f.c.mmap(nullptr, 4096, PROT_READ, vfio::region_offset(7)).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§6.1 client mmap at a fixed address replaces the mapping there") {
  fixture f;
  void* area = ::mmap(nullptr, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(area != MAP_FAILED);
  f.device.poke(0, bytes_builder().u32(0xCAFEF00D).bytes());
  auto p = f.c.mmap(area, 4096, PROT_READ, bar_pos);
  REQUIRE(p);
  CHECK(*p == area);
  CHECK(load_le<std::uint32_t>(std::span<const std::byte>(static_cast<const std::byte*>(area), 4)) == 0xCAFEF00D);
  ::munmap(area, 8192);
}

TEST_CASE("§5 client pread/pwrite: bytes, 0xFF padding, short count at the BAR end, EINVAL past it") {
  fixture f;
  const auto data = pattern(200, 1);
  CHECK(f.c.pwrite(data, bar_pos + 1000).value() == 200);
  std::vector<std::byte> back(200);
  CHECK(f.c.pread(back, bar_pos + 1000).value() == 200);
  CHECK(back == data);
  std::array<std::byte, 8> cross{};
  CHECK(f.c.pread(cross, bar_pos + memlength - 2).value() == 8);
  CHECK(cross[2] == std::byte{0xFF});
  CHECK(cross[7] == std::byte{0xFF});
  CHECK(f.c.pread(cross, bar_pos + bar_size - 4).value() == 4);
  CHECK(f.c.pwrite(cross, bar_pos + bar_size - 1).value() == 1);
  CHECK(f.c.pread(cross, bar_pos + bar_size).error() == nvgrace::errc::invalid_argument);
  CHECK(f.c.pread(std::span<std::byte>(), bar_pos).value() == 0);
  CHECK(f.c.connected());
}

TEST_CASE("vfio-user P7 client splits transfers by the server's max_data_xfer_size") {
  test_device device((256u << 10) + 8);
  server_options options;
  options.max_data_xfer_size = 8192;
  threaded_server<test_device> server(device, options);
  auto c = client::connect(server.path().c_str()).value();
  CHECK(c.max_data_xfer_size() == 8192);
  // A single 100 KiB message would be refused (count > 8192): success means it was split.
  const auto data = pattern(100 * 1024 + 3, 4);
  CHECK(c.pwrite(data, bar_pos + 5).value() == data.size());
  std::vector<std::byte> back(data.size());
  CHECK(c.pread(back, bar_pos + 5).value() == data.size());
  CHECK(back == data);
  const auto mem = device.snapshot();
  CHECK(std::equal(data.begin(), data.end(), mem.begin() + 5));
  // Split transfers stop short at the BAR end like one access would.
  std::vector<std::byte> tail(20000);
  CHECK(c.pread(tail, bar_pos + device.bar_size() - 10000).value() == 10000);
}

TEST_CASE("vfio-user P9 client get_irq_info and reset") {
  fixture f;
  vfio::irq_info irq{16, 0, 0, 0};
  REQUIRE(f.c.get_irq_info(irq));
  CHECK(irq.flags == 0x7);
  CHECK(irq.count == 1);
  irq = {16, 0, 1, 0};
  REQUIRE(f.c.get_irq_info(irq));
  CHECK(irq.count == 0);
  irq = {16, 0, 5, 0};
  CHECK(f.c.get_irq_info(irq).error() == nvgrace::errc::invalid_argument);
  irq = {15, 0, 0, 0};
  CHECK(f.c.get_irq_info(irq).error() == nvgrace::errc::invalid_argument);
  REQUIRE(f.c.reset());
  CHECK(f.device.resets.load() == 1);
}

TEST_CASE("vfio-user P12 client: a server that never answers gives ETIMEDOUT, then ENOTCONN") {
  for (auto mode : {client_options::wait_mode::socket_timeout, client_options::wait_mode::poll}) {
    client_options options;
    options.timeout_ms = 200;
    options.wait = mode;
    auto s = scripted::start(options);
    s.handshake();
    auto c = s.pending.get();
    REQUIRE(c);
    std::array<std::byte, 8> b{};
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(c->pread(b, bar_pos).error() == nvgrace::errc::timed_out);
    CHECK(std::chrono::steady_clock::now() - t0 >= 190ms);
    CHECK_FALSE(c->connected());
    CHECK(c->pread(b, bar_pos).error() == nvgrace::errc::not_connected);
    CHECK(s.server_end.receive().h.command == 9);  // the unanswered request, then end of stream
    CHECK(s.server_end.closed());
  }
}

TEST_CASE("vfio-user P2 client: an error reply is its errno; the connection stays up") {
  auto s = scripted::start();
  s.handshake();
  auto c = s.pending.get();
  REQUIRE(c);
  auto fut = std::async(std::launch::async, [&] { return c->reset(); });
  auto req = s.server_end.receive();
  CHECK(req.h.command == 13);
  s.server_end.send(make_message(req.h.id, 13, {}, 0x21, 16, EBUSY));
  CHECK(fut.get().error() == nvgrace::errc::device_or_resource_busy);
  CHECK(c->connected());
}

TEST_CASE(
    "vfio-user P12 client: wrong reply id or type, a mismatched or oversized reply are EPROTO/EMSGSIZE and close") {
  SUBCASE("wrong id") {
    auto s = scripted::start();
    s.handshake();
    auto c = s.pending.get();
    auto fut = std::async(std::launch::async, [&] { return c->reset(); });
    auto req = s.server_end.receive();
    s.server_end.send(make_message(static_cast<std::uint16_t>(req.h.id + 1), command::device_reset, {}, 1));
    CHECK(fut.get().error() == nvgrace::errc::protocol_error);
    CHECK_FALSE(c->connected());
  }
  SUBCASE("a header-only reply of the wrong type") {
    auto s = scripted::start();
    s.handshake();
    auto c = s.pending.get();
    auto fut = std::async(std::launch::async, [&] { return c->reset(); });
    auto req = s.server_end.receive();
    s.server_end.send(make_message(req.h.id, command::device_reset, {}, 0));
    CHECK(fut.get().error() == nvgrace::errc::protocol_error);
  }
  SUBCASE("a READ reply larger than asked") {
    auto s = scripted::start();
    s.handshake();
    auto c = s.pending.get();
    std::array<std::byte, 4> b{};
    auto fut = std::async(std::launch::async, [&] { return c->pread(b, bar_pos); });
    auto req = s.server_end.receive();
    s.server_end.send(make_message(req.h.id, command::region_read, write_req(0, bar, pattern(8, 0)), 1));
    CHECK(fut.get().error() == nvgrace::errc::message_size);
  }
  SUBCASE("a READ reply whose count does not match its size") {
    auto s = scripted::start();
    s.handshake();
    auto c = s.pending.get();
    std::array<std::byte, 8> b{};
    auto fut = std::async(std::launch::async, [&] { return c->pread(b, bar_pos); });
    auto req = s.server_end.receive();
    s.server_end.send(make_message(req.h.id, command::region_read, write_req(0, bar, pattern(4, 0), 8), 1));
    CHECK(fut.get().error() == nvgrace::errc::protocol_error);
  }
}

TEST_CASE("vfio-user P4 client: a reply minor above ours fails the connection with EPROTO") {
  auto s = scripted::start();
  s.handshake(1);
  CHECK(s.pending.get().error() == nvgrace::errc::protocol_error);
}

TEST_CASE("vfio-user P6 client: a libvfio-user style first reply (no CAPS flag) still reads as the kernel's") {
  auto s = scripted::start();
  s.handshake();
  auto c = s.pending.get();
  auto b = info_buffer(32, bar);
  auto fut = std::async(std::launch::async, [&] { return c->get_region_info(b); });
  auto req = s.server_end.receive();
  CHECK(req.payload == region_info_req(32, bar));
  s.server_end.send(make_message(req.h.id, command::device_get_region_info,
                                 bytes_builder().u32(80).u32(0x7).u32(bar).u32(0).u64(0x3000).u64(0).bytes(), 1));
  REQUIRE(fut.get());
  CHECK(b == bytes_builder().u32(80).u32(0xF).u32(bar).u32(0).u64(0x3000).u64(bar_pos).bytes());
}

TEST_CASE("vfio-user P6 client: a malformed cap chain from the server is EPROTO, the buffer untouched") {
  auto s = scripted::start();
  s.handshake();
  auto c = s.pending.get();
  auto b = info_buffer(64, bar);
  const auto before = b;
  auto fut = std::async(std::launch::async, [&] { return c->get_region_info(b); });
  auto req = s.server_end.receive();
  // next = 40 points backwards into the cap itself.
  s.server_end.send(make_message(req.h.id, command::device_get_region_info,
                                 bytes_builder()
                                     .u32(64)
                                     .u32(0xF)
                                     .u32(bar)
                                     .u32(32)
                                     .u64(0x4000)
                                     .u64(0)
                                     .u16(1)
                                     .u16(1)
                                     .u32(36)
                                     .u32(1)
                                     .u32(0)
                                     .u64(0)
                                     .u64(0x1000)
                                     .bytes(),
                                 1));
  CHECK(fut.get().error() == nvgrace::errc::protocol_error);
  CHECK(b == before);
}

TEST_CASE("vfio-user P12 client: an fd on a reply that takes none is never received (the kernel closes it)") {
  auto s = scripted::start();
  s.handshake();
  auto c = s.pending.get();
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  unique_fd rd(p[0]), wr(p[1]);
  auto fut = std::async(std::launch::async, [&] { return c->reset(); });
  auto req = s.server_end.receive();
  s.server_end.send(make_message(req.h.id, command::device_reset, {}, 1), {wr.get()});
  wr.reset();
  CHECK(fut.get().has_value());
  CHECK(pipe_write_end_closed(rd.get()));
  CHECK(c->connected());
}

// ---- replies that lie about the region-info chain, and sizes that must be bounded -------

TEST_CASE(
    "vfio-user P6 client: a short region-info reply in the kernel form (CAPS, cap_offset 0) and in the wire form (no "
    "CAPS) read the same") {
  for (const std::uint32_t flags : {0xFu, 0x7u}) {
    CAPTURE(flags);
    auto s = scripted::start();
    s.handshake();
    auto c = s.pending.get();
    REQUIRE(c);
    auto b = info_buffer(32, bar, 40);
    auto fut = std::async(std::launch::async, [&] { return c->get_region_info(b); });
    auto req = s.server_end.receive();
    CHECK(req.payload == region_info_req(32, bar));
    s.server_end.send(make_message(req.h.id, command::device_get_region_info,
                                   bytes_builder().u32(64).u32(flags).u32(bar).u32(0).u64(bar_size).u64(0).bytes(), 1));
    REQUIRE(fut.get());
    // What the kernel writes for argsz 32: argsz = needed, CAPS set, cap_offset 0, offset index << 40.
    CHECK(std::vector<std::byte>(b.begin(), b.begin() + 32) ==
          bytes_builder().u32(64).u32(0xF).u32(bar).u32(0).u64(bar_size).u64(bar_pos).bytes());
    CHECK(std::all_of(b.begin() + 32, b.end(), [](std::byte x) { return x == std::byte{0xAA}; }));
    CHECK(c->connected());
  }
}

TEST_CASE("vfio-user P6 client: a CAPS reply without its chain is EPROTO, the caller's buffer untouched") {
  struct lie {
    const char* what;
    std::uint32_t request_argsz;
    std::vector<std::byte> payload;
  };
  const std::vector<lie> lies{
      // The issue's case: argsz within the request, cap_offset 32, only the 32-byte struct.
      {"CAPS, cap_offset 32, argsz 64 within the request, 32 bytes", 64,
       bytes_builder().u32(64).u32(0xF).u32(bar).u32(32).u64(bar_size).u64(0).bytes()},
      {"CAPS, cap_offset 32, argsz 32 (no room for any chain)", 64,
       bytes_builder().u32(32).u32(0xF).u32(bar).u32(32).u64(bar_size).u64(0).bytes()},
      {"CAPS, cap_offset 0, argsz 32 within the request", 64,
       bytes_builder().u32(32).u32(0xF).u32(bar).u32(0).u64(bar_size).u64(0).bytes()},
      {"short reply (argsz 64 > 32) claiming a chain at 32", 32,
       bytes_builder().u32(64).u32(0xF).u32(bar).u32(32).u64(bar_size).u64(0).bytes()},
      {"no CAPS but argsz 48 within the request and 32 bytes", 64,
       bytes_builder().u32(48).u32(0x7).u32(bar).u32(0).u64(bar_size).u64(0).bytes()},
  };
  for (const auto& l : lies) {
    CAPTURE(l.what);
    auto s = scripted::start();
    s.handshake();
    auto c = s.pending.get();
    REQUIRE(c);
    auto b = info_buffer(l.request_argsz, bar, 64);
    const auto before = b;
    auto fut = std::async(std::launch::async, [&] { return c->get_region_info(b); });
    auto req = s.server_end.receive();
    s.server_end.send(make_message(req.h.id, command::device_get_region_info, l.payload, 1));
    CHECK(fut.get().error() == nvgrace::errc::protocol_error);
    CHECK(b == before);
    CHECK_FALSE(c->connected());  // a lying server cannot be trusted further
  }
}

TEST_CASE("vfio-user P6 client mmap: the size a server says region info needs is bounded before it sizes anything") {
  auto s = scripted::start();
  s.handshake();
  auto c = s.pending.get();
  REQUIRE(c);
  const auto short_reply = [&](std::uint16_t id, std::uint32_t needed) {
    s.server_end.send(make_message(id, command::device_get_region_info,
                                   bytes_builder().u32(needed).u32(0x7).u32(bar).u32(0).u64(bar_size).u64(0).bytes(),
                                   1));
  };
  // argsz 0xFFFFFFFF: EMSGSIZE at once: no second request, no 4 GiB buffer, the connection kept.
  auto fut = std::async(std::launch::async, [&] { return c->mmap(nullptr, 4096, PROT_READ, bar_pos); });
  auto req = s.server_end.receive();
  CHECK(req.payload == region_info_req(32, bar));
  short_reply(req.h.id, 0xFFFFFFFF);
  CHECK(fut.get().error() == nvgrace::errc::message_size);
  CHECK(s.server_end.silent(200));
  CHECK(c->connected());
  // The bound itself (64 KiB) is asked for, exactly.
  fut = std::async(std::launch::async, [&] { return c->mmap(nullptr, 4096, PROT_READ, bar_pos); });
  req = s.server_end.receive();
  short_reply(req.h.id, client_max_region_info_size);
  req = s.server_end.receive();
  CHECK(req.payload == region_info_req(client_max_region_info_size, bar));
  s.server_end.send(make_message(req.h.id, static_cast<std::uint16_t>(command::device_get_region_info), {}, 0x21,
                                 computed_size, EINVAL));
  CHECK(fut.get().error() == nvgrace::errc::invalid_argument);
  // A server that needs more again on the second ask: EPROTO (and the connection closes).
  fut = std::async(std::launch::async, [&] { return c->mmap(nullptr, 4096, PROT_READ, bar_pos); });
  req = s.server_end.receive();
  short_reply(req.h.id, 64);
  req = s.server_end.receive();
  CHECK(req.payload == region_info_req(64, bar));
  short_reply(req.h.id, 128);
  CHECK(fut.get().error() == nvgrace::errc::protocol_error);
  CHECK_FALSE(c->connected());
}
