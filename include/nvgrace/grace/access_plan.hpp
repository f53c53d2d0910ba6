#pragma once
/// \file
/// §5: what a read or write of an emulated region does, decided before any
/// byte moves: clipped at the reported BAR size, split into a part from
/// memory and a padding part (0xFF on read, dropped on write).

#include <nvgrace/core/result.hpp>
#include <nvgrace/grace/layout.hpp>

#include <cstdint>

namespace nvgrace::grace {

enum class direction : std::uint8_t { read, write };

/// How a resmem access that reaches memory returns (§5.1, §10 E7).
enum class resmem_return : std::uint8_t {
  /// The documented semantics: the whole clipped count, padding included.
  documented,
  /// What upstream actually does (probably a bug): only the memory part is
  /// returned, the position does not advance, the padding is not filled.
  upstream_short,
};

/// The decision for one access.
struct access_plan {
  std::uint64_t offset = 0;         ///< offset inside the region
  std::uint64_t count = 0;          ///< bytes after clipping at the reported size
  std::uint64_t memory_bytes = 0;   ///< bytes moved to or from memory, starting at `offset`
  std::uint64_t padding_bytes = 0;  ///< bytes filled with 0xFF (read) or dropped (write) after them
  bool waits_for_ready = false;     ///< the §7.2 readiness check runs first
  std::uint64_t returned = 0;       ///< what read()/write() returns on success
  std::uint64_t advance = 0;        ///< how far the file position moves
  friend constexpr bool operator==(const access_plan&, const access_plan&) = default;
};

/// Plan an access of `count` bytes at `offset` of region `r`.
/// EINVAL when offset ≥ reported size. A read always waits for readiness,
/// even for 0 bytes; a write waits only if it starts inside real memory
/// (a write wholly in the padding skips everything, §10 E8).
[[nodiscard]] constexpr result<access_plan> plan_access(direction dir, const memregion& r, std::uint64_t offset,
                                                        std::uint64_t count, bool is_resmem = false,
                                                        resmem_return quirk = resmem_return::documented) noexcept {
  if (offset >= r.reported_size) return errc::invalid_argument;
  access_plan plan;
  plan.offset = offset;
  plan.count = count < r.reported_size - offset ? count : r.reported_size - offset;
  if (offset < r.real_length) {
    const std::uint64_t in_memory = r.real_length - offset;
    plan.memory_bytes = plan.count < in_memory ? plan.count : in_memory;
  }
  plan.padding_bytes = plan.count - plan.memory_bytes;
  plan.waits_for_ready = dir == direction::read || offset < r.real_length;
  plan.returned = plan.count;
  plan.advance = plan.count;
  if (is_resmem && quirk == resmem_return::upstream_short && plan.memory_bytes > 0) {
    plan.padding_bytes = 0;
    plan.returned = plan.memory_bytes;
    plan.advance = 0;
  }
  return plan;
}

}  // namespace nvgrace::grace
