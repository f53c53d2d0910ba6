// nvgrace-layout: argument handling, error lines and the text/JSON
// renderings (layouts, BAR sizing, region-info reply bytes). The size syntax
// itself is tested in tests/core/size_test.cpp, the shared command-line
// parser in cli_test.cpp.
#include "layout_tool.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace nvgrace;
using namespace nvgrace::layout_tool;

tools::cli::outcome run_tool(std::vector<std::string_view> args) { return run(args); }
bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_CASE("layout tool: SIZE and ADDR take the library's size syntax") {
  CHECK(parse_args(std::vector<std::string_view>{"96G"}).opts.size == 96 * GiB);
  CHECK(parse_args(std::vector<std::string_view>{"96GiB"}).opts.size == 96 * GiB);
  CHECK(parse_args(std::vector<std::string_view>{"2G+12345"}).opts.size == 2 * GiB + 12345);
  CHECK(parse_args(std::vector<std::string_view>{"--base=0x400000000000+1G"}).opts.base == 0x4000'0000'0000 + GiB);
  CHECK(parse_args(std::vector<std::string_view>{"--", "1.5 GiB"}).opts.size == GiB + 512 * MiB);
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
  CHECK(human_size(96 * GiB) == "96 GiB");
  CHECK(hex(0) == "0x0");
  CHECK(hex(0x4000'0000'0000) == "0x400000000000");
  CHECK(hex_fixed(0xC, 16) == "000000000000000c");
}

TEST_CASE("layout tool: arguments") {
  const std::vector<std::string_view> all{"1.5GiB",    "--base",        "0x1000", "--generation",
                                          "blackwell", "--kernel-rule", "6.13",   "--json"};
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
  CHECK(err({"--base"}) == "option '--base' needs a value (ADDR)");
  CHECK(err({"--base", "1", "--base", "2"}) == "option '--base' given twice");
  CHECK(err({"--base=1", "--base=2"}) == "option '--base' given twice");
  CHECK(err({"--generation", "ampere"}) == "bad generation 'ampere': expected hopper or blackwell");
  CHECK(err({"--kernel-rule", "6.12"}) == "bad kernel rule '6.12': expected current, 7.1, 6.18 or 6.13");
  CHECK(err({"--frobnicate"}) == "unknown option '--frobnicate'");
  CHECK(err({"--json=yes"}) == "option '--json' takes no value");
  CHECK(err({"1GiB", "2GiB"}) == "more than one SIZE given ('2GiB')");
  CHECK(err({"12XB"}) ==
        "bad SIZE '12XB' (at character 3): unknown unit (expected B, K, KiB, M, MiB, G, GiB, T or TiB)");
  CHECK(err({"--base", "0x"}) == "bad ADDR '0x' (at character 3): 0x needs hex digits");
  CHECK(err({"--", "-1"}) == "bad SIZE '-1': a size starts with a digit");
  CHECK(err({"--generation=blackwell", "--kernel-rule=6.13"}).empty());
}

TEST_CASE("layout tool: a layout the driver refuses is one error line naming the rule and errno, exit 1") {
  const auto line = [](std::vector<std::string_view> args) {
    const auto r = run_tool(args);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    return r.err;
  };
  CHECK(line({"1.25GiB"}) == "nvgrace-layout: error: 1.25 GiB on Hopper: usable memory rounds down to 0 (EINVAL)\n");
  CHECK(line({"1G"}) == "nvgrace-layout: error: 1 GiB on Hopper: usable memory rounds down to 0 (EINVAL)\n");
  CHECK(line({"0.5GiB"}) ==
        "nvgrace-layout: error: 512 MiB on Hopper: memory is smaller than the 1 GiB carve-out (EOVERFLOW)\n");
  CHECK(line({"0x8000000000000001", "--generation", "blackwell"}) ==
        "nvgrace-layout: error: 9223372036854775809 B on Blackwell: memory size has no 64-bit power of two above it "
        "(EOVERFLOW)\n");
  CHECK(line({"1.25GiB", "--generation", "blackwell", "--kernel-rule", "6.13"}) ==
        "nvgrace-layout: error: 1.25 GiB on Hopper: usable memory rounds down to 0 (EINVAL)\n");
  const auto usage = run_tool({"--bogus"});
  CHECK(usage.status == 2);
  CHECK(usage.out.empty());
  CHECK(usage.err == "nvgrace-layout: error: unknown option '--bogus' (EINVAL); see 'nvgrace-layout --help'\n");
}

TEST_CASE("layout tool: with --json a failure is a JSON document on stdout too") {
  const auto refused = run_tool({"--json", "1.25G"});
  CHECK(refused.status == 1);
  CHECK(refused.out ==
        "{\"schema\":\"nvgrace-layout/1\",\"tool\":\"nvgrace-layout\",\"version\":\"" +
            std::string(nvgrace::version.string) +
            "\",\"error\":{\"errno\":22,\"name\":\"EINVAL\",\"message\":\"1.25 GiB on Hopper: usable memory rounds "
            "down to 0\"},\"exit_status\":1}\n");
  CHECK(refused.err == "nvgrace-layout: error: 1.25 GiB on Hopper: usable memory rounds down to 0 (EINVAL)\n");
  const auto usage = run_tool({"12XB", "--json"});
  CHECK(usage.status == 2);
  CHECK(contains(usage.out,
                 "\"error\":{\"errno\":22,\"name\":\"EINVAL\",\"message\":\"bad SIZE '12XB' (at character 3)"));
  CHECK(contains(usage.out, "\"exit_status\":2}"));
  // After "--" a "--json" is an operand (a bad SIZE), not the flag.
  CHECK(run_tool({"--", "--json"}).out.empty());
}

TEST_CASE("layout tool: --help and --version win over everything else") {
  CHECK(run_tool({"--bogus", "--help"}).out == usage_text);
  CHECK(run_tool({"-h"}).status == 0);
  const auto v = run_tool({"12XB", "--version"});
  CHECK(v.status == 0);
  CHECK(v.out == "nvgrace-layout " + std::string(nvgrace::version.string) + "\n");
  CHECK(v.err.empty());
}

TEST_CASE("layout tool: the default text output (96 GiB Hopper)") {
  const auto r = run_tool({});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(contains(r.out, "mode: emulated"));
  CHECK(contains(r.out,
                 "4      usemem  0x40000000000   0x400000000000-0x4017bfffffff      0x17c0000000 (95 GiB)    "
                 "0x2000000000 (128 GiB)   0x840000000 (33 GiB)"));
  CHECK(contains(r.out,
                 "2      resmem  0x20000000000   0x4017c0000000-0x4017ffffffff      0x40000000 (1 GiB)       "
                 "0x40000000 (1 GiB)       0x0 (0 B)"));
  // 95/128 of 64 cells = 47.5 → 48 cells of memory.
  CHECK(contains(r.out, "|" + std::string(48, '#') + std::string(16, '.') + "|"));
  CHECK(contains(r.out,
                 "reads 000000000000000c; after all-ones to both dwords reads ffffffe00000000c -> size "
                 "0x2000000000 (128 GiB)"));
  CHECK(contains(r.out, "after all-ones to both dwords reads ffffffffc000000c -> size 0x40000000 (1 GiB)"));
  CHECK(contains(r.out,
                 "    0000: 40 00 00 00 0f 00 00 00 04 00 00 00 00 00 00 00\n"
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
  CHECK(j.out == "{\"schema\":\"nvgrace-layout/1\",\"tool\":\"nvgrace-layout\",\"version\":\"" +
                     std::string(nvgrace::version.string) +
                     "\",\"mode\":\"plain\",\"generation\":\"hopper\",\"layout_generation\":\"hopper\","
                     "\"kernel_rule\":\"current\",\"base\":70368744177664,\"base_hex\":\"0x400000000000\",\"size\":0,"
                     "\"size_hex\":\"0x0\",\"regions\":[],\"exit_status\":0}\n");
}

TEST_CASE("layout tool: JSON carries integers in bytes, each 64-bit one also as hex") {
  const auto r = run_tool({"--json"});
  CHECK(r.status == 0);
  CHECK(r.out.front() == '{');
  CHECK(r.out.back() == '\n');
  CHECK(contains(r.out, "\"mode\":\"emulated\""));
  CHECK(contains(r.out, "\"base\":70368744177664,\"base_hex\":\"0x400000000000\""));
  CHECK(contains(r.out, "\"size\":103079215104,\"size_hex\":\"0x1800000000\""));
  CHECK(contains(r.out,
                 "{\"index\":4,\"name\":\"usemem\",\"file_offset\":4398046511104,\"file_offset_hex\":"
                 "\"0x40000000000\",\"phys\":70368744177664,\"phys_hex\":\"0x400000000000\",\"phys_end\":"
                 "70470749650944,\"phys_end_hex\":\"0x4017c0000000\",\"real_length\":102005473280,"
                 "\"real_length_hex\":\"0x17c0000000\",\"reported_size\":137438953472,\"reported_size_hex\":"
                 "\"0x2000000000\",\"padding\":35433480192,\"padding_hex\":\"0x840000000\""));
  CHECK(contains(r.out, "{\"index\":2,\"name\":\"resmem\",\"file_offset\":2199023255552,"));
  // Blackwell memory that runs past 2^64 (not validated by the driver): no end.
  const auto wrap = run_tool({"0x200000000", "--base", "0xffffffff00000000", "--generation", "blackwell", "--json"});
  CHECK(wrap.status == 0);
  CHECK(contains(wrap.out, "\"phys_end\":null,\"phys_end_hex\":null"));
  CHECK(contains(run_tool({"0x200000000", "--base", "0xffffffff00000000", "--generation", "blackwell"}).out,
                 "0xffffffff00000000-(wraps past 2^64)"));
  // The value that jq 1.6 and JavaScript round: also exact as hex.
  CHECK(contains(r.out,
                 "\"bar_probe\":{\"before\":12,\"before_hex\":\"0xc\",\"after\":18446743936270598156,"
                 "\"after_hex\":\"0xffffffe00000000c\",\"size\":137438953472,\"size_hex\":\"0x2000000000\"}"));
  CHECK(contains(r.out,
                 "\"argsz_32\":\"400000000f0000000400000000000000000000002000000000000000000400"
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
  CHECK(r.err.empty());
}

}  // namespace
