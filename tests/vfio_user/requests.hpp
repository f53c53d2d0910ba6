#pragma once
// Payload builders for the vfio-user commands the tests send.

#include "raw_peer.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace nvgrace::vfio_user::testing {

inline std::vector<std::byte> device_info_req(std::uint32_t argsz = 16, std::size_t size = 16) {
  bytes_builder b;
  b.u32(argsz).u32(0).u32(0).u32(0);
  auto v = b.bytes();
  v.resize(size);
  return v;
}

inline std::vector<std::byte> region_info_req(std::uint32_t argsz, std::uint32_t index, std::size_t size = 32) {
  bytes_builder b;
  b.u32(argsz).u32(0).u32(index).u32(0).u64(0).u64(0);
  auto v = b.bytes();
  v.resize(size);
  return v;
}

inline std::vector<std::byte> read_req(std::uint64_t offset, std::uint32_t region, std::uint32_t count) {
  return bytes_builder().u64(offset).u32(region).u32(count).bytes();
}

inline std::vector<std::byte> write_req(std::uint64_t offset, std::uint32_t region, std::span<const std::byte> data,
                                        std::optional<std::uint32_t> count = std::nullopt) {
  const auto announced = count.value_or(static_cast<std::uint32_t>(data.size()));
  return bytes_builder().u64(offset).u32(region).u32(announced).raw(data).bytes();
}

inline std::vector<std::byte> irq_info_req(std::uint32_t index, std::uint32_t argsz = 16) {
  return bytes_builder().u32(argsz).u32(0).u32(index).u32(0).bytes();
}

inline std::vector<std::byte> set_irqs_req(std::uint32_t flags, std::uint32_t index, std::uint32_t start,
                                           std::uint32_t count, std::span<const std::byte> data = {}) {
  return bytes_builder()
      .u32(static_cast<std::uint32_t>(20 + data.size()))
      .u32(flags)
      .u32(index)
      .u32(start)
      .u32(count)
      .raw(data)
      .bytes();
}

inline std::vector<std::byte> dma_map_req(std::uint32_t flags, std::uint64_t offset, std::uint64_t address,
                                          std::uint64_t size, std::uint32_t argsz = 32) {
  return bytes_builder().u32(argsz).u32(flags).u64(offset).u64(address).u64(size).bytes();
}

inline std::vector<std::byte> dma_unmap_req(std::uint32_t flags, std::uint64_t address, std::uint64_t size) {
  return bytes_builder().u32(24).u32(flags).u64(address).u64(size).bytes();
}

inline std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xFF);
  return v;
}

/// Reply header fields, checked exactly.
#define CHECK_REPLY(r, id_, cmd_, payload_size)                              \
  do {                                                                       \
    CHECK((r).h.id == (id_));                                                \
    CHECK((r).h.command == static_cast<std::uint16_t>(cmd_));                \
    CHECK((r).h.flags == ::nvgrace::vfio_user::message_flags::type_reply);   \
    CHECK((r).h.error == 0u);                                                \
    CHECK((r).h.size == ::nvgrace::vfio_user::header_size + (payload_size)); \
  } while (false)

/// An error reply: header only, flags 0x21, exact errno.
#define CHECK_ERROR_REPLY(r, id_, cmd_, err)                  \
  do {                                                        \
    CHECK((r).h.id == (id_));                                 \
    CHECK((r).h.command == static_cast<std::uint16_t>(cmd_)); \
    CHECK((r).h.flags == 0x21u);                              \
    CHECK((r).h.size == 16u);                                 \
    CHECK((r).h.error == static_cast<std::uint32_t>(err));    \
    CHECK((r).payload.empty());                               \
  } while (false)

}  // namespace nvgrace::vfio_user::testing
