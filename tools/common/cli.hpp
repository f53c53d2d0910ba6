#pragma once
/// \file
/// The command-line convention of the three nvgrace tools, in one place:
///
/// - `--help` (or `-h`) prints the usage to stdout and exits 0; `--version`
///   prints "TOOL VERSION" (include/nvgrace/version.hpp) and exits 0. Both win
///   over everything else on the line (before a `--`).
/// - Options are `--name value` or `--name=value`; a short option takes
///   `-x value` or `-xvalue`, and short flags group (`-vv`). `--` ends the
///   options: everything after it is an operand, even if it starts with '-'.
///   A lone `-` is an operand.
/// - An error is one line on stderr, `TOOL: error: SENTENCE (ERRNO)`. With
///   `--json` (where the tool has it) the failure is also a JSON document on
///   stdout: {"schema", "tool", "version", "error": {"errno", "name",
///   "message"}, "exit_status"}.
/// - Exit status: 0 success, 1 a check failed or a runtime failure, 2 bad
///   usage, 3 something could not be opened.
/// - Output that cannot be written (a full disk, `> /dev/full`) is an error
///   too: exit 1 with a line on stderr.
///
/// The parser knows nothing about what the options mean: it turns argv into
/// a list of (option, value) and operands, in order, or one usage error.

#include "json.hpp"

#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/size.hpp>
#include <nvgrace/version.hpp>

#include <cerrno>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nvgrace::tools::cli {

/// The exit statuses every tool uses.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;      ///< a check failed, or a runtime failure
inline constexpr int exit_usage = 2;        ///< bad arguments
inline constexpr int exit_cannot_open = 3;  ///< a device, socket or file could not be opened

/// The "Exit status" paragraph of every --help text.
inline constexpr std::string_view exit_status_help =
    "Exit status:\n"
    "  0  success\n"
    "  1  a check failed, or a failure at run time\n"
    "  2  bad usage (unknown option, bad value)\n"
    "  3  something could not be opened (device, socket, file)\n";

/// One option a tool accepts.
struct option {
  std::string_view name;        ///< "--size"
  char short_name = 0;          ///< 'v' for -v, 0 for none
  std::string_view value = {};  ///< the value's name ("SIZE"); empty for a flag
  bool repeatable = false;      ///< may be given more than once (-v -v); else twice is an error
  [[nodiscard]] constexpr bool takes_value() const noexcept { return !value.empty(); }
};

/// One parsed element of the command line.
struct item {
  const option* opt = nullptr;  ///< nullptr: an operand
  std::string_view value;       ///< the option's value (empty for a flag), or the operand
  std::string_view spelled;     ///< the option's long name ("--size"), for messages
};

/// The command line, or why it is not one.
struct command_line {
  std::vector<item> items;
  std::string error;  ///< a usage error (empty when the line parsed)
};

/// The flags that matter even when the rest of the line is wrong.
struct early_flags {
  bool help = false;
  bool version = false;
  bool json = false;
};

/// Look for --help/-h, --version and --json before any `--`.
[[nodiscard]] inline early_flags scan(std::span<const std::string_view> args) noexcept {
  early_flags f;
  for (const auto arg : args) {
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") f.help = true;
    if (arg == "--version") f.version = true;
    if (arg == "--json") f.json = true;
  }
  return f;
}

/// Split `args` (argv without argv[0]) by `options`.
[[nodiscard]] inline command_line parse(std::span<const std::string_view> args, std::span<const option> options) {
  command_line out;
  const auto by_name = [&](std::string_view name) -> const option* {
    for (const auto& o : options)
      if (o.name == name) return &o;
    return nullptr;
  };
  const auto by_letter = [&](char c) -> const option* {
    for (const auto& o : options)
      if (o.short_name != 0 && o.short_name == c) return &o;
    return nullptr;
  };
  // Add an option; false (with the error set) when it may not be given again.
  const auto add = [&](const option* o, std::string_view value) {
    if (!o->repeatable)
      for (const auto& earlier : out.items)
        if (earlier.opt == o) {
          out.error = "option '" + std::string(o->name) + "' given twice";
          return false;
        }
    out.items.push_back({o, value, o->name});
    return true;
  };
  bool operands_only = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (operands_only || arg == "-" || arg.empty() || arg[0] != '-') {
      out.items.push_back({nullptr, arg, {}});
      continue;
    }
    if (arg == "--") {
      operands_only = true;
      continue;
    }
    if (arg.starts_with("--")) {
      const auto eq = arg.find('=');
      const std::string_view name = arg.substr(0, eq);
      const option* o = by_name(name);
      if (o == nullptr) {
        out.error = "unknown option '" + std::string(name) + "'";
        return out;
      }
      bool added = false;
      if (!o->takes_value()) {
        if (eq != std::string_view::npos) {
          out.error = "option '" + std::string(name) + "' takes no value";
          return out;
        }
        added = add(o, {});
      } else if (eq != std::string_view::npos) {
        added = add(o, arg.substr(eq + 1));
      } else if (i + 1 < args.size()) {
        added = add(o, args[++i]);
      } else {
        out.error = "option '" + std::string(name) + "' needs a value (" + std::string(o->value) + ")";
        return out;
      }
      if (!added) return out;
      continue;
    }
    // Short options: -v, -vq, -xVALUE, -x VALUE.
    for (std::size_t at = 1; at < arg.size(); ++at) {
      const option* o = by_letter(arg[at]);
      if (o == nullptr) {
        out.error = std::string("unknown option '-") + arg[at] + "'";
        return out;
      }
      if (!o->takes_value()) {
        if (!add(o, {})) return out;
        continue;
      }
      bool added = false;
      if (at + 1 < arg.size()) {
        added = add(o, arg.substr(at + 1));
      } else if (i + 1 < args.size()) {
        added = add(o, args[++i]);
      } else {
        out.error = std::string("option '-") + arg[at] + "' needs a value (" + std::string(o->value) + ")";
        return out;
      }
      if (!added) return out;
      break;
    }
  }
  return out;
}

/// The usage error for a SIZE that did not parse: "bad SIZE '2G+x' (at
/// character 4): a size starts with a digit".
[[nodiscard]] inline std::string size_error(std::string_view what, std::string_view text, const size_parse& r) {
  std::string out = "bad " + std::string(what) + " '" + std::string(text) + "'";
  if (r.position > 0) out += " (at character " + std::to_string(r.position + 1) + ")";
  return out + ": " + std::string(r.reason);
}

/// A tool: its name and, if it has --json, its JSON schema ("nvgrace-layout/1").
struct tool {
  std::string_view name;
  std::string_view schema = {};
};

/// "nvgrace-layout 0.1.0\n".
[[nodiscard]] inline std::string version_text(const tool& t) {
  return std::string(t.name) + " " + std::string(nvgrace::version.string) + "\n";
}

/// The members every JSON document of `t` starts with: schema, tool, version.
inline void begin_document(json::writer& w, const tool& t) {
  w.begin_object();
  w.member("schema", t.schema);
  w.member("tool", t.name);
  w.member("version", nvgrace::version.string);
}

/// The symbolic name of an errno as every tool writes it: the library's
/// errno_name ("ENOENT"), or the number when Linux has no name for it (where
/// errno_name says "E?"). The one errno-name helper of the tools.
[[nodiscard]] inline std::string errno_symbol(nvgrace::errc e) {
  if (errno_name(e) != "E?") return std::string(errno_name(e));
  return std::to_string(static_cast<int>(e));
}

/// One error, in both forms.
struct failure {
  int status = exit_failure;
  nvgrace::errc error = nvgrace::errc::invalid_argument;
  std::string message;    ///< the sentence, without the tool name or errno
  std::string hint = {};  ///< text after the errno on the stderr line only ("; see 'TOOL --help'")
};

/// "TOOL: error: SENTENCE (ERRNO)[HINT]\n".
[[nodiscard]] inline std::string error_line(const tool& t, const failure& f) {
  return std::string(t.name) + ": error: " + f.message + " (" + errno_symbol(f.error) + ")" + f.hint + "\n";
}

/// The --json form of a failure: one line.
[[nodiscard]] inline std::string error_json(const tool& t, const failure& f) {
  json::writer w;
  begin_document(w, t);
  w.key("error");
  w.begin_object();
  w.member("errno", static_cast<int>(f.error));
  w.member("name", errno_symbol(f.error));
  w.member("message", f.message);
  w.end_object();
  w.member("exit_status", f.status);
  w.end_object();
  return w.str() + "\n";
}

/// What a run writes and returns: stdout text, stderr text, exit status.
struct outcome {
  std::string out;
  std::string err;
  int status = exit_ok;

  /// Record a failure: the line on stderr, and with `json` the document on stdout.
  outcome& fail(const tool& t, const failure& f, bool json) {
    err += error_line(t, f);
    if (json) out += error_json(t, f);
    status = f.status;
    return *this;
  }
  /// A usage error (exit 2, EINVAL); the sentence gets a pointer to --help.
  outcome& usage(const tool& t, std::string_view message, bool json) {
    return fail(t,
                {exit_usage, nvgrace::errc::invalid_argument, std::string(message),
                 "; see '" + std::string(t.name) + " --help'"},
                json);
  }
};

/// The common start of every tool's run: --help and --version (which win over
/// the rest of the line), then the parse. Returns true when the run is over
/// (help, version or a usage error is in `o`).
[[nodiscard]] inline bool start(const tool& t, std::span<const std::string_view> args, std::span<const option> options,
                                std::string_view help_text, command_line& line, outcome& o) {
  const auto early = scan(args);
  if (early.help) {
    o.out += help_text;
    return true;
  }
  if (early.version) {
    o.out += version_text(t);
    return true;
  }
  line = parse(args, options);
  if (!line.error.empty()) {
    o.usage(t, line.error, early.json && !t.schema.empty());
    return true;
  }
  return false;
}

/// Write `text` to a stream; false (errno set) when it cannot be written.
[[nodiscard]] inline bool write_all(std::FILE* stream, std::string_view text) noexcept {
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), stream) != text.size()) return false;
  return std::fflush(stream) == 0 && std::ferror(stream) == 0;
}

/// Write an outcome and return the exit status. Output that cannot be written
/// (ENOSPC on `> /dev/full`, EPIPE with SIGPIPE ignored, EIO) is a failure:
/// one line on stderr and exit 1 (or the run's own status if that was already
/// a failure).
[[nodiscard]] inline int finish(const tool& t, const outcome& o) {
  errno = 0;
  const bool out_ok = write_all(stdout, o.out);
  const int out_errno = errno != 0 ? errno : EIO;
  static_cast<void>(write_all(stderr, o.err));
  if (out_ok) return o.status;
  const auto e = static_cast<nvgrace::errc>(out_errno);
  std::fprintf(stderr, "%.*s: error: cannot write to standard output: %s (%s)\n", static_cast<int>(t.name.size()),
               t.name.data(), std::string(errno_message(e)).c_str(), errno_symbol(e).c_str());
  return o.status != exit_ok ? o.status : exit_failure;
}

/// argv[1..] as views.
[[nodiscard]] inline std::vector<std::string_view> arguments(int argc, char** argv) {
  std::vector<std::string_view> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return args;
}

}  // namespace nvgrace::tools::cli
