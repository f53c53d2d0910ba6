#pragma once
// Shared parts of nvgrace_bench: the memory fixture, the splits and sizes,
// and the benchmark bodies, templated over an access function so the same
// body measures the copy path directly, through the in-process device and
// through the accessor.
//
// Benchmark names (bench/compare's targets refer to them):
//   <path>/read/<caching>/<split>/<size>     path = copy | device | accessor
//   <path>/write/<caching>/<split>/<size>
//   baseline/<what>/...                       see baseline_benchmarks.cpp
// caching = cached | uncached; split = in_memory | straddle | padding.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/mem/memory.hpp>

#include <benchmark/benchmark.h>

#include <sys/mman.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <span>
#include <string>
#include <vector>

namespace nvgrace_bench {

using nvgrace::KiB;
using nvgrace::MiB;

/// Access sizes measured (256 B is the edge of the "small read" targets).
inline constexpr std::array<std::size_t, 10> sizes = {1, 2, 4, 8, 64, 256, 4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB};

/// The window: 48 MiB of memory in a 64 MiB BAR (bar = next_pow2(memory), as
/// for Grace), so a 16 MiB access fits entirely in memory or in padding.
inline constexpr std::uint64_t memory_length = 48 * MiB;
inline constexpr std::uint64_t window_length = 64 * MiB;

enum class split { in_memory, straddle, padding };
inline constexpr std::array<split, 3> splits = {split::in_memory, split::straddle, split::padding};

inline const char* name_of(split s) {
  switch (s) {
    case split::in_memory: return "in_memory";
    case split::straddle: return "straddle";
    case split::padding: return "padding";
  }
  return "?";
}
inline const char* name_of(nvgrace::mem::caching c) {
  return c == nvgrace::mem::caching::cached ? "cached" : "uncached";
}

/// A straddling access is half memory, half padding, so it needs ≥ 2 bytes.
inline bool applies(split s, std::size_t size) { return s != split::straddle || size >= 2; }

/// Window offset of an access of `size` bytes with split `s`, in a window
/// whose memory is `length` bytes. Memory-side offsets are 8-aligned when the
/// size allows, like a guest's accesses.
inline std::uint64_t offset_of(split s, std::size_t size, std::uint64_t length = memory_length) {
  switch (s) {
    case split::in_memory: return 0;
    case split::straddle: return length - size / 2;
    case split::padding: return length;
  }
  return 0;
}
/// Bytes of that access inside the memory.
inline std::size_t memory_part(split s, std::size_t size, std::uint64_t length = memory_length) {
  return static_cast<std::size_t>(nvgrace::mem::in_memory_count(length, offset_of(s, size, length), size));
}

/// The memory the copy path benchmarks (and the baselines) use, prefaulted so
/// no benchmark pays for page faults. Cached and uncached are the same bytes.
struct fixture {
  nvgrace::mem::anonymous_memory memory;

  static fixture& get() {
    static fixture f;
    return f;
  }
  [[nodiscard]] nvgrace::mem::memory_view view(nvgrace::mem::caching c) const {
    auto v = memory.view();
    v.caching = c;  // same bytes; only the access discipline differs
    return v;
  }

private:
  fixture() {
    auto m = nvgrace::mem::anonymous_memory::create(memory_length);
    if (!m) std::abort();
    memory = std::move(m).value();
    for (std::uint64_t i = 0; i < memory_length; ++i) memory.view().base[i] = static_cast<std::byte>(i * 131);
  }
};

/// Distance (modulo user_buffer_period) from the memory an access touches to
/// the caller's buffer, the same for every benchmark.
inline constexpr std::uint64_t user_buffer_period = 256 * MiB;
inline constexpr std::uint64_t user_buffer_distance = 16 * MiB;

/// The caller's buffer (up to 16 MiB) for an access whose memory side starts
/// at `memory`: a page-aligned address in one arena, 16 MiB below `memory`
/// modulo 256 MiB. Why: on the development machine's AMD Zen 4 the L1 data
/// cache's way predictor hashes virtual-address bits 12–27, and a copy whose
/// source and destination agree in those bits runs up to 3× slower (measured:
/// a 4 KiB memcpy took 145 ns instead of 62 ns at distances that are multiples
/// of 256 MiB). Where mmap puts each mapping is an accident, so without this
/// a path could look 2.5× slower than its baseline only because of where its
/// memory landed; with it, every benchmark copies between addresses in the same
/// relation as its baseline.
inline std::byte* user_buffer_for(const void* memory) {
  static std::byte* const arena = [] {
    void* p = ::mmap(nullptr, user_buffer_period + 16 * MiB, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) std::abort();
    return static_cast<std::byte*>(p);
  }();
  const auto source = reinterpret_cast<std::uintptr_t>(memory) & ~std::uintptr_t{4095};
  const auto target = source - user_buffer_distance;
  const auto offset = (target - reinterpret_cast<std::uintptr_t>(arena)) & (user_buffer_period - 1);
  return arena + offset;  // the arena is page-aligned, so the buffer is too
}

/// `value`, hidden from the optimiser (no constant folding, no hoisting out of
/// the loop). Google Benchmark 1.7's DoNotOptimize(T&) uses a "+m,r"
/// constraint that GCC 12 miscompiles (it may pick the memory alternative
/// without storing the value first), so the benchmarks use a register-only
/// barrier for values and DoNotOptimize(const T&) only for results.
template <class T>
[[gnu::always_inline]] inline T opaque(T value) noexcept {
  asm volatile("" : "+r"(value));
  return value;
}
template <class T>
[[gnu::always_inline]] inline void keep(const T& value) noexcept {
  benchmark::DoNotOptimize(value);
}

/// Shared counters: bytes/s and ns per operation.
inline void finish(benchmark::State& state, std::size_t size) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(size));
  state.counters["ns_per_op"] =
      benchmark::Counter(1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

/// The timed loops below keep their loop invariants in stack slots, and a
/// load whose address agrees in bits 0–11 with a store still in flight waits
/// for that store ("4 KiB aliasing"). So if the loop's frame landed at the
/// page offsets the previous iteration's copy just wrote, every iteration
/// would stall; whether it does would depend on where ASLR put the stack
/// (measured: a device write straddling 4 KiB took 11.6–13.6 ns by stack
/// placement alone, against 10 ns for its baseline). Every benchmark therefore
/// runs its loop with its frame just below the page offset of the memory its
/// access starts at (by `harness_gap`), the same relation for a path and its
/// baseline, as user_buffer_for does for the caller's buffer. The closure
/// that makes the access (which every iteration loads what it holds from)
/// goes in the same gap, `closure_gap` bytes above the frame, instead of
/// wherever its owner's frame lay (measured: the device's straddling write
/// at 1.28 × in one process of four, 1.08–1.10 × in the others). What
/// remains is what the path itself loads.
inline constexpr std::uintptr_t harness_gap = 256;
inline constexpr std::uintptr_t closure_gap = 64;

/// Call `loop(placed)`, where `placed` is a copy of `access`, with the stack
/// moved so that loop's callee's frame ends `harness_gap` bytes below
/// `memory`'s page offset and the copy starts `closure_gap` bytes above it.
template <class Access, class Loop>
[[gnu::noinline]] void with_stack_below(const void* memory, const Access& access, Loop loop) {
  static_assert(sizeof(Access) <= harness_gap - 2 * closure_gap && alignof(Access) <= closure_gap);
  const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  const auto target = (reinterpret_cast<std::uintptr_t>(memory) - harness_gap) & 4095;
  const auto move = ((here & 4095) - target) & 4095;
  // A page more than the move, so the copy fits above the frame whatever the move is.
  auto* pad = static_cast<unsigned char*>(__builtin_alloca(move + 4096 + 1));
  Access* placed = new (pad + closure_gap) Access(access);
  loop(*placed);
  placed->~Access();
}

/// The timed loop of every benchmark: `access(offset, span of size bytes at
/// buffer)` once per iteration. Byte is std::byte for a read, const
/// std::byte for a write.
template <class Access, class Byte>
[[gnu::noinline]] void timed_loop(benchmark::State& state, Access& access, std::uint64_t offset, std::size_t size,
                                  Byte* buffer) {
  for (auto _ : state) {
    const auto n = access(opaque(offset), std::span<Byte>(opaque(buffer), opaque(size)));
    keep(n);
    benchmark::ClobberMemory();
  }
}

/// Body of every read benchmark: `read(offset, out)` copies the window at
/// offset into out, a buffer placed by user_buffer_for(`memory`), where
/// `memory` is the address of the memory the access starts at. Offset, size
/// and the buffer pointer go through a register barrier each iteration so
/// nothing is specialised for a constant. The buffer is written once first so
/// its pages are faulted in before the timing; the loop runs with its stack
/// placed by with_stack_below.
template <class Read>
void read_body(benchmark::State& state, Read read, std::uint64_t offset, std::size_t size, const void* memory) {
  std::byte* out = user_buffer_for(memory);
  std::memset(out, 0x5A, size);
  with_stack_below(memory, read, [&](Read& placed) { timed_loop(state, placed, offset, size, out); });
  finish(state, size);
}

/// Body of every write benchmark: `write(offset, in)` copies in to the window.
template <class Write>
void write_body(benchmark::State& state, Write write, std::uint64_t offset, std::size_t size, const void* memory) {
  std::byte* in = user_buffer_for(memory);
  std::memset(in, 0x5A, size);
  const std::byte* data = in;
  with_stack_below(memory, write, [&](Write& placed) { timed_loop(state, placed, offset, size, data); });
  finish(state, size);
}

inline benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b) {
  return b->Unit(benchmark::kNanosecond);
}

/// Memory lengths of a family's windows: the cached one and the uncached one
/// (the device's usemem and resmem differ; the copy path uses one memory for both).
struct window_lengths {
  std::uint64_t cached = memory_length;
  std::uint64_t uncached = memory_length;
  [[nodiscard]] std::uint64_t of(nvgrace::mem::caching c) const {
    return c == nvgrace::mem::caching::cached ? cached : uncached;
  }
};

/// Register `<path>/read|write/<caching>/<split>/<size>` for every case.
/// `make_read(caching)` / `make_write(caching)` return the access functions
/// (offset, span) -> count for that caching mode; `memory_of(caching, split)`
/// returns the address of byte 0 of the memory that access's in-memory part is
/// copied from or to (it places the caller's buffer, see user_buffer_for). All
/// three are called only when the benchmark runs. A new path (the device, the
/// accessor) is one call of this function. Offsets are window offsets; each
/// window has `lengths.of(caching)` bytes of memory followed by at least 16 MiB
/// of padding.
template <class MakeRead, class MakeWrite, class MemoryOf>
void register_window_family(const std::string& path, MakeRead make_read, MakeWrite make_write, MemoryOf memory_of,
                            window_lengths lengths = {}) {
  for (const auto c : {nvgrace::mem::caching::cached, nvgrace::mem::caching::uncached})
    for (const split s : splits)
      for (const std::size_t size : sizes) {
        if (!applies(s, size)) continue;
        const std::string tail = std::string("/") + name_of(c) + "/" + name_of(s) + "/" + std::to_string(size);
        const std::uint64_t offset = offset_of(s, size, lengths.of(c));
        configure(benchmark::RegisterBenchmark((path + "/read" + tail).c_str(), [=](benchmark::State& st) {
          read_body(st, make_read(c), offset, size, memory_of(c, s) + offset);
        }));
        configure(benchmark::RegisterBenchmark((path + "/write" + tail).c_str(), [=](benchmark::State& st) {
          write_body(st, make_write(c), offset, size, memory_of(c, s) + offset);
        }));
      }
}

void register_copy_benchmarks();
void register_baseline_benchmarks();
void register_device_benchmarks();

}  // namespace nvgrace_bench
