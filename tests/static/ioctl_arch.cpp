// The VFIO ioctl numbers (nvgrace/vfio/abi.hpp) follow the asm-generic encoding,
// _IO(type, nr) == (type << 8) | nr. On an architecture with its own encoding
// they would name the wrong ioctl, so the header refuses to compile there.
//
// Compiled as is, this unit is the control (the host's encoding is the generic
// one). tests/static/CMakeLists.txt also compiles it with one foreign
// architecture's macro predefined (-D__powerpc64__ and the others the #error
// names) and expects the #error's text. The host's own macros stay defined:
// undefining them (-U__x86_64__) breaks the C library's headers before the
// #error is reached.
#include <nvgrace/vfio/abi.hpp>

// VFIO_GET_API_VERSION is _IO(';', 100): 0x3B64 under the generic encoding.
static_assert(nvgrace::vfio::ioctl::get_api_version == 0x3B64);
static_assert(nvgrace::vfio::ioctl::device_get_region_info == 0x3B6C);
