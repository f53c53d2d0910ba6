#pragma once
// What the conformance suite expects of the in-process shim device
// (backend/shim) in the shapes tests/device and tests/vfio_user run it in:
// every number written out from the spec (§2.3 layouts, §4.3 caps, §5
// boundaries), never read from the device or derived by the model.

#include "conformance.hpp"
#include "shim_shapes.hpp"

#include <nvgrace/vfio/abi.hpp>

#include <array>
#include <cstdint>

namespace nvgrace::conformance::shim_shapes {

inline constexpr std::uint32_t rwm = vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;

/// What every shape shares: BAR0 64-bit 16 MiB registers, empty BAR1/3/5
/// and ROM, 4 KiB config, no VGA, the shim's IRQ set; function reset as
/// `reset_supported` says (DEVICE_GET_INFO's RESET flag with it).
[[nodiscard]] inline expectations common(bool reset_supported = true) {
  expectations e;
  e.device_flags = vfio::device_flags::pci | (reset_supported ? vfio::device_flags::reset : 0u);
  e.reset_supported = reset_supported;
  e.config_size = 4096;
  for (auto& r : e.regions) r = region_expectation{true, 0, 0, 0, false, false, false, false, false};
  e.regions[0] = {true, 16 * MiB, rwm, 16 * MiB, false, false, false, true, false};
  constexpr std::uint32_t rw = vfio::region_flags::read | vfio::region_flags::write;
  e.regions[7] = {true, 4096, rw, 4096, false, false, false, false, false};
  e.regions[8].present = false;
  constexpr std::uint32_t ev = vfio::irq_flags::eventfd;
  constexpr std::uint32_t nr = vfio::irq_flags::noresize;
  e.irqs = std::array<irq_expectation, vfio::pci_num_irqs>{{
      {true, 1, ev | vfio::irq_flags::maskable | vfio::irq_flags::automasked},
      {true, 1, ev | nr},
      {true, 0, ev | nr},
      {true, 1, ev | nr},
      {true, 1, ev | nr},
  }};
  return e;
}

/// shim::hopper(hopper_length): resmem at region 2 (upstream's short return
/// when `short_return`, §5.1 E7), usemem at region 4.
[[nodiscard]] inline expectations hopper(bool short_return, bool reset_supported = true) {
  expectations e = common(reset_supported);
  e.regions[2] = {true, hopper_resmem_bar, rwm, hopper_resmem_real, true, short_return, true, true, true};
  e.regions[4] = {true, hopper_usemem_bar, rwm, hopper_usemem_real, true, false, true, true, true};
  e.ioeventfd_enotty = true;  // §9: the full variant refuses IOEVENTFD
  return e;
}

/// shim::blackwell(blackwell_length): a real BAR at region 2, usemem at region 4.
[[nodiscard]] inline expectations blackwell(bool reset_supported = true) {
  expectations e = common(reset_supported);
  e.regions[2] = {true, blackwell_bar2, rwm, blackwell_bar2, false, false, true, true, true};
  e.regions[4] = {true, blackwell_usemem_bar, rwm, blackwell_length, true, false, true, true, true};
  e.ioeventfd_enotty = true;
  return e;
}

/// shim::plain(bar2_size, bar4_size): no ACPI memory, so plain vfio-pci with
/// real BARs at regions 2 and 4 (a size of 0: no BAR there).
[[nodiscard]] inline expectations plain(std::uint64_t bar2_size, std::uint64_t bar4_size) {
  expectations e = common();
  if (bar2_size != 0) e.regions[2] = {true, bar2_size, rwm, bar2_size, false, false, true, true, true};
  if (bar4_size != 0) e.regions[4] = {true, bar4_size, rwm, bar4_size, false, false, true, true, true};
  return e;
}

}  // namespace nvgrace::conformance::shim_shapes
