#pragma once
/// \file
/// §6: mmap of an emulated region and the (huge) fault decision.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>
#include <nvgrace/grace/kernel_rule.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <cstdint>

namespace nvgrace::grace {

/// How a guest may map the memory at stage 2 (what KVM may choose, given the
/// VMA the driver made): usemem is cacheable; resmem is write-combine with
/// VM_ALLOW_ANY_UNCACHED, so Normal-NC; a real BAR through vfio-pci-core is
/// Device memory.
enum class stage2_memory : std::uint8_t { cacheable, normal_nc, device };

[[nodiscard]] constexpr text_view to_string(stage2_memory m) noexcept {
  switch (m) {
    case stage2_memory::cacheable: return "cacheable";
    case stage2_memory::normal_nc: return "normal-nc";
    case stage2_memory::device: break;
  }
  return "device";
}

/// What an accepted mmap maps.
struct mmap_plan {
  std::uint64_t region_offset = 0;  ///< first byte of the region mapped
  std::uint64_t length = 0;
  bool write_combine = false;  ///< resmem: the host mapping is write-combine
  stage2_memory stage2 = stage2_memory::cacheable;
  /// The whole range is mapped by mmap itself (before 6.19: remap_pfn_range),
  /// so no touch of it ever faults; false: pages are inserted on fault (6.19+).
  bool populated = false;
  friend constexpr bool operator==(mmap_plan, mmap_plan) = default;
};

/// §6.1 steps 2–3: a mapping of `length` bytes starting `region_page_offset`
/// pages into region `r`. EOVERFLOW if the end overflows; EINVAL if it ends
/// past the real memory (the padding is never mappable). Under a rule before
/// 6.19 (`maps_at_mmap_time`) the driver also checked that the first PFN,
/// PHYS_PFN(phys_base) + page offset, does not overflow (EOVERFLOW, before the
/// EINVAL bound) and then mapped everything at once (`populated`). With 64-bit
/// PFNs and the 40-bit region offset that third check cannot fire at a real
/// page size; the arithmetic is kept so that the order of the checks is the
/// driver's.
[[nodiscard]] constexpr result<mmap_plan> check_mmap(const memregion& r, bool is_resmem,
                                                     std::uint64_t region_page_offset, std::uint64_t length,
                                                     unsigned page_shift = 12,
                                                     kernel_rule rule = kernel_rule::current) noexcept {
  const bool at_mmap_time = maps_at_mmap_time(rule);
  if (at_mmap_time) {
    const auto first_pfn = checked_add(r.phys_base >> page_shift, region_page_offset);
    if (!first_pfn) return first_pfn.error();
  }
  const auto start = checked_mul(region_page_offset, std::uint64_t{1} << page_shift);
  if (!start) return start.error();
  const auto end = checked_add(*start, length);
  if (!end) return end.error();
  if (*end > r.real_length) return errc::invalid_argument;
  return mmap_plan{*start, length, is_resmem, is_resmem ? stage2_memory::normal_nc : stage2_memory::cacheable,
                   at_mmap_time};
}

/// The page offset inside its region of a VMA's vm_pgoff (§6.1 step 2).
[[nodiscard]] constexpr std::uint64_t region_page_offset(std::uint64_t vm_pgoff, unsigned page_shift = 12) noexcept {
  return vm_pgoff & ((std::uint64_t{1} << (vfio::offset_shift - page_shift)) - 1);
}
/// The region index of a VMA's vm_pgoff.
[[nodiscard]] constexpr std::uint32_t region_index_of_pgoff(std::uint64_t vm_pgoff, unsigned page_shift = 12) noexcept {
  return static_cast<std::uint32_t>(vm_pgoff >> (vfio::offset_shift - page_shift));
}

/// A mapping as the fault handler sees it.
struct vma {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint64_t pgoff = 0;  ///< the file offset in pages (kept, not rewritten to a PFN)
};

/// The platform's huge PFN-map support (§6.2 step 6); arm64 with 4 KiB pages
/// by default: PMD order 9 (2 MiB), PUD order 18 (1 GiB).
struct huge_pfnmap {
  unsigned page_shift = 12;
  unsigned pmd_order = 9;
  unsigned pud_order = 18;
  bool pmd_supported = true;
  bool pud_supported = true;
};
/// arm64 with 4 KiB pages: PMD order 9 (2 MiB), PUD order 18 (1 GiB).
inline constexpr huge_pfnmap arm64_4k_pages{12, 9, 18, true, true};
/// arm64 with 64 KiB pages: PMD order 13 (512 MiB); PUD maps are not offered.
inline constexpr huge_pfnmap arm64_64k_pages{16, 13, 0, true, false};

/// Device state the fault path consults under memory_lock.
struct fault_state {
  bool runtime_pm_engaged = false;
  bool ready = true;           ///< the §7.2 readiness check passed
  bool memory_enabled = true;  ///< COMMAND.MEMORY set and not in D3hot
};

/// `premapped`: the page was mapped when the mapping was made (before 6.19:
/// the driver's mmap mapped the whole range and installed no fault handler),
/// so the touch does not fault at all; nothing is inserted, no huge page.
enum class fault_outcome : std::uint8_t { insert_pte, insert_pmd, insert_pud, fallback, sigbus, premapped };

struct fault_decision {
  fault_outcome outcome = fault_outcome::sigbus;
  std::uint64_t address = 0;  ///< fault address rounded down to the order's size
  std::uint64_t pfn = 0;
  friend constexpr bool operator==(fault_decision, fault_decision) = default;
};

/// A touch at `fault_address` of mapping `v` of region `r` under a rule before
/// 6.19 (`maps_at_mmap_time`): always `premapped`, whatever the order or the
/// device state (runtime PM, memory decode, a reset: the core's zaps never
/// reached these mappings), at the page holding the address; the PFN is the
/// one mmap mapped there.
[[nodiscard]] constexpr fault_decision decide_premapped_touch(const memregion& r, vma v, std::uint64_t fault_address,
                                                              huge_pfnmap platform = {}) noexcept {
  const std::uint64_t page_size = std::uint64_t{1} << platform.page_shift;
  fault_decision d;
  d.outcome = fault_outcome::premapped;
  d.address = fault_address & ~(page_size - 1);
  d.pfn = (r.phys_base >> platform.page_shift) + (d.address - v.start) / page_size +
          region_page_offset(v.pgoff, platform.page_shift);
  return d;
}

/// §6.2: the decision for a fault of `order` at `fault_address` in mapping `v`
/// of region `r`. Misaligned huge faults fall back (the MM retries a smaller
/// order) before any device state is consulted.
[[nodiscard]] constexpr fault_decision decide_fault(const memregion& r, vma v, std::uint64_t fault_address,
                                                    unsigned order, fault_state state = {},
                                                    huge_pfnmap platform = {}) noexcept {
  const std::uint64_t page_size = std::uint64_t{1} << platform.page_shift;
  const std::uint64_t span = page_size << order;
  fault_decision d;
  d.address = fault_address & ~(span - 1);
  // Unsigned wrap-around when address < start is harmless: the checks below reject it.
  d.pfn = (r.phys_base >> platform.page_shift) + (d.address - v.start) / page_size +
          region_page_offset(v.pgoff, platform.page_shift);
  if (order > 0) {
    const bool inside = d.address >= v.start && d.address + span <= v.end && d.address + span > d.address;
    const bool pfn_aligned = (d.pfn & ((std::uint64_t{1} << order) - 1)) == 0;
    if (!inside || !pfn_aligned) {
      d.outcome = fault_outcome::fallback;
      return d;
    }
  }
  if (state.runtime_pm_engaged || !state.ready || !state.memory_enabled) {
    d.outcome = fault_outcome::sigbus;
    return d;
  }
  if (order == 0)
    d.outcome = fault_outcome::insert_pte;
  else if (platform.pmd_supported && order == platform.pmd_order)
    d.outcome = fault_outcome::insert_pmd;
  else if (platform.pud_supported && order == platform.pud_order)
    d.outcome = fault_outcome::insert_pud;
  else
    d.outcome = fault_outcome::fallback;
  return d;
}

}  // namespace nvgrace::grace
