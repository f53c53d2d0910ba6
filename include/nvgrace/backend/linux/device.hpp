#pragma once
/// \file
/// A real VFIO device opened through /dev/vfio: the `device_file` concept
/// (vfio/device_file.hpp) implemented with ioctl, pread/pwrite and mmap on
/// the kernel's device file descriptor.
///
/// Two ways in:
/// - the group/container interface every VFIO kernel has:
///   /dev/vfio/N (or /dev/vfio/noiommu-N) + /dev/vfio/vfio, IOMMU type1v2
///   (or the no-IOMMU type 8), then VFIO_GROUP_GET_DEVICE_FD(bdf);
/// - the device cdev of Linux 6.6+: /dev/vfio/devices/vfioX bound to
///   /dev/iommu (VFIO_DEVICE_BIND_IOMMUFD, IOMMU_IOAS_ALLOC,
///   VFIO_DEVICE_ATTACH_IOMMUFD_PT).
/// Every error is the errno the kernel gave, as errc; nothing throws.
/// Every descriptor is owned by a unique_fd, so a failed open leaks nothing.

#include <nvgrace/backend/linux/pci_address.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/posix/unique_fd.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/device_file.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/text_view.hpp>
#include <optional>
#include <span>

namespace nvgrace::linux_vfio {

/// IOMMU_IOAS_ALLOC: _IO(IOMMUFD_TYPE = ';', IOMMUFD_CMD_IOAS_ALLOC = 0x81).
/// iommufd's commands start at 0x80 (IOMMU_DESTROY) in the same ';' type as
/// VFIO; IOAS_ALLOC is the second. Like VFIO's, the number encodes no size.
inline constexpr unsigned long iommu_ioas_alloc_ioctl = (static_cast<unsigned long>(';') << 8) | 0x81;
static_assert(iommu_ioas_alloc_ioctl == 0x3B81);

/// Where the kernel's files live. Tests point these at a scratch directory.
struct system_paths {
  text_view sysfs = "/sys";
  text_view dev = "/dev";
};

/// The owner of a descriptor (container, group, device, iommufd).
using unique_fd = posix::unique_fd;
/// The owner of a mapping of a device file (what mmap() returns, once wrapped).
using mapping = posix::mapping;

/// How a device was opened.
enum class open_mode : std::uint8_t { none, group, cdev, adopted };

namespace detail {

/// open(2) with O_RDWR | O_CLOEXEC, retried on EINTR.
[[nodiscard]] inline result<unique_fd> open_rdwr(const char* path) noexcept {
  int fd = -1;
  do fd = ::open(path, O_RDWR | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return posix::last_error();
  return unique_fd(fd);
}

/// ioctl(2) whose failure is reported as the errno; the result is the
/// (non-negative) return value.
[[nodiscard]] inline result<int> checked_ioctl(int fd, unsigned long request, void* arg) noexcept {
  const int r = ::ioctl(fd, request, arg);
  if (r < 0) return posix::last_error();
  return r;
}
[[nodiscard]] inline result<int> checked_ioctl(int fd, unsigned long request, unsigned long arg) noexcept {
  const int r = ::ioctl(fd, request, arg);
  if (r < 0) return posix::last_error();
  return r;
}

/// The last path component.
[[nodiscard]] constexpr text_view basename(text_view path) noexcept {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const auto slash = path.rfind('/');
  return slash == text_view::npos ? path : path.substr(slash + 1);
}

/// True for a non-empty string of decimal digits.
[[nodiscard]] constexpr bool all_digits(text_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

[[nodiscard]] inline bool exists(const char* path) noexcept {
  struct ::stat st {};
  return ::stat(path, &st) == 0;
}

}  // namespace detail

/// The IOMMU group number in a group node name: "/dev/vfio/12" → "12",
/// "/dev/vfio/noiommu-3" → "3". EINVAL for any other name.
[[nodiscard]] constexpr result<text_view> group_number_of(text_view group_node) noexcept {
  auto name = detail::basename(group_node);
  if (name.starts_with("noiommu-")) name.remove_prefix(8);
  if (!detail::all_digits(name)) return errc::invalid_argument;
  return name;
}

/// True when a group node is a no-IOMMU group (its name is "noiommu-N").
[[nodiscard]] constexpr bool is_noiommu_group(text_view group_node) noexcept {
  return detail::basename(group_node).starts_with("noiommu-");
}

/// The VFIO group node of a PCI device: reads <sysfs>/bus/pci/devices/<bdf>/iommu_group
/// (a link ending in the group number N) and returns <dev>/vfio/N, or
/// <dev>/vfio/noiommu-N when only that exists (vfio's no-IOMMU mode). Errors:
/// - ENOENT: no such PCI device, or neither node exists (not bound to vfio-pci);
/// - ENODEV: the device has no IOMMU group (no IOMMU, no-IOMMU mode off);
/// - EBADMSG: the iommu_group link does not end in a group number;
/// - ENAMETOOLONG: the paths do not fit.
[[nodiscard]] inline result<path_string<>> group_node_for(const pci_address& address,
                                                          const system_paths& paths = {}) noexcept {
  const auto bdf = to_string(address);
  path_string<> device_dir;
  for (auto part : {paths.sysfs, text_view("/bus/pci/devices/"), bdf.view()})
    if (auto s = device_dir.append(part); !s) return s.error();
  if (!detail::exists(device_dir.c_str())) return posix::last_error();

  auto link_path = device_dir;
  if (auto s = link_path.append("/iommu_group"); !s) return s.error();
  char target[512];
  const ssize_t n = ::readlink(link_path.c_str(), target, sizeof target);
  if (n < 0) return errno == ENOENT ? errc::no_such_device : posix::last_error();
  if (static_cast<std::size_t>(n) >= sizeof target) return errc::filename_too_long;
  const auto number = detail::basename(text_view(target, static_cast<std::size_t>(n)));
  if (!detail::all_digits(number)) return errc::bad_message;

  for (text_view prefix : {text_view("/vfio/"), text_view("/vfio/noiommu-")}) {
    path_string<> node;
    for (auto part : {paths.dev, prefix, number})
      if (auto s = node.append(part); !s) return s.error();
    if (detail::exists(node.c_str())) return node;
  }
  return errc::no_such_file_or_directory;
}

/// The one PCI device of an IOMMU group, from <sysfs>/kernel/iommu_groups/N/devices/.
/// ENOENT: no such group; ENODEV: the group lists no PCI device; EINVAL: it
/// lists several (the caller must name one).
[[nodiscard]] inline result<pci_address> sole_device_of_group(text_view group_node,
                                                              const system_paths& paths = {}) noexcept {
  const auto number = group_number_of(group_node);
  if (!number) return number.error();
  path_string<> dir;
  for (auto part : {paths.sysfs, text_view("/kernel/iommu_groups/"), *number, text_view("/devices")})
    if (auto s = dir.append(part); !s) return s.error();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return posix::last_error();
  pci_address found{};
  int count = 0;
  while (const dirent* entry = ::readdir(d)) {
    const auto parsed = parse_pci_address(entry->d_name);
    if (!parsed) continue;  // ".", "..", non-PCI members
    found = *parsed;
    ++count;
  }
  ::closedir(d);
  if (count == 0) return errc::no_such_device;
  if (count > 1) return errc::invalid_argument;
  return found;
}

/// An open VFIO device. Move-only; closing it releases the device, then the
/// group (or IOAS binding), then the container (or iommufd).
class device {
public:
  /// The container every group-mode open uses unless told otherwise.
  static constexpr text_view default_container = "/dev/vfio/vfio";
  static constexpr text_view default_iommufd = "/dev/iommu";

  device() noexcept = default;

  /// Open `address` through its group node: open the group, require it to be
  /// viable, open the container and check its API version and IOMMU type
  /// (type1v2, or no-IOMMU for a "noiommu-N" node), attach, set the IOMMU,
  /// and get the device fd. Errors are the kernel's errno; additionally
  /// EBUSY when the group is not viable (another device of the group is bound
  /// to a host driver), EPROTONOSUPPORT for a container API version other
  /// than 0, EOPNOTSUPP when the container lacks the IOMMU type.
  [[nodiscard]] static result<device> open_group(text_view group_node, const pci_address& address,
                                                 text_view container_path = default_container) noexcept {
    const auto group_path = path_string<>::from(group_node);
    if (!group_path) return group_path.error();
    const auto container_file = path_string<>::from(container_path);
    if (!container_file) return container_file.error();

    device d;
    d.mode_ = open_mode::group;
    auto group = detail::open_rdwr(group_path->c_str());
    if (!group) return group.error();
    d.group_ = std::move(*group);

    vfio::group_status status{sizeof(vfio::group_status), 0};
    if (auto r = detail::checked_ioctl(d.group_.get(), vfio::ioctl::group_get_status, &status); !r) return r.error();
    if ((status.flags & vfio::group_flags::viable) == 0) return errc::device_or_resource_busy;

    auto container = detail::open_rdwr(container_file->c_str());
    if (!container) return container.error();
    d.container_ = std::move(*container);
    const auto version = detail::checked_ioctl(d.container_.get(), vfio::ioctl::get_api_version, 0ul);
    if (!version) return version.error();
    if (*version != vfio::api_version) return errc::protocol_not_supported;

    d.iommu_type_ = is_noiommu_group(group_node) ? vfio::iommu_type::noiommu : vfio::iommu_type::type1v2;
    const auto supported = detail::checked_ioctl(d.container_.get(), vfio::ioctl::check_extension, d.iommu_type_);
    if (!supported) return supported.error();
    if (*supported <= 0) return errc::operation_not_supported;

    int container_fd = d.container_.get();
    if (auto r = detail::checked_ioctl(d.group_.get(), vfio::ioctl::group_set_container, &container_fd); !r)
      return r.error();
    if (auto r = detail::checked_ioctl(d.container_.get(), vfio::ioctl::set_iommu, d.iommu_type_); !r) return r.error();

    const auto name = to_string(address);
    const auto fd = detail::checked_ioctl(d.group_.get(), vfio::ioctl::group_get_device_fd,
                                          const_cast<char*>(name.c_str()));  // the kernel only reads it
    if (!fd) return fd.error();
    d.device_.reset(*fd);
    d.address_ = address;
    return d;
  }

  /// Open a PCI device by address: its group node from sysfs (group_node_for),
  /// then open_group. Errors as for those two.
  [[nodiscard]] static result<device> open_pci(const pci_address& address, const system_paths& paths = {}) noexcept {
    const auto node = group_node_for(address, paths);
    if (!node) return node.error();
    path_string<> container;
    for (auto part : {paths.dev, text_view("/vfio/vfio")})
      if (auto s = container.append(part); !s) return s.error();
    return open_group(node->view(), address, container.view());
  }

  /// How open_cdev binds the device.
  struct cdev_options {
    text_view iommufd_path = default_iommufd;
    /// Give the device its own I/O address space (IOMMU_IOAS_ALLOC and
    /// VFIO_DEVICE_ATTACH_IOMMUFD_PT). A noiommu device has no IOMMU to
    /// attach: open it with false (the bind alone grants access).
    bool attach_ioas = true;
    /// A VF token (VFIO_DEVICE_BIND_FLAG_TOKEN, Linux 6.17+), for SR-IOV
    /// devices; a device that is neither a PF nor a VF refuses one (EINVAL).
    std::optional<std::array<std::byte, 16>> vf_token;
  };

  /// Open a device cdev (Linux 6.6+) and give it its own I/O address space:
  /// open the cdev and the iommufd, VFIO_DEVICE_BIND_IOMMUFD,
  /// IOMMU_IOAS_ALLOC, VFIO_DEVICE_ATTACH_IOMMUFD_PT. Errors are the kernel's
  /// errno (ENOENT for a missing path; ENOTTY when the file is not a VFIO cdev).
  [[nodiscard]] static result<device> open_cdev(text_view cdev_path,
                                                text_view iommufd_path = default_iommufd) noexcept {
    cdev_options options;
    options.iommufd_path = iommufd_path;
    return open_cdev(cdev_path, options);
  }

  /// open_cdev with the choices of `options`.
  [[nodiscard]] static result<device> open_cdev(text_view cdev_path, const cdev_options& options) noexcept {
    const auto cdev_file = path_string<>::from(cdev_path);
    if (!cdev_file) return cdev_file.error();
    const auto iommufd_file = path_string<>::from(options.iommufd_path);
    if (!iommufd_file) return iommufd_file.error();

    device d;
    d.mode_ = open_mode::cdev;
    auto dev = detail::open_rdwr(cdev_file->c_str());
    if (!dev) return dev.error();
    d.device_ = std::move(*dev);
    auto iommufd = detail::open_rdwr(iommufd_file->c_str());
    if (!iommufd) return iommufd.error();
    d.container_ = std::move(*iommufd);

    vfio::device_bind_iommufd_token bind{sizeof(vfio::device_bind_iommufd), 0, d.container_.get(), 0, 0};
    if (options.vf_token) {
      bind.argsz = sizeof(vfio::device_bind_iommufd_token);
      bind.flags = vfio::bind_flag_token;
      bind.token_uuid_ptr = reinterpret_cast<std::uintptr_t>(options.vf_token->data());
    }
    if (auto r = detail::checked_ioctl(d.device_.get(), vfio::ioctl::device_bind_iommufd, &bind); !r) return r.error();
    d.devid_ = bind.out_devid;
    if (!options.attach_ioas) return d;
    vfio::iommu_ioas_alloc ioas{sizeof(vfio::iommu_ioas_alloc), 0, 0};
    if (auto r = detail::checked_ioctl(d.container_.get(), iommu_ioas_alloc_ioctl, &ioas); !r) return r.error();
    d.ioas_id_ = ioas.out_ioas_id;
    vfio::device_attach_iommufd_pt attach{sizeof(vfio::device_attach_iommufd_pt), 0, ioas.out_ioas_id};
    if (auto r = detail::checked_ioctl(d.device_.get(), vfio::ioctl::device_attach_iommufd_pt, &attach); !r)
      return r.error();
    return d;
  }

  /// Use a device fd opened elsewhere (a management layer passing it over a
  /// UNIX socket, say). The device owns it from now on. EBADF if negative.
  [[nodiscard]] static result<device> adopt(unique_fd device_fd) noexcept {
    if (!device_fd) return errc::bad_file_descriptor;
    device d;
    d.mode_ = open_mode::adopted;
    d.device_ = std::move(device_fd);
    return d;
  }

  // ---- the device_file concept ----------------------------------------------

  /// VFIO_DEVICE_GET_INFO with argsz = 20 (the form with cap_offset).
  [[nodiscard]] result<vfio::device_info> get_device_info() noexcept {
    vfio::device_info info{sizeof(vfio::device_info), 0, 0, 0, 0};
    if (auto r = detail::checked_ioctl(device_.get(), vfio::ioctl::device_get_info, &info); !r) return r.error();
    return info;
  }

  /// VFIO_DEVICE_GET_REGION_INFO on the caller's buffer, which holds the
  /// argsz and index the caller set; the kernel writes its reply there.
  /// EFAULT (without a system call) when the buffer cannot hold the 32-byte
  /// struct or is smaller than the argsz it declares: the kernel would read
  /// or write past it.
  [[nodiscard]] status get_region_info(std::span<std::byte> buffer) noexcept {
    if (buffer.size() < vfio::region_info_size) return errc::bad_address;
    if (load_le<std::uint32_t>(buffer) > buffer.size()) return errc::bad_address;
    if (auto r = detail::checked_ioctl(device_.get(), vfio::ioctl::device_get_region_info, buffer.data()); !r)
      return r.error();
    return {};
  }

  /// VFIO_DEVICE_GET_IRQ_INFO with the caller's argsz and index.
  [[nodiscard]] status get_irq_info(vfio::irq_info& info) noexcept {
    if (auto r = detail::checked_ioctl(device_.get(), vfio::ioctl::device_get_irq_info, &info); !r) return r.error();
    return {};
  }

  /// VFIO_DEVICE_RESET.
  [[nodiscard]] status reset() noexcept {
    if (auto r = detail::checked_ioctl(device_.get(), vfio::ioctl::device_reset, 0ul); !r) return r.error();
    return {};
  }

  /// One pread(2) at file offset `pos`, retried only on EINTR. A short count
  /// is returned as it is. EINVAL for a pos beyond off_t (the kernel's answer
  /// to a negative offset).
  [[nodiscard]] result<std::size_t> pread(std::span<std::byte> buffer, std::uint64_t pos) noexcept {
    if (pos > max_offset) return errc::invalid_argument;
    ssize_t n = -1;
    do n = ::pread(device_.get(), buffer.data(), buffer.size(), static_cast<off_t>(pos));
    while (n < 0 && errno == EINTR);
    if (n < 0) return posix::last_error();
    return static_cast<std::size_t>(n);
  }

  /// One pwrite(2) at file offset `pos`; as pread.
  [[nodiscard]] result<std::size_t> pwrite(std::span<const std::byte> data, std::uint64_t pos) noexcept {
    if (pos > max_offset) return errc::invalid_argument;
    ssize_t n = -1;
    do n = ::pwrite(device_.get(), data.data(), data.size(), static_cast<off_t>(pos));
    while (n < 0 && errno == EINTR);
    if (n < 0) return posix::last_error();
    return static_cast<std::size_t>(n);
  }

  /// mmap(2) of `length` bytes at file offset `pos`, MAP_SHARED, and
  /// MAP_FIXED at `addr` when it is non-null. The caller owns the mapping
  /// (wrap it in a linux_vfio::mapping, or ::munmap it).
  [[nodiscard]] result<void*> mmap(void* addr, std::uint64_t length, int prot, std::uint64_t pos) noexcept {
    if (pos > max_offset) return errc::invalid_argument;
    if (length > std::numeric_limits<std::size_t>::max()) return errc::not_enough_memory;
    const int flags = MAP_SHARED | (addr != nullptr ? MAP_FIXED : 0);
    void* p = ::mmap(addr, static_cast<std::size_t>(length), prot, flags, device_.get(), static_cast<off_t>(pos));
    if (p == MAP_FAILED) return posix::last_error();
    return p;
  }

  // ---- facts about the open ---------------------------------------------------

  /// The device file descriptor (-1 for a default-constructed device).
  [[nodiscard]] int fd() const noexcept { return device_.get(); }
  [[nodiscard]] open_mode mode() const noexcept { return mode_; }
  /// The IOMMU type set on the container (group mode), else 0.
  [[nodiscard]] unsigned long iommu_type() const noexcept { return iommu_type_; }
  /// The PCI address the device was opened by (group mode), else all zero.
  [[nodiscard]] const pci_address& address() const noexcept { return address_; }
  /// The iommufd device id and IOAS id (cdev mode), else 0.
  [[nodiscard]] std::uint32_t devid() const noexcept { return devid_; }
  [[nodiscard]] std::uint32_t ioas_id() const noexcept { return ioas_id_; }

private:
  static constexpr std::uint64_t max_offset = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());

  // Declaration order is release order reversed: the device goes first, the
  // container (or iommufd) last.
  unique_fd container_;
  unique_fd group_;
  unique_fd device_;
  open_mode mode_ = open_mode::none;
  unsigned long iommu_type_ = 0;
  pci_address address_{};
  std::uint32_t devid_ = 0;
  std::uint32_t ioas_id_ = 0;
};

static_assert(vfio::device_file<device>);

}  // namespace nvgrace::linux_vfio
