#pragma once
/// \file
/// Umbrella for nvgrace::mem: the device-memory concepts, the copy path and
/// the memory types.
///
/// | type               | owns                            | mappable by fd |
/// |--------------------|---------------------------------|----------------|
/// | `anonymous_memory` | a MAP_SHARED anonymous mapping  | no             |
/// | `memfd_memory`     | a memfd or file and its mapping | yes            |
/// | `span_memory`      | nothing (the caller's bytes)    | no             |

#include <nvgrace/mem/anonymous_memory.hpp>
#include <nvgrace/mem/copy.hpp>
#include <nvgrace/mem/device_memory.hpp>
#include <nvgrace/mem/memfd_memory.hpp>
#include <nvgrace/mem/span_memory.hpp>
