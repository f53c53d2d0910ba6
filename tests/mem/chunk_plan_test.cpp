// §5.3 the vfio chunk plan: widths, order and coverage.
#include <nvgrace/vfio/chunk_plan.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ranges>

namespace {

using nvgrace::vfio::chunk;
using nvgrace::vfio::chunks;
using nvgrace::vfio::next_chunk_width;

/// True when chunks(offset, count, max_width) is exactly `expected` widths,
/// contiguous from `offset`.
template <std::size_t N>
constexpr bool plan_is(std::uint64_t offset, std::uint64_t count, const unsigned (&expected)[N],
                       unsigned max_width = 8) {
  std::size_t i = 0;
  std::uint64_t at = offset;
  for (const chunk c : chunks(offset, count, max_width)) {
    if (i == N || c.offset != at || c.width != expected[i]) return false;
    at += c.width;
    ++i;
  }
  return i == N;
}

constexpr bool plan_is_empty(std::uint64_t offset, unsigned max_width = 8) {
  const auto range = chunks(offset, 0, max_width);
  return range.begin() == range.end();
}

// The three examples of §5.3.
static_assert(plan_is(3, 13, {1, 4, 8}));
static_assert(plan_is(6, 3, {2, 1}));
static_assert(plan_is(0, 20, {8, 8, 4}));
// A max width of 4 (ROM, VGA in the core) never issues 8-byte accesses.
static_assert(plan_is(0, 20, {4, 4, 4, 4, 4}, 4));
static_assert(plan_is(1, 15, {1, 2, 4, 8}));
static_assert(plan_is(7, 2, {1, 1}));
static_assert(plan_is(5, 1, {1}));
static_assert(plan_is_empty(0));
static_assert(plan_is_empty(13));
static_assert(next_chunk_width(0, 8) == 8);
static_assert(next_chunk_width(0, 7) == 4);
static_assert(next_chunk_width(4, 100) == 4);
static_assert(next_chunk_width(0, 100, 2) == 2);
static_assert(next_chunk_width(0, 100, 1) == 1);
static_assert(next_chunk_width(2, 1) == 1);
// The top of the offset space: a plan may end at the last offset.
static_assert(plan_is(std::numeric_limits<std::uint64_t>::max() - 16, 16, {1, 8, 4, 2, 1}));

static_assert(std::forward_iterator<nvgrace::vfio::chunk_iterator>);
static_assert(std::ranges::range<nvgrace::vfio::chunk_range>);

/// The §5.3 rule written out independently: the first of 8, 4, 2 that fits
/// the remaining length, divides the offset and is allowed; else 1.
unsigned reference_width(std::uint64_t offset, std::uint64_t remaining, unsigned max_width) {
  for (const unsigned width : {8u, 4u, 2u})
    if (max_width >= width && remaining >= width && offset % width == 0) return width;
  return 1;
}

}  // namespace

TEST_CASE("§5.3 next_chunk_width matches the rule for every small offset, length and max width") {
  int checked = 0;
  for (const unsigned max_width : {1u, 2u, 4u, 8u, 16u})
    for (std::uint64_t offset = 0; offset < 64; ++offset)
      for (std::uint64_t remaining = 1; remaining < 80; ++remaining) {
        const std::uint64_t high = offset + (std::uint64_t{1} << 40);  // only the low bits may matter
        CHECK(next_chunk_width(offset, remaining, max_width) == reference_width(offset, remaining, max_width));
        CHECK(next_chunk_width(high, remaining, max_width) == reference_width(high, remaining, max_width));
        checked += 2;
      }
  CHECK(checked == 5 * 64 * 79 * 2);
}

TEST_CASE("§5.3 chunks() covers the transfer exactly, in order, with aligned accesses of the rule's widths") {
  for (const unsigned max_width : {1u, 2u, 4u, 8u})
    for (std::uint64_t offset = 0; offset < 64; ++offset)
      for (std::uint64_t count = 0; count <= 80; ++count) {
        CAPTURE(max_width);
        CAPTURE(offset);
        CAPTURE(count);
        std::uint64_t at = offset;
        std::uint64_t steps = 0;
        bool ok = true;
        for (const chunk c : chunks(offset, count, max_width)) {
          ok = ok && c.offset == at && c.width == reference_width(at, offset + count - at, max_width) &&
               c.offset % c.width == 0 && c.width <= max_width;
          at += c.width;
          ++steps;
        }
        CHECK(ok);
        CHECK(at == offset + count);
        // At most 3 narrow steps before and after the 8-byte body.
        if (max_width == 8) CHECK(steps <= count / 8 + 6);
      }
}

TEST_CASE("§5.3 chunk_iterator post-increment and equality") {
  auto range = chunks(3, 13);
  auto it = range.begin();
  const auto before = it++;
  CHECK(*before == chunk{3, 1});
  CHECK(*it == chunk{4, 4});
  CHECK(before != it);
  ++it;
  CHECK(*it == chunk{8, 8});
  ++it;
  CHECK(it == nvgrace::vfio::chunk_sentinel{});
}
