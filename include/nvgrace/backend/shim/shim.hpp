#pragma once
/// \file
/// The in-process device with its usual memory (memfd, so a vfio-user server
/// can hand the memory to a client) and its ioctl surface.

#include <nvgrace/backend/shim/device.hpp>
#include <nvgrace/backend/shim/ioctl.hpp>
#include <nvgrace/backend/shim/options.hpp>
#include <nvgrace/mem/memfd_memory.hpp>

namespace nvgrace::shim {

/// The device with its memory in memfds.
using memfd_device = device<mem::memfd_memory>;

static_assert(vfio::device_file<memfd_device>);

}  // namespace nvgrace::shim
