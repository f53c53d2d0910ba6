// §3: emulated BAR read values, the §3.1 intersection examples, the window
// rules of §3.2–3.3 and the BAR-sizing probe for every power of two from
// 16 bytes to 2^63, as static_asserts.
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/bar_emulation.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/intersect.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace {

using namespace nvgrace;
using grace::bar_registers;
using grace::emulated_bar_read_value;
using grace::generation;
using vfio::intersect_range;
using vfio::intersection;

constexpr std::uint64_t base = 0x4000'0000'0000;
constexpr std::uint64_t ones = ~std::uint64_t{0};
constexpr auto hopper = *grace::derive_layout(base, 96 * GiB, generation::hopper);
constexpr auto blackwell = *grace::derive_layout(base, 96 * GiB, generation::blackwell);

// §3 read values.
static_assert(emulated_bar_read_value(0, 128 * GiB) == 0x0000'0000'0000'000C);
static_assert(emulated_bar_read_value(ones, 128 * GiB) == 0xFFFF'FFE0'0000'000C);
static_assert(emulated_bar_read_value(ones, GiB) == 0xFFFF'FFFF'C000'000C);
static_assert(emulated_bar_read_value(0x1234'5678'9ABC'DEF0, GiB) == 0x1234'5678'8000'000C);
// Reset value 0 reads as the flags only, for both regions of a Hopper device.
static_assert(bar_registers{}.read_value(hopper, 2) == 0xC && bar_registers{}.read_value(hopper, 4) == 0xC);

// §3.1 examples.
static_assert(intersect_range(0x14, 16, 0x18, 8) == intersection{4, 8, 0});
static_assert(intersect_range(0x1C, 8, 0x18, 8) == intersection{0, 4, 4});
static_assert(intersect_range(0x19, 2, 0x18, 8) == intersection{0, 2, 1});
static_assert(!intersect_range(0x10, 4, 0x18, 8));
// Zero-length: only case B, with count 0.
static_assert(intersect_range(0x19, 0, 0x18, 8) == intersection{0, 0, 1});
static_assert(!intersect_range(0x18, 0, 0x18, 8));

/// Bytes 0..n-1 valued first, first+1, ...
template <std::size_t N>
constexpr std::array<std::byte, N> counting(unsigned first) {
  std::array<std::byte, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = static_cast<std::byte>(first + i);
  return out;
}

// §3.3: an 8-byte write at 0x14 stores its bytes 4..7 into resmem bar_val[0..3] and returns 4.
constexpr bool write_at_0x14() {
  bar_registers regs;
  const auto data = counting<8>(0xA0);
  const auto written = regs.intercept_config_write(hopper, 0x14, data);
  return written == std::optional<std::uint64_t>{4} && regs.raw(2) == 0xA7A6'A5A4 && regs.raw(4) == 0;
}
static_assert(write_at_0x14());
// A 0x1000-byte write at 0x10 returns 8 (the resmem window only).
constexpr bool big_write_at_0x10() {
  bar_registers regs;
  const auto data = counting<0x1000>(0);
  return regs.intercept_config_write(hopper, 0x10, data) == std::optional<std::uint64_t>{8} &&
         regs.raw(2) == 0x0F0E'0D0C'0B0A'0908 && regs.raw(4) == 0;
}
static_assert(big_write_at_0x10());
// §10 E2: on Blackwell an access touching 0x18–0x1F is not emulated at all.
constexpr bool blackwell_0x1c_write_is_core() {
  bar_registers regs;
  const auto data = counting<8>(1);
  return !regs.intercept_config_write(blackwell, 0x1C, data) && regs == bar_registers{};
}
static_assert(blackwell_0x1c_write_is_core());
// §10 E4: a read spanning both windows patches only the resmem bytes.
constexpr bool read_spanning_both_windows() {
  bar_registers regs;
  std::array<std::byte, 16> buffer{};
  for (auto& b : buffer) b = std::byte{0x55};
  regs.patch_config_read(hopper, 0x18, buffer);
  // resmem reads 0x...000C; the usemem bytes keep the core's 0x55.
  return load_le<std::uint64_t>(buffer, 0) == 0xC && load_le<std::uint64_t>(buffer, 8) == 0x5555'5555'5555'5555;
}
static_assert(read_spanning_both_windows());

// The BAR-sizing probe: a Blackwell device with `size` bytes has a usemem BAR
// of exactly `size`, for every power of two from 16 to 2^63.
constexpr bool probe_sizes(std::uint32_t low_pattern, std::uint32_t high_pattern) {
  for (unsigned bit = 4; bit < 64; ++bit) {
    const std::uint64_t size = std::uint64_t{1} << bit;
    const auto l = grace::derive_layout(base, size, generation::blackwell);
    if (!l || l->usemem.reported_size != size) return false;
    bar_registers regs;
    const auto probe = grace::probe_bar_size(*l, regs, 4, low_pattern, high_pattern);
    const std::uint64_t expected_after =
        ((std::uint64_t{high_pattern} << 32 | low_pattern) & ~(size - 1)) | grace::emulated_bar_flags;
    const bool high_pattern_hides_size = high_pattern == 0xFFFF'FFF0 && bit >= 32 && bit < 36;
    const std::uint64_t expected_size = high_pattern_hides_size ? std::uint64_t{1} << 36 : size;
    if (probe.before != 0xC || probe.after != expected_after || probe.size != expected_size) return false;
  }
  return true;
}
static_assert(probe_sizes(0xFFFF'FFFF, 0xFFFF'FFFF));
static_assert(probe_sizes(0xFFFF'FFF0, 0xFFFF'FFFF));
// 0xFFFFFFF0 in the high dword clears address bits 32–35: sizes 2^32..2^35 read as 2^36.
static_assert(probe_sizes(0xFFFF'FFF0, 0xFFFF'FFF0));
// The same probe through Hopper's resmem (1 GiB) and usemem (128 GiB) windows.
constexpr bool hopper_probe() {
  bar_registers regs;
  const auto res = grace::probe_bar_size(hopper, regs, 2);
  const auto use = grace::probe_bar_size(hopper, regs, 4);
  return res == grace::bar_probe{0xC, 0xFFFF'FFFF'C000'000C, GiB} &&
         use == grace::bar_probe{0xC, 0xFFFF'FFE0'0000'000C, 128 * GiB} && regs.raw(2) == ones && regs.raw(4) == ones;
}
static_assert(hopper_probe());
// Past 2^63 there is no BAR: the layout itself is EOVERFLOW.
static_assert(grace::derive_layout(base, (std::uint64_t{1} << 63) + 1, generation::blackwell).error() ==
              nvgrace::errc::value_too_large);

}  // namespace
