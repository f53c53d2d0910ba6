// §3 emulated BAR registers and the config-window logic (§3.1–3.3, §10 E2–E5),
// including an exhaustive comparison with a byte-by-byte reference.
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/bar_emulation.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/intersect.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace {

using namespace nvgrace;
using grace::bar_registers;
using grace::generation;

constexpr std::uint64_t base = 0x4000'0000'0000;
const auto hopper = grace::derive_layout(base, 96 * GiB, generation::hopper).value();
const auto blackwell = grace::derive_layout(base, 96 * GiB, generation::blackwell).value();

/// What the core would read at config address `a` (any recognisable pattern).
std::byte core_byte(std::uint64_t a) { return static_cast<std::byte>(0xC0 ^ (a * 7)); }

std::vector<std::byte> pattern(std::size_t n, unsigned first) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>(first + 13 * i);
  return out;
}

/// Registers holding distinct raw patterns (written through the windows).
bar_registers seeded(const grace::layout& l) {
  bar_registers regs;
  const auto res = pattern(8, 0x31);
  const auto use = pattern(8, 0x71);
  static_cast<void>(regs.intercept_config_write(l, 0x18, res));
  static_cast<void>(regs.intercept_config_write(l, 0x20, use));
  return regs;
}

// ---- the reference, written from §3.2/3.3 byte by byte -------------------------

struct window {
  std::uint64_t start;
  std::uint32_t index;
};
constexpr window resmem_window{0x18, 2};
constexpr window usemem_window{0x20, 4};

/// Does the access [pos, pos+count) touch [w, w+8)? For count 0, §3.1 case B
/// alone applies: the position must lie strictly inside the register.
bool touches(std::uint64_t pos, std::uint64_t count, std::uint64_t w) {
  if (count == 0) return w < pos && pos < w + 8;
  for (std::uint64_t a = pos; a < pos + count; ++a)
    if (a >= w && a < w + 8) return true;
  return false;
}

/// The window the driver picks: resmem first; the usemem one only if the
/// resmem one is not touched; a touched window whose region is not emulated
/// means no window at all.
std::optional<window> chosen_window(const grace::layout& l, std::uint64_t pos, std::uint64_t count) {
  if (touches(pos, count, resmem_window.start)) {
    if (!l.is_emulated(2)) return std::nullopt;
    return resmem_window;
  }
  if (touches(pos, count, usemem_window.start)) return usemem_window;
  return std::nullopt;
}

std::uint64_t read_value(const grace::layout& l, std::uint64_t raw, std::uint32_t index) {
  const std::uint64_t size = l.region(index)->reported_size;
  return (raw & ~(size - 1)) | 0xC;
}

TEST_CASE("§3 read value: masked to the BAR size with flags 0xC; writes stored raw") {
  bar_registers regs;
  CHECK(regs.read_value(hopper, 4) == 0xC);
  CHECK(regs.read_value(hopper, 2) == 0xC);
  const std::array<std::byte, 8> ones{std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                                      std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}};
  CHECK(regs.intercept_config_write(hopper, 0x20, ones) == std::optional<std::uint64_t>{8});
  CHECK(regs.raw(4) == ~std::uint64_t{0});                     // raw, no masking on write
  CHECK(regs.read_value(hopper, 4) == 0xFFFF'FFE0'0000'000C);  // 128 GiB
  CHECK(regs.intercept_config_write(hopper, 0x18, ones) == std::optional<std::uint64_t>{8});
  CHECK(regs.read_value(hopper, 2) == 0xFFFF'FFFF'C000'000C);  // 1 GiB
  // A sub-dword read of the high half (§3.2 step 3 copies from the LE image).
  std::array<std::byte, 4> high{};
  regs.patch_config_read(hopper, 0x24, high);
  CHECK(load_le<std::uint32_t>(high, 0) == 0xFFFF'FFE0);
  std::array<std::byte, 4> low{};
  regs.patch_config_read(hopper, 0x20, low);
  CHECK(load_le<std::uint32_t>(low, 0) == 0x0000'000C);
}

TEST_CASE("§3 reset zeroes both registers") {
  auto regs = seeded(hopper);
  CHECK(regs.raw(2) != 0);
  CHECK(regs.raw(4) != 0);
  regs.reset();
  CHECK(regs.raw(2) == 0);
  CHECK(regs.raw(4) == 0);
  CHECK(regs == bar_registers{});
}

TEST_CASE("§3.1 intersection: both cases, buffer offset 0 inside the register (§10 E5)") {
  using vfio::intersect_range;
  using vfio::intersection;
  CHECK(intersect_range(0x14, 16, 0x18, 8) == intersection{4, 8, 0});
  CHECK(intersect_range(0x1C, 8, 0x18, 8) == intersection{0, 4, 4});
  CHECK(intersect_range(0x19, 2, 0x18, 8) == intersection{0, 2, 1});
  CHECK_FALSE(intersect_range(0x10, 4, 0x18, 8));
  // E5: sub-dword reads at 0x19, 0x1D, 0x23, 0x27 land at buffer offset 0.
  CHECK(intersect_range(0x19, 1, 0x18, 8) == intersection{0, 1, 1});
  CHECK(intersect_range(0x1D, 2, 0x18, 8) == intersection{0, 2, 5});
  CHECK(intersect_range(0x23, 1, 0x20, 8) == intersection{0, 1, 3});
  CHECK(intersect_range(0x27, 4, 0x20, 8) == intersection{0, 1, 7});
  CHECK_FALSE(intersect_range(0x20, 4, 0x18, 8));
  CHECK_FALSE(intersect_range(0x14, 4, 0x18, 8));
  // Near the top of the address space nothing wraps.
  const std::uint64_t top = ~std::uint64_t{0};
  CHECK(intersect_range(top - 4, 5, top - 8, 8) == intersection{0, 4, 4});
  CHECK_FALSE(intersect_range(0, top, top, 1));  // [0, 2^64 - 1) ends just before the register
  CHECK(intersect_range(1, top, top, 1) == intersection{top - 1, 1, 0});
}

TEST_CASE("§3.2 sub-dword reads at 0x19, 0x1D, 0x23, 0x27 (§10 E5)") {
  auto regs = seeded(hopper);
  for (const std::uint64_t pos : {0x19u, 0x1Du, 0x23u, 0x27u}) {
    std::array<std::byte, 1> one{std::byte{0x55}};
    regs.patch_config_read(hopper, pos, one);
    const std::uint32_t index = pos < 0x20 ? 2 : 4;
    const std::uint64_t value = read_value(hopper, regs.raw(index), index);
    CHECK(one[0] == static_cast<std::byte>(value >> (8 * (pos & 7))));
  }
}

TEST_CASE("§3.3 a write spanning a window edge stores only the overlap and returns its count (§10 E3)") {
  bar_registers regs;
  const auto data = pattern(8, 1);
  CHECK(regs.intercept_config_write(hopper, 0x14, data) == std::optional<std::uint64_t>{4});
  CHECK(regs.raw(2) == load_le<std::uint32_t>(data, 4));
  CHECK(regs.raw(4) == 0);
  // 0x1C..0x23 touches both windows: only resmem's bytes 4..7 are stored (§10 E4 for writes).
  bar_registers both;
  CHECK(both.intercept_config_write(hopper, 0x1C, data) == std::optional<std::uint64_t>{4});
  CHECK(both.raw(2) == std::uint64_t{load_le<std::uint32_t>(data, 0)} << 32);
  CHECK(both.raw(4) == 0);
  // A large write from 0x10 returns 8 and never reaches the core.
  bar_registers big;
  const auto block = pattern(0x1000, 0);
  CHECK(big.intercept_config_write(hopper, 0x10, block) == std::optional<std::uint64_t>{8});
  CHECK(big.raw(2) == load_le<std::uint64_t>(block, 8));
  // Outside both windows the core writes.
  CHECK_FALSE(big.intercept_config_write(hopper, 0x10, std::span<const std::byte>(block).first(8)));
  CHECK_FALSE(big.intercept_config_write(hopper, 0x28, std::span<const std::byte>(block).first(8)));
}

TEST_CASE("§10 E2 Blackwell: the 0x18 window is not emulated, even the usemem bytes of an access") {
  bar_registers regs;
  const auto data = pattern(16, 1);
  CHECK_FALSE(regs.intercept_config_write(blackwell, 0x18, data));
  CHECK_FALSE(regs.intercept_config_write(blackwell, 0x1C, std::span<const std::byte>(data).first(8)));
  CHECK(regs == bar_registers{});
  CHECK(regs.intercept_config_write(blackwell, 0x20, std::span<const std::byte>(data).first(8)) ==
        std::optional<std::uint64_t>{8});
  CHECK(regs.raw(4) == load_le<std::uint64_t>(data, 0));
  std::vector<std::byte> buffer(16, std::byte{0x55});
  regs.patch_config_read(blackwell, 0x18, buffer);
  CHECK(buffer == std::vector<std::byte>(16, std::byte{0x55}));
}

/// Exhaustive: every (pos, count) with pos + count ≤ 0x40 against the reference.
void check_windows_exhaustively(const grace::layout& l) {
  std::size_t cases = 0;
  for (std::uint64_t pos = 0; pos <= 0x40; ++pos) {
    for (std::uint64_t count = 0; pos + count <= 0x40; ++count) {
      ++cases;
      const auto chosen = chosen_window(l, pos, count);
      const auto found = grace::find_window(l, pos, count);
      REQUIRE(found.has_value() == chosen.has_value());
      if (chosen) CHECK(found->region_index == chosen->index);

      // Read: start from the core's bytes, patch, compare byte by byte.
      const bar_registers regs = seeded(l);
      std::vector<std::byte> buffer(count);
      for (std::uint64_t i = 0; i < count; ++i) buffer[i] = core_byte(pos + i);
      regs.patch_config_read(l, pos, buffer);
      for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint64_t a = pos + i;
        std::byte expected = core_byte(a);
        if (chosen && a >= chosen->start && a < chosen->start + 8) {
          const std::uint64_t value = read_value(l, regs.raw(chosen->index), chosen->index);
          expected = static_cast<std::byte>(value >> (8 * (a - chosen->start)));
        }
        if (buffer[i] != expected) {
          FAIL_CHECK("read pos " << pos << " count " << count << " byte " << a);
          break;
        }
      }

      // Write: only the chosen window's bytes are stored; the count of them is returned.
      bar_registers written = seeded(l);
      const bar_registers before = written;
      const auto data = pattern(count, 0x90 + static_cast<unsigned>(pos));
      const auto result = written.intercept_config_write(l, pos, data);
      REQUIRE(result.has_value() == chosen.has_value());
      std::array<std::uint64_t, 2> expected_raw{before.raw(2), before.raw(4)};
      std::uint64_t stored = 0;
      if (chosen) {
        std::uint64_t& raw = expected_raw[chosen->index == 2 ? 0 : 1];
        for (std::uint64_t i = 0; i < count; ++i) {
          const std::uint64_t a = pos + i;
          if (a < chosen->start || a >= chosen->start + 8) continue;
          const unsigned shift = static_cast<unsigned>(8 * (a - chosen->start));
          raw = (raw & ~(std::uint64_t{0xFF} << shift)) |
                (std::uint64_t{std::to_integer<std::uint8_t>(data[i])} << shift);
          ++stored;
        }
        CHECK(*result == stored);
      }
      CHECK(written.raw(2) == expected_raw[0]);
      CHECK(written.raw(4) == expected_raw[1]);
    }
  }
  CHECK(cases == 65 * 66 / 2);
}

TEST_CASE("§3.1-3.3 exhaustive config-window check, Hopper") { check_windows_exhaustively(hopper); }
TEST_CASE("§3.1-3.3 exhaustive config-window check, Blackwell") { check_windows_exhaustively(blackwell); }

TEST_CASE("§3 BAR-sizing probe returns the region size for every power of two 16 B..2^63") {
  for (unsigned bit = 4; bit < 64; ++bit) {
    const std::uint64_t size = std::uint64_t{1} << bit;
    const auto l = grace::derive_layout(base, size, generation::blackwell).value();
    bar_registers regs;
    const auto probe = grace::probe_bar_size(l, regs, 4);
    CHECK(probe.before == 0xC);
    CHECK(probe.after == ((~std::uint64_t{0} & ~(size - 1)) | 0xC));
    CHECK(probe.size == size);
    bar_registers low_f0;
    CHECK(grace::probe_bar_size(l, low_f0, 4, 0xFFFF'FFF0, 0xFFFF'FFFF).size == size);
  }
  // Hopper's resmem through the 0x18 window.
  bar_registers regs;
  CHECK(grace::probe_bar_size(hopper, regs, 2).size == GiB);
  const auto old_2g = grace::derive_layout(base, 96 * GiB + 300 * MiB, generation::hopper).value();
  bar_registers regs2;
  CHECK(grace::probe_bar_size(old_2g, regs2, 2).size == 2 * GiB);
  CHECK(pci::bar_size_from_readback(0xFFFF'FFF0, false) == 16);
  CHECK(pci::bar_size_from_readback(0, true) == 0);
  CHECK(grace::bar_window(2) == 0x18);
  CHECK(grace::bar_window(4) == 0x20);
}

}  // namespace
