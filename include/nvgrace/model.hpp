#pragma once
/// \file
/// Umbrella header of the constexpr model alone: the driver's rules as values,
/// usable in `static_assert`. No system header, no allocation, no exception,
/// no `<system_error>`:
/// - nvgrace::      errno codes (`errc`), `result<T>`, checked arithmetic, byte order;
/// - nvgrace::pci   config-space registers, capabilities, BAR sizing;
/// - nvgrace::vfio  the VFIO ABI, region-info encoding and capability decoding,
///                  the access-width chunk plan, range intersection, DMA-buf
///                  checks, and the device-file concept every backend implements;
/// - nvgrace::grace the Grace rules: device IDs, ACPI inputs, layout, emulated BAR
///                  registers, the access plan, mmap and fault checks, DMA-buf
///                  ranges, region-info replies.
/// The whole library (copy path, backends) is nvgrace/nvgrace.hpp; it also has
/// the size syntax of the tools (core/size.hpp: `parse_size`, `format_size`)
/// and the version (nvgrace/version.hpp), which are constexpr too but no rule
/// of the driver, and so not paid for here.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/contracts.hpp>
#include <nvgrace/core/errc.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>
#include <nvgrace/grace/access_plan.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/bar_emulation.hpp>
#include <nvgrace/grace/dma_buf.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/kernel_rule.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/mmap.hpp>
#include <nvgrace/grace/region_info.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/chunk_plan.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/dma_buf.hpp>
#include <nvgrace/vfio/intersect.hpp>
#include <nvgrace/vfio/region_info.hpp>
