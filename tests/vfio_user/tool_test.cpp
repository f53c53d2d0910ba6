// nvgrace-vfio-user-server as a program: arguments, logging and verbosity,
// SIGTERM and SIGHUP, persistence of --memory-file, the backend-program
// conventions (--socket-path, --fd, socket activation through LISTEN_FDS,
// stale-socket handling, socket mode and group, NOTIFY_SOCKET readiness), the
// connection deadlines, --no-share-fds, --no-flr, the smallest size, and a
// client in this process talking to it.

#include <nvgrace/backend/vfio_user/client.hpp>
#include <nvgrace/version.hpp>

#include "raw_peer.hpp"
#include "requests.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
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

/// How to start the program beyond its arguments.
struct launch {
  std::vector<std::pair<std::string, std::string>> env;  ///< set in the child
  int keep_fd = -1;                                      ///< an fd the child inherits as it is (for --fd)
  int activation_fd = -1;                                ///< becomes fd 3 with LISTEN_FDS=1 LISTEN_PID=<child>
  std::string listen_pid;                                ///< with activation_fd: this LISTEN_PID instead of the child's
};

/// The server program in a child process with its stderr captured.
class program {
public:
  explicit program(std::vector<std::string> args, const launch& how = {}) {
    int p[2], o[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(o, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(p[1], 2);
      ::dup2(o[1], 1);
      for (const auto& [name, value] : how.env) ::setenv(name.c_str(), value.c_str(), 1);
      if (how.keep_fd >= 0) ::fcntl(how.keep_fd, F_SETFD, 0);
      if (how.activation_fd >= 0) {
        if (how.activation_fd != 3) ::dup2(how.activation_fd, 3);
        ::fcntl(3, F_SETFD, 0);
        ::setenv("LISTEN_FDS", "1", 1);
        ::setenv("LISTEN_PID", how.listen_pid.empty() ? std::to_string(::getpid()).c_str() : how.listen_pid.c_str(), 1);
      }
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

/// True when a socket bound at `path` listens: /proc/net/unix lists it with
/// __SO_ACCEPTCON (0x10000) in its flags. (The server binds, then sets the mode,
/// then listens: the file alone does not mean a connect would be accepted.)
bool listens(const std::string& path) {
  std::FILE* f = std::fopen("/proc/net/unix", "r");
  if (f == nullptr) return false;
  char line[512];
  bool found = false;
  while (!found && std::fgets(line, sizeof line, f) != nullptr) {
    std::string text = line;
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (text.size() <= path.size() || text.compare(text.size() - path.size(), path.size(), path) != 0 ||
        text[text.size() - path.size() - 1] != ' ')
      continue;
    unsigned long flags = 0;
    found = std::sscanf(line, "%*s %*s %*s %lx", &flags) == 1 && (flags & 0x10000UL) != 0;
  }
  std::fclose(f);
  return found;
}

bool wait_for_socket(const std::string& path) {
  for (int i = 0; i < 500; ++i) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && listens(path)) return true;
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

/// Wait until `program` logged `text` (up to 5 s).
bool wait_for_log(program& p, const std::string& text) {
  for (int i = 0; i < 50; ++i)
    if (p.log(100).find(text) != std::string::npos) return true;
  return false;
}

/// A listening UNIX socket at `path` (as a service manager would create it).
unique_fd listening_socket(const std::string& path) {
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd.get(), 4) == 0);
  return fd;
}

/// A socket file nobody listens on: what a server killed with SIGKILL leaves behind.
void leave_stale_socket(const std::string& path) { unique_fd fd = listening_socket(path); }

/// A datagram socket standing in for the service manager's NOTIFY_SOCKET;
/// `abstract` binds "@name" in the abstract namespace instead of a path.
class notify_listener {
public:
  notify_listener(const std::string& name, bool abstract) : name_(name) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd_);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.c_str(), name.size());
    socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
    if (abstract) {
      addr.sun_path[0] = '\0';
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    }
    REQUIRE(::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), length) == 0);
  }
  /// The next datagram, or "" after 5 s.
  std::string next() {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return {};
    char buffer[4096];
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  }
  const std::string& name() const { return name_; }

private:
  std::string name_;
  unique_fd fd_;
};

/// A client session that must work: write, read back.
void check_serves(const std::string& path) {
  auto c = client::connect(path.c_str());
  REQUIRE(c);
  const auto data = pattern(64, 3);
  CHECK(c->pwrite(data, vfio::file_offset(4, 256)).value() == 64);
  std::vector<std::byte> back(64);
  CHECK(c->pread(back, vfio::file_offset(4, 256)).value() == 64);
  CHECK(back == data);
}

int exit_status(program& p) {
  const int status = p.wait();
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
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
  program server({"--socket-path", sock.path, "--size", "1536M"});
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

TEST_CASE("tool: bad arguments print one error line with the rule and errno and exit 2") {
  socket_path sock;
  struct bad {
    std::vector<std::string> args;
    std::string line;
  };
  const std::string help = "; see 'nvgrace-vfio-user-server --help'\n";
  const bad cases[] = {
      {{},
       "nvgrace-vfio-user-server: error: no socket: give --socket-path PATH or --fd N, or start the server through "
       "socket activation (EINVAL)" +
           help},
      {{"--socket-path", sock.path, "--size", "12Q"},
       "nvgrace-vfio-user-server: error: bad SIZE '12Q' (at character 3): unknown unit (expected B, K, KiB, M, MiB, G, "
       "GiB, T or TiB) (EINVAL)" +
           help},
      {{"--socket-path", sock.path, "--size", "0"},
       "nvgrace-vfio-user-server: error: --size must be more than 0 bytes (EINVAL)" + help},
      {{"--socket-path", sock.path, "--generation", "ampere"},
       "nvgrace-vfio-user-server: error: --generation must be hopper or blackwell, not 'ampere' (EINVAL)" + help},
      {{"--socket-path", sock.path, "--size", "1G"},
       "nvgrace-vfio-user-server: error: --size 1 GiB on Hopper: usable memory rounds down to 0 (a Hopper device needs "
       "at least 1536M) (EINVAL)" +
           help},
      {{"--socket-path", sock.path, "--size", "512M"},
       "nvgrace-vfio-user-server: error: --size 512 MiB on Hopper: memory is smaller than the 1 GiB carve-out (a "
       "Hopper device needs at least 1536M) (EOVERFLOW)" +
           help},
      // A BAR larger than the 1 TiB that a VFIO region can span.
      {{"--socket-path", sock.path, "--size", "64T"},
       "nvgrace-vfio-user-server: error: --size 64 TiB on Hopper needs a 64 TiB BAR at region 4, which does not fit "
       "the 1 TiB window of a VFIO region (at most 1 TiB on Blackwell, 1 TiB + 1 GiB on Hopper) (EOVERFLOW)" +
           help},
      {{"--socket-path", sock.path, "--size", "1T+1", "--generation", "blackwell"},
       "nvgrace-vfio-user-server: error: --size 1099511627777 B on Blackwell needs a 2 TiB BAR at region 4, which "
       "does not fit the 1 TiB window of a VFIO region (at most 1 TiB on Blackwell, 1 TiB + 1 GiB on Hopper) "
       "(EOVERFLOW)" +
           help},
      {{"--socket"}, "nvgrace-vfio-user-server: error: option '--socket' needs a value (PATH) (EINVAL)" + help},
      {{"--socket-path", sock.path, "--frobnicate"},
       "nvgrace-vfio-user-server: error: unknown option '--frobnicate' (EINVAL)" + help},
      {{"--socket-path", sock.path, "--fd", "3"},
       "nvgrace-vfio-user-server: error: more than one socket: --socket-path --fd (give one) (EINVAL)" + help},
  };
  for (const auto& c : cases) {
    CAPTURE(c.line);
    program p(c.args);
    CHECK(exit_status(p) == 2);
    CHECK(p.log() == c.line);
    CHECK_FALSE(exists(sock.path));
  }
}

TEST_CASE("tool: what cannot be opened exits 3") {
  socket_path sock;
  program no_dir({"--socket-path", "/nonexistent-dir/x.sock", "--size", "1M", "--generation", "blackwell"});
  CHECK(exit_status(no_dir) == 3);
  CHECK(no_dir.log() ==
        "nvgrace-vfio-user-server: error: cannot listen on '/nonexistent-dir/x.sock': No such file or directory "
        "(ENOENT)\n");
  program no_fd({"--fd", "99", "--size", "1M", "--generation", "blackwell"});
  CHECK(exit_status(no_fd) == 3);
  CHECK(no_fd.log() == "nvgrace-vfio-user-server: error: --fd 99 is not an open file descriptor (EBADF)\n");
  program no_file({"--socket-path", sock.path, "--size", "2M", "--generation", "blackwell", "--memory-file",
                   "/nonexistent-dir/mem"});
  CHECK(exit_status(no_file) == 3);
  CHECK(no_file.log().find("cannot open memory file '/nonexistent-dir/mem'") != std::string::npos);
}

TEST_CASE("tool: a live socket is refused (EADDRINUSE, exit 3), not removed; the first server still serves") {
  socket_path sock;
  program first({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_socket(sock.path));
  program second({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  CHECK(exit_status(second) == 3);
  CHECK(second.log() == "nvgrace-vfio-user-server: error: cannot listen on '" + sock.path +
                            "': another server is listening on it (EADDRINUSE)\n");
  check_serves(sock.path);
}

TEST_CASE("tool: a stale socket (the server was killed) is replaced, so a restart works") {
  socket_path sock;
  {
    program killed({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
    REQUIRE(wait_for_socket(sock.path));
    killed.signal(SIGKILL);
    killed.wait();
  }
  REQUIRE(exists(sock.path));  // SIGKILL leaves the socket file
  program restarted({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_log(restarted, "listening on " + sock.path));
  CHECK(restarted.log().rfind(
            "nvgrace-vfio-user-server: removed stale socket " + sock.path + " (nothing was listening on it)\n", 0) ==
        0);
  check_serves(sock.path);
  restarted.signal(SIGTERM);
  CHECK(exit_status(restarted) == 0);
  CHECK_FALSE(exists(sock.path));

  // The same for a leftover made by hand.
  leave_stale_socket(sock.path);
  program again({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_log(again, "listening on"));
  check_serves(sock.path);
}

TEST_CASE("tool: a path that is not a socket is never removed") {
  socket_path sock;
  {
    std::FILE* f = std::fopen(sock.path.c_str(), "w");
    REQUIRE(f);
    std::fputs("data", f);
    std::fclose(f);
  }
  program p({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  CHECK(exit_status(p) == 3);
  CHECK(p.log() == "nvgrace-vfio-user-server: error: cannot listen on '" + sock.path +
                       "': it exists and is not a socket (not removing it) (EEXIST)\n");
  struct stat st {};
  REQUIRE(::stat(sock.path.c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(st.st_size == 4);
}

TEST_CASE("tool: at exit only its own socket file is removed") {
  socket_path sock;
  program p({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_socket(sock.path));
  // Someone replaces the path while the server runs: the new file is not the server's to remove.
  REQUIRE(::unlink(sock.path.c_str()) == 0);
  {
    std::FILE* f = std::fopen(sock.path.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
  }
  p.signal(SIGTERM);
  CHECK(exit_status(p) == 0);
  CHECK(exists(sock.path));
}

TEST_CASE("tool: --socket-mode and --socket-group set the socket's permissions before it listens") {
  socket_path sock;
  const gid_t gid = ::getegid();
  program p({"--socket-path", sock.path, "--socket-mode", "0660", "--socket-group", std::to_string(gid), "--size", "1M",
             "--generation", "blackwell"});
  REQUIRE(wait_for_log(p, "listening on"));
  struct stat st {};
  REQUIRE(::stat(sock.path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0660);
  CHECK(st.st_gid == gid);
  p.signal(SIGTERM);
  CHECK(exit_status(p) == 0);

  // A group by name, and a mode without the leading 0.
  const ::group* g = ::getgrgid(gid);
  REQUIRE(g != nullptr);
  program named({"--socket-path", sock.path, "--socket-mode", "600", "--socket-group", g->gr_name, "--size", "1M",
                 "--generation", "blackwell"});
  REQUIRE(wait_for_log(named, "listening on"));
  REQUIRE(::stat(sock.path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  check_serves(sock.path);

  program bad({"--socket-path", sock.path + "2", "--socket-group", "no-such-group-nvgrace", "--size", "1M",
               "--generation", "blackwell"});
  CHECK(exit_status(bad) == 2);
  CHECK(bad.log().find("--socket-group: no group 'no-such-group-nvgrace'") != std::string::npos);
}

TEST_CASE("tool: --fd serves an inherited listening socket and leaves its path alone") {
  socket_path sock;
  unique_fd listener = listening_socket(sock.path);
  program p({"--fd", std::to_string(listener.get()), "--size", "1M", "--generation", "blackwell"},
            launch{{}, listener.get(), -1, {}});
  REQUIRE(wait_for_log(p, "listening on inherited fd " + std::to_string(listener.get()) +
                              " (blackwell, 1 MiB of GPU memory in a memfd)"));
  check_serves(sock.path);
  p.signal(SIGTERM);
  CHECK(exit_status(p) == 0);
  CHECK(exists(sock.path));  // the socket belongs to whoever made it
}

TEST_CASE("tool: socket activation (LISTEN_FDS=1, LISTEN_PID = the server) serves fd 3") {
  socket_path sock;
  unique_fd listener = listening_socket(sock.path);
  program p({"--size", "1M", "--generation", "blackwell"}, launch{{}, -1, listener.get(), {}});
  REQUIRE(wait_for_log(p, "listening on fd 3 from socket activation (blackwell, 1 MiB of GPU memory in a memfd)"));
  check_serves(sock.path);
  p.signal(SIGTERM);
  CHECK(exit_status(p) == 0);
  CHECK(exists(sock.path));

  // LISTEN_PID of another process: the variables are not for this server.
  program other({"--size", "1M", "--generation", "blackwell"}, launch{{}, -1, listener.get(), "1"});
  CHECK(exit_status(other) == 2);
  CHECK(other.log().find("error: no socket") != std::string::npos);
  // Activation and an explicit socket at once is ambiguous.
  program both({"--socket-path", sock.path + "2", "--size", "1M", "--generation", "blackwell"},
               launch{{}, -1, listener.get(), {}});
  CHECK(exit_status(both) == 2);
  CHECK(both.log().find("more than one socket: --socket-path LISTEN_FDS") != std::string::npos);
}

TEST_CASE("tool: NOTIFY_SOCKET gets READY=1 once the socket listens and STOPPING=1 at SIGTERM") {
  socket_path sock;
  for (const bool abstract : {false, true}) {
    CAPTURE(abstract);
    const std::string name = abstract ? "@nvgrace-notify-" + std::to_string(::getpid()) : sock.path + ".notify";
    notify_listener manager(name, abstract);
    program p({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"},
              launch{{{"NOTIFY_SOCKET", name}}, -1, -1, {}});
    const std::string ready = manager.next();
    CHECK(ready == "READY=1\nSTATUS=Listening on " + sock.path);
    // Ready means ready: a client connects at once.
    check_serves(sock.path);
    p.signal(SIGTERM);
    CHECK(manager.next() == "STOPPING=1");
    CHECK(exit_status(p) == 0);
    if (!abstract) ::unlink(name.c_str());
  }
}

TEST_CASE("tool: SIGHUP is logged and ignored; the server keeps serving") {
  socket_path sock;
  program p({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_socket(sock.path));
  p.signal(SIGHUP);
  CHECK(wait_for_log(p, "nvgrace-vfio-user-server: SIGHUP: nothing to reload, ignored\n"));
  check_serves(sock.path);
  p.signal(SIGTERM);
  CHECK(exit_status(p) == 0);
}

TEST_CASE("tool: -q logs errors only, -v adds the negotiated version") {
  socket_path sock;
  {
    program quiet({"-q", "--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
    REQUIRE(wait_for_socket(sock.path));
    check_serves(sock.path);
    quiet.signal(SIGTERM);
    CHECK(exit_status(quiet) == 0);
    CHECK(quiet.log().empty());
  }
  program verbose({"--verbose", "--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
  REQUIRE(wait_for_socket(sock.path));
  check_serves(sock.path);
  verbose.signal(SIGTERM);
  CHECK(exit_status(verbose) == 0);
  const auto log = verbose.log();
  CHECK(log.find("connection 1: protocol version 0.") != std::string::npos);
  CHECK(log.find("connection 1 closed after ") != std::string::npos);
}

TEST_CASE("tool: --help prints usage to stdout and exits 0; --version prints the version") {
  program p({"--help"});
  CHECK(exit_status(p) == 0);
  CHECK(p.log().empty());
  CHECK(p.out().rfind("Usage: nvgrace-vfio-user-server [OPTIONS] --socket-path PATH", 0) == 0);
  program v({"--version"});
  CHECK(exit_status(v) == 0);
  CHECK(v.out() == "nvgrace-vfio-user-server " + std::string(nvgrace::version.string) + "\n");
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
    CHECK(p.log() ==
          "nvgrace-vfio-user-server: error: --print-ssdt needs --base and --size (EINVAL); see "
          "'nvgrace-vfio-user-server --help'\n");
  }
  program bad_name({"--print-ssdt", "--base", "0", "--size", "1G", "--acpi-name", "9GPU"});
  CHECK(WEXITSTATUS(bad_name.wait()) == 2);
}

TEST_CASE("tool: --physical serves the GPU's PCI function before the variant driver") {
  socket_path sock;
  program server({"--socket", sock.path, "--physical", "--generation", "blackwell", "--bar2-size", "64K", "--bar4-size",
                  "0", "--ready", "never"});
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
  CHECK(config(0) == 0x2941'10DEu);            // GB200 by default for Blackwell
  CHECK((config(8) >> 8) == 0x030200u);        // 3D controller
  CHECK((config(0x10A - 2) >> 16 & 1) == 1u);  // DVSEC word +0xA bit 0: no MIG hardware bug
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
  program server(
      {"--socket", sock.path, "--physical", "--generation", "blackwell", "--no-dvsec", "--cxl", "--ready", "60000"});
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

// ---- deadlines, --no-share-fds, --no-flr, the smallest size -----------------------

namespace {

/// The milliseconds since `start`.
long long since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
}

/// What the server logged after its "listening on" line.
std::string after_listening(const std::string& log) {
  const auto first = log.find('\n');
  return first == std::string::npos ? std::string() : log.substr(first + 1);
}

/// The 32-byte GET_REGION_INFO reply of region `index` (argsz `argsz`), and the fds that came with it.
reply region_info(raw_peer& peer, std::uint32_t index, std::uint32_t argsz) {
  auto r = peer.call(make_message(0x51, command::device_get_region_info, region_info_req(argsz, index)));
  REQUIRE(r.h.flags == message_flags::type_reply);
  REQUIRE(r.payload.size() >= 32);
  return r;
}

/// docs/vfio-user-server.md of the source tree this test was configured from (not found
/// through __FILE__: a compiler cache may make that path relative).
std::string server_doc() {
  const std::string path = NVGRACE_SOURCE_DIR;
  std::FILE* f = std::fopen((path + "/docs/vfio-user-server.md").c_str(), "r");
  REQUIRE(f != nullptr);
  std::string text;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0;) text.append(buffer, n);
  std::fclose(f);
  return text;
}

}  // namespace

TEST_CASE("tool: --handshake-timeout drops a client that says nothing, --message-timeout one that stops mid-message") {
  socket_path sock;
  program server({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell", "--handshake-timeout", "300",
                  "--message-timeout", "300"});
  REQUIRE(wait_for_socket(sock.path));
  const auto pid = std::to_string(::getpid());
  {
    auto silent = raw_peer::connect(sock.path);
    const auto start = std::chrono::steady_clock::now();
    CHECK(silent.closed(5000));
    const auto waited = since(start);
    CHECK(waited >= 290);  // the deadline, not at once (a little slack for the clocks' rounding)
    CHECK(waited < 3000);
    REQUIRE(wait_for_log(server, "connection 1 closed after"));
    CHECK(after_listening(server.log()) == "nvgrace-vfio-user-server: connection 1 from pid " + pid +
                                               "\n"
                                               "nvgrace-vfio-user-server: connection 1: no VERSION within "
                                               "handshake_timeout_ms, closing\n"
                                               "nvgrace-vfio-user-server: connection 1 closed after 0 messages\n");
  }
  {
    // Negotiated, then half a header: the message deadline, not the handshake's.
    auto peer = raw_peer::connect(sock.path);
    peer.negotiate();
    const auto head = make_message(1, command::device_get_info, device_info_req());
    peer.send(std::span<const std::byte>(head).first(8));
    CHECK(peer.closed(5000));
    REQUIRE(wait_for_log(server, "connection 2 closed after"));
    const auto log = server.log();
    CHECK(log.find("nvgrace-vfio-user-server: connection 2: a message was not complete within message_timeout_ms, "
                   "closing\nnvgrace-vfio-user-server: connection 2 closed after 1 messages: VERSION 1\n") !=
          std::string::npos);
  }
  // The next client is served: a deadline drops a connection, not the server.
  check_serves(sock.path);
  server.signal(SIGTERM);
  CHECK(exit_status(server) == 0);
}

TEST_CASE("tool: --idle-timeout drops a negotiated client that goes silent; by default it is off") {
  socket_path sock;
  {
    program server({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell", "--idle-timeout", "300"});
    REQUIRE(wait_for_socket(sock.path));
    auto peer = raw_peer::connect(sock.path);
    peer.negotiate();
    const auto start = std::chrono::steady_clock::now();
    CHECK(peer.closed(5000));
    CHECK(since(start) >= 290);
    REQUIRE(wait_for_log(server, "connection 1 closed after"));
    CHECK(after_listening(server.log())
              .find("nvgrace-vfio-user-server: connection 1: no message within "
                    "idle_timeout_ms, closing\n"
                    "nvgrace-vfio-user-server: connection 1 closed after 1 messages: "
                    "VERSION 1\n") != std::string::npos);
    server.signal(SIGTERM);
    CHECK(exit_status(server) == 0);
  }
  {
    // The default: a negotiated client silent for longer than the other (shortened) deadlines stays
    // connected, and --handshake-timeout 0 lets one that never negotiates stay too.
    program server({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell", "--message-timeout", "200",
                    "--handshake-timeout", "0"});
    REQUIRE(wait_for_socket(sock.path));
    auto quiet = raw_peer::connect(sock.path);
    quiet.negotiate();
    CHECK_FALSE(quiet.closed(1200));
    auto r = quiet.call(make_message(2, command::device_get_info, device_info_req()));
    CHECK(r.h.flags == message_flags::type_reply);
    quiet.shutdown_write();
    CHECK(quiet.closed(5000));
    auto mute = raw_peer::connect(sock.path);
    CHECK_FALSE(mute.closed(1200));
    CHECK(server.log().find("within") == std::string::npos);
    server.signal(SIGTERM);
    CHECK(exit_status(server) == 0);
  }
}

TEST_CASE("tool: --send-timeout drops a client that stops reading its replies") {
  socket_path sock;
  program server({"--socket-path", sock.path, "--size", "2M", "--generation", "blackwell", "--send-timeout", "300"});
  REQUIRE(wait_for_socket(sock.path));
  auto peer = raw_peer::connect(sock.path);
  peer.negotiate();
  // A 1 MiB read whose reply the socket cannot hold, and nobody reading it.
  peer.send(make_message(3, command::region_read, read_req(0, 4, 1u << 20)));
  CHECK(wait_for_log(server,
                     "nvgrace-vfio-user-server: connection 1: the peer did not take a reply within "
                     "send_timeout_ms, closing\n"));
  CHECK(wait_for_log(server, "connection 1 closed after 2 messages"));
  server.signal(SIGTERM);
  CHECK(exit_status(server) == 0);
}

TEST_CASE("tool: the default deadlines are what --help and docs/vfio-user-server.md say (-v logs those in force)") {
  socket_path sock;
  const std::string defaults = "deadlines: handshake 10000 ms, message 10000 ms, idle off, send 10000 ms";
  {
    program server({"-v", "--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
    REQUIRE(wait_for_log(server, "deadlines: "));
    CHECK(server.log().find("nvgrace-vfio-user-server: " + defaults + "\n") != std::string::npos);
    server.signal(SIGTERM);
    CHECK(exit_status(server) == 0);
  }
  {
    program server({"-v", "--socket-path", sock.path, "--size", "1M", "--generation", "blackwell",
                    "--handshake-timeout", "0", "--message-timeout", "5", "--idle-timeout", "4294967295",
                    "--send-timeout", "7", "--no-share-fds"});
    REQUIRE(wait_for_log(server, "deadlines: "));
    CHECK(server.log().find("nvgrace-vfio-user-server: deadlines: handshake off, message 5 ms, idle 4294967295 ms, "
                            "send 7 ms; region fds not shared\n") != std::string::npos);
    server.signal(SIGTERM);
    CHECK(exit_status(server) == 0);
  }
  // Without -v the line is not logged.
  {
    program server({"--socket-path", sock.path, "--size", "1M", "--generation", "blackwell"});
    REQUIRE(wait_for_log(server, "listening on"));
    server.signal(SIGTERM);
    CHECK(exit_status(server) == 0);
    CHECK(server.log().find("deadlines") == std::string::npos);
  }
  program help({"--help"});
  CHECK(exit_status(help) == 0);
  const auto text = help.out();
  CHECK(text.find("  --handshake-timeout MS  from connecting to a successful VERSION; default\n"
                  "                          10000 ") != std::string::npos);
  CHECK(text.find("  --message-timeout MS    from a message's first byte to its last; default\n"
                  "                          10000\n") != std::string::npos);
  CHECK(text.find("  --idle-timeout MS       between two messages once negotiated; default 0:\n"
                  "                          off,") != std::string::npos);
  CHECK(text.find("  --send-timeout MS       for the socket to take one reply; default 10000\n") != std::string::npos);
  CHECK(server_doc().find("`" + defaults + "`") != std::string::npos);

  // Not a number of milliseconds: usage.
  for (const auto& bad : {"-1", "4294967296", "1s", ""}) {
    CAPTURE(bad);
    program p({"--socket-path", sock.path, "--idle-timeout", bad});
    CHECK(exit_status(p) == 2);
    CHECK(p.log() ==
          "nvgrace-vfio-user-server: error: --idle-timeout must be a number of milliseconds (0 for none, "
          "at most 4294967295), not '" +
              std::string(bad) + "' (EINVAL); see 'nvgrace-vfio-user-server --help'\n");
  }
}

TEST_CASE("tool: --no-share-fds hands no region fd to a client: no MMAP flag, every access trapped") {
  socket_path sock;
  const std::string file = sock.path + ".mem";
  for (const bool share : {true, false}) {
    CAPTURE(share);
    std::vector<std::string> args{"--socket-path", sock.path,   "--size",        "1M",
                                  "--generation",  "blackwell", "--memory-file", file};
    if (!share) args.push_back("--no-share-fds");
    program server(args);
    REQUIRE(wait_for_socket(sock.path));
    {
      auto peer = raw_peer::connect(sock.path);
      peer.negotiate();
      // argsz 32: the bare struct, argsz = 64 for the whole answer (it has a capability), no fd.
      // Region 4 is 1 MiB, read and write, and mappable (MMAP) only when shared; offset 0 in the file.
      const std::uint32_t flags =
          vfio::region_flags::read | vfio::region_flags::write | (share ? vfio::region_flags::mmap : 0u);
      const auto bare = region_info(peer, 4, 32);
      CHECK(bare.payload == bytes_builder().u32(64).u32(flags).u32(4).u32(0).u64(1 * MiB).u64(0).bytes());
      CHECK(bare.fds.empty());
      // With room for the whole answer: CAPS and the sparse-mmap capability (one area, the whole
      // MiB); the fd comes with it only when shared.
      const auto whole = region_info(peer, 4, 512);
      CHECK(whole.payload == bytes_builder()
                                 .u32(64)
                                 .u32(flags | vfio::region_flags::caps)
                                 .u32(4)
                                 .u32(32)
                                 .u64(1 * MiB)
                                 .u64(0)
                                 .u16(1)  // VFIO_REGION_INFO_CAP_SPARSE_MMAP
                                 .u16(1)
                                 .u32(0)
                                 .u32(1)
                                 .u32(0)
                                 .u64(0)
                                 .u64(1 * MiB)
                                 .bytes());
      CHECK(whole.fds.size() == (share ? 1u : 0u));
      // Config space (region 7) is never mappable.
      CHECK(region_info(peer, 7, 512).fds.empty());
    }
    // Reads and writes still work; without fds they are messages, as the disconnect line shows.
    {
      auto c = client::connect(sock.path.c_str());
      REQUIRE(c);
      const auto data = pattern(256, share ? 5u : 6u);
      CHECK(c->pwrite(data, vfio::file_offset(4, 4096)).value() == 256);
      std::vector<std::byte> back(256);
      CHECK(c->pread(back, vfio::file_offset(4, 4096)).value() == 256);
      CHECK(back == data);
      c->close();
    }
    REQUIRE(wait_for_log(server, "connection 2 closed after"));
    const auto log = server.log();
    const auto closed = log.find("connection 2 closed after");
    const auto line = log.substr(closed, log.find('\n', closed) - closed);
    if (!share) CHECK(line.find("REGION_READ 1 (region 4: 1), REGION_WRITE 1 (region 4: 1)") != std::string::npos);
    if (share) {
      // What --no-share-fds defends against: the client truncates the memory file through its
      // fd. The server survives; an access past the new end is EIO, and logged.
      auto peer = raw_peer::connect(sock.path);
      peer.negotiate();
      auto whole = region_info(peer, 4, 512);
      REQUIRE(whole.fds.size() == 1);
      REQUIRE(::ftruncate(whole.fds[0].get(), 0) == 0);
      auto r = peer.call(make_message(0x52, command::region_read, read_req(4096, 4, 4)));
      CHECK(r.h.flags == (message_flags::type_reply | message_flags::error));
      CHECK(r.h.error == static_cast<std::uint32_t>(EIO));
      CHECK(
          wait_for_log(server, "connection 3: REGION_READ (id 82) touched GPU memory past the end of its file: EIO\n"));
    }
    server.signal(SIGTERM);
    CHECK(exit_status(server) == 0);
  }
  ::unlink(file.c_str());
}

TEST_CASE("tool: --no-flr: no FLR in DEVCAP, no RESET in DEVICE_GET_INFO, DEVICE_RESET refused (EINVAL)") {
  socket_path sock;
  struct variant {
    std::vector<std::string> args;
    bool flr;
  };
  const variant variants[] = {
      {{"--size", "1M", "--generation", "blackwell"}, true},
      {{"--size", "1M", "--generation", "blackwell", "--no-flr"}, false},
      {{"--physical", "--generation", "blackwell"}, true},
      {{"--physical", "--generation", "blackwell", "--no-flr"}, false},
  };
  for (const auto& v : variants) {
    CAPTURE(v.args.size());
    CAPTURE(v.args.back());
    std::vector<std::string> args{"--socket-path", sock.path};
    args.insert(args.end(), v.args.begin(), v.args.end());
    program server(args);
    REQUIRE(wait_for_socket(sock.path));
    auto peer = raw_peer::connect(sock.path);
    peer.negotiate();
    const auto config32 = [&](std::uint64_t offset) {
      auto r = peer.call(make_message(0x20, command::region_read, read_req(offset, 7, 4)));
      REQUIRE(r.h.flags == message_flags::type_reply);
      REQUIRE(r.payload.size() == 16 + 4);
      return load_le<std::uint32_t>(r.payload, 16);
    };
    // The capability list leads to the PCI Express capability (id 0x10); DEVCAP is at +4.
    std::uint32_t at = config32(0x34) & 0xFC, express = 0;
    for (int hops = 0; at != 0 && hops < 48; ++hops) {
      const auto cap = config32(at);
      if ((cap & 0xFF) == 0x10) {
        express = at;
        break;
      }
      at = (cap >> 8) & 0xFC;
    }
    REQUIRE(express == 0x60);
    CHECK(config32(express + 4) == (v.flr ? 0x1000'0001u : 0x0000'0001u));  // bit 28: FLR; 256-byte payload
    // DEVICE_GET_INFO: argsz 16, flags PCI (| RESET), 9 regions, 5 IRQ indices.
    auto info = peer.call(make_message(0x21, command::device_get_info, device_info_req()));
    CHECK(info.h.flags == message_flags::type_reply);
    CHECK(info.payload == bytes_builder().u32(16).u32(v.flr ? 3u : 2u).u32(9).u32(5).bytes());
    auto reset = peer.call(make_message(0x22, command::device_reset));
    if (v.flr) {
      CHECK(reset.h.flags == message_flags::type_reply);
      CHECK(reset.h.error == 0u);
    } else {
      CHECK(reset.h.flags == (message_flags::type_reply | message_flags::error));
      CHECK(reset.h.error == static_cast<std::uint32_t>(EINVAL));
      CHECK(wait_for_log(server, "connection 1: DEVICE_RESET (id 34) refused: EINVAL\n"));
    }
    CHECK(reset.payload.empty());
    server.signal(SIGTERM);
    CHECK(exit_status(server) == 0);
  }
}

TEST_CASE("tool: less than one 4 KiB page of GPU memory is refused (exit 2, EINVAL) and creates no memory file") {
  socket_path sock;
  const std::string file = sock.path + ".mem";
  struct tiny {
    std::string size, shown;
  };
  for (const tiny& t : {tiny{"1", "1 B"}, tiny{"4095", "4095 B"}, tiny{"0xFFF", "4095 B"}}) {
    const std::string& size = t.size;
    const std::string& shown = t.shown;
    CAPTURE(size);
    program p({"--socket-path", sock.path, "--size", size, "--generation", "blackwell", "--memory-file", file});
    CHECK(exit_status(p) == 2);
    CHECK(p.log() == "nvgrace-vfio-user-server: error: --size " + shown +
                         " on Blackwell gives region 4 less than one 4 KiB page of memory (at least 4K) (EINVAL); "
                         "see 'nvgrace-vfio-user-server --help'\n");
    CHECK_FALSE(exists(file));
    CHECK_FALSE(exists(sock.path));
  }
  // One page is enough: the limit is exactly 4 KiB.
  program page({"--socket-path", sock.path, "--size", "4K", "--generation", "blackwell", "--memory-file", file});
  REQUIRE(wait_for_log(page, "listening on " + sock.path + " (blackwell, 4 KiB of GPU memory in '" + file + "')"));
  page.signal(SIGTERM);
  CHECK(exit_status(page) == 0);
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK(st.st_size == 4096);
  ::unlink(file.c_str());
}
