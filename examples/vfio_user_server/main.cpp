// vfio_user_server: serve an emulated Grace GPU from your own program over vfio-user, the way
// nvgrace-vfio-user-server does, in one page.
//
//   vfio_user_server SOCKET [hopper|blackwell]
//
// Creates the in-process device (2.5 GiB of GPU memory in a memfd, handed to clients so they map
// it), listens on SOCKET and serves one client after the other until SIGTERM or SIGINT.
#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

using namespace nvgrace;

namespace {

vfio_user::server<shim::memfd_device>* running = nullptr;

extern "C" void stop(int) {
  if (running != nullptr) running->request_stop();  // async-signal-safe
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: vfio_user_server SOCKET [hopper|blackwell]\n");
    return 2;
  }
  const bool blackwell = argc == 3 && std::strcmp(argv[2], "blackwell") == 0;
  auto dev = shim::memfd_device::create(blackwell ? shim::blackwell(5 * GiB / 2) : shim::hopper(5 * GiB / 2));
  if (!dev) {
    std::fprintf(stderr, "vfio_user_server: cannot create the device: %s\n", dev.message().c_str());
    return 1;
  }
  vfio_user::server<shim::memfd_device> server(*dev);
  if (auto s = server.listen(argv[1]); !s) {
    std::fprintf(stderr, "vfio_user_server: cannot listen on %s: %s\n", argv[1], errno_name(s.error()).c_str());
    return 1;
  }
  running = &server;
  struct sigaction action {};
  action.sa_handler = stop;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::printf("serving a Grace %s on %s\n", blackwell ? "Blackwell" : "Hopper", argv[1]);
  std::fflush(stdout);
  const auto served = server.run();
  ::unlink(argv[1]);
  return served ? 0 : 1;
}
