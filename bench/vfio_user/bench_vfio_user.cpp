// vfio-user round trips against a raw socketpair echo of the same message shapes.
//
//   raw/*        : client send(request) → echo thread recv + send(reply of the
//                  same size the server would send) → client recv. One system
//                  call per direction per side: the floor for any protocol.
//   vfio_user/*  : vfio_user::client::pread/pwrite → vfio_user::server serving
//                  the shim device (Grace Blackwell, memfd memory) → reply.
//
// Shapes: REGION_READ of 8 B (request 32 B, reply 40 B) and 4 KiB (32 B,
// 4128 B), REGION_WRITE of 8 B (40 B, 32 B). Client and server threads are
// pinned to one CPU (cross-CPU wake-ups would dominate); the benchmarks are
// registered interleaved (raw, vfio-user, raw, ...) and measured in real time.
// Target: vfio-user median ≤ 1.15 × raw (bench/vfio_user/compare checks it).
//
// Environment: NVGRACE_BENCH_CPU = the CPU to pin to (default: the one the
// process starts on).

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/mem/memfd_memory.hpp>

#include <benchmark/benchmark.h>

#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace {

using namespace nvgrace;
using device = shim::device<mem::memfd_memory>;

constexpr std::uint32_t bar = 4;
const std::uint64_t bar_pos = vfio::region_offset(bar);

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}

/// The raw echo: reads one request per recv, answers with one send of the
/// size a vfio-user server would reply with (READ: 32 + count, WRITE: 32).
void echo(int fd) {
  std::vector<std::byte> in(64 * 1024), out(64 * 1024 + 64);
  while (true) {
    const ssize_t n = ::recv(fd, in.data(), in.size(), 0);
    if (n <= 0) return;
    const auto h = vfio_user::load_header(in);
    std::size_t reply = 32;
    if (h.command == static_cast<std::uint16_t>(vfio_user::command::region_read))
      reply += vfio_user::load_region_access(std::span<const std::byte>(in).subspan(16)).count;
    std::memcpy(out.data(), in.data(), 32);
    if (::send(fd, out.data(), reply, MSG_NOSIGNAL) != static_cast<ssize_t>(reply)) return;
  }
}

struct environment {
  int cpu = 0;
  std::optional<device> dev;
  std::unique_ptr<vfio_user::server<device>> server;
  std::thread server_thread, echo_thread;
  vfio_user::client client;
  int raw = -1;
  std::uint16_t raw_id = 0;
  std::vector<std::byte> raw_buffer = std::vector<std::byte>(64 * 1024 + 64);

  environment() {
    const char* env = std::getenv("NVGRACE_BENCH_CPU");
    cpu = env != nullptr ? std::atoi(env) : ::sched_getcpu();
    pin_to(cpu);  // the threads started below inherit it
    dev.emplace(device::create(shim::blackwell(64 * MiB)).value());
    server = std::make_unique<vfio_user::server<device>>(*dev);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
    server_thread = std::thread([this, fd = sv[0]] {
      static_cast<void>(server->serve(fd));
      ::close(fd);
    });
    client = vfio_user::client::adopt(sv[1]).value();
    int ev[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ev) != 0) std::abort();
    echo_thread = std::thread([fd = ev[0]] {
      echo(fd);
      ::close(fd);
    });
    raw = ev[1];
  }
  ~environment() {
    client.close();
    ::close(raw);
    server_thread.join();
    echo_thread.join();
  }

  /// One raw round trip: a request of `request` bytes (a REGION_READ/WRITE header), the reply received in one call.
  void raw_round_trip(vfio_user::command cmd, std::uint32_t count, std::size_t request, std::size_t reply) {
    auto buf = std::span<std::byte>(raw_buffer);
    vfio_user::store_header(
        buf, vfio_user::header{raw_id++, static_cast<std::uint16_t>(cmd), static_cast<std::uint32_t>(request), 0, 0});
    vfio_user::store_region_access(buf.subspan(16), vfio_user::region_access{0, bar, count});
    if (::send(raw, buf.data(), request, MSG_NOSIGNAL) != static_cast<ssize_t>(request)) std::abort();
    std::size_t got = 0;
    while (got < reply) {  // one recv in practice; the loop only guards a split
      const ssize_t n = ::recv(raw, buf.data() + got, buf.size() - got, 0);
      if (n <= 0) std::abort();
      got += static_cast<std::size_t>(n);
    }
  }
};

environment& env() {
  static environment e;
  return e;
}

void raw_read(benchmark::State& state, std::uint32_t count) {
  auto& e = env();
  for (auto _ : state) e.raw_round_trip(vfio_user::command::region_read, count, 32, 32 + count);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * count);
}

void vfio_user_read(benchmark::State& state, std::uint32_t count) {
  auto& e = env();
  std::vector<std::byte> buffer(count);
  for (auto _ : state) {
    auto n = e.client.pread(buffer, bar_pos);
    if (!n || *n != count) {
      state.SkipWithError("pread failed");
      break;
    }
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * count);
}

void BM_raw_read8(benchmark::State& state) { raw_read(state, 8); }
void BM_vfio_user_read8(benchmark::State& state) { vfio_user_read(state, 8); }
void BM_raw_read4k(benchmark::State& state) { raw_read(state, 4096); }
void BM_vfio_user_read4k(benchmark::State& state) { vfio_user_read(state, 4096); }

void BM_raw_write8(benchmark::State& state) {
  auto& e = env();
  for (auto _ : state) e.raw_round_trip(vfio_user::command::region_write, 8, 40, 32);
}
void BM_vfio_user_write8(benchmark::State& state) {
  auto& e = env();
  std::array<std::byte, 8> data{};
  for (auto _ : state) {
    data[0] = static_cast<std::byte>(state.iterations());
    auto n = e.client.pwrite(data, bar_pos + 64);
    if (!n || *n != 8) {
      state.SkipWithError("pwrite failed");
      break;
    }
  }
}

// Interleaved registration: each vfio-user benchmark runs right after its raw twin.
BENCHMARK(BM_raw_read8)->UseRealTime();
BENCHMARK(BM_vfio_user_read8)->UseRealTime();
BENCHMARK(BM_raw_read4k)->UseRealTime();
BENCHMARK(BM_vfio_user_read4k)->UseRealTime();
BENCHMARK(BM_raw_write8)->UseRealTime();
BENCHMARK(BM_vfio_user_write8)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
