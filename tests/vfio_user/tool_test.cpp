// nvgrace-vfio-user-server as a program: arguments, logging, SIGTERM,
// persistence of --memory-file, and a client in this process talking to it.

#include <nvgrace/backend/vfio_user/client.hpp>

#include "raw_peer.hpp"
#include "requests.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#ifndef NVGRACE_VFIO_USER_SERVER_PATH
#error "NVGRACE_VFIO_USER_SERVER_PATH must name the nvgrace-vfio-user-server binary"
#endif

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using namespace nvgrace::vfio_user::testing;
using namespace std::chrono_literals;

namespace {

/// The server program in a child process with its stderr captured.
class program {
public:
  explicit program(std::vector<std::string> args) {
    int p[2], o[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(o, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(p[1], 2);
      ::dup2(o[1], 1);
      std::vector<char*> argv;
      static std::string path = NVGRACE_VFIO_USER_SERVER_PATH;
      argv.push_back(path.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(p[1]);
    ::close(o[1]);
    log_.reset(p[0]);
    out_.reset(o[0]);
  }
  ~program() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  /// Wait for exit; the raw wait status.
  int wait() {
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    return status;
  }
  void signal(int sig) { REQUIRE(::kill(pid_, sig) == 0); }

  /// Everything logged (stderr) so far: reads until `ms` pass without output, or EOF.
  std::string log(int ms = 200) { return drain(log_, text_, ms); }
  /// Everything written to stdout so far.
  std::string out(int ms = 200) { return drain(out_, out_text_, ms); }

private:
  static std::string drain(const unique_fd& fd, std::string& text, int ms) {
    char buffer[4096];
    while (true) {
      pollfd p{fd.get(), POLLIN, 0};
      if (::poll(&p, 1, ms) <= 0) break;
      const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
      if (n <= 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
  }

  pid_t pid_ = -1;
  unique_fd log_, out_;
  std::string text_, out_text_;
};

bool wait_for_socket(const std::string& path) {
  for (int i = 0; i < 500; ++i) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::size_t lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

TEST_CASE("tool: serves a client, logs one line per connection and per error, SIGTERM exits 0 and removes the socket") {
  socket_path sock;
  program server({"--socket", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_socket(sock.path));
  {
    auto c = client::connect(sock.path.c_str());
    REQUIRE(c);
    const auto data = pattern(64, 1);
    CHECK(c->pwrite(data, vfio::file_offset(4, 128)).value() == 64);
    std::vector<std::byte> back(64);
    CHECK(c->pread(back, vfio::file_offset(4, 128)).value() == 64);
    CHECK(back == data);
    CHECK(c->pread(back, vfio::file_offset(4, 1u << 20)).error() == nvgrace::errc::invalid_argument);
  }
  {
    auto peer = raw_peer::connect(sock.path);
    peer.negotiate();
    auto r = peer.call(make_message(9, 0x99, {}));
    CHECK(r.h.error == static_cast<std::uint32_t>(EINVAL));
  }
  const auto pid = std::to_string(::getpid());
  const auto log = server.log();
  CHECK(log.find("listening on " + sock.path + " (blackwell, 1 MiB of GPU memory in a memfd)") != std::string::npos);
  CHECK(log.find("connection 1 from pid " + pid + "\n") != std::string::npos);
  CHECK(log.find("connection 1: REGION_READ (id 4) refused: EINVAL\n") != std::string::npos);
  CHECK(log.find("connection 2 from pid " + pid + "\n") != std::string::npos);
  CHECK(log.find("connection 2: UNKNOWN (id 9) refused: EINVAL\n") != std::string::npos);
  // At disconnect, what each connection carried, by command.
  const auto closed1 = log.find("connection 1 closed after ");
  REQUIRE(closed1 != std::string::npos);
  const auto line1 = log.substr(closed1, log.find('\n', closed1) - closed1);
  CHECK(line1.find(", REGION_READ 2 (region 4: 2), REGION_WRITE 1 (region 4: 1)") != std::string::npos);
  CHECK(line1.find("VERSION 1, ") != std::string::npos);
  CHECK(log.find("connection 2 closed after 2 messages: VERSION 1, UNKNOWN 1\n") != std::string::npos);
  CHECK(lines(log) == 7);
  server.signal(SIGTERM);
  const int status = server.wait();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_FALSE(exists(sock.path));
  CHECK(server.log().find("stopped\n") != std::string::npos);
}

TEST_CASE("tool: SIGTERM while a client is connected still exits 0") {
  socket_path sock;
  program server({"--socket", sock.path, "--size", "1536M"});
  REQUIRE(wait_for_socket(sock.path));
  auto c = client::connect(sock.path.c_str());
  REQUIRE(c);
  server.signal(SIGTERM);
  const int status = server.wait();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_FALSE(exists(sock.path));
}

TEST_CASE("tool: --memory-file keeps GPU memory across restarts") {
  socket_path sock;
  const std::string file = sock.path + ".mem";
  const auto data = pattern(4096, 7);
  {
    program server({"--socket", sock.path, "--size", "2M", "--generation", "blackwell", "--memory-file", file});
    REQUIRE(wait_for_socket(sock.path));
    auto c = client::connect(sock.path.c_str());
    REQUIRE(c);
    CHECK(c->pwrite(data, vfio::file_offset(4, 0x10000)).value() == 4096);
    c->close();
    server.signal(SIGTERM);
    CHECK(server.wait() == 0);
  }
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK(st.st_size == 2 << 20);
  {
    program server({"--socket", sock.path, "--size", "2M", "--generation", "blackwell", "--memory-file", file});
    REQUIRE(wait_for_socket(sock.path));
    auto c = client::connect(sock.path.c_str());
    REQUIRE(c);
    std::vector<std::byte> back(4096);
    CHECK(c->pread(back, vfio::file_offset(4, 0x10000)).value() == 4096);
    CHECK(back == data);
    c->close();
    server.signal(SIGTERM);
    CHECK(server.wait() == 0);
  }
  ::unlink(file.c_str());
}

TEST_CASE("tool: bad arguments print one line with the rule and errno and exit 2") {
  socket_path sock;
  struct bad {
    std::vector<std::string> args;
    std::string line;
  };
  const bad cases[] = {
      {{}, "nvgrace-vfio-user-server: --socket PATH is required (see --help) (EINVAL)\n"},
      {{"--socket", sock.path, "--size", "12Q"},
       "nvgrace-vfio-user-server: --size must be a positive byte count like 2G, 1536M or 0x80000000, "
       "not '12Q' (EINVAL)\n"},
      {{"--socket", sock.path, "--size", "0"},
       "nvgrace-vfio-user-server: --size must be a positive byte count like 2G, 1536M or 0x80000000, "
       "not '0' (EINVAL)\n"},
      {{"--socket", sock.path, "--generation", "ampere"},
       "nvgrace-vfio-user-server: --generation must be hopper or blackwell, not 'ampere' (EINVAL)\n"},
      {{"--socket", sock.path, "--size", "1G"},
       "nvgrace-vfio-user-server: cannot create the device: a Hopper device needs --size of at least 1536M (§2.3) "
       "(EINVAL)\n"},
      {{"--socket", sock.path, "--size", "512M"},
       "nvgrace-vfio-user-server: cannot create the device: a Hopper device needs --size of at least 1536M (§2.3) "
       "(EOVERFLOW)\n"},
      {{"--socket", "/nonexistent-dir/x.sock", "--size", "1M", "--generation", "blackwell"},
       "nvgrace-vfio-user-server: cannot listen on '/nonexistent-dir/x.sock' (ENOENT)\n"},
      {{"--socket"}, "nvgrace-vfio-user-server: --socket needs a value (EINVAL)\n"},
      {{"--socket", sock.path, "--frobnicate"},
       "nvgrace-vfio-user-server: unknown argument '--frobnicate' (see --help) (EINVAL)\n"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    program p(c.args);
    const int status = p.wait();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(p.log() == c.line);
  }
}

TEST_CASE("tool: an existing socket path is refused (EADDRINUSE), not removed") {
  socket_path sock;
  program first({"--socket", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_socket(sock.path));
  program second({"--socket", sock.path, "--size", "1M", "--generation", "blackwell"});
  const int status = second.wait();
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(second.log() ==
        "nvgrace-vfio-user-server: cannot listen on '" + sock.path +
            "': the path exists (remove it or choose another) (EADDRINUSE)\n");
  CHECK(client::connect(sock.path.c_str()).has_value());  // the first server still serves
}

TEST_CASE("tool: --help prints usage to stdout and exits 0") {
  program p({"--help"});
  const int status = p.wait();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(p.log().empty());
  CHECK(p.out().rfind("usage: nvgrace-vfio-user-server --socket PATH", 0) == 0);
}

TEST_CASE("tool: --print-ssdt prints the firmware table that gives the slot its GPU memory") {
  {
    program p({"--print-ssdt", "--base", "0x200000000", "--size", "0x1046400123"});
    const int status = p.wait();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    const std::string asl = p.out();
    CHECK(asl.find("DefinitionBlock (\"\", \"SSDT\", 2,") != std::string::npos);
    CHECK(asl.find("Scope (\\_SB.PCI0)") != std::string::npos);
    CHECK(asl.find("Device (GPU0)") != std::string::npos);
    CHECK(asl.find("Name (_ADR, 0x00100000)") != std::string::npos);  // slot 0x10, function 0
    CHECK(asl.find("Return (0x0F)") != std::string::npos);
    CHECK(asl.find("ToUUID (\"daffd814-6eba-4d8c-8a91-bc9bbf4aa301\")") != std::string::npos);
    CHECK(asl.find("\"nvidia,gpu-mem-base-pa\", 0x0000000200000000") != std::string::npos);
    CHECK(asl.find("\"nvidia,gpu-mem-size\", 0x0000001046400123") != std::string::npos);
    CHECK(asl.find("revision 2") != std::string::npos);  // the note on 64-bit integers
    CHECK(p.log().empty());
  }
  {
    program p({"--print-ssdt", "--base", "0x20000000", "--size", "0x72C00123", "--slot", "0x11", "--function", "2",
               "--acpi-name", "GPU7"});
    CHECK(p.wait() == 0);
    const std::string asl = p.out();
    CHECK(asl.find("Device (GPU7)") != std::string::npos);
    CHECK(asl.find("Name (_ADR, 0x00110002)") != std::string::npos);
    CHECK(asl.find("revision 2") == std::string::npos);  // 32-bit values need no DSDT upgrade
  }
  for (const auto& args : {std::vector<std::string>{"--print-ssdt", "--size", "1G"},
                           std::vector<std::string>{"--print-ssdt", "--base", "0x1000"}}) {
    program p(args);
    const int status = p.wait();
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(p.log() == "nvgrace-vfio-user-server: --print-ssdt needs --base and --size (EINVAL)\n");
  }
  program bad_name({"--print-ssdt", "--base", "0", "--size", "1G", "--acpi-name", "9GPU"});
  CHECK(WEXITSTATUS(bad_name.wait()) == 2);
}

TEST_CASE("tool: --physical serves the GPU's PCI function before the variant driver") {
  socket_path sock;
  program server({"--socket", sock.path, "--physical", "--generation", "blackwell", "--bar2-size", "64K",
                  "--bar4-size", "0", "--ready", "never"});
  REQUIRE(wait_for_socket(sock.path));
  auto c = client::connect(sock.path.c_str());
  REQUIRE(c);
  const auto region_size = [&](std::uint32_t index) {
    std::array<std::byte, 32> info{};
    store_le<std::uint32_t>(info, 0, 32);
    store_le<std::uint32_t>(info, 8, index);
    REQUIRE(c->get_region_info(info).has_value());
    return load_le<std::uint64_t>(info, 16);
  };
  CHECK(region_size(0) == 16 * MiB);  // BAR0: the registers
  CHECK(region_size(2) == 64 * KiB);  // the function's own BAR2, no GPU memory behind it
  CHECK(region_size(4) == 0);
  const auto config = [&](std::uint64_t offset) {
    std::array<std::byte, 4> v{};
    REQUIRE(c->pread(v, vfio::file_offset(7, offset)).value() == 4);
    return load_le<std::uint32_t>(v, 0);
  };
  CHECK(config(0) == 0x2941'10DEu);                 // GB200 by default for Blackwell
  CHECK((config(8) >> 8) == 0x030200u);             // 3D controller
  CHECK((config(0x10A - 2) >> 16 & 1) == 1u);       // DVSEC word +0xA bit 0: no MIG hardware bug
  const auto bar0 = [&](std::uint64_t offset) {
    std::array<std::byte, 4> v{};
    REQUIRE(c->pread(v, vfio::file_offset(0, offset)).value() == 4);
    return load_le<std::uint32_t>(v, 0);
  };
  CHECK(bar0(0x1498) == 0u);  // --ready never: C2C link and HBM training never report 0xFF
  CHECK(bar0(0x200BC) == 0u);
  c->close();
  CHECK(server.log().find("listening on " + sock.path +
                          " (physical function 2941, blackwell, BAR2 64 KiB, BAR4 0 KiB, never ready)") !=
        std::string::npos);
  program hopper({"--socket", sock.path + "2", "--physical"});
  REQUIRE(wait_for_socket(sock.path + "2"));
  auto h = client::connect((sock.path + "2").c_str());
  REQUIRE(h);
  std::array<std::byte, 4> v{};
  REQUIRE(h->pread(v, vfio::file_offset(0, 0x1498)).value() == 4);
  CHECK(load_le<std::uint32_t>(v, 0) == 0xFFu);
  REQUIRE(h->pread(v, vfio::file_offset(7, 0x108)).value() == 4);
  CHECK((load_le<std::uint32_t>(v, 0) >> 16 & 1) == 0u);  // Hopper: the MIG bug, so the carve-out
  REQUIRE(h->pread(v, vfio::file_offset(7, 0)).value() == 4);
  CHECK(load_le<std::uint32_t>(v, 0) == 0x2342'10DEu);
  h->close();
  ::unlink((sock.path + "2").c_str());
}

TEST_CASE("tool: --physical --no-dvsec --cxl --ready MS: the function's DVSECs and a late readiness") {
  socket_path sock;
  program server({"--socket", sock.path, "--physical", "--generation", "blackwell", "--no-dvsec", "--cxl",
                  "--ready", "60000"});
  REQUIRE(wait_for_socket(sock.path));
  auto c = client::connect(sock.path.c_str());
  REQUIRE(c);
  const auto read32 = [&](std::uint32_t index, std::uint64_t offset) {
    std::array<std::byte, 4> v{};
    REQUIRE(c->pread(v, vfio::file_offset(index, offset)).value() == 4);
    return load_le<std::uint32_t>(v, 0);
  };
  CHECK(read32(7, 0) == 0x2941'10DEu);      // Blackwell's id, but no NVIDIA DVSEC to say so
  CHECK(read32(7, 0x100) == 0x0001'0023u);  // the first extended capability: the CXL DVSEC, last
  CHECK(read32(7, 0x104) == 0x03C1'1E98u);  // vendor 0x1E98, revision 1, length 0x3C
  CHECK(read32(7, 0x108) == 0u);            // DVSEC id 0: CXL device
  CHECK(read32(7, 0x11C) == 0x3u);          // Range 1 Size Low: memory info valid and active
  CHECK(read32(0, 0x1498) == 0u);           // not ready for 60 s after start
  c->close();
  CHECK(server.log().find("(physical function 2941, blackwell, BAR2 1024 KiB, BAR4 1024 KiB, ready after 60000 ms)") !=
        std::string::npos);
}
