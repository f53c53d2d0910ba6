#pragma once
/// \file
/// The logic of `nvgrace-layout`, kept out of main.cpp so it can be tested:
/// the SIZE grammar, argument parsing, and the text and JSON renderings of a
/// derived layout. Everything here is the tool's; the rules come from the
/// model (nvgrace::grace).
///
/// SIZE grammar (also used for --base), exactly:
///   SIZE    = HEX | DECIMAL [" "] [UNIT]
///   HEX     = ("0x" | "0X") hexdigit{1,}      a byte count; no fraction, no unit
///   DECIMAL = digit{1,} ["." digit{1,}]       a fraction needs a unit other than B
///   UNIT    = "B" | "KiB" | "MiB" | "GiB" | "TiB"   (1, 2^10, 2^20, 2^30, 2^40; letters in any case)
/// At most one space between number and unit; nothing else (no sign, no
/// leading/trailing blanks, no digit separators, no SI units such as "GB").
/// The value must be a whole number of bytes (0.5KiB is 512, 0.1KiB is an
/// error) and at most 2^64 − 1 (EOVERFLOW otherwise).

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
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

/// A parsed SIZE, or why it is not one.
struct size_result {
  std::uint64_t bytes = 0;
  nvgrace::errc error{};          ///< EINVAL (malformed) or EOVERFLOW (too big); {} on success
  std::string_view reason{};  ///< which rule of the grammar failed
  [[nodiscard]] constexpr bool ok() const noexcept { return error == nvgrace::errc{}; }
};

namespace detail {

[[nodiscard]] constexpr char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
[[nodiscard]] constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
[[nodiscard]] constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}
[[nodiscard]] constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
[[nodiscard]] constexpr size_result fail(nvgrace::errc e, std::string_view why) noexcept { return {0, e, why}; }

}  // namespace detail

/// Parse a SIZE (see the file comment for the grammar).
[[nodiscard]] constexpr size_result parse_size(std::string_view text) noexcept {
  using detail::fail;
  constexpr auto einval = nvgrace::errc::invalid_argument;
  constexpr auto eoverflow = nvgrace::errc::value_too_large;
  if (text.empty()) return fail(einval, "empty size");
  if (text.size() >= 2 && text[0] == '0' && detail::lower(text[1]) == 'x') {
    if (text.size() == 2) return fail(einval, "a 0x size needs hex digits");
    std::uint64_t value = 0;
    for (const char c : text.substr(2)) {
      const int digit = detail::hex_value(c);
      if (digit < 0) return fail(einval, "a 0x size takes hex digits only (no fraction, no unit)");
      if (value > (~std::uint64_t{0} >> 4)) return fail(eoverflow, "size does not fit in 64 bits");
      value = (value << 4) | static_cast<std::uint64_t>(digit);
    }
    return {value, {}, {}};
  }
  std::size_t at = 0;
  std::uint64_t whole = 0;
  if (!detail::is_digit(text[0])) return fail(einval, "a size starts with a digit");
  for (; at < text.size() && detail::is_digit(text[at]); ++at) {
    const auto times_ten = checked_mul(whole, 10);
    const auto next = times_ten ? checked_add(*times_ten, static_cast<std::uint64_t>(text[at] - '0')) : times_ten;
    if (!next) return fail(eoverflow, "size does not fit in 64 bits");
    whole = *next;
  }
  std::string_view fraction;
  if (at < text.size() && text[at] == '.') {
    const std::size_t start = ++at;
    while (at < text.size() && detail::is_digit(text[at])) ++at;
    fraction = text.substr(start, at - start);
    if (fraction.empty()) return fail(einval, "a '.' needs digits after it");
  }
  std::string_view unit = text.substr(at);
  if (!unit.empty() && unit[0] == ' ') unit.remove_prefix(1);
  if (unit.empty() && at < text.size()) return fail(einval, "a space must be followed by a unit");
  unsigned shift = 0;
  if (unit.empty() || detail::iequals(unit, "B")) shift = 0;
  else if (detail::iequals(unit, "KiB")) shift = 10;
  else if (detail::iequals(unit, "MiB")) shift = 20;
  else if (detail::iequals(unit, "GiB")) shift = 30;
  else if (detail::iequals(unit, "TiB")) shift = 40;
  else return fail(einval, "unknown unit (expected B, KiB, MiB, GiB or TiB)");

  const auto scaled = checked_mul(whole, std::uint64_t{1} << shift);
  if (!scaled) return fail(eoverflow, "size does not fit in 64 bits");
  // The fraction f = 0.d1d2…dk of 2^shift bytes must be whole: double f shift
  // times, collecting the carries as bits; what is left must be 0. An exact
  // fraction of at most 2^40 has at most 40 significant digits.
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  if (fraction.empty()) return {*scaled, {}, {}};
  constexpr std::size_t max_digits = 40;
  if (shift == 0 || fraction.size() > max_digits) return fail(einval, "not a whole number of bytes");
  std::array<std::uint8_t, max_digits> digits{};
  for (std::size_t i = 0; i < fraction.size(); ++i) digits[i] = static_cast<std::uint8_t>(fraction[i] - '0');
  std::uint64_t part = 0;
  for (unsigned step = 0; step < shift; ++step) {
    unsigned carry = 0;
    for (std::size_t i = fraction.size(); i-- > 0;) {
      const unsigned doubled = digits[i] * 2u + carry;
      digits[i] = static_cast<std::uint8_t>(doubled % 10);
      carry = doubled / 10;
    }
    part = (part << 1) | carry;
  }
  for (std::size_t i = 0; i < fraction.size(); ++i)
    if (digits[i] != 0) return fail(einval, "not a whole number of bytes");
  const auto total = checked_add(*scaled, part);
  if (!total) return fail(eoverflow, "size does not fit in 64 bits");
  return {*total, {}, {}};
}

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
[[nodiscard]] inline std::string human_size(std::uint64_t bytes) {
  static constexpr std::array<std::pair<unsigned, std::string_view>, 4> units{
      {{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}}};
  for (const auto& [shift, name] : units) {
    const std::uint64_t unit = std::uint64_t{1} << shift;
    if (bytes < unit) continue;
    const std::uint64_t whole = bytes >> shift;
    const std::uint64_t rest = bytes & (unit - 1);
    // rest/unit as a decimal of at most 4 digits: exact iff rest·10^4 is a multiple of unit.
    // rest < 2^40 and 10^4 < 2^14, so the product fits in 64 bits.
    if ((rest * 10000) % unit != 0) continue;
    std::string out = std::to_string(whole);
    std::uint64_t frac = rest * 10000 / unit;
    if (frac != 0) {
      std::string digits = std::to_string(frac);
      digits.insert(0, 4 - digits.size(), '0');
      while (digits.back() == '0') digits.pop_back();
      out += "." + digits;
    }
    return out + " " + std::string(name);
  }
  return std::to_string(bytes) + " B";
}

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
  bool help = false;
};

/// The result of parsing the command line: options, or one error line.
struct parsed_args {
  options opts;
  std::string error;  ///< empty on success
};

inline constexpr std::string_view usage_text =
    "usage: nvgrace-layout [SIZE] [--base ADDR] [--generation hopper|blackwell]\n"
    "                      [--kernel-rule current|6.13] [--json] [--help]\n"
    "\n"
    "Show how nvgrace-gpu carves SIZE bytes of Grace GPU memory (default 96GiB,\n"
    "base 0x400000000000, Hopper, current kernels) into emulated BARs.\n"
    "\n"
    "SIZE and ADDR: bytes (103079215104), 0x-hex (0x1800000000), or a decimal with\n"
    "a binary unit, optionally after one space: 96GiB, 1.5 GiB, 512MiB, 4KiB, 1TiB, 4096B\n"
    "(units B KiB MiB GiB TiB, any letter case; the result must be whole bytes).\n"
    "\n"
    "  --base ADDR             physical base of the memory (ACPI gpu-mem-base-pa)\n"
    "  --generation G          hopper (1 GiB carve-out) or blackwell (none)\n"
    "  --kernel-rule R         current (6.14+) or 6.13 (usemem BAR sized after the\n"
    "                          512 MiB round-down; no Blackwell case)\n"
    "  --json                  one JSON object instead of text\n"
    "  --help                  this text\n"
    "\n"
    "Exit status: 0 for a layout (or plain mode for size 0), 1 when the driver\n"
    "would fail the probe, 2 for bad arguments.\n";

/// Parse argv[1..]. Each option may appear once; SIZE at most once.
[[nodiscard]] inline parsed_args parse_args(std::span<const std::string_view> args) {
  parsed_args out;
  bool have_size = false, have_base = false, have_gen = false, have_rule = false;
  const auto bad_number = [&](std::string_view what, std::string_view text, const size_result& r) {
    out.error = "bad " + std::string(what) + " '" + std::string(text) + "': " + std::string(r.reason) + " (" +
                std::string(errno_name(r.error)) + ")";
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    const auto value_of = [&](std::string_view name, bool& seen) -> const std::string_view* {
      if (seen) {
        out.error = "option " + std::string(name) + " given twice (EINVAL)";
        return nullptr;
      }
      seen = true;
      if (i + 1 >= args.size()) {
        out.error = "option " + std::string(name) + " needs a value (EINVAL)";
        return nullptr;
      }
      return &args[++i];
    };
    if (arg == "--help" || arg == "-h") {
      out.opts.help = true;
    } else if (arg == "--json") {
      out.opts.json = true;
    } else if (arg == "--base") {
      const auto* v = value_of(arg, have_base);
      if (!v) return out;
      const auto r = parse_size(*v);
      if (!r.ok()) return bad_number("ADDR", *v, r), out;
      out.opts.base = r.bytes;
    } else if (arg == "--generation") {
      const auto* v = value_of(arg, have_gen);
      if (!v) return out;
      if (*v == "hopper") out.opts.generation = grace::generation::hopper;
      else if (*v == "blackwell") out.opts.generation = grace::generation::blackwell;
      else return out.error = "bad generation '" + std::string(*v) + "': expected hopper or blackwell (EINVAL)", out;
    } else if (arg == "--kernel-rule") {
      const auto* v = value_of(arg, have_rule);
      if (!v) return out;
      if (!grace::parse_kernel_rule(*v, out.opts.rule))
        return out.error = "bad kernel rule '" + std::string(*v) + "': expected current, 7.1, 6.18 or 6.13 (EINVAL)", out;
    } else if (arg.size() > 1 && arg[0] == '-' && !detail::is_digit(arg[1])) {
      out.error = "unknown option '" + std::string(arg) + "' (EINVAL)";
      return out;
    } else {
      if (have_size) {
        out.error = "more than one SIZE given ('" + std::string(arg) + "') (EINVAL)";
        return out;
      }
      have_size = true;
      const auto r = parse_size(arg);
      if (!r.ok()) return bad_number("SIZE", arg, r), out;
      out.opts.size = r.bytes;
    }
  }
  return out;
}

/// What the tool computes for one set of options.
struct report {
  options opts;
  grace::probe_outcome outcome;   ///< valid when error is {}
  nvgrace::errc error{};               ///< the probe failure (derive_layout's errno)
  std::string_view rule;           ///< the §2.3 rule behind `error`
  std::string_view plain_reason;   ///< why the device is plain (empty if emulated)
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

/// The one error line of a failed probe, e.g.
/// "1.25 GiB on Hopper: usable memory rounds down to 0 (EINVAL)".
[[nodiscard]] inline std::string error_line(const report& r) {
  grace::generation applied = r.opts.rule == grace::kernel_rule::v6_13 ? grace::generation::hopper : r.opts.generation;
  return human_size(r.opts.size) + " on " + generation_title(applied) + ": " + std::string(r.rule) + " (" +
         std::string(errno_name(r.error)) + ")";
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
  out += "\nindex  name    file offset     physical range                     real length              "
         "reported size            padding\n";
  for (const auto index : emulated_indices(l)) {
    const grace::memregion m = *l.region(index);
    std::string row = std::to_string(index) + "      " + std::string(grace::region_name(index)) + "  ";
    const auto pad = [](std::string s, std::size_t w) { return s.size() < w ? s + std::string(w - s.size(), ' ') : s + " "; };
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
    out += "  BAR register (config " + hex(window) + "-" + hex(window + 7) + "): reads " +
           hex_fixed(probe.before, 16) + "; after all-ones to both dwords reads " + hex_fixed(probe.after, 16) +
           " -> size " + hex(probe.size) + " (" + human_size(probe.size) + ")\n";
    const auto short_reply = reply_bytes(l, index, vfio::region_info_size);
    out += "  GET_REGION_INFO argsz 32 -> " + std::to_string(short_reply.size) + " bytes (asks for argsz " +
           std::to_string(grace::emulated_region_info_size) + "):\n";
    out += hex_dump(std::span<const std::byte>(short_reply.bytes).first(short_reply.size));
    const auto full_reply = reply_bytes(l, index, grace::emulated_region_info_size);
    out += "  GET_REGION_INFO argsz 64 -> " + std::to_string(full_reply.size) + " bytes (cap_offset 32, sparse area {0, " +
           hex(m.real_length) + "}):\n";
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

/// The JSON rendering of a successful report: one object (see docs/layout-explorer.md).
[[nodiscard]] inline std::string render_json(const report& r) {
  const options& o = r.opts;
  const auto str = [](std::string_view s) { return "\"" + std::string(s) + "\""; };
  const auto num = [](std::uint64_t v) { return std::to_string(v); };
  std::string out = "{";
  out += "\"mode\":" + str(grace::to_string(r.outcome.mode));
  out += ",\"generation\":" + str(grace::to_string(o.generation));
  out += ",\"layout_generation\":" + str(grace::to_string(r.outcome.layout.generation));
  out += ",\"kernel_rule\":" + str(grace::to_string(o.rule));
  out += ",\"base\":" + num(o.base);
  out += ",\"size\":" + num(o.size);
  out += ",\"regions\":[";
  if (r.outcome.mode == grace::mode::emulated) {
    const grace::layout& l = r.outcome.layout;
    bool first = true;
    for (const auto index : emulated_indices(l)) {
      const grace::memregion m = *l.region(index);
      const auto probe = sizing_probe(l, index);
      const auto short_reply = reply_bytes(l, index, vfio::region_info_size);
      const auto full_reply = reply_bytes(l, index, grace::emulated_region_info_size);
      if (!first) out += ",";
      first = false;
      out += "{\"index\":" + num(index);
      out += ",\"name\":" + str(grace::region_name(index));
      out += ",\"file_offset\":" + num(vfio::region_offset(index));
      out += ",\"phys\":" + num(m.phys_base);
      // Blackwell does not check base + length (§2.3): the end may not exist.
      const auto end = checked_add(m.phys_base, m.real_length);
      out += ",\"phys_end\":" + (end ? num(*end) : std::string("null"));
      out += ",\"real_length\":" + num(m.real_length);
      out += ",\"reported_size\":" + num(m.reported_size);
      out += ",\"padding\":" + num(m.padding());
      out += ",\"bar_window\":" + num(grace::bar_window(index));
      out += ",\"bar_probe\":{\"before\":" + num(probe.before) + ",\"after\":" + num(probe.after) +
             ",\"size\":" + num(probe.size) + "}";
      out += ",\"region_info\":{\"argsz_32\":" +
             str(hex_string(std::span<const std::byte>(short_reply.bytes).first(short_reply.size))) +
             ",\"argsz_64\":" + str(hex_string(std::span<const std::byte>(full_reply.bytes).first(full_reply.size))) +
             "}}";
    }
  }
  out += "]}\n";
  return out;
}

/// Run the tool: writes to `out` (stdout) and `err` (stderr), returns the exit status.
[[nodiscard]] inline int run(std::span<const std::string_view> args, std::string& out, std::string& err) {
  const auto parsed = parse_args(args);
  if (!parsed.error.empty()) {
    err += parsed.error + "\n";
    return 2;
  }
  if (parsed.opts.help) {
    out += usage_text;
    return 0;
  }
  const auto r = evaluate(parsed.opts);
  if (r.error != nvgrace::errc{}) {
    err += error_line(r) + "\n";
    return 1;
  }
  out += parsed.opts.json ? render_json(r) : render_text(r);
  return 0;
}

}  // namespace nvgrace::layout_tool
