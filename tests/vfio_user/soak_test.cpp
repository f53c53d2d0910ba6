// Soak: a server process serves one Grace device on two sockets (two servers,
// one device, as two VMMs would share a host's device file). On one socket a
// long-lived client keeps writing its half of the memory (through
// REGION_WRITE and through its mapping) and checks every byte it reads against
// a shadow copy. On the other, many short-lived clients each send a random
// mix of good and bad requests (malformed headers and payloads, fds where none
// belong, saturated eventfds, truncation attempts on region fds, writes to the
// readiness registers, resets, messages cut off or left unfinished, silence)
// and go away in random ways. Afterwards: no byte of the long-lived client's
// half was lost or changed by anyone else, and the server's fd count and RSS
// are where they were after the warm-up.
//
// Bounded in time and count, loopback (UNIX sockets) only. The figures are
// printed. NVGRACE_SOAK_SECONDS / NVGRACE_SOAK_CLIENTS (compile definitions)
// set the bounds: a short run in every stage, a long one labelled "slow".

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/posix/clock.hpp>

#include "raw_peer.hpp"
#include "requests.hpp"

#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#ifndef NVGRACE_SOAK_SECONDS
#define NVGRACE_SOAK_SECONDS 4
#endif
#ifndef NVGRACE_SOAK_CLIENTS
#define NVGRACE_SOAK_CLIENTS 400
#endif

// A sanitizer's allocator keeps freed memory in quarantine and grows fake
// stacks as it goes: RSS is a figure there, not a check.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NVGRACE_SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NVGRACE_SOAK_SANITIZED 1
#endif
#endif
#ifndef NVGRACE_SOAK_SANITIZED
#define NVGRACE_SOAK_SANITIZED 0
#endif

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using namespace nvgrace::vfio_user::testing;

namespace {

using device = shim::memfd_device;

// Blackwell, 1 MiB + 100 bytes of usemem (region 4) behind a 2 MiB BAR. The
// long-lived client owns [0, 512 KiB); the short-lived ones read and write only
// past it (the two servers run on two threads of one process: touching the same
// bytes from both would be a data race of the test, not of the library).
constexpr std::uint64_t memlength = (1u << 20) + 100;
constexpr std::uint32_t usemem = 4;
constexpr std::uint64_t owned = 512u << 10;
constexpr std::uint32_t real_bar = 2;  // a real 16 MiB BAR on Blackwell
constexpr int storm_threads = 2;

// ---- the server process -------------------------------------------------------------------

struct server_process {
  pid_t pid = -1;
  int control = -1;  // closing it stops the servers
  socket_path owner_socket, storm_socket;
};

/// Fork the server process; returns once both servers listen.
void start_servers(server_process& p) {
  int control[2], ready[2];
  REQUIRE(::pipe2(control, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
  p.pid = ::fork();
  REQUIRE(p.pid >= 0);
  if (p.pid == 0) {
    ::close(control[1]);
    ::close(ready[0]);
    ::signal(SIGPIPE, SIG_IGN);
    auto dev = device::create(shim::blackwell(memlength));
    if (!dev) ::_exit(3);
    server_options storm_options;
    storm_options.handshake_timeout_ms = 400;
    storm_options.message_timeout_ms = 400;
    storm_options.idle_timeout_ms = 2000;
    storm_options.send_timeout_ms = 1000;
    server<device> owner(*dev);
    server<device> storm(*dev, storm_options);
    if (!owner.listen(p.owner_socket.path.c_str()) || !storm.listen(p.storm_socket.path.c_str())) ::_exit(4);
    std::thread a([&] { static_cast<void>(owner.run()); });
    std::thread b([&] { static_cast<void>(storm.run()); });
    const char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) ::_exit(5);
    char c;
    while (::read(control[0], &c, 1) != 0) {
    }
    owner.request_stop();
    storm.request_stop();
    a.join();
    b.join();
    ::_exit(0);
  }
  ::close(control[0]);
  ::close(ready[1]);
  p.control = control[1];
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  ::close(ready[0]);
}

std::size_t fd_count(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(path.c_str());
  REQUIRE(d != nullptr);
  std::size_t n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

std::uint64_t rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      std::uint64_t kib = 0;
      status >> kib;
      return kib;
    }
    std::string rest;
    std::getline(status, rest);
  }
  return 0;
}

/// The server's fd count once it has settled (no client of the storm left):
/// the same value twice 100 ms apart, within 5 s.
std::size_t settled_fd_count(pid_t pid) {
  std::size_t last = fd_count(pid);
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::size_t now = fd_count(pid);
    if (now == last) return now;
    last = now;
  }
  return last;
}

// ---- a short-lived client (no doctest assertions: it runs on worker threads) ---------------

struct storm_counts {
  std::atomic<std::uint64_t> clients{0}, good{0}, bad{0}, replies{0}, errors{0}, closed_by_server{0};
  std::atomic<std::uint64_t> truncations_refused{0}, truncations_allowed{0};
};

class storm_client {
public:
  storm_client(int fd, std::mt19937_64& rng, storm_counts& counts) : fd_(fd), rng_(rng), counts_(counts) {}

  /// A random session; false when the server closed the connection.
  void run() {
    const int requests = 1 + static_cast<int>(pick(12));
    if (pick(20) != 0) {
      if (!good(make_message(id(), command::version, version_payload(0, 0)))) return;
    }
    for (int i = 0; i < requests; ++i)
      if (!(pick(3) == 0 ? bad_request() : good_request())) return;
    switch (pick(10)) {
      case 0: {  // cut off inside a message
        auto m = make_message(id(), command::region_write, write_req(owned, usemem, pattern(256, 1)));
        send_raw(std::span<const std::byte>(m).first(16 + pick(200)));
        break;
      }
      case 1:
        ::shutdown(fd_.get(), SHUT_WR);
        drain();
        break;
      case 2:
        if (pick(10) == 0) drain(3000);  // silent until the server gives up on us
        break;
      default: break;  // just close
    }
  }

private:
  std::uint64_t pick(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }
  std::uint16_t id() { return next_id_++; }

  bool send_raw(std::span<const std::byte> bytes, int fd = -1) {
    const iovec part{const_cast<std::byte*>(bytes.data()), bytes.size()};
    return static_cast<bool>(send_message(fd_.get(), std::span<const iovec>(&part, 1),
                                          fd >= 0 ? std::span<const int>(&fd, 1) : std::span<const int>(),
                                          posix::monotonic_now_ms() + 2000));
  }

  /// Read until EOF or `ms` of silence.
  void drain(int ms = 500) {
    std::array<char, 4096> buf;
    while (true) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, ms) <= 0) return;
      if (::recv(fd_.get(), buf.data(), buf.size(), 0) <= 0) return;
    }
  }

  /// One reply: false on EOF or timeout. Any fd that comes with it is checked
  /// (a region memfd must refuse truncation) and closed.
  bool receive_reply() {
    std::vector<std::byte> head(header_size);
    if (!read_exact(head, true)) return false;
    const header h = load_header(head);
    if (h.size < header_size || h.size > (2u << 20)) return false;
    std::vector<std::byte> rest(h.size - header_size);
    if (!read_exact(rest, false)) return false;
    ++counts_.replies;
    if ((h.flags & message_flags::error) != 0) ++counts_.errors;
    return true;
  }

  bool read_exact(std::span<std::byte> out, bool fds_allowed) {
    std::size_t got = 0;
    while (got < out.size()) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return false;
      const ssize_t n = receive_some(fd_.get(), out.subspan(got), [&](unique_fd fd) {
        if (!fds_allowed) return;
        // A peer's attack on the memory it was handed: must fail on a sealed memfd.
        if (::ftruncate(fd.get(), 0) == 0)
          ++counts_.truncations_allowed;
        else
          ++counts_.truncations_refused;
      });
      if (n <= 0) {
        ++counts_.closed_by_server;
        return false;
      }
      got += static_cast<std::size_t>(n);
    }
    return true;
  }

  bool good(const std::vector<std::byte>& m, int fd = -1) {
    ++counts_.good;
    return send_raw(m, fd) && receive_reply();
  }
  bool bad(const std::vector<std::byte>& m, int fd = -1, bool expect_reply = true) {
    ++counts_.bad;
    if (!send_raw(m, fd)) return false;
    return !expect_reply || receive_reply();
  }

  bool good_request() {
    namespace fl = vfio::irq_set_flags;
    switch (pick(10)) {
      case 0: return good(make_message(id(), command::device_get_info, device_info_req()));
      case 1:
        return good(make_message(id(), command::device_get_region_info,
                                 region_info_req(pick(2) ? 32 : 256, static_cast<std::uint32_t>(pick(9)))));
      case 2:
        return good(
            make_message(id(), command::device_get_irq_info, irq_info_req(static_cast<std::uint32_t>(pick(5)))));
      case 3: {  // reads past the long-lived client's half (padding included), up to 1 MiB
        const auto offset = owned + pick((2u << 20) - owned);
        const auto count = static_cast<std::uint32_t>(std::min<std::uint64_t>(1 + pick(1u << 20), (2u << 20) - offset));
        return good(make_message(id(), command::region_read, read_req(offset, usemem, count)));
      }
      case 4: {  // writes only past the long-lived client's half
        const auto offset = owned + pick(memlength - owned);
        const auto count = 1 + pick(std::min<std::uint64_t>(64u << 10, (2u << 20) - offset));
        return good(make_message(
            id(), command::region_write,
            write_req(offset, usemem, pattern(static_cast<std::size_t>(count), static_cast<unsigned>(pick(256))))));
      }
      case 5: return good(make_message(id(), command::region_read, read_req(pick(64) * 4, 7, 4)));  // config
      case 6: {  // an eventfd, then triggers, sometimes with its counter full
        unique_fd ev(::eventfd(0, EFD_CLOEXEC));
        if (pick(2) == 0) {
          const std::uint64_t full = 0xFFFF'FFFF'FFFF'FFFEull;
          static_cast<void>(::write(ev.get(), &full, 8));
        }
        if (!good(make_message(id(), command::device_set_irqs,
                               set_irqs_req(fl::data_eventfd | fl::action_trigger, 3, 0, 1)),
                  ev.get()))
          return false;
        return good(
            make_message(id(), command::device_set_irqs, set_irqs_req(fl::data_none | fl::action_trigger, 3, 0, 1)));
      }
      case 7: {
        const std::uint64_t address = pick(1024) << 20;
        if (!good(make_message(id(), command::dma_map, dma_map_req(3, 0, address, 0x10000)))) return false;
        return good(make_message(id(), command::dma_unmap, dma_unmap_req(0, address, 0x10000)));
      }
      case 8: return good(make_message(id(), command::device_reset));
      default: {  // the real BAR's first MiB: a big write, then read back
        const auto count = static_cast<std::uint32_t>(1 + pick(64u << 10));
        if (!good(make_message(id(), command::region_write, write_req(0, real_bar, pattern(count, 7))))) return false;
        return good(make_message(id(), command::region_read, read_req(0, real_bar, count)));
      }
    }
  }

  bool bad_request() {
    namespace fl = vfio::irq_set_flags;
    switch (pick(12)) {
      case 0: return bad(make_message(id(), 0x99, read_req(0, usemem, 8)));                         // unknown command
      case 1: return bad(make_message(id(), 9, read_req(0, usemem, 8), 0x1));                       // reply-typed
      case 2: return bad(make_message(id(), 9, read_req(0, usemem, 8), 0x100));                     // unknown flag
      case 3: return bad(make_message(id(), command::region_read, read_req(2u << 20, usemem, 8)));  // at the BAR end
      case 4: return bad(make_message(id(), command::region_read, read_req(0, 0xdeadbeef, 8)));
      case 5:
        return bad(make_message(id(), command::region_write, write_req(0, usemem, pattern(8, 1), 16)));  // count lies
      case 6: {  // an fd where none belongs
        unique_fd stray(::dup(STDERR_FILENO));
        return bad(make_message(id(), command::device_get_region_info, region_info_req(64, usemem)), stray.get());
      }
      case 7: {  // the readiness registers: accepted and dropped
        const std::uint64_t reg = pick(2) ? shim::c2c_link_register : shim::hbm_training_register;
        return bad(make_message(id(), command::region_write, write_req(reg, 0, std::vector<std::byte>(4))));
      }
      case 8: {  // a pipe instead of an eventfd
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return false;
        unique_fd r(p[0]), w(p[1]);
        return bad(
            make_message(id(), command::device_set_irqs, set_irqs_req(fl::data_eventfd | fl::action_trigger, 3, 0, 1)),
            w.get());
      }
      case 9: return bad(make_message(id(), command::dma_map, dma_map_req(3, 0, 0x100800, 0x1000)));  // unaligned
      case 10: {  // NO_REPLY on a bad write: no answer comes
        return bad(make_message(id(), 10, write_req(2u << 20, usemem, pattern(8, 1)), message_flags::no_reply), -1,
                   false);
      }
      default: {  // an unframeable size: EINVAL, then the server closes
        auto m = make_message(id(), 9, read_req(0, usemem, 8));
        store_le<std::uint32_t>(m, 4, pick(2) ? 8u : 0x7FFFFFFFu);
        if (bad(m)) {
          std::array<char, 1> c;
          pollfd p{fd_.get(), POLLIN, 0};
          if (::poll(&p, 1, 2000) == 1 && ::recv(fd_.get(), c.data(), 1, 0) == 0) ++counts_.closed_by_server;
        }
        return false;
      }
    }
  }

  unique_fd fd_;
  std::mt19937_64& rng_;
  storm_counts& counts_;
  std::uint16_t next_id_ = 1;
};

// ---- the long-lived client ---------------------------------------------------------------

struct owner_counts {
  std::uint64_t writes = 0, mapped_writes = 0, reads = 0, mismatches = 0, failures = 0;
};

}  // namespace

TEST_CASE("soak: short-lived clients with good and bad requests, one long-lived client checking every byte") {
  server_process p;
  start_servers(p);
  const std::uint64_t seconds = NVGRACE_SOAK_SECONDS;
  const std::uint64_t client_budget = NVGRACE_SOAK_CLIENTS;

  auto owner = client::connect(p.owner_socket.path.c_str());
  REQUIRE(owner);
  std::vector<std::byte> shadow(owned);
  std::mt19937_64 rng(0x6e76677261636531ull);
  for (auto& b : shadow) b = static_cast<std::byte>(rng());
  REQUIRE(owner->pwrite(shadow, vfio::region_offset(usemem)).value() == owned);
  void* mapped = owner->mmap(nullptr, owned, PROT_READ | PROT_WRITE, vfio::region_offset(usemem)).value();
  auto* mapping = static_cast<std::byte*>(mapped);

  // Warm-up: touch what the servers will ever touch (all of usemem, the real BAR's first
  // MiB, 1 MiB transfers through each server), then a few storm clients.
  std::vector<std::byte> big(1u << 20);
  REQUIRE(owner->pread(big, vfio::region_offset(usemem) + owned).value() == big.size());
  REQUIRE(owner->pwrite(big, vfio::region_offset(real_bar)).value() == big.size());
  REQUIRE(owner->pread(big, vfio::region_offset(real_bar)).value() == big.size());
  storm_counts storm;
  const auto storm_once = [&](std::mt19937_64& r) {
    auto fd = connect_unix(p.storm_socket.path.c_str());
    if (!fd) return;
    ++storm.clients;
    storm_client(fd->release(), r, storm).run();
  };
  {
    auto c = client::connect(p.storm_socket.path.c_str());
    REQUIRE(c);
    REQUIRE(c->pread(big, vfio::region_offset(usemem) + owned).value() == big.size());
    REQUIRE(c->pwrite(big, vfio::region_offset(real_bar)).value() == big.size());
    REQUIRE(c->pread(big, vfio::region_offset(real_bar)).value() == big.size());
  }
  for (int i = 0; i < 40; ++i) storm_once(rng);
  const std::size_t fds_before = settled_fd_count(p.pid);
  const std::uint64_t rss_before = rss_kib(p.pid);

  // The storm, bounded by time and count.
  const std::uint64_t start = posix::monotonic_now_ms();
  const std::uint64_t deadline = start + seconds * 1000;
  std::atomic<std::uint64_t> started{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < storm_threads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 r(0x5eed0000u + static_cast<unsigned>(t));
      while (posix::monotonic_now_ms() < deadline && started.fetch_add(1) < client_budget) storm_once(r);
    });
  }
  // Meanwhile the long-lived client writes and checks its half, through both paths.
  owner_counts own;
  while (posix::monotonic_now_ms() < deadline) {
    const auto offset = static_cast<std::size_t>(rng() % owned);
    const auto length = static_cast<std::size_t>(1 + rng() % std::min<std::uint64_t>(8192, owned - offset));
    const auto op = rng() % 5;
    if (op < 2) {
      for (std::size_t i = 0; i < length; ++i) shadow[offset + i] = static_cast<std::byte>(rng());
      const auto done = owner->pwrite(std::span<const std::byte>(shadow).subspan(offset, length),
                                      vfio::region_offset(usemem) + offset);
      if (!done || *done != length) ++own.failures;
      ++own.writes;
    } else if (op == 2) {
      for (std::size_t i = 0; i < length; ++i) shadow[offset + i] = static_cast<std::byte>(rng());
      std::memcpy(mapping + offset, shadow.data() + offset, length);
      ++own.mapped_writes;
    } else {
      std::vector<std::byte> got(length);
      const auto done = owner->pread(got, vfio::region_offset(usemem) + offset);
      if (!done || *done != length)
        ++own.failures;
      else if (std::memcmp(got.data(), shadow.data() + offset, length) != 0)
        ++own.mismatches;
      ++own.reads;
    }
  }
  for (auto& t : threads) t.join();
  const std::uint64_t elapsed = posix::monotonic_now_ms() - start;

  // Nothing lost: the whole half, read through the server and through the mapping.
  std::vector<std::byte> final_read(owned);
  REQUIRE(owner->pread(final_read, vfio::region_offset(usemem)).value() == owned);
  CHECK(final_read == shadow);
  CHECK(std::memcmp(mapping, shadow.data(), owned) == 0);
  CHECK(own.mismatches == 0);
  CHECK(own.failures == 0);
  CHECK(owner->connected());

  // Flat: the same fds, about the same RSS, once the storm has gone.
  const std::size_t fds_after = settled_fd_count(p.pid);
  const std::uint64_t rss_after = rss_kib(p.pid);
  MESSAGE("soak: " << storm.clients.load() << " short-lived clients (" << storm.good.load() << " good + "
                   << storm.bad.load() << " bad requests, " << storm.replies.load() << " replies, "
                   << storm.errors.load() << " of them errors, " << storm.closed_by_server.load()
                   << " connections closed by the server) in " << elapsed << " ms; long-lived client: " << own.writes
                   << " REGION_WRITEs, " << own.mapped_writes << " mapped writes, " << own.reads
                   << " checked reads; region-fd truncations refused " << storm.truncations_refused.load()
                   << "; server fds " << fds_before << " -> " << fds_after << ", RSS " << rss_before << " -> "
                   << rss_after << " KiB");
  CHECK(storm.clients.load() >= 40);
  CHECK(storm.truncations_allowed.load() == 0);
  CHECK(fds_after == fds_before);
  if (!NVGRACE_SOAK_SANITIZED) CHECK(rss_after <= rss_before + 1024);

  ::munmap(mapped, owned);
  owner->close();
  ::close(p.control);
  int status = 0;
  REQUIRE(::waitpid(p.pid, &status, 0) == p.pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
