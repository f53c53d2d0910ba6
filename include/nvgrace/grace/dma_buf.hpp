#pragma once
/// \file
/// §8.3: DMA-buf ranges of an emulated region are physical ranges of the real
/// memory, bounded by the real length (never the reported BAR size).

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/dma_buf.hpp>

#include <cstdint>
#include <span>

namespace nvgrace::grace {

/// A physical range handed to the DMA-buf exporter.
struct phys_range {
  std::uint64_t address = 0;
  std::uint64_t length = 0;
  friend constexpr bool operator==(phys_range, phys_range) = default;
};

/// One range: length 0 → EINVAL; address or end overflow → EOVERFLOW; end past
/// the real memory → EINVAL.
[[nodiscard]] constexpr result<phys_range> dma_range_to_phys(const memregion& r,
                                                             vfio::region_dma_range range) noexcept {
  if (range.length == 0) return errc::invalid_argument;
  const auto address = checked_add(r.phys_base, range.offset);
  if (!address) return address.error();
  const auto end = checked_add(*address, range.length);
  if (!end) return end.error();
  if (*end > r.phys_base + r.real_length) return errc::invalid_argument;
  return phys_range{*address, range.length};
}

/// The whole request for an emulated region (core checks, then the driver's
/// mapping), writing one physical range per request range into `out`
/// (out.size() ≥ ranges.size()). Nothing is written on failure.
[[nodiscard]] constexpr status map_dma_buf(const memregion& r, const vfio::device_feature_dma_buf& request,
                                           std::span<const vfio::region_dma_range> ranges, std::span<phys_range> out,
                                           std::uint64_t page_size = 4096) noexcept {
  if (auto s = vfio::check_dma_buf_request(request); !s) return s;
  if (ranges.size() != request.nr_ranges) return errc::invalid_argument;
  if (auto s = vfio::check_dma_buf_ranges(ranges, page_size); !s) return s;
  NVGRACE_EXPECTS(out.size() >= ranges.size());
  for (const auto& range : ranges) {
    const auto phys = dma_range_to_phys(r, range);
    if (!phys) return phys.error();
  }
  for (std::size_t i = 0; i < ranges.size(); ++i) out[i] = dma_range_to_phys(r, ranges[i]).value();
  return {};
}

}  // namespace nvgrace::grace
