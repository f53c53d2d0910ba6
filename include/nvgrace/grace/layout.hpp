#pragma once
/// \file
/// §2.3: how the driver carves device memory into the emulated regions, and
/// what size each fake BAR reports.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>
#include <nvgrace/grace/acpi.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/kernel_rule.hpp>

#include <bit>
#include <cstdint>
#include <optional>

namespace nvgrace::grace {

/// Region index of the uncached carve-out (BAR2+BAR3 in config space).
inline constexpr std::uint32_t resmem_index = 2;
/// Region index of the cached usable memory (BAR4+BAR5).
inline constexpr std::uint32_t usemem_index = 4;
/// Size of the Hopper carve-out.
inline constexpr std::uint64_t carve_out_size = 1 * GiB;
/// Granule of usable memory on Hopper, fixed between GPU firmware and driver.
inline constexpr std::uint64_t memblock_size = 512 * MiB;

/// One emulated region: real memory at `phys_base` of `real_length` bytes,
/// behind a BAR that reports `reported_size` (a power of two ≥ real_length).
struct memregion {
  std::uint64_t phys_base = 0;
  std::uint64_t real_length = 0;
  std::uint64_t reported_size = 0;

  /// Bytes of the BAR past the real memory (they read as 0xFF).
  [[nodiscard]] constexpr std::uint64_t padding() const noexcept { return reported_size - real_length; }
  friend constexpr bool operator==(memregion, memregion) = default;
};

/// The driver's view of a device with emulated regions.
struct layout {
  /// The generation whose rules were applied (Hopper for every device under
  /// kernel_rule::v6_13, which predates the Blackwell case).
  grace::generation generation = generation::hopper;
  memregion usemem;
  memregion resmem;  ///< all zero on Blackwell

  [[nodiscard]] constexpr bool has_resmem() const noexcept { return resmem.real_length != 0; }

  /// The driver's memregion(index) predicate: index 4 is always usemem,
  /// index 2 is resmem only when it exists; anything else is not emulated.
  [[nodiscard]] constexpr std::optional<memregion> region(std::uint32_t index) const noexcept {
    if (index == usemem_index) return usemem;
    if (index == resmem_index && has_resmem()) return resmem;
    return std::nullopt;
  }
  [[nodiscard]] constexpr bool is_emulated(std::uint32_t index) const noexcept { return region(index).has_value(); }
  /// The carve-out is mapped write-combine and read/written in aligned chunks.
  [[nodiscard]] constexpr bool is_uncached(std::uint32_t index) const noexcept {
    return index == resmem_index && has_resmem();
  }
  friend constexpr bool operator==(const layout&, const layout&) = default;
};

/// Why a layout cannot be derived; each reason has one errno.
enum class layout_failure : std::uint8_t {
  none,
  smaller_than_carve_out,       ///< Hopper, length < 1 GiB: EOVERFLOW
  usable_has_no_pow2,           ///< Hopper: the usemem BAR would need 2^64: EOVERFLOW
  memory_has_no_pow2,           ///< Blackwell: the usemem BAR would need 2^64: EOVERFLOW
  usable_rounds_to_zero,        ///< Hopper, 1 GiB ≤ length < 1.5 GiB: EINVAL
  carve_out_address_overflows,  ///< base + usable memory passes 2^64: EOVERFLOW
  empty_memory,                 ///< Blackwell, length 0: EINVAL
};

/// The errno the driver returns for a failure.
[[nodiscard]] constexpr errc to_errc(layout_failure f) noexcept {
  switch (f) {
    case layout_failure::none: return errc{};
    case layout_failure::usable_rounds_to_zero:
    case layout_failure::empty_memory: return errc::invalid_argument;
    default: return errc::value_too_large;
  }
}

/// The rule behind a failure, as one phrase for tools.
[[nodiscard]] constexpr text_view describe(layout_failure f) noexcept {
  switch (f) {
    case layout_failure::none: return "";
    case layout_failure::smaller_than_carve_out: return "memory is smaller than the 1 GiB carve-out";
    case layout_failure::usable_has_no_pow2: return "usable memory has no 64-bit power of two above it";
    case layout_failure::memory_has_no_pow2: return "memory size has no 64-bit power of two above it";
    case layout_failure::usable_rounds_to_zero: return "usable memory rounds down to 0";
    case layout_failure::carve_out_address_overflows: return "the carve-out's physical address overflows 64 bits";
    case layout_failure::empty_memory: return "memory size is 0";
  }
  return "";
}

/// A layout, or the reason there is none: what derive_layout decides.
struct layout_decision {
  layout value{};
  layout_failure failure = layout_failure::none;
  [[nodiscard]] constexpr bool ok() const noexcept { return failure == layout_failure::none; }
};

/// Derive the layout exactly in the driver's order:
/// - Hopper: usable = length − 1 GiB (EOVERFLOW below 1 GiB); the usemem BAR
///   reports next_pow2(usable) (kernel_rule::v6_13: after the round-down);
///   usable rounds down to 512 MiB (EINVAL if that leaves 0); resmem is the
///   rest, in [1 GiB, 1.5 GiB), right after usemem (EOVERFLOW if that address
///   overflows), reporting 1 or 2 GiB.
/// - Blackwell: one region, usemem, over all of the memory (EINVAL for
///   length 0, which the ACPI step already turns into plain mode).
/// - kernel_rule::v6_13: kernels up to 6.13 have no Blackwell case, so every
///   device gets Hopper's carve-out and the result says generation::hopper.
/// A BAR size above 2^63 has no 64-bit power of two (the kernel's
/// roundup_pow_of_two is undefined there): EOVERFLOW.
[[nodiscard]] constexpr layout_decision decide_layout(std::uint64_t phys_base, std::uint64_t length, generation gen,
                                                      kernel_rule rule = kernel_rule::current) noexcept {
  if (!knows_blackwell(rule)) gen = generation::hopper;
  layout_decision d;
  layout& out = d.value;
  const auto fail = [&d](layout_failure f) {
    d.failure = f;
    d.value = layout{};
    return d;
  };
  out.generation = gen;
  if (gen == generation::blackwell && length == 0) return fail(layout_failure::empty_memory);
  const std::uint64_t carve_out = gen == generation::hopper ? carve_out_size : 0;
  out.usemem.phys_base = phys_base;
  const auto usable = checked_sub(length, carve_out);
  if (!usable) return fail(layout_failure::smaller_than_carve_out);
  out.usemem.real_length = *usable;
  // A usable length of 0 has no power of two (the kernel's roundup is
  // undefined there) but fails just below, at the round-down, with EINVAL.
  if (sizes_bar_before_round_down(rule) && out.usemem.real_length != 0) {
    const auto reported = next_pow2(out.usemem.real_length);
    if (!reported)
      return fail(gen == generation::blackwell ? layout_failure::memory_has_no_pow2
                                               : layout_failure::usable_has_no_pow2);
    out.usemem.reported_size = *reported;
  }
  if (gen == generation::blackwell) return d;

  out.usemem.real_length = align_down(out.usemem.real_length, memblock_size);
  if (out.usemem.real_length == 0) return fail(layout_failure::usable_rounds_to_zero);
  if (!sizes_bar_before_round_down(rule)) {
    const auto reported = next_pow2(out.usemem.real_length);
    if (!reported) return fail(layout_failure::usable_has_no_pow2);
    out.usemem.reported_size = *reported;
  }

  const auto resmem_base = checked_add(phys_base, out.usemem.real_length);
  if (!resmem_base) return fail(layout_failure::carve_out_address_overflows);
  out.resmem.phys_base = *resmem_base;
  out.resmem.real_length = length - out.usemem.real_length;
  // resmem is in [1 GiB, 1.5 GiB): its power of two always exists.
  out.resmem.reported_size = std::bit_ceil(out.resmem.real_length);
  return d;
}

/// decide_layout as a result: the layout, or the failure's errno.
[[nodiscard]] constexpr result<layout> derive_layout(std::uint64_t phys_base, std::uint64_t length, generation gen,
                                                     kernel_rule rule = kernel_rule::current) noexcept {
  const layout_decision d = decide_layout(phys_base, length, gen, rule);
  if (!d.ok()) return to_errc(d.failure);
  return d.value;
}

/// The same, from the ACPI memory range.
[[nodiscard]] constexpr result<layout> derive_layout(device_memory_range memory, generation gen,
                                                     kernel_rule rule = kernel_rule::current) noexcept {
  return derive_layout(memory.phys_base, memory.length, gen, rule);
}

/// The regions the driver maps uncached (write-combine) and reads and writes
/// in aligned chunks: resmem, when the device has it. As a bit mask by region
/// index, the form access::accessor_options::uncached_regions takes.
[[nodiscard]] constexpr std::uint32_t uncached_regions(const layout& l) noexcept {
  return l.has_resmem() ? std::uint32_t{1} << resmem_index : 0;
}
/// The same when only the generation is known (a VMM that has the PCI ids but
/// not the ACPI memory): Grace Hopper's carve-out at index 2.
[[nodiscard]] constexpr std::uint32_t uncached_regions(generation gen) noexcept {
  return gen == generation::hopper ? std::uint32_t{1} << resmem_index : 0;
}

/// The name of an emulated region index: "resmem" (2), "usemem" (4), else "".
[[nodiscard]] constexpr text_view region_name(std::uint32_t index) noexcept {
  if (index == resmem_index) return "resmem";
  if (index == usemem_index) return "usemem";
  return "";
}

/// What probing a device ends in (§2.1): plain vfio-pci when the ACPI step
/// fails (`layout` is empty then), emulated regions otherwise.
struct probe_outcome {
  grace::mode mode = mode::plain;
  grace::layout layout;
  friend constexpr bool operator==(const probe_outcome&, const probe_outcome&) = default;
};

/// §2.1 steps 2–4: the ACPI properties decide the mode (any error there means
/// plain mode, not a failure); in emulated mode a derive_layout error fails
/// the probe with that errno (EINVAL or EOVERFLOW for too little memory on
/// Hopper, §10 E13).
[[nodiscard]] constexpr result<probe_outcome> probe(const acpi_properties& props, generation gen,
                                                    kernel_rule rule = kernel_rule::current,
                                                    address_widths widths = {}) noexcept {
  const auto memory = fetch_memory(props, widths);
  if (!memory) return probe_outcome{};
  const auto derived = derive_layout(*memory, gen, rule);
  if (!derived) return derived.error();
  return probe_outcome{mode::emulated, *derived};
}

/// The rule that makes derive_layout(phys_base, length, gen, rule) fail, as
/// one phrase; "" when it succeeds. Taken from the same decision that gives
/// the errno.
[[nodiscard]] constexpr text_view describe_layout_error(std::uint64_t phys_base, std::uint64_t length, generation gen,
                                                        kernel_rule rule = kernel_rule::current) noexcept {
  return describe(decide_layout(phys_base, length, gen, rule).failure);
}

}  // namespace nvgrace::grace
