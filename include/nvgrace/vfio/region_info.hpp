#pragma once
/// \file
/// Building region-info replies exactly as the kernel does
/// (VFIO_DEVICE_GET_REGION_INFO, spec §4.2–4.3): a capability chain built
/// without allocation, and the encoder that applies the argsz rules.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace::vfio {

/// A capability chain as the kernel's cap helpers build it: each capability
/// is zero-padded to a multiple of 8 bytes and linked at the tail; `next`
/// offsets are relative to the chain start until the encoder shifts them.
/// Fixed capacity, no allocation; a chain that would not fit is ENOMEM, the
/// kernel's code for the same failure.
template <std::size_t Capacity = 256>
class cap_chain {
public:
  /// Append a capability with `payload` after its 8-byte header.
  constexpr status add(std::uint16_t id, std::uint16_t version, std::span<const std::byte> payload) noexcept {
    const std::size_t raw = info_cap_header_size + payload.size();
    const std::size_t padded = (raw + 7) & ~std::size_t{7};
    if (padded > Capacity - size_) return errc::not_enough_memory;
    const std::size_t at = size_;
    auto out = std::span<std::byte>(bytes_);
    for (std::size_t i = at; i < at + padded; ++i) bytes_[i] = std::byte{0};
    store_le<std::uint16_t>(out, at, id);
    store_le<std::uint16_t>(out, at + 2, version);
    for (std::size_t i = 0; i < payload.size(); ++i) bytes_[at + info_cap_header_size + i] = payload[i];
    if (count_ > 0) store_le<std::uint32_t>(out, last_ + 4, static_cast<std::uint32_t>(at));
    last_ = at;
    size_ += padded;
    ++count_;
    return {};
  }

  /// VFIO_REGION_INFO_CAP_SPARSE_MMAP (id 1, version 1).
  constexpr status add_sparse_mmap(std::span<const sparse_mmap_area> areas) noexcept {
    const std::size_t payload_size = 8 + sparse_mmap_area_size * areas.size();
    if (payload_size + info_cap_header_size > Capacity) return errc::not_enough_memory;
    std::array<std::byte, Capacity> payload{};
    auto out = std::span<std::byte>(payload);
    store_le<std::uint32_t>(out, 0, static_cast<std::uint32_t>(areas.size()));
    for (std::size_t i = 0; i < areas.size(); ++i) {
      store_le<std::uint64_t>(out, 8 + 16 * i, areas[i].offset);
      store_le<std::uint64_t>(out, 16 + 16 * i, areas[i].size);
    }
    return add(cap_id::sparse_mmap, 1, out.first(payload_size));
  }

  /// VFIO_REGION_INFO_CAP_TYPE (id 2, version 1).
  constexpr status add_type(std::uint32_t type, std::uint32_t subtype) noexcept {
    std::array<std::byte, 8> payload{};
    store_le<std::uint32_t>(payload, 0, type);
    store_le<std::uint32_t>(payload, 4, subtype);
    return add(cap_id::type, 1, payload);
  }

  /// VFIO_REGION_INFO_CAP_MSIX_MAPPABLE (id 3, version 1, no payload).
  constexpr status add_msix_mappable() noexcept { return add(cap_id::msix_mappable, 1, {}); }

  [[nodiscard]] constexpr std::span<const std::byte> bytes() const noexcept {
    return std::span<const std::byte>(bytes_).first(size_);
  }
  [[nodiscard]] constexpr std::size_t size() const noexcept { return size_; }
  [[nodiscard]] constexpr std::size_t count() const noexcept { return count_; }
  [[nodiscard]] constexpr bool empty() const noexcept { return count_ == 0; }

private:
  std::array<std::byte, Capacity> bytes_{};
  std::size_t size_ = 0;
  std::size_t last_ = 0;
  std::size_t count_ = 0;
};

/// Serialize a vfio_region_info into its 32 little-endian bytes.
constexpr void store_region_info(std::span<std::byte> out, const region_info& info) noexcept {
  store_le<std::uint32_t>(out, 0, info.argsz);
  store_le<std::uint32_t>(out, 4, info.flags);
  store_le<std::uint32_t>(out, 8, info.index);
  store_le<std::uint32_t>(out, 12, info.cap_offset);
  store_le<std::uint64_t>(out, 16, info.size);
  store_le<std::uint64_t>(out, 24, info.offset);
}

/// Parse the 32 bytes of a vfio_region_info.
[[nodiscard]] constexpr region_info load_region_info(std::span<const std::byte> in) noexcept {
  return region_info{load_le<std::uint32_t>(in, 0),  load_le<std::uint32_t>(in, 4),  load_le<std::uint32_t>(in, 8),
                     load_le<std::uint32_t>(in, 12), load_le<std::uint64_t>(in, 16), load_le<std::uint64_t>(in, 24)};
}

/// The region-info reply the kernel writes for a caller's `argsz` (§4.2):
/// - argsz < 32 → EINVAL, nothing written;
/// - caps present and argsz < 32 + caps → success: 32 bytes with argsz set to
///   the size needed, cap_offset 0, CAPS set, no caps;
/// - otherwise the 32 bytes (argsz as the caller wrote it), then the chain at
///   offset 32 with every non-zero `next` shifted by 32, cap_offset 32.
/// `info` carries flags/index/size/offset from the driver (its argsz and
/// cap_offset are ignored). Returns the number of bytes written to `out`; EFAULT
/// if `out` is too small for them (the kernel's copy_to_user failure).
template <std::size_t Capacity>
[[nodiscard]] constexpr result<std::size_t> encode_region_info(std::span<std::byte> out, std::uint32_t argsz,
                                                               region_info info,
                                                               const cap_chain<Capacity>& caps) noexcept {
  if (argsz < region_info_size) return errc::invalid_argument;
  info.argsz = argsz;
  info.cap_offset = 0;
  std::size_t written = region_info_size;
  const std::size_t needed = region_info_size + caps.size();
  const bool caps_fit = argsz >= needed;
  if (!caps.empty()) {
    info.flags |= region_flags::caps;
    if (!caps_fit) {
      info.argsz = static_cast<std::uint32_t>(needed);
    } else {
      info.cap_offset = region_info_size;
      written = needed;
    }
  }
  if (out.size() < written) return errc::bad_address;
  store_region_info(out, info);
  if (!caps.empty() && caps_fit) {
    const auto chain = caps.bytes();
    for (std::size_t i = 0; i < chain.size(); ++i) out[region_info_size + i] = chain[i];
    // Shift every link so it counts from the start of the info struct.
    std::size_t at = 0;
    for (std::size_t n = 0; n < caps.count(); ++n) {
      const auto next = load_le<std::uint32_t>(out, region_info_size + at + 4);
      if (next == 0) break;
      store_le<std::uint32_t>(out, region_info_size + at + 4, next + region_info_size);
      at = next;
    }
  }
  return written;
}

}  // namespace nvgrace::vfio
