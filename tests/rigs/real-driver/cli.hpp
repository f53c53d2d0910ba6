#pragma once
// Command-line options the guest and host programs of the real-driver rig share:
// the profile (what the firmware and the PCI function say), the seed and the size
// of the operation stream.

#include "ops.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvgrace::rig {

struct options {
  profile prof;
  std::uint64_t seed = 1;
  std::uint64_t ops = 1000;
  std::vector<std::string> rest;  ///< what the shared parser did not take
};

/// "4096", "0x20000000", "1M", "2G": a number with an optional binary suffix.
[[nodiscard]] inline std::optional<std::uint64_t> parse_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t mul = 1;
  const char last = text.back();
  if (text.size() > 1 && !(text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))) {
    if (last == 'K' || last == 'k')
      mul = KiB_;
    else if (last == 'M' || last == 'm')
      mul = MiB_;
    else if (last == 'G' || last == 'g')
      mul = GiB_;
    if (mul != 1) text.remove_suffix(1);
  }
  const std::string s(text);
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (end == s.c_str() || *end != '\0') return std::nullopt;
  return static_cast<std::uint64_t>(v) * mul;
}

/// Parse `--generation G --base B --size S --bar2-size N --bar4-size N --device-id ID --no-dvsec
/// --cxl --ready yes|never|MS --seed N --ops N`;
/// anything else is left in `rest`. Exits with status 2 on a bad value.
[[nodiscard]] inline options parse_options(int argc, char** argv, int first) {
  options o;
  for (int i = first; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto number = [&](std::uint64_t& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      const auto v = parse_number(argv[++i]);
      if (!v) {
        std::fprintf(stderr, "%s: not a number: %s\n", argv[i - 1], argv[i]);
        std::exit(2);
      }
      out = *v;
    };
    if (a == "--generation" && i + 1 < argc) {
      const std::string_view g = argv[++i];
      if (g == "hopper")
        o.prof.generation = gpu::hopper;
      else if (g == "blackwell")
        o.prof.generation = gpu::blackwell;
      else {
        std::fprintf(stderr, "--generation: hopper or blackwell, not %s\n", argv[i]);
        std::exit(2);
      }
    } else if (a == "--device-id") {
      std::uint64_t id = 0;
      number(id);
      o.prof.device_id = static_cast<std::uint16_t>(id);
    } else if (a == "--no-dvsec") {
      o.prof.dvsec = false;
    } else if (a == "--cxl") {
      o.prof.cxl = true;
    } else if (a == "--ready" && i + 1 < argc) {
      const std::string_view r = argv[++i];
      if (r == "yes")
        o.prof.ready_after_ms = 0;
      else if (r == "never")
        o.prof.ready_after_ms = -1;
      else if (const auto ms = parse_number(r))
        o.prof.ready_after_ms = static_cast<std::int64_t>(*ms);
      else {
        std::fprintf(stderr, "--ready: yes, never or milliseconds, not %s\n", argv[i]);
        std::exit(2);
      }
    } else if (a == "--base")
      number(o.prof.base);
    else if (a == "--size")
      number(o.prof.size);
    else if (a == "--bar2-size")
      number(o.prof.bar2_size);
    else if (a == "--bar4-size")
      number(o.prof.bar4_size);
    else if (a == "--seed")
      number(o.seed);
    else if (a == "--ops")
      number(o.ops);
    else
      o.rest.emplace_back(a);
  }
  return o;
}

}  // namespace nvgrace::rig
