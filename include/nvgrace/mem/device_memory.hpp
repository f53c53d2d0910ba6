#pragma once
/// \file
/// The device-memory concept: what the copy path and the devices need from
/// "the memory behind a BAR".

#include <concepts>
#include <cstddef>
#include <cstdint>

namespace nvgrace::mem {

/// How the memory may be touched. Cached memory takes bulk copies; uncached
/// memory (the Hopper resmem carve-out, mapped write-combine by the driver)
/// is only ever touched with naturally aligned 8/4/2/1-byte volatile accesses.
enum class caching : std::uint8_t { cached, uncached };

/// A non-owning description of device memory mapped in this process.
/// `base` is page-aligned (chunk alignment is judged from the address).
struct memory_view {
  std::byte* base = nullptr;
  std::uint64_t length = 0;
  mem::caching caching = caching::cached;
};

/// Where a memory object can be mapped from: a file descriptor (memfd, file)
/// and the offset of the memory inside it.
struct map_source {
  int fd = -1;
  std::uint64_t offset = 0;
};

/// Device memory: a length, a caching mode and the bytes, reachable in this
/// process through `view()`. Copies go through the copy path (mem/copy.hpp).
template <class M>
concept device_memory = requires(const M& m) {
  { m.view() }
  noexcept->std::same_as<memory_view>;
};

/// Device memory that can also be mapped by fd + offset: into another process
/// (vfio-user passes the fd), or again into this one (the shim's mmap).
template <class M>
concept mappable_memory = device_memory<M> && requires(const M& m) {
  { m.source() }
  noexcept->std::same_as<map_source>;
};

}  // namespace nvgrace::mem
