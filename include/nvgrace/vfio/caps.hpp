#pragma once
/// \file
/// Decoding the capability chain of a region-info reply that came from
/// outside (a kernel, a vfio-user server). Every offset is bounds- and
/// overflow-checked, `next` must move strictly forward (so no chain can
/// cycle), sparse areas must lie inside the region. A malformed chain is an
/// error, never "no capabilities, so the whole region is mappable".

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace nvgrace::vfio {

/// The areas of a decoded sparse-mmap capability, read in place.
class sparse_mmap_view {
public:
  constexpr sparse_mmap_view() noexcept = default;
  constexpr sparse_mmap_view(std::span<const std::byte> area_bytes, std::uint32_t count) noexcept
      : bytes_(area_bytes), count_(count) {}

  [[nodiscard]] constexpr std::uint32_t size() const noexcept { return count_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return count_ == 0; }
  [[nodiscard]] constexpr sparse_mmap_area operator[](std::uint32_t i) const noexcept {
    NVGRACE_EXPECTS(i < count_);
    return {load_le<std::uint64_t>(bytes_, sparse_mmap_area_size * std::size_t{i}),
            load_le<std::uint64_t>(bytes_, sparse_mmap_area_size * std::size_t{i} + 8)};
  }

private:
  std::span<const std::byte> bytes_{};
  std::uint32_t count_ = 0;
};

/// VFIO_REGION_INFO_CAP_TYPE payload.
struct region_type {
  std::uint32_t type = 0;
  std::uint32_t subtype = 0;
  friend constexpr bool operator==(region_type, region_type) = default;
};

/// What a region's capability chain says. Unknown capability ids are skipped
/// (and counted).
struct region_caps {
  std::optional<sparse_mmap_view> sparse_mmap;
  std::optional<region_type> type;
  bool msix_mappable = false;
  std::uint32_t unknown = 0;
};

/// Decode the capabilities of a region-info reply. `reply` holds the bytes the
/// provider wrote (at least the 32-byte struct). Errors:
/// - ENOBUFS: CAPS is set but the reply carries no chain (argsz was too small;
///   retry with the argsz the reply asks for);
/// - EBADMSG: the chain is malformed (offset inside the info struct or past
///   the reply, `next` not strictly forward, a capability running past its
///   successor or the buffer, a duplicate sparse-mmap or type capability);
/// - EINVAL: a sparse area lies outside the region.
[[nodiscard]] constexpr result<region_caps> decode_region_caps(std::span<const std::byte> reply) noexcept {
  if (reply.size() < region_info_size) return errc::bad_message;
  const region_info info = load_region_info(reply);
  region_caps caps;
  if ((info.flags & region_flags::caps) == 0) return caps;
  if (info.cap_offset == 0) return errc::no_buffer_space;
  // Only what the provider says it wrote counts.
  const std::size_t limit = info.argsz < reply.size() ? info.argsz : reply.size();
  std::uint64_t at = info.cap_offset;
  if (at < region_info_size) return errc::bad_message;
  while (at != 0) {
    if (!range_within(at, info_cap_header_size, limit)) return errc::bad_message;
    const auto id = load_le<std::uint16_t>(reply, static_cast<std::size_t>(at));
    const auto next = load_le<std::uint32_t>(reply, static_cast<std::size_t>(at) + 4);
    // The extent a capability may use: up to its successor, or the buffer end.
    std::uint64_t end = limit;
    if (next != 0) {
      if (next < at + info_cap_header_size || next >= limit) return errc::bad_message;
      end = next;
    }
    const std::uint64_t room = end - at;
    const auto base = static_cast<std::size_t>(at);
    switch (id) {
      case cap_id::sparse_mmap: {
        if (caps.sparse_mmap || room < sparse_mmap_cap_base_size) return errc::bad_message;
        const auto nr_areas = load_le<std::uint32_t>(reply, base + 8);
        const auto areas_size = checked_mul(nr_areas, sparse_mmap_area_size);
        if (!areas_size || *areas_size > room - sparse_mmap_cap_base_size) return errc::bad_message;
        const sparse_mmap_view view(
            reply.subspan(base + sparse_mmap_cap_base_size, static_cast<std::size_t>(*areas_size)), nr_areas);
        for (std::uint32_t i = 0; i < nr_areas; ++i) {
          const auto area = view[i];
          if (!range_within(area.offset, area.size, info.size)) return errc::invalid_argument;
        }
        caps.sparse_mmap = view;
        break;
      }
      case cap_id::type:
        if (caps.type || room < 16) return errc::bad_message;
        caps.type = region_type{load_le<std::uint32_t>(reply, base + 8), load_le<std::uint32_t>(reply, base + 12)};
        break;
      case cap_id::msix_mappable: caps.msix_mappable = true; break;
      default: ++caps.unknown; break;
    }
    at = next;
  }
  return caps;
}

}  // namespace nvgrace::vfio
