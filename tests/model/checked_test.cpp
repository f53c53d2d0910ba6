// The result type and the overflow-checked arithmetic at run time (docs/architecture.md, "Errors").
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace {

using namespace nvgrace;
constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();

TEST_CASE("core: result carries nvgrace::errc values equal to errno") {
  CHECK(to_errno(nvgrace::errc::invalid_argument) == EINVAL);
  CHECK(to_errno(nvgrace::errc::value_too_large) == EOVERFLOW);
  CHECK(to_errno(nvgrace::errc::not_enough_memory) == ENOMEM);
  CHECK(to_errno(nvgrace::errc::bad_message) == EBADMSG);
  CHECK(to_errno(nvgrace::errc::no_buffer_space) == ENOBUFS);
  CHECK(errno_name(nvgrace::errc::invalid_argument) == "EINVAL");
  CHECK(errno_name(nvgrace::errc::bad_message) == "EBADMSG");
  CHECK(errno_name(nvgrace::errc{}) == "OK");
  const result<std::uint64_t> bad = nvgrace::errc::io_error;
  CHECK_FALSE(bad);
  CHECK(bad.error() == nvgrace::errc::io_error);
  CHECK(bad.value_or(9) == 9);
  result<std::uint64_t> good = 5u;
  CHECK(good);
  CHECK(good.error() == nvgrace::errc{});
  *good += 1;
  CHECK(good.value() == 6);
  const status ok{};
  CHECK(ok.has_value());
  CHECK(status{nvgrace::errc::timed_out}.error() == nvgrace::errc::timed_out);
  CHECK(std::is_same_v<decltype(checked_add(1, 2)), result<std::uint64_t>>);
}

TEST_CASE("core: checked add/sub/mul report EOVERFLOW exactly at the edge") {
  CHECK(checked_add(max - 7, 7).value() == max);
  CHECK(checked_add(max - 7, 8).error() == nvgrace::errc::value_too_large);
  CHECK(checked_sub(0, 0).value() == 0);
  CHECK(checked_sub(0, 1).error() == nvgrace::errc::value_too_large);
  CHECK(checked_sub(max, max).value() == 0);
  CHECK(checked_mul(0xFFFF'FFFF, 0x1'0000'0001).value() == max);
  CHECK(checked_mul(0x1'0000'0000, 0x1'0000'0000).error() == nvgrace::errc::value_too_large);
  CHECK(checked_mul(max, 1).value() == max);
  CHECK(checked_mul(max, 2).error() == nvgrace::errc::value_too_large);
}

TEST_CASE("core: next_pow2 over every bit width, 0 → EINVAL, > 2^63 → EOVERFLOW") {
  CHECK(next_pow2(0).error() == nvgrace::errc::invalid_argument);
  for (unsigned bit = 0; bit < 64; ++bit) {
    const std::uint64_t p = std::uint64_t{1} << bit;
    CHECK(next_pow2(p).value() == p);
    if (bit < 63) CHECK(next_pow2(p + 1).value() == (bit == 0 ? 2 : p << 1));
  }
  CHECK(next_pow2((std::uint64_t{1} << 63) + 1).error() == nvgrace::errc::value_too_large);
  CHECK(next_pow2(max).error() == nvgrace::errc::value_too_large);
  CHECK(align_down(0x17'DFFF'FFFF, 512 * MiB) == 0x17'C000'0000);
  CHECK(is_aligned(0x4000'0000, 4096));
  CHECK_FALSE(is_aligned(0x4000'0001, 4096));
}

TEST_CASE("core: little-endian loads and stores") {
  std::array<std::byte, 10> bytes{};
  store_le<std::uint64_t>(bytes, 1, 0x0102'0304'0506'0708);
  CHECK(bytes[0] == std::byte{0});
  CHECK(bytes[1] == std::byte{0x08});
  CHECK(bytes[8] == std::byte{0x01});
  CHECK(bytes[9] == std::byte{0});
  CHECK(load_le<std::uint64_t>(bytes, 1) == 0x0102'0304'0506'0708);
  CHECK(load_le<std::uint16_t>(bytes, 1) == 0x0708);
  CHECK(load_le<std::uint32_t>(bytes, 5) == 0x0102'0304);
}

}  // namespace
