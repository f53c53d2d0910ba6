// §1 device identity, §2.2 the DVSEC carve-out decision and the extended
// capability walker, including malformed lists.
#include "test_util.hpp"

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/pci/config.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

using namespace nvgrace;
using grace::generation;
using test::exact_copy;

constexpr std::uint16_t nvidia = 0x10DE;

/// A 4 KiB config space with no extended capabilities (all zero).
std::vector<std::byte> config_space(std::size_t size = pci::ext_config_space_size) {
  return std::vector<std::byte>(size, std::byte{0});
}
void put_header(std::vector<std::byte>& config, std::uint16_t at, std::uint16_t id, std::uint16_t next,
                std::uint8_t version = 1) {
  store_le<std::uint32_t>(config, at, pci::encode_ext_cap_header({id, version, next}));
}
/// A DVSEC at `at`: header, vendor in header 1, id in header 2, the 16-bit word at +0xA.
void put_dvsec(std::vector<std::byte>& config, std::uint16_t at, std::uint16_t next, std::uint16_t vendor,
               std::uint16_t id, std::uint16_t word) {
  put_header(config, at, pci::ext_cap::dvsec, next);
  store_le<std::uint32_t>(config, at + 4u, std::uint32_t{vendor} | (1u << 16) | (0x10u << 20));
  store_le<std::uint16_t>(config, at + 8u, id);
  store_le<std::uint16_t>(config, at + 0xAu, word);
}

TEST_CASE("§1 the five device ids, names and generations") {
  struct expected {
    std::uint16_t device;
    std::string_view name;
    generation gen;
  };
  const std::array<expected, 5> table{{{0x2342, "GH200 120GB", generation::hopper},
                                       {0x2345, "GH200 480GB", generation::hopper},
                                       {0x2348, "GH200", generation::hopper},
                                       {0x2941, "GB200", generation::blackwell},
                                       {0x31C2, "GB300", generation::blackwell}}};
  CHECK(grace::known_devices.size() == 5);
  for (const auto& e : table) {
    const auto d = grace::find_device(nvidia, e.device);
    REQUIRE(d.has_value());
    CHECK(d->vendor == 0x10DE);
    CHECK(d->name == e.name);
    CHECK(d->generation == e.gen);
  }
  CHECK_FALSE(grace::find_device(nvidia, 0x2343).has_value());
  CHECK_FALSE(grace::find_device(0x10DF, 0x2342).has_value());
  CHECK_FALSE(grace::find_device(0x1AF4, 0x1110).has_value());
  CHECK(grace::to_string(generation::hopper) == "hopper");
  CHECK(grace::to_string(generation::blackwell) == "blackwell");
}

TEST_CASE("§2.2 DVSEC bit 0 set means Blackwell, clear or missing means Hopper") {
  auto config = config_space();
  CHECK(grace::generation_from_config(config).value() == generation::hopper);  // no extended caps
  put_header(config, 0x100, 0x0001, 0x140);                                    // AER, then the DVSEC
  put_dvsec(config, 0x140, 0, nvidia, 3, 0x0001);
  CHECK(pci::find_dvsec(config, nvidia, 3).value() == 0x140);
  CHECK(grace::generation_from_config(config).value() == generation::blackwell);
  CHECK(grace::driver_generation(config) == generation::blackwell);

  store_le<std::uint16_t>(config, 0x14A, 0xFFFE);  // every bit but bit 0
  CHECK(grace::generation_from_config(config).value() == generation::hopper);
  store_le<std::uint16_t>(config, 0x14A, 0x8001);
  CHECK(grace::generation_from_config(config).value() == generation::blackwell);
}

TEST_CASE("§2.2 only the NVIDIA DVSEC with id 3 counts") {
  auto config = config_space();
  put_dvsec(config, 0x100, 0x180, 0x1E98, 3, 0x1);  // CXL vendor, id 3
  put_dvsec(config, 0x180, 0x200, nvidia, 2, 0x1);  // NVIDIA, id 2
  put_header(config, 0x200, 0x000B, 0);             // vendor-specific (not DVSEC)
  CHECK(pci::find_dvsec(config, nvidia, 3).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(grace::generation_from_config(config).value() == generation::hopper);
  put_dvsec(config, 0x200, 0, nvidia, 3, 0x1);
  CHECK(pci::find_dvsec(config, nvidia, 3).value() == 0x200);
  CHECK(grace::generation_from_config(config).value() == generation::blackwell);
}

TEST_CASE("§2.2 walker: backward pointers are followed") {
  auto config = config_space();
  put_header(config, 0x100, 0x0001, 0x300);
  put_header(config, 0x300, 0x0002, 0x200);
  put_dvsec(config, 0x200, 0, nvidia, 3, 0x1);
  CHECK(pci::find_dvsec(config, nvidia, 3).value() == 0x200);
  CHECK(grace::driver_generation(config) == generation::blackwell);
  std::vector<std::uint16_t> visited;
  const auto end = pci::walk_ext_caps(config, [&](std::uint16_t at, pci::ext_cap_header) {
    visited.push_back(at);
    return false;
  });
  CHECK(end.error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(visited == std::vector<std::uint16_t>{0x100, 0x300, 0x200});
}

TEST_CASE("§2.2 walker: cycles end with EBADMSG after the kernel's 480 visits") {
  auto config = config_space();
  SUBCASE("self loop") { put_header(config, 0x100, 0x0001, 0x100); }
  SUBCASE("two-cap cycle") {
    put_header(config, 0x100, 0x0001, 0x200);
    put_header(config, 0x200, 0x0002, 0x100);
  }
  SUBCASE("cycle entered after a backward step") {
    put_header(config, 0x100, 0x0001, 0x800);
    put_header(config, 0x800, 0x0002, 0x400);
    put_header(config, 0x400, 0x0003, 0x800);
  }
  std::size_t visits = 0;
  const auto end = pci::walk_ext_caps(config, [&](std::uint16_t, pci::ext_cap_header) {
    ++visits;
    return false;
  });
  CHECK(end.error() == nvgrace::errc::bad_message);
  CHECK(visits == 480);
  CHECK(pci::find_dvsec(config, nvidia, 3).error() == nvgrace::errc::bad_message);
  CHECK(grace::generation_from_config(config).error() == nvgrace::errc::bad_message);
  // The driver's own walk just finds no DVSEC: Hopper.
  CHECK(grace::driver_generation(config) == generation::hopper);
}

TEST_CASE("§2.2 walker: a DVSEC inside a cycle is still found") {
  auto config = config_space();
  put_header(config, 0x100, 0x0001, 0x200);
  put_dvsec(config, 0x200, 0x100, nvidia, 3, 0x1);
  CHECK(pci::find_dvsec(config, nvidia, 3).value() == 0x200);
  CHECK(grace::generation_from_config(config).value() == generation::blackwell);
}

TEST_CASE("§2.2 walker: 480 packed capabilities are all visited") {
  auto config = config_space();
  for (std::uint16_t at = 0x100; at < 0xFF8; at += 8)
    put_header(config, at, 0x000B, static_cast<std::uint16_t>(at + 8));
  put_header(config, 0xFF8, 0x0042, 0);
  std::size_t visits = 0;
  const auto found = pci::walk_ext_caps(config, [&](std::uint16_t, pci::ext_cap_header h) {
    ++visits;
    return h.id == 0x0042;
  });
  CHECK(found.value() == 0xFF8);
  CHECK(visits == 480);
  // The last header that leaves room for a whole DVSEC is at 0xFF0 (the 479th).
  put_dvsec(config, 0xFF0, 0, nvidia, 3, 0x1);
  CHECK(pci::find_dvsec(config, nvidia, 3).value() == 0xFF0);
  CHECK(grace::generation_from_config(config).value() == generation::blackwell);
  // Linked back to the start instead, the 480 headers are a cycle.
  put_header(config, 0xFF0, 0x000B, 0xFF8);
  put_header(config, 0xFF8, 0x000B, 0x100);
  CHECK(pci::find_ext_cap(config, 0x0042).error() == nvgrace::errc::bad_message);
}

TEST_CASE("§2.2 walker: a pointer below 0x100 or past the buffer is EBADMSG") {
  auto config = config_space();
  put_header(config, 0x100, 0x0001, 0x40);
  CHECK(pci::find_ext_cap(config, 0x23).error() == nvgrace::errc::bad_message);
  CHECK(grace::driver_generation(config) == generation::hopper);
  // A 0x200-byte buffer with a pointer to 0x1FC is fine (4 bytes left); to 0x200 it is not.
  auto small = config_space(0x200);
  put_header(small, 0x100, 0x0001, 0x1FC);
  store_le<std::uint32_t>(small, 0x1FC, pci::encode_ext_cap_header({0x0002, 1, 0}));
  CHECK(pci::find_ext_cap(small, 0x0002).value() == 0x1FC);
  put_header(small, 0x100, 0x0001, 0x200);
  CHECK(pci::find_ext_cap(small, 0x0002).error() == nvgrace::errc::bad_message);
}

TEST_CASE("§2.2 walker: all-ones or all-zero headers and short spaces mean no list (ENOENT)") {
  auto config = config_space();
  CHECK(pci::find_ext_cap(config, 1).error() == nvgrace::errc::no_such_file_or_directory);
  store_le<std::uint32_t>(config, 0x100, 0xFFFF'FFFF);
  CHECK(pci::find_ext_cap(config, 0xFFFF).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(grace::generation_from_config(config).value() == generation::hopper);
  // All-ones further down the list ends it too.
  put_header(config, 0x100, 0x0001, 0x200);
  store_le<std::uint32_t>(config, 0x200, 0xFFFF'FFFF);
  CHECK(pci::find_ext_cap(config, 0x23).error() == nvgrace::errc::no_such_file_or_directory);
  // A conventional 256-byte config space has no extended list.
  const auto legacy = config_space(256);
  CHECK(pci::find_dvsec(legacy, nvidia, 3).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(grace::generation_from_config(legacy).value() == generation::hopper);
  CHECK(pci::find_ext_cap(config_space(0x103), 1).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(pci::find_ext_cap(std::span<const std::byte>{}, 1).error() == nvgrace::errc::no_such_file_or_directory);
}

TEST_CASE("§2.2 walker: a DVSEC cut off by the end of the buffer is EBADMSG") {
  // Header at 0x100 with DVSEC id; the buffer ends before header 2's id (0x10A).
  auto config = config_space(0x109);
  put_header(config, 0x100, pci::ext_cap::dvsec, 0);
  CHECK(pci::find_dvsec(config, nvidia, 3).error() == nvgrace::errc::bad_message);
  CHECK(grace::generation_from_config(config).error() == nvgrace::errc::bad_message);
  CHECK(grace::driver_generation(config) == generation::hopper);
  // Header 2 fits but the word at +0xA does not.
  auto cut = config_space(0x10B);
  store_le<std::uint32_t>(cut, 0x100, pci::encode_ext_cap_header({pci::ext_cap::dvsec, 1, 0}));
  store_le<std::uint16_t>(cut, 0x104, nvidia);
  store_le<std::uint16_t>(cut, 0x108, 3);
  CHECK(pci::find_dvsec(cut, nvidia, 3).value() == 0x100);
  CHECK(grace::generation_from_config(cut).error() == nvgrace::errc::bad_message);
  // Exactly long enough: decided by the word.
  auto exact = config_space(0x10C);
  std::copy(cut.begin(), cut.end(), exact.begin());
  store_le<std::uint16_t>(exact, 0x10A, 1);
  CHECK(grace::generation_from_config(exact).value() == generation::blackwell);
}

TEST_CASE("§2.2 header fields decode like PCI_EXT_CAP_ID/VER/NEXT") {
  const auto h = pci::decode_ext_cap_header(0x1401'0023);
  CHECK(h.id == 0x23);
  CHECK(h.version == 1);
  CHECK(h.next == 0x140);
  // The low two bits of next are reserved and masked off.
  CHECK(pci::decode_ext_cap_header(0x1433'0023).next == 0x140);
  CHECK(pci::decode_ext_cap_header(0x1433'0023).version == 3);
  CHECK(pci::encode_ext_cap_header({0x23, 1, 0x140}) == 0x1401'0023);
}

TEST_CASE("§2.2 walker robustness: random and corrupted spaces never read out of bounds") {
  // Every buffer is an exact heap copy, so ASan flags any over-read.
  test::prng rng(0x5eed);
  std::size_t found = 0, errors = 0;
  for (int round = 0; round < 3000; ++round) {
    const std::size_t size = 0x100 + static_cast<std::size_t>(rng.next() % 0x140);
    std::vector<std::byte> config(size);
    for (auto& b : config) b = static_cast<std::byte>(rng.next());
    // Bias pointers into the buffer so walks go somewhere.
    for (std::size_t at = 0x100; at + 4 <= size; at += 8) {
      if (rng.next() % 2 == 0) {
        const auto next = static_cast<std::uint16_t>(0x100 + (rng.next() % (size - 0x100)));
        const auto id = static_cast<std::uint16_t>(rng.next() % 4 == 0 ? pci::ext_cap::dvsec : rng.next());
        store_le<std::uint32_t>(config, at, pci::encode_ext_cap_header({id, 1, next}));
      }
      if (rng.next() % 8 == 0 && at + 10 <= size) store_le<std::uint16_t>(config, at + 4, nvidia);
      if (rng.next() % 8 == 0 && at + 10 <= size) store_le<std::uint16_t>(config, at + 8, 3);
    }
    const exact_copy copy(config);
    const auto g = grace::generation_from_config(copy.span());
    if (g)
      ++found;
    else {
      ++errors;
      CHECK(g.error() == nvgrace::errc::bad_message);
    }
    const auto d = grace::driver_generation(copy.span());
    CHECK((d == generation::hopper || d == generation::blackwell));
    if (g) CHECK(d == *g);
  }
  CHECK(found + errors == 3000);
  CHECK(errors > 0);
  CHECK(found > 0);
}

}  // namespace
