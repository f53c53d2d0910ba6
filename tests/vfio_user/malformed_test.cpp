// Malformed input against the running server (real socket, server thread):
// every class gets its exact error reply (flags 0x21, errno), the server keeps
// serving or closes exactly when it must and then accepts a new client, fds
// sent where none belong are closed, and device memory never changes.
// "vfio-user PN" = docs/vfio-user.md's protocol reference.

#include <nvgrace/backend/vfio_user/server.hpp>

#include "raw_peer.hpp"
#include "requests.hpp"
#include "shim_device.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using namespace nvgrace::vfio_user::testing;

namespace {

// A Grace Blackwell device: region 4 = usemem, 64 KiB + 100 bytes behind a 128 KiB BAR.
constexpr std::uint64_t memlength = (64u << 10) + 100;
constexpr std::uint64_t bar_size = 128u << 10;
constexpr std::uint32_t bar = 4;
constexpr std::uint32_t command_flags = message_flags::type_command;

enum class expect : std::uint8_t {
  error,            // error reply, connection stays up
  error_and_close,  // error reply, then the server closes
  nothing,          // no reply at all (NO_REPLY), connection stays up
};

enum class delivery : std::uint8_t {
  normal,          // one send, `fds` attached to the first byte
  fd_after_start,  // the first 20 bytes, a pause, then the rest with the fds
  end_of_stream,   // the bytes, then shutdown(SHUT_WR)
  too_many_fds,    // the bytes with 100 fds (more than a receive takes)
};

struct malformed {
  std::string name;
  std::vector<std::byte> bytes;
  expect outcome = expect::error;
  int error = EINVAL;
  std::uint16_t reply_id = 0;
  std::uint16_t reply_command = 0;
  int fds = 0;
  bool fresh = false;  // on a connection that has not negotiated
  delivery how = delivery::normal;
  std::vector<std::vector<std::byte>> setup = {};  // valid messages sent (and answered) first
};

std::vector<std::byte> msg(std::uint16_t id, std::uint16_t cmd, std::span<const std::byte> payload,
                           std::uint32_t flags = command_flags, std::uint32_t size = computed_size,
                           std::uint32_t error = 0) {
  return make_message(id, cmd, payload, flags, size, error);
}
std::uint16_t cmd(command c) { return static_cast<std::uint16_t>(c); }

std::vector<malformed> table() {
  namespace irq = vfio::irq_set_flags;
  const auto good_read = read_req(0, bar, 8);
  const auto write8 = write_req(0, bar, pattern(8, 0x40));
  std::vector<malformed> t;
  auto add = [&](malformed m) { t.push_back(std::move(m)); };

  // ---- framing ----
  add({"size below the header (8)", msg(1, 9, {}, command_flags, 8), expect::error_and_close, EINVAL, 1, 9});
  add({"size 0", msg(2, 10, {}, command_flags, 0), expect::error_and_close, EINVAL, 2, 10});
  add({"size above the limit", msg(3, 10, write8, command_flags, 0x7FFFFFFF), expect::error_and_close, EINVAL, 3, 10});
  add({"size 1 MiB + 33 (one above the largest WRITE)", msg(4, 10, write8, command_flags, (1u << 20) + 33),
       expect::error_and_close, EINVAL, 4, 10});
  add({"end of stream inside a 1 MiB WRITE", msg(5, 10, write8, command_flags, (1u << 20) + 32),
       expect::error_and_close, EINVAL, 5, 10, 0, false, delivery::end_of_stream});
  {
    auto half = msg(6, 10, write8);
    half.resize(24);
    half[4] = std::byte{40};  // size says 40, 24 arrive
    add({"truncated message then end of stream", half, expect::error_and_close, EINVAL, 6, 10, 0, false,
         delivery::end_of_stream});
  }
  {
    auto partial = msg(7, 10, write8);
    partial.resize(10);
    add({"partial header then end of stream", partial, expect::error_and_close, EINVAL, 0, 0, 0, false,
         delivery::end_of_stream});
  }

  // ---- header fields ----
  add({"reply-typed message (a WRITE body is drained, not executed)", msg(10, 10, write8, 0x1), expect::error, EINVAL,
       10, 10});
  add({"reply-typed with NO_REPLY still answered", msg(11, 10, write8, 0x11), expect::error, EINVAL, 11, 10});
  add({"type bits 0xF", msg(12, 9, good_read, 0xF), expect::error, EINVAL, 12, 9});
  add({"ERROR flag in a command", msg(13, 9, good_read, 0x20), expect::error, EINVAL, 13, 9});
  add({"unknown flag bit 0x100", msg(14, 9, good_read, 0x100), expect::error, EINVAL, 14, 9});
  add({"error field set in a command", msg(15, 10, write8, command_flags, computed_size, 5), expect::error, EINVAL, 15,
       10});
  add({"unknown command 0x99", msg(16, 0x99, good_read), expect::error, EINVAL, 16, 0x99});
  add({"command 0", msg(17, 0, {}), expect::error, EINVAL, 17, 0});
  add({"server-to-client DMA_WRITE sent to the server", msg(18, cmd(command::dma_write), write8), expect::error, EINVAL,
       18, cmd(command::dma_write)});
  add({"DEVICE_FEATURE (no migration)",
       msg(19, cmd(command::device_feature), bytes_builder().u32(8).u32(0x10001).bytes()), expect::error, EINVAL, 19,
       cmd(command::device_feature)});
  add({"REGION_WRITE_MULTI (not advertised)",
       msg(20, cmd(command::region_write_multi), bytes_builder().u64(1).u64(0).u32(bar).u32(8).u64(0).bytes()),
       expect::error, EINVAL, 20, cmd(command::region_write_multi)});
  add({"NO_REPLY on an invalid command: silence",
       msg(21, 10, write_req(bar_size, bar, pattern(8, 1)), command_flags | message_flags::no_reply), expect::nothing});

  // ---- VERSION ----
  add({"command before VERSION", msg(30, 10, write8), expect::error, EINVAL, 30, 10, 0, true});
  add({"second VERSION", msg(31, 1, version_payload(0, 0)), expect::error, EINVAL, 31, 1});
  add({"VERSION major 1", msg(32, 1, version_payload(1, 0)), expect::error_and_close, EINVAL, 32, 1, 0, true});
  add({"VERSION payload of 2 bytes", msg(33, 1, bytes_builder().u16(0).bytes()), expect::error, EINVAL, 33, 1, 0,
       true});
  add({"VERSION JSON without its NUL", msg(34, 1, bytes_builder().u16(0).u16(0).text("{}", false).bytes()),
       expect::error, EINVAL, 34, 1, 0, true});
  add({"VERSION malformed JSON", msg(35, 1, version_payload(0, 0, R"({"capabilities":{"max_msg_fds":})")),
       expect::error, EINVAL, 35, 1, 0, true});
  add({"VERSION max_msg_fds 2000", msg(36, 1, version_payload(0, 0, R"({"capabilities":{"max_msg_fds":2000}})")),
       expect::error, EINVAL, 36, 1, 0, true});
  add({"VERSION with an fd", msg(37, 1, version_payload(0, 0)), expect::error, EINVAL, 37, 1, 1, true});

  // ---- DEVICE_GET_INFO / GET_REGION_INFO / GET_IRQ_INFO ----
  add({"GET_INFO payload of 8", msg(40, 4, device_info_req(16, 8)), expect::error, EINVAL, 40, 4});
  add({"GET_INFO argsz 8", msg(41, 4, device_info_req(8)), expect::error, EINVAL, 41, 4});
  add({"GET_REGION_INFO payload of 16", msg(42, 5, region_info_req(32, bar, 16)), expect::error, EINVAL, 42, 5});
  add({"GET_REGION_INFO argsz 31", msg(43, 5, region_info_req(31, bar)), expect::error, EINVAL, 43, 5});
  add({"GET_REGION_INFO index 9", msg(44, 5, region_info_req(32, 9)), expect::error, EINVAL, 44, 5});
  add({"GET_REGION_INFO index 0xdeadbeef", msg(45, 5, region_info_req(64, 0xdeadbeef)), expect::error, EINVAL, 45, 5});
  add({"GET_REGION_INFO with an fd", msg(46, 5, region_info_req(64, bar)), expect::error, EINVAL, 46, 5, 1});
  add({"GET_IRQ_INFO index 5", msg(47, 7, irq_info_req(5)), expect::error, EINVAL, 47, 7});
  add({"GET_IRQ_INFO argsz 0", msg(48, 7, irq_info_req(0, 0)), expect::error, EINVAL, 48, 7});
  add({"GET_IRQ_INFO payload of 4", msg(49, 7, bytes_builder().u32(16).bytes()), expect::error, EINVAL, 49, 7});

  // ---- REGION_READ / REGION_WRITE ----
  add({"READ payload of 12", msg(50, 9, bytes_builder().u64(0).u32(bar).bytes()), expect::error, EINVAL, 50, 9});
  add({"READ with trailing bytes", msg(51, 9, bytes_builder().u64(0).u32(bar).u32(8).u64(0).bytes()), expect::error,
       EINVAL, 51, 9});
  add({"READ count 1 MiB + 1", msg(52, 9, read_req(0, bar, (1u << 20) + 1)), expect::error, EINVAL, 52, 9});
  add({"READ count 0xFFFFFFFF", msg(53, 9, read_req(0, bar, 0xFFFFFFFF)), expect::error, EINVAL, 53, 9});
  add({"READ region 0xdeadbeef", msg(54, 9, read_req(0, 0xdeadbeef, 8)), expect::error, EINVAL, 54, 9});
  add({"READ region 9 (= num_regions)", msg(55, 9, read_req(0, 9, 8)), expect::error, EINVAL, 55, 9});
  add({"READ offset 2^40 (the next region's window)", msg(56, 9, read_req(std::uint64_t{1} << 40, bar, 8)),
       expect::error, EINVAL, 56, 9});
  add({"READ offset 2^64 - 1", msg(57, 9, read_req(~std::uint64_t{0}, bar, 8)), expect::error, EINVAL, 57, 9});
  add({"READ at the BAR end", msg(58, 9, read_req(bar_size, bar, 1)), expect::error, EINVAL, 58, 9});
  add({"WRITE count larger than its data", msg(60, 10, write_req(0, bar, pattern(8, 1), 16)), expect::error, EINVAL, 60,
       10});
  add({"WRITE count smaller than its data", msg(61, 10, write_req(0, bar, pattern(16, 1), 8)), expect::error, EINVAL,
       61, 10});
  add({"WRITE payload shorter than its fixed part", msg(62, 10, bytes_builder().u64(0).bytes()), expect::error, EINVAL,
       62, 10});
  add({"WRITE with an fd", msg(63, 10, write8), expect::error, EINVAL, 63, 10, 1});
  add({"WRITE at the BAR end", msg(64, 10, write_req(bar_size, bar, pattern(8, 1))), expect::error, EINVAL, 64, 10});
  add({"WRITE to region 2^32-1", msg(65, 10, write_req(0, 0xFFFFFFFF, pattern(8, 1))), expect::error, EINVAL, 65, 10});
  add({"WRITE with its fd after the first byte", msg(66, 10, write8), expect::error, EINVAL, 66, 10, 1, false,
       delivery::fd_after_start});
  add({"WRITE with 100 fds (more than a receive takes)", msg(67, 10, write8), expect::error, EINVAL, 67, 10, 0, false,
       delivery::too_many_fds});

  // ---- DEVICE_SET_IRQS ----
  add({"SET_IRQS two data types",
       msg(70, 8, set_irqs_req(irq::data_none | irq::data_bool | irq::action_trigger, 3, 0, 1)), expect::error, EINVAL,
       70, 8});
  add({"SET_IRQS no action", msg(71, 8, set_irqs_req(irq::data_none, 3, 0, 1)), expect::error, EINVAL, 71, 8});
  add({"SET_IRQS unknown flag bit", msg(72, 8, set_irqs_req(irq::data_none | irq::action_trigger | 0x40, 3, 0, 1)),
       expect::error, EINVAL, 72, 8});
  add({"SET_IRQS start + count beyond the vectors",
       msg(73, 8, set_irqs_req(irq::data_none | irq::action_trigger, 0, 0, 2)), expect::error, EINVAL, 73, 8});
  add({"SET_IRQS start + count overflowing 32 bits",
       msg(74, 8, set_irqs_req(irq::data_none | irq::action_trigger, 0, 0xFFFFFFFF, 2)), expect::error, EINVAL, 74, 8});
  add({"SET_IRQS index 5", msg(75, 8, set_irqs_req(irq::data_none | irq::action_trigger, 5, 0, 0)), expect::error,
       EINVAL, 75, 8});
  add({"SET_IRQS 2 eventfds for count 1", msg(76, 8, set_irqs_req(irq::data_eventfd | irq::action_trigger, 3, 0, 1)),
       expect::error, EINVAL, 76, 8, 2});
  add({"SET_IRQS an fd with DATA_NONE", msg(77, 8, set_irqs_req(irq::data_none | irq::action_trigger, 3, 0, 1)),
       expect::error, EINVAL, 77, 8, 1});
  add({"SET_IRQS DATA_BOOL without its bytes", msg(78, 8, set_irqs_req(irq::data_bool | irq::action_trigger, 3, 0, 1)),
       expect::error, EINVAL, 78, 8});
  add({"SET_IRQS MASK on a non-maskable index", msg(79, 8, set_irqs_req(irq::data_none | irq::action_mask, 3, 0, 1)),
       expect::error, EINVAL, 79, 8});
  add({"SET_IRQS payload of 16", msg(80, 8, bytes_builder().u32(20).u32(0x21).u32(3).u32(0).bytes()), expect::error,
       EINVAL, 80, 8});

  // ---- DMA_MAP / DMA_UNMAP ----
  add({"DMA_MAP payload of 24", msg(90, 2, bytes_builder().u32(32).u32(3).u64(0).u64(0x1000).bytes()), expect::error,
       EINVAL, 90, 2});
  add({"DMA_MAP argsz 16", msg(91, 2, dma_map_req(3, 0, 0x100000, 0x1000, 16)), expect::error, EINVAL, 91, 2});
  add({"DMA_MAP size 0", msg(92, 2, dma_map_req(3, 0, 0x100000, 0)), expect::error, EINVAL, 92, 2});
  add({"DMA_MAP address + size overflows", msg(93, 2, dma_map_req(3, 0, 0xFFFFFFFFFFFFF000, 0x2000)), expect::error,
       EINVAL, 93, 2});
  add({"DMA_MAP unaligned address", msg(94, 2, dma_map_req(3, 0, 0x100800, 0x1000)), expect::error, EINVAL, 94, 2});
  add({"DMA_MAP unknown flags", msg(95, 2, dma_map_req(0x10, 0, 0x100000, 0x1000)), expect::error, EINVAL, 95, 2});
  add({"DMA_MAP with two fds", msg(96, 2, dma_map_req(3, 0, 0x100000, 0x1000)), expect::error, EINVAL, 96, 2, 2});
  add({"DMA_MAP overlapping a window (its fd closed)",
       msg(97, 2, dma_map_req(3, 0, 0x201000, 0x1000)),
       expect::error,
       EEXIST,
       97,
       2,
       1,
       false,
       delivery::normal,
       {msg(900, 2, dma_map_req(3, 0, 0x200000, 0x4000))}});
  add({"DMA_UNMAP of no window", msg(98, 3, dma_unmap_req(0, 0x900000, 0x1000)), expect::error, ENOENT, 98, 3});
  add({"DMA_UNMAP size not matching", msg(99, 3, dma_unmap_req(0, 0x200000, 0x1000)), expect::error, ENOENT, 99, 3});
  add({"DMA_UNMAP dirty bitmap (no migration)", msg(100, 3, dma_unmap_req(1, 0x200000, 0x4000)), expect::error, EINVAL,
       100, 3});
  add({"DMA_UNMAP all with an address", msg(101, 3, dma_unmap_req(2, 0x200000, 0)), expect::error, EINVAL, 101, 3});
  add({"DMA_UNMAP payload of 32", msg(102, 3, bytes_builder().u32(24).u32(0).u64(0x200000).u64(0x4000).u64(0).bytes()),
       expect::error, EINVAL, 102, 3});
  add({"DMA_UNMAP with an fd", msg(103, 3, dma_unmap_req(0, 0x200000, 0x4000)), expect::error, EINVAL, 103, 3, 1});

  // ---- DEVICE_RESET ----
  add({"DEVICE_RESET with a payload", msg(110, 13, bytes_builder().u32(0).bytes()), expect::error, EINVAL, 110, 13});
  return t;
}

/// Send `bytes` with 100 fds in one sendmsg (beyond send_message's limit).
void send_with_many_fds(int socket, std::span<const std::byte> bytes, const std::vector<int>& fds) {
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control.data();
  m.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  REQUIRE(::sendmsg(socket, &m, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
}

struct pipe_pair {
  unique_fd read, write;
  pipe_pair() {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    read.reset(p[0]);
    write.reset(p[1]);
  }
};

/// The connection is alive: a valid REGION_READ gets its 8 bytes.
void check_serving(raw_peer& peer, const std::vector<std::byte>& memory) {
  auto r = peer.call(make_message(0x4242, command::region_read, read_req(0x100, bar, 8)));
  REQUIRE(r.h.flags == message_flags::type_reply);
  CHECK(std::equal(r.payload.begin() + 16, r.payload.end(), memory.begin() + 0x100));
}

}  // namespace

TEST_CASE("vfio-user P12 malformed messages: exact error replies, fds closed, memory unchanged, server survives") {
  auto device = make_shim(shim::blackwell(memlength));
  const auto initial = pattern(memlength, 0x17);
  gpu_poke(device, 0, initial);
  threaded_server<shim_device> server(device);
  const auto cases = table();
  REQUIRE(cases.size() >= 20);

  std::optional<raw_peer> peer;
  bool negotiated = false;
  int closes = 0;
  for (const auto& c : cases) {
    CAPTURE(c.name);
    if (!peer || c.fresh) {
      peer.emplace(server.connect());
      negotiated = false;
    }
    if (!c.fresh && !negotiated) {
      peer->negotiate();
      negotiated = true;
    }
    for (const auto& s : c.setup) REQUIRE(peer->call(s).h.flags == message_flags::type_reply);

    std::vector<pipe_pair> pipes(static_cast<std::size_t>(c.how == delivery::too_many_fds ? 100 : c.fds));
    std::vector<int> write_ends;
    for (auto& p : pipes) write_ends.push_back(p.write.get());
    switch (c.how) {
      case delivery::normal: {
        const iovec part{const_cast<std::byte*>(c.bytes.data()), c.bytes.size()};
        REQUIRE(send_message(peer->fd(), std::span<const iovec>(&part, 1), write_ends));
        break;
      }
      case delivery::fd_after_start: {
        const auto bytes = std::span<const std::byte>(c.bytes);
        peer->send(bytes.first(20));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the server take the first part alone
        const iovec part{const_cast<std::byte*>(bytes.data() + 20), bytes.size() - 20};
        REQUIRE(send_message(peer->fd(), std::span<const iovec>(&part, 1), write_ends));
        break;
      }
      case delivery::end_of_stream:
        peer->send(c.bytes);
        peer->shutdown_write();
        break;
      case delivery::too_many_fds: send_with_many_fds(peer->fd(), c.bytes, write_ends); break;
    }
    for (auto& p : pipes) p.write.reset();  // only the server's copies remain

    if (c.outcome == expect::nothing) {
      CHECK(peer->silent());
    } else {
      auto r = peer->receive();
      CHECK_ERROR_REPLY(r, c.reply_id, c.reply_command, c.error);
    }
    for (auto& p : pipes) CHECK(pipe_write_end_closed(p.read.get()));

    if (c.outcome == expect::error_and_close) {
      CHECK(peer->closed());
      ++closes;
      // A new client is accepted and served.
      peer.emplace(server.connect());
      peer->negotiate();
      negotiated = true;
    } else if (!negotiated) {
      peer->negotiate();  // a refused first VERSION (or command) leaves the connection usable
      negotiated = true;
    }
    check_serving(*peer, initial);
    CHECK(gpu_snapshot(device) == initial);
  }
  CHECK(closes == 8);
}

TEST_CASE("vfio-user P12 a reply-typed REGION_WRITE body is drained: the next message frames correctly") {
  auto device = make_shim(shim::blackwell(memlength));
  threaded_server<shim_device> server(device);
  auto peer = server.connect();
  peer.negotiate();
  // Both in one send: the bogus reply-typed WRITE (1 KiB body) and a valid READ.
  auto bogus = make_message(1, 10, write_req(0, bar, pattern(1024, 3)), message_flags::type_reply);
  auto read = make_message(2, command::region_read, read_req(0, bar, 4));
  bogus.insert(bogus.end(), read.begin(), read.end());
  peer.send(bogus);
  auto e = peer.receive();
  CHECK_ERROR_REPLY(e, 1, 10, EINVAL);
  auto r = peer.receive();
  CHECK_REPLY(r, 2, command::region_read, 20);
  CHECK(peer.silent());
}
