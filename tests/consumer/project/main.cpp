// A downstream program: includes both umbrellas and the version, checks a few
// rules at compile time, runs the in-process device through the accessor, and
// prints one line. Built with only the standard library (no GSL) and strict
// warnings; see ../CMakeLists.txt. Every include is unconditional: an install
// that misses a header fails to build this file (run_consumer.cmake also
// checks that every header of the source tree was installed).
#include <nvgrace/model.hpp>
#include <nvgrace/nvgrace.hpp>
#include <nvgrace/version.hpp>

#include <array>
#include <cinttypes>
#include <cstddef>
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

// From nvgrace/model.hpp: checked arithmetic and the layout rules.
// 96 GiB of Hopper memory minus the 1 GiB carve-out is reported as a 128 GiB BAR (spec §2.3).
constexpr std::uint64_t usemem_length = 96 * nvgrace::GiB - nvgrace::GiB;
static_assert(nvgrace::next_pow2(usemem_length).value() == 128 * nvgrace::GiB);
static_assert(nvgrace::checked_add(0xFFFF'FFFF'FFFF'FFFFu, 1).error() == nvgrace::errc::value_too_large);
static_assert(nvgrace::checked_sub(0, 1).error() == nvgrace::errc::value_too_large);
static_assert(nvgrace::range_within(0x1000, 0x1000, 0x2000) && !nvgrace::range_within(0x1001, 0x1000, 0x2000));

// The 96 GiB GH200 of spec §2.3: 95 GiB usable behind a 128 GiB BAR, then the 1 GiB carve-out.
constexpr std::uint64_t phys_base = 0x4000'0000'0000;
constexpr auto gh200 = nvgrace::grace::derive_layout(phys_base, 96 * nvgrace::GiB, nvgrace::grace::generation::hopper);
static_assert(gh200.has_value());
static_assert(gh200->usemem.real_length == 0x17'C000'0000 && gh200->usemem.reported_size == 0x20'0000'0000);
static_assert(gh200->resmem.phys_base == 0x4017'C000'0000 && gh200->resmem.reported_size == nvgrace::GiB);
static_assert(nvgrace::grace::derive_layout(phys_base, nvgrace::GiB / 2, nvgrace::grace::generation::hopper).error() ==
              nvgrace::errc::value_too_large);

// From nvgrace/nvgrace.hpp beyond the model: the size syntax of the tools, in a
// consumer's own option parsing.
static_assert(nvgrace::parse_size("96G").value() == usemem_length + nvgrace::GiB);

// From nvgrace/nvgrace.hpp beyond the model: the in-process device and the accessor.
// 1.5 GiB + 4 KiB of Hopper memory: usemem is 512 MiB behind a 1 GiB BAR4. Reads 16
// bytes across usemem's real end: 8 bytes of memory, then 8 of 0xFF padding.
int read_across_usemem_end() {
  auto dev = nvgrace::shim::memfd_device::create(nvgrace::shim::hopper(3 * nvgrace::GiB / 2 + 4 * nvgrace::KiB));
  if (!dev) return std::printf("shim device: %s\n", dev.message().c_str()), 1;
  auto vmm = nvgrace::access::open(*dev);
  if (!vmm) return std::printf("accessor: %s\n", vmm.message().c_str()), 1;
  const std::uint64_t real = dev->layout()->usemem.real_length;
  std::array<std::byte, 16> bytes{};
  const auto n = vmm->read(nvgrace::grace::usemem_index, real - 8, bytes);
  if (!n || *n != bytes.size()) return std::printf("read across usemem's end failed\n"), 1;
  if (bytes[7] != std::byte{0} || bytes[8] != std::byte{0xFF} || bytes[15] != std::byte{0xFF}) {
    return std::printf("usemem's padding does not read 0xFF\n"), 1;
  }
  return 0;
}

}  // namespace

int main() {
  const nvgrace::result<std::uint64_t> bar = nvgrace::next_pow2(usemem_length);
  if (!bar) return 1;
  if (read_across_usemem_end() != 0) return 1;
  std::printf("nvgrace %s consumer (%s, C++ %ld): 95 GiB of usemem -> BAR of 0x%" PRIx64
              " bytes; padding past the real end reads 0xff\n",
              NVGRACE_VERSION_STRING, NVGRACE_CONSUMER_MODE, static_cast<long>(__cplusplus), *bar);
  return 0;
}
