#pragma once
/// \file
/// Umbrella header: the whole of nvgrace. For the constexpr model alone (much
/// cheaper to compile), include nvgrace/model.hpp. The bridge to
/// std::error_code is apart, <nvgrace/core/error_code.hpp>: <system_error>
/// alone costs about as much to parse as the model.
///
/// Layers, in dependency order: the constexpr model (core, pci, vfio, grace),
/// posix resources (fd and mapping owners, errno as a value), the copy path
/// (mem), the backends (shim: in-process device; linux: /dev/vfio; vfio_user:
/// server and client) and, above them, the VMM-side accessor (access).
/// Only the C++ standard library and the C library's POSIX headers are needed.

#include <nvgrace/model.hpp>
// the tools' size syntax and the version
#include <nvgrace/core/size.hpp>
#include <nvgrace/version.hpp>
// system resources
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/posix/unique_fd.hpp>
// copy path
#include <nvgrace/mem/memory.hpp>
// backends
#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/vfio_user.hpp>
// VMM side
#include <nvgrace/access/accessor.hpp>
