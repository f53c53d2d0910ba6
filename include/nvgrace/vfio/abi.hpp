#pragma once
/// \file
/// The VFIO user-space ABI, defined by nvgrace itself so that consumers need
/// no kernel headers (and so that the 6.6+ cdev structures exist on older
/// distributions). Every structure is checked against <linux/vfio.h> in the
/// test suite whenever that header is present (tests/static/abi_vs_linux.cpp).
///
/// Namespace `nvgrace::vfio` holds what any VFIO device profile can reuse.

#include <cstddef>
#include <cstdint>

namespace nvgrace::vfio {

// ---- file offsets --------------------------------------------------------------

/// A region's file offset is its index shifted by this many bits.
inline constexpr unsigned offset_shift = 40;
/// Mask selecting the offset inside a region from a file offset.
inline constexpr std::uint64_t offset_mask = (std::uint64_t{1} << offset_shift) - 1;

/// Region indices of a vfio-pci device.
enum class region : std::uint32_t {
  bar0 = 0,
  bar1 = 1,
  bar2 = 2,
  bar3 = 3,
  bar4 = 4,
  bar5 = 5,
  rom = 6,
  config = 7,
  vga = 8,
};
/// Number of fixed vfio-pci regions (BAR0..5, ROM, config, VGA).
inline constexpr std::uint32_t pci_num_regions = 9;

[[nodiscard]] constexpr std::uint32_t to_index(region r) noexcept { return static_cast<std::uint32_t>(r); }

/// File offset at which region `index` starts.
[[nodiscard]] constexpr std::uint64_t region_offset(std::uint32_t index) noexcept {
  return std::uint64_t{index} << offset_shift;
}
/// Region index addressed by a file offset.
[[nodiscard]] constexpr std::uint32_t region_index_of(std::uint64_t file_offset) noexcept {
  return static_cast<std::uint32_t>(file_offset >> offset_shift);
}
/// Offset inside its region of a file offset.
[[nodiscard]] constexpr std::uint64_t offset_in_region(std::uint64_t file_offset) noexcept {
  return file_offset & offset_mask;
}
/// File offset of byte `offset` of region `index`.
[[nodiscard]] constexpr std::uint64_t file_offset(std::uint32_t index, std::uint64_t offset) noexcept {
  return region_offset(index) | (offset & offset_mask);
}

// ---- structures (all little-endian, naturally aligned, no padding) --------------

/// struct vfio_device_info (the 20-byte form with cap_offset).
struct device_info {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::uint32_t num_regions;
  std::uint32_t num_irqs;
  std::uint32_t cap_offset;
};
/// The part of device_info every kernel fills (offsetofend num_irqs).
inline constexpr std::uint32_t device_info_min_size = 16;

namespace device_flags {
inline constexpr std::uint32_t reset = 1u << 0;
inline constexpr std::uint32_t pci = 1u << 1;
inline constexpr std::uint32_t caps = 1u << 7;
}  // namespace device_flags

/// struct vfio_region_info.
struct region_info {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::uint32_t index;
  std::uint32_t cap_offset;
  std::uint64_t size;
  std::uint64_t offset;
};
/// Size of vfio_region_info: the minimum argsz of GET_REGION_INFO.
inline constexpr std::uint32_t region_info_size = 32;

namespace region_flags {
inline constexpr std::uint32_t read = 1u << 0;
inline constexpr std::uint32_t write = 1u << 1;
inline constexpr std::uint32_t mmap = 1u << 2;
inline constexpr std::uint32_t caps = 1u << 3;
}  // namespace region_flags

/// struct vfio_info_cap_header. `next` is an offset from the start of the info
/// structure; 0 ends the chain.
struct info_cap_header {
  std::uint16_t id;
  std::uint16_t version;
  std::uint32_t next;
};
inline constexpr std::uint32_t info_cap_header_size = 8;

namespace cap_id {
inline constexpr std::uint16_t sparse_mmap = 1;
inline constexpr std::uint16_t type = 2;
inline constexpr std::uint16_t msix_mappable = 3;
}  // namespace cap_id

/// struct vfio_region_sparse_mmap_area.
struct sparse_mmap_area {
  std::uint64_t offset;
  std::uint64_t size;
};
inline constexpr std::uint32_t sparse_mmap_area_size = 16;

/// struct vfio_region_info_cap_sparse_mmap without its flexible areas[].
struct region_info_cap_sparse_mmap {
  info_cap_header header;
  std::uint32_t nr_areas;
  std::uint32_t reserved;
  // sparse_mmap_area areas[nr_areas] follows
};
inline constexpr std::uint32_t sparse_mmap_cap_base_size = 16;

/// struct vfio_region_info_cap_type.
struct region_info_cap_type {
  info_cap_header header;
  std::uint32_t type;
  std::uint32_t subtype;
};

/// struct vfio_irq_info.
struct irq_info {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::uint32_t index;
  std::uint32_t count;
};

namespace irq_flags {
inline constexpr std::uint32_t eventfd = 1u << 0;
inline constexpr std::uint32_t maskable = 1u << 1;
inline constexpr std::uint32_t automasked = 1u << 2;
inline constexpr std::uint32_t noresize = 1u << 3;
}  // namespace irq_flags

/// IRQ indices of a vfio-pci device.
enum class irq : std::uint32_t { intx = 0, msi = 1, msix = 2, err = 3, req = 4 };
inline constexpr std::uint32_t pci_num_irqs = 5;

/// struct vfio_irq_set without its flexible data[].
struct irq_set {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::uint32_t index;
  std::uint32_t start;
  std::uint32_t count;
};

namespace irq_set_flags {
inline constexpr std::uint32_t data_none = 1u << 0;
inline constexpr std::uint32_t data_bool = 1u << 1;
inline constexpr std::uint32_t data_eventfd = 1u << 2;
inline constexpr std::uint32_t action_mask = 1u << 3;
inline constexpr std::uint32_t action_unmask = 1u << 4;
inline constexpr std::uint32_t action_trigger = 1u << 5;
}  // namespace irq_set_flags

/// struct vfio_device_ioeventfd.
struct device_ioeventfd {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::uint64_t offset;
  std::uint64_t data;
  std::int32_t fd;
  std::uint32_t padding;  // the kernel's struct has 4 bytes of tail padding
};

/// struct vfio_device_feature without its flexible data[].
struct device_feature {
  std::uint32_t argsz;
  std::uint32_t flags;
};

namespace feature_flags {
inline constexpr std::uint32_t mask = 0xFFFF;
inline constexpr std::uint32_t get = 1u << 16;
inline constexpr std::uint32_t set = 1u << 17;
inline constexpr std::uint32_t probe = 1u << 18;
}  // namespace feature_flags
/// VFIO_DEVICE_FEATURE_DMA_BUF.
inline constexpr std::uint32_t feature_dma_buf = 11;
/// VFIO_DEVICE_FEATURE_PCI_VF_TOKEN: SET a VF token (SR-IOV PFs only).
inline constexpr std::uint32_t feature_pci_vf_token = 0;
/// VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, _ENTRY_WITH_WAKEUP (payload: an s32
/// eventfd), _EXIT: SET only, runtime power management from user space.
inline constexpr std::uint32_t feature_low_power_entry = 3;
inline constexpr std::uint32_t feature_low_power_entry_with_wakeup = 4;
inline constexpr std::uint32_t feature_low_power_exit = 5;

/// struct vfio_device_feature_dma_buf without its flexible dma_ranges[].
struct device_feature_dma_buf {
  std::uint32_t region_index;
  std::uint32_t open_flags;
  std::uint32_t flags;
  std::uint32_t nr_ranges;
};
/// struct vfio_region_dma_range.
struct region_dma_range {
  std::uint64_t offset;
  std::uint64_t length;
};

/// struct vfio_group_status.
struct group_status {
  std::uint32_t argsz;
  std::uint32_t flags;
};
namespace group_flags {
inline constexpr std::uint32_t viable = 1u << 0;
inline constexpr std::uint32_t container_set = 1u << 1;
}  // namespace group_flags

/// struct vfio_device_bind_iommufd (Linux 6.6+; absent from Debian 12 headers).
struct device_bind_iommufd {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::int32_t iommufd;
  std::uint32_t out_devid;
};
/// struct vfio_device_bind_iommufd with the VF token (Linux 6.17+): the same
/// first 16 bytes, then a user pointer to a 16-byte UUID, read when `flags`
/// has bind_flag_token.
struct device_bind_iommufd_token {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::int32_t iommufd;
  std::uint32_t out_devid;
  std::uint64_t token_uuid_ptr;
};
/// VFIO_DEVICE_BIND_FLAG_TOKEN.
inline constexpr std::uint32_t bind_flag_token = 1u << 0;
/// struct vfio_device_attach_iommufd_pt (Linux 6.6+).
struct device_attach_iommufd_pt {
  std::uint32_t argsz;
  std::uint32_t flags;
  std::uint32_t pt_id;
};

/// struct iommu_ioas_alloc (iommufd, Linux 6.2+).
struct iommu_ioas_alloc {
  std::uint32_t size;
  std::uint32_t flags;
  std::uint32_t out_ioas_id;
};

// ---- ioctl numbers ---------------------------------------------------------------

// The numbers below follow the asm-generic ioctl encoding, where _IO(type, nr)
// is (type << 8) | nr: x86, arm64, riscv, s390, loongarch. Architectures with
// their own encoding put direction bits into _IO as well, so these numbers
// would be wrong there: refuse to compile rather than call the wrong ioctl.
// The installed package is still marked architecture independent (the same
// files serve every target); this #error is where an unsupported target is
// told, and tests/static/ioctl_arch.cpp checks that it fires.
#if defined(__powerpc__) || defined(__powerpc64__) || defined(__mips__) || defined(__sparc__) || defined(__alpha__) || \
    defined(__hppa__)
#error "nvgrace: this architecture's ioctl encoding is not the asm-generic one; vfio::ioctl numbers would be wrong"
#endif

/// VFIO ioctls are _IO(';', 100 + n): no size or direction bits are encoded.
inline constexpr unsigned long ioctl_type = ';';
inline constexpr unsigned long ioctl_base = 100;
[[nodiscard]] constexpr unsigned long vfio_io(unsigned long nr) noexcept {
  return (ioctl_type << 8) | (ioctl_base + nr);
}

namespace ioctl {
inline constexpr unsigned long get_api_version = vfio_io(0);
inline constexpr unsigned long check_extension = vfio_io(1);
inline constexpr unsigned long set_iommu = vfio_io(2);
inline constexpr unsigned long group_get_status = vfio_io(3);
inline constexpr unsigned long group_set_container = vfio_io(4);
inline constexpr unsigned long group_unset_container = vfio_io(5);
inline constexpr unsigned long group_get_device_fd = vfio_io(6);
inline constexpr unsigned long device_get_info = vfio_io(7);
inline constexpr unsigned long device_get_region_info = vfio_io(8);
inline constexpr unsigned long device_get_irq_info = vfio_io(9);
inline constexpr unsigned long device_set_irqs = vfio_io(10);
inline constexpr unsigned long device_reset = vfio_io(11);
inline constexpr unsigned long device_get_pci_hot_reset_info = vfio_io(12);
inline constexpr unsigned long device_pci_hot_reset = vfio_io(13);
inline constexpr unsigned long device_ioeventfd = vfio_io(16);
inline constexpr unsigned long device_feature = vfio_io(17);
inline constexpr unsigned long device_bind_iommufd = vfio_io(18);
inline constexpr unsigned long device_attach_iommufd_pt = vfio_io(19);
inline constexpr unsigned long device_detach_iommufd_pt = vfio_io(20);
inline constexpr unsigned long iommu_get_info = vfio_io(12);
inline constexpr unsigned long iommu_map_dma = vfio_io(13);
inline constexpr unsigned long iommu_unmap_dma = vfio_io(14);
}  // namespace ioctl

/// VFIO_API_VERSION.
inline constexpr int api_version = 0;

/// IOMMU types for VFIO_SET_IOMMU / VFIO_CHECK_EXTENSION.
namespace iommu_type {
inline constexpr unsigned long type1 = 1;
inline constexpr unsigned long type1v2 = 3;
inline constexpr unsigned long noiommu = 8;
}  // namespace iommu_type

static_assert(sizeof(device_info) == 20);
static_assert(sizeof(region_info) == region_info_size);
static_assert(offsetof(region_info, cap_offset) == 12 && offsetof(region_info, size) == 16 &&
              offsetof(region_info, offset) == 24);
static_assert(sizeof(info_cap_header) == info_cap_header_size && offsetof(info_cap_header, next) == 4);
static_assert(sizeof(sparse_mmap_area) == sparse_mmap_area_size);
static_assert(sizeof(region_info_cap_sparse_mmap) == sparse_mmap_cap_base_size &&
              offsetof(region_info_cap_sparse_mmap, nr_areas) == 8);
static_assert(sizeof(region_info_cap_type) == 16);
static_assert(sizeof(irq_info) == 16 && sizeof(irq_set) == 20 && sizeof(device_ioeventfd) == 32);
static_assert(sizeof(device_feature) == 8 && sizeof(device_feature_dma_buf) == 16 && sizeof(region_dma_range) == 16);
static_assert(sizeof(device_bind_iommufd) == 16 && sizeof(device_attach_iommufd_pt) == 12);
static_assert(sizeof(device_bind_iommufd_token) == 24);
static_assert(ioctl::device_get_region_info == 0x3B6C && ioctl::device_reset == 0x3B6F &&
              ioctl::device_ioeventfd == 0x3B74 && ioctl::device_feature == 0x3B75);

}  // namespace nvgrace::vfio
