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
  if (request.nr_ranges == 0 || request.flags != 0) return errc::invalid_argument;
  if (request.region_index >= to_index(region::rom)) return errc::no_such_device;
  return {};
}

/// The top bit of a DMA mapping's total length is the DMA layer's "used
/// swiotlb" marker, so the core refuses totals that reach it.
inline constexpr std::uint64_t dma_iova_use_swiotlb = std::uint64_t{1} << 63;

/// Step 7: every range non-empty with page-aligned offset and length, the
/// total length must not overflow, and the total must stay below 2^63
/// (dma_iova_use_swiotlb) → otherwise EINVAL.
[[nodiscard]] constexpr status check_dma_buf_ranges(std::span<const region_dma_range> ranges,
                                                    std::uint64_t page_size = 4096) noexcept {
  std::uint64_t total = 0;
  for (const auto& range : ranges) {
    if (range.length == 0 || !is_aligned(range.offset, page_size) || !is_aligned(range.length, page_size))
      return errc::invalid_argument;
    const auto sum = checked_add(total, range.length);
    if (!sum) return errc::invalid_argument;
    total = *sum;
  }
  if ((total & dma_iova_use_swiotlb) != 0) return errc::invalid_argument;
  return {};
}

/// What the generic feature check tells a driver to do.
enum class feature_action : std::uint8_t {
  probe_only,  ///< a PROBE: report success without doing anything
  execute,     ///< do the GET or SET
};

/// vfio's per-feature check of VFIO_DEVICE_FEATURE (step 2 of §8.2):
/// GET/SET bits outside `supported_ops` → EINVAL; PROBE → probe_only; neither
/// GET nor SET → EINVAL; `payload_size` (argsz minus the 8-byte header) below
/// `min_payload` → EINVAL; otherwise execute. DMA_BUF supports GET only with a
/// 16-byte minimum.
[[nodiscard]] constexpr result<feature_action> check_feature(std::uint32_t flags, std::uint64_t payload_size,
                                                             std::uint32_t supported_ops,
                                                             std::uint64_t min_payload) noexcept {
  const std::uint32_t get_set = feature_flags::get | feature_flags::set;
  if ((flags & get_set & ~supported_ops) != 0) return errc::invalid_argument;
  if ((flags & feature_flags::probe) != 0) return feature_action::probe_only;
  if ((flags & get_set) == 0) return errc::invalid_argument;
  if (payload_size < min_payload) return errc::invalid_argument;
  return feature_action::execute;
}

}  // namespace nvgrace::vfio
