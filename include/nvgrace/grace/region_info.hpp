#pragma once
/// \file
/// §4.3: the VFIO_DEVICE_GET_REGION_INFO reply of an emulated region, byte for
/// byte, for any caller argsz. The driver describes the region as readable,
/// writable and mappable, at file offset index << 40, with the reported BAR
/// size, plus one sparse-mmap capability whose single area covers only the
/// real memory (the padding is never mappable, §6.1).

#include <nvgrace/core/result.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace::grace {

/// The flags the driver sets; the vfio core adds CAPS (→ 0xF) when the
/// sparse-mmap capability is attached.
inline constexpr std::uint32_t emulated_region_flags =
    vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;

/// Size of the one sparse-mmap capability: header 8 + nr_areas/reserved 8 + one area 16.
inline constexpr std::uint32_t emulated_region_caps_size = 32;

/// Size of the full reply: the 32-byte struct and the capability (§10 E17).
inline constexpr std::uint32_t emulated_region_info_size = vfio::region_info_size + emulated_region_caps_size;

/// The capability chain the driver attaches: one SPARSE_MMAP (id 1, version 1)
/// with the area {0, real_length}, not page-rounded and not the BAR size.
using emulated_region_cap_chain = vfio::cap_chain<emulated_region_caps_size>;

[[nodiscard]] constexpr emulated_region_cap_chain emulated_region_caps(const memregion& r) noexcept {
  emulated_region_cap_chain caps;
  const std::array<vfio::sparse_mmap_area, 1> areas{{{0, r.real_length}}};
  // One area always fits: the chain's capacity is exactly its size.
  static_cast<void>(caps.add_sparse_mmap(areas));
  return caps;
}

/// The fields the driver fills for region `index` before the core applies the
/// argsz rules (argsz and cap_offset are the encoder's).
[[nodiscard]] constexpr vfio::region_info emulated_region_info(const memregion& r, std::uint32_t index) noexcept {
  return vfio::region_info{0, emulated_region_flags, index, 0, r.reported_size, vfio::region_offset(index)};
}

/// The reply bytes for GET_REGION_INFO on region `index` of `l` with the
/// caller's `argsz` (§4.2–4.3), written to the front of `out`:
/// - argsz < 32 → EINVAL (checked first, as the core does before asking the
///   driver); nothing written;
/// - `index` not emulated in `l` (anything but 4, and 2 only with resmem) →
///   ENOENT: vfio-pci-core answers that with the real BAR's info, which this
///   model does not know;
/// - 32 ≤ argsz < 64 → 32 bytes: argsz 64, flags 0xF, cap_offset 0, size and
///   offset filled, no capability (still success);
/// - argsz ≥ 64 → 64 bytes: argsz as given, flags 0xF, cap_offset 32, then the
///   sparse-mmap capability (next 0);
/// - `out` shorter than those bytes → EFAULT (the kernel's failed copy-out).
/// Returns the number of bytes written.
[[nodiscard]] constexpr result<std::size_t> region_info_reply(const layout& l, std::uint32_t index, std::uint32_t argsz,
                                                              std::span<std::byte> out) noexcept {
  if (argsz < vfio::region_info_size) return errc::invalid_argument;
  const auto r = l.region(index);
  if (!r) return errc::no_such_file_or_directory;
  return vfio::encode_region_info(out, argsz, emulated_region_info(*r, index), emulated_region_caps(*r));
}

/// The whole reply as a fixed array (bytes past the returned count are zero),
/// for constant expressions and tests.
struct region_info_bytes {
  std::array<std::byte, emulated_region_info_size> bytes{};
  std::size_t size = 0;
};
[[nodiscard]] constexpr result<region_info_bytes> region_info_reply(const layout& l, std::uint32_t index,
                                                                    std::uint32_t argsz) noexcept {
  region_info_bytes reply;
  const auto written = region_info_reply(l, index, argsz, reply.bytes);
  if (!written) return written.error();
  reply.size = *written;
  return reply;
}

}  // namespace nvgrace::grace
