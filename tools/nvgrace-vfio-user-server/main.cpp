// nvgrace-vfio-user-server: serve an emulated Grace GPU (the in-process shim
// device) to a vfio-user client (QEMU vfio-user-pci, cloud-hypervisor
// --user-device, vfio_user::client) on a UNIX socket. See
// docs/vfio-user-server.md for running it as a service.
//
// It follows the conventions the vfio-user specification borrows from
// vhost-user for backend programs: it stays in the foreground, takes its socket
// as --socket-path PATH or as an inherited listening fd (--fd N, or systemd
// socket activation through LISTEN_FDS/LISTEN_PID), keeps fds 0/1/2 as they
// are, and stops cleanly on SIGTERM. It also tells a service manager when it
// is ready (NOTIFY_SOCKET: READY=1, and STOPPING=1 on the way out).
//
// --physical serves the PCI function as the host sees it before the variant
// driver binds, for a guest whose own kernel runs nvgrace-gpu (the driver then
// finds the GPU memory through ACPI: --print-ssdt prints the table).

#include "../common/cli.hpp"
#include "ssdt.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/size.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/mem/memfd_memory.hpp>
#include <nvgrace/posix/unique_fd.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace nvgrace;
namespace cli = nvgrace::tools::cli;
using nvgrace::posix::unique_fd;

constexpr cli::tool tool{"nvgrace-vfio-user-server"};

constexpr std::string_view usage_text =
    R"(Usage: nvgrace-vfio-user-server [OPTIONS] --socket-path PATH
       nvgrace-vfio-user-server [OPTIONS] --fd N
       nvgrace-vfio-user-server [OPTIONS]        (socket activation)
       nvgrace-vfio-user-server --print-ssdt --base ADDR --size SIZE [OPTIONS]

Serve an emulated NVIDIA Grace GPU (the nvgrace-gpu rules) to a vfio-user
client such as QEMU's vfio-user-pci device, on a UNIX socket. One client at a
time; a client that goes away loses its DMA windows and interrupts, the device
and its memory stay for the next one. Runs in the foreground and logs to
stderr.

Socket:
  --socket-path PATH     listen on a new UNIX socket at PATH (--socket PATH is
                         the same). A socket file nobody answers on (left by a
                         crash) is replaced; a live one or any other file is
                         refused. PATH is removed on exit.
  --fd N                 listen on the inherited listening socket N instead
  --socket-mode MODE     permissions of PATH, in octal (default: the umask's)
  --socket-group GROUP   group of PATH, a name or a number
  With neither --socket-path nor --fd, the socket comes from systemd-style
  socket activation: LISTEN_FDS=1 and LISTEN_PID=<this process>, fd 3.

Device:
  --size SIZE            GPU memory; default 2G. SIZE is bytes (4096), hex
                         (0x1000), a number with a binary unit (K, M, G, T or
                         KiB, MiB, GiB, TiB) or a sum (2G+12345). Hopper needs
                         at least 1536M (its 1 GiB carve-out); no BAR may
                         exceed the 1 TiB VFIO region window
  --generation GEN       hopper (the default: regions 2 and 4) or blackwell
                         (region 4 only)
  --memory-file PATH     keep GPU memory in this regular file (created or
                         extended to SIZE) instead of a memfd, so it survives
                         restarts
  --no-share-fds         never hand a client the fd of a region (no MMAP):
                         every access is a REGION_READ/WRITE message. Use it
                         when the client is not trusted with the memory file
  --no-flr               the function cannot be reset: no FLR in the PCIe
                         device capabilities, no RESET in DEVICE_GET_INFO,
                         DEVICE_RESET is refused (EINVAL); also with --physical

The physical function (for a guest that runs the real nvgrace-gpu driver):
  --physical             serve the PCI function before the variant driver:
                         ids, class 0x0302, BAR0 with the readiness registers,
                         PCIe FLR, the NVIDIA DVSEC (its bit from
                         --generation), small real BARs 2 and 4; no GPU memory
                         (the driver finds it through ACPI: see --print-ssdt)
  --device-id ID         PCI device id (default 0x2342 for hopper, 0x2941 for
                         blackwell); must be in the driver's table
  --bar2-size SIZE       the function's BAR2: 0 (none) or a power of two of at
                         least 4K; default 1M
  --bar4-size SIZE       the function's BAR4, as --bar2-size; default 1M
  --ready WHEN           the BAR0 readiness registers (0x1498, 0x200BC): yes
                         (ready; the default), never, or a number of
                         milliseconds after start and after each reset
  --no-dvsec             no NVIDIA DVSEC (the driver then takes any device for
                         Hopper)
  --cxl                  a CXL device DVSEC whose memory is valid and active
                         (Linux 7.2 polls it instead of BAR0)

The firmware table for --physical:
  --print-ssdt           print the ASL of an SSDT whose _DSD gives the function
                         at --slot/--function the GPU memory --base/--size,
                         then exit (compile it with iasl)
  --base ADDR            physical base of the GPU memory (nvidia,gpu-mem-base-pa)
  --slot N               PCI slot on the root bus, 0..31 (default 0x10)
  --function N           PCI function, 0..7 (default 0)
  --acpi-name NAME       the ACPI device name: four of A-Z, 0-9, _ (default GPU0)

Deadlines:
  --handshake-timeout MS  from connecting to a successful VERSION; default
                          10000 (a client that connects and says nothing
                          cannot hold the device)
  --message-timeout MS    from a message's first byte to its last; default
                          10000
  --idle-timeout MS       between two messages once negotiated; default 0:
                          off, since a VMM whose guest only uses mapped memory
                          is legitimately silent for hours
  --send-timeout MS       for the socket to take one reply; default 10000
  MS is in milliseconds, at most 4294967295; 0 turns that deadline off. A
  client that misses a deadline is disconnected, with a line that says which.

Logging:
  -v, --verbose          also log the deadlines at start and each client's
                         negotiated protocol version
  -q, --quiet            log only errors (connection and socket errors)
  Default: a line at start and stop, and one per connection, disconnection
  and refused command.

Other:
  -h, --help             print this help and exit
  --version              print the version and exit

Signals: SIGTERM or SIGINT stop the server (exit 0). SIGHUP is logged and
otherwise ignored: there is no configuration to reload. With NOTIFY_SOCKET
set, READY=1 is sent once the socket listens and STOPPING=1 on the way out.

Exit status:
  0  stopped by SIGTERM or SIGINT
  1  a failure while serving (accept failed)
  2  bad usage (unknown option, bad size, no socket given)
  3  the socket, the inherited fd or the memory file could not be opened
)";

constexpr std::array<cli::option, 30> option_table{{
    {"--socket-path", 0, "PATH"},
    {"--socket", 0, "PATH"},
    {"--fd", 0, "N"},
    {"--socket-mode", 0, "MODE"},
    {"--socket-group", 0, "GROUP"},
    {"--size", 0, "SIZE"},
    {"--generation", 0, "GEN"},
    {"--memory-file", 0, "PATH"},
    {"--no-share-fds"},
    {"--no-flr"},
    {"--handshake-timeout", 0, "MS"},
    {"--message-timeout", 0, "MS"},
    {"--idle-timeout", 0, "MS"},
    {"--send-timeout", 0, "MS"},
    {"--physical"},
    {"--device-id", 0, "ID"},
    {"--bar2-size", 0, "SIZE"},
    {"--bar4-size", 0, "SIZE"},
    {"--ready", 0, "WHEN"},
    {"--no-dvsec"},
    {"--cxl"},
    {"--print-ssdt"},
    {"--base", 0, "ADDR"},
    {"--slot", 0, "N"},
    {"--function", 0, "N"},
    {"--acpi-name", 0, "NAME"},
    {"--verbose", 'v', {}, true},
    {"--quiet", 'q', {}, true},
    {"--help", 'h'},
    {"--version"},
}};

using device = shim::device<mem::memfd_memory>;
using server = vfio_user::server<device>;

/// Log levels: 0 errors only (-q), 1 the default, 2 verbose (-v).
int verbosity = 1;
// For the signal handlers, which are installed before the socket exists (a
// SIGTERM or SIGHUP that comes early must not kill the process by default).
std::atomic<server*> running{nullptr};
volatile std::sig_atomic_t stop_signalled = 0;

extern "C" void on_stop_signal(int) {
  stop_signalled = 1;
  if (server* s = running.load(); s != nullptr) s->request_stop();  // atomics and shutdown(2): async-signal-safe
}

extern "C" void on_hangup(int) {
  // write(2) only: async-signal-safe. There is nothing to reload.
  if (verbosity < 1) return;
  constexpr std::string_view line = "nvgrace-vfio-user-server: SIGHUP: nothing to reload, ignored\n";
  const int saved = errno;
  static_cast<void>(::write(2, line.data(), line.size()));
  errno = saved;
}

/// One log line on stderr: "nvgrace-vfio-user-server: TEXT".
void log_line(int level, const std::string& text) {
  if (verbosity < level) return;
  std::fprintf(stderr, "%s: %s\n", tool.name.data(), text.c_str());
}

std::string system_error(nvgrace::errc e) { return std::string(errno_message(e)); }

/// A failure before serving: the error line and the exit status.
struct fatal {
  int status;
  nvgrace::errc error;
  std::string message;
};

[[noreturn]] void die(const fatal& f) {
  const bool usage = f.status == cli::exit_usage;
  const std::string line = cli::error_line(
      tool, {f.status, f.error, f.message, usage ? "; see '" + std::string(tool.name) + " --help'" : std::string()});
  std::fputs(line.c_str(), stderr);
  std::exit(f.status);
}

enum class socket_source { none, path, fd, activation };

struct arguments {
  std::string socket_path;
  int fd = -1;
  std::optional<::mode_t> socket_mode;
  std::optional<::gid_t> socket_group;
  std::uint64_t size = 2 * GiB;
  grace::generation generation = grace::generation::hopper;
  std::string memory_file;
  bool share_fds = true;
  bool flr = true;
  // The connection deadlines, in ms (0: off). Set here rather than taken from
  // the library's defaults, so that --help and docs/vfio-user-server.md stay
  // true whatever those become. Idle is off: a VMM whose guest touches only
  // mapped memory sends nothing for hours, and that is not a fault.
  std::uint32_t handshake_timeout_ms = 10'000;
  std::uint32_t message_timeout_ms = 10'000;
  std::uint32_t idle_timeout_ms = 0;
  std::uint32_t send_timeout_ms = 10'000;
  socket_source source = socket_source::none;
  bool size_given = false;
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

/// "0660" or "660": at most 0777.
std::optional<::mode_t> parse_mode(std::string_view text) {
  if (text.empty() || text.size() > 4) return std::nullopt;
  ::mode_t mode = 0;
  for (const char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = static_cast<::mode_t>(mode * 8 + static_cast<::mode_t>(c - '0'));
  }
  if (mode > 0777) return std::nullopt;
  return mode;
}

/// A decimal number of at most `max`.
std::optional<std::uint64_t> parse_number(std::string_view text, std::uint64_t max) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

/// A group name or number.
result<::gid_t> parse_group(const std::string& text) {
  if (const auto number = parse_number(text, 0xFFFF'FFFEu)) return static_cast<::gid_t>(*number);
  std::vector<char> buffer(16384);
  ::group entry{};
  ::group* found = nullptr;
  const int rc = ::getgrnam_r(text.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0) return static_cast<nvgrace::errc>(rc);
  if (found == nullptr) return nvgrace::errc::invalid_argument;
  return found->gr_gid;
}

/// The fd that socket activation passes, if LISTEN_PID names this process;
/// the variables are removed so nothing started later sees them.
result<std::optional<int>> activation_fd() {
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (pid == nullptr || fds == nullptr) return std::optional<int>{};
  const auto for_pid = parse_number(pid, 0x7FFF'FFFF);
  if (!for_pid || static_cast<::pid_t>(*for_pid) != ::getpid()) return std::optional<int>{};
  const auto count = parse_number(fds, 1024);
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!count || *count != 1) return nvgrace::errc::invalid_argument;
  constexpr int first_fd = 3;  // SD_LISTEN_FDS_START
  return std::optional<int>{first_fd};
}

arguments interpret(const cli::command_line& line) {
  arguments a;
  bool have_path = false;
  int verbose = 0, quiet = 0;
  const auto bad = [](std::string message) {
    die({cli::exit_usage, nvgrace::errc::invalid_argument, std::move(message)});
  };
  for (const auto& item : line.items) {
    if (item.opt == nullptr) bad("unexpected argument '" + std::string(item.value) + "'");
    const std::string_view name = item.opt->name;
    const std::string_view v = item.value;
    if (name == "--socket-path" || name == "--socket") {
      if (have_path) bad("--socket-path and --socket name the same thing; give one");
      have_path = true;
      if (v.empty()) bad(std::string(name) + " needs a non-empty path");
      a.socket_path = v;
    } else if (name == "--fd") {
      const auto fd = parse_number(v, 0x7FFF'FFFF);
      if (!fd) bad("--fd must be a file descriptor number, not '" + std::string(v) + "'");
      a.fd = static_cast<int>(*fd);
    } else if (name == "--socket-mode") {
      a.socket_mode = parse_mode(v);
      if (!a.socket_mode) bad("--socket-mode must be an octal mode such as 0660, not '" + std::string(v) + "'");
    } else if (name == "--socket-group") {
      const auto gid = parse_group(std::string(v));
      if (!gid) bad("--socket-group: no group '" + std::string(v) + "'");
      a.socket_group = *gid;
    } else if (name == "--size") {
      const auto r = parse_size(v);
      if (!r.ok()) bad(cli::size_error("SIZE", v, r));
      if (r.bytes == 0) bad("--size must be more than 0 bytes");
      a.size = r.bytes;
      a.size_given = true;
    } else if (name == "--generation") {
      if (v == "hopper")
        a.generation = grace::generation::hopper;
      else if (v == "blackwell")
        a.generation = grace::generation::blackwell;
      else
        bad("--generation must be hopper or blackwell, not '" + std::string(v) + "'");
    } else if (name == "--memory-file") {
      if (v.empty()) bad("--memory-file needs a non-empty path");
      a.memory_file = v;
    } else if (name == "--no-share-fds") {
      a.share_fds = false;
    } else if (name == "--no-flr") {
      a.flr = false;
    } else if (name == "--handshake-timeout" || name == "--message-timeout" || name == "--idle-timeout" ||
               name == "--send-timeout") {
      const auto ms = parse_number(v, 0xFFFF'FFFFu);
      if (!ms)
        bad(std::string(name) + " must be a number of milliseconds (0 for none, at most 4294967295), not '" +
            std::string(v) + "'");
      const auto value = static_cast<std::uint32_t>(*ms);
      (name == "--handshake-timeout" ? a.handshake_timeout_ms
       : name == "--message-timeout" ? a.message_timeout_ms
       : name == "--idle-timeout"    ? a.idle_timeout_ms
                                     : a.send_timeout_ms) = value;
    } else if (name == "--physical") {
      a.physical = true;
    } else if (name == "--device-id") {
      const auto r = parse_size(v);
      if (!r.ok() || r.bytes > 0xFFFF)
        bad("--device-id must be a 16-bit number such as 0x2342, not '" + std::string(v) + "'");
      a.device_id = static_cast<std::uint16_t>(r.bytes);
    } else if (name == "--bar2-size" || name == "--bar4-size") {
      const auto r = parse_size(v);
      if (!r.ok()) bad(cli::size_error(name, v, r));
      if (r.bytes != 0 && (!std::has_single_bit(r.bytes) || r.bytes < 4 * KiB))
        bad(std::string(name) + " must be 0 or a power of two of at least 4K, not '" + std::string(v) + "'");
      (name == "--bar2-size" ? a.bar2_size : a.bar4_size) = r.bytes;
    } else if (name == "--ready") {
      if (v == "yes") {
        a.ready_after_ms = 0;
      } else if (v == "never") {
        a.ready_after_ms = std::nullopt;
      } else if (const auto ms = parse_number(v, std::uint64_t{1} << 40)) {
        a.ready_after_ms = *ms;
      } else {
        bad("--ready must be yes, never or a number of milliseconds, not '" + std::string(v) + "'");
      }
    } else if (name == "--no-dvsec") {
      a.dvsec = false;
    } else if (name == "--cxl") {
      a.cxl = true;
    } else if (name == "--print-ssdt") {
      a.print_ssdt = true;
    } else if (name == "--base") {
      const auto r = parse_size(v);
      if (!r.ok()) bad(cli::size_error("--base", v, r));
      a.base = r.bytes;
    } else if (name == "--slot" || name == "--function") {
      const bool slot = name == "--slot";
      const auto r = parse_size(v);
      if (!r.ok() || r.bytes > (slot ? 31u : 7u))
        bad(std::string(slot ? "--slot must be 0..31" : "--function must be 0..7") + ", not '" + std::string(v) + "'");
      (slot ? a.slot : a.function) = static_cast<unsigned>(r.bytes);
    } else if (name == "--acpi-name") {
      if (!tools::ssdt::valid_name(std::string(v)))
        bad("--acpi-name must be four characters of A-Z, 0-9 and _, not '" + std::string(v) + "'");
      a.acpi_name = v;
    } else if (name == "--verbose") {
      ++verbose;
    } else if (name == "--quiet") {
      ++quiet;
    }
  }
  verbosity = 1 + verbose - quiet;
  verbosity = verbosity < 0 ? 0 : verbosity > 2 ? 2 : verbosity;
  if (a.print_ssdt) {
    if (!a.base || !a.size_given) bad("--print-ssdt needs --base and --size");
    return a;  // prints and exits: no socket
  }
  if (a.physical && !a.memory_file.empty()) bad("--physical serves no GPU memory: --memory-file does not apply");

  const auto activation = activation_fd();
  if (!activation)
    die({cli::exit_usage, activation.error(), "socket activation passed other than one socket (LISTEN_FDS must be 1)"});
  const int given = (have_path ? 1 : 0) + (a.fd >= 0 ? 1 : 0) + (activation->has_value() ? 1 : 0);
  if (given == 0) bad("no socket: give --socket-path PATH or --fd N, or start the server through socket activation");
  if (given > 1)
    bad(std::string("more than one socket: ") + (have_path ? "--socket-path " : "") + (a.fd >= 0 ? "--fd " : "") +
        (activation->has_value() ? "LISTEN_FDS " : "") + "(give one)");
  if (have_path) {
    a.source = socket_source::path;
  } else if (a.fd >= 0) {
    a.source = socket_source::fd;
  } else {
    a.source = socket_source::activation;
    a.fd = **activation;
  }
  if (a.source != socket_source::path && (a.socket_mode || a.socket_group))
    bad("--socket-mode and --socket-group apply to --socket-path only (an inherited socket keeps its own; with "
        "systemd, set SocketMode= and SocketGroup= in the .socket unit)");
  return a;
}

// ---- the device ------------------------------------------------------------------

/// Refuse sizes the driver refuses, and sizes whose BAR would not fit the
/// 1 TiB (2^40) window a VFIO region has in the device file.
void check_size(const arguments& args, const shim::device_options& options) {
  const auto outcome = grace::probe(options.acpi, args.generation, options.rule);
  const std::string amount = std::string(format_size(args.size).view());
  const std::string gen = args.generation == grace::generation::hopper ? "Hopper" : "Blackwell";
  if (!outcome) {
    const auto rule =
        grace::describe_layout_error(*options.acpi.gpu_mem_base_pa, args.size, args.generation, options.rule);
    std::string message = "--size " + amount + " on " + gen + ": " + std::string(rule);
    if (args.generation == grace::generation::hopper && args.size < 1536 * MiB)
      message += " (a Hopper device needs at least 1536M)";
    die({cli::exit_usage, outcome.error(), message});
  }
  constexpr std::uint64_t window = std::uint64_t{1} << vfio::offset_shift;
  for (const auto index : {grace::usemem_index, grace::resmem_index}) {
    const auto r = outcome->layout.region(index);
    if (!r.has_value()) continue;
    // The layout rules take any length on Blackwell, but a region needs one
    // mappable page and a BAR at least that large (the device refuses less).
    if (r->real_length < 4 * KiB)
      die({cli::exit_usage, nvgrace::errc::invalid_argument,
           "--size " + amount + " on " + gen + " gives region " + std::to_string(index) +
               " less than one 4 KiB page of memory (at least 4K)"});
    if (r->reported_size <= window) continue;
    die({cli::exit_usage, nvgrace::errc::value_too_large,
         "--size " + amount + " on " + gen + " needs a " + std::string(format_size(r->reported_size).view()) +
             " BAR at region " + std::to_string(index) +
             ", which does not fit the 1 TiB window of a VFIO region (at most 1 TiB on Blackwell, 1 TiB + 1 GiB on "
             "Hopper)"});
  }
}

/// --physical: the bare function before the variant driver (the ids and DVSEC
/// of the generation, its own small BARs) with the readiness and the DVSECs
/// asked for.
shim::device_options physical_options(const arguments& args) {
  shim::device_options options = shim::physical(args.generation, args.bar2_size, args.bar4_size);
  options.device_id = args.device_id;
  options.readiness.ready_after_ms = args.ready_after_ms;
  options.nvidia_dvsec = args.dvsec;
  options.reset_supported = args.flr;
  if (args.cxl) options.cxl = shim::cxl_readiness{};
  return options;
}

/// The emulated device (after the variant driver) of --generation and --size.
shim::device_options emulated_options(const arguments& args) {
  shim::device_options options =
      args.generation == grace::generation::hopper ? shim::hopper(args.size) : shim::blackwell(args.size);
  options.reset_supported = args.flr;
  return options;
}

/// "10000 ms", or "off" for 0.
std::string deadline_text(std::uint32_t ms) { return ms == 0 ? std::string("off") : std::to_string(ms) + " ms"; }

/// The device, with its GPU memory in a memfd or in the memory file.
device create_device(const arguments& args, const shim::device_options& options) {
  if (auto s = device::check_options(options); !s)
    die({cli::exit_usage, s.error(),
         std::string(args.physical ? "the physical function's options are refused (is --device-id in the driver's "
                                     "table?): "
                                   : "the device options are refused: ") +
             system_error(s.error())});
  if (args.memory_file.empty()) {
    auto created = device::create(options);
    if (!created)
      die({cli::exit_failure, created.error(), "cannot create the device's memory: " + system_error(created.error())});
    return std::move(*created);
  }
  auto memory = mem::memfd_memory::open_file(args.memory_file.c_str(), args.size);
  if (!memory)
    die({cli::exit_cannot_open, memory.error(),
         "cannot open memory file '" + args.memory_file + "': " + system_error(memory.error())});
  auto created = device::create(options, std::move(*memory));
  if (!created) die({cli::exit_failure, created.error(), "cannot create the device: " + system_error(created.error())});
  return std::move(*created);
}

// ---- the socket ------------------------------------------------------------------

/// What we bound, so that only our own socket file is removed at exit.
struct bound_path {
  std::string path;
  ::dev_t dev = 0;
  ::ino_t ino = 0;
};

result<::sockaddr_un> address_of(const std::string& path) {
  ::sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return nvgrace::errc::filename_too_long;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

/// A socket file at `path` (existing): is a server answering on it? Connect
/// without blocking: a connection (or a full backlog) means yes, ECONNREFUSED
/// means nobody listens (a crashed server's leftover).
result<bool> someone_listens(const std::string& path) {
  const auto addr = address_of(path);
  if (!addr) return addr.error();
  unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return static_cast<nvgrace::errc>(errno);
  if (::connect(probe.get(), reinterpret_cast<const ::sockaddr*>(&*addr), sizeof *addr) == 0) return true;
  if (errno == EAGAIN || errno == EINPROGRESS) return true;
  if (errno == ECONNREFUSED) return false;
  return static_cast<nvgrace::errc>(errno);
}

/// Create, bind and listen at args.socket_path, with the requested mode and group.
int listen_on_path(const arguments& args, bound_path& bound) {
  const std::string& path = args.socket_path;
  const auto addr = address_of(path);
  if (!addr)
    die({cli::exit_usage, addr.error(),
         "--socket-path '" + path + "' is too long for a UNIX socket (at most " +
             std::to_string(sizeof(::sockaddr_un::sun_path) - 1) + " bytes)"});
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      die({cli::exit_cannot_open, nvgrace::errc::file_exists,
           "cannot listen on '" + path + "': it exists and is not a socket (not removing it)"});
    const auto alive = someone_listens(path);
    if (alive && *alive)
      die({cli::exit_cannot_open, nvgrace::errc::address_in_use,
           "cannot listen on '" + path + "': another server is listening on it"});
    if (!alive && alive.error() != nvgrace::errc::no_such_file_or_directory)
      die({cli::exit_cannot_open, alive.error(),
           "cannot listen on '" + path +
               "': cannot tell whether the existing socket is in use: " + system_error(alive.error())});
    if (alive && ::unlink(path.c_str()) != 0 && errno != ENOENT)
      die({cli::exit_cannot_open, static_cast<nvgrace::errc>(errno),
           "cannot remove the stale socket '" + path + "': " + system_error(static_cast<nvgrace::errc>(errno))});
    if (alive) log_line(1, "removed stale socket " + path + " (nothing was listening on it)");
  } else if (errno != ENOENT) {
    const auto e = static_cast<nvgrace::errc>(errno);
    die({cli::exit_cannot_open, e, "cannot listen on '" + path + "': " + system_error(e)});
  }

  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) die({cli::exit_cannot_open, static_cast<nvgrace::errc>(errno), "cannot create a UNIX socket"});
  // Bind under a strict umask, so the socket is never more open than asked,
  // not even for a moment; then set the final group and mode before listen().
  const ::mode_t old_umask = ::umask(0177);
  const int bound_rc = ::bind(fd.get(), reinterpret_cast<const ::sockaddr*>(&*addr), sizeof *addr);
  const int bind_errno = errno;
  ::umask(old_umask);
  const auto fail_after_bind = [&](nvgrace::errc e, const std::string& what) {
    ::unlink(path.c_str());
    die({cli::exit_cannot_open, e, what + ": " + system_error(e)});
  };
  if (bound_rc != 0) {
    const auto e = static_cast<nvgrace::errc>(bind_errno);
    die({cli::exit_cannot_open, e, "cannot listen on '" + path + "': " + system_error(e)});
  }
  if (args.socket_group && ::chown(path.c_str(), static_cast<::uid_t>(-1), *args.socket_group) != 0)
    fail_after_bind(static_cast<nvgrace::errc>(errno),
                    "cannot give '" + path + "' group " + std::to_string(*args.socket_group));
  const ::mode_t mode = args.socket_mode ? *args.socket_mode : static_cast<::mode_t>(0777 & ~old_umask);
  if (::chmod(path.c_str(), mode) != 0)
    fail_after_bind(static_cast<nvgrace::errc>(errno), "cannot set the mode of '" + path + "'");
  if (::listen(fd.get(), 4) != 0) fail_after_bind(static_cast<nvgrace::errc>(errno), "cannot listen on '" + path + "'");
  if (::stat(path.c_str(), &st) == 0) bound = {path, st.st_dev, st.st_ino};
  return fd.release();
}

/// Check that an inherited fd is a listening UNIX stream socket; make it close-on-exec.
int adopt_fd(int fd, const std::string& what) {
  int value = 0;
  ::socklen_t length = sizeof value;
  if (::fcntl(fd, F_GETFD) < 0)
    die({cli::exit_cannot_open, nvgrace::errc::bad_file_descriptor, what + " is not an open file descriptor"});
  const auto option = [&](int name) {
    length = sizeof value;
    return ::getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value : -1;
  };
  if (option(SO_DOMAIN) != AF_UNIX || option(SO_TYPE) != SOCK_STREAM)
    die({cli::exit_cannot_open, nvgrace::errc::not_a_socket, what + " is not a UNIX stream socket"});
  if (option(SO_ACCEPTCONN) != 1)
    die({cli::exit_cannot_open, nvgrace::errc::invalid_argument, what + " is a socket that does not listen"});
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

// ---- readiness notification (the sd_notify datagram, written here) ------------------

/// Send STATE to $NOTIFY_SOCKET, if set: one datagram on a UNIX socket (a path,
/// or an abstract name written "@name").
void notify(const std::string& state) {
  const char* target = std::getenv("NOTIFY_SOCKET");
  if (target == nullptr || *target == '\0') return;
  const std::string path = target;
  ::sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof addr.sun_path) {
    log_line(0, "warning: NOTIFY_SOCKET '" + path + "' is not a UNIX socket path or @name; not notifying");
    return;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  const auto length =
      static_cast<::socklen_t>(offsetof(::sockaddr_un, sun_path) + path.size() + (path[0] == '/' ? 1 : 0));
  unique_fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd || ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const ::sockaddr*>(&addr),
                      length) < 0)
    log_line(0, "warning: cannot notify " + path + ": " + system_error(static_cast<nvgrace::errc>(errno)));
}

// ---- logging of server events --------------------------------------------------------

struct log_context {
  std::uint64_t connection = 0;
};

std::string connection_name(const log_context& log) { return "connection " + std::to_string(log.connection); }

void log_event(void* context, const vfio_user::event& e) noexcept {
  auto& log = *static_cast<log_context*>(context);
  using kind = vfio_user::event::kind;
  switch (e.what) {
    case kind::connected:
      ++log.connection;
      log_line(1, connection_name(log) + (e.peer_pid >= 0 ? " from pid " + std::to_string(e.peer_pid) : std::string()));
      break;
    case kind::negotiated: log_line(2, connection_name(log) + ": protocol version 0." + std::to_string(e.minor)); break;
    case kind::error_reply:
      log_line(1, connection_name(log) + ": " + std::string(vfio_user::command_name(e.request.command)) + " (id " +
                      std::to_string(e.request.id) + ") refused: " + cli::errno_symbol(e.error) +
                      (e.replied ? "" : " (NO_REPLY: not answered)"));
      break;
    case kind::framing_error:
      log_line(0, connection_name(log) + ": unframeable message (size " + std::to_string(e.request.size) +
                      "): " + cli::errno_symbol(e.error) + ", closing");
      break;
    case kind::socket_error: log_line(0, connection_name(log) + ": socket error: " + cli::errno_symbol(e.error)); break;
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
          const auto* per_region =
              c == static_cast<std::size_t>(vfio_user::command::region_read)    ? &e.counts->reads_by_region
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
        if (e.counts->unknown != 0)
          line += (line.empty() ? ": " : ", ") + std::string("UNKNOWN ") + std::to_string(e.counts->unknown);
      }
      log_line(1, connection_name(log) + " closed after " + std::to_string(e.messages) + " messages" + line);
      break;
    }
    case kind::timed_out:
      log_line(0,
               connection_name(log) + ": " + std::string(e.detail != nullptr ? e.detail : "timed out") + ", closing");
      break;
    case kind::irq_signal_failed:
      log_line(0, connection_name(log) + ": IRQ eventfd not signalled: " + cli::errno_symbol(e.error));
      break;
    case kind::memory_fault:
      log_line(0, connection_name(log) + ": " + std::string(vfio_user::command_name(e.request.command)) + " (id " +
                      std::to_string(e.request.id) +
                      ") touched GPU memory past the end of its file: " + cli::errno_symbol(e.error));
      break;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto args_views = cli::arguments(argc, argv);
  cli::outcome early;
  cli::command_line line;
  if (cli::start(tool, args_views, option_table, usage_text, line, early)) return cli::finish(tool, early);
  const arguments args = interpret(line);
  if (args.print_ssdt) {
    tools::ssdt::description d;
    d.base = *args.base;
    d.size = args.size;
    d.slot = args.slot;
    d.function = args.function;
    d.name = args.acpi_name;
    std::fputs(tools::ssdt::asl(d).c_str(), stdout);
    return cli::exit_ok;
  }

  struct ::sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = 0;  // no SA_RESTART: blocked calls return so the stop is seen
  ::sigaction(SIGTERM, &stop, nullptr);
  ::sigaction(SIGINT, &stop, nullptr);
  struct ::sigaction hangup {};
  hangup.sa_handler = on_hangup;
  sigemptyset(&hangup.sa_mask);
  hangup.sa_flags = SA_RESTART;
  ::sigaction(SIGHUP, &hangup, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  const auto options = args.physical ? physical_options(args) : emulated_options(args);
  if (!args.physical) check_size(args, options);
  device dev = create_device(args, options);

  log_context log;
  vfio_user::server_options server_options;
  server_options.on_event = log_event;
  server_options.event_context = &log;
  server_options.handshake_timeout_ms = args.handshake_timeout_ms;
  server_options.message_timeout_ms = args.message_timeout_ms;
  server_options.idle_timeout_ms = args.idle_timeout_ms;
  server_options.send_timeout_ms = args.send_timeout_ms;
  server_options.share_region_fds = args.share_fds;
  server srv(dev, server_options);

  bound_path bound;
  std::string where;
  switch (args.source) {
    case socket_source::path:
      srv.adopt_listener(listen_on_path(args, bound));
      where = args.socket_path;
      break;
    case socket_source::fd:
      srv.adopt_listener(adopt_fd(args.fd, "--fd " + std::to_string(args.fd)));
      where = "inherited fd " + std::to_string(args.fd);
      break;
    case socket_source::activation:
      srv.adopt_listener(adopt_fd(args.fd, "the socket-activation fd " + std::to_string(args.fd)));
      where = "fd " + std::to_string(args.fd) + " from socket activation";
      break;
    case socket_source::none: break;
  }
  running.store(&srv);
  if (stop_signalled != 0) srv.request_stop();  // a SIGTERM that came before `running` was set

  const std::string memory = args.memory_file.empty() ? "a memfd" : "'" + args.memory_file + "'";
  const std::string generation = args.generation == grace::generation::hopper ? "hopper" : "blackwell";
  if (args.physical) {
    const auto kib = [](std::uint64_t n) { return std::to_string(n / KiB) + " KiB"; };
    char id[8];
    std::snprintf(id, sizeof id, "%04x", static_cast<unsigned>(dev.device_id()));
    const std::string ready = !args.ready_after_ms ? "never ready"
                              : *args.ready_after_ms == 0
                                  ? "ready"
                                  : "ready after " + std::to_string(*args.ready_after_ms) + " ms";
    log_line(1, "listening on " + where + " (physical function " + id + ", " + generation + ", BAR2 " +
                    kib(args.bar2_size) + ", BAR4 " + kib(args.bar4_size) + ", " + ready + ")");
  } else {
    log_line(1, "listening on " + where + " (" + generation + ", " + std::string(format_size(args.size).view()) +
                    " of GPU memory in " + memory + ")");
  }
  log_line(2, "deadlines: handshake " + deadline_text(server_options.handshake_timeout_ms) + ", message " +
                  deadline_text(server_options.message_timeout_ms) + ", idle " +
                  deadline_text(server_options.idle_timeout_ms) + ", send " +
                  deadline_text(server_options.send_timeout_ms) +
                  (server_options.share_region_fds ? "" : "; region fds not shared"));
  notify("READY=1\nSTATUS=Listening on " + where);

  const auto result = srv.run();
  running.store(nullptr);
  notify("STOPPING=1");
  if (!bound.path.empty()) {
    // Remove the socket file only if it is still the one this process created.
    struct ::stat st {};
    if (::stat(bound.path.c_str(), &st) == 0 && st.st_dev == bound.dev && st.st_ino == bound.ino)
      ::unlink(bound.path.c_str());
  }
  if (!result) {
    log_line(0,
             "error: accept failed: " + system_error(result.error()) + " (" + cli::errno_symbol(result.error()) + ")");
    return cli::exit_failure;
  }
  log_line(1, "stopped");
  return cli::exit_ok;
}
