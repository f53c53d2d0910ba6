// nvgrace-layout: the SIZE grammar, argument parsing, error lines and the
// text/JSON renderings (§2.3 layouts, §3 probe, §4 reply bytes).
#include "layout_tool.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace nvgrace;
using namespace nvgrace::layout_tool;

std::uint64_t parsed(std::string_view text) {
  const auto r = parse_size(text);
  INFO(text);
  REQUIRE(r.ok());
  return r.bytes;
}
void rejected(std::string_view text, nvgrace::errc error, std::string_view reason) {
  const auto r = parse_size(text);
  INFO(text);
  CHECK(r.error == error);
  CHECK(r.reason == reason);
}

struct run_result {
  int status;
  std::string out, err;
};
run_result run_tool(std::vector<std::string_view> args) {
  run_result r{};
  r.status = run(args, r.out, r.err);
  return r;
}
bool contains(const std::string& haystack, std::string_view needle) { return haystack.find(needle) != std::string::npos; }

TEST_CASE("layout tool: SIZE accepts bytes, hex, and decimal with binary units") {
  CHECK(parsed("0") == 0);
  CHECK(parsed("103079215104") == 96 * GiB);
  CHECK(parsed("007") == 7);
  CHECK(parsed("18446744073709551615") == ~std::uint64_t{0});
  CHECK(parsed("0x1800000000") == 96 * GiB);
  CHECK(parsed("0X1800000000") == 96 * GiB);
  CHECK(parsed("0xffffFFFFffffFFFF") == ~std::uint64_t{0});
  CHECK(parsed("0x0000000000000000001") == 1);  // leading zeros do not count towards 64 bits
  CHECK(parsed("4096B") == 4096);
  CHECK(parsed("4096 B") == 4096);
  CHECK(parsed("4KiB") == 4096);
  CHECK(parsed("512MiB") == 512 * MiB);
  CHECK(parsed("96GiB") == 96 * GiB);
  CHECK(parsed("96 GiB") == 96 * GiB);
  CHECK(parsed("96gib") == 96 * GiB);
  CHECK(parsed("96GIB") == 96 * GiB);
  CHECK(parsed("1TiB") == TiB);
  CHECK(parsed("1.25GiB") == GiB + 256 * MiB);
  CHECK(parsed("1.5 GiB") == GiB + 512 * MiB);
  CHECK(parsed("0.5GiB") == 512 * MiB);
  CHECK(parsed("0.5KiB") == 512);
  CHECK(parsed("1.000GiB") == GiB);
  CHECK(parsed("0.0009765625KiB") == 1);  // 2^-10 KiB
  // (2^24 - 2^-20) TiB = 2^64 - 2^20 bytes: a 20-digit exact fraction.
  CHECK(parsed("16777215.99999904632568359375TiB") == ~std::uint64_t{0} - ((std::uint64_t{1} << 20) - 1));
  // 2^-40 TiB = 1 byte: the longest exact fraction, 40 digits.
  CHECK(parsed("0.0000000000009094947017729282379150390625TiB") == 1);
}

TEST_CASE("layout tool: SIZE rejections name the rule and errno") {
  rejected("", nvgrace::errc::invalid_argument, "empty size");
  rejected("0x", nvgrace::errc::invalid_argument, "a 0x size needs hex digits");
  rejected("0x1g", nvgrace::errc::invalid_argument, "a 0x size takes hex digits only (no fraction, no unit)");
  rejected("0x10GiB", nvgrace::errc::invalid_argument, "a 0x size takes hex digits only (no fraction, no unit)");
  rejected("0x1.8", nvgrace::errc::invalid_argument, "a 0x size takes hex digits only (no fraction, no unit)");
  rejected("0x10000000000000000", nvgrace::errc::value_too_large, "size does not fit in 64 bits");
  rejected("18446744073709551616", nvgrace::errc::value_too_large, "size does not fit in 64 bits");
  rejected("16777216TiB", nvgrace::errc::value_too_large, "size does not fit in 64 bits");
  rejected("16777215.99999999TiB", nvgrace::errc::invalid_argument, "not a whole number of bytes");
  rejected(" 96GiB", nvgrace::errc::invalid_argument, "a size starts with a digit");
  rejected("-1", nvgrace::errc::invalid_argument, "a size starts with a digit");
  rejected("+1", nvgrace::errc::invalid_argument, "a size starts with a digit");
  rejected(".5GiB", nvgrace::errc::invalid_argument, "a size starts with a digit");
  rejected("96GiB ", nvgrace::errc::invalid_argument, "unknown unit (expected B, KiB, MiB, GiB or TiB)");
  rejected("96  GiB", nvgrace::errc::invalid_argument, "unknown unit (expected B, KiB, MiB, GiB or TiB)");
  rejected("96 ", nvgrace::errc::invalid_argument, "a space must be followed by a unit");
  rejected("96GB", nvgrace::errc::invalid_argument, "unknown unit (expected B, KiB, MiB, GiB or TiB)");
  rejected("96G", nvgrace::errc::invalid_argument, "unknown unit (expected B, KiB, MiB, GiB or TiB)");
  rejected("1_000", nvgrace::errc::invalid_argument, "unknown unit (expected B, KiB, MiB, GiB or TiB)");
  rejected("1.2.3", nvgrace::errc::invalid_argument, "unknown unit (expected B, KiB, MiB, GiB or TiB)");
  rejected("1.", nvgrace::errc::invalid_argument, "a '.' needs digits after it");
  rejected("1.GiB", nvgrace::errc::invalid_argument, "a '.' needs digits after it");
  rejected("1.5", nvgrace::errc::invalid_argument, "not a whole number of bytes");
  rejected("1.5B", nvgrace::errc::invalid_argument, "not a whole number of bytes");
  rejected("0.1KiB", nvgrace::errc::invalid_argument, "not a whole number of bytes");
  rejected("1.00000000000000000001GiB", nvgrace::errc::invalid_argument, "not a whole number of bytes");
  rejected("0.00000000000045474735088646411895751953125TiB", nvgrace::errc::invalid_argument,
           "not a whole number of bytes");  // half a byte, 41 digits
  rejected("16777215.9999990463256836TiB", nvgrace::errc::invalid_argument, "not a whole number of bytes");
}

TEST_CASE("layout tool: human sizes") {
  CHECK(human_size(0) == "0 B");
  CHECK(human_size(4097) == "4097 B");  // 4.0009765625 KiB needs more than 4 decimals
  CHECK(human_size(4608) == "4.5 KiB");
  CHECK(human_size(4095) == "4095 B");
  CHECK(human_size(GiB + 256 * MiB) == "1.25 GiB");
  CHECK(human_size(512 * MiB) == "512 MiB");
  CHECK(human_size(96 * GiB + 300 * MiB) == "98604 MiB");
  CHECK(human_size(TiB) == "1 TiB");
  CHECK(human_size(~std::uint64_t{0}) == "18446744073709551615 B");
  CHECK(hex(0) == "0x0");
  CHECK(hex(0x4000'0000'0000) == "0x400000000000");
  CHECK(hex_fixed(0xC, 16) == "000000000000000c");
}

TEST_CASE("layout tool: arguments") {
  const std::vector<std::string_view> all{"1.5GiB", "--base", "0x1000", "--generation", "blackwell",
                                          "--kernel-rule", "6.13", "--json"};
  const auto p = parse_args(all);
  REQUIRE(p.error.empty());
  CHECK(p.opts.size == GiB + 512 * MiB);
  CHECK(p.opts.base == 0x1000);
  CHECK(p.opts.generation == grace::generation::blackwell);
  CHECK(p.opts.rule == grace::kernel_rule::v6_13);
  CHECK(p.opts.json);
  const auto defaults = parse_args({});
  CHECK(defaults.error.empty());
  CHECK(defaults.opts.size == 96 * GiB);
  CHECK(defaults.opts.base == 0x4000'0000'0000);
  CHECK(defaults.opts.generation == grace::generation::hopper);
  CHECK(defaults.opts.rule == grace::kernel_rule::current);
  const auto err = [](std::vector<std::string_view> args) { return parse_args(args).error; };
  CHECK(err({"--base"}) == "option --base needs a value (EINVAL)");
  CHECK(err({"--base", "1", "--base", "2"}) == "option --base given twice (EINVAL)");
  CHECK(err({"--generation", "ampere"}) == "bad generation 'ampere': expected hopper or blackwell (EINVAL)");
  CHECK(err({"--kernel-rule", "6.12"}) == "bad kernel rule '6.12': expected current, 7.1, 6.18 or 6.13 (EINVAL)");
  CHECK(err({"--frobnicate"}) == "unknown option '--frobnicate' (EINVAL)");
  CHECK(err({"1GiB", "2GiB"}) == "more than one SIZE given ('2GiB') (EINVAL)");
  CHECK(err({"12XB"}) == "bad SIZE '12XB': unknown unit (expected B, KiB, MiB, GiB or TiB) (EINVAL)");
  CHECK(err({"--base", "0x"}) == "bad ADDR '0x': a 0x size needs hex digits (EINVAL)");
}

TEST_CASE("layout tool: error lines name the §2.3 rule and errno") {
  const auto line = [](std::vector<std::string_view> args) {
    const auto r = run_tool(args);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    return r.err;
  };
  CHECK(line({"1.25GiB"}) == "1.25 GiB on Hopper: usable memory rounds down to 0 (EINVAL)\n");
  CHECK(line({"1GiB"}) == "1 GiB on Hopper: usable memory rounds down to 0 (EINVAL)\n");
  CHECK(line({"0.5GiB"}) == "512 MiB on Hopper: memory is smaller than the 1 GiB carve-out (EOVERFLOW)\n");
  CHECK(line({"0x8000000000000001", "--generation", "blackwell"}) ==
        "9223372036854775809 B on Blackwell: memory size has no 64-bit power of two above it (EOVERFLOW)\n");
  CHECK(line({"1.25GiB", "--generation", "blackwell", "--kernel-rule", "6.13"}) ==
        "1.25 GiB on Hopper: usable memory rounds down to 0 (EINVAL)\n");
  const auto usage = run_tool({"--bogus"});
  CHECK(usage.status == 2);
  CHECK(usage.err == "unknown option '--bogus' (EINVAL)\n");
}

TEST_CASE("layout tool: the default text output (96 GiB Hopper)") {
  const auto r = run_tool({});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(contains(r.out, "mode: emulated"));
  CHECK(contains(r.out, "4      usemem  0x40000000000   0x400000000000-0x4017bfffffff      0x17c0000000 (95 GiB)    "
                        "0x2000000000 (128 GiB)   0x840000000 (33 GiB)"));
  CHECK(contains(r.out, "2      resmem  0x20000000000   0x4017c0000000-0x4017ffffffff      0x40000000 (1 GiB)       "
                        "0x40000000 (1 GiB)       0x0 (0 B)"));
  // 95/128 of 64 cells = 47.5 → 48 cells of memory.
  CHECK(contains(r.out, "|" + std::string(48, '#') + std::string(16, '.') + "|"));
  CHECK(contains(r.out, "reads 000000000000000c; after all-ones to both dwords reads ffffffe00000000c -> size "
                        "0x2000000000 (128 GiB)"));
  CHECK(contains(r.out, "after all-ones to both dwords reads ffffffffc000000c -> size 0x40000000 (1 GiB)"));
  CHECK(contains(r.out, "    0000: 40 00 00 00 0f 00 00 00 04 00 00 00 00 00 00 00\n"
                        "    0010: 00 00 00 00 20 00 00 00 00 00 00 00 00 04 00 00\n"));
  CHECK(contains(r.out, "    0030: 00 00 00 00 00 00 00 00 00 00 00 c0 17 00 00 00\n"));
}

TEST_CASE("layout tool: size 0 is plain mode, exit 0") {
  const auto r = run_tool({"0"});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "mode: plain"));
  CHECK(contains(r.out, "ENOMEM"));
  const auto j = run_tool({"0", "--json"});
  CHECK(j.status == 0);
  CHECK(j.out == "{\"mode\":\"plain\",\"generation\":\"hopper\",\"layout_generation\":\"hopper\",\"kernel_rule\":"
                 "\"current\",\"base\":70368744177664,\"size\":0,\"regions\":[]}\n");
}

TEST_CASE("layout tool: JSON carries integers in bytes") {
  const auto r = run_tool({"--json"});
  CHECK(r.status == 0);
  CHECK(r.out.front() == '{');
  CHECK(r.out.back() == '\n');
  CHECK(contains(r.out, "\"mode\":\"emulated\""));
  CHECK(contains(r.out, "\"base\":70368744177664"));
  CHECK(contains(r.out, "\"size\":103079215104"));
  CHECK(contains(r.out, "{\"index\":4,\"name\":\"usemem\",\"file_offset\":4398046511104,\"phys\":70368744177664,"
                        "\"phys_end\":70470749650944,\"real_length\":102005473280,\"reported_size\":137438953472,"
                        "\"padding\":35433480192"));
  CHECK(contains(r.out, "{\"index\":2,\"name\":\"resmem\",\"file_offset\":2199023255552,\"phys\":70470749650944,"
                        "\"phys_end\":70471823392768,\"real_length\":1073741824,\"reported_size\":1073741824"));
  // Blackwell memory that runs past 2^64 (not validated by the driver): no end.
  const auto wrap = run_tool({"0x200000000", "--base", "0xffffffff00000000", "--generation", "blackwell", "--json"});
  CHECK(wrap.status == 0);
  CHECK(contains(wrap.out, "\"phys_end\":null"));
  CHECK(contains(run_tool({"0x200000000", "--base", "0xffffffff00000000", "--generation", "blackwell"}).out,
                 "0xffffffff00000000-(wraps past 2^64)"));
  CHECK(contains(r.out, "\"bar_probe\":{\"before\":12,\"after\":18446743936270598156,\"size\":137438953472}"));
  CHECK(contains(r.out, "\"argsz_32\":\"400000000f0000000400000000000000000000002000000000000000000400"
                        "00\""));
  const auto bw = run_tool({"186GiB", "--generation", "blackwell", "--json"});
  CHECK(contains(bw.out, "\"generation\":\"blackwell\""));
  CHECK_FALSE(contains(bw.out, "\"index\":2"));
  const auto text = run_tool({"186GiB", "--generation", "blackwell"});
  CHECK(contains(text.out, "note: index 2 is not emulated"));
  const auto old = run_tool({"96GiB", "--generation", "blackwell", "--kernel-rule", "6.13", "--json"});
  CHECK(contains(old.out, "\"layout_generation\":\"hopper\""));
  CHECK(contains(old.out, "\"index\":2"));
}

TEST_CASE("layout tool: scale bar") {
  CHECK(scale_bar({0, 0x17'C000'0000, 0x20'0000'0000}) == std::string(48, '#') + std::string(16, '.'));
  CHECK(scale_bar({0, 1, 0x20'0000'0000}) == "#" + std::string(63, '.'));
  CHECK(scale_bar({0, 0x20'0000'0000 - 1, 0x20'0000'0000}) == std::string(63, '#') + ".");
  CHECK(scale_bar({0, GiB, GiB}) == std::string(64, '#'));
  CHECK(scale_bar({0, 8, 16}) == std::string(32, '#') + std::string(32, '.'));
}

TEST_CASE("layout tool: --help") {
  const auto r = run_tool({"--help"});
  CHECK(r.status == 0);
  CHECK(r.out == usage_text);
}

}  // namespace
