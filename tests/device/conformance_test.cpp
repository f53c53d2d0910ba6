// The device-file conformance suite (tests/conformance/conformance.hpp) run
// against the in-process device in each of its shapes. The expectations are
// written out from the spec's numbers, not read from the device.
#include "conformance.hpp"
#include "shim_expectations.hpp"
#include "shim_fixtures.hpp"

#include <nvgrace/backend/shim/shim.hpp>

#include <doctest/doctest.h>

using namespace device_test;
namespace shapes = nvgrace::conformance::shim_shapes;

TEST_CASE("conformance: shim, Grace Hopper 1.5 GiB + 4 KiB, upstream resmem return") {
  auto options = shim::hopper(shapes::hopper_length);
  options.resmem_quirk = grace::resmem_return::upstream_short;
  nvgrace::conformance::run_conformance([&] { return shim_device::create(options); }, shapes::hopper(true));
}

TEST_CASE("conformance: shim, Grace Hopper, documented resmem return") {
  auto options = shim::hopper(shapes::hopper_length);
  options.resmem_quirk = grace::resmem_return::documented;
  nvgrace::conformance::run_conformance([&] { return shim_device::create(options); }, shapes::hopper(false));
}

TEST_CASE("conformance: shim, Grace Hopper without function reset") {
  auto options = shim::hopper(shapes::hopper_length);
  options.reset_supported = false;
  nvgrace::conformance::run_conformance([&] { return shim_device::create(options); },
                                        shapes::hopper(false, /*reset_supported=*/false));
}

TEST_CASE("conformance: shim, Grace Blackwell 64 MiB + 4 KiB, real 16 MiB BAR2") {
  nvgrace::conformance::run_conformance([] { return shim_device::create(shim::blackwell(shapes::blackwell_length)); },
                                        shapes::blackwell());
}

TEST_CASE("conformance: shim, plain vfio-pci (no ACPI memory), BAR2 16 MiB, BAR4 32 MiB") {
  nvgrace::conformance::run_conformance([] { return shim_device::create(shim::plain(16 * MiB, 32 * MiB)); },
                                        shapes::plain(16 * MiB, 32 * MiB));
}

TEST_CASE("conformance: the suite accepts a device file returned by value through a pointer") {
  // The factory may also hand out a plain pointer to a device it owns.
  auto owned = make(shim::plain(16 * MiB, 0));
  shim_device* raw = &owned;
  nvgrace::conformance::run_conformance([raw] { return raw; }, shapes::plain(16 * MiB, 0));
}
