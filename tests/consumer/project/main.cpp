// A downstream program: includes nvgrace, checks a few rules at compile time,
// prints one line. Built with only the standard library (no GSL) and strict
// warnings; see ../CMakeLists.txt.
#if __has_include(<nvgrace/nvgrace.hpp>)
#include <nvgrace/nvgrace.hpp>
#define NVGRACE_CONSUMER_HEADER "nvgrace/nvgrace.hpp"
#else
#include <nvgrace/core/checked.hpp>
#define NVGRACE_CONSUMER_HEADER "nvgrace/core/checked.hpp"
#endif

#include <cinttypes>
#include <cstdio>
#include <system_error>

#ifndef NVGRACE_CONSUMER_MODE
#define NVGRACE_CONSUMER_MODE "plain"
#endif

// Contracts must cost a consumer nothing: GSL is only for nvgrace's own build.
#if defined(NVGRACE_USE_GSL) || defined(GSL_CONTRACTS_H)
#error "the consumer build must not see GSL"
#endif

namespace {

// 96 GiB of Hopper memory minus the 1 GiB carve-out is reported as a 128 GiB BAR (spec §2.3).
constexpr std::uint64_t usemem_length = 96 * nvgrace::GiB - nvgrace::GiB;
static_assert(nvgrace::next_pow2(usemem_length).value() == 128 * nvgrace::GiB);
static_assert(nvgrace::checked_add(0xFFFF'FFFF'FFFF'FFFFu, 1).error() == std::errc::value_too_large);
static_assert(nvgrace::checked_sub(0, 1).error() == std::errc::value_too_large);
static_assert(nvgrace::range_within(0x1000, 0x1000, 0x2000) && !nvgrace::range_within(0x1001, 0x1000, 0x2000));

}  // namespace

int main() {
  const nvgrace::result<std::uint64_t> bar = nvgrace::next_pow2(usemem_length);
  if (!bar) return 1;
  std::printf("nvgrace consumer (%s, C++ %ld, via <%s>): 95 GiB of usemem -> BAR of 0x%" PRIx64 " bytes\n",
              NVGRACE_CONSUMER_MODE, static_cast<long>(__cplusplus), NVGRACE_CONSUMER_HEADER, *bar);
  return 0;
}
