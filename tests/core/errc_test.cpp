// nvgrace::errc, result<T> and the std::error_code bridge.
#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/error_code.hpp>
#include <nvgrace/core/result.hpp>

#include <doctest/doctest.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

using nvgrace::errc;
using nvgrace::result;

namespace {

/// A value type with no default constructor, which result<T> must still hold.
struct no_default {
  explicit constexpr no_default(int v) : value(v) {}
  int value;
  friend constexpr bool operator==(no_default, no_default) = default;
};

constexpr result<no_default> make(bool ok) { return ok ? result<no_default>(no_default{3}) : errc::bad_message; }
static_assert(make(true)->value == 3);
static_assert(make(false).error() == errc::bad_message);
static_assert(make(false) == errc::bad_message);
// result<T>'s == compares the values through T's own ==, and errors by errno.
static_assert(make(true) == result<no_default>(no_default{3}));
static_assert(make(true) != result<no_default>(no_default{4}));
static_assert(make(false) == make(false) && make(false) != make(true));
static_assert(!make(false).has_value());
static_assert(make(true).value_or(no_default{9}).value == 3 && make(false).value_or(no_default{9}).value == 9);
static_assert(make(false).message() == "Bad message");
static_assert(make(true).message() == "Success");

}  // namespace

TEST_CASE("errno names and messages: every Linux errno, 0 and unknown values") {
  static_assert(nvgrace::errno_name(errc::invalid_argument) == "EINVAL");
  static_assert(nvgrace::errno_name(errc::stream_timeout) == "ETIME");
  static_assert(nvgrace::errno_name(errc{}) == "OK");
  static_assert(nvgrace::errno_message(errc::value_too_large) == "Value too large for defined data type");
  CHECK(nvgrace::errno_name(static_cast<errc>(EHWPOISON)) == "EHWPOISON");
  CHECK(nvgrace::errno_name(static_cast<errc>(41)) == "E?");  // unused on Linux
  CHECK(nvgrace::errno_name(static_cast<errc>(-1)) == "E?");
  CHECK(nvgrace::errno_name(static_cast<errc>(134)) == "E?");
  // Every name the table gives is the C library's, and every message strerror's.
  int named = 0;
  for (int e = 1; e <= 133; ++e) {
    const auto name = nvgrace::errno_name(static_cast<errc>(e));
    if (name == "E?") continue;
    ++named;
    CHECK_MESSAGE(nvgrace::errno_message(static_cast<errc>(e)) == std::string_view(std::strerror(e)), e);
    const char* c_name = ::strerrorname_np(e);
    REQUIRE(c_name != nullptr);
    // glibc spells two aliases differently; both are the same number.
    if (name != "EDEADLK" && name != "EOPNOTSUPP") CHECK_MESSAGE(name == std::string_view(c_name), e);
    CHECK(name.data()[name.size()] == '\0');  // usable as a C string
  }
  CHECK(named == 131);
}

TEST_CASE("result<T> holds move-only and non-default-constructible values") {
  result<std::unique_ptr<int>> owned = std::make_unique<int>(5);
  REQUIRE(owned);
  CHECK(**owned == 5);
  result<std::unique_ptr<int>> moved = std::move(owned);
  CHECK(**moved == 5);
  result<std::unique_ptr<int>> failed = errc::not_enough_memory;
  moved = std::move(failed);
  CHECK(moved.error() == errc::not_enough_memory);
  result<std::string> text = std::string(100, 'x');
  result<std::string> copy = text;
  CHECK(copy->size() == 100);
  copy = result<std::string>(errc::io_error);
  CHECK(copy == errc::io_error);
  copy = text;
  CHECK(*copy == *text);
}

TEST_CASE("the bridge: std::errc, std::error_code and std::error_condition") {
  static_assert(nvgrace::to_std_errc(errc::invalid_argument) == std::errc::invalid_argument);
  static_assert(nvgrace::from_std_errc(std::errc::timed_out) == errc::timed_out);
  static_assert(errc::protocol_error == std::errc::protocol_error);
  const std::error_code ec = errc::no_such_device;
  CHECK(ec == std::errc::no_such_device);
  CHECK(ec.category() == std::generic_category());
  CHECK(ec.message() == std::string(nvgrace::errno_message(errc::no_such_device)));
  const result<int> r = errc::bad_address;
  CHECK(r.error_code() == std::errc::bad_address);
  CHECK(r.error_code().value() == EFAULT);
  const nvgrace::status ok;
  CHECK_FALSE(ok.error_code());
  CHECK(nvgrace::status(errc::io_error).error_code() == std::errc::io_error);
}
