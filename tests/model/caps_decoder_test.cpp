// §4.1–4.2: the capability-chain decoder on bytes from outside.
// Every truncation and every single-byte corruption of a valid reply is decoded
// from an exactly-sized heap copy (ASan catches over-reads); crafted chains
// give exact errnos.
#include "test_util.hpp"

#include <nvgrace/core/bytes.hpp>
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
using test::exact_copy;

constexpr std::uint64_t region_size = 0x10000;

/// A valid 32 + 88-byte reply: MSIX_MAPPABLE, an unknown cap, a 2-area
/// SPARSE_MMAP, a TYPE cap.
std::vector<std::byte> valid_reply() {
  vfio::cap_chain<> caps;
  REQUIRE(caps.add_msix_mappable());
  const std::array<std::byte, 3> odd{std::byte{1}, std::byte{2}, std::byte{3}};
  REQUIRE(caps.add(0x77, 1, odd));
  const std::array<vfio::sparse_mmap_area, 2> areas{{{0, 0x1000}, {0x8000, 0x8000}}};
  REQUIRE(caps.add_sparse_mmap(areas));
  REQUIRE(caps.add_type(3, 1));
  std::vector<std::byte> out(32 + caps.size());
  const vfio::region_info info{0, 0x7, 0, 0, region_size, 0};
  REQUIRE(vfio::encode_region_info(out, static_cast<std::uint32_t>(out.size()), info, caps).value() == out.size());
  return out;
}

/// Header of a reply with CAPS set, cap_offset 32 and the given argsz/size.
std::vector<std::byte> reply_with_chain(std::size_t total, std::uint64_t size = region_size) {
  std::vector<std::byte> out(total, std::byte{0});
  store_region_info(out, vfio::region_info{static_cast<std::uint32_t>(total), 0xF, 2, 32, size, 0});
  return out;
}
void put_cap(std::vector<std::byte>& r, std::size_t at, std::uint16_t id, std::uint32_t next) {
  store_le<std::uint16_t>(r, at, id);
  store_le<std::uint16_t>(r, at + 2, 1);
  store_le<std::uint32_t>(r, at + 4, next);
}

/// A successful decode must be self-consistent: areas inside the region.
void check_consistent(const vfio::region_caps& caps, std::span<const std::byte> reply) {
  if (!caps.sparse_mmap) return;
  const auto size = vfio::load_region_info(reply).size;
  for (std::uint32_t i = 0; i < caps.sparse_mmap->size(); ++i) {
    const auto area = (*caps.sparse_mmap)[i];
    CHECK(area.offset <= size);
    CHECK(area.size <= size - area.offset);
  }
}

TEST_CASE("§4.2 decoder: a valid chain decodes fully") {
  const auto r = valid_reply();
  REQUIRE(r.size() == 120);
  const exact_copy copy(r);
  const auto caps = vfio::decode_region_caps(copy.span());
  REQUIRE(caps);
  CHECK(caps->msix_mappable);
  CHECK(caps->unknown == 1);
  REQUIRE(caps->type);
  CHECK(*caps->type == vfio::region_type{3, 1});
  REQUIRE(caps->sparse_mmap);
  REQUIRE(caps->sparse_mmap->size() == 2);
  CHECK((*caps->sparse_mmap)[0].offset == 0);
  CHECK((*caps->sparse_mmap)[0].size == 0x1000);
  CHECK((*caps->sparse_mmap)[1].offset == 0x8000);
  CHECK((*caps->sparse_mmap)[1].size == 0x8000);
}

TEST_CASE("§4.2 decoder: no CAPS flag means no capabilities; CAPS without a chain is ENOBUFS") {
  std::vector<std::byte> r(32);
  store_region_info(r, vfio::region_info{32, 0x7, 0, 0, region_size, 0});
  const auto none = vfio::decode_region_caps(r);
  REQUIRE(none);
  CHECK_FALSE(none->sparse_mmap);
  CHECK_FALSE(none->type);
  CHECK_FALSE(none->msix_mappable);
  CHECK(none->unknown == 0);
  // The argsz-too-small answer of §4.2: CAPS set, cap_offset 0.
  store_region_info(r, vfio::region_info{64, 0xF, 0, 0, region_size, 0});
  CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::no_buffer_space);
}

TEST_CASE("§4.2 decoder: every truncation is an error or a valid decode, never an over-read") {
  const auto r = valid_reply();
  std::size_t ok = 0;
  for (std::size_t length = 0; length <= r.size(); ++length) {
    const exact_copy copy(std::span<const std::byte>(r).first(length));
    const auto caps = vfio::decode_region_caps(copy.span());
    if (length < 32) {
      CHECK(caps.error() == nvgrace::errc::bad_message);
    } else if (length < r.size()) {
      // The reply's argsz says 120 but fewer bytes arrived: the last capability never fits.
      CHECK(caps.error() == nvgrace::errc::bad_message);
    } else {
      REQUIRE(caps);
      check_consistent(*caps, copy.span());
      ++ok;
    }
  }
  CHECK(ok == 1);
}

TEST_CASE("§4.2 decoder: every single-byte corruption (all 256 values) is an error or a consistent decode") {
  const auto r = valid_reply();
  std::size_t decoded = 0, failed = 0;
  for (std::size_t at = 0; at < r.size(); ++at) {
    for (unsigned value = 0; value < 256; ++value) {
      auto corrupt = r;
      corrupt[at] = static_cast<std::byte>(value);
      const exact_copy copy(corrupt);
      const auto caps = vfio::decode_region_caps(copy.span());
      if (caps) {
        ++decoded;
        check_consistent(*caps, copy.span());
      } else {
        ++failed;
        const auto e = caps.error();
        CHECK((e == nvgrace::errc::bad_message || e == nvgrace::errc::invalid_argument ||
               e == nvgrace::errc::no_buffer_space));
      }
    }
  }
  CHECK(decoded + failed == r.size() * 256);
  CHECK(failed > 0);
  CHECK(decoded > 0);
}

TEST_CASE("§4.2 decoder: random byte soup never over-reads") {
  test::prng rng(42);
  for (int round = 0; round < 20000; ++round) {
    const std::size_t size = 34 + rng.next() % 96;  // room for the id poked at 32
    std::vector<std::byte> soup(size);
    for (auto& b : soup) b = static_cast<std::byte>(rng.next());
    // Make most of them look like chains so the walk gets going.
    store_le<std::uint32_t>(soup, 0, static_cast<std::uint32_t>(rng.next() % 2 ? size : rng.next()));
    store_le<std::uint32_t>(soup, 4, 0xF);
    store_le<std::uint32_t>(soup, 12, static_cast<std::uint32_t>(32 + (rng.next() % 3) * 8));
    if (rng.next() % 2) store_le<std::uint16_t>(soup, 32, static_cast<std::uint16_t>(1 + rng.next() % 3));
    const exact_copy copy(soup);
    const auto caps = vfio::decode_region_caps(copy.span());
    if (caps) check_consistent(*caps, copy.span());
  }
}

TEST_CASE("§4.2 decoder: crafted chains give exact errnos") {
  SUBCASE("cap_offset inside the info struct") {
    auto r = reply_with_chain(64);
    store_le<std::uint32_t>(r, 12, 16);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("cap_offset past the reply") {
    auto r = reply_with_chain(64);
    store_le<std::uint32_t>(r, 12, 60);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
    store_le<std::uint32_t>(r, 12, 0xFFFF'FFF8);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("next pointing at itself (a cycle)") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 3, 32);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("next pointing backward") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 0x55, 48);
    put_cap(r, 48, 0x55, 32);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("next inside the current header") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 0x55, 36);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("next past the reply") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 0x55, 64);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
    put_cap(r, 32, 0x55, 60);  // inside, but no room for a header
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("huge nr_areas") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 1, 0);
    store_le<std::uint32_t>(r, 40, 0xFFFF'FFFF);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
    store_le<std::uint32_t>(r, 40, 2);  // 2 areas need 32 bytes, 16 are there
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
    store_le<std::uint32_t>(r, 40, 1);
    CHECK(vfio::decode_region_caps(r).has_value());
  }
  SUBCASE("nr_areas bounded by the next capability, not the buffer") {
    auto r = reply_with_chain(96);
    put_cap(r, 32, 1, 64);
    store_le<std::uint32_t>(r, 40, 2);  // would run into the cap at 64
    put_cap(r, 64, 3, 0);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("area offset + size overflows") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 1, 0);
    store_le<std::uint32_t>(r, 40, 1);
    store_le<std::uint64_t>(r, 48, ~std::uint64_t{0} - 0xF);
    store_le<std::uint64_t>(r, 56, 0x20);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::invalid_argument);
  }
  SUBCASE("area past the region end") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 1, 0);
    store_le<std::uint32_t>(r, 40, 1);
    store_le<std::uint64_t>(r, 48, 0x1000);
    store_le<std::uint64_t>(r, 56, region_size - 0x1000 + 1);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::invalid_argument);
    store_le<std::uint64_t>(r, 56, region_size - 0x1000);  // exactly to the end is fine
    CHECK(vfio::decode_region_caps(r).has_value());
  }
  SUBCASE("sparse cap shorter than its fixed part") {
    auto r = reply_with_chain(72);
    put_cap(r, 32, 1, 40);
    put_cap(r, 40, 3, 0);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("type cap shorter than 16 bytes") {
    auto r = reply_with_chain(44);
    put_cap(r, 32, 2, 0);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("duplicate sparse-mmap or type capability") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 2, 48);
    put_cap(r, 48, 2, 0);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
    put_cap(r, 32, 1, 48);
    put_cap(r, 48, 1, 0);
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("argsz smaller than the bytes: only argsz counts") {
    auto r = reply_with_chain(64);
    put_cap(r, 32, 1, 0);
    store_le<std::uint32_t>(r, 40, 1);
    store_le<std::uint32_t>(r, 0, 48);  // the provider says it wrote 48 bytes
    CHECK(vfio::decode_region_caps(r).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("unknown ids are skipped and counted; zero areas is valid") {
    auto r = reply_with_chain(72);
    put_cap(r, 32, 0x99, 40);
    put_cap(r, 40, 0xFFFF, 48);
    put_cap(r, 48, 1, 0);
    const auto caps = vfio::decode_region_caps(r);
    REQUIRE(caps);
    CHECK(caps->unknown == 2);
    REQUIRE(caps->sparse_mmap);
    CHECK(caps->sparse_mmap->empty());
  }
}

}  // namespace
