// The device-file conformance suite (tests/conformance/conformance.hpp) run
// against vfio_user::client, talking to vfio_user::server in another process:
// for every subcase the factory forks a child that creates a fresh shim device
// and serves it on one end of a socketpair; the parent's client gets the
// other end. Expectations are the spec's numbers for each device shape
// (§2.3 layouts, §4.3 caps, §5 boundaries), as in tests/device.

#include "conformance.hpp"
#include "shim_expectations.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>

using namespace nvgrace;
namespace shapes = nvgrace::conformance::shim_shapes;

namespace {

using shim_device = shim::memfd_device;

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
    vfio_user::server<shim_device> server(*device);
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

/// The shim's expectations as a vfio-user client sees them: BAR0 without MMAP
/// (the server never hands out BAR0's memory, whose readiness registers must
/// stay read-only to a peer), everything else the same.
nvgrace::conformance::expectations over_vfio_user(nvgrace::conformance::expectations e) {
  e.regions[0].flags &= ~vfio::region_flags::mmap;
  return e;
}

shim::device_options hopper(grace::resmem_return quirk) {
  auto options = shim::hopper(shapes::hopper_length);
  options.resmem_quirk = quirk;
  return options;
}

}  // namespace

static_assert(vfio::device_file<remote_device>);

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Hopper 1.5 GiB + 4 KiB, upstream resmem return") {
  const auto options = hopper(grace::resmem_return::upstream_short);
  nvgrace::conformance::run_conformance([&] { return serve_in_child(options); }, over_vfio_user(shapes::hopper(true)));
}

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Hopper, documented resmem return") {
  const auto options = hopper(grace::resmem_return::documented);
  nvgrace::conformance::run_conformance([&] { return serve_in_child(options); }, over_vfio_user(shapes::hopper(false)));
}

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Hopper without function reset") {
  auto options = hopper(grace::resmem_return::upstream_short);
  options.reset_supported = false;
  nvgrace::conformance::run_conformance([&] { return serve_in_child(options); },
                                        over_vfio_user(shapes::hopper(true, /*reset_supported=*/false)));
}

TEST_CASE("conformance: vfio-user client ↔ server (forked), Grace Blackwell 64 MiB + 4 KiB") {
  nvgrace::conformance::run_conformance([] { return serve_in_child(shim::blackwell(shapes::blackwell_length)); },
                                        over_vfio_user(shapes::blackwell()));
}
