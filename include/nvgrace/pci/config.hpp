#pragma once
/// \file
/// Generic PCI configuration-space facts (<linux/pci_regs.h> values, checked
/// against that header in the tests) and a bounded, cycle-proof walker of the
/// PCI Express extended capability list.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/result.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

namespace nvgrace::pci {

/// Type-0 header register offsets.
namespace reg {
inline constexpr std::uint16_t vendor_id = 0x00;
inline constexpr std::uint16_t device_id = 0x02;
inline constexpr std::uint16_t command = 0x04;
inline constexpr std::uint16_t status = 0x06;
inline constexpr std::uint16_t revision_id = 0x08;
inline constexpr std::uint16_t class_prog = 0x09;
inline constexpr std::uint16_t class_device = 0x0A;
inline constexpr std::uint16_t header_type = 0x0E;
inline constexpr std::uint16_t base_address_0 = 0x10;
inline constexpr std::uint16_t subsystem_vendor_id = 0x2C;
inline constexpr std::uint16_t subsystem_id = 0x2E;
inline constexpr std::uint16_t rom_address = 0x30;
inline constexpr std::uint16_t capability_list = 0x34;
inline constexpr std::uint16_t interrupt_line = 0x3C;
inline constexpr std::uint16_t interrupt_pin = 0x3D;
/// Offset of BAR register n (0..5).
[[nodiscard]] constexpr std::uint16_t base_address(unsigned n) noexcept {
  return static_cast<std::uint16_t>(base_address_0 + 4 * n);
}
}  // namespace reg

/// Bits of the command register.
namespace command_bits {
inline constexpr std::uint16_t io = 0x1;
inline constexpr std::uint16_t memory = 0x2;
inline constexpr std::uint16_t master = 0x4;
inline constexpr std::uint16_t intx_disable = 0x400;
}  // namespace command_bits

/// Bits of the status register.
namespace status_bits {
inline constexpr std::uint16_t cap_list = 0x10;
}  // namespace status_bits

/// Low bits of a BAR register.
namespace bar_bits {
inline constexpr std::uint32_t space_io = 0x01;
inline constexpr std::uint32_t mem_type_mask = 0x06;
inline constexpr std::uint32_t mem_type_32 = 0x00;
inline constexpr std::uint32_t mem_type_1m = 0x02;
inline constexpr std::uint32_t mem_type_64 = 0x04;
inline constexpr std::uint32_t mem_prefetch = 0x08;
inline constexpr std::uint64_t mem_mask = ~std::uint64_t{0x0F};
inline constexpr std::uint32_t io_mask = ~std::uint32_t{0x03};
}  // namespace bar_bits

/// Standard capability ids (linked from 0x34).
namespace cap {
inline constexpr std::uint8_t power_management = 0x01;
inline constexpr std::uint8_t msi = 0x05;
inline constexpr std::uint8_t vendor = 0x09;
inline constexpr std::uint8_t express = 0x10;
inline constexpr std::uint8_t msix = 0x11;
}  // namespace cap

/// Extended capability ids (from 0x100).
namespace ext_cap {
inline constexpr std::uint16_t dvsec = 0x23;
}

/// Designated Vendor-Specific Extended Capability registers, relative to the
/// capability: header 1 holds the DVSEC vendor (bits 15:0), header 2 the DVSEC
/// id (bits 15:0).
namespace dvsec {
inline constexpr std::uint16_t header1 = 0x4;
inline constexpr std::uint16_t header2 = 0x8;
}  // namespace dvsec

inline constexpr std::size_t config_space_size = 256;
inline constexpr std::size_t ext_config_space_size = 4096;
inline constexpr std::uint16_t ext_cap_start = 0x100;

/// Fields of an extended capability header dword.
struct ext_cap_header {
  std::uint16_t id = 0;
  std::uint8_t version = 0;
  std::uint16_t next = 0;
};
[[nodiscard]] constexpr ext_cap_header decode_ext_cap_header(std::uint32_t dword) noexcept {
  return {static_cast<std::uint16_t>(dword & 0xFFFF), static_cast<std::uint8_t>((dword >> 16) & 0xF),
          static_cast<std::uint16_t>((dword >> 20) & 0xFFC)};
}
[[nodiscard]] constexpr std::uint32_t encode_ext_cap_header(ext_cap_header h) noexcept {
  return std::uint32_t{h.id} | (std::uint32_t{h.version} << 16) | (std::uint32_t{h.next} << 20);
}

/// Most extended-capability headers a walk visits: one per 8 bytes of
/// extended config space (480 for a full 4 KiB space, the kernel's own bound).
/// A longer walk can only be a cycle.
[[nodiscard]] constexpr std::size_t max_ext_cap_visits(std::size_t config_size) noexcept {
  return config_size <= ext_cap_start ? 0 : (config_size - ext_cap_start + 7) / 8;
}

/// Visit every extended capability from 0x100: `visit(offset, header)`
/// returns true to stop. Returns the offset at which the visitor stopped, or:
/// - ENOENT when the list ends first: `next` is 0, the header at 0x100 (or any
///   later one) is all-zero or all-ones (no extended space), or the space is
///   smaller than 0x104 bytes;
/// - EBADMSG when a `next` leaves [0x100, size − 4] or the walk visits more
///   than max_ext_cap_visits(size) headers (a cycle).
/// Backward pointers are followed (the PCIe spec does not order the list);
/// only the visit bound ends a cycle. Never reads outside `config`.
template <class Visitor>
[[nodiscard]] constexpr result<std::uint16_t> walk_ext_caps(std::span<const std::byte> config, Visitor&& visit) {
  if (config.size() < ext_cap_start + 4) return errc::no_such_file_or_directory;
  const std::size_t max_visits = max_ext_cap_visits(config.size());
  std::size_t offset = ext_cap_start;
  for (std::size_t visits = 0; visits < max_visits; ++visits) {
    const auto dword = load_le<std::uint32_t>(config, offset);
    // An all-zero or all-ones header means the list is empty.
    if (dword == 0 || dword == 0xFFFFFFFF) return errc::no_such_file_or_directory;
    const auto header = decode_ext_cap_header(dword);
    if (visit(static_cast<std::uint16_t>(offset), header)) return static_cast<std::uint16_t>(offset);
    if (header.next == 0) return errc::no_such_file_or_directory;
    if (header.next < ext_cap_start || std::size_t{header.next} + 4 > config.size()) return errc::bad_message;
    offset = header.next;
  }
  return errc::bad_message;
}

/// Offset of the first extended capability with `id`; ENOENT if absent.
[[nodiscard]] constexpr result<std::uint16_t> find_ext_cap(std::span<const std::byte> config, std::uint16_t id) {
  return walk_ext_caps(config, [id](std::uint16_t, ext_cap_header h) { return h.id == id; });
}

/// Offset of the Designated Vendor-Specific Extended Capability with the
/// given DVSEC vendor and id (header 1 at +4, header 2 at +8); ENOENT if
/// absent, EBADMSG if the list is malformed or a DVSEC is truncated.
[[nodiscard]] constexpr result<std::uint16_t> find_dvsec(std::span<const std::byte> config, std::uint16_t vendor,
                                                         std::uint16_t dvsec_id) {
  bool truncated = false;
  auto found = walk_ext_caps(config, [&](std::uint16_t offset, ext_cap_header h) {
    if (h.id != ext_cap::dvsec) return false;
    if (std::size_t{offset} + dvsec::header2 + 2 > config.size()) {
      truncated = true;
      return true;
    }
    return load_le<std::uint16_t>(config, offset + std::size_t{dvsec::header1}) == vendor &&
           load_le<std::uint16_t>(config, offset + std::size_t{dvsec::header2}) == dvsec_id;
  });
  if (truncated) return errc::bad_message;
  return found;
}

/// Region size implied by the value read back from a memory BAR after
/// all-ones was written to it (both dwords for a 64-bit BAR): the lowest set
/// address bit. 0 for an unimplemented BAR.
[[nodiscard]] constexpr std::uint64_t bar_size_from_readback(std::uint64_t readback, bool is_64bit) noexcept {
  std::uint64_t address_bits = readback & bar_bits::mem_mask;
  if (!is_64bit) address_bits &= 0xFFFF'FFFFu;
  return address_bits & (~address_bits + 1);
}

}  // namespace nvgrace::pci
