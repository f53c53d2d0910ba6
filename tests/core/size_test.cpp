// The one size syntax (nvgrace/core/size.hpp): compile-time cases, every
// rejection with its reason, an exhaustive comparison with a second,
// independently written parser over every short string of a small alphabet,
// random long inputs near the 64-bit edge, and the format_size round trip.
#include <nvgrace/core/size.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using nvgrace::errc;
using nvgrace::format_size;
using nvgrace::GiB;
using nvgrace::KiB;
using nvgrace::MiB;
using nvgrace::parse_size;
using nvgrace::TiB;

constexpr std::uint64_t max = ~std::uint64_t{0};

// ---- compile time ----------------------------------------------------------------------
static_assert(parse_size("0").value() == 0);
static_assert(parse_size("4096").value() == 4096);
static_assert(parse_size("0x1000").value() == 4096);
static_assert(parse_size("4K").value() == 4096 && parse_size("4KiB").value() == 4096);
static_assert(parse_size("4 KiB").value() == 4096 && parse_size("4 k").value() == 4096);
static_assert(parse_size("96G").value() == 96 * GiB && parse_size("96GiB").value() == 96 * GiB);
static_assert(parse_size("96gib").value() == 96 * GiB && parse_size("96GIB").value() == 96 * GiB);
static_assert(parse_size("1T").value() == TiB && parse_size("1TiB").value() == TiB);
static_assert(parse_size("1536M").value() == 1536 * MiB);
static_assert(parse_size("2G+12345").value() == 2 * GiB + 12345);
static_assert(parse_size("0x400000000000+1G").value() == 0x4000'0000'0000 + GiB);
static_assert(parse_size("1G+1G+1G").value() == 3 * GiB);
static_assert(parse_size("1.5G").value() == GiB + 512 * MiB);
static_assert(parse_size("0.5K").value() == 512);
static_assert(parse_size("18446744073709551615").value() == max);
static_assert(parse_size("0xffffffffffffffff").value() == max);
static_assert(parse_size("16777215T+1099511627775").value() == max);
static_assert(parse_size("18446744073709551615+0").value() == max);
// Errors, with their errno and the place they were found.
static_assert(parse_size("").error == errc::invalid_argument);
static_assert(parse_size("18446744073709551616").error == errc::value_too_large);
static_assert(parse_size("18446744073709551615+1").error == errc::value_too_large);
static_assert(parse_size("16M+16777216T").error == errc::value_too_large);
static_assert(parse_size("0x10000000000000000").error == errc::value_too_large);
static_assert(parse_size("4GB").error == errc::invalid_argument);
static_assert(parse_size("2G+").position == 3);
static_assert(parse_size("2G+x").position == 3);
static_assert(parse_size("12XB").position == 2);
// format_size writes what parse_size reads.
static_assert(format_size(0).view() == "0 B");
static_assert(format_size(GiB + 256 * MiB).view() == "1.25 GiB");
static_assert(format_size(4097).view() == "4097 B");
static_assert(format_size(max).view() == "18446744073709551615 B");
static_assert(parse_size(format_size(96 * GiB).view()).value() == 96 * GiB);
static_assert(parse_size(format_size(max).view()).value() == max);

// ---- run time: accepted and rejected forms -------------------------------------------------

std::uint64_t parsed(std::string_view text) {
  const auto r = parse_size(text);
  INFO(text);
  REQUIRE(r.ok());
  return r.bytes;
}
void rejected(std::string_view text, errc error, std::string_view reason) {
  const auto r = parse_size(text);
  INFO(text);
  CHECK(r.error == error);
  CHECK(r.reason == reason);
  CHECK(r.bytes == 0);
}

TEST_CASE("size: bytes, hex, binary units short and long, fractions, sums") {
  CHECK(parsed("007") == 7);
  CHECK(parsed("0X1800000000") == 96 * GiB);
  CHECK(parsed("0xffffFFFFffffFFFF") == max);
  CHECK(parsed("0x0000000000000000001") == 1);  // leading zeros do not count towards 64 bits
  CHECK(parsed("4096B") == 4096);
  CHECK(parsed("4096 B") == 4096);
  CHECK(parsed("4096b") == 4096);
  for (const auto& [unit, value] : {std::pair{"K", KiB}, {"M", MiB}, {"G", GiB}, {"T", TiB}}) {
    const std::string u = unit;
    const std::string lower(1, static_cast<char>(u[0] - 'A' + 'a'));
    CHECK(parsed("3" + u) == 3 * value);
    CHECK(parsed("3" + lower) == 3 * value);
    CHECK(parsed("3" + u + "iB") == 3 * value);
    CHECK(parsed("3 " + u + "iB") == 3 * value);
    CHECK(parsed("3" + lower + "ib") == 3 * value);
  }
  CHECK(parsed("1.25GiB") == GiB + 256 * MiB);
  CHECK(parsed("1.000G") == GiB);
  CHECK(parsed("1.0") == 1);                                             // a fraction of zero needs no unit
  CHECK(parsed("0.0009765625K") == 1);                                   // 2^-10 KiB
  CHECK(parsed("16777215.99999904632568359375TiB") == max - (MiB - 1));  // (2^24 - 2^-20) TiB
  CHECK(parsed("0.0000000000009094947017729282379150390625T") == 1);     // 2^-40 TiB: 40 digits
  CHECK(parsed("2G+12345") == 2 * GiB + 12345);
  CHECK(parsed("1 G+1 K") == GiB + KiB);
  CHECK(parsed("0x10+0x10+16") == 48);
  CHECK(parsed("96G+300M") == 96 * GiB + 300 * MiB);
}

TEST_CASE("size: every rejection names its rule and errno") {
  constexpr auto einval = errc::invalid_argument;
  constexpr auto eoverflow = errc::value_too_large;
  constexpr std::string_view unknown = "unknown unit (expected B, K, KiB, M, MiB, G, GiB, T or TiB)";
  constexpr std::string_view decimal = "decimal units (KB, MB, GB, TB) are ambiguous: write K or KiB (binary)";
  constexpr std::string_view hex_only = "a 0x size takes hex digits only (no fraction, no unit)";
  rejected("", einval, "empty size");
  rejected("0x", einval, "0x needs hex digits");
  rejected("0x1g", einval, hex_only);
  rejected("0x10GiB", einval, hex_only);
  rejected("0x1.8", einval, hex_only);
  rejected("0x10000000000000000", eoverflow, "size does not fit in 64 bits");
  rejected("18446744073709551616", eoverflow, "size does not fit in 64 bits");
  rejected("16777216TiB", eoverflow, "size does not fit in 64 bits");
  rejected("16777216T", eoverflow, "size does not fit in 64 bits");
  rejected("18446744073709551615+1", eoverflow, "size does not fit in 64 bits");
  rejected("16777215.99999999TiB", einval, "not a whole number of bytes");
  rejected(" 96GiB", einval, "a size starts with a digit");
  rejected("-1", einval, "a size starts with a digit");
  rejected("+1", einval, "empty size");
  rejected(".5GiB", einval, "a size starts with a digit");
  rejected("2G+", einval, "a '+' must be followed by a size");
  rejected("2G++1", einval, "a '+' must be followed by a size");
  rejected("2G + 1", einval, unknown);  // the first term is "2G " (no blanks around +)
  rejected("96GiB ", einval, unknown);
  rejected("96  GiB", einval, unknown);
  rejected("96 ", einval, "a space must be followed by a unit");
  rejected("96GB", einval, decimal);
  rejected("96kb", einval, decimal);
  rejected("96Gi", einval, unknown);
  rejected("96P", einval, unknown);
  rejected("96PiB", einval, unknown);
  rejected("1_000", einval, unknown);
  rejected("1,000", einval, unknown);
  rejected("1.2.3", einval, unknown);
  rejected("1.", einval, "a '.' needs digits after it");
  rejected("1.GiB", einval, "a '.' needs digits after it");
  rejected("1.5", einval, "not a whole number of bytes");
  rejected("1.5B", einval, "not a whole number of bytes");
  rejected("0.1KiB", einval, "not a whole number of bytes");
  rejected("1.00000000000000000001GiB", einval, "not a whole number of bytes");
  rejected("0.00000000000045474735088646411895751953125TiB", einval, "not a whole number of bytes");  // half a byte
  rejected("16777215.9999990463256836TiB", einval, "not a whole number of bytes");
}

// ---- a second parser, written differently, for the exhaustive comparison ---------------------
//
// It works on unsigned __int128 and treats a term as the rational number
// (digits) / 10^k * 2^shift, whole iff 10^k divides digits * 2^shift. It is
// only valid for inputs whose digit runs are short (at most 18 digits before
// and 18 after the point), which is what the generators below produce.
enum class verdict { ok, einval, eoverflow };
struct reference_result {
  verdict v;
  std::uint64_t value;
};

reference_result reference(const std::string& text) {
  __extension__ typedef unsigned __int128 u128;
  const u128 limit = max;
  const auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  const auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  std::vector<std::string> terms{""};
  for (const char c : text) {
    if (c == '+')
      terms.emplace_back();
    else
      terms.back() += c;
  }
  u128 total = 0;
  for (const auto& t : terms) {
    if (t.empty()) return {verdict::einval, 0};
    u128 value = 0;
    if (t.size() >= 2 && t[0] == '0' && lower(t[1]) == 'x') {
      if (t.size() == 2) return {verdict::einval, 0};
      std::string digits = t.substr(2);
      for (const char c : digits)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return {verdict::einval, 0};
      while (digits.size() > 1 && digits[0] == '0') digits.erase(0, 1);
      if (digits.size() > 16) return {verdict::eoverflow, 0};
      value = std::stoull(digits, nullptr, 16);
    } else {
      std::size_t i = 0;
      std::string whole, frac;
      while (i < t.size() && digit(t[i])) whole += t[i++];
      if (whole.empty()) return {verdict::einval, 0};
      if (i < t.size() && t[i] == '.') {
        ++i;
        while (i < t.size() && digit(t[i])) frac += t[i++];
        if (frac.empty()) return {verdict::einval, 0};
      }
      std::string unit = t.substr(i);
      if (!unit.empty() && unit[0] == ' ') {
        unit.erase(0, 1);
        if (unit.empty()) return {verdict::einval, 0};
      }
      std::string u;
      for (const char c : unit) u += lower(c);
      int shift = -1;
      for (const auto& [name, s] : std::vector<std::pair<std::string, int>>{{"", 0},
                                                                            {"b", 0},
                                                                            {"k", 10},
                                                                            {"kib", 10},
                                                                            {"m", 20},
                                                                            {"mib", 20},
                                                                            {"g", 30},
                                                                            {"gib", 30},
                                                                            {"t", 40},
                                                                            {"tib", 40}})
        if (u == name) shift = s;
      if (shift < 0) return {verdict::einval, 0};
      // The syntax is right; now the value: whole << shift, then the fraction.
      while (whole.size() > 1 && whole[0] == '0') whole.erase(0, 1);
      if (whole.size() > 20) return {verdict::eoverflow, 0};
      u128 w = 0;
      for (const char c : whole) w = w * 10 + static_cast<unsigned>(c - '0');
      if (w > limit || (w << shift) > limit) return {verdict::eoverflow, 0};
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
      u128 part = 0;
      if (!frac.empty()) {
        REQUIRE(frac.size() <= 26);  // the generators stay inside what u128 can check
        u128 f = 0, scale = 1;
        for (const char c : frac) {
          f = f * 10 + static_cast<unsigned>(c - '0');
          scale *= 10;
        }
        if ((f << shift) % scale != 0) return {verdict::einval, 0};
        part = (f << shift) / scale;
      }
      value = (w << shift) + part;
    }
    total += value;
    if (value > limit || total > limit) return {verdict::eoverflow, 0};
  }
  return {verdict::ok, static_cast<std::uint64_t>(total)};
}

verdict verdict_of(const nvgrace::size_parse& r) {
  if (r.ok()) return verdict::ok;
  return r.error == errc::value_too_large ? verdict::eoverflow : verdict::einval;
}

void compare(const std::string& text) {
  const auto ours = parse_size(text);
  const auto theirs = reference(text);
  if (verdict_of(ours) != theirs.v || ours.bytes != theirs.value) {
    INFO("input '" << text << "': parse_size says " << static_cast<int>(verdict_of(ours)) << " " << ours.bytes << " ("
                   << ours.reason << "), the reference " << static_cast<int>(theirs.v) << " " << theirs.value);
    CHECK(false);
  }
}

TEST_CASE("size: every string of up to 5 characters over a small alphabet agrees with the reference parser") {
  // Digits, the hex prefix and a hex letter, the point, '+', the space, and unit letters.
  const std::string alphabet = "0159x.+ KMiBgbG";
  std::size_t count = 0;
  std::string text;
  const auto visit = [&](auto&& self, std::size_t length) -> void {
    compare(text);
    ++count;
    if (length == 5) return;
    for (const char c : alphabet) {
      text.push_back(c);
      self(self, length + 1);
      text.pop_back();
    }
  };
  visit(visit, 0);
  CHECK(count == 813616);  // 1 + 15 + 15^2 + ... + 15^5
}

TEST_CASE("size: random sums near the 64-bit edge agree with the reference parser") {
  std::mt19937_64 random(20260701);
  const std::vector<std::string> units{"",    "B", "K",   "KiB", "M",    "MiB", "G",
                                       "GiB", "T", "TiB", " G",  " kib", "GB",  "X"};
  for (int round = 0; round < 200000; ++round) {
    std::string text;
    const int terms = 1 + static_cast<int>(random() % 3);
    for (int t = 0; t < terms; ++t) {
      if (t > 0) text += '+';
      switch (random() % 4) {
        case 0: {  // hex, sometimes past 64 bits
          const std::uint64_t v = random() >> (random() % 64);
          char buffer[24];
          std::snprintf(buffer, sizeof buffer, "0x%llx", static_cast<unsigned long long>(v));
          text += buffer;
          if (random() % 8 == 0) text += "0";
          break;
        }
        case 1:  // a decimal near 2^64
          text += std::to_string(max - random() % 1000);
          if (random() % 4 == 0) text += std::to_string(random() % 10);
          break;
        default: {  // a decimal with a fraction and a unit
          text += std::to_string(random() >> (24 + random() % 40));
          if (random() % 2 == 0) {
            text += '.';
            text += std::to_string(random() % 1'000'000'000'000);
          }
          text += units[random() % units.size()];
        }
      }
    }
    compare(text);
  }
}

TEST_CASE("size: format_size round-trips every byte count tried") {
  std::mt19937_64 random(7);
  std::vector<std::uint64_t> values{0, 1, 1023, 1024, 1025, max, max - 1, TiB, TiB - 1, 96 * GiB + 300 * MiB};
  for (int shift = 0; shift < 64; ++shift) {
    const std::uint64_t p = std::uint64_t{1} << shift;
    values.insert(values.end(), {p, p - 1, p + 1, p + p / 2, p + p / 4, p + p / 8 + p / 16});
  }
  for (int i = 0; i < 200000; ++i) values.push_back(random() >> (random() % 64));
  for (const auto v : values) {
    const auto text = format_size(v);
    const auto back = parse_size(text.view());
    INFO(v << " -> '" << text.view() << "'");
    REQUIRE(back.ok());
    CHECK(back.bytes == v);
  }
  CHECK(format_size(4608).view() == "4.5 KiB");
  CHECK(format_size(512 * MiB).view() == "512 MiB");
  CHECK(format_size(96 * GiB + 300 * MiB).view() == "98604 MiB");
  CHECK(format_size(TiB).view() == "1 TiB");
  CHECK(format_size(GiB + 1).view() == "1073741825 B");
}

TEST_CASE("size: decimal and hex spellings of every power-of-two neighbour parse back") {
  for (int shift = 0; shift < 64; ++shift) {
    for (const std::uint64_t v : {std::uint64_t{1} << shift, (std::uint64_t{1} << shift) - 1}) {
      char hex[24];
      std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(v));
      CHECK(parsed(std::to_string(v)) == v);
      CHECK(parsed(hex) == v);
      CHECK(parsed(std::to_string(v) + "+0x0") == v);
    }
  }
}

}  // namespace
