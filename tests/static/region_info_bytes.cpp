// §4.2–4.3: the exact GET_REGION_INFO reply bytes for BAR2 (resmem) and BAR4
// (usemem) of a 96 GiB Hopper device, for argsz 31, 32, 63, 64 and 100.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/region_info.hpp>

#include <cstddef>
#include <cstdint>

namespace {

using namespace nvgrace;

constexpr auto hopper = *grace::derive_layout(0x4000'0000'0000, 96 * GiB, grace::generation::hopper);
constexpr auto blackwell = *grace::derive_layout(0x4000'0000'0000, 96 * GiB, grace::generation::blackwell);

template <std::size_t N>
constexpr bool reply_is(const grace::layout& l, std::uint32_t index, std::uint32_t argsz,
                        const std::uint8_t (&expected)[N]) {
  const auto reply = grace::region_info_reply(l, index, argsz);
  if (!reply || reply->size != N) return false;
  for (std::size_t i = 0; i < N; ++i)
    if (reply->bytes[i] != std::byte{expected[i]}) return false;
  for (std::size_t i = N; i < reply->bytes.size(); ++i)
    if (reply->bytes[i] != std::byte{0}) return false;
  return true;
}

// clang-format off
// BAR4, argsz 32..63: the struct only, argsz raised to 64, CAPS set, cap_offset 0.
constexpr std::uint8_t bar4_short[] = {
  0x40, 0, 0, 0,   0x0F, 0, 0, 0,   0x04, 0, 0, 0,   0x00, 0, 0, 0,   // argsz 64, flags 0xF, index 4, cap_offset 0
  0, 0, 0, 0, 0x20, 0, 0, 0,                                          // size 128 GiB
  0, 0, 0, 0, 0, 0x04, 0, 0,                                          // offset 4 << 40
};
// BAR4, argsz 64: struct + sparse-mmap cap {0, 95 GiB}.
constexpr std::uint8_t bar4_full_64[] = {
  0x40, 0, 0, 0,   0x0F, 0, 0, 0,   0x04, 0, 0, 0,   0x20, 0, 0, 0,   // argsz 64, flags 0xF, index 4, cap_offset 32
  0, 0, 0, 0, 0x20, 0, 0, 0,
  0, 0, 0, 0, 0, 0x04, 0, 0,
  0x01, 0, 0x01, 0,   0, 0, 0, 0,                                     // id 1, version 1, next 0
  0x01, 0, 0, 0,   0, 0, 0, 0,                                        // nr_areas 1, reserved 0
  0, 0, 0, 0, 0, 0, 0, 0,                                             // area offset 0
  0, 0, 0, 0xC0, 0x17, 0, 0, 0,                                       // area size 95 GiB (real length)
};
// BAR4, argsz 100: the same 64 bytes, argsz left as the caller wrote it.
constexpr std::uint8_t bar4_full_100[] = {
  0x64, 0, 0, 0,   0x0F, 0, 0, 0,   0x04, 0, 0, 0,   0x20, 0, 0, 0,
  0, 0, 0, 0, 0x20, 0, 0, 0,
  0, 0, 0, 0, 0, 0x04, 0, 0,
  0x01, 0, 0x01, 0,   0, 0, 0, 0,
  0x01, 0, 0, 0,   0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0xC0, 0x17, 0, 0, 0,
};
// BAR2 (1 GiB carve-out): size 1 GiB, offset 2 << 40, area {0, 1 GiB}.
constexpr std::uint8_t bar2_short[] = {
  0x40, 0, 0, 0,   0x0F, 0, 0, 0,   0x02, 0, 0, 0,   0x00, 0, 0, 0,
  0, 0, 0, 0x40, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0x02, 0, 0,
};
constexpr std::uint8_t bar2_full_64[] = {
  0x40, 0, 0, 0,   0x0F, 0, 0, 0,   0x02, 0, 0, 0,   0x20, 0, 0, 0,
  0, 0, 0, 0x40, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0x02, 0, 0,
  0x01, 0, 0x01, 0,   0, 0, 0, 0,
  0x01, 0, 0, 0,   0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0x40, 0, 0, 0, 0,
};
constexpr std::uint8_t bar2_full_100[] = {
  0x64, 0, 0, 0,   0x0F, 0, 0, 0,   0x02, 0, 0, 0,   0x20, 0, 0, 0,
  0, 0, 0, 0x40, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0x02, 0, 0,
  0x01, 0, 0x01, 0,   0, 0, 0, 0,
  0x01, 0, 0, 0,   0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0x40, 0, 0, 0, 0,
};
// clang-format on

static_assert(grace::region_info_reply(hopper, 4, 31).error() == nvgrace::errc::invalid_argument);
static_assert(grace::region_info_reply(hopper, 2, 0).error() == nvgrace::errc::invalid_argument);
static_assert(reply_is(hopper, 4, 32, bar4_short));
static_assert(reply_is(hopper, 4, 63, bar4_short));
static_assert(reply_is(hopper, 4, 64, bar4_full_64));
static_assert(reply_is(hopper, 4, 100, bar4_full_100));
static_assert(reply_is(hopper, 2, 32, bar2_short));
static_assert(reply_is(hopper, 2, 63, bar2_short));
static_assert(reply_is(hopper, 2, 64, bar2_full_64));
static_assert(reply_is(hopper, 2, 100, bar2_full_100));

// Regions the driver does not emulate are the core's (ENOENT from the model):
// Blackwell's BAR2, BAR0, config. argsz is still checked first.
static_assert(grace::region_info_reply(blackwell, 2, 64).error() == nvgrace::errc::no_such_file_or_directory);
static_assert(grace::region_info_reply(hopper, 0, 64).error() == nvgrace::errc::no_such_file_or_directory);
static_assert(grace::region_info_reply(hopper, 7, 64).error() == nvgrace::errc::no_such_file_or_directory);
static_assert(grace::region_info_reply(blackwell, 2, 8).error() == nvgrace::errc::invalid_argument);
static_assert(grace::emulated_region_info_size == 64 && grace::emulated_region_flags == 0x7);

}  // namespace
