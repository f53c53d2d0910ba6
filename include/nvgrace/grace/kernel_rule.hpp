#pragma once
/// \file
/// Which kernel's driver a model answers for. The rules changed in three
/// steps that a VMM meets in production (docs/semantics.md, "Kernel
/// versions"):
/// - 6.10–6.13: the usemem BAR is sized after the 512 MiB round-down and every
///   device gets the 1 GiB carve-out (no Blackwell case); no readiness wait.
/// - 6.14–6.18: the BAR is sized before the round-down; the NVIDIA DVSEC tells
///   Blackwell apart; the probe polls the BAR0 readiness registers for 30 s but
///   a timeout does not fail it (the status is overwritten); memory is mapped
///   at mmap time; read/write ignore memory decode and runtime PM; no DMA-buf.
/// - 6.19–7.1: fault-based mmap with huge pages, zapped on reset and on memory
///   decode off; a readiness wait on the first access after a reset; EIO with
///   memory decode off; runtime-PM wrapping; DMA-buf export; a probe timeout
///   fails the probe (ETIME).
/// - 7.2 (current): also the CXL device DVSEC readiness path, and the waits can
///   be interrupted by a fatal signal (EINTR).

#include <nvgrace/core/text_view.hpp>

#include <cstddef>
#include <cstdint>

namespace nvgrace::grace {

enum class kernel_rule : std::uint8_t {
  v6_13,    ///< 6.10 to 6.13
  v6_18,    ///< 6.14 to 6.18
  v7_1,     ///< 6.19 to 7.1
  current,  ///< 7.2
};

/// "6.13", "6.18", "7.1", "current": the spelling the tools accept.
[[nodiscard]] constexpr text_view to_string(kernel_rule r) noexcept {
  switch (r) {
    case kernel_rule::v6_13: return "6.13";
    case kernel_rule::v6_18: return "6.18";
    case kernel_rule::v7_1: return "7.1";
    case kernel_rule::current: break;
  }
  return "current";
}

/// The inverse of to_string; nullopt-like false for anything else.
[[nodiscard]] constexpr bool parse_kernel_rule(text_view text, kernel_rule& out) noexcept {
  for (const kernel_rule r : {kernel_rule::v6_13, kernel_rule::v6_18, kernel_rule::v7_1, kernel_rule::current}) {
    if (text == to_string(r)) {
      out = r;
      return true;
    }
  }
  return false;
}

/// The rule of the driver in Linux `major.minor`. The driver first shipped in
/// 6.10; an older version gets v6_13, the oldest rule there is.
[[nodiscard]] constexpr kernel_rule kernel_rule_of(unsigned major, unsigned minor) noexcept {
  const unsigned version = major * 1000 + minor;
  if (version <= 6013) return kernel_rule::v6_13;
  if (version <= 6018) return kernel_rule::v6_18;
  if (version <= 7001) return kernel_rule::v7_1;
  return kernel_rule::current;
}

/// The rule from a kernel release as uname(2) reports it ("7.2.13-amd64",
/// "6.12.0"): false unless it starts with MAJOR.MINOR (decimal, at most four
/// digits each).
[[nodiscard]] constexpr bool parse_kernel_release(text_view release, kernel_rule& out) noexcept {
  std::size_t at = 0;
  const auto number = [&](unsigned& value) {
    const std::size_t start = at;
    value = 0;
    while (at < release.size() && at - start < 5 && release[at] >= '0' && release[at] <= '9')
      value = value * 10 + static_cast<unsigned>(release[at++] - '0');
    return at > start && at - start <= 4;
  };
  unsigned major = 0;
  unsigned minor = 0;
  if (!number(major) || at >= release.size() || release[at++] != '.' || !number(minor)) return false;
  if (at < release.size() && release[at] >= '0' && release[at] <= '9') return false;
  out = kernel_rule_of(major, minor);
  return true;
}

/// The usemem BAR is sized before the 512 MiB round-down, and the NVIDIA
/// DVSEC can make a device Blackwell (no carve-out).
[[nodiscard]] constexpr bool sizes_bar_before_round_down(kernel_rule r) noexcept { return r != kernel_rule::v6_13; }
[[nodiscard]] constexpr bool knows_blackwell(kernel_rule r) noexcept { return r != kernel_rule::v6_13; }
/// The probe polls the BAR0 readiness registers (up to 30 s).
[[nodiscard]] constexpr bool waits_at_probe(kernel_rule r) noexcept { return r != kernel_rule::v6_13; }
/// A probe-time readiness timeout fails the probe (before 6.19 the status of
/// pci_enable_device overwrote it, so the probe went on).
[[nodiscard]] constexpr bool probe_timeout_fails(kernel_rule r) noexcept { return r >= kernel_rule::v7_1; }
/// The 6.19 design: readiness after reset on the first access, EIO with memory
/// decode off, runtime-PM wrapping of read/write, fault-based (huge) mappings
/// zapped on reset and decode off, DMA-buf export.
[[nodiscard]] constexpr bool has_access_readiness(kernel_rule r) noexcept { return r >= kernel_rule::v7_1; }
/// Before 6.19 the driver's mmap mapped the whole range at once
/// (remap_pfn_range, write-combine protection for resmem) and rewrote vm_pgoff
/// to the first PFN; it had no fault handler, so touches never fault, huge
/// pages are never inserted and the core's zaps miss these mappings. Its mmap
/// also checked PHYS_PFN(memphys) + page offset for overflow (EOVERFLOW).
[[nodiscard]] constexpr bool maps_at_mmap_time(kernel_rule r) noexcept { return r < kernel_rule::v7_1; }
/// The CXL device DVSEC readiness path (7.2).
[[nodiscard]] constexpr bool has_cxl_readiness(kernel_rule r) noexcept { return r == kernel_rule::current; }
/// Readiness waits end early with EINTR on a fatal signal (7.2).
[[nodiscard]] constexpr bool waits_are_killable(kernel_rule r) noexcept { return r == kernel_rule::current; }

}  // namespace nvgrace::grace
