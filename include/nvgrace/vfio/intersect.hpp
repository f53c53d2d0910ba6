#pragma once
/// \file
/// How an access [buffer_start, +buffer_count) meets a register
/// [register_start, +register_count): vfio-pci-core's range-intersection rule
/// (§3.1), used to patch emulated registers in config space.

#include <cstdint>
#include <optional>

namespace nvgrace::vfio {

struct intersection {
  std::uint64_t buffer_offset = 0;    ///< where the overlap starts in the access buffer
  std::uint64_t count = 0;            ///< overlapping bytes
  std::uint64_t register_offset = 0;  ///< where the overlap starts in the register
  friend constexpr bool operator==(intersection, intersection) = default;
};

/// Case A: the access starts at or before the register and reaches into it.
/// Case B: the access starts strictly inside the register (buffer offset is 0).
/// Otherwise no overlap. A zero-length access can only match case B, with count 0.
[[nodiscard]] constexpr std::optional<intersection> intersect_range(std::uint64_t buffer_start,
                                                                    std::uint64_t buffer_count,
                                                                    std::uint64_t register_start,
                                                                    std::uint64_t register_count) noexcept {
  const auto min = [](std::uint64_t a, std::uint64_t b) { return a < b ? a : b; };
  if (buffer_start <= register_start && register_start - buffer_start < buffer_count) {
    return intersection{register_start - buffer_start,
                        min(register_count, buffer_start + buffer_count - register_start), 0};
  }
  if (register_start < buffer_start && buffer_start - register_start < register_count) {
    return intersection{0, min(buffer_count, register_start + register_count - buffer_start),
                        buffer_start - register_start};
  }
  return std::nullopt;
}

}  // namespace nvgrace::vfio
