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
// That it is a vfio::device_file is checked in tests/static (here the check
// would instantiate the whole device in every translation unit).

}  // namespace nvgrace::shim
