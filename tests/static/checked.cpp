// Compile-time checks of the result type and the overflow-checked arithmetic
// (docs/architecture.md, "Errors"): every case is a static_assert.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>

#include <cstdint>
#include <limits>
#include <type_traits>

namespace {

using nvgrace::checked_add;
using nvgrace::checked_mul;
using nvgrace::checked_sub;
using nvgrace::next_pow2;
using nvgrace::result;
using nvgrace::status;

constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint64_t top = std::uint64_t{1} << 63;

// result<T> is a literal type that carries errno-style codes.
static_assert(std::is_trivially_copyable_v<result<std::uint64_t>>);
static_assert(result<int>(7).has_value() && *result<int>(7) == 7);
static_assert(!result<int>(nvgrace::errc::invalid_argument).has_value());
static_assert(result<int>(nvgrace::errc::invalid_argument).error() == nvgrace::errc::invalid_argument);
static_assert(result<int>(nvgrace::errc::invalid_argument).value_or(3) == 3);
static_assert(result<int>(4) == result<int>(4) && !(result<int>(4) == result<int>(5)));
static_assert(!(result<int>(4) == result<int>(nvgrace::errc::invalid_argument)));
static_assert(status{}.has_value() && !status{nvgrace::errc::io_error}.has_value());
static_assert(nvgrace::to_errno(nvgrace::errc::invalid_argument) == 22);
static_assert(nvgrace::to_errno(nvgrace::errc::value_too_large) == 75);
static_assert(nvgrace::errno_name(nvgrace::errc::value_too_large) == "EOVERFLOW");
static_assert(nvgrace::errno_name(nvgrace::errc::not_enough_memory) == "ENOMEM");

// add / sub / mul: EOVERFLOW exactly at the edge.
static_assert(*checked_add(max - 1, 1) == max);
static_assert(checked_add(max, 1).error() == nvgrace::errc::value_too_large);
static_assert(checked_add(1, max).error() == nvgrace::errc::value_too_large);
static_assert(*checked_sub(5, 5) == 0);
static_assert(checked_sub(4, 5).error() == nvgrace::errc::value_too_large);
static_assert(*checked_mul(0, max) == 0 && *checked_mul(max, 0) == 0);
static_assert(*checked_mul(std::uint64_t{1} << 32, (std::uint64_t{1} << 32) - 1) ==
              max - ((std::uint64_t{1} << 32) - 1));
static_assert(checked_mul(std::uint64_t{1} << 32, std::uint64_t{1} << 32).error() == nvgrace::errc::value_too_large);
static_assert(checked_mul(3, max / 2).error() == nvgrace::errc::value_too_large);

// range_within never overflows.
static_assert(nvgrace::range_within(0, 64, 64) && !nvgrace::range_within(1, 64, 64));
static_assert(!nvgrace::range_within(max, 2, max) && nvgrace::range_within(max, 0, max));

// next_pow2: 0 → EINVAL, above 2^63 → EOVERFLOW, every power of two maps to itself.
static_assert(next_pow2(0).error() == nvgrace::errc::invalid_argument);
static_assert(*next_pow2(1) == 1 && *next_pow2(3) == 4 && *next_pow2(5) == 8);
static_assert(*next_pow2(top) == top);
static_assert(next_pow2(top + 1).error() == nvgrace::errc::value_too_large);
static_assert(next_pow2(max).error() == nvgrace::errc::value_too_large);
constexpr bool every_power_maps_to_itself_and_neighbours_round_up() {
  for (unsigned bit = 0; bit < 64; ++bit) {
    const std::uint64_t p = std::uint64_t{1} << bit;
    if (*next_pow2(p) != p) return false;
    if (bit >= 1 && *next_pow2(p - 1) != (bit == 1 ? 1 : p)) return false;
    if (bit >= 1 && bit < 63 && *next_pow2(p + 1) != p * 2) return false;
  }
  return true;
}
static_assert(every_power_maps_to_itself_and_neighbours_round_up());

}  // namespace
