#pragma once
/// \file
/// Umbrella header: the whole of nvgrace.
///
/// Layers, in dependency order: the constexpr model (core, pci, vfio, grace),
/// the copy path (mem), the VMM-side accessor (access) and the backends
/// (shim: in-process device; linux: /dev/vfio; vfio_user: server and client).
/// posix (fd and mapping owners, errno as a value) sits beneath mem, access
/// and the backends.
/// Only the standard library and Linux headers are needed.

// model
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/chunk_plan.hpp>
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
#include <nvgrace/grace/region_info.hpp>
// system resources
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/posix/unique_fd.hpp>
// copy path
#include <nvgrace/mem/memory.hpp>
// VMM side
#include <nvgrace/access/accessor.hpp>
#include <nvgrace/vfio/device_file.hpp>
// backends
#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/backend/shim/device.hpp>
#include <nvgrace/backend/vfio_user/vfio_user.hpp>
