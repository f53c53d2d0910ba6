#pragma once
/// \file
/// The in-process device's ioctls with the kernel's argument layouts
/// (<linux/vfio.h>), for code that drives it exactly as it would drive
/// /dev/vfio: `shim::ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &info)` returns 0
/// (or a non-negative value) or −errno. This header does the argument
/// marshalling and the checks the vfio core makes before the driver runs; the
/// device does the rest through its typed calls.

#include <nvgrace/backend/shim/device.hpp>
#include <nvgrace/backend/shim/options.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/grace/vf_token.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/dma_buf.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace nvgrace::shim {

namespace detail {

[[nodiscard]] constexpr long to_long(status s) noexcept { return s ? 0 : negative(s.error()); }

template <class Device>
[[nodiscard]] long ioctl_device_info(Device& d, void* arg) noexcept {
  if (arg == nullptr) return negative(errc::bad_address);
  const std::span<std::byte> bytes(static_cast<std::byte*>(arg), vfio::device_info_min_size);
  if (load_le<std::uint32_t>(bytes, 0) < vfio::device_info_min_size) return negative(errc::invalid_argument);
  const auto info = d.get_device_info();
  if (!info) return negative(info.error());
  // Only the first 16 bytes are copied back: argsz stays as the caller wrote it.
  store_le<std::uint32_t>(bytes, 4, info->flags);
  store_le<std::uint32_t>(bytes, 8, info->num_regions);
  store_le<std::uint32_t>(bytes, 12, info->num_irqs);
  return 0;
}

template <class Device>
[[nodiscard]] long ioctl_region_info(Device& d, void* arg) noexcept {
  if (arg == nullptr) return negative(errc::bad_address);
  const auto* bytes = static_cast<std::byte*>(arg);
  const std::uint32_t argsz = load_le<std::uint32_t>(std::span<const std::byte>(bytes, 4), 0);
  // Trust argsz for the buffer's size, as the kernel does.
  const std::size_t size = argsz < vfio::region_info_size ? vfio::region_info_size : argsz;
  return to_long(d.get_region_info(std::span<std::byte>(static_cast<std::byte*>(arg), size)));
}

template <class Device>
[[nodiscard]] long ioctl_irq_info(Device& d, void* arg) noexcept {
  if (arg == nullptr) return negative(errc::bad_address);
  vfio::irq_info info{};
  std::memcpy(&info, arg, sizeof info);
  if (auto s = d.get_irq_info(info); !s) return negative(s.error());
  std::memcpy(arg, &info, sizeof info);
  return 0;
}

/// vfio-pci-core's IOEVENTFD argument checks; the device decides the rest.
template <class Device>
[[nodiscard]] long ioctl_ioeventfd(Device& d, void* arg) noexcept {
  if (d.mode() == grace::mode::emulated) return negative(errc::inappropriate_io_control_operation);
  if (arg == nullptr) return negative(errc::bad_address);
  constexpr std::uint32_t minsz = 28;  // offsetofend(fd)
  const std::span<const std::byte> bytes(static_cast<const std::byte*>(arg), minsz);
  const auto argsz = load_le<std::uint32_t>(bytes, 0);
  const auto flags = load_le<std::uint32_t>(bytes, 4);
  const auto offset = load_le<std::uint64_t>(bytes, 8);
  const auto data = load_le<std::uint64_t>(bytes, 16);
  const auto fd = static_cast<std::int32_t>(load_le<std::uint32_t>(bytes, 24));
  if (argsz < minsz || (flags & ~ioeventfd_size_mask) != 0) return negative(errc::invalid_argument);
  const std::uint32_t size = flags & ioeventfd_size_mask;
  if (std::popcount(size) != 1 || fd < -1) return negative(errc::invalid_argument);
  return to_long(d.ioeventfd(offset, data, size, fd));
}

/// vfio_check_feature: PROBE answers whether `supported` (GET/SET bits) are;
/// otherwise exactly one of the supported operations with at least `minsz`
/// payload bytes. 1 = go on, 0 = done (a successful PROBE), else −errno.
[[nodiscard]] constexpr long check_feature(std::uint32_t flags, std::uint32_t payload, std::uint32_t supported,
                                           std::uint32_t minsz) noexcept {
  using namespace vfio::feature_flags;
  if ((flags & (get | set) & ~supported) != 0) return negative(errc::invalid_argument);
  if ((flags & probe) != 0) return 0;
  if ((flags & (get | set)) == 0) return negative(errc::invalid_argument);
  if (payload < minsz) return negative(errc::invalid_argument);
  return 1;
}

/// VFIO_DEVICE_FEATURE: the vfio core's flag checks, then the feature:
/// DMA_BUF (request and range checks in the core's order, then the device's
/// export), LOW_POWER_ENTRY/_WITH_WAKEUP/_EXIT, PCI_VF_TOKEN (ENOTTY: not an
/// SR-IOV PF); anything else ENOTTY.
template <class Device>
[[nodiscard]] long ioctl_feature(Device& d, void* arg) noexcept {
  using namespace vfio::feature_flags;
  if (arg == nullptr) return negative(errc::bad_address);
  const auto* bytes = static_cast<const std::byte*>(arg);
  const auto argsz = load_le<std::uint32_t>(std::span<const std::byte>(bytes, 8), 0);
  const auto flags = load_le<std::uint32_t>(std::span<const std::byte>(bytes, 8), 4);
  if (argsz < 8) return negative(errc::invalid_argument);
  if ((flags & ~(mask | get | set | probe)) != 0) return negative(errc::invalid_argument);
  if ((flags & probe) == 0 && (flags & set) != 0 && (flags & get) != 0) return negative(errc::invalid_argument);
  const std::uint32_t payload = argsz - 8;
  const std::span<const std::byte> body(bytes + 8, payload);
  switch (flags & mask) {
    case vfio::feature_low_power_entry:
    case vfio::feature_low_power_exit: {
      if (const long go = check_feature(flags, payload, set, 0); go != 1) return go;
      return to_long((flags & mask) == vfio::feature_low_power_entry ? d.low_power_entry() : d.low_power_exit());
    }
    case vfio::feature_low_power_entry_with_wakeup: {
      if (const long go = check_feature(flags, payload, set, 4); go != 1) return go;
      const auto fd = static_cast<std::int32_t>(load_le<std::uint32_t>(body, 0));
      if (fd < 0) return negative(errc::invalid_argument);
      return to_long(d.low_power_entry(fd));
    }
    case vfio::feature_pci_vf_token:
      return negative(errc::inappropriate_io_control_operation);  // no VF token: not an SR-IOV PF
    case vfio::feature_dma_buf: break;
    default: return negative(errc::inappropriate_io_control_operation);
  }
  if (const long go = check_feature(flags, payload, get, sizeof(vfio::device_feature_dma_buf)); go != 1) return go;
  const vfio::device_feature_dma_buf request{load_le<std::uint32_t>(body, 0), load_le<std::uint32_t>(body, 4),
                                             load_le<std::uint32_t>(body, 8), load_le<std::uint32_t>(body, 12)};
  if (auto s = vfio::check_dma_buf_request(request); !s) return negative(s.error());
  // The kernel copies nr_ranges entries in one allocation (ENOMEM past its
  // limit), from after the header; past argsz that copy would fault.
  if (std::uint64_t{request.nr_ranges} * sizeof(vfio::region_dma_range) > max_dma_buf_range_bytes)
    return negative(errc::not_enough_memory);
  if ((payload - sizeof request) / sizeof(vfio::region_dma_range) < request.nr_ranges)
    return negative(errc::bad_address);
  std::vector<vfio::region_dma_range> ranges(request.nr_ranges);
  for (std::uint32_t i = 0; i < request.nr_ranges; ++i)
    ranges[i] = {load_le<std::uint64_t>(body, sizeof request + 16 * std::size_t{i}),
                 load_le<std::uint64_t>(body, sizeof request + 16 * std::size_t{i} + 8)};
  if (auto s = vfio::check_dma_buf_ranges(ranges, posix::page_size()); !s) return negative(s.error());
  // The total must also stay clear of the DMA_IOVA_USE_SWIOTLB bit (bit 63).
  std::uint64_t total = 0;
  for (const auto& range : ranges) total += range.length;
  if ((total >> 63) != 0) return negative(errc::invalid_argument);
  const auto fd = d.export_dma_buf(request.region_index, request.open_flags, ranges);
  if (!fd) return negative(fd.error());
  return *fd;
}

/// The device id a successful VFIO_DEVICE_BIND_IOMMUFD writes to out_devid
/// (there is no iommufd behind the in-process device to allocate one).
inline constexpr std::uint32_t fake_iommufd_devid = 1;

/// VFIO_DEVICE_BIND_IOMMUFD as the 7.2 vfio core answers it on a device cdev
/// (vfio_df_ioctl_bind_iommufd): argsz < 16 → EINVAL; bytes past the 24 the
/// kernel knows must be zero (E2BIG); a negative iommufd or an unknown flag →
/// EINVAL; a file already bound (an open device) → EINVAL; then the VF token
/// (vfio_df_check_token: the UUID is copied in first, EFAULT from a null
/// pointer; the Grace GPU is no SR-IOV function, so a token is EINVAL and no
/// token is fine); then the open (EBUSY for the fallback's second open). A
/// closed in-process device stands for a cdev file not bound yet. The iommufd
/// itself is not checked (there is none).
template <class Device>
[[nodiscard]] long ioctl_bind_iommufd(Device& d, void* arg) noexcept {
  if (arg == nullptr) return negative(errc::bad_address);
  constexpr std::uint32_t minsz = 16;  // offsetofend(out_devid)
  constexpr std::uint32_t ksize = 24;  // sizeof(struct vfio_device_bind_iommufd) with the token pointer
  auto* bytes = static_cast<std::byte*>(arg);
  const auto argsz = load_le<std::uint32_t>(std::span<const std::byte>(bytes, 4), 0);
  if (argsz < minsz) return negative(errc::invalid_argument);
  // copy_struct_from_user: trailing bytes past ksize must be zero; fewer than
  // ksize are zero-filled (so the token pointer is null).
  const std::span<const std::byte> user(bytes, argsz);
  for (std::size_t i = ksize; i < user.size(); ++i)
    if (user[i] != std::byte{0}) return negative(errc::argument_list_too_long);
  std::array<std::byte, ksize> bind{};
  std::memcpy(bind.data(), bytes, argsz < ksize ? argsz : ksize);
  const auto flags = load_le<std::uint32_t>(bind, 4);
  const auto iommufd = static_cast<std::int32_t>(load_le<std::uint32_t>(bind, 8));
  const auto token_ptr = load_le<std::uint64_t>(bind, 16);
  if (iommufd < 0 || (flags & ~vfio::bind_flag_token) != 0) return negative(errc::invalid_argument);
  if (!d.is_closed()) return negative(errc::invalid_argument);  // one device file cannot be bound twice
  const bool token = (flags & vfio::bind_flag_token) != 0;
  if (token && token_ptr == 0) return negative(errc::bad_address);  // the UUID copy-in faults
  if (auto s = grace::check_vf_token(token); !s) return negative(s.error());
  if (auto s = d.open(); !s) return negative(s.error());
  store_le<std::uint32_t>(std::span<std::byte>(bytes, minsz), 12, fake_iommufd_devid);
  return 0;
}

}  // namespace detail

/// The device ioctls with the kernel's argument layouts: returns ≥ 0 or −errno.
/// DEVICE_GET_INFO, GET_REGION_INFO, GET_IRQ_INFO, DEVICE_RESET, IOEVENTFD
/// (ENOTTY in the full variant; stored in plain mode), DEVICE_FEATURE (DMA_BUF
/// GET and PROBE, whose result is a fake fd number, see dma_bufs(); the
/// LOW_POWER features; PCI_VF_TOKEN), BIND_IOMMUFD (handled first, as the
/// core does: a closed device stands for an unbound cdev file, see
/// detail::ioctl_bind_iommufd); anything else ENOTTY. Like the vfio
/// core, every other ioctl fails with EIO first when runtime-PM resume fails. `arg` must point to as many bytes as its
/// argsz says (the kernel would fault otherwise; in-process that cannot be detected).
template <creatable_memory Memory>
[[nodiscard]] long ioctl(device<Memory>& d, unsigned long request, void* arg) noexcept {
  // The core handles BIND_IOMMUFD before access or runtime PM are checked.
  if (request == vfio::ioctl::device_bind_iommufd) return detail::ioctl_bind_iommufd(d, arg);
  if (auto s = d.begin_ioctl(); !s) return detail::negative(s.error());
  switch (request) {
    case vfio::ioctl::device_get_info: return detail::ioctl_device_info(d, arg);
    case vfio::ioctl::device_get_region_info: return detail::ioctl_region_info(d, arg);
    case vfio::ioctl::device_get_irq_info: return detail::ioctl_irq_info(d, arg);
    case vfio::ioctl::device_reset: return detail::to_long(d.reset());
    case vfio::ioctl::device_ioeventfd: return detail::ioctl_ioeventfd(d, arg);
    case vfio::ioctl::device_feature: return detail::ioctl_feature(d, arg);
    default: return detail::negative(errc::inappropriate_io_control_operation);
  }
}

}  // namespace nvgrace::shim
