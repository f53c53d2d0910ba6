// §5.1–5.2 the access plan of emulated-region reads and writes, incl. the
// upstream resmem short return (§10 E6–E8), checked exhaustively against a
// byte-by-byte reference.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/grace/access_plan.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/chunk_plan.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

namespace {

using namespace nvgrace;
using grace::access_plan;
using grace::direction;
using grace::plan_access;
using grace::resmem_return;

/// The reference: walk each byte of [offset, offset + count) of a BAR of
/// `bar` bytes with `real` bytes of memory.
struct reference {
  bool einval = false;
  bool memory_first = true;  // every memory byte precedes every padding byte
  std::uint64_t memory = 0, padding = 0, clipped = 0;
};
reference walk(std::uint64_t bar, std::uint64_t real, std::uint64_t offset, std::uint64_t count) {
  reference r;
  if (offset >= bar) {
    r.einval = true;
    return r;
  }
  for (std::uint64_t a = offset; a < offset + count; ++a) {
    if (a >= bar) {
      ++r.clipped;
    } else if (a < real) {
      if (r.padding != 0) r.memory_first = false;
      ++r.memory;
    } else {
      ++r.padding;
    }
  }
  return r;
}

void check_against_reference(direction dir, bool is_resmem, resmem_return quirk) {
  constexpr std::uint64_t bar = 64;
  std::size_t cases = 0, mismatches = 0, einval = 0;
  for (std::uint64_t real = 0; real <= 40; ++real) {
    const grace::memregion region{0x1000, real, bar};
    for (std::uint64_t offset = 0; offset <= 72; ++offset) {
      for (std::uint64_t count = 0; count <= 80; ++count) {
        ++cases;
        const auto ref = walk(bar, real, offset, count);
        const auto plan = plan_access(dir, region, offset, count, is_resmem, quirk);
        if (ref.einval) {
          ++einval;
          if (plan.error() != nvgrace::errc::invalid_argument) ++mismatches;
          continue;
        }
        if (!plan || !ref.memory_first) {
          ++mismatches;
          continue;
        }
        const std::uint64_t clipped_count = ref.memory + ref.padding;
        const bool short_return = is_resmem && quirk == resmem_return::upstream_short && ref.memory > 0;
        access_plan expected;
        expected.offset = offset;
        expected.count = clipped_count;
        expected.memory_bytes = ref.memory;
        expected.padding_bytes = short_return ? 0 : ref.padding;
        expected.waits_for_ready = dir == direction::read || offset < real;
        expected.returned = short_return ? ref.memory : clipped_count;
        expected.advance = short_return ? 0 : clipped_count;
        if (!(*plan == expected)) {
          if (++mismatches <= 5) FAIL_CHECK("real " << real << " offset " << offset << " count " << count);
        }
      }
    }
  }
  CHECK(cases == 41 * 73 * 81);
  CHECK(einval == 41 * 9 * 81);  // offsets 64..72
  CHECK(mismatches == 0);
}

TEST_CASE("§5.1 exhaustive read plan vs byte reference (real 0..40, BAR 64)") {
  check_against_reference(direction::read, false, resmem_return::documented);
  check_against_reference(direction::read, true, resmem_return::documented);
}
TEST_CASE("§5.2 exhaustive write plan vs byte reference (real 0..40, BAR 64)") {
  check_against_reference(direction::write, false, resmem_return::documented);
  check_against_reference(direction::write, true, resmem_return::documented);
}
TEST_CASE("§5.1 §10 E7 exhaustive resmem upstream short return, read and write") {
  check_against_reference(direction::read, true, resmem_return::upstream_short);
  check_against_reference(direction::write, true, resmem_return::upstream_short);
  // usemem never takes the quirk.
  check_against_reference(direction::read, false, resmem_return::upstream_short);
}

TEST_CASE("§10 E6 reads past memlength: 0xFF padding, clipped at the BAR, EINVAL at the BAR end") {
  const grace::memregion use{0, 0x17'C000'0000, 0x20'0000'0000};
  const std::uint64_t m = use.real_length, b = use.reported_size;
  auto p = plan_access(direction::read, use, m - 1, 2).value();
  CHECK(p.memory_bytes == 1);
  CHECK(p.padding_bytes == 1);
  CHECK(p.returned == 2);
  p = plan_access(direction::read, use, m, 16).value();
  CHECK(p.memory_bytes == 0);
  CHECK(p.padding_bytes == 16);
  p = plan_access(direction::read, use, b - 1, 16).value();
  CHECK(p.count == 1);
  CHECK(p.returned == 1);
  CHECK(p.advance == 1);
  CHECK(plan_access(direction::read, use, b, 1).error() == nvgrace::errc::invalid_argument);
  CHECK(plan_access(direction::write, use, b, 0).error() == nvgrace::errc::invalid_argument);
  CHECK(plan_access(direction::read, use, ~std::uint64_t{0}, ~std::uint64_t{0}).error() ==
        nvgrace::errc::invalid_argument);
  // A huge count from offset 0 clips to the BAR without overflow.
  p = plan_access(direction::write, use, 0, ~std::uint64_t{0}).value();
  CHECK(p.count == b);
  CHECK(p.memory_bytes == m);
  CHECK(p.padding_bytes == b - m);
}

TEST_CASE("§10 E7 a resmem read straddling memlength comes back short, position not advanced") {
  const grace::memregion res{0x4017'C000'0000, 0x52C0'0000, 0x8000'0000};
  const auto quirk =
      plan_access(direction::read, res, 0x52C0'0000 - 4, 16, true, resmem_return::upstream_short).value();
  CHECK(quirk.count == 16);
  CHECK(quirk.memory_bytes == 4);
  CHECK(quirk.padding_bytes == 0);
  CHECK(quirk.returned == 4);
  CHECK(quirk.advance == 0);
  const auto documented = plan_access(direction::read, res, 0x52C0'0000 - 4, 16, true).value();
  CHECK(documented.returned == 16);
  CHECK(documented.padding_bytes == 12);
  CHECK(documented.advance == 16);
  // Wholly past memlength: the normal path even with the quirk.
  const auto past = plan_access(direction::read, res, 0x52C0'0000, 16, true, resmem_return::upstream_short).value();
  CHECK(past.returned == 16);
  CHECK(past.advance == 16);
  CHECK(past.padding_bytes == 16);
}

TEST_CASE("§10 E8 a write into the padding skips the readiness check; a read does not") {
  const grace::memregion r{0, 100, 128};
  CHECK_FALSE(plan_access(direction::write, r, 100, 8).value().waits_for_ready);
  CHECK(plan_access(direction::write, r, 99, 8).value().waits_for_ready);
  CHECK(plan_access(direction::read, r, 100, 8).value().waits_for_ready);
  // Zero-length: a read waits; a write waits only inside memory.
  CHECK(plan_access(direction::read, r, 120, 0).value().waits_for_ready);
  CHECK(plan_access(direction::write, r, 120, 0).value().waits_for_ready == false);
  CHECK(plan_access(direction::write, r, 10, 0).value().waits_for_ready);
  CHECK(plan_access(direction::read, r, 10, 0).value().returned == 0);
}

TEST_CASE("§5.3 the memory part of a resmem access is chunked 8/4/2/1 (copy-path chunk plan)") {
  // A resmem read at 0x...3 of 13 bytes issues 1, 4, 8 (the §5.3 example).
  const grace::memregion res{0, GiB, GiB};
  const auto p = plan_access(direction::read, res, 3, 13, true).value();
  std::vector<unsigned> widths;
  for (const auto c : vfio::chunks(p.offset, p.memory_bytes)) widths.push_back(c.width);
  CHECK(widths == std::vector<unsigned>{1, 4, 8});
  widths.clear();
  for (const auto c : vfio::chunks(0, 20)) widths.push_back(c.width);
  CHECK(widths == std::vector<unsigned>{8, 8, 4});
  widths.clear();
  for (const auto c : vfio::chunks(6, 3)) widths.push_back(c.width);
  CHECK(widths == std::vector<unsigned>{2, 1});
}

}  // namespace
