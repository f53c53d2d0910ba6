#pragma once
/// \file
/// The device-file concept: "an open VFIO device", as a VMM sees it. It sits
/// below every backend (they implement it) and below the accessor (which uses it).
///
/// Every backend implements it: the in-process shim device (no system calls),
/// a real /dev/vfio device (ioctl, pread/pwrite, mmap), and a vfio-user client
/// (messages on a UNIX socket). The accessor (access/accessor.hpp) and the
/// conformance suite are written once against this concept.
///
/// Semantics follow the kernel ABI exactly:
/// - get_region_info: `buffer` holds a vfio_region_info whose `argsz` (≤
///   buffer.size()) and `index` the caller set; on success the buffer holds
///   the reply byte for byte as the kernel would write it, including the
///   argsz-too-small case (success, argsz = needed, CAPS set, no capability
///   bytes);
/// - pread/pwrite: file offsets are region_offset(index) + offset; the result
///   is the number of bytes transferred (short transfers are visible);
/// - mmap: MAP_SHARED of `length` bytes at file offset `pos`, placed at exactly
///   `addr` (MAP_FIXED) when addr is non-null. Unmapped with ::munmap.

#include <nvgrace/core/result.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace::vfio {

template <class F>
concept device_file = requires(F& f, std::span<std::byte> buffer, std::span<const std::byte> data, std::uint64_t pos,
                               vfio::irq_info& irq, void* addr, std::uint64_t length, int prot) {
  { f.get_device_info() } -> std::same_as<result<vfio::device_info>>;
  { f.get_region_info(buffer) } -> std::same_as<status>;
  { f.get_irq_info(irq) } -> std::same_as<status>;
  { f.reset() } -> std::same_as<status>;
  { f.pread(buffer, pos) } -> std::same_as<result<std::size_t>>;
  { f.pwrite(data, pos) } -> std::same_as<result<std::size_t>>;
  { f.mmap(addr, length, prot, pos) } -> std::same_as<result<void*>>;
};

}  // namespace nvgrace::vfio
