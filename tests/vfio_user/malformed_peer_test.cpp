// The malformed-input classes that are not about message bytes: what a peer
// can do with the fds the server hands out or accepts, device state one
// client leaves behind for the next, peers that are silent or slow, fds
// hoarded while a message is framed, and the listen backlog. Every case runs
// against the real Grace device (backend/shim) on a server thread, over a
// real socket, and ends with the server serving a new client.
// "vfio-user PN" = docs/vfio-user.md's protocol reference; "§N" = docs/semantics.md.

#include <nvgrace/backend/vfio_user/server.hpp>

#include "peer_abuse.hpp"
#include "raw_peer.hpp"
#include "requests.hpp"
#include "shim_device.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using namespace nvgrace::vfio_user::testing;

namespace {

// A Grace Blackwell device: region 4 = usemem, 64 KiB + 100 bytes behind a 128 KiB BAR;
// region 2 = a real 16 MiB BAR; region 0 = BAR0 (16 MiB, the readiness registers).
constexpr std::uint64_t memlength = (64u << 10) + 100;
constexpr std::uint32_t usemem = 4;
constexpr std::uint32_t real_bar = 2;
constexpr std::uint64_t real_bar_size = 16u << 20;
constexpr int all_size_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

/// A REGION_READ of `count` bytes: the reply's data, or its errno.
struct read_outcome {
  std::vector<std::byte> data;
  std::uint32_t error = 0;
};
read_outcome region_read(raw_peer& peer, std::uint32_t region, std::uint64_t offset, std::uint32_t count,
                         std::uint16_t id = 0x6000) {
  auto r = peer.call(make_message(id, command::region_read, read_req(offset, region, count)));
  read_outcome o;
  if ((r.h.flags & message_flags::error) != 0) {
    o.error = r.h.error;
    return o;
  }
  REQUIRE(r.payload.size() >= 16);
  o.data.assign(r.payload.begin() + 16, r.payload.end());
  return o;
}

/// REGION_WRITE of `data`: the count replied, or its errno (negated).
std::int64_t region_write(raw_peer& peer, std::uint32_t region, std::uint64_t offset, std::span<const std::byte> data,
                          std::uint16_t id = 0x6100) {
  auto r = peer.call(make_message(id, command::region_write, write_req(offset, region, data)));
  if ((r.h.flags & message_flags::error) != 0) return -static_cast<std::int64_t>(r.h.error);
  REQUIRE(r.payload.size() == 16);
  return load_le<std::uint32_t>(r.payload, 12);
}

/// The connection is alive and reads the expected usemem bytes at 0x100.
void check_serving(raw_peer& peer, const std::vector<std::byte>& memory) {
  const auto r = region_read(peer, usemem, 0x100, 8, 0x4242);
  CHECK(r.error == 0u);
  CHECK(r.data == std::vector<std::byte>(memory.begin() + 0x100, memory.begin() + 0x108));
}

/// `peer` goes away; a fresh client in its place is accepted, negotiates and
/// reads the expected bytes.
template <class Device>
void check_next_client(threaded_server<Device>& server, raw_peer& peer, const std::vector<std::byte>& memory) {
  peer = server.connect();
  peer.negotiate();
  check_serving(peer, memory);
}

server_options quick(std::uint32_t handshake = 10'000, std::uint32_t message = 10'000, std::uint32_t idle = 0,
                     std::uint32_t send = 10'000) {
  server_options o;
  o.handshake_timeout_ms = handshake;
  o.message_timeout_ms = message;
  o.idle_timeout_ms = idle;
  o.send_timeout_ms = send;
  return o;
}

/// A device holding `initial` (a pattern from `seed`, zeros for 0), served on a
/// thread that keeps its events, and a negotiated client.
struct served {
  shim_device device;
  std::vector<std::byte> initial;
  event_log log;
  threaded_server<shim_device> server;
  raw_peer peer;

  explicit served(server_options options = {}, unsigned seed = 0)
      : served(make_shim(shim::blackwell(memlength)), options, seed) {}
  served(shim_device d, server_options options, unsigned seed)
      : device(std::move(d)),
        initial(seed != 0 ? pattern(memlength, seed) : std::vector<std::byte>(memlength)),
        server(device, log.options(options)),
        peer(server.connect()) {
    gpu_poke(device, 0, initial);
    peer.negotiate();
  }
  /// This client goes away; a fresh one takes its place and reads `initial`.
  void next_client() { check_next_client(server, peer, initial); }
};

}  // namespace

// ---- fds the server hands out ----------------------------------------------------------

TEST_CASE("fds handed out: region memfds are sealed against shrinking, growing and new seals; memory intact") {
  served f({}, 0x31);
  for (const auto& region : {std::pair{usemem, memlength}, std::pair{real_bar, real_bar_size}}) {
    const std::uint32_t index = region.first;
    const std::uint64_t size = region.second;
    CAPTURE(index);
    auto r = region_info_with_fd(f.peer, index);
    REQUIRE(r.fds.size() == 1);
    const int fd = r.fds[0].get();
    CHECK(::fcntl(fd, F_GET_SEALS) == all_size_seals);
    errno = 0;
    CHECK(::ftruncate(fd, 0) == -1);
    CHECK(errno == EPERM);
    errno = 0;
    CHECK(::ftruncate(fd, static_cast<off_t>(size * 2)) == -1);
    CHECK(errno == EPERM);
    errno = 0;
    CHECK(::fallocate(fd, 0, static_cast<off_t>(size), 4096) == -1);
    CHECK(errno == EPERM);
    // F_SEAL_SEAL: nobody can seal out the next client's writable mapping.
    errno = 0;
    CHECK(::fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) == -1);
    CHECK(errno == EPERM);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_size) == size);
  }
  check_serving(f.peer, f.initial);
  CHECK(gpu_snapshot(f.device) == f.initial);
  f.next_client();
}

TEST_CASE("fds handed out: BAR0 (the readiness registers) is never handed out: no MMAP, no fd") {
  served f;
  auto r = region_info_with_fd(f.peer, 0);
  CHECK_REPLY(r, 0x5100, command::device_get_region_info, 32);
  CHECK(r.payload == bytes_builder().u32(32).u32(0x3).u32(0).u32(0).u64(16u << 20).u64(0).bytes());
  CHECK(r.fds.empty());
}

TEST_CASE("fds handed out: a memory file a peer truncates: EIO past the new end, the rest intact, no crash") {
  socket_path file("memory");
  auto memory = mem::memfd_memory::open_file(file.path.c_str(), memlength);
  REQUIRE(memory);
  CHECK_FALSE(memory->size_sealed());  // a regular file cannot be sealed
  auto created = shim_device::create(shim::blackwell(memlength), std::move(*memory));
  REQUIRE(created);
  served f(std::move(*created), {}, 0x52);
  auto& peer = f.peer;
  const auto& initial = f.initial;
  auto info = region_info_with_fd(peer, usemem);
  REQUIRE(info.fds.size() == 1);
  const int fd = info.fds[0].get();
  CHECK(::fcntl(fd, F_GET_SEALS) == -1);  // not a memfd: nothing to seal
  REQUIRE(::ftruncate(fd, 8192) == 0);    // the peer shrinks the file to two pages

  // The two pages that remain read and write as before.
  CHECK(region_read(peer, usemem, 0x100, 8).data ==
        std::vector<std::byte>(initial.begin() + 0x100, initial.begin() + 0x108));
  CHECK(region_write(peer, usemem, 0x1FF8, pattern(8, 9)) == 8);
  // Past the new end: EIO for reads, writes and an access across the end; the server lives.
  CHECK(region_read(peer, usemem, 0x3000, 8).error == static_cast<std::uint32_t>(EIO));
  CHECK(region_write(peer, usemem, 0x3000, pattern(8, 7)) == -EIO);
  CHECK(region_read(peer, usemem, 0x1FF8, 16).error == static_cast<std::uint32_t>(EIO));
  const auto faults = f.log.of(event::kind::memory_fault);
  REQUIRE(faults.size() == 3);
  CHECK(faults[0].request.command == static_cast<std::uint16_t>(command::region_read));
  CHECK(faults[0].error == errc::io_error);
  CHECK(faults[1].request.command == static_cast<std::uint16_t>(command::region_write));
  auto expected = initial;
  std::copy_n(pattern(8, 9).begin(), 8, expected.begin() + 0x1FF8);
  CHECK(gpu_snapshot_range(f.device, 0, 8192) == std::vector<std::byte>(expected.begin(), expected.begin() + 8192));
  f.next_client();

  // Truncated to nothing: every access is EIO, config space still answers.
  REQUIRE(::ftruncate(fd, 0) == 0);
  CHECK(region_read(peer, usemem, 0, 8).error == static_cast<std::uint32_t>(EIO));
  CHECK(region_read(peer, 7, 0, 4).data == bytes_builder().u16(0x10DE).u16(0x2941).bytes());
  // Grown back: the lost bytes read as zeros (gone, not resurrected), no error.
  REQUIRE(::ftruncate(fd, static_cast<off_t>(memlength)) == 0);
  CHECK(region_read(peer, usemem, 0x100, 8).data == std::vector<std::byte>(8, std::byte{0}));
}

// ---- fds the server accepts -------------------------------------------------------------

TEST_CASE("fds accepted: SET_IRQS(EVENTFD) refuses anything but an eventfd (EINVAL, closed, nothing assigned)") {
  namespace fl = vfio::irq_set_flags;
  served f;
  auto& peer = f.peer;
  const auto assign = set_irqs_req(fl::data_eventfd | fl::action_trigger, 3, 0, 1);
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  unique_fd pipe_read(p[0]), pipe_write(p[1]);
  unique_fd memfd(::memfd_create("not-an-eventfd", MFD_CLOEXEC));
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  unique_fd sock_a(sv[0]), sock_b(sv[1]);
  const std::size_t eventfds_before = open_eventfd_count();
  for (const int fd : {pipe_write.get(), memfd.get(), sock_a.get()}) {
    CAPTURE(fd);
    auto r = peer.call(make_message(0x70, command::device_set_irqs, assign), {fd});
    CHECK_ERROR_REPLY(r, 0x70, command::device_set_irqs, EINVAL);
  }
  pipe_write.reset();
  CHECK(pipe_write_end_closed(pipe_read.get()));             // the server's copy is closed
  CHECK((::fcntl(memfd.get(), F_GETFL) & O_NONBLOCK) == 0);  // and its flags were not touched
  // Nothing was assigned: a trigger signals nothing and succeeds.
  auto t = peer.call(
      make_message(0x71, command::device_set_irqs, set_irqs_req(fl::data_none | fl::action_trigger, 3, 0, 1)));
  CHECK_REPLY(t, 0x71, command::device_set_irqs, 0);
  // A real eventfd is taken (and made non-blocking: its open file is shared with the peer).
  auto ev = make_eventfd();
  auto a = peer.call(make_message(0x72, command::device_set_irqs, assign), {ev.get()});
  CHECK_REPLY(a, 0x72, command::device_set_irqs, 0);
  CHECK((::fcntl(ev.get(), F_GETFL) & O_NONBLOCK) != 0);
  CHECK(open_eventfd_count() == eventfds_before + 2);  // ours and the server's copy
  f.next_client();
  CHECK(open_eventfd_count() == eventfds_before + 1);  // the server closed its copy
}

TEST_CASE("fds accepted: an eventfd whose counter is full never blocks the server; the failure is replied and logged") {
  namespace fl = vfio::irq_set_flags;
  served f;
  auto& peer = f.peer;
  auto ev = make_eventfd();  // blocking, as the peer created it
  auto a =
      peer.call(make_message(1, command::device_set_irqs, set_irqs_req(fl::data_eventfd | fl::action_trigger, 3, 0, 1)),
                {ev.get()});
  CHECK_REPLY(a, 1, command::device_set_irqs, 0);
  std::uint64_t value = eventfd_full;
  REQUIRE(::write(ev.get(), &value, 8) == 8);
  // The peer even clears O_NONBLOCK again on the open file it shares with the server.
  REQUIRE(::fcntl(ev.get(), F_SETFL, ::fcntl(ev.get(), F_GETFL) & ~O_NONBLOCK) == 0);
  const auto one = bytes_builder().u8(1).bytes();
  auto b = peer.call(
      make_message(2, command::device_set_irqs, set_irqs_req(fl::data_bool | fl::action_trigger, 3, 0, 1, one)));
  CHECK_ERROR_REPLY(b, 2, command::device_set_irqs, EAGAIN);
  auto n =
      peer.call(make_message(3, command::device_set_irqs, set_irqs_req(fl::data_none | fl::action_trigger, 3, 0, 1)));
  CHECK_ERROR_REPLY(n, 3, command::device_set_irqs, EAGAIN);
  const auto failures = f.log.of(event::kind::irq_signal_failed);
  REQUIRE(failures.size() == 2);
  CHECK(failures[0].error == errc::resource_unavailable_try_again);
  CHECK(failures[0].request.id == 2);
  CHECK(failures[1].request.id == 3);
  REQUIRE(::read(ev.get(), &value, 8) == 8);
  CHECK(value == eventfd_full);  // unchanged by the failed signals
  // Drained, it is signalled again.
  auto c = peer.call(
      make_message(4, command::device_set_irqs, set_irqs_req(fl::data_bool | fl::action_trigger, 3, 0, 1, one)));
  CHECK_REPLY(c, 4, command::device_set_irqs, 0);
  REQUIRE(::read(ev.get(), &value, 8) == 8);
  CHECK(value == 1);
  check_serving(peer, f.initial);
  f.next_client();  // the server never blocked: the next client is served too
}

// ---- device state left behind ------------------------------------------------------------

TEST_CASE(
    "state left behind: the readiness registers are read-only to a peer; reset then the next client is served at "
    "once") {
  served f({}, 0x64);
  {
    auto& peer = f.peer;
    // A 4-byte write of 0 to each register: accepted (count 4) and dropped.
    for (const std::uint64_t reg : {shim::c2c_link_register, shim::hbm_training_register}) {
      CAPTURE(reg);
      CHECK(region_write(peer, 0, reg, std::vector<std::byte>(4, std::byte{0})) == 4);
      CHECK(region_read(peer, 0, reg, 4).data == bytes_builder().u32(0xFF).bytes());
      // A 16-byte write around it: the bytes beside the register are written, its own are not.
      CHECK(region_write(peer, 0, reg - 4, pattern(16, 3)) == 16);
      auto expected = pattern(16, 3);
      std::copy_n(bytes_builder().u32(0xFF).bytes().begin(), 4, expected.begin() + 4);
      CHECK(region_read(peer, 0, reg - 4, 16).data == expected);
      // A write starting inside the register.
      CHECK(region_write(peer, 0, reg + 2, pattern(4, 5)) == 4);
      CHECK(region_read(peer, 0, reg, 4).data == bytes_builder().u32(0xFF).bytes());
    }
    auto reset = peer.call(make_message(9, command::device_reset));
    CHECK_REPLY(reset, 9, command::device_reset, 0);
  }
  CHECK(f.device.bar0_register(shim::c2c_link_register) == shim::status_ready);
  CHECK(f.device.bar0_register(shim::hbm_training_register) == shim::status_ready);
  CHECK(f.device.reset_done());  // the next memory access polls readiness: once, and it is ready
  // The next client's first usemem access is answered (a broken register would make it
  // wait 30 s for ETIME; the reply must come within raw_peer's 5 s).
  f.next_client();
  CHECK_FALSE(f.device.reset_done());
}

// ---- silent and slow peers --------------------------------------------------------------

TEST_CASE(
    "silent peer: a client that never sends VERSION is dropped after handshake_timeout; the one behind it is served") {
  auto device = make_shim(shim::blackwell(memlength));
  event_log log;
  threaded_server<shim_device> server(device, log.options(quick(300)));
  auto silent = server.connect();
  auto waiting = server.connect();
  waiting.send(make_message(1, command::version, version_payload(0, 0)));
  auto r = waiting.receive(5000);  // served once the silent one is dropped
  CHECK(r.h.flags == message_flags::type_reply);
  CHECK(silent.closed());
  const auto timeouts = log.of(event::kind::timed_out);
  REQUIRE(timeouts.size() == 1);
  CHECK(timeouts[0].error == errc::timed_out);
  CHECK(std::string(timeouts[0].detail) == "no VERSION within handshake_timeout_ms");
  check_serving(waiting, std::vector<std::byte>(memlength, std::byte{0}));
}

TEST_CASE("slow peer: a message stopped half way is dropped after message_timeout with ETIMEDOUT") {
  served f(quick(10'000, 300));
  auto& peer = f.peer;
  const auto write = make_message(7, command::region_write, write_req(0, usemem, pattern(24, 1)));
  peer.send(std::span<const std::byte>(write).first(20));
  auto r = peer.receive(5000);
  CHECK_ERROR_REPLY(r, 7, command::region_write, ETIMEDOUT);
  CHECK(peer.closed());
  REQUIRE(f.log.count(event::kind::timed_out) == 1);
  CHECK(std::string(f.log.of(event::kind::timed_out)[0].detail) ==
        "a message was not complete within message_timeout_ms");
  CHECK(gpu_snapshot(f.device) == f.initial);
  f.next_client();
}

TEST_CASE("slow peer: a message trickled one byte per 20 ms is dropped after message_timeout, long before it ends") {
  served f(quick(10'000, 300));
  auto& peer = f.peer;
  const auto write = make_message(8, command::region_write, write_req(0, usemem, pattern(1024, 2)));
  peer.send(std::span<const std::byte>(write).first(header_size));  // the header at once, so the reply can name it
  std::size_t sent = header_size;
  for (; sent < write.size(); ++sent) {
    if (::send(peer.fd(), write.data() + sent, 1, MSG_NOSIGNAL) != 1) break;
    if (!peer.silent(20)) break;  // the server answered (and closes)
  }
  CHECK(sent < 200);  // 300 ms of 20 ms steps, with room for a slow machine
  auto r = peer.receive(5000);
  CHECK_ERROR_REPLY(r, 8, command::region_write, ETIMEDOUT);
  CHECK(peer.closed());
  f.next_client();
}

TEST_CASE("silent peer: idle_timeout off (the default) keeps a quiet VMM; set, it drops a quiet client") {
  auto device = make_shim(shim::blackwell(memlength));
  {
    threaded_server<shim_device> server(device, quick(300, 300));  // ticks every 75 ms
    auto peer = server.connect();
    peer.negotiate();
    CHECK(peer.silent(800));  // not closed, nothing sent
    check_serving(peer, std::vector<std::byte>(memlength, std::byte{0}));
  }
  served f(quick(10'000, 10'000, 300));
  CHECK(f.peer.closed(3000));
  REQUIRE(f.log.count(event::kind::timed_out) == 1);
  CHECK(std::string(f.log.of(event::kind::timed_out)[0].detail) == "no message within idle_timeout_ms");
}

TEST_CASE("slow peer: a client that never reads its replies is dropped after send_timeout; the next is served") {
  auto device = make_shim(shim::blackwell(memlength));
  event_log log;
  threaded_server<shim_device> server(device, log.options(quick(10'000, 10'000, 0, 300)));
  auto hog = server.connect();
  hog.negotiate();
  // 32 pipelined reads of the whole 128 KiB BAR, never read: 4 MiB of replies, far
  // more than a UNIX socket buffers (the sender's SO_SNDBUF, ~208 KiB).
  std::vector<std::byte> requests;
  for (std::uint16_t i = 0; i < 32; ++i) {
    const auto m =
        make_message(static_cast<std::uint16_t>(100 + i), command::region_read, read_req(0, usemem, 128u << 10));
    requests.insert(requests.end(), m.begin(), m.end());
  }
  hog.send(requests);
  auto next = server.connect();
  next.send(make_message(1, command::version, version_payload(0, 0)));
  auto r = next.receive(5000);
  CHECK(r.h.flags == message_flags::type_reply);
  const auto timeouts = log.of(event::kind::timed_out);
  REQUIRE(timeouts.size() == 1);
  CHECK(std::string(timeouts[0].detail) == "the peer did not take a reply within send_timeout_ms");
  check_serving(next, std::vector<std::byte>(memlength, std::byte{0}));
}

// ---- fd hoarding ----------------------------------------------------------------------------

TEST_CASE(
    "fd hoarding: a 1 MiB WRITE sent one byte per sendmsg, each with an fd: at most the budget is held, then EINVAL "
    "and close") {
  served f;
  auto& peer = f.peer;
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  unique_fd pipe_read(p[0]), pipe_write(p[1]);
  const std::size_t baseline = open_fd_count();
  auto head = make_message(0x99, command::region_write, write_req(0, usemem, pattern(64, 4)));
  store_le<std::uint32_t>(head, 4, (1u << 20) + 32);  // the header announces a 1 MiB WRITE
  std::size_t sent = 0;
  std::size_t peak = 0;
  for (; sent < 2000; ++sent) {
    const std::byte b = sent < head.size() ? head[sent] : std::byte{0};
    const iovec part{const_cast<std::byte*>(&b), 1};
    if (!send_message(peer.fd(), std::span<const iovec>(&part, 1), std::array<int, 1>{pipe_write.get()})) break;
    if (sent % 16 == 0) peak = std::max(peak, open_fd_count());
    if (!peer.silent(0)) break;  // the server answered (and closes)
  }
  CHECK(sent < 2000);
  // The server held at most its budget of received fds (+1: the one a receive over budget
  // installs before the stream closes it).
  CHECK(peak - baseline <= max_fds_while_framing + 1);
  auto r = peer.receive(5000);
  CHECK_ERROR_REPLY(r, 0x99, command::region_write, EINVAL);
  CHECK(peer.closed());
  pipe_write.reset();
  CHECK(pipe_write_end_closed(pipe_read.get()));  // every copy the server received is closed
  CHECK(open_fd_count() == baseline - 2);         // less our write end and the server's socket
  REQUIRE(f.log.count(event::kind::framing_error) == 1);
  CHECK(std::string(f.log.of(event::kind::framing_error)[0].detail) ==
        "more fds arrived than a connection may hold while framing");
  CHECK(gpu_snapshot(f.device) == f.initial);
  f.next_client();
}

// ---- listen backlog ------------------------------------------------------------------------

TEST_CASE("backlog: 40 simultaneous non-blocking connects succeed while a client is served; each is then served") {
  auto device = make_shim(shim::blackwell(memlength));
  threaded_server<shim_device> server(device);
  auto busy = server.connect();
  busy.negotiate();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, server.path().c_str(), server.path().size());
  std::vector<unique_fd> waiting;
  for (int i = 0; i < 40; ++i) {
    CAPTURE(i);
    unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    REQUIRE(s);
    errno = 0;
    CHECK(::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    CHECK(errno == 0);
    waiting.push_back(std::move(s));
  }
  const auto version = make_message(1, command::version, version_payload(0, 0));
  for (auto& s : waiting) REQUIRE(::send(s.get(), version.data(), version.size(), MSG_NOSIGNAL) == 20);
  busy.shutdown_write();
  CHECK(busy.closed());
  for (auto& s : waiting) {
    const int flags = ::fcntl(s.get(), F_GETFL);
    REQUIRE(::fcntl(s.get(), F_SETFL, flags & ~O_NONBLOCK) == 0);
    raw_peer peer(s.release());
    auto r = peer.receive(5000);
    CHECK(r.h.flags == message_flags::type_reply);
  }
}
