#pragma once
// Test helpers: a raw vfio-user peer that sends hand-built messages (with
// real fds) and reads replies byte-exactly, and a server running on a thread.

#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/backend/vfio_user/transport.hpp>
#include <nvgrace/core/bytes.hpp>

#include <doctest/doctest.h>
#include <gsl/assert>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace nvgrace::vfio_user::testing {

/// Little-endian message builder.
class bytes_builder {
public:
  bytes_builder& u8(std::uint8_t v) { return put(v, 1); }
  bytes_builder& u16(std::uint16_t v) { return put(v, 2); }
  bytes_builder& u32(std::uint32_t v) { return put(v, 4); }
  bytes_builder& u64(std::uint64_t v) { return put(v, 8); }
  bytes_builder& raw(std::span<const std::byte> b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
    return *this;
  }
  bytes_builder& text(std::string_view s, bool nul = true) {
    for (char c : s) bytes_.push_back(static_cast<std::byte>(c));
    if (nul) bytes_.push_back(std::byte{0});
    return *this;
  }
  bytes_builder& fill(std::size_t n, std::byte value) {
    bytes_.insert(bytes_.end(), n, value);
    return *this;
  }
  [[nodiscard]] const std::vector<std::byte>& bytes() const { return bytes_; }

private:
  bytes_builder& put(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xFF));
    return *this;
  }
  std::vector<std::byte> bytes_;
};

/// `size` value of make_message meaning "16 + the payload's size".
inline constexpr std::uint32_t computed_size = 0xFFFFFFFF;

/// A whole message: header (size computed unless `size` overrides it) + payload.
inline std::vector<std::byte> make_message(std::uint16_t id, std::uint16_t cmd, std::span<const std::byte> payload,
                                           std::uint32_t flags = message_flags::type_command,
                                           std::uint32_t size = computed_size, std::uint32_t error = 0) {
  bytes_builder b;
  const auto real_size = static_cast<std::uint32_t>(header_size + payload.size());
  b.u16(id).u16(cmd).u32(size == computed_size ? real_size : size).u32(flags).u32(error);
  b.raw(payload);
  return b.bytes();
}
inline std::vector<std::byte> make_message(std::uint16_t id, command cmd, std::span<const std::byte> payload = {},
                                           std::uint32_t flags = message_flags::type_command) {
  return make_message(id, static_cast<std::uint16_t>(cmd), payload, flags);
}

/// VERSION payload: major, minor, optional JSON (NUL-terminated when given).
inline std::vector<std::byte> version_payload(std::uint16_t major, std::uint16_t minor,
                                              std::optional<std::string_view> json = std::nullopt) {
  bytes_builder b;
  b.u16(major).u16(minor);
  if (json) b.text(*json);
  return b.bytes();
}

struct reply {
  header h{};
  std::vector<std::byte> payload;
  std::vector<unique_fd> fds;
};

/// One recvmsg(2) into `out` with room for 8 fds, each handed to `take` (owned):
/// its count, 0 at end of stream, or -1 with errno.
template <class Take>
ssize_t receive_some(int socket, std::span<std::byte> out, Take&& take) {
  iovec iov{out.data(), out.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  if (n > 0) detail::take_received_fds(msg, [&take](std::size_t, unique_fd fd) { take(std::move(fd)); });
  return n;
}

/// The client end of a connection, speaking raw bytes.
class raw_peer {
public:
  explicit raw_peer(int fd) : fd_(fd) {}
  static raw_peer connect(const std::string& path) {
    auto fd = connect_unix(path.c_str());
    REQUIRE(fd);
    return raw_peer(fd->release());
  }

  [[nodiscard]] int fd() const { return fd_.get(); }

  void send(std::span<const std::byte> bytes, std::initializer_list<int> fds = {}) {
    const iovec part{const_cast<std::byte*>(bytes.data()), bytes.size()};
    const std::vector<int> list(fds);
    REQUIRE(send_message(fd_.get(), std::span<const iovec>(&part, 1), list));
  }

  /// True when the server closed the connection (EOF) within `ms`; ECONNRESET
  /// too: a UNIX socket closed with bytes of ours still unread says so.
  bool closed(int ms = 2000) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return false;
    char c;
    const ssize_t n = ::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  /// True when nothing arrives within `ms`.
  bool silent(int ms = 200) {
    pollfd p{fd_.get(), POLLIN, 0};
    return ::poll(&p, 1, ms) == 0;
  }

  /// Read exactly one reply (fails the test on timeout or EOF).
  reply receive(int ms = 5000) {
    reply r;
    std::array<std::byte, header_size> head{};
    read_exact(head, &r.fds, ms);
    r.h = load_header(head);
    REQUIRE(r.h.size >= header_size);
    r.payload.resize(r.h.size - header_size);
    read_exact(r.payload, &r.fds, ms);
    return r;
  }

  /// Send and receive one reply.
  reply call(std::span<const std::byte> bytes, std::initializer_list<int> fds = {}) {
    send(bytes, fds);
    return receive();
  }

  /// VERSION with no JSON; checks success.
  void negotiate() {
    auto r = call(make_message(0x7777, command::version, version_payload(0, 0)));
    REQUIRE(r.h.flags == message_flags::type_reply);
  }

  void shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }

private:
  void read_exact(std::span<std::byte> out, std::vector<unique_fd>* fds, int ms) {
    std::size_t got = 0;
    while (got < out.size()) {
      pollfd p{fd_.get(), POLLIN, 0};
      REQUIRE(::poll(&p, 1, ms) == 1);
      const ssize_t n =
          receive_some(fd_.get(), out.subspan(got), [fds](unique_fd fd) { fds->push_back(std::move(fd)); });
      REQUIRE(n > 0);
      got += static_cast<std::size_t>(n);
    }
  }

  unique_fd fd_;
};

/// A temporary path (a socket's by default), removed with its directory on destruction.
struct socket_path {
  std::string dir, path;
  /// `dir`/`name` in a fresh temporary directory (for a socket, or a file).
  explicit socket_path(const char* name = "sock") {
    char d[] = "/tmp/nvgrace-vu-XXXXXX";
    Expects(::mkdtemp(d) != nullptr);
    dir = d;
    path = dir + "/" + name;
  }
  socket_path(const socket_path&) = delete;
  socket_path& operator=(const socket_path&) = delete;
  ~socket_path() {
    ::unlink(path.c_str());
    ::rmdir(dir.c_str());
  }
};

/// A server on its own thread: `run()` on a listening socket, stopped and joined on destruction.
template <class Device>
class threaded_server {
public:
  threaded_server(Device& device, server_options options = {}) : server_(device, options) {
    REQUIRE(server_.listen(path_.path.c_str()));
    thread_ = std::thread([this] { result_ = server_.run(); });
  }
  ~threaded_server() {
    server_.request_stop();
    thread_.join();
  }
  [[nodiscard]] const std::string& path() const { return path_.path; }
  raw_peer connect() { return raw_peer::connect(path_.path); }
  server<Device>& get() { return server_; }

private:
  socket_path path_;
  server<Device> server_;
  std::thread thread_;
  status result_;
};

/// True when `fd` is the write end of a pipe whose other copies are all closed:
/// poll on the read end reports POLLHUP.
inline bool pipe_write_end_closed(int read_end, int ms = 2000) {
  pollfd p{read_end, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1 && (p.revents & POLLHUP) != 0;
}

}  // namespace nvgrace::vfio_user::testing
