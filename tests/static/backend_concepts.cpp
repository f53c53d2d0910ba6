// Every backend and memory type satisfies the concept its layer is written
// against. Checked here rather than in the headers: there the check would
// instantiate each whole class template in every translation unit.
#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/mem/anonymous_memory.hpp>
#include <nvgrace/mem/memfd_memory.hpp>
#include <nvgrace/mem/span_memory.hpp>
#include <nvgrace/vfio/device_file.hpp>

static_assert(nvgrace::vfio::device_file<nvgrace::shim::memfd_device>);
static_assert(nvgrace::vfio::device_file<nvgrace::shim::device<nvgrace::mem::anonymous_memory>>);
static_assert(nvgrace::vfio::device_file<nvgrace::linux_vfio::device>);
static_assert(nvgrace::vfio::device_file<nvgrace::vfio_user::client>);
static_assert(nvgrace::mem::mappable_memory<nvgrace::mem::memfd_memory>);
static_assert(nvgrace::mem::device_memory<nvgrace::mem::anonymous_memory>);
static_assert(!nvgrace::mem::mappable_memory<nvgrace::mem::anonymous_memory>);
static_assert(nvgrace::mem::device_memory<nvgrace::mem::span_memory>);
static_assert(!nvgrace::mem::mappable_memory<nvgrace::mem::span_memory>);
// A type that is not a device file is refused.
static_assert(!nvgrace::vfio::device_file<int>);
static_assert(!nvgrace::vfio::device_file<nvgrace::mem::memfd_memory>);
