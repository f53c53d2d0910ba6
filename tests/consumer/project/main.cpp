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

#include <nvgrace/core/size.hpp>
#include <nvgrace/version.hpp>

#if __has_include(<nvgrace/grace/layout.hpp>)
#include <nvgrace/grace/layout.hpp>
#define NVGRACE_CONSUMER_HAS_LAYOUT 1
#else
#define NVGRACE_CONSUMER_HAS_LAYOUT 0
#endif

#include <cinttypes>
#include <cstdio>
#include <string_view>

#ifndef NVGRACE_CONSUMER_MODE
#define NVGRACE_CONSUMER_MODE "plain"
#endif

// The version the package was found as is the version of the headers.
#ifdef NVGRACE_CONSUMER_EXPECTED_VERSION
static_assert(std::string_view(NVGRACE_VERSION_STRING) == NVGRACE_CONSUMER_EXPECTED_VERSION);
#endif
static_assert(nvgrace::version.string == NVGRACE_VERSION_STRING);

// Contracts must cost a consumer nothing: GSL is only for nvgrace's own build.
#if defined(NVGRACE_USE_GSL) || defined(GSL_CONTRACTS_H)
#error "the consumer build must not see GSL"
#endif

namespace {

// 96 GiB of Hopper memory minus the 1 GiB carve-out is reported as a 128 GiB BAR (spec §2.3).
constexpr std::uint64_t usemem_length = 96 * nvgrace::GiB - nvgrace::GiB;
static_assert(nvgrace::next_pow2(usemem_length).value() == 128 * nvgrace::GiB);
static_assert(nvgrace::checked_add(0xFFFF'FFFF'FFFF'FFFFu, 1).error() == nvgrace::errc::value_too_large);
static_assert(nvgrace::checked_sub(0, 1).error() == nvgrace::errc::value_too_large);
static_assert(nvgrace::range_within(0x1000, 0x1000, 0x2000) && !nvgrace::range_within(0x1001, 0x1000, 0x2000));
// The size syntax of the tools, in a consumer's own option parsing.
static_assert(nvgrace::parse_size("96G").value() == usemem_length + nvgrace::GiB);

#if NVGRACE_CONSUMER_HAS_LAYOUT
// The 96 GiB GH200 of spec §2.3: 95 GiB usable behind a 128 GiB BAR, then the 1 GiB carve-out.
constexpr std::uint64_t phys_base = 0x4000'0000'0000;
constexpr auto gh200 = nvgrace::grace::derive_layout(phys_base, 96 * nvgrace::GiB, nvgrace::grace::generation::hopper);
static_assert(gh200.has_value());
static_assert(gh200->usemem.real_length == 0x17'C000'0000 && gh200->usemem.reported_size == 0x20'0000'0000);
static_assert(gh200->resmem.phys_base == 0x4017'C000'0000 && gh200->resmem.reported_size == nvgrace::GiB);
static_assert(nvgrace::grace::derive_layout(phys_base, nvgrace::GiB / 2, nvgrace::grace::generation::hopper).error() ==
              nvgrace::errc::value_too_large);
#endif

}  // namespace

int main() {
  const nvgrace::result<std::uint64_t> bar = nvgrace::next_pow2(usemem_length);
  if (!bar) return 1;
  std::printf("nvgrace %s consumer (%s, C++ %ld, via <%s>): 95 GiB of usemem -> BAR of 0x%" PRIx64 " bytes\n",
              NVGRACE_VERSION_STRING, NVGRACE_CONSUMER_MODE, static_cast<long>(__cplusplus), NVGRACE_CONSUMER_HEADER,
              *bar);
  return 0;
}
