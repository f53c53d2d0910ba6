// nvgrace-probe: print what a VFIO device reports and, for an NVIDIA Grace
// GPU, check the nvgrace rules one by one. See docs/probe.md.

#include "probe.hpp"
#include "render.hpp"

#include <nvgrace/backend/linux/device.hpp>

#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

namespace lv = nvgrace::linux_vfio;
namespace cli = nvgrace::tools::cli;
using nvgrace::tools::probe::tool;

constexpr std::string_view usage_text =
    R"(Usage: nvgrace-probe [OPTIONS] TARGET

Print what a VFIO device reports (device info, regions, capabilities and
sparse areas, IRQs, BAR sizes from config space) and, for an NVIDIA Grace GPU
(10de:2342, 2345, 2348, 2941, 31c2), check the nvgrace-gpu rules one by one.

TARGET is one of
  0000:01:00.0            a PCI address (short form 01:00.0 means domain 0);
                          its VFIO group is found through sysfs
  /dev/vfio/N             a VFIO group node (or /dev/vfio/noiommu-N)
  /dev/vfio/devices/vfioX a VFIO device cdev (Linux 6.6+), bound to /dev/iommu

Options:
  --json             print one JSON document (schema nvgrace-probe/1)
  --device BDF       with a group node: the device to open (needed when the
                     group holds several)
  --no-bar-sizing    do not size BARs through config space (no config writes;
                     the BAR rules then fail)
  --no-rules         only print the facts, skip the Grace rules
  --kernel-rule RULE whose driver the device is judged by: current (Linux
                     7.2), 7.1 (6.19 to 7.1), 6.18 (6.14 to 6.18) or 6.13
                     (6.10 to 6.13); default: the running kernel's
  --container PATH   VFIO container (default /dev/vfio/vfio)
  --iommufd PATH     iommufd for a cdev (default /dev/iommu)
  --sysfs PATH       sysfs mount (default /sys)
  -h, --help         print this help and exit
  --version          print the version and exit

BAR sizing turns I/O and memory decode off, writes all-ones to each BAR
register, reads it back and restores register and command word. The padding
rules read and write across the real memory end: 8 bytes of memory (written
back as read) and up to 16 zero bytes of padding (the driver must drop them).

Exit status:
  0  no rule failed (or the rules do not apply)
  1  a rule failed
  2  bad usage (unknown option, bad value, a TARGET that is not one)
  3  the device could not be opened or queried
)";

constexpr std::array<cli::option, 10> option_table{{
    {"--json"},
    {"--kernel-rule", 0, "RULE"},
    {"--device", 0, "BDF"},
    {"--no-bar-sizing"},
    {"--no-rules"},
    {"--container", 0, "PATH"},
    {"--iommufd", 0, "PATH"},
    {"--sysfs", 0, "PATH"},
    {"--help", 'h'},
    {"--version"},
}};

std::string message_of(nvgrace::errc e) { return std::string(nvgrace::errno_message(e)); }

bool exists(const std::string& path) {
  struct ::stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

struct arguments {
  bool json = false;
  nvgrace::tools::probe::options probe;
  std::string target;
  std::string device;
  std::string container{lv::device::default_container};
  std::string iommufd{lv::device::default_iommufd};
  std::string sysfs = "/sys";
  bool rule_given = false;
};

/// A failure of this run (the json flag says whether stdout gets the document too).
struct context {
  const arguments& args;
  cli::outcome& out;
  cli::outcome& fail(int status, nvgrace::errc e, std::string sentence) {
    return out.fail(tool, {status, e, std::move(sentence)}, args.json);
  }
  cli::outcome& usage(std::string sentence) { return out.usage(tool, sentence, args.json); }
};

/// Interpret the command line; false (with the usage error in `out`) when it is wrong.
bool interpret(const cli::command_line& line, arguments& args, cli::outcome& out) {
  for (const auto& item : line.items) {
    const std::string_view name = item.opt != nullptr ? item.opt->name : std::string_view{};
    if (item.opt == nullptr) {
      if (!args.target.empty()) {
        out.usage(tool, "more than one target ('" + args.target + "', '" + std::string(item.value) + "')", args.json);
        return false;
      }
      args.target = item.value;
    } else if (name == "--json") {
      args.json = true;
    } else if (name == "--no-bar-sizing") {
      args.probe.size_bars = false;
    } else if (name == "--no-rules") {
      args.probe.check_rules = false;
    } else if (name == "--kernel-rule") {
      if (!nvgrace::grace::parse_kernel_rule(item.value, args.probe.rule)) {
        out.usage(tool, "bad kernel rule '" + std::string(item.value) + "': expected current, 7.1, 6.18 or 6.13",
                  args.json);
        return false;
      }
      args.rule_given = true;
    } else if (name == "--device") {
      args.device = item.value;
    } else if (name == "--container") {
      args.container = item.value;
    } else if (name == "--iommufd") {
      args.iommufd = item.value;
    } else if (name == "--sysfs") {
      args.sysfs = item.value;
    }
  }
  if (args.target.empty()) {
    out.usage(tool, "no target given: name a PCI address or a /dev/vfio path", args.json);
    return false;
  }
  return true;
}

/// Explain a failed open by PCI address.
cli::outcome& pci_open_failure(context& ctx, const std::string& bdf, nvgrace::errc e) {
  const arguments& args = ctx.args;
  const std::string device_dir = args.sysfs + "/bus/pci/devices/" + bdf;
  if (e == nvgrace::errc::no_such_file_or_directory && !exists(device_dir))
    return ctx.fail(cli::exit_cannot_open, e, "no PCI device " + bdf + " (" + device_dir + " does not exist)");
  if (e == nvgrace::errc::no_such_file_or_directory)
    return ctx.fail(
        cli::exit_cannot_open, e,
        "PCI device " + bdf + " has an IOMMU group but no /dev/vfio node for it: bind the device to vfio-pci");
  if (e == nvgrace::errc::no_such_device)
    return ctx.fail(cli::exit_cannot_open, e,
                    "PCI device " + bdf + " has no IOMMU group (no IOMMU, and vfio's no-IOMMU mode is off)");
  return ctx.fail(cli::exit_cannot_open, e, "cannot open PCI device " + bdf + " through VFIO: " + message_of(e));
}

cli::outcome& group_open_failure(context& ctx, const std::string& node, const std::string& bdf, nvgrace::errc e) {
  if (e == nvgrace::errc::device_or_resource_busy)
    return ctx.fail(cli::exit_cannot_open, e,
                    "group " + node +
                        " is busy or not viable: every device in it must be bound to vfio-pci and no "
                        "other process (a VM) may hold it");
  if (e == nvgrace::errc::permission_denied || e == nvgrace::errc::operation_not_permitted)
    return ctx.fail(cli::exit_cannot_open, e, "not allowed to open " + node + " (run as root, or own the group node)");
  return ctx.fail(cli::exit_cannot_open, e, "opening " + bdf + " through " + node + " failed: " + message_of(e));
}

cli::outcome& run(context& ctx) {
  const arguments& args = ctx.args;
  nvgrace::tools::probe::target_info target;
  target.target = args.target;
  const lv::system_paths paths{args.sysfs, "/dev"};
  lv::device dev;

  if (!args.target.starts_with("/") && !args.target.starts_with(".")) {
    const auto address = lv::parse_pci_address(args.target);
    if (!address)
      return ctx.fail(cli::exit_usage, address.error(),
                      "'" + args.target + "' is neither a PCI address (DDDD:BB:DD.F) nor a path under /dev/vfio");
    target.bdf = std::string(lv::to_string(*address).view());
    const auto node = lv::group_node_for(*address, paths);
    if (!node) return pci_open_failure(ctx, target.bdf, node.error());
    target.node = std::string(node->view());
    auto opened = lv::device::open_group(node->view(), *address, args.container);
    if (!opened) return group_open_failure(ctx, target.node, target.bdf, opened.error());
    dev = std::move(*opened);
    target.mode = "group";
  } else if (args.target.find("/devices/vfio") != std::string::npos) {
    target.node = args.target;
    auto opened = lv::device::open_cdev(args.target, args.iommufd);
    if (!opened)
      return ctx.fail(cli::exit_cannot_open, opened.error(),
                      "cannot open the VFIO device cdev " + args.target + " bound to " + args.iommufd + ": " +
                          message_of(opened.error()));
    dev = std::move(*opened);
    target.mode = "cdev";
    // The PCI address, for display: /sys/class/vfio-dev/vfioX/device links to it.
    const std::string link =
        args.sysfs + "/class/vfio-dev/" + std::string(lv::detail::basename(args.target)) + "/device";
    char buffer[512];
    if (const ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer - 1); n > 0) {
      const auto name = lv::detail::basename(std::string_view(buffer, static_cast<std::size_t>(n)));
      if (lv::parse_pci_address(name)) target.bdf = std::string(name);
    }
  } else {
    target.node = args.target;
    if (!lv::group_number_of(args.target))
      return ctx.fail(cli::exit_usage, nvgrace::errc::invalid_argument,
                      "'" + args.target +
                          "' is neither a group node (/dev/vfio/N, /dev/vfio/noiommu-N) nor a cdev "
                          "(/dev/vfio/devices/vfioX)");
    nvgrace::result<lv::pci_address> address = nvgrace::errc::invalid_argument;
    if (!args.device.empty()) {
      address = lv::parse_pci_address(args.device);
      if (!address)
        return ctx.fail(cli::exit_usage, address.error(),
                        "--device '" + args.device + "' is not a PCI address (DDDD:BB:DD.F)");
    } else {
      address = lv::sole_device_of_group(args.target, paths);
      if (!address && address.error() == nvgrace::errc::invalid_argument)
        return ctx.fail(cli::exit_usage, address.error(),
                        "group " + args.target + " holds several devices: name one with --device");
      if (!address)
        return ctx.fail(cli::exit_cannot_open, address.error(),
                        "cannot find the device of group " + args.target + " in " + args.sysfs +
                            "/kernel/iommu_groups: " + message_of(address.error()));
    }
    target.bdf = std::string(lv::to_string(*address).view());
    auto opened = lv::device::open_group(args.target, *address, args.container);
    if (!opened) return group_open_failure(ctx, target.node, target.bdf, opened.error());
    dev = std::move(*opened);
    target.mode = "group";
  }
  target.iommu_type = dev.iommu_type();

  const auto report = nvgrace::tools::probe::run(dev, args.probe);
  if (report.info_error != nvgrace::errc{}) {
    if (!args.json) ctx.out.out += nvgrace::tools::probe::to_text(target, report);
    return ctx.fail(cli::exit_cannot_open, report.info_error,
                    "VFIO_DEVICE_GET_INFO failed: " + message_of(report.info_error));
  }
  ctx.out.out += args.json ? nvgrace::tools::probe::to_json(target, report) + "\n"
                           : nvgrace::tools::probe::to_text(target, report);
  ctx.out.status = nvgrace::tools::probe::exit_status(report);
  return ctx.out;
}

}  // namespace

int main(int argc, char** argv) {
  const auto argv_views = cli::arguments(argc, argv);
  cli::outcome out;
  cli::command_line line;
  if (cli::start(tool, argv_views, option_table, usage_text, line, out)) return cli::finish(tool, out);
  arguments args;
  args.json = cli::scan(argv_views).json;
  if (!interpret(line, args, out)) return cli::finish(tool, out);
  // Judge the device by the driver of the kernel it runs under, unless told.
  if (struct ::utsname host{}; !args.rule_given && ::uname(&host) == 0)
    if (!nvgrace::grace::parse_kernel_release(host.release, args.probe.rule))
      args.probe.rule = nvgrace::grace::kernel_rule::current;
  context ctx{args, out};
  return cli::finish(tool, run(ctx));
}
