// nvgrace-probe: print what a VFIO device reports and, for an NVIDIA Grace
// GPU, check the nvgrace rules one by one. See docs/probe.md.

#include "probe.hpp"
#include "render.hpp"

#include <nvgrace/backend/linux/device.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

namespace lv = nvgrace::linux_vfio;

constexpr int exit_usage = 2;
constexpr int exit_device = 3;

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

Options
  --json             print one JSON object (schema nvgrace-probe/1) instead of text
  --device BDF       with a group node: the device to open (needed when the
                     group holds several)
  --no-bar-sizing    do not size BARs through config space (no config writes;
                     the BAR rules then fail)
  --no-rules         only print the facts, skip the Grace rules
  --container PATH   VFIO container (default /dev/vfio/vfio)
  --iommufd PATH     iommufd for a cdev (default /dev/iommu)
  --sysfs PATH       sysfs mount (default /sys)
  -h, --help         this text

BAR sizing turns I/O and memory decode off, writes all-ones to each BAR
register, reads it back and restores register and command word. The padding
rule writes 16 zero bytes past the real memory end (the driver must drop them).

Exit status: 0 no rule failed (or the rules do not apply); 1 a rule failed;
2 bad usage; 3 the device could not be opened or queried.
)";

/// The one-line error: "nvgrace-probe: ENOENT: sentence".
int fail(int status, nvgrace::errc e, const std::string& sentence) {
  std::fprintf(stderr, "nvgrace-probe: %s: %s\n", nvgrace::tools::probe::detail::errno_symbol(e).c_str(),
               sentence.c_str());
  return status;
}

std::string message_of(nvgrace::errc e) { return std::string(nvgrace::errno_message(e)); }

bool exists(const std::string& path) {
  struct ::stat st{};
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
};

/// Parse argv; returns -1 to go on, else the exit status.
int parse(int argc, char** argv, arguments& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (arg == "-h" || arg == "--help") {
      std::fwrite(usage_text.data(), 1, usage_text.size(), stdout);
      return 0;
    } else if (arg == "--json") {
      args.json = true;
    } else if (arg == "--no-bar-sizing") {
      args.probe.size_bars = false;
    } else if (arg == "--no-rules") {
      args.probe.check_rules = false;
    } else if (arg == "--device" || arg == "--container" || arg == "--iommufd" || arg == "--sysfs") {
      std::string& out = arg == "--device" ? args.device
                         : arg == "--container" ? args.container
                         : arg == "--iommufd"   ? args.iommufd
                                                : args.sysfs;
      if (!value(out))
        return fail(exit_usage, nvgrace::errc::invalid_argument, std::string(arg) + " needs a value (see --help)");
    } else if (arg.starts_with("-") && arg != "-") {
      return fail(exit_usage, nvgrace::errc::invalid_argument, "unknown option '" + std::string(arg) + "' (see --help)");
    } else if (!args.target.empty()) {
      return fail(exit_usage, nvgrace::errc::invalid_argument,
                  "more than one target ('" + args.target + "', '" + std::string(arg) + "')");
    } else {
      args.target = arg;
    }
  }
  if (args.target.empty())
    return fail(exit_usage, nvgrace::errc::invalid_argument, "no target given: name a PCI address or a /dev/vfio path (see --help)");
  return -1;
}

/// Explain a failed open by PCI address.
int pci_open_failure(const arguments& args, const std::string& bdf, nvgrace::errc e) {
  const std::string device_dir = args.sysfs + "/bus/pci/devices/" + bdf;
  if (e == nvgrace::errc::no_such_file_or_directory && !exists(device_dir))
    return fail(exit_device, e, "no PCI device " + bdf + " (" + device_dir + " does not exist)");
  if (e == nvgrace::errc::no_such_file_or_directory)
    return fail(exit_device, e,
                "PCI device " + bdf + " has an IOMMU group but no /dev/vfio node for it: bind the device to vfio-pci");
  if (e == nvgrace::errc::no_such_device)
    return fail(exit_device, e,
                "PCI device " + bdf + " has no IOMMU group (no IOMMU, and vfio's no-IOMMU mode is off)");
  return fail(exit_device, e, "cannot open PCI device " + bdf + " through VFIO: " + message_of(e));
}

int group_open_failure(const std::string& node, const std::string& bdf, nvgrace::errc e) {
  if (e == nvgrace::errc::device_or_resource_busy)
    return fail(exit_device, e,
                "group " + node + " is busy or not viable: every device in it must be bound to vfio-pci and no "
                "other process (a VM) may hold it");
  if (e == nvgrace::errc::permission_denied || e == nvgrace::errc::operation_not_permitted)
    return fail(exit_device, e, "not allowed to open " + node + " (run as root, or own the group node)");
  return fail(exit_device, e, "opening " + bdf + " through " + node + " failed: " + message_of(e));
}

int run(const arguments& args) {
  nvgrace::tools::probe::target_info target;
  target.target = args.target;
  const lv::system_paths paths{args.sysfs, "/dev"};
  lv::device dev;

  if (!args.target.starts_with("/") && !args.target.starts_with(".")) {
    const auto address = lv::parse_pci_address(args.target);
    if (!address)
      return fail(exit_usage, address.error(),
                  "'" + args.target + "' is neither a PCI address (DDDD:BB:DD.F) nor a path under /dev/vfio");
    target.bdf = std::string(lv::to_string(*address).view());
    const auto node = lv::group_node_for(*address, paths);
    if (!node) return pci_open_failure(args, target.bdf, node.error());
    target.node = std::string(node->view());
    auto opened = lv::device::open_group(node->view(), *address, args.container);
    if (!opened) return group_open_failure(target.node, target.bdf, opened.error());
    dev = std::move(*opened);
    target.mode = "group";
  } else if (args.target.find("/devices/vfio") != std::string::npos) {
    target.node = args.target;
    auto opened = lv::device::open_cdev(args.target, args.iommufd);
    if (!opened)
      return fail(exit_device, opened.error(),
                  "cannot open the VFIO device cdev " + args.target + " bound to " + args.iommufd + ": " +
                      message_of(opened.error()));
    dev = std::move(*opened);
    target.mode = "cdev";
    // The PCI address, for display: /sys/class/vfio-dev/vfioX/device links to it.
    const std::string link = args.sysfs + "/class/vfio-dev/" + std::string(lv::detail::basename(args.target)) + "/device";
    char buffer[512];
    if (const ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer - 1); n > 0) {
      const auto name = lv::detail::basename(std::string_view(buffer, static_cast<std::size_t>(n)));
      if (lv::parse_pci_address(name)) target.bdf = std::string(name);
    }
  } else {
    target.node = args.target;
    if (!lv::group_number_of(args.target))
      return fail(exit_usage, nvgrace::errc::invalid_argument,
                  "'" + args.target + "' is neither a group node (/dev/vfio/N, /dev/vfio/noiommu-N) nor a cdev "
                  "(/dev/vfio/devices/vfioX)");
    nvgrace::result<lv::pci_address> address = nvgrace::errc::invalid_argument;
    if (!args.device.empty()) {
      address = lv::parse_pci_address(args.device);
      if (!address)
        return fail(exit_usage, address.error(), "--device '" + args.device + "' is not a PCI address (DDDD:BB:DD.F)");
    } else {
      address = lv::sole_device_of_group(args.target, paths);
      if (!address && address.error() == nvgrace::errc::invalid_argument)
        return fail(exit_usage, address.error(),
                    "group " + args.target + " holds several devices: name one with --device");
      if (!address)
        return fail(exit_device, address.error(),
                    "cannot find the device of group " + args.target + " in " + args.sysfs +
                        "/kernel/iommu_groups: " + message_of(address.error()));
    }
    target.bdf = std::string(lv::to_string(*address).view());
    auto opened = lv::device::open_group(args.target, *address, args.container);
    if (!opened) return group_open_failure(target.node, target.bdf, opened.error());
    dev = std::move(*opened);
    target.mode = "group";
  }
  target.iommu_type = dev.iommu_type();

  const auto report = nvgrace::tools::probe::run(dev, args.probe);
  const std::string text = args.json ? nvgrace::tools::probe::to_json(target, report) + "\n"
                                     : nvgrace::tools::probe::to_text(target, report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  if (report.info_error != nvgrace::errc{})
    return fail(exit_device, report.info_error, "VFIO_DEVICE_GET_INFO failed: " + message_of(report.info_error));
  return nvgrace::tools::probe::exit_status(report);
}

}  // namespace

int main(int argc, char** argv) {
  arguments args;
  if (const int status = parse(argc, argv, args); status >= 0) return status;
  return run(args);
}
