#pragma once
/// \file
/// Umbrella header: the whole of nvgrace.
///
/// Layers, in dependency order: the constexpr model (core, pci, vfio, grace),
/// the copy path (mem), the VMM-side accessor (access) and the backends.

// model
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/dma_buf.hpp>
#include <nvgrace/vfio/intersect.hpp>
#include <nvgrace/vfio/region_info.hpp>
#include <nvgrace/grace/access_plan.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/bar_emulation.hpp>
#include <nvgrace/grace/dma_buf.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/grace/mmap.hpp>
// concepts
#include <nvgrace/access/device_file.hpp>
#include <nvgrace/mem/device_memory.hpp>
