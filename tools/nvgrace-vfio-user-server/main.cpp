// nvgrace-vfio-user-server: serve an emulated Grace GPU (the in-process shim
// device) to a vfio-user client (QEMU vfio-user-pci, cloud-hypervisor
// --user-device, vfio_user::client) on a UNIX socket.
//
//   nvgrace-vfio-user-server --socket PATH [--size SIZE] [--generation hopper|blackwell]
//                            [--memory-file PATH]
//   nvgrace-vfio-user-server --socket PATH --physical [--generation G] [--device-id ID]
//                            [--bar2-size SIZE] [--bar4-size SIZE] [--ready yes|never|MS]
//                            [--no-dvsec] [--cxl]
//   nvgrace-vfio-user-server --print-ssdt --base ADDR --size SIZE [--slot N] [--function N]
//                            [--acpi-name NAME]
//
// GPU memory is a memfd, or the file given with --memory-file (created or
// extended to SIZE; its bytes survive restarts). --physical serves the PCI
// function as the host sees it before the variant driver binds (the driver then
// takes the GPU memory from ACPI, see --print-ssdt). One client at a time; a
// client that disconnects loses its DMA windows and IRQ eventfds, the device
// and its memory stay. Runs in the foreground; SIGTERM or SIGINT stops it
// cleanly (exit 0, socket removed). Logs one line per connection and one per
// error to stderr.

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/mem/memfd_memory.hpp>

#include "ssdt.hpp"

#include <signal.h>
#include <unistd.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace {

using namespace nvgrace;

constexpr const char* program = "nvgrace-vfio-user-server";

constexpr const char* usage_text =
    "usage: nvgrace-vfio-user-server --socket PATH [--size SIZE] [--generation hopper|blackwell]\n"
    "                                [--memory-file PATH]\n"
    "\n"
    "Serve an emulated NVIDIA Grace GPU (nvgrace-gpu semantics) over vfio-user.\n"
    "\n"
    "  --socket PATH        UNIX socket to listen on (must not exist; removed on exit)\n"
    "  --size SIZE          GPU memory in bytes, with an optional K, M, G or T suffix (binary);\n"
    "                       default 2G. Hopper needs at least 1536M (1 GiB resmem carve-out)\n"
    "  --generation GEN     hopper (default: resmem region 2 + usemem region 4) or\n"
    "                       blackwell (usemem region 4 only)\n"
    "  --memory-file PATH   keep GPU memory in this regular file (created or extended to SIZE)\n"
    "                       instead of a memfd, so it survives restarts\n"
    "  --help               this text\n"
    "\n"
    "The physical function (for a guest that runs the real nvgrace-gpu driver):\n"
    "  --physical           serve the PCI function before the variant driver: ids, class 0x0302,\n"
    "                       BAR0 with the readiness registers, PCIe FLR, the NVIDIA DVSEC (its\n"
    "                       MIG bit from --generation), small real BARs 2 and 4; no GPU memory\n"
    "                       (the driver finds that through ACPI: see --print-ssdt)\n"
    "  --device-id ID       PCI device id (default 0x2342 for hopper, 0x2941 for blackwell)\n"
    "  --bar2-size SIZE     size of the function's BAR2 (power of two >= 4K; 0: none; default 1M)\n"
    "  --bar4-size SIZE     size of the function's BAR4 (as --bar2-size; default 1M)\n"
    "  --ready yes|never|MS the BAR0 readiness registers (0x1498, 0x200BC) read 0xFF, 0, or 0xFF\n"
    "                       from MS milliseconds after start and after each reset\n"
    "  --no-dvsec           no NVIDIA DVSEC (the driver then takes any device for Hopper)\n"
    "  --cxl                a CXL device DVSEC whose memory is valid and active (7.2 polls it)\n"
    "\n"
    "The matching firmware table:\n"
    "  --print-ssdt         print the ASL of an SSDT whose _DSD gives the function at --slot\n"
    "                       the GPU memory --base/--size, then exit (compile it with iasl)\n"
    "  --base ADDR          physical base of the GPU memory (nvidia,gpu-mem-base-pa)\n"
    "  --slot N             PCI slot on the root bus (default 0x10), --function N (default 0)\n"
    "  --acpi-name NAME     the ACPI device name (default GPU0)\n"
    "\n"
    "One client at a time. SIGTERM or SIGINT: clean exit 0. Logs go to stderr.\n";

using device = shim::device<mem::memfd_memory>;
using server = vfio_user::server<device>;

server* running = nullptr;  // for the signal handler

extern "C" void on_stop_signal(int) {
  if (running != nullptr) running->request_stop();  // atomics and shutdown(2): async-signal-safe
}

struct arguments {
  std::string socket;
  std::uint64_t size = 2 * GiB;
  bool size_given = false;
  grace::generation generation = grace::generation::hopper;
  std::string memory_file;
  // --physical
  bool physical = false;
  std::optional<std::uint16_t> device_id;
  std::uint64_t bar2_size = 1 * MiB;
  std::uint64_t bar4_size = 1 * MiB;
  std::optional<std::uint64_t> ready_after_ms = 0;
  bool dvsec = true;
  bool cxl = false;
  // --print-ssdt
  bool print_ssdt = false;
  std::optional<std::uint64_t> base;
  unsigned slot = 0x10;
  unsigned function = 0;
  std::string acpi_name = "GPU0";
};

/// The symbolic name of an errno ("EADDRINUSE").
std::string name_of(nvgrace::errc e) { return std::string(errno_name(e)); }

[[noreturn]] void bad_argument(const std::string& rule, nvgrace::errc error = nvgrace::errc::invalid_argument) {
  std::fprintf(stderr, "%s: %s (%s)\n", program, rule.c_str(), name_of(error).c_str());
  std::exit(2);
}

/// "2G", "1536M", "4096", "0x40000000": a byte count with an optional binary suffix.
std::optional<std::uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  std::uint64_t multiplier = 1;
  const char last = text.back();
  if (base == 10 && std::strchr("KkMmGgTt", last) != nullptr) {
    switch (last) {
      case 'K': case 'k': multiplier = KiB; break;
      case 'M': case 'm': multiplier = MiB; break;
      case 'G': case 'g': multiplier = GiB; break;
      default: multiplier = TiB; break;
    }
    text.remove_suffix(1);
  }
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    unsigned digit = 0;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') digit = static_cast<unsigned>(c - 'A' + 10);
    else return std::nullopt;
    const auto scaled = checked_mul(value, static_cast<std::uint64_t>(base));
    if (!scaled) return std::nullopt;
    const auto next = checked_add(*scaled, digit);
    if (!next) return std::nullopt;
    value = *next;
  }
  const auto bytes = checked_mul(value, multiplier);
  if (!bytes || *bytes == 0) return std::nullopt;
  return *bytes;
}

/// A number that may be 0 ("0", "0x2342", "1M"); parse_size for the rest.
std::optional<std::uint64_t> parse_count(std::string_view text) {
  if (text == "0" || text == "0x0" || text == "0X0") return 0;
  return parse_size(text);
}

arguments parse(int argc, char** argv) {
  arguments a;
  bool have_socket = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> std::string_view {
      // --name VALUE or --name=VALUE
      if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=')
        return arg.substr(name.size() + 1);
      if (i + 1 >= argc) bad_argument(std::string(name) + " needs a value");
      return argv[++i];
    };
    auto is = [&](std::string_view name) {
      return arg == name || (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=');
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage_text, stdout);
      std::exit(0);
    } else if (is("--socket")) {
      a.socket = value("--socket");
      have_socket = true;
      if (a.socket.empty()) bad_argument("--socket needs a non-empty path");
    } else if (is("--size")) {
      const auto text = value("--size");
      const auto size = parse_size(text);
      if (!size) bad_argument("--size must be a positive byte count like 2G, 1536M or 0x80000000, not '" +
                              std::string(text) + "'");
      a.size = *size;
      a.size_given = true;
    } else if (is("--generation")) {
      const auto text = value("--generation");
      if (text == "hopper") a.generation = grace::generation::hopper;
      else if (text == "blackwell") a.generation = grace::generation::blackwell;
      else bad_argument("--generation must be hopper or blackwell, not '" + std::string(text) + "'");
    } else if (is("--memory-file")) {
      a.memory_file = value("--memory-file");
      if (a.memory_file.empty()) bad_argument("--memory-file needs a non-empty path");
    } else if (arg == "--physical") {
      a.physical = true;
    } else if (is("--device-id")) {
      const auto text = value("--device-id");
      const auto id = parse_count(text);
      if (!id || *id > 0xFFFF) bad_argument("--device-id must be a 16-bit number like 0x2342, not '" + std::string(text) + "'");
      a.device_id = static_cast<std::uint16_t>(*id);
    } else if (is("--bar2-size") || is("--bar4-size")) {
      const bool bar2 = arg.substr(0, 11) == "--bar2-size";
      const auto text = value(bar2 ? "--bar2-size" : "--bar4-size");
      const auto size = parse_count(text);
      if (!size || (*size != 0 && (!std::has_single_bit(*size) || *size < 4 * KiB)))
        bad_argument(std::string(bar2 ? "--bar2-size" : "--bar4-size") +
                     " must be 0 or a power of two of at least 4K, not '" + std::string(text) + "'");
      (bar2 ? a.bar2_size : a.bar4_size) = *size;
    } else if (is("--ready")) {
      const auto text = value("--ready");
      const auto ms = parse_count(text);
      if (text == "yes") a.ready_after_ms = 0;
      else if (text == "never") a.ready_after_ms = std::nullopt;
      else if (ms) a.ready_after_ms = *ms;
      else bad_argument("--ready must be yes, never or milliseconds, not '" + std::string(text) + "'");
    } else if (arg == "--no-dvsec") {
      a.dvsec = false;
    } else if (arg == "--cxl") {
      a.cxl = true;
    } else if (arg == "--print-ssdt") {
      a.print_ssdt = true;
    } else if (is("--base")) {
      const auto text = value("--base");
      const auto base = parse_count(text);
      if (!base) bad_argument("--base must be an address like 0x200000000, not '" + std::string(text) + "'");
      a.base = *base;
    } else if (is("--slot") || is("--function")) {
      const bool slot = arg.substr(0, 6) == "--slot";
      const auto text = value(slot ? "--slot" : "--function");
      const auto n = parse_count(text);
      if (!n || *n > (slot ? 31u : 7u))
        bad_argument(std::string(slot ? "--slot must be 0..31" : "--function must be 0..7") + ", not '" +
                     std::string(text) + "'");
      (slot ? a.slot : a.function) = static_cast<unsigned>(*n);
    } else if (is("--acpi-name")) {
      a.acpi_name = std::string(value("--acpi-name"));
      if (!tools::ssdt::valid_name(a.acpi_name))
        bad_argument("--acpi-name must be four characters of A-Z, 0-9 and _, not '" + a.acpi_name + "'");
    } else {
      bad_argument("unknown argument '" + std::string(arg) + "' (see --help)");
    }
  }
  if (a.print_ssdt) {
    if (!a.base || !a.size_given) bad_argument("--print-ssdt needs --base and --size");
    return a;
  }
  if (!have_socket) bad_argument("--socket PATH is required (see --help)");
  if (a.physical && !a.memory_file.empty())
    bad_argument("--physical serves no GPU memory: --memory-file does not apply");
  return a;
}

struct log_context {
  std::uint64_t connection = 0;
};

void log_event(void* context, const vfio_user::event& e) noexcept {
  auto& log = *static_cast<log_context*>(context);
  using kind = vfio_user::event::kind;
  switch (e.what) {
    case kind::connected:
      ++log.connection;
      if (e.peer_pid >= 0)
        std::fprintf(stderr, "%s: connection %llu from pid %d\n", program,
                     static_cast<unsigned long long>(log.connection), e.peer_pid);
      else
        std::fprintf(stderr, "%s: connection %llu\n", program, static_cast<unsigned long long>(log.connection));
      break;
    case kind::error_reply:
      std::fprintf(stderr, "%s: connection %llu: %s (id %u) refused: %s%s\n", program,
                   static_cast<unsigned long long>(log.connection),
                   std::string(vfio_user::command_name(e.request.command)).c_str(), e.request.id,
                   name_of(e.error).c_str(),
                   e.replied ? "" : " (NO_REPLY: not answered)");
      break;
    case kind::framing_error:
      std::fprintf(stderr, "%s: connection %llu: unframeable message (size %u): %s, closing\n", program,
                   static_cast<unsigned long long>(log.connection), e.request.size, name_of(e.error).c_str());
      break;
    case kind::socket_error:
      std::fprintf(stderr, "%s: connection %llu: socket error: %s\n", program,
                   static_cast<unsigned long long>(log.connection), name_of(e.error).c_str());
      break;
    case kind::disconnected: {
      // What the connection carried, so an operator (or a test) can see which accesses
      // were trapped: "closed after 412 messages: VERSION 1, DMA_MAP 34, ...".
      std::string line;
      if (e.counts != nullptr) {
        for (std::size_t c = 0; c < e.counts->by_command.size(); ++c) {
          if (e.counts->by_command[c] == 0) continue;
          line += line.empty() ? ": " : ", ";
          line += std::string(vfio_user::command_name(static_cast<std::uint16_t>(c))) + " " +
                  std::to_string(e.counts->by_command[c]);
          // Region accesses also say which regions they were for: "REGION_READ 3 (region 4: 1, region 7: 2)".
          const auto* per_region = c == static_cast<std::size_t>(vfio_user::command::region_read)    ? &e.counts->reads_by_region
                                   : c == static_cast<std::size_t>(vfio_user::command::region_write) ? &e.counts->writes_by_region
                                                                                                     : nullptr;
          if (per_region != nullptr) {
            std::string regions;
            for (std::size_t r = 0; r < per_region->size(); ++r) {
              if ((*per_region)[r] == 0) continue;
              regions += regions.empty() ? " (" : ", ";
              regions += (r < 9 ? "region " + std::to_string(r) : std::string("region >8")) + ": " +
                         std::to_string((*per_region)[r]);
            }
            if (!regions.empty()) line += regions + ")";
          }
        }
        if (e.counts->unknown != 0) line += (line.empty() ? ": " : ", ") + std::string("UNKNOWN ") + std::to_string(e.counts->unknown);
      }
      std::fprintf(stderr, "%s: connection %llu closed after %llu messages%s\n", program,
                   static_cast<unsigned long long>(log.connection), static_cast<unsigned long long>(e.messages),
                   line.c_str());
      break;
    }
    case kind::negotiated:
      break;
  }
}

/// The device, with its GPU memory in a memfd or in the memory file.
result<device> create_device(const arguments& args, const shim::device_options& options) {
  if (args.memory_file.empty()) return device::create(options);
  // The options are checked first, so a size the driver refuses leaves no file behind.
  if (auto s = device::check_options(options); !s) return s.error();
  auto memory = mem::memfd_memory::open_file(args.memory_file.c_str(), args.size);
  if (!memory) return memory.error();
  return device::create(options, std::move(*memory));
}

}  // namespace

/// --physical: the bare function before the variant driver (the ids and DVSEC
/// of the generation, its own small BARs); --ready never: C2C link and HBM
/// training never report ready, so the driver's probe times out; --ready MS:
/// they report ready MS after start and after each reset; --no-dvsec, --cxl:
/// which DVSECs the function has.
shim::device_options physical_options(const arguments& args) {
  shim::device_options options = shim::physical(args.generation, args.bar2_size, args.bar4_size);
  options.device_id = args.device_id;
  options.readiness.ready_after_ms = args.ready_after_ms;
  options.nvidia_dvsec = args.dvsec;
  if (args.cxl) options.cxl = shim::cxl_readiness{};
  return options;
}

int main(int argc, char** argv) {
  const arguments args = parse(argc, argv);

  if (args.print_ssdt) {
    tools::ssdt::description d;
    d.base = *args.base;
    d.size = args.size;
    d.slot = args.slot;
    d.function = args.function;
    d.name = args.acpi_name;
    std::fputs(tools::ssdt::asl(d).c_str(), stdout);
    return 0;
  }

  const auto options = args.physical                                 ? physical_options(args)
                       : args.generation == grace::generation::hopper ? shim::hopper(args.size)
                                                                      : shim::blackwell(args.size);
  auto created = create_device(args, options);
  if (!created) {
    std::string rule = "cannot create the device";
    if (args.physical)
      rule += " (--physical: is --device-id in the driver's table?)";
    else if (args.generation == grace::generation::hopper && args.size < 1536 * MiB)
      rule += ": a Hopper device needs --size of at least 1536M (§2.3)";
    else if (!args.memory_file.empty())
      rule += " with memory file '" + args.memory_file + "'";
    bad_argument(rule, created.error());
  }
  device dev = std::move(*created);

  log_context log;
  vfio_user::server_options server_options;
  server_options.on_event = log_event;
  server_options.event_context = &log;
  server srv(dev, server_options);
  if (auto s = srv.listen(args.socket.c_str()); !s) {
    std::string rule = "cannot listen on '" + args.socket + "'";
    if (s.error() == nvgrace::errc::address_in_use) rule += ": the path exists (remove it or choose another)";
    bad_argument(rule, s.error());
  }

  running = &srv;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: blocked calls return so the stop is seen
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  const std::string amount = args.size % GiB == 0   ? std::to_string(args.size / GiB) + " GiB"
                             : args.size % MiB == 0 ? std::to_string(args.size / MiB) + " MiB"
                                                    : std::to_string(args.size) + " bytes";
  const std::string where = args.memory_file.empty() ? "a memfd" : "'" + args.memory_file + "'";
  if (args.physical)
    std::fprintf(stderr, "%s: listening on %s (physical function %04x, %s, BAR2 %llu KiB, BAR4 %llu KiB, %s)\n",
                 program, args.socket.c_str(), dev.device_id(),
                 args.generation == grace::generation::hopper ? "hopper" : "blackwell",
                 static_cast<unsigned long long>(args.bar2_size / KiB),
                 static_cast<unsigned long long>(args.bar4_size / KiB),
                 (!args.ready_after_ms      ? std::string("never ready")
                  : *args.ready_after_ms == 0 ? std::string("ready")
                                              : "ready after " + std::to_string(*args.ready_after_ms) + " ms")
                     .c_str());
  else
    std::fprintf(stderr, "%s: listening on %s (%s, %s of GPU memory in %s)\n", program, args.socket.c_str(),
                 args.generation == grace::generation::hopper ? "hopper" : "blackwell", amount.c_str(), where.c_str());
  const auto result = srv.run();
  running = nullptr;
  ::unlink(args.socket.c_str());
  if (!result) {
    std::fprintf(stderr, "%s: accept failed: %s\n", program, name_of(result.error()).c_str());
    return 1;
  }
  std::fprintf(stderr, "%s: stopped\n", program);
  return 0;
}
