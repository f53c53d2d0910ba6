// The device-file conformance suite (tests/conformance/conformance.hpp) run
// against the in-process device in each of its shapes. The expectations are
// written out from the spec's numbers, not read from the device.
#include "conformance.hpp"
#include "shim_fixtures.hpp"

#include <nvgrace/backend/shim/device.hpp>

#include <doctest/doctest.h>

using namespace device_test;
using nvgrace::conformance::expectations;
using nvgrace::conformance::region_expectation;

namespace {

constexpr std::uint32_t rwm = vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;

/// What every shape shares: BAR0 64-bit 16 MiB registers, empty BAR1/3/5 and
/// ROM, 4 KiB config, no VGA, the shim's IRQ set, reset supported.
expectations common() {
  expectations e;
  e.device_flags = vfio::device_flags::pci | vfio::device_flags::reset;
  e.reset_supported = true;
  e.config_size = 4096;
  for (auto& r : e.regions) r = region_expectation{true, 0, 0, 0, false, false, false, false, false};
  e.regions[0] = {true, 16 * MiB, rwm, 16 * MiB, false, false, false, true, false};
  e.regions[7] = {true, 4096, vfio::region_flags::read | vfio::region_flags::write, 4096, false, false, false, false,
                  false};
  e.regions[8].present = false;
  constexpr std::uint32_t ev = vfio::irq_flags::eventfd;
  constexpr std::uint32_t nr = vfio::irq_flags::noresize;
  e.irqs = std::array<nvgrace::conformance::irq_expectation, 5>{{
      {true, 1, ev | vfio::irq_flags::maskable | vfio::irq_flags::automasked},
      {true, 1, ev | nr},
      {true, 0, ev | nr},
      {true, 1, ev | nr},
      {true, 1, ev | nr},
  }};
  return e;
}

expectations hopper_expectations(bool short_return) {
  expectations e = common();
  e.regions[2] = {true, hopper_resmem_bar, rwm, hopper_resmem_real, true, short_return, true, true, true};
  e.regions[4] = {true, hopper_usemem_bar, rwm, hopper_usemem_real, true, false, true, true, true};
  e.ioeventfd_enotty = true;
  return e;
}

}  // namespace

TEST_CASE("conformance: shim, Grace Hopper 1.5 GiB + 4 KiB, upstream resmem return") {
  auto options = shim::hopper(hopper_length);
  options.resmem_quirk = grace::resmem_return::upstream_short;
  nvgrace::conformance::run_conformance([&] { return shim_device::create(options); }, hopper_expectations(true));
}

TEST_CASE("conformance: shim, Grace Hopper, documented resmem return") {
  auto options = shim::hopper(hopper_length);
  options.resmem_quirk = grace::resmem_return::documented;
  nvgrace::conformance::run_conformance([&] { return shim_device::create(options); }, hopper_expectations(false));
}

TEST_CASE("conformance: shim, Grace Hopper without function reset") {
  auto options = shim::hopper(hopper_length);
  options.reset_supported = false;
  expectations e = hopper_expectations(false);
  e.reset_supported = false;
  e.device_flags = vfio::device_flags::pci;
  nvgrace::conformance::run_conformance([&] { return shim_device::create(options); }, e);
}

TEST_CASE("conformance: shim, Grace Blackwell 64 MiB + 4 KiB, real 16 MiB BAR2") {
  expectations e = common();
  e.regions[2] = {true, 16 * MiB, rwm, 16 * MiB, false, false, true, true, true};
  e.regions[4] = {true, blackwell_usemem_bar, rwm, blackwell_length, true, false, true, true, true};
  e.ioeventfd_enotty = true;
  nvgrace::conformance::run_conformance([] { return shim_device::create(shim::blackwell(blackwell_length)); }, e);
}

TEST_CASE("conformance: shim, plain vfio-pci (no ACPI memory), BAR2 16 MiB, BAR4 32 MiB") {
  expectations e = common();
  e.regions[2] = {true, 16 * MiB, rwm, 16 * MiB, false, false, true, true, true};
  e.regions[4] = {true, 32 * MiB, rwm, 32 * MiB, false, false, true, true, true};
  nvgrace::conformance::run_conformance([] { return shim_device::create(shim::plain(16 * MiB, 32 * MiB)); }, e);
}

TEST_CASE("conformance: the suite accepts a device file returned by value through a pointer") {
  // The factory may also hand out a plain pointer to a device it owns.
  auto owned = make(shim::plain(16 * MiB, 0));
  expectations e = common();
  e.regions[2] = {true, 16 * MiB, rwm, 16 * MiB, false, false, true, true, true};
  shim_device* raw = owned.get();
  nvgrace::conformance::run_conformance([raw] { return raw; }, e);
}
