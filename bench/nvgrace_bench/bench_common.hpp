#pragma once
// Shared parts of nvgrace_bench: the memory fixture, the splits and sizes,
// and the benchmark bodies, templated over an access function so the same
// body measures the copy path directly, through the in-process device and
// through the accessor.
//
// Benchmark names (bench/compare's targets refer to them):
//   <path>/read/<caching>/<split>/<size>     path = copy | device | accessor | ...
//   <path>/write/<caching>/<split>/<size>
//   baseline/<what>/...                       see baseline_benchmarks.cpp
// caching = cached | uncached; split = in_memory | straddle | padding.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/mem/memory.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
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
inline const char* name_of(nvgrace::mem::caching c) { return c == nvgrace::mem::caching::cached ? "cached" : "uncached"; }

/// A straddling access is half memory, half padding, so it needs ≥ 2 bytes.
inline bool applies(split s, std::size_t size) { return s != split::straddle || size >= 2; }

/// Window offset of an access of `size` bytes with split `s`. Memory-side
/// offsets are 8-aligned when the size allows, like a guest's accesses.
inline std::uint64_t offset_of(split s, std::size_t size) {
  switch (s) {
    case split::in_memory: return 0;
    case split::straddle: return memory_length - size / 2;
    case split::padding: return memory_length;
  }
  return 0;
}
/// Bytes of that access inside the memory.
inline std::size_t memory_part(split s, std::size_t size) {
  return static_cast<std::size_t>(nvgrace::mem::in_memory_count(memory_length, offset_of(s, size), size));
}

/// Memory and user buffer shared by every benchmark, prefaulted so no
/// benchmark pays for page faults.
struct fixture {
  nvgrace::mem::anonymous_memory memory;
  nvgrace::mem::anonymous_memory user;  // the caller's buffer, 16 MiB

  static fixture& get() {
    static fixture f;
    return f;
  }
  [[nodiscard]] nvgrace::mem::memory_view view(nvgrace::mem::caching c) const {
    auto v = memory.view();
    v.caching = c;  // same bytes; only the access discipline differs
    return v;
  }
  [[nodiscard]] std::span<std::byte> buffer(std::size_t size) const { return {user.view().base, size}; }

private:
  fixture() {
    auto m = nvgrace::mem::anonymous_memory::create(memory_length);
    auto u = nvgrace::mem::anonymous_memory::create(16 * MiB);
    if (!m || !u) std::abort();
    memory = std::move(m).value();
    user = std::move(u).value();
    for (std::uint64_t i = 0; i < memory_length; ++i) memory.view().base[i] = static_cast<std::byte>(i * 131);
    std::memset(user.view().base, 0x5A, 16 * MiB);
  }
};

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

/// Body of every read benchmark: `read(offset, out)` copies the window at
/// offset into out. Offset and size go through DoNotOptimize each iteration so
/// nothing is specialised for a constant.
/// The out pointer is opaque too, so the compiler cannot assume anything about it.
template <class Read>
void read_body(benchmark::State& state, Read read, std::uint64_t offset, std::size_t size) {
  std::byte* out = fixture::get().buffer(size).data();
  for (auto _ : state) {
    const auto n = read(opaque(offset), std::span<std::byte>(opaque(out), opaque(size)));
    keep(n);
    benchmark::ClobberMemory();
  }
  finish(state, size);
}

/// Body of every write benchmark: `write(offset, in)` copies in to the window.
template <class Write>
void write_body(benchmark::State& state, Write write, std::uint64_t offset, std::size_t size) {
  const std::byte* in = fixture::get().buffer(size).data();
  for (auto _ : state) {
    const auto n = write(opaque(offset), std::span<const std::byte>(opaque(in), opaque(size)));
    keep(n);
    benchmark::ClobberMemory();
  }
  finish(state, size);
}

inline benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b) {
  return b->Unit(benchmark::kNanosecond);
}

/// Register `<path>/read|write/<caching>/<split>/<size>` for every case.
/// `make_read(caching)` / `make_write(caching)` return the access functions
/// (offset, span) -> count for that caching mode; a new path (the device, the
/// accessor) is one call of this function.
template <class MakeRead, class MakeWrite>
void register_window_family(const std::string& path, MakeRead make_read, MakeWrite make_write) {
  for (const auto c : {nvgrace::mem::caching::cached, nvgrace::mem::caching::uncached})
    for (const split s : splits)
      for (const std::size_t size : sizes) {
        if (!applies(s, size)) continue;
        const std::string tail = std::string("/") + name_of(c) + "/" + name_of(s) + "/" + std::to_string(size);
        const std::uint64_t offset = offset_of(s, size);
        configure(benchmark::RegisterBenchmark((path + "/read" + tail).c_str(),
                                               [=](benchmark::State& st) { read_body(st, make_read(c), offset, size); }));
        configure(benchmark::RegisterBenchmark((path + "/write" + tail).c_str(),
                                               [=](benchmark::State& st) { write_body(st, make_write(c), offset, size); }));
      }
}

void register_copy_benchmarks();
void register_baseline_benchmarks();

}  // namespace nvgrace_bench
