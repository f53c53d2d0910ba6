// nvgrace-rig-conformance: the shared conformance suite (tests/conformance) against
// Linux's nvgrace-gpu driver in the real-driver rig's guest, with the Grace
// expectations written out from the profile (the same shapes the shim's own
// conformance tests expect: emulated BARs with the sparse-mmap cap, 0xFF padding,
// the upstream short return on resmem).
//
// Environment (set by the rig's guest init):
//   NVGRACE_RIG_BDF       the PCI address of the GPU (0000:00:10.0)
//   NVGRACE_RIG_PROFILE   the profile options (--generation, --base, --size, --bar2-size, --bar4-size)
//   NVGRACE_RIG_ONE_OPEN  1: open the device once and hand the same one to every
//                         subcase (the driver's fallback refuses every later open)

#include "cli.hpp"
#include "conformance.hpp"
#include "ops.hpp"

#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/backend/linux/pci_address.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace nvgrace;
namespace lv = nvgrace::linux_vfio;

rig::options profile_from_env() {
  std::vector<std::string> words{"x"};
  if (const char* p = std::getenv("NVGRACE_RIG_PROFILE")) {
    std::istringstream in(p);
    for (std::string w; in >> w;) words.push_back(w);
  }
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return rig::parse_options(static_cast<int>(argv.size()), argv.data(), 1);
}

lv::pci_address bdf_from_env() {
  const char* text = std::getenv("NVGRACE_RIG_BDF");
  const auto a = lv::parse_pci_address(text != nullptr ? text : "0000:00:10.0");
  REQUIRE(a.has_value());
  return *a;
}

/// What the driver should present for `p`, from the rig's independent geometry.
conformance::expectations expectations_for(const rig::profile& p) {
  constexpr std::uint32_t rwm = vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;
  constexpr std::uint32_t rw = vfio::region_flags::read | vfio::region_flags::write;
  const auto shapes = rig::shapes(p);
  conformance::expectations e;
  e.device_flags = vfio::device_flags::pci | vfio::device_flags::reset;  // the function has FLR
  e.reset_supported = true;
  e.config_size = p.config_size;
  for (auto& r : e.regions) r = conformance::region_expectation{true, 0, 0, 0, false, false, false, false, false};
  e.regions[0] = {true, p.bar0_size, rwm, p.bar0_size, false, false, false, true, false};
  e.regions[7] = {true, p.config_size, rw, p.config_size, false, false, false, false, false};
  e.regions[8].present = false;
  for (const std::uint32_t i : {2u, 4u}) {
    const rig::region_shape& s = shapes[i];
    if (s.bar == 0) continue;
    if (s.emulated)
      e.regions[i] = {true, s.bar, rwm, s.real, true, s.resmem, true, true, true};
    else
      e.regions[i] = {true, s.bar, rwm, s.bar, false, false, true, true, true};
  }
  return e;
}

}  // namespace

TEST_CASE("conformance: Linux nvgrace-gpu driver in the real-driver rig") {
  const rig::options o = profile_from_env();
  const lv::pci_address address = bdf_from_env();
  const char* one = std::getenv("NVGRACE_RIG_ONE_OPEN");
  const bool one_open = one != nullptr && std::string(one) == "1";
  static bool told = false;  // doctest re-enters the test case once per subcase
  if (!told) {
    told = true;
    const std::string what = "profile: GPU memory " + std::to_string(o.prof.size) + " bytes at " +
                             std::to_string(o.prof.base) +
                             (o.prof.generation == rig::gpu::hopper ? ", hopper" : ", blackwell") +
                             (one_open ? ", one open for every subcase" : "");
    MESSAGE(what);
  }
  // Behind an IOMMU the rig names the device cdev: every open goes through iommufd with an
  // IOAS of its own instead of the group.
  const char* cdev_env = std::getenv("NVGRACE_RIG_CDEV");
  const std::string cdev = cdev_env != nullptr ? cdev_env : "";
  if (!cdev.empty()) {
    const std::string how = "opened through the device cdev " + cdev;
    MESSAGE(how);
    conformance::run_conformance([&] { return lv::device::open_cdev(cdev, lv::device::cdev_options{}); },
                                 expectations_for(o.prof));
  } else if (one_open) {
    static std::optional<lv::device> shared;
    if (!shared) {
      auto d = lv::device::open_pci(address);
      REQUIRE(d.has_value());
      shared.emplace(std::move(*d));
    }
    conformance::run_conformance([] { return &*shared; }, expectations_for(o.prof));
  } else {
    conformance::run_conformance([&] { return lv::device::open_pci(address); }, expectations_for(o.prof));
  }
}
