// §4.2–4.3 region-info replies: the generic encoder and capability chain, and
// the grace-level reply for emulated regions with exact bytes.
#include "test_util.hpp"

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/region_info.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace {

using namespace nvgrace;
using test::bytes;

constexpr std::uint64_t base = 0x4000'0000'0000;
const auto hopper = grace::derive_layout(base, 96 * GiB, grace::generation::hopper).value();
const auto blackwell = grace::derive_layout(base, 96 * GiB, grace::generation::blackwell).value();

std::vector<std::byte> reply(const grace::layout& l, std::uint32_t index, std::uint32_t argsz,
                             std::size_t buffer = 128) {
  std::vector<std::byte> out(buffer, std::byte{0xEE});
  const auto n = grace::region_info_reply(l, index, argsz, out);
  REQUIRE(n);
  out.resize(*n);
  return out;
}

TEST_CASE("§4.3 BAR4 of 96 GiB Hopper, argsz 64: exact 64 bytes") {
  CHECK(reply(hopper, 4, 64) == bytes({0x40, 0, 0,    0, 0x0F, 0, 0, 0, 0x04, 0, 0, 0,    0x20, 0,    0, 0,  //
                                       0,    0, 0,    0, 0x20, 0, 0, 0, 0,    0, 0, 0,    0,    0x04, 0, 0,  //
                                       0x01, 0, 0x01, 0, 0,    0, 0, 0, 0x01, 0, 0, 0,    0,    0,    0, 0,  //
                                       0,    0, 0,    0, 0,    0, 0, 0, 0,    0, 0, 0xC0, 0x17, 0,    0, 0}));
}

TEST_CASE("§4.2 argsz below 32 is EINVAL and writes nothing") {
  for (std::uint32_t argsz = 0; argsz < 32; ++argsz) {
    std::vector<std::byte> out(64, std::byte{0xEE});
    CHECK(grace::region_info_reply(hopper, 4, argsz, out).error() == nvgrace::errc::invalid_argument);
    CHECK(out == std::vector<std::byte>(64, std::byte{0xEE}));
  }
}

TEST_CASE("§4.2 32 <= argsz < 64: success, argsz 64, cap_offset 0, flags 0xF, no caps") {
  for (std::uint32_t argsz = 32; argsz < 64; ++argsz) {
    for (const std::uint32_t index : {2u, 4u}) {
      const auto r = reply(hopper, index, argsz);
      REQUIRE(r.size() == 32);
      const auto info = vfio::load_region_info(r);
      CHECK(info.argsz == 64);
      CHECK(info.flags == 0xF);
      CHECK(info.index == index);
      CHECK(info.cap_offset == 0);
      CHECK(info.size == hopper.region(index)->reported_size);
      CHECK(info.offset == std::uint64_t{index} << 40);
    }
  }
}

TEST_CASE("§4.2 argsz >= 64: 64 bytes, argsz kept, cap_offset 32, sparse area {0, real_length}") {
  for (const std::uint32_t argsz : {64u, 65u, 100u, 4096u, 0xFFFF'FFFFu}) {
    for (const std::uint32_t index : {2u, 4u}) {
      const auto r = reply(hopper, index, argsz);
      REQUIRE(r.size() == 64);
      const auto info = vfio::load_region_info(r);
      CHECK(info.argsz == argsz);
      CHECK(info.flags == 0xF);
      CHECK(info.cap_offset == 32);
      CHECK(load_le<std::uint16_t>(r, 32) == 1);  // SPARSE_MMAP
      CHECK(load_le<std::uint16_t>(r, 34) == 1);  // version 1
      CHECK(load_le<std::uint32_t>(r, 36) == 0);  // next: end of chain
      CHECK(load_le<std::uint32_t>(r, 40) == 1);  // nr_areas
      CHECK(load_le<std::uint32_t>(r, 44) == 0);  // reserved
      CHECK(load_le<std::uint64_t>(r, 48) == 0);
      CHECK(load_le<std::uint64_t>(r, 56) == hopper.region(index)->real_length);
      // And the decoder reads it back.
      const auto caps = vfio::decode_region_caps(r);
      REQUIRE(caps);
      REQUIRE(caps->sparse_mmap);
      REQUIRE(caps->sparse_mmap->size() == 1);
      CHECK((*caps->sparse_mmap)[0].offset == 0);
      CHECK((*caps->sparse_mmap)[0].size == hopper.region(index)->real_length);
    }
  }
}

TEST_CASE("§4.3 the area is the real length, not page-rounded, not the BAR size") {
  const auto l = grace::derive_layout(base, 186 * GiB + 4 * KiB + 1, grace::generation::blackwell).value();
  const auto r = reply(l, 4, 64);
  CHECK(load_le<std::uint64_t>(r, 16) == 256 * GiB);
  CHECK(load_le<std::uint64_t>(r, 56) == 186 * GiB + 4 * KiB + 1);
}

TEST_CASE("§4.3 non-emulated regions are the core's: ENOENT; a short buffer is EFAULT") {
  std::vector<std::byte> out(64);
  CHECK(grace::region_info_reply(blackwell, 2, 64, out).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(grace::region_info_reply(hopper, 0, 64, out).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(grace::region_info_reply(hopper, 9, 64, out).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(grace::region_info_reply(hopper, 4, 64, std::span<std::byte>(out).first(63)).error() ==
        nvgrace::errc::bad_address);
  CHECK(grace::region_info_reply(hopper, 4, 40, std::span<std::byte>(out).first(32)).value() == 32);
  CHECK(grace::region_info_reply(hopper, 4, 40, std::span<std::byte>(out).first(31)).error() ==
        nvgrace::errc::bad_address);
}

TEST_CASE("§4.2 cap chain: every capability padded to 8 bytes, next offsets shifted by 32") {
  vfio::cap_chain<> caps;
  REQUIRE(caps.add_msix_mappable());                      // 8 bytes
  REQUIRE(caps.add(0x77, 2, bytes({0xAA, 0xBB, 0xCC})));  // 11 → 16
  const std::array<vfio::sparse_mmap_area, 2> areas{{{0, 0x1000}, {0x2000, 0x1000}}};
  REQUIRE(caps.add_sparse_mmap(areas));    // 48
  REQUIRE(caps.add_type(0x8000'10DE, 1));  // 16
  CHECK(caps.count() == 4);
  CHECK(caps.size() == 8 + 16 + 48 + 16);
  const auto chain = caps.bytes();
  // Unshifted links, relative to the chain start.
  CHECK(load_le<std::uint32_t>(chain, 4) == 8);
  CHECK(load_le<std::uint32_t>(chain, 8 + 4) == 24);
  CHECK(load_le<std::uint32_t>(chain, 24 + 4) == 72);
  CHECK(load_le<std::uint32_t>(chain, 72 + 4) == 0);
  // Padding bytes are zero.
  CHECK(chain[8 + 11] == std::byte{0});
  CHECK(chain[8 + 15] == std::byte{0});

  const vfio::region_info info{0, 0x7, 1, 0, 0x4000, vfio::region_offset(1)};
  std::vector<std::byte> out(256, std::byte{0xEE});
  CHECK(vfio::encode_region_info(out, 119, info, caps).value() == 32);  // one short
  CHECK(vfio::load_region_info(out).argsz == 120);
  CHECK(vfio::load_region_info(out).cap_offset == 0);
  CHECK(vfio::encode_region_info(out, 120, info, caps).value() == 120);
  const auto decoded_info = vfio::load_region_info(out);
  CHECK(decoded_info.cap_offset == 32);
  CHECK(decoded_info.flags == 0xF);
  CHECK(load_le<std::uint32_t>(out, 32 + 4) == 40);
  CHECK(load_le<std::uint32_t>(out, 40 + 4) == 56);
  CHECK(load_le<std::uint32_t>(out, 56 + 4) == 104);
  CHECK(load_le<std::uint32_t>(out, 104 + 4) == 0);
  CHECK(out[120] == std::byte{0xEE});  // nothing past the reply
  const auto decoded = vfio::decode_region_caps(std::span<const std::byte>(out).first(120));
  REQUIRE(decoded);
  CHECK(decoded->msix_mappable);
  CHECK(decoded->unknown == 1);
  REQUIRE(decoded->type);
  CHECK(*decoded->type == vfio::region_type{0x8000'10DE, 1});
  REQUIRE(decoded->sparse_mmap);
  CHECK(decoded->sparse_mmap->size() == 2);
  CHECK((*decoded->sparse_mmap)[1].offset == 0x2000);
}

TEST_CASE("§4.2 no caps: flags unchanged, argsz kept, 32 bytes") {
  const vfio::cap_chain<> none;
  std::vector<std::byte> out(32);
  const vfio::region_info info{0, 0x3, 7, 0, 256, vfio::region_offset(7)};
  CHECK(vfio::encode_region_info(out, 48, info, none).value() == 32);
  const auto back = vfio::load_region_info(out);
  CHECK(back.argsz == 48);
  CHECK(back.flags == 0x3);
  CHECK(back.cap_offset == 0);
  CHECK(vfio::encode_region_info(out, 31, info, none).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§4.2 a chain over capacity is ENOMEM and leaves the chain unchanged") {
  vfio::cap_chain<32> caps;
  const std::array<vfio::sparse_mmap_area, 2> two{{{0, 1}, {1, 1}}};
  CHECK(caps.add_sparse_mmap(two).error() == nvgrace::errc::not_enough_memory);
  CHECK(caps.empty());
  REQUIRE(caps.add_msix_mappable());
  CHECK(caps.add(9, 1, std::vector<std::byte>(17)).error() == nvgrace::errc::not_enough_memory);
  CHECK(caps.size() == 8);
  REQUIRE(caps.add(9, 1, std::vector<std::byte>(16)));
  CHECK(caps.size() == 32);
}

}  // namespace
