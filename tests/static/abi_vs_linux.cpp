// nvgrace's VFIO ABI and PCI constants equal the kernel's UAPI headers
// whenever those are present (compile-only). Newer definitions are
// checked only when the installed headers have them (the macro or, for
// structures, the ioctl that uses them, is tested first).
//
// VFIO_PCI_OFFSET_SHIFT (40) lives in the kernel-internal
// <linux/vfio_pci_core.h>, not in UAPI, so vfio::offset_shift is checked in
// offsets.cpp against the spec instead.
#include <nvgrace/grace/bar_emulation.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <cstddef>
#include <cstdint>

// The UAPI's ioctl numbers are C macros built with C casts (_IO and friends);
// every comparison below expands them here.
#pragma GCC diagnostic ignored "-Wold-style-cast"

#if __has_include(<linux/vfio.h>)
#include <linux/vfio.h>
#define NVGRACE_HAVE_LINUX_VFIO 1
#endif
#if __has_include(<linux/pci_regs.h>)
#include <linux/pci_regs.h>
#define NVGRACE_HAVE_LINUX_PCI_REGS 1
#endif
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#define NVGRACE_HAVE_LINUX_IOMMUFD 1
#endif

namespace {

namespace v = nvgrace::vfio;
namespace p = nvgrace::pci;

/// Same size, and every listed field at the same offset with the same size.
#define NVGRACE_SAME_FIELD(ours, theirs, field)                                      \
  static_assert(offsetof(v::ours, field) == offsetof(struct theirs, field), #field); \
  static_assert(sizeof(v::ours::field) == sizeof(((struct theirs*)nullptr)->field), #field)

#ifdef NVGRACE_HAVE_LINUX_VFIO
// ---- structures ----
// vfio_device_info grew a 4-byte tail `pad` in newer headers (24 bytes); ours
// is the 20-byte form. Both agree on every field nvgrace uses.
template <class T>
concept has_pad = requires(T t) {
  t.pad;
};
static_assert(sizeof(v::device_info) == 20);
static_assert(sizeof(vfio_device_info) == (has_pad<vfio_device_info> ? 24 : 20));
NVGRACE_SAME_FIELD(device_info, vfio_device_info, argsz);
NVGRACE_SAME_FIELD(device_info, vfio_device_info, flags);
NVGRACE_SAME_FIELD(device_info, vfio_device_info, num_regions);
NVGRACE_SAME_FIELD(device_info, vfio_device_info, num_irqs);
NVGRACE_SAME_FIELD(device_info, vfio_device_info, cap_offset);

static_assert(sizeof(v::region_info) == sizeof(vfio_region_info));
NVGRACE_SAME_FIELD(region_info, vfio_region_info, argsz);
NVGRACE_SAME_FIELD(region_info, vfio_region_info, flags);
NVGRACE_SAME_FIELD(region_info, vfio_region_info, index);
NVGRACE_SAME_FIELD(region_info, vfio_region_info, cap_offset);
NVGRACE_SAME_FIELD(region_info, vfio_region_info, size);
NVGRACE_SAME_FIELD(region_info, vfio_region_info, offset);
static_assert(v::region_info_size == sizeof(vfio_region_info));

static_assert(sizeof(v::info_cap_header) == sizeof(vfio_info_cap_header));
NVGRACE_SAME_FIELD(info_cap_header, vfio_info_cap_header, id);
NVGRACE_SAME_FIELD(info_cap_header, vfio_info_cap_header, version);
NVGRACE_SAME_FIELD(info_cap_header, vfio_info_cap_header, next);

static_assert(sizeof(v::sparse_mmap_area) == sizeof(vfio_region_sparse_mmap_area));
NVGRACE_SAME_FIELD(sparse_mmap_area, vfio_region_sparse_mmap_area, offset);
NVGRACE_SAME_FIELD(sparse_mmap_area, vfio_region_sparse_mmap_area, size);

static_assert(sizeof(v::region_info_cap_sparse_mmap) == sizeof(vfio_region_info_cap_sparse_mmap));
static_assert(v::sparse_mmap_cap_base_size == sizeof(vfio_region_info_cap_sparse_mmap));
NVGRACE_SAME_FIELD(region_info_cap_sparse_mmap, vfio_region_info_cap_sparse_mmap, header);
NVGRACE_SAME_FIELD(region_info_cap_sparse_mmap, vfio_region_info_cap_sparse_mmap, nr_areas);
NVGRACE_SAME_FIELD(region_info_cap_sparse_mmap, vfio_region_info_cap_sparse_mmap, reserved);
static_assert(offsetof(vfio_region_info_cap_sparse_mmap, areas) == v::sparse_mmap_cap_base_size);

static_assert(sizeof(v::region_info_cap_type) == sizeof(vfio_region_info_cap_type));
NVGRACE_SAME_FIELD(region_info_cap_type, vfio_region_info_cap_type, header);
NVGRACE_SAME_FIELD(region_info_cap_type, vfio_region_info_cap_type, type);
NVGRACE_SAME_FIELD(region_info_cap_type, vfio_region_info_cap_type, subtype);

static_assert(sizeof(v::irq_info) == sizeof(vfio_irq_info));
NVGRACE_SAME_FIELD(irq_info, vfio_irq_info, argsz);
NVGRACE_SAME_FIELD(irq_info, vfio_irq_info, flags);
NVGRACE_SAME_FIELD(irq_info, vfio_irq_info, index);
NVGRACE_SAME_FIELD(irq_info, vfio_irq_info, count);

static_assert(sizeof(v::irq_set) == sizeof(vfio_irq_set));
NVGRACE_SAME_FIELD(irq_set, vfio_irq_set, argsz);
NVGRACE_SAME_FIELD(irq_set, vfio_irq_set, flags);
NVGRACE_SAME_FIELD(irq_set, vfio_irq_set, index);
NVGRACE_SAME_FIELD(irq_set, vfio_irq_set, start);
NVGRACE_SAME_FIELD(irq_set, vfio_irq_set, count);
static_assert(offsetof(vfio_irq_set, data) == sizeof(v::irq_set));

static_assert(sizeof(v::device_ioeventfd) == sizeof(vfio_device_ioeventfd));
NVGRACE_SAME_FIELD(device_ioeventfd, vfio_device_ioeventfd, argsz);
NVGRACE_SAME_FIELD(device_ioeventfd, vfio_device_ioeventfd, flags);
NVGRACE_SAME_FIELD(device_ioeventfd, vfio_device_ioeventfd, offset);
NVGRACE_SAME_FIELD(device_ioeventfd, vfio_device_ioeventfd, data);
NVGRACE_SAME_FIELD(device_ioeventfd, vfio_device_ioeventfd, fd);

static_assert(sizeof(v::device_feature) == sizeof(vfio_device_feature));
NVGRACE_SAME_FIELD(device_feature, vfio_device_feature, argsz);
NVGRACE_SAME_FIELD(device_feature, vfio_device_feature, flags);
static_assert(offsetof(vfio_device_feature, data) == sizeof(v::device_feature));

static_assert(sizeof(v::group_status) == sizeof(vfio_group_status));
NVGRACE_SAME_FIELD(group_status, vfio_group_status, argsz);
NVGRACE_SAME_FIELD(group_status, vfio_group_status, flags);

#ifdef VFIO_DEVICE_FEATURE_DMA_BUF
static_assert(v::feature_dma_buf == VFIO_DEVICE_FEATURE_DMA_BUF);
static_assert(sizeof(v::device_feature_dma_buf) == sizeof(vfio_device_feature_dma_buf));
NVGRACE_SAME_FIELD(device_feature_dma_buf, vfio_device_feature_dma_buf, region_index);
NVGRACE_SAME_FIELD(device_feature_dma_buf, vfio_device_feature_dma_buf, open_flags);
NVGRACE_SAME_FIELD(device_feature_dma_buf, vfio_device_feature_dma_buf, flags);
NVGRACE_SAME_FIELD(device_feature_dma_buf, vfio_device_feature_dma_buf, nr_ranges);
static_assert(offsetof(vfio_device_feature_dma_buf, dma_ranges) == sizeof(v::device_feature_dma_buf));
static_assert(sizeof(v::region_dma_range) == sizeof(vfio_region_dma_range));
NVGRACE_SAME_FIELD(region_dma_range, vfio_region_dma_range, offset);
NVGRACE_SAME_FIELD(region_dma_range, vfio_region_dma_range, length);
#endif

#ifdef VFIO_DEVICE_BIND_IOMMUFD
static_assert(v::ioctl::device_bind_iommufd == VFIO_DEVICE_BIND_IOMMUFD);
static_assert(sizeof(v::device_bind_iommufd) == sizeof(vfio_device_bind_iommufd));
NVGRACE_SAME_FIELD(device_bind_iommufd, vfio_device_bind_iommufd, argsz);
NVGRACE_SAME_FIELD(device_bind_iommufd, vfio_device_bind_iommufd, flags);
NVGRACE_SAME_FIELD(device_bind_iommufd, vfio_device_bind_iommufd, iommufd);
NVGRACE_SAME_FIELD(device_bind_iommufd, vfio_device_bind_iommufd, out_devid);
#endif
#ifdef VFIO_DEVICE_ATTACH_IOMMUFD_PT
static_assert(v::ioctl::device_attach_iommufd_pt == VFIO_DEVICE_ATTACH_IOMMUFD_PT);
static_assert(v::ioctl::device_detach_iommufd_pt == VFIO_DEVICE_DETACH_IOMMUFD_PT);
// Newer headers append pasid fields; the prefix nvgrace uses must match.
static_assert(sizeof(vfio_device_attach_iommufd_pt) >= sizeof(v::device_attach_iommufd_pt));
NVGRACE_SAME_FIELD(device_attach_iommufd_pt, vfio_device_attach_iommufd_pt, argsz);
NVGRACE_SAME_FIELD(device_attach_iommufd_pt, vfio_device_attach_iommufd_pt, flags);
NVGRACE_SAME_FIELD(device_attach_iommufd_pt, vfio_device_attach_iommufd_pt, pt_id);
#endif

// ---- flags, ids, indices ----
static_assert(v::region_flags::read == VFIO_REGION_INFO_FLAG_READ);
static_assert(v::region_flags::write == VFIO_REGION_INFO_FLAG_WRITE);
static_assert(v::region_flags::mmap == VFIO_REGION_INFO_FLAG_MMAP);
static_assert(v::region_flags::caps == VFIO_REGION_INFO_FLAG_CAPS);
static_assert(v::cap_id::sparse_mmap == VFIO_REGION_INFO_CAP_SPARSE_MMAP);
static_assert(v::cap_id::type == VFIO_REGION_INFO_CAP_TYPE);
static_assert(v::cap_id::msix_mappable == VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
static_assert(v::device_flags::reset == VFIO_DEVICE_FLAGS_RESET);
static_assert(v::device_flags::pci == VFIO_DEVICE_FLAGS_PCI);
static_assert(v::device_flags::caps == VFIO_DEVICE_FLAGS_CAPS);
static_assert(v::irq_flags::eventfd == VFIO_IRQ_INFO_EVENTFD && v::irq_flags::maskable == VFIO_IRQ_INFO_MASKABLE);
static_assert(v::irq_flags::automasked == VFIO_IRQ_INFO_AUTOMASKED && v::irq_flags::noresize == VFIO_IRQ_INFO_NORESIZE);
static_assert(v::irq_set_flags::data_none == VFIO_IRQ_SET_DATA_NONE);
static_assert(v::irq_set_flags::data_bool == VFIO_IRQ_SET_DATA_BOOL);
static_assert(v::irq_set_flags::data_eventfd == VFIO_IRQ_SET_DATA_EVENTFD);
static_assert(v::irq_set_flags::action_mask == VFIO_IRQ_SET_ACTION_MASK);
static_assert(v::irq_set_flags::action_unmask == VFIO_IRQ_SET_ACTION_UNMASK);
static_assert(v::irq_set_flags::action_trigger == VFIO_IRQ_SET_ACTION_TRIGGER);
static_assert(v::feature_flags::mask == VFIO_DEVICE_FEATURE_MASK);
static_assert(v::feature_flags::get == VFIO_DEVICE_FEATURE_GET);
static_assert(v::feature_flags::set == VFIO_DEVICE_FEATURE_SET);
static_assert(v::feature_flags::probe == VFIO_DEVICE_FEATURE_PROBE);
static_assert(v::group_flags::viable == VFIO_GROUP_FLAGS_VIABLE);
static_assert(v::group_flags::container_set == VFIO_GROUP_FLAGS_CONTAINER_SET);
static_assert(v::api_version == VFIO_API_VERSION);
static_assert(v::iommu_type::type1 == VFIO_TYPE1_IOMMU && v::iommu_type::type1v2 == VFIO_TYPE1v2_IOMMU);
static_assert(v::iommu_type::noiommu == VFIO_NOIOMMU_IOMMU);

static_assert(v::to_index(v::region::bar0) == VFIO_PCI_BAR0_REGION_INDEX);
static_assert(v::to_index(v::region::bar1) == VFIO_PCI_BAR1_REGION_INDEX);
static_assert(v::to_index(v::region::bar2) == VFIO_PCI_BAR2_REGION_INDEX);
static_assert(v::to_index(v::region::bar3) == VFIO_PCI_BAR3_REGION_INDEX);
static_assert(v::to_index(v::region::bar4) == VFIO_PCI_BAR4_REGION_INDEX);
static_assert(v::to_index(v::region::bar5) == VFIO_PCI_BAR5_REGION_INDEX);
static_assert(v::to_index(v::region::rom) == VFIO_PCI_ROM_REGION_INDEX);
static_assert(v::to_index(v::region::config) == VFIO_PCI_CONFIG_REGION_INDEX);
static_assert(v::to_index(v::region::vga) == VFIO_PCI_VGA_REGION_INDEX);
static_assert(v::pci_num_regions == VFIO_PCI_NUM_REGIONS);
static_assert(static_cast<std::uint32_t>(v::irq::intx) == VFIO_PCI_INTX_IRQ_INDEX);
static_assert(static_cast<std::uint32_t>(v::irq::msi) == VFIO_PCI_MSI_IRQ_INDEX);
static_assert(static_cast<std::uint32_t>(v::irq::msix) == VFIO_PCI_MSIX_IRQ_INDEX);
static_assert(static_cast<std::uint32_t>(v::irq::err) == VFIO_PCI_ERR_IRQ_INDEX);
static_assert(static_cast<std::uint32_t>(v::irq::req) == VFIO_PCI_REQ_IRQ_INDEX);
static_assert(v::pci_num_irqs == VFIO_PCI_NUM_IRQS);
// The emulated regions are the BAR2 and BAR4 indices.
static_assert(nvgrace::grace::resmem_index == VFIO_PCI_BAR2_REGION_INDEX);
static_assert(nvgrace::grace::usemem_index == VFIO_PCI_BAR4_REGION_INDEX);

// ---- ioctl numbers ----
static_assert(v::ioctl_type == VFIO_TYPE && v::ioctl_base == VFIO_BASE);
static_assert(v::ioctl::get_api_version == VFIO_GET_API_VERSION);
static_assert(v::ioctl::check_extension == VFIO_CHECK_EXTENSION);
static_assert(v::ioctl::set_iommu == VFIO_SET_IOMMU);
static_assert(v::ioctl::group_get_status == VFIO_GROUP_GET_STATUS);
static_assert(v::ioctl::group_set_container == VFIO_GROUP_SET_CONTAINER);
static_assert(v::ioctl::group_unset_container == VFIO_GROUP_UNSET_CONTAINER);
static_assert(v::ioctl::group_get_device_fd == VFIO_GROUP_GET_DEVICE_FD);
static_assert(v::ioctl::device_get_info == VFIO_DEVICE_GET_INFO);
static_assert(v::ioctl::device_get_region_info == VFIO_DEVICE_GET_REGION_INFO);
static_assert(v::ioctl::device_get_irq_info == VFIO_DEVICE_GET_IRQ_INFO);
static_assert(v::ioctl::device_set_irqs == VFIO_DEVICE_SET_IRQS);
static_assert(v::ioctl::device_reset == VFIO_DEVICE_RESET);
static_assert(v::ioctl::device_get_pci_hot_reset_info == VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);
static_assert(v::ioctl::device_pci_hot_reset == VFIO_DEVICE_PCI_HOT_RESET);
static_assert(v::ioctl::device_ioeventfd == VFIO_DEVICE_IOEVENTFD);
static_assert(v::ioctl::device_feature == VFIO_DEVICE_FEATURE);
static_assert(v::ioctl::iommu_get_info == VFIO_IOMMU_GET_INFO);
static_assert(v::ioctl::iommu_map_dma == VFIO_IOMMU_MAP_DMA);
static_assert(v::ioctl::iommu_unmap_dma == VFIO_IOMMU_UNMAP_DMA);
#endif  // NVGRACE_HAVE_LINUX_VFIO

#ifdef NVGRACE_HAVE_LINUX_IOMMUFD
static_assert(sizeof(v::iommu_ioas_alloc) == sizeof(iommu_ioas_alloc));
NVGRACE_SAME_FIELD(iommu_ioas_alloc, iommu_ioas_alloc, size);
NVGRACE_SAME_FIELD(iommu_ioas_alloc, iommu_ioas_alloc, flags);
NVGRACE_SAME_FIELD(iommu_ioas_alloc, iommu_ioas_alloc, out_ioas_id);
#endif

#ifdef NVGRACE_HAVE_LINUX_PCI_REGS
static_assert(p::reg::vendor_id == PCI_VENDOR_ID && p::reg::device_id == PCI_DEVICE_ID);
static_assert(p::reg::command == PCI_COMMAND && p::reg::status == PCI_STATUS);
static_assert(p::reg::revision_id == PCI_REVISION_ID && p::reg::class_prog == PCI_CLASS_PROG);
static_assert(p::reg::class_device == PCI_CLASS_DEVICE && p::reg::header_type == PCI_HEADER_TYPE);
static_assert(p::reg::base_address_0 == PCI_BASE_ADDRESS_0);
static_assert(p::reg::base_address(1) == PCI_BASE_ADDRESS_1 && p::reg::base_address(2) == PCI_BASE_ADDRESS_2);
static_assert(p::reg::base_address(3) == PCI_BASE_ADDRESS_3 && p::reg::base_address(4) == PCI_BASE_ADDRESS_4);
static_assert(p::reg::base_address(5) == PCI_BASE_ADDRESS_5);
static_assert(p::reg::subsystem_vendor_id == PCI_SUBSYSTEM_VENDOR_ID && p::reg::subsystem_id == PCI_SUBSYSTEM_ID);
static_assert(p::reg::rom_address == PCI_ROM_ADDRESS && p::reg::capability_list == PCI_CAPABILITY_LIST);
static_assert(p::reg::interrupt_line == PCI_INTERRUPT_LINE && p::reg::interrupt_pin == PCI_INTERRUPT_PIN);
static_assert(p::command_bits::io == PCI_COMMAND_IO && p::command_bits::memory == PCI_COMMAND_MEMORY);
static_assert(p::command_bits::master == PCI_COMMAND_MASTER &&
              p::command_bits::intx_disable == PCI_COMMAND_INTX_DISABLE);
static_assert(p::status_bits::cap_list == PCI_STATUS_CAP_LIST);
static_assert(p::bar_bits::space_io == PCI_BASE_ADDRESS_SPACE_IO);
static_assert(p::bar_bits::mem_type_mask == PCI_BASE_ADDRESS_MEM_TYPE_MASK);
static_assert(p::bar_bits::mem_type_32 == PCI_BASE_ADDRESS_MEM_TYPE_32);
static_assert(p::bar_bits::mem_type_1m == PCI_BASE_ADDRESS_MEM_TYPE_1M);
static_assert(p::bar_bits::mem_type_64 == PCI_BASE_ADDRESS_MEM_TYPE_64);
static_assert(p::bar_bits::mem_prefetch == PCI_BASE_ADDRESS_MEM_PREFETCH);
// The masks are unsigned long in the header: compare the bits that exist there.
static_assert(static_cast<unsigned long>(p::bar_bits::mem_mask) == PCI_BASE_ADDRESS_MEM_MASK);
static_assert(p::bar_bits::io_mask == static_cast<std::uint32_t>(PCI_BASE_ADDRESS_IO_MASK));
static_assert(nvgrace::grace::emulated_bar_flags == (PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH));
static_assert(nvgrace::grace::resmem_bar_window == PCI_BASE_ADDRESS_2);
static_assert(nvgrace::grace::usemem_bar_window == PCI_BASE_ADDRESS_4);
static_assert(p::cap::power_management == PCI_CAP_ID_PM && p::cap::msi == PCI_CAP_ID_MSI);
static_assert(p::cap::vendor == PCI_CAP_ID_VNDR && p::cap::express == PCI_CAP_ID_EXP &&
              p::cap::msix == PCI_CAP_ID_MSIX);
static_assert(p::ext_cap::dvsec == PCI_EXT_CAP_ID_DVSEC);
static_assert(p::config_space_size == PCI_CFG_SPACE_SIZE && p::ext_config_space_size == PCI_CFG_SPACE_EXP_SIZE);
static_assert(p::ext_cap_start == PCI_CFG_SPACE_SIZE);
#ifdef PCI_DVSEC_HEADER1
static_assert(p::dvsec::header1 == PCI_DVSEC_HEADER1 && p::dvsec::header2 == PCI_DVSEC_HEADER2);
#endif
// The header decoder agrees with the header's field macros on assorted dwords.
constexpr bool ext_header_matches(std::uint32_t dword) {
  const auto h = p::decode_ext_cap_header(dword);
  return h.id == PCI_EXT_CAP_ID(dword) && h.version == PCI_EXT_CAP_VER(dword) && h.next == PCI_EXT_CAP_NEXT(dword);
}
static_assert(ext_header_matches(0) && ext_header_matches(0xFFFF'FFFF) && ext_header_matches(0x1401'0023) &&
              ext_header_matches(0xFFE1'0023) && ext_header_matches(0x0013'0001) && ext_header_matches(0x1003'10DE));
#endif  // NVGRACE_HAVE_LINUX_PCI_REGS

#undef NVGRACE_SAME_FIELD

}  // namespace
