// nvgrace-rig-guest: the guest half of the real-driver rig (runs inside the QEMU
// guest, statically linked).
//
//   nvgrace-rig-guest diff --channel RESOURCE --bdf BDF [profile options] --seed N --ops N
//       open BDF through /dev/vfio (nvgrace::linux_vfio::device), apply the operation
//       stream to Linux's nvgrace-gpu driver and write one record per operation into
//       the channel blob "diff"
//   nvgrace-rig-guest put --channel RESOURCE NAME FILE
//       copy FILE (e.g. /sys/firmware/acpi/tables/DSDT) into the channel blob NAME
//   nvgrace-rig-guest cdev --bdf BDF [--attach]
//       open BDF through its group, take what the driver answers (device info, every
//       region's info, the first 256 bytes of config space), close it; then open it
//       through the VFIO device cdev and iommufd (an IOAS of its own attached with
//       --attach, behind an IOMMU; none without: noiommu) and, if that works, take the
//       same answers and compare; with --attach, bind once more with a VF token, which a
//       function without SR-IOV refuses. Prints RIG-CDEV lines.
//
// RESOURCE is the ivshmem device's BAR2 in sysfs (/sys/bus/pci/devices/BDF/resource2).

#include "channel.hpp"
#include "cli.hpp"
#include "ops.hpp"

#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/backend/linux/pci_address.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace nvgrace;
namespace lv = nvgrace::linux_vfio;

/// The file position of `fd`, from /proc/self/fdinfo (a VFIO device file cannot be
/// seeked, so lseek(fd, 0, SEEK_CUR) is ESPIPE).
std::uint64_t fdinfo_pos(int fd) {
  const std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  const int f = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f < 0) return ~std::uint64_t{0};
  char buf[256] = {};
  const ssize_t n = ::read(f, buf, sizeof buf - 1);
  ::close(f);
  if (n <= 0) return ~std::uint64_t{0};
  const char* p = std::strstr(buf, "pos:");
  if (p == nullptr) return ~std::uint64_t{0};
  return std::strtoull(p + 4, nullptr, 10);
}

/// Linux's driver through /dev/vfio.
struct guest_target {
  lv::pci_address address{};
  // In an optional so that closing destroys the device (device fd, group,
  // container: the destructor's order) instead of move-assigning member by member.
  std::optional<lv::device> dev{std::in_place};

  lv::device& file() { return *dev; }

  result<std::size_t> read_fpos(std::span<std::byte> buf, std::uint64_t& after) {
    ssize_t n = -1;
    do n = ::read(dev->fd(), buf.data(), buf.size());
    while (n < 0 && errno == EINTR);
    const int error = errno;
    after = fdinfo_pos(dev->fd());
    if (n < 0) return static_cast<errc>(error);
    return static_cast<std::size_t>(n);
  }

  /// The kernel's fault handler decides when the page is touched (SIGBUS is caught).
  static bool fault_in(const rig::mapping&, std::uint64_t) { return true; }

  status reopen() {
    dev.reset();  // close first: the driver allows one open at a time
    auto opened = lv::device::open_pci(address);
    dev.emplace(opened ? std::move(*opened) : lv::device{});
    if (!opened) return opened.error();
    return {};
  }
};
static_assert(rig::target<guest_target>);

int usage() {
  std::fputs(
      "usage: nvgrace-rig-guest diff --channel RESOURCE --bdf BDF [profile options] --seed N --ops N\n"
      "       nvgrace-rig-guest put --channel RESOURCE NAME FILE\n"
      "       nvgrace-rig-guest cdev --bdf BDF [--attach]\n",
      stderr);
  return 2;
}

/// The value after `flag` in `rest`, or "".
std::string take(std::vector<std::string>& rest, const std::string& flag) {
  for (std::size_t i = 0; i + 1 < rest.size(); ++i)
    if (rest[i] == flag) {
      std::string v = rest[i + 1];
      rest.erase(rest.begin() + static_cast<long>(i), rest.begin() + static_cast<long>(i) + 2);
      return v;
    }
  return {};
}

int put(std::vector<std::string> rest) {
  const std::string path = take(rest, "--channel");
  if (path.empty() || rest.size() != 2) return usage();
  rig::channel ch;
  if (!ch.open(path.c_str(), true)) {
    std::fprintf(stderr, "nvgrace-rig-guest: cannot map %s: %s\n", path.c_str(), std::strerror(errno));
    return 3;
  }
  ch.init_if_blank();
  const int fd = ::open(rest[1].c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "nvgrace-rig-guest: cannot open %s: %s\n", rest[1].c_str(), std::strerror(errno));
    return 3;
  }
  rig::channel_entry* e = ch.begin_blob(rest[0]);
  if (e == nullptr) return 3;
  std::uint64_t length = 0;
  for (;;) {
    const std::uint64_t room = ch.room(*e) - length;
    if (room == 0) break;
    const ssize_t n = ::read(fd, ch.at(e->offset + length), std::min<std::uint64_t>(room, 1 << 20));
    if (n <= 0) break;
    length += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  ch.end_blob(*e, length);
  std::printf("nvgrace-rig-guest: put %s: %llu bytes\n", rest[0].c_str(), static_cast<unsigned long long>(length));
  return 0;
}

int diff(rig::options o) {
  const std::string path = take(o.rest, "--channel");
  const std::string bdf = take(o.rest, "--bdf");
  if (path.empty() || bdf.empty() || !o.rest.empty()) return usage();
  const auto address = lv::parse_pci_address(bdf);
  if (!address) return usage();

  rig::channel ch;
  if (!ch.open(path.c_str(), true)) {
    std::fprintf(stderr, "nvgrace-rig-guest: cannot map %s: %s\n", path.c_str(), std::strerror(errno));
    return 3;
  }
  ch.init_if_blank();
  rig::channel_entry* e = ch.begin_blob("diff");
  if (e == nullptr) return 3;
  auto* head = reinterpret_cast<rig::diff_header*>(ch.at(e->offset));
  std::memset(head, 0, sizeof *head);
  std::memcpy(head->magic, rig::diff_magic, sizeof head->magic);
  head->seed = o.seed;
  head->total = o.ops;

  guest_target t;
  t.address = *address;
  const auto t0 = std::chrono::steady_clock::now();
  if (const auto s = t.reopen(); !s) {
    head->open_errno = static_cast<std::uint64_t>(to_errno(s.error()));
    ch.end_blob(*e, sizeof *head);
    std::printf("nvgrace-rig-guest: cannot open %s: %s\n", bdf.c_str(), std::string(errno_name(s.error())).c_str());
    return 1;
  }

  const rig::stream stream(o.prof, o.seed, o.ops);
  std::vector<std::byte> scratch(rig::scratch_size);
  std::vector<std::byte> payload;
  std::uint64_t used = sizeof *head;
  const std::uint64_t room = ch.room(*e);
  // Where the guest's time goes, per operation class (printed, never compared).
  constexpr auto classes = static_cast<std::size_t>(rig::op_class::count_);
  std::array<std::uint64_t, classes> class_ns{};
  std::array<std::uint64_t, classes> class_ops{};
  for (std::uint64_t i = 0; i < o.ops; ++i) {
    const rig::op op = stream.at(i);
    const auto op_start = std::chrono::steady_clock::now();
    const rig::record rec = rig::execute(t, op, i, o.seed, scratch, payload);
    const auto c = static_cast<std::size_t>(op.cls);
    class_ns[c] += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - op_start).count());
    ++class_ops[c];
    const std::uint64_t need = sizeof rec + (payload.size() + 7) / 8 * 8;
    if (used + need > room) {
      std::printf("nvgrace-rig-guest: channel full after %llu operations\n", static_cast<unsigned long long>(i));
      break;
    }
    std::memcpy(ch.at(e->offset + used), &rec, sizeof rec);
    if (!payload.empty()) std::memcpy(ch.at(e->offset + used + sizeof rec), payload.data(), payload.size());
    used += need;
    head->done = i + 1;
    e->length = used;
    if ((i & 1023) == 1023)
      head->elapsed_ns = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  head->elapsed_ns = static_cast<std::uint64_t>(ns);
  ch.end_blob(*e, used);
  std::printf("nvgrace-rig-guest: %llu operations in %.2f s (%.0f ops/s), %llu bytes of records\n",
              static_cast<unsigned long long>(head->done), static_cast<double>(ns) / 1e9,
              static_cast<double>(head->done) / (static_cast<double>(ns) / 1e9), static_cast<unsigned long long>(used));
  for (std::size_t c = 0; c < classes; ++c)
    if (class_ops[c] != 0)
      std::printf("nvgrace-rig-guest: time %-34s %6llu ops %9.3f s %9.3f ms/op\n",
                  std::string(rig::name_of(static_cast<rig::op_class>(c))).c_str(),
                  static_cast<unsigned long long>(class_ops[c]), static_cast<double>(class_ns[c]) / 1e9,
                  static_cast<double>(class_ns[c]) / 1e6 / static_cast<double>(class_ops[c]));
  return 0;
}

}  // namespace

/// What a device file answers that does not depend on how it was opened.
std::string fingerprint(lv::device& d) {
  std::string out;
  char line[160];
  const auto info = d.get_device_info();
  if (!info) return "device info: " + std::string(errno_name(info.error()));
  std::snprintf(line, sizeof line, "info flags %#x regions %u irqs %u;", info->flags, info->num_regions,
                info->num_irqs);
  out += line;
  for (std::uint32_t i = 0; i < 10; ++i) {
    std::array<std::byte, 80> b{};
    store_le<std::uint32_t>(b, 0, 80);
    store_le<std::uint32_t>(b, 8, i);
    const auto s = d.get_region_info(b);
    std::snprintf(line, sizeof line, " r%u %s/%#llx/%#llx/%#x;", i,
                  s ? "ok" : std::string(errno_name(s.error())).c_str(),
                  static_cast<unsigned long long>(load_le<std::uint64_t>(b, 16)),
                  static_cast<unsigned long long>(load_le<std::uint64_t>(b, 24)), load_le<std::uint32_t>(b, 4));
    out += line;
  }
  std::array<std::byte, 256> config{};
  const auto n = d.pread(config, vfio::file_offset(7, 0));
  std::snprintf(line, sizeof line, " config %s digest %#llx", n ? std::to_string(*n).c_str() : "error",
                static_cast<unsigned long long>(rig::digest(config)));
  return out + line;
}

int cdev(std::vector<std::string> rest) {
  bool attach = false;
  for (auto it = rest.begin(); it != rest.end(); ++it)
    if (*it == "--attach") {
      attach = true;
      rest.erase(it);
      break;
    }
  const std::string bdf = take(rest, "--bdf");
  const auto address = lv::parse_pci_address(bdf);
  if (!address || !rest.empty()) return usage();
  std::string group_print;
  {
    auto g = lv::device::open_pci(*address);
    if (!g) {
      std::printf("RIG-CDEV group open=%s\n", std::string(errno_name(g.error())).c_str());
      return 1;
    }
    group_print = fingerprint(*g);
  }
  std::printf("RIG-CDEV group open=ok %s\n", group_print.c_str());
  // The cdev's name is the vfio device's (sysfs vfio-dev/vfioN).
  std::string name = "vfio0";
  if (DIR* dir = ::opendir(("/sys/bus/pci/devices/" + bdf + "/vfio-dev").c_str())) {
    while (const dirent* e = ::readdir(dir))
      if (std::strncmp(e->d_name, "vfio", 4) == 0) name = e->d_name;
    ::closedir(dir);
    std::printf("RIG-CDEV sysfs vfio-dev=%s\n", name.c_str());
  } else {
    std::printf("RIG-CDEV sysfs vfio-dev=none\n");
  }
  const std::string path = "/dev/vfio/devices/" + name;
  lv::device::cdev_options options;
  options.attach_ioas = attach;  // a noiommu device has no IOMMU to attach
  std::string cdev_print;
  {
    auto c = lv::device::open_cdev(path, options);
    if (!c) {
      std::printf("RIG-CDEV cdev open=%s\n", std::string(errno_name(c.error())).c_str());
      return attach ? 1 : 0;
    }
    cdev_print = fingerprint(*c);
  }
  std::printf("RIG-CDEV cdev open=ok %s\n", cdev_print.c_str());
  std::printf("RIG-CDEV compare=%s\n", cdev_print == group_print ? "same" : "DIFFERENT");
  if (attach) {
    // VFIO_DEVICE_BIND_FLAG_TOKEN on a function that is neither a PF with VFs nor a VF.
    options.vf_token = std::array<std::byte, 16>{std::byte{0x5e}, std::byte{0x1f}, std::byte{0x0a}};
    auto t = lv::device::open_cdev(path, options);
    std::printf("RIG-CDEV vf_token=%s\n", t ? "ok" : std::string(errno_name(t.error())).c_str());
  }
  return cdev_print == group_print ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string_view command = argv[1];
  if (command == "put") {
    std::vector<std::string> rest(argv + 2, argv + argc);
    return put(rest);
  }
  if (command == "diff") return diff(rig::parse_options(argc, argv, 2));
  if (command == "cdev") return cdev(std::vector<std::string>(argv + 2, argv + argc));
  return usage();
}
