// The device-file conformance suite (tests/conformance/conformance.hpp) run
// against vfio_user::client, talking to vfio_user::server in another process:
// for every subcase the factory forks a child that creates a fresh shim device
// and serves it on one end of a socketpair; the parent's client gets the
// other end. Expectations are the spec's numbers for each device shape
// (§2.3 layouts, §4.3 caps, §5 boundaries), as in tests/device.

#include "conformance.hpp"

#include <nvgrace/backend/shim/device.hpp>
#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>

using namespace nvgrace;
using nvgrace::conformance::expectations;
using nvgrace::conformance::region_expectation;

namespace {

using shim_device = shim::device<>;

/// A client whose server runs in a child process; destroying it closes the
/// connection (the child's server returns and the child exits) and reaps it.
class remote_device : public vfio_user::client {
public:
  remote_device(vfio_user::client c, pid_t child) : vfio_user::client(std::move(c)), child_(child) {}
  remote_device(const remote_device&) = delete;
  remote_device& operator=(const remote_device&) = delete;
  ~remote_device() {
    close();
    int status = 0;
    ::waitpid(child_, &status, 0);
  }

private:
  pid_t child_;
};

/// Fork a server for a fresh device built from `options`; connect to it.
std::unique_ptr<remote_device> serve_in_child(const shim::device_options& options) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return nullptr;
  const pid_t child = ::fork();
  if (child < 0) return nullptr;
  if (child == 0) {
    ::close(sv[1]);
    auto device = shim_device::create(options);
    if (!device) ::_exit(3);
    vfio_user::server<shim_device> server(**device);
    const auto served = server.serve(sv[0]);
    ::_exit(served ? 0 : 4);  // no destructors, no doctest reporting in the child
  }
  ::close(sv[0]);
  auto c = vfio_user::client::adopt(sv[1]);
  if (!c) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return nullptr;
  }
  return std::make_unique<remote_device>(std::move(*c), child);
}

constexpr std::uint32_t rwm = vfio::region_flags::read | vfio::region_flags::write | vfio::region_flags::mmap;

// Hopper with 1.5 GiB + 4 KiB (§2.3): usemem 512 MiB behind 1 GiB, resmem 1 GiB + 4 KiB behind 2 GiB.
constexpr std::uint64_t hopper_length = 3 * GiB / 2 + 4 * KiB;
constexpr std::uint64_t hopper_usemem_real = 0x2000'0000;
constexpr std::uint64_t hopper_usemem_bar = 0x4000'0000;
constexpr std::uint64_t hopper_resmem_real = 0x4000'1000;
constexpr std::uint64_t hopper_resmem_bar = 0x8000'0000;
// Blackwell with 64 MiB + 4 KiB: usemem is all of it, behind 128 MiB.
constexpr std::uint64_t blackwell_length = 64 * MiB + 4 * KiB;
constexpr std::uint64_t blackwell_usemem_bar = 128 * MiB;

/// What every shape of the device shares: BAR0 64-bit 16 MiB, empty
/// BAR1/3/5 and ROM, 4 KiB config, no VGA, the IRQ set, reset supported.
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

shim::device_options hopper(grace::resmem_return quirk) {
  auto options = shim::hopper(hopper_length);
  options.resmem_quirk = quirk;
  return options;
}

expectations hopper_expectations(bool short_return) {
  expectations e = common();
  e.regions[2] = {true, hopper_resmem_bar, rwm, hopper_resmem_real, true, short_return, true, true, true};
  e.regions[4] = {true, hopper_usemem_bar, rwm, hopper_usemem_real, true, false, true, true, true};
  e.ioeventfd_enotty = true;  // checked only through an ioctl(), which vfio-user has not
  return e;
}

}  // namespace

static_assert(access::device_file<remote_device>);

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Hopper 1.5 GiB + 4 KiB, upstream resmem return") {
  const auto options = hopper(grace::resmem_return::upstream_short);
  nvgrace::conformance::run_conformance([&] { return serve_in_child(options); }, hopper_expectations(true));
}

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Hopper, documented resmem return") {
  const auto options = hopper(grace::resmem_return::documented);
  nvgrace::conformance::run_conformance([&] { return serve_in_child(options); }, hopper_expectations(false));
}

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Hopper without function reset") {
  auto options = hopper(grace::resmem_return::upstream_short);
  options.reset_supported = false;
  expectations e = hopper_expectations(true);
  e.reset_supported = false;
  e.device_flags = vfio::device_flags::pci;
  nvgrace::conformance::run_conformance([&] { return serve_in_child(options); }, e);
}

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Blackwell 64 MiB + 4 KiB") {
  expectations e = common();
  e.regions[2] = {true, 16 * MiB, rwm, 16 * MiB, false, false, true, true, true};
  e.regions[4] = {true, blackwell_usemem_bar, rwm, blackwell_length, true, false, true, true, true};
  e.ioeventfd_enotty = true;
  nvgrace::conformance::run_conformance([] { return serve_in_child(shim::blackwell(blackwell_length)); }, e);
}
