#pragma once
/// \file
/// §8.2: vfio-pci-core's validation of a VFIO_DEVICE_FEATURE_DMA_BUF request,
/// in the core's order, before the driver maps ranges to physical addresses.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <cstdint>
#include <span>

namespace nvgrace::vfio {

/// Step 4–5: nr_ranges 0 or flags ≠ 0 → EINVAL; region_index ≥ 6 (not a BAR) → ENODEV.
[[nodiscard]] constexpr status check_dma_buf_request(const device_feature_dma_buf& request) noexcept {
  if (request.nr_ranges == 0 || request.flags != 0) return std::errc::invalid_argument;
  if (request.region_index >= to_index(region::rom)) return std::errc::no_such_device;
  return {};
}

/// Step 7: every range non-empty and page-aligned, and the total length must
/// not overflow → otherwise EINVAL.
[[nodiscard]] constexpr status check_dma_buf_ranges(std::span<const region_dma_range> ranges,
                                                    std::uint64_t page_size = 4096) noexcept {
  std::uint64_t total = 0;
  for (const auto& range : ranges) {
    if (range.length == 0 || !is_aligned(range.offset, page_size) || !is_aligned(range.length, page_size))
      return std::errc::invalid_argument;
    const auto sum = checked_add(total, range.length);
    if (!sum) return std::errc::invalid_argument;
    total = *sum;
  }
  return {};
}

}  // namespace nvgrace::vfio
