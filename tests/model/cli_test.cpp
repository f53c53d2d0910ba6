// The command-line convention shared by the three tools (tools/common/cli.hpp):
// option forms, "--", errors, --help/--version/--json scanning, the error line
// and the JSON error document.
#include "cli.hpp"

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace cli = nvgrace::tools::cli;

constexpr std::array<cli::option, 5> options{{
    {"--size", 's', "SIZE"},
    {"--json"},
    {"--verbose", 'v', {}, true},
    {"--quiet", 'q', {}, true},
    {"--help", 'h'},
}};

struct flat {
  std::vector<std::string> items;  // "--size=4K", "operand:x"
  std::string error;
};

flat parse(std::vector<std::string_view> args) {
  const auto line = cli::parse(args, options);
  flat out{{}, line.error};
  for (const auto& item : line.items)
    out.items.push_back(item.opt == nullptr ? "operand:" + std::string(item.value)
                                            : std::string(item.opt->name) + "=" + std::string(item.value));
  return out;
}

using list = std::vector<std::string>;

TEST_CASE("cli: --opt value, --opt=value, -x value, -xvalue and grouped short flags") {
  CHECK(parse({"--size", "4K"}).items == list{"--size=4K"});
  CHECK(parse({"--size=4K"}).items == list{"--size=4K"});
  CHECK(parse({"--size="}).items == list{"--size="});
  CHECK(parse({"--size=a=b"}).items == list{"--size=a=b"});
  CHECK(parse({"-s", "4K"}).items == list{"--size=4K"});
  CHECK(parse({"-s4K"}).items == list{"--size=4K"});
  CHECK(parse({"-vvq"}).items == list{"--verbose=", "--verbose=", "--quiet="});
  CHECK(parse({"-vs4K"}).items == list{"--verbose=", "--size=4K"});
  CHECK(parse({"--size", "-1"}).items == list{"--size=-1"});  // a value may start with '-'
  CHECK(parse({"x", "--json", "y"}).items == list{"operand:x", "--json=", "operand:y"});
}

TEST_CASE("cli: -- ends the options; a lone - is an operand") {
  CHECK(parse({"--", "--json", "-v"}).items == list{"operand:--json", "operand:-v"});
  CHECK(parse({"--json", "--", "--"}).items == list{"--json=", "operand:--"});
  CHECK(parse({"-"}).items == list{"operand:-"});
  CHECK(parse({"--"}).items.empty());
  CHECK(parse({""}).items == list{"operand:"});
}

TEST_CASE("cli: usage errors") {
  CHECK(parse({"--frobnicate"}).error == "unknown option '--frobnicate'");
  CHECK(parse({"--frobnicate=1"}).error == "unknown option '--frobnicate'");
  CHECK(parse({"-z"}).error == "unknown option '-z'");
  CHECK(parse({"-vz"}).error == "unknown option '-z'");
  CHECK(parse({"--size"}).error == "option '--size' needs a value (SIZE)");
  CHECK(parse({"-s"}).error == "option '-s' needs a value (SIZE)");
  CHECK(parse({"--json=1"}).error == "option '--json' takes no value");
  CHECK(parse({"--size=1", "--size", "2"}).error == "option '--size' given twice");
  CHECK(parse({"--json", "--json"}).error == "option '--json' given twice");
  CHECK(parse({"-v", "--verbose", "-vv"}).error.empty());          // repeatable
  CHECK(parse({"--siz", "1"}).error == "unknown option '--siz'");  // no abbreviations
}

TEST_CASE("cli: --help, --version and --json are found before any --, whatever else is wrong") {
  const auto scan = [](std::vector<std::string_view> args) { return cli::scan(args); };
  CHECK(scan({"--bogus", "--help"}).help);
  CHECK(scan({"-h"}).help);
  CHECK(scan({"x", "--version"}).version);
  CHECK(scan({"--size", "12XB", "--json"}).json);
  CHECK_FALSE(scan({"--", "--help"}).help);
  CHECK_FALSE(scan({"--", "--json"}).json);
}

TEST_CASE("cli: the error line and the JSON error document") {
  constexpr cli::tool tool{"nvgrace-x", "nvgrace-x/1"};
  const cli::failure f{cli::exit_cannot_open, nvgrace::errc::no_such_file_or_directory, "no \"device\" here"};
  CHECK(cli::error_line(tool, f) == "nvgrace-x: error: no \"device\" here (ENOENT)\n");
  CHECK(cli::error_json(tool, f) == "{\"schema\":\"nvgrace-x/1\",\"tool\":\"nvgrace-x\",\"version\":\"" +
                                        std::string(nvgrace::version.string) +
                                        "\",\"error\":{\"errno\":2,\"name\":\"ENOENT\",\"message\":\"no \\\"device\\\" "
                                        "here\"},\"exit_status\":3}\n");
  cli::outcome o;
  o.usage(tool, "unknown option '--x'", false);
  CHECK(o.status == cli::exit_usage);
  CHECK(o.out.empty());
  CHECK(o.err == "nvgrace-x: error: unknown option '--x' (EINVAL); see 'nvgrace-x --help'\n");
  CHECK(cli::version_text(tool) == "nvgrace-x " + std::string(nvgrace::version.string) + "\n");
  // An errno Linux has no name for is given by number.
  CHECK(cli::errno_symbol(static_cast<nvgrace::errc>(4000)) == "4000");
}

TEST_CASE("cli: start() handles --help, --version and usage errors for the tool") {
  constexpr cli::tool tool{"nvgrace-x", "nvgrace-x/1"};
  const auto start = [&](std::vector<std::string_view> args) {
    cli::outcome o;
    cli::command_line line;
    const bool done = cli::start(tool, args, options, "HELP\n", line, o);
    return std::pair{done, o};
  };
  CHECK(start({"--help"}).second.out == "HELP\n");
  CHECK(start({"--version"}).second.out == "nvgrace-x " + std::string(nvgrace::version.string) + "\n");
  const auto [done, o] = start({"--json", "--bogus"});
  CHECK(done);
  CHECK(o.status == 2);
  CHECK(o.out.find("\"error\":{\"errno\":22,\"name\":\"EINVAL\",\"message\":\"unknown option '--bogus'\"}") !=
        std::string::npos);
  CHECK_FALSE(start({"--size", "1"}).first);
}

TEST_CASE("cli: size_error points at the character") {
  CHECK(cli::size_error("SIZE", "2G+x", nvgrace::parse_size("2G+x")) ==
        "bad SIZE '2G+x' (at character 4): a size starts with a digit");
  CHECK(cli::size_error("SIZE", "", nvgrace::parse_size("")) == "bad SIZE '': empty size");
}

}  // namespace
