#pragma once
/// \file
/// The vfio-user wire format: the 16-byte message header, command numbers,
/// and the fixed payloads the nvgrace server and client exchange
/// (docs/vfio-user.md, "Protocol reference"). Every integer is
/// little-endian; every structure is packed. Nothing here touches a socket.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace::vfio_user {

/// Command numbers (the header's `command` field).
enum class command : std::uint16_t {
  version = 1,
  dma_map = 2,
  dma_unmap = 3,
  device_get_info = 4,
  device_get_region_info = 5,
  device_get_region_io_fds = 6,
  device_get_irq_info = 7,
  device_set_irqs = 8,
  region_read = 9,
  region_write = 10,
  dma_read = 11,
  dma_write = 12,
  device_reset = 13,
  region_write_multi = 15,
  device_feature = 16,
  mig_data_read = 17,
  mig_data_write = 18,
};

/// The command's name as the specification spells it ("REGION_READ"), or "UNKNOWN".
[[nodiscard]] constexpr text_view command_name(std::uint16_t number) noexcept {
  switch (static_cast<command>(number)) {
    case command::version: return "VERSION";
    case command::dma_map: return "DMA_MAP";
    case command::dma_unmap: return "DMA_UNMAP";
    case command::device_get_info: return "DEVICE_GET_INFO";
    case command::device_get_region_info: return "DEVICE_GET_REGION_INFO";
    case command::device_get_region_io_fds: return "DEVICE_GET_REGION_IO_FDS";
    case command::device_get_irq_info: return "DEVICE_GET_IRQ_INFO";
    case command::device_set_irqs: return "DEVICE_SET_IRQS";
    case command::region_read: return "REGION_READ";
    case command::region_write: return "REGION_WRITE";
    case command::dma_read: return "DMA_READ";
    case command::dma_write: return "DMA_WRITE";
    case command::device_reset: return "DEVICE_RESET";
    case command::region_write_multi: return "REGION_WRITE_MULTI";
    case command::device_feature: return "DEVICE_FEATURE";
    case command::mig_data_read: return "MIG_DATA_READ";
    case command::mig_data_write: return "MIG_DATA_WRITE";
  }
  return "UNKNOWN";
}

/// How many messages of each command a connection carried, by command number
/// (numbers above the last known command are counted as `unknown`).
struct command_counts {
  static constexpr std::size_t known_commands = static_cast<std::size_t>(command::mig_data_write) + 1;
  std::array<std::uint64_t, known_commands> by_command{};
  std::uint64_t unknown = 0;
  /// REGION_READ / REGION_WRITE messages by region index (0-8; the last slot
  /// counts every higher index), framed well enough to name a region.
  std::array<std::uint64_t, 10> reads_by_region{};
  std::array<std::uint64_t, 10> writes_by_region{};

  constexpr void count_region_access(std::uint16_t number, std::uint32_t region) noexcept {
    const std::size_t slot = region < 9 ? region : 9;
    if (number == static_cast<std::uint16_t>(command::region_read))
      ++reads_by_region[slot];
    else if (number == static_cast<std::uint16_t>(command::region_write))
      ++writes_by_region[slot];
  }

  constexpr void count(std::uint16_t number) noexcept {
    if (number < known_commands)
      ++by_command[number];
    else
      ++unknown;
  }
  [[nodiscard]] constexpr std::uint64_t of(command c) const noexcept { return by_command[static_cast<std::size_t>(c)]; }
  [[nodiscard]] constexpr std::uint64_t total() const noexcept {
    std::uint64_t sum = unknown;
    for (const auto n : by_command) sum += n;
    return sum;
  }
};

/// Bits of the header's `flags` field.
namespace message_flags {
inline constexpr std::uint32_t type_mask = 0xF;
inline constexpr std::uint32_t type_command = 0x0;
inline constexpr std::uint32_t type_reply = 0x1;
inline constexpr std::uint32_t no_reply = 0x10;
inline constexpr std::uint32_t error = 0x20;
/// Every bit the protocol defines.
inline constexpr std::uint32_t known = type_mask | no_reply | error;
}  // namespace message_flags

/// The header that starts every message.
struct header {
  std::uint16_t id = 0;
  std::uint16_t command = 0;
  /// Whole message, header included.
  std::uint32_t size = 0;
  std::uint32_t flags = 0;
  /// Positive errno when `flags` has `error` (replies only); 0 in commands.
  std::uint32_t error = 0;
  friend constexpr bool operator==(const header&, const header&) = default;
};
inline constexpr std::size_t header_size = 16;

[[nodiscard]] constexpr header load_header(std::span<const std::byte> in) noexcept {
  return {load_le<std::uint16_t>(in, 0), load_le<std::uint16_t>(in, 2), load_le<std::uint32_t>(in, 4),
          load_le<std::uint32_t>(in, 8), load_le<std::uint32_t>(in, 12)};
}

constexpr void store_header(std::span<std::byte> out, const header& h) noexcept {
  store_le<std::uint16_t>(out, 0, h.id);
  store_le<std::uint16_t>(out, 2, h.command);
  store_le<std::uint32_t>(out, 4, h.size);
  store_le<std::uint32_t>(out, 8, h.flags);
  store_le<std::uint32_t>(out, 12, h.error);
}

/// The header of a successful reply to `request` carrying `payload_size` bytes.
[[nodiscard]] constexpr header reply_header(const header& request, std::size_t payload_size) noexcept {
  return {request.id, request.command, static_cast<std::uint32_t>(header_size + payload_size),
          message_flags::type_reply, 0};
}

/// The header-only error reply to `request` (flags REPLY|ERROR = 0x21).
[[nodiscard]] constexpr header error_header(const header& request, errc error) noexcept {
  return {request.id, request.command, static_cast<std::uint32_t>(header_size),
          message_flags::type_reply | message_flags::error, static_cast<std::uint32_t>(to_errno(error))};
}

/// The errno a peer's error reply carries. An ERROR reply with 0 or an absurd
/// value is a generic failure (EINVAL), as libvfio-user's client reads it.
[[nodiscard]] constexpr errc reply_errno(const header& reply) noexcept {
  if (reply.error == 0 || reply.error > 4095) return errc::invalid_argument;
  return static_cast<errc>(reply.error);
}

// ---- VERSION ---------------------------------------------------------------------

/// VERSION payload: major u16 | minor u16 | optional NUL-terminated JSON.
inline constexpr std::size_t version_fixed_size = 4;
/// The only major version there is.
inline constexpr std::uint16_t protocol_major = 0;

// ---- DEVICE_GET_INFO ---------------------------------------------------------------

/// argsz u32 | flags u32 | num_regions u32 | num_irqs u32.
inline constexpr std::size_t device_info_size = vfio::device_info_min_size;

// ---- DEVICE_GET_REGION_INFO --------------------------------------------------------

// struct vfio_region_info (vfio::region_info_size bytes); the request's argsz is the
// largest reply payload the client can take, the reply's is the payload size needed.

/// The wire rule for a region-info reply, applied to what the device answered in
/// the kernel's form (`info`): `argsz` is the payload size a reply with every
/// capability needs (`needed`), and `CAPS` with a non-zero `cap_offset` are set
/// only when that chain is in this reply (`chain_in_reply`). The kernel keeps
/// `CAPS` set on a reply too short for its chain; on the vfio-user wire that
/// reply says only "ask again with argsz = needed", as libvfio-user sends it and
/// as QEMU's client requires (it rejects `CAPS` with `cap_offset` < 32 before it
/// would retry). docs/vfio-user.md, "Region info", shows both forms.
[[nodiscard]] constexpr vfio::region_info wire_region_info(vfio::region_info info, std::uint32_t needed,
                                                           bool chain_in_reply) noexcept {
  info.argsz = needed;
  if (!chain_in_reply) {
    info.flags &= ~vfio::region_flags::caps;
    info.cap_offset = 0;
  }
  return info;
}

// ---- REGION_READ / REGION_WRITE ----------------------------------------------------

/// offset u64 | region u32 | count u32; WRITE requests and READ replies append
/// `count` data bytes.
struct region_access {
  std::uint64_t offset = 0;
  std::uint32_t region = 0;
  std::uint32_t count = 0;
  friend constexpr bool operator==(const region_access&, const region_access&) = default;
};
inline constexpr std::size_t region_access_size = 16;

[[nodiscard]] constexpr region_access load_region_access(std::span<const std::byte> in) noexcept {
  return {load_le<std::uint64_t>(in, 0), load_le<std::uint32_t>(in, 8), load_le<std::uint32_t>(in, 12)};
}
constexpr void store_region_access(std::span<std::byte> out, const region_access& a) noexcept {
  store_le<std::uint64_t>(out, 0, a.offset);
  store_le<std::uint32_t>(out, 8, a.region);
  store_le<std::uint32_t>(out, 12, a.count);
}

// ---- DEVICE_GET_IRQ_INFO / DEVICE_SET_IRQS -------------------------------------------

/// argsz u32 | flags u32 | index u32 | count u32.
inline constexpr std::size_t irq_info_size = sizeof(vfio::irq_info);
/// argsz u32 | flags u32 | index u32 | start u32 | count u32, then data.
inline constexpr std::size_t irq_set_size = sizeof(vfio::irq_set);

// ---- DMA_MAP / DMA_UNMAP -------------------------------------------------------------

/// argsz u32 | flags u32 | offset u64 | address u64 | size u64.
struct dma_map {
  std::uint32_t argsz = 0;
  std::uint32_t flags = 0;
  std::uint64_t offset = 0;
  std::uint64_t address = 0;
  std::uint64_t size = 0;
};
inline constexpr std::size_t dma_map_size = 32;

namespace dma_map_flags {
inline constexpr std::uint32_t read = 1u << 0;
inline constexpr std::uint32_t write = 1u << 1;
}  // namespace dma_map_flags

[[nodiscard]] constexpr dma_map load_dma_map(std::span<const std::byte> in) noexcept {
  return {load_le<std::uint32_t>(in, 0), load_le<std::uint32_t>(in, 4), load_le<std::uint64_t>(in, 8),
          load_le<std::uint64_t>(in, 16), load_le<std::uint64_t>(in, 24)};
}

/// argsz u32 | flags u32 | address u64 | size u64.
struct dma_unmap {
  std::uint32_t argsz = 0;
  std::uint32_t flags = 0;
  std::uint64_t address = 0;
  std::uint64_t size = 0;
};
inline constexpr std::size_t dma_unmap_size = 24;

namespace dma_unmap_flags {
inline constexpr std::uint32_t get_dirty_bitmap = 1u << 0;
inline constexpr std::uint32_t unmap_all = 1u << 1;
}  // namespace dma_unmap_flags

[[nodiscard]] constexpr dma_unmap load_dma_unmap(std::span<const std::byte> in) noexcept {
  return {load_le<std::uint32_t>(in, 0), load_le<std::uint32_t>(in, 4), load_le<std::uint64_t>(in, 8),
          load_le<std::uint64_t>(in, 16)};
}

// ---- limits ----------------------------------------------------------------------------

/// The largest REGION_READ/WRITE `count` the nvgrace server accepts and advertises.
inline constexpr std::uint32_t default_max_data_xfer_size = 1u << 20;
/// The protocol's default when a peer names no `max_data_xfer_size`.
inline constexpr std::uint64_t protocol_default_max_data_xfer_size = 1u << 20;
/// The protocol's default when a peer names no `max_msg_fds`.
inline constexpr std::uint64_t protocol_default_max_msg_fds = 1;

/// The largest message a peer limited to `max_data_xfer_size` can have to
/// accept: a REGION_WRITE request or REGION_READ reply of that many bytes.
[[nodiscard]] constexpr std::size_t max_message_size_for(std::uint32_t max_data_xfer_size) noexcept {
  return header_size + region_access_size + std::size_t{max_data_xfer_size};
}

}  // namespace nvgrace::vfio_user
