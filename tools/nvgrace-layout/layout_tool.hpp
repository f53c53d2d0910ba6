#pragma once
/// \file
/// The logic of `nvgrace-layout`, kept out of main.cpp so it can be tested:
/// argument handling, and the text and JSON renderings of a derived layout.
/// Sizes use the library's one size syntax (nvgrace/core/size.hpp), the
/// command line the tools' convention (tools/common/cli.hpp); the rules come
/// from the model (nvgrace::grace). See docs/layout-explorer.md.

#include "../common/cli.hpp"
#include "../common/json.hpp"

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/size.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/bar_emulation.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/region_info.hpp>

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nvgrace::layout_tool {

inline constexpr tools::cli::tool tool{"nvgrace-layout", "nvgrace-layout/1"};

/// Lower-case hex with a 0x prefix ("0x400000000000"; 0 is "0x0").
[[nodiscard]] inline std::string hex(std::uint64_t value) {
  std::array<char, 20> buffer{};
  const auto r = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, 16);
  return "0x" + std::string(buffer.data(), r.ptr);
}
/// Fixed-width lower-case hex without prefix.
[[nodiscard]] inline std::string hex_fixed(std::uint64_t value, int digits) {
  std::string out(static_cast<std::size_t>(digits), '0');
  for (int i = digits - 1; i >= 0 && value != 0; --i, value >>= 4)
    out[static_cast<std::size_t>(i)] = "0123456789abcdef"[value & 0xF];
  return out;
}

/// A byte count in the largest binary unit that shows it exactly with at most
/// four decimals ("1.25 GiB", "512 MiB", "4097 B"); "0 B" for 0.
[[nodiscard]] inline std::string human_size(std::uint64_t bytes) { return std::string(format_size(bytes).view()); }

[[nodiscard]] inline std::string generation_title(grace::generation g) {
  return g == grace::generation::hopper ? "Hopper" : "Blackwell";
}

/// Command-line options.
struct options {
  std::uint64_t size = 96 * GiB;
  std::uint64_t base = 0x4000'0000'0000;
  grace::generation generation = grace::generation::hopper;
  grace::kernel_rule rule = grace::kernel_rule::current;
  bool json = false;
};

/// The result of parsing the command line: options, or one usage error.
struct parsed_args {
  options opts;
  std::string error;  ///< empty on success
};

inline constexpr std::array<tools::cli::option, 6> option_table{{
    {"--base", 0, "ADDR"},
    {"--generation", 0, "GEN"},
    {"--kernel-rule", 0, "RULE"},
    {"--json"},
    {"--help", 'h'},
    {"--version"},
}};

inline constexpr std::string_view usage_text =
    "Usage: nvgrace-layout [OPTIONS] [SIZE]\n"
    "\n"
    "Show how the nvgrace-gpu driver carves SIZE bytes of Grace GPU memory into\n"
    "emulated BARs: regions, BAR sizes and padding, what BAR sizing reads back,\n"
    "and the bytes of the region-info replies. The default is a 96 GiB Grace\n"
    "Hopper (GH200) at 0x400000000000 under current kernels.\n"
    "\n"
    "Options:\n"
    "  --base ADDR          physical base of the memory (ACPI gpu-mem-base-pa);\n"
    "                       default 0x400000000000\n"
    "  --generation GEN     hopper (1 GiB carve-out, the default) or blackwell (none)\n"
    "  --kernel-rule RULE   whose driver: current (Linux 7.2, the default), 7.1\n"
    "                       (6.19 to 7.1), 6.18 (6.14 to 6.18) or 6.13 (6.10 to\n"
    "                       6.13: usemem BAR sized after the 512 MiB round-down,\n"
    "                       no Blackwell case)\n"
    "  --json               print one JSON document (schema nvgrace-layout/1)\n"
    "  -h, --help           print this help and exit\n"
    "  --version            print the version and exit\n"
    "\n"
    "Sizes:\n"
    "  SIZE and ADDR are bytes (4096), hex bytes (0x1000), or a number with a\n"
    "  binary unit K, M, G, T or KiB, MiB, GiB, TiB (96G, 96GiB, \"1.5 GiB\"),\n"
    "  or a sum of those (2G+12345). Units are powers of 1024.\n"
    "\n"
    "Examples:\n"
    "  nvgrace-layout                            the default: 96 GiB of GH200 memory\n"
    "  nvgrace-layout 186G --generation=blackwell  a GB200 with 186 GiB\n"
    "  nvgrace-layout --json 1.25G               a size the driver refuses, as JSON\n"
    "\n"
    "Exit status:\n"
    "  0  a layout (or plain mode, for size 0)\n"
    "  1  the driver would fail its probe with this memory\n"
    "  2  bad usage (unknown option, bad value)\n"
    "  3  (not used by this tool)\n";

/// Interpret a parsed command line.
[[nodiscard]] inline parsed_args interpret(const tools::cli::command_line& line) {
  parsed_args out;
  bool have_size = false;
  for (const auto& item : line.items) {
    const std::string_view name = item.opt != nullptr ? item.opt->name : std::string_view{};
    const std::string_view v = item.value;
    if (item.opt == nullptr) {
      if (have_size) return out.error = "more than one SIZE given ('" + std::string(v) + "')", out;
      have_size = true;
      const auto r = parse_size(v);
      if (!r.ok()) return out.error = tools::cli::size_error("SIZE", v, r), out;
      out.opts.size = r.bytes;
    } else if (name == "--json") {
      out.opts.json = true;
    } else if (name == "--base") {
      const auto r = parse_size(v);
      if (!r.ok()) return out.error = tools::cli::size_error("ADDR", v, r), out;
      out.opts.base = r.bytes;
    } else if (name == "--generation") {
      if (v == "hopper")
        out.opts.generation = grace::generation::hopper;
      else if (v == "blackwell")
        out.opts.generation = grace::generation::blackwell;
      else
        return out.error = "bad generation '" + std::string(v) + "': expected hopper or blackwell", out;
    } else if (name == "--kernel-rule") {
      if (!grace::parse_kernel_rule(v, out.opts.rule))
        return out.error = "bad kernel rule '" + std::string(v) + "': expected current, 7.1, 6.18 or 6.13", out;
    }
  }
  return out;
}

/// Parse argv[1..] (without --help/--version, which run() handles first).
[[nodiscard]] inline parsed_args parse_args(std::span<const std::string_view> args) {
  const auto line = tools::cli::parse(args, option_table);
  if (!line.error.empty()) return {{}, line.error};
  return interpret(line);
}

/// What the tool computes for one set of options.
struct report {
  options opts;
  grace::probe_outcome outcome;   ///< valid when error is {}
  nvgrace::errc error{};          ///< the probe failure (derive_layout's errno)
  std::string_view rule;          ///< the layout rule behind `error`
  std::string_view plain_reason;  ///< why the device is plain (empty if emulated)
};

[[nodiscard]] constexpr report evaluate(const options& o) noexcept {
  report r;
  r.opts = o;
  const grace::acpi_properties props{o.base, o.size};
  const auto probed = grace::probe(props, o.generation, o.rule);
  if (!probed) {
    r.error = probed.error();
    r.rule = grace::describe_layout_error(o.base, o.size, o.generation, o.rule);
    return r;
  }
  r.outcome = *probed;
  if (r.outcome.mode == grace::mode::plain)
    r.plain_reason = "the ACPI memory size is 0, so the driver's property fetch fails with ENOMEM";
  return r;
}

/// The sentence of a failed probe, e.g. "1.25 GiB on Hopper: usable memory
/// rounds down to 0" (the errno is the report's).
[[nodiscard]] inline std::string error_sentence(const report& r) {
  grace::generation applied = r.opts.rule == grace::kernel_rule::v6_13 ? grace::generation::hopper : r.opts.generation;
  return human_size(r.opts.size) + " on " + generation_title(applied) + ": " + std::string(r.rule);
}

/// The emulated regions of a layout, usemem (index 4) first.
[[nodiscard]] inline std::vector<std::uint32_t> emulated_indices(const grace::layout& l) {
  std::vector<std::uint32_t> out{grace::usemem_index};
  if (l.has_resmem()) out.push_back(grace::resmem_index);
  return out;
}

/// A 16-bytes-per-line hex dump, each line "    OOOO: xx xx ...".
[[nodiscard]] inline std::string hex_dump(std::span<const std::byte> bytes) {
  std::string out;
  for (std::size_t line = 0; line < bytes.size(); line += 16) {
    out += "    " + hex_fixed(line, 4) + ":";
    for (std::size_t i = line; i < line + 16 && i < bytes.size(); ++i)
      out += " " + hex_fixed(std::to_integer<std::uint8_t>(bytes[i]), 2);
    out += "\n";
  }
  return out;
}

/// A to-scale bar of `width` cells (a power of two): '#' for memory, '.' for
/// padding, each cell reported_size / width bytes, rounded to the nearest
/// cell. Any non-empty part gets at least one cell.
[[nodiscard]] inline std::string scale_bar(const grace::memregion& r, std::uint64_t width = 64) {
  std::uint64_t memory_cells = 0;
  if (r.reported_size >= width) {
    const std::uint64_t cell = r.reported_size / width;
    memory_cells = r.real_length / cell + ((r.real_length % cell) >= cell - cell / 2 ? 1 : 0);
  } else if (r.reported_size != 0) {
    memory_cells = r.real_length * width / r.reported_size;
  }
  if (memory_cells > width) memory_cells = width;
  if (r.real_length > 0 && memory_cells == 0) memory_cells = 1;
  if (r.padding() > 0 && memory_cells == width) memory_cells = width - 1;
  return std::string(memory_cells, '#') + std::string(width - memory_cells, '.');
}

/// The region-info reply bytes for `argsz`.
[[nodiscard]] inline grace::region_info_bytes reply_bytes(const grace::layout& l, std::uint32_t index,
                                                          std::uint32_t argsz) {
  return grace::region_info_reply(l, index, argsz).value();
}

/// The sizing probe of one emulated BAR on freshly reset registers.
[[nodiscard]] constexpr grace::bar_probe sizing_probe(const grace::layout& l, std::uint32_t index) noexcept {
  grace::bar_registers regs;
  return grace::probe_bar_size(l, regs, index);
}

/// The text rendering of a successful report.
[[nodiscard]] inline std::string render_text(const report& r) {
  const options& o = r.opts;
  std::string out;
  out += "nvgrace-layout: " + human_size(o.size) + " (" + hex(o.size) + " bytes) of Grace " +
         generation_title(o.generation) + " memory at " + hex(o.base) + ", kernel rule " +
         std::string(grace::to_string(o.rule)) + "\n";
  if (r.outcome.mode == grace::mode::plain) {
    out += "mode: plain: " + std::string(r.plain_reason) +
           ".\nThe device is plain vfio-pci (ops \"nvgrace-gpu-vfio-pci-core\"): no emulated regions.\n";
    return out;
  }
  const grace::layout& l = r.outcome.layout;
  out += "mode: emulated\n";
  if (o.rule == grace::kernel_rule::v6_13 && o.generation == grace::generation::blackwell)
    out += "note: kernels up to 6.13 have no Blackwell case; every device gets Hopper's 1 GiB carve-out\n";
  if (!l.has_resmem())
    out += "note: index 2 is not emulated; the physical BAR2/3 is passed through (config 0x18-0x1f is not emulated)\n";
  out +=
      "\nindex  name    file offset     physical range                     real length              "
      "reported size            padding\n";
  for (const auto index : emulated_indices(l)) {
    const grace::memregion m = *l.region(index);
    std::string row = std::to_string(index) + "      " + std::string(grace::region_name(index)) + "  ";
    const auto pad = [](std::string s, std::size_t w) {
      return s.size() < w ? s + std::string(w - s.size(), ' ') : s + " ";
    };
    row += pad(hex(vfio::region_offset(index)), 16);
    const auto last = checked_add(m.phys_base, m.real_length - 1);
    const std::string range = m.real_length == 0 ? hex(m.phys_base) + " (empty)"
                              : last             ? hex(m.phys_base) + "-" + hex(*last)
                                                 : hex(m.phys_base) + "-(wraps past 2^64)";
    row += pad(range, 35);
    const auto both = [&](std::uint64_t v) { return hex(v) + " (" + human_size(v) + ")"; };
    row += pad(both(m.real_length), 25);
    row += pad(both(m.reported_size), 25);
    row += both(m.padding()) + "\n";
    out += row;
  }
  for (const auto index : emulated_indices(l)) {
    const grace::memregion m = *l.region(index);
    out += "\nBAR" + std::to_string(index) + " " + std::string(grace::region_name(index)) + ", " +
           human_size(m.reported_size) + " (64 cells of " + human_size(m.reported_size / 64) + "):\n";
    out += "  |" + scale_bar(m) + "|\n";
    out += "  # memory " + human_size(m.real_length) + " (" + hex(m.real_length) + ")   . padding " +
           human_size(m.padding()) + ", reads 0xFF, writes dropped, never mappable\n";
    const auto probe = sizing_probe(l, index);
    const auto window = grace::bar_window(index);
    out += "  BAR register (config " + hex(window) + "-" + hex(window + 7) + "): reads " + hex_fixed(probe.before, 16) +
           "; after all-ones to both dwords reads " + hex_fixed(probe.after, 16) + " -> size " + hex(probe.size) +
           " (" + human_size(probe.size) + ")\n";
    const auto short_reply = reply_bytes(l, index, vfio::region_info_size);
    out += "  GET_REGION_INFO argsz 32 -> " + std::to_string(short_reply.size) + " bytes (asks for argsz " +
           std::to_string(grace::emulated_region_info_size) + "):\n";
    out += hex_dump(std::span<const std::byte>(short_reply.bytes).first(short_reply.size));
    const auto full_reply = reply_bytes(l, index, grace::emulated_region_info_size);
    out += "  GET_REGION_INFO argsz 64 -> " + std::to_string(full_reply.size) +
           " bytes (cap_offset 32, sparse area {0, " + hex(m.real_length) + "}):\n";
    out += hex_dump(std::span<const std::byte>(full_reply.bytes).first(full_reply.size));
  }
  return out;
}

/// Hex string of bytes, no separators.
[[nodiscard]] inline std::string hex_string(std::span<const std::byte> bytes) {
  std::string out;
  for (const auto b : bytes) out += hex_fixed(std::to_integer<std::uint8_t>(b), 2);
  return out;
}

/// The JSON rendering of a successful report: one document (schema
/// nvgrace-layout/1, see docs/layout-explorer.md). Every 64-bit value is also
/// given as a "_hex" string.
[[nodiscard]] inline std::string render_json(const report& r) {
  const options& o = r.opts;
  tools::json::writer w;
  tools::cli::begin_document(w, tool);
  w.member("mode", grace::to_string(r.outcome.mode));
  w.member("generation", grace::to_string(o.generation));
  w.member("layout_generation", grace::to_string(r.outcome.layout.generation));
  w.member("kernel_rule", grace::to_string(o.rule));
  w.member_u64("base", o.base);
  w.member_u64("size", o.size);
  w.key("regions");
  w.begin_array();
  if (r.outcome.mode == grace::mode::emulated) {
    const grace::layout& l = r.outcome.layout;
    for (const auto index : emulated_indices(l)) {
      const grace::memregion m = *l.region(index);
      const auto probe = sizing_probe(l, index);
      const auto short_reply = reply_bytes(l, index, vfio::region_info_size);
      const auto full_reply = reply_bytes(l, index, grace::emulated_region_info_size);
      w.begin_object();
      w.member("index", index);
      w.member("name", grace::region_name(index));
      w.member_u64("file_offset", vfio::region_offset(index));
      w.member_u64("phys", m.phys_base);
      // Blackwell does not check that base + length fits in 64 bits: the end may not exist.
      const auto end = checked_add(m.phys_base, m.real_length);
      const std::uint64_t end_value = end ? *end : 0;
      w.member_u64_or_null("phys_end", end ? &end_value : nullptr);
      w.member_u64("real_length", m.real_length);
      w.member_u64("reported_size", m.reported_size);
      w.member_u64("padding", m.padding());
      w.member("bar_window", static_cast<std::uint32_t>(grace::bar_window(index)));
      w.key("bar_probe");
      w.begin_object();
      w.member_u64("before", probe.before);
      w.member_u64("after", probe.after);
      w.member_u64("size", probe.size);
      w.end_object();
      w.key("region_info");
      w.begin_object();
      w.member("argsz_32", hex_string(std::span<const std::byte>(short_reply.bytes).first(short_reply.size)));
      w.member("argsz_64", hex_string(std::span<const std::byte>(full_reply.bytes).first(full_reply.size)));
      w.end_object();
      w.end_object();
    }
  }
  w.end_array();
  w.member("exit_status", tools::cli::exit_ok);
  w.end_object();
  return w.str() + "\n";
}

/// Run the tool on argv[1..]: what to print and the exit status.
[[nodiscard]] inline tools::cli::outcome run(std::span<const std::string_view> args) {
  tools::cli::outcome out;
  tools::cli::command_line line;
  if (tools::cli::start(tool, args, option_table, usage_text, line, out)) return out;
  const bool json = tools::cli::scan(args).json;
  const auto parsed = interpret(line);
  if (!parsed.error.empty()) return out.usage(tool, parsed.error, json);
  const auto r = evaluate(parsed.opts);
  if (r.error != nvgrace::errc{}) return out.fail(tool, {tools::cli::exit_failure, r.error, error_sentence(r)}, json);
  out.out += parsed.opts.json ? render_json(r) : render_text(r);
  return out;
}

}  // namespace nvgrace::layout_tool
