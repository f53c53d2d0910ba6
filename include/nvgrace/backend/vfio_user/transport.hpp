#pragma once
/// \file
/// The vfio-user transport: UNIX stream sockets, file descriptors in
/// SCM_RIGHTS, and `message_stream`, the framing decoder that turns the bytes
/// (and fds) of buffered `recvmsg` calls into whole messages.
///
/// Fd placement rule: a sender attaches fds to the first byte of the message
/// they belong to, in one sendmsg. Linux ends a stream recvmsg right after the
/// data that carried fds, so the fds of one recvmsg belong to the message that
/// holds the *last* byte of that recvmsg's data, and that message must start
/// inside the same recvmsg. Fds that arrive anywhere else are "misplaced": the
/// message that holds them is refused (EINVAL) and the fds are closed.

#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/contracts.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/detail/minmax.hpp>
#include <nvgrace/posix/clock.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/unique_fd.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace nvgrace::vfio_user {

/// The owner of a descriptor (sockets, region fds, eventfds).
using unique_fd = posix::unique_fd;

/// Most fds one message may carry (the SCM_MAX_FD of Linux is 253; the
/// protocol's peers ask for at most 16).
inline constexpr std::size_t max_fds_per_message = 64;
/// Most received fds one connection may hold while messages are still being
/// framed. A well-behaved peer needs at most two messages' worth: one receive
/// can end the pending message and start the next, whose fds it carries.
inline constexpr std::size_t max_fds_while_framing = 2 * max_fds_per_message;
/// The listen(2) backlog of `listen_unix`: room for many clients to queue
/// while one is served (the kernel caps it at net.core.somaxconn).
inline constexpr int default_listen_backlog = 128;

/// The deadline of a send that must not wait forever: CLOCK_MONOTONIC
/// milliseconds (posix/clock.hpp). nullopt: wait as long as the socket does.
using send_deadline = std::optional<std::uint64_t>;

namespace detail {

/// After a send that returned EAGAIN or moved only part of the bytes: wait
/// until the socket can take more, or ETIMEDOUT once `deadline` has passed.
[[nodiscard]] inline status wait_writable(int socket, std::uint64_t deadline) noexcept {
  while (true) {
    const std::uint64_t now = posix::monotonic_now_ms();
    if (now >= deadline) return errc::timed_out;
    pollfd p{socket, POLLOUT, 0};
    const int n = ::poll(&p, 1, static_cast<int>(nvgrace::detail::min<std::uint64_t>(deadline - now, 1u << 30)));
    if (n > 0) return {};
    if (n < 0 && errno != EINTR) return posix::last_error();
  }
}

/// One send(2)/sendmsg(2) result: how to go on. EINTR is retried; with a
/// deadline every call is MSG_DONTWAIT and EAGAIN waits for POLLOUT.
[[nodiscard]] inline result<std::size_t> sent_or_wait(ssize_t sent, int socket,
                                                      const send_deadline& deadline) noexcept {
  if (sent >= 0) return static_cast<std::size_t>(sent);
  if (errno == EINTR) return std::size_t{0};
  if (deadline && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    if (auto s = wait_writable(socket, *deadline); !s) return s.error();
    return std::size_t{0};
  }
  return posix::last_error();
}

}  // namespace detail

/// Send `bytes` with send(2) (no msghdr: the cheapest call for the common
/// case); short sends are completed, EINTR retried, SIGPIPE never raised.
/// With a `deadline`, no call blocks: ETIMEDOUT when the bytes are not all
/// taken by then (the stream is then cut inside a message: close it).
[[nodiscard]] inline status send_bytes(int socket, std::span<const std::byte> bytes,
                                       const send_deadline& deadline = std::nullopt) noexcept {
  const int flags = MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0);
  while (!bytes.empty()) {
    auto done = detail::sent_or_wait(::send(socket, bytes.data(), bytes.size(), flags), socket, deadline);
    if (!done) return done.error();
    bytes = bytes.subspan(*done);
    if (deadline && !bytes.empty() && *done > 0)
      if (auto s = detail::wait_writable(socket, *deadline); !s) return s;
  }
  return {};
}

/// Send `parts` as one message with `fds` (may be empty) attached to its first
/// byte. A short send is completed without fds; EINTR is retried. SIGPIPE is
/// never raised (EPIPE is returned instead). `deadline` as for send_bytes.
[[nodiscard]] inline status send_message(int socket, std::span<const iovec> parts, std::span<const int> fds = {},
                                         const send_deadline& deadline = std::nullopt) noexcept {
  NVGRACE_EXPECTS(parts.size() <= 8 && fds.size() <= max_fds_per_message);
  if (fds.empty() && parts.size() == 1)
    return send_bytes(socket,
                      std::span<const std::byte>(static_cast<const std::byte*>(parts[0].iov_base), parts[0].iov_len),
                      deadline);
  iovec iov[8];
  std::size_t count = 0;
  for (const auto& p : parts)
    if (p.iov_len > 0) iov[count++] = p;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  if (!fds.empty()) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const int flags = MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0);
  std::size_t first = 0;
  while (first < count) {
    msg.msg_iov = iov + first;
    msg.msg_iovlen = count - first;
    auto sent = detail::sent_or_wait(::sendmsg(socket, &msg, flags), socket, deadline);
    if (!sent) return sent.error();
    if (*sent == 0) continue;  // interrupted or waited: nothing went, try again (fds included)
    // The fds went with the first byte; never send them twice.
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    auto done = *sent;
    while (first < count && done >= iov[first].iov_len) done -= iov[first++].iov_len;
    if (first < count) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + done;
      iov[first].iov_len -= done;
      if (deadline)
        if (auto s = detail::wait_writable(socket, *deadline); !s) return s;
    }
  }
  return {};
}

namespace detail {

/// The address of `path` and a fresh UNIX stream socket (close-on-exec) to
/// bind or connect to it. EINVAL for an empty path, ENAMETOOLONG for one that
/// does not fit sockaddr_un.
[[nodiscard]] inline result<std::pair<unique_fd, sockaddr_un>> unix_socket_for(const char* path) noexcept {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t length = std::strlen(path);
  if (length == 0) return errc::invalid_argument;
  if (length >= sizeof addr.sun_path) return errc::filename_too_long;
  std::memcpy(addr.sun_path, path, length);
  unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return posix::last_error();
  return std::pair<unique_fd, sockaddr_un>(std::move(fd), addr);
}

/// Own every fd that arrived in the SCM_RIGHTS messages of a received `msg`,
/// in order: `take(position, fd)` gets each (an fd it does not keep is
/// closed). Returns how many arrived.
template <class Take>
std::size_t take_received_fds(msghdr& msg, Take&& take) {
  std::size_t count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      take(count++, unique_fd(fd));
    }
  }
  return count;
}

}  // namespace detail

/// A listening UNIX stream socket bound at `path` (close-on-exec), with room
/// for `backlog` pending connections. An existing socket file at `path` is
/// not removed: EADDRINUSE. ENAMETOOLONG for a path that does not fit
/// sockaddr_un.
[[nodiscard]] inline result<unique_fd> listen_unix(const char* path, int backlog = default_listen_backlog) noexcept {
  auto socket = detail::unix_socket_for(path);
  if (!socket) return socket.error();
  auto& [fd, addr] = *socket;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return posix::last_error();
  if (::listen(fd.get(), backlog) != 0) return posix::last_error();
  return std::move(fd);
}

/// A UNIX stream socket connected to `path` (close-on-exec).
[[nodiscard]] inline result<unique_fd> connect_unix(const char* path) noexcept {
  auto socket = detail::unix_socket_for(path);
  if (!socket) return socket.error();
  auto& [fd, addr] = *socket;
  while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINTR) return posix::last_error();
  }
  return std::move(fd);
}

/// One complete message taken from a `message_stream`.
struct message {
  vfio_user::header header;
  /// The whole message (header included); valid until the next `next()`/`receive_space()`.
  std::span<const std::byte> bytes;
  /// The fds that arrived with it (owned by the message).
  std::vector<unique_fd> fds;
  /// Fds arrived somewhere other than with the message's first recvmsg, or
  /// more arrived than fit (MSG_CTRUNC): refuse the message.
  bool fds_misplaced = false;

  [[nodiscard]] std::span<const std::byte> payload() const noexcept { return bytes.subspan(header_size); }
};

/// The framing decoder of one connection: a fixed buffer the receiver reads
/// into (as much as the socket has, so small messages arrive whole and
/// pipelined ones several per call), split into messages by the header's size.
/// Allocates its buffer once; receiving fd-less messages allocates nothing.
/// Received fds are held until their message is complete, never more than
/// the fd budget of the stream (`max_fds_while_framing` by default): a peer
/// that sends more while messages are being framed (fds spread over the
/// receives of one long message, say) gets them closed at once and the stream
/// stops (`state::fd_budget_exceeded`).
class message_stream {
public:
  /// What `next()` found.
  enum class state : std::uint8_t {
    need_more,           ///< no complete message buffered
    ready,               ///< `message` holds one
    framing_error,       ///< the header's size is < 16 or > the limit: the stream cannot be trusted further
    fd_budget_exceeded,  ///< more fds arrived than the budget allows while framing: the stream stops
  };

  /// `max_message_size`: the largest message accepted (header included, ≥ 16);
  /// `fd_budget`: the most received fds held at once (≥ 1).
  explicit message_stream(std::size_t max_message_size, std::size_t fd_budget = max_fds_while_framing)
      : limit_(max_message_size), fd_budget_(fd_budget), buffer_(max_message_size) {
    NVGRACE_EXPECTS(max_message_size >= header_size && fd_budget >= 1);
  }

  /// Where the next receive may write (never empty while no message is ready
  /// or pending framing error: the buffer holds a whole message of the limit).
  [[nodiscard]] std::span<std::byte> receive_space() noexcept {
    compact();
    return std::span<std::byte>(buffer_).subspan(tail_);
  }

  /// Record that `count` bytes were written at the start of `receive_space()`,
  /// with `fds` (taken) arriving with them; `truncated` when MSG_CTRUNC dropped
  /// some. Fds over the budget are closed here.
  void commit(std::size_t count, std::vector<unique_fd> fds = {}, bool truncated = false) {
    NVGRACE_EXPECTS(count <= buffer_.size() - tail_);
    const std::uint64_t start = stream_position(tail_);
    tail_ += count;
    if ((fds.empty() && !truncated) || count == 0) return;
    // Every group holds at least one fd or marks a truncation; bound both.
    if (held_fds_ + fds.size() > fd_budget_ || groups_.size() - first_group_ >= fd_budget_) {
      over_budget_ = true;  // `fds` is closed on return
      return;
    }
    held_fds_ += fds.size();
    groups_.push_back({start, start + count, std::move(fds), truncated});
  }

  /// The next complete message, if any.
  state next(message& out) {
    const std::size_t available = tail_ - head_;
    if (over_budget_) {
      out.header =
          available >= header_size ? load_header(std::span<const std::byte>(buffer_).subspan(head_)) : header{};
      out.bytes = {};
      return state::fd_budget_exceeded;
    }
    if (available < header_size) return state::need_more;
    const auto bytes = std::span<const std::byte>(buffer_).subspan(head_);
    const header h = load_header(bytes);
    out.header = h;
    if (h.size < header_size || h.size > limit_) {
      out.bytes = bytes.first(header_size);
      return state::framing_error;
    }
    if (available < h.size) return state::need_more;
    out.bytes = bytes.first(h.size);
    out.fds.clear();
    out.fds_misplaced = false;
    const std::uint64_t begin = stream_position(head_);
    const std::uint64_t end = begin + h.size;
    // Hand over the fds of every receive whose last byte lies in this message.
    while (first_group_ < groups_.size() && groups_[first_group_].end - 1 < end) {
      auto& g = groups_[first_group_++];
      if (g.start > begin || g.end - 1 < begin || g.truncated) out.fds_misplaced = true;
      held_fds_ -= g.fds.size();
      for (auto& fd : g.fds) out.fds.push_back(std::move(fd));
    }
    // A queue in a vector: drop the handed-over groups once they are the
    // majority (at most fd_budget groups are ever pending).
    if (first_group_ == groups_.size()) {
      groups_.clear();
      first_group_ = 0;
    } else if (first_group_ > groups_.size() / 2) {
      groups_.erase(groups_.begin(), groups_.begin() + static_cast<std::ptrdiff_t>(first_group_));
      first_group_ = 0;
    }
    head_ += h.size;
    return state::ready;
  }

  /// Bytes buffered but not yet returned as messages (a partial message at end of stream).
  [[nodiscard]] std::size_t pending() const noexcept { return tail_ - head_; }
  /// The header of the pending partial message, if 16 bytes of it arrived.
  [[nodiscard]] bool pending_header(header& out) const noexcept {
    if (tail_ - head_ < header_size) return false;
    out = load_header(std::span<const std::byte>(buffer_).subspan(head_));
    return true;
  }
  /// Received fds held for messages not yet complete.
  [[nodiscard]] std::size_t held_fds() const noexcept { return held_fds_; }

  /// Forget everything (a new connection).
  void clear() noexcept {
    head_ = tail_ = 0;
    consumed_ = 0;
    groups_.clear();
    first_group_ = 0;
    held_fds_ = 0;
    over_budget_ = false;
  }

  [[nodiscard]] std::size_t limit() const noexcept { return limit_; }
  [[nodiscard]] std::size_t fd_budget() const noexcept { return fd_budget_; }

private:
  struct fd_group {
    std::uint64_t start;  // stream position of the receive's first byte
    std::uint64_t end;    // one past its last byte
    std::vector<unique_fd> fds;
    bool truncated;
  };

  [[nodiscard]] std::uint64_t stream_position(std::size_t buffer_offset) const noexcept {
    return consumed_ + buffer_offset;
  }

  /// Move a partial message to the front when it could not otherwise complete.
  void compact() noexcept {
    if (head_ == tail_) {
      consumed_ += head_;
      head_ = tail_ = 0;
      return;
    }
    std::size_t needed = header_size;
    if (tail_ - head_ >= header_size) {
      const header h = load_header(std::span<const std::byte>(buffer_).subspan(head_));
      if (h.size >= header_size && h.size <= limit_) needed = h.size;
    }
    if (buffer_.size() - head_ >= needed && tail_ < buffer_.size()) return;
    std::memmove(buffer_.data(), buffer_.data() + head_, tail_ - head_);
    consumed_ += head_;
    tail_ -= head_;
    head_ = 0;
  }

  std::size_t limit_;
  std::size_t fd_budget_;
  std::vector<std::byte> buffer_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  std::uint64_t consumed_ = 0;    // stream position of buffer_[0]
  std::vector<fd_group> groups_;  // pending from first_group_ on, oldest first
  std::size_t first_group_ = 0;
  std::size_t held_fds_ = 0;
  bool over_budget_ = false;
};

/// One buffered receive on `socket` into `stream`: as many bytes as are
/// available (blocking until at least one), plus any fds. Returns the byte
/// count; 0 is end of stream. EINTR is returned to the caller (so a stop
/// request can be seen).
[[nodiscard]] inline result<std::size_t> receive_into(int socket, message_stream& stream) {
  const auto space = stream.receive_space();
  iovec iov{space.data(), space.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t got = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  if (got < 0) return posix::last_error();
  std::vector<unique_fd> fds;
  detail::take_received_fds(msg, [&fds](std::size_t, unique_fd fd) { fds.push_back(std::move(fd)); });
  const bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  if (got == 0) return std::size_t{0};  // fds cannot arrive without data on a stream socket
  stream.commit(static_cast<std::size_t>(got), std::move(fds), truncated);
  return static_cast<std::size_t>(got);
}

}  // namespace nvgrace::vfio_user
