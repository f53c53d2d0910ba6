#pragma once
/// \file
/// A vfio-user server for any `vfio::device_file` (docs/vfio-user.md): the
/// socket loop around `session<Device>` (vfio_user/session.hpp). One client at
/// a time; a client that disconnects loses its DMA windows and IRQ eventfds,
/// the device keeps its memory and state, and the next client is accepted.
///
/// No peer can hold the server: the deadlines of `server_options` (handshake,
/// message, idle, send) drop a client that says nothing, stops inside a
/// message or stops reading its replies; receives wake at least every
/// `receive_tick_ms` to check them (SO_RCVTIMEO), and replies are sent
/// without blocking past the send deadline.

#include <nvgrace/backend/vfio_user/session.hpp>
#include <nvgrace/backend/vfio_user/transport.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/detail/atomic.hpp>
#include <nvgrace/detail/minmax.hpp>
#include <nvgrace/posix/clock.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/unique_fd.hpp>
#include <nvgrace/vfio/device_file.hpp>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <span>

namespace nvgrace::vfio_user {

/// Serves one device on a UNIX socket, one client at a time.
template <vfio::device_file Device>
class server {
public:
  server(Device& device, server_options options = {})
      : options_(options), session_(device, options_), stream_(max_message_size_for(options.max_data_xfer_size)) {}
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Bind and listen at `path` (which must not exist).
  status listen(const char* path) noexcept {
    auto fd = listen_unix(path, options_.backlog);
    if (!fd) return fd.error();
    listener_ = std::move(*fd);
    listener_fd_.store(listener_.get());
    return {};
  }

  /// Use an already listening socket (taken).
  void adopt_listener(int fd) noexcept {
    listener_.reset(fd);
    listener_fd_.store(listener_.get());
  }

  /// Accept and serve clients, one after the other, until `request_stop()`.
  /// Returns success after a stop, otherwise accept's error.
  status run() {
    while (!stop_.load()) {
      unique_fd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!client) {
        if (stop_.load()) break;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return posix::last_error();
      }
      static_cast<void>(serve(client.get()));
    }
    return {};
  }

  /// Serve the client connected on `socket` (not taken) until it disconnects,
  /// the connection must be dropped, or a stop is requested. The client's
  /// state is dropped on return; the device is kept.
  status serve(int socket) {
    active_fd_.store(socket);
    if (stop_.load()) ::shutdown(socket, SHUT_RDWR);
    stream_.clear();
    session_.reset();
    session_.report(event{event::kind::connected, {}, {}, false, 0, peer_pid(socket), 0});
    status result = loop(socket);
    active_fd_.store(-1);
    session_.report(
        event{event::kind::disconnected, {}, result.error(), false, session_.messages(), -1, 0, &session_.counts()});
    session_.reset();
    stream_.clear();
    return result;
  }

  /// Ask `run()`/`serve()` to return soon. Async-signal-safe (atomics and
  /// shutdown(2) only): a SIGTERM handler may call it.
  void request_stop() noexcept {
    stop_.store(true);
    const int listener = listener_fd_.load();
    if (listener >= 0) ::shutdown(listener, SHUT_RDWR);
    const int active = active_fd_.load();
    if (active >= 0) ::shutdown(active, SHUT_RDWR);
  }
  [[nodiscard]] bool stop_requested() const noexcept { return stop_.load(); }

  /// The protocol state of the current connection (serving thread only).
  [[nodiscard]] vfio_user::session<Device>& session() noexcept { return session_; }

  /// The longest a receive blocks before the deadlines are checked: a quarter
  /// of the shortest deadline in force, within [10 ms, 1 s]; 0 when none is.
  [[nodiscard]] static std::uint64_t receive_tick_ms(const server_options& o) noexcept {
    std::uint64_t shortest = 0;
    for (const std::uint32_t t : {o.handshake_timeout_ms, o.message_timeout_ms, o.idle_timeout_ms})
      if (t != 0 && (shortest == 0 || t < shortest)) shortest = t;
    if (shortest == 0) return 0;
    return nvgrace::detail::clamp<std::uint64_t>(shortest / 4, 10, 1000);
  }

private:
  static int peer_pid(int socket) noexcept {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return -1;
    return cred.pid;
  }

  /// The clock of one connection's deadlines.
  struct clocks {
    std::uint64_t connected_at = 0;
    std::uint64_t last_message_at = 0;     // when the last message was complete (or the connection began)
    std::uint64_t message_started_at = 0;  // when the pending partial message's first byte came
  };

  void report_timeout(const char* what) noexcept {
    session_.report(
        event{event::kind::timed_out, {}, errc::timed_out, false, session_.messages(), -1, 0, nullptr, what});
  }

  status send(int socket, const typename vfio_user::session<Device>::outcome& o) noexcept {
    if (o.reply.empty()) return {};
    const iovec part{const_cast<std::byte*>(o.reply.data()), o.reply.size()};
    const int fd = o.fd;
    send_deadline deadline;
    if (options_.send_timeout_ms != 0) deadline = posix::monotonic_now_ms() + options_.send_timeout_ms;
    auto s = send_message(socket, std::span<const iovec>(&part, 1),
                          fd >= 0 ? std::span<const int>(&fd, 1) : std::span<const int>(), deadline);
    if (!s) {
      if (s.error() == errc::timed_out)
        report_timeout("the peer did not take a reply within send_timeout_ms");
      else
        session_.report(event{event::kind::socket_error, {}, s.error(), false, session_.messages(), -1, 0});
    }
    return s;
  }

  /// The last reply of a stream that must end (it cannot be framed, its fds
  /// are over budget, it ended or stalled inside a message): an error echoing
  /// `h`, sent without waiting (the peer may not be reading).
  void send_final(int socket, const header& h, errc error) noexcept {
    std::array<std::byte, header_size> reply{};
    store_header(reply, error_header(h, error));
    static_cast<void>(send_bytes(socket, reply, posix::monotonic_now_ms()));
  }

  /// The stream cannot be framed further: a `framing_error` event, EINVAL, and the caller closes.
  errc end_framing(int socket, const header& h, const char* why) noexcept {
    session_.report(
        event{event::kind::framing_error, h, errc::invalid_argument, true, session_.messages(), -1, 0, nullptr, why});
    send_final(socket, h, errc::invalid_argument);
    return errc::invalid_argument;
  }

  /// The deadline that has passed at `now`, if any (its log sentence).
  [[nodiscard]] const char* overdue(const clocks& c, std::uint64_t now) const noexcept {
    const auto passed = [now](std::uint64_t since, std::uint32_t limit) { return limit != 0 && now - since > limit; };
    if (!session_.negotiated() && passed(c.connected_at, options_.handshake_timeout_ms))
      return "no VERSION within handshake_timeout_ms";
    if (stream_.pending() > 0 && passed(c.message_started_at, options_.message_timeout_ms))
      return "a message was not complete within message_timeout_ms";
    if (session_.negotiated() && stream_.pending() == 0 && passed(c.last_message_at, options_.idle_timeout_ms))
      return "no message within idle_timeout_ms";
    return nullptr;
  }

  status loop(int socket) {
    if (const std::uint64_t tick = receive_tick_ms(options_); tick != 0) {
      const timeval tv{static_cast<time_t>(tick / 1000), static_cast<suseconds_t>((tick % 1000) * 1000)};
      if (::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return posix::last_error();
    }
    clocks c;
    c.connected_at = c.last_message_at = posix::monotonic_now_ms();
    while (!stop_.load()) {
      const bool was_pending = stream_.pending() > 0;
      auto got = receive_into(socket, stream_);
      const std::uint64_t now = posix::monotonic_now_ms();
      if (!got && got.error() != errc::interrupted && got.error() != errc::resource_unavailable_try_again) {
        session_.report(event{event::kind::socket_error, {}, got.error(), false, session_.messages(), -1, 0});
        return got.error();
      }
      if (got && *got == 0) {
        // End of stream inside a message: say so (the peer may only have shut its sending side).
        if (stream_.pending() > 0) {
          header h{};
          static_cast<void>(stream_.pending_header(h));
          static_cast<void>(end_framing(socket, h, "end of stream inside a message"));
        }
        return {};
      }
      bool completed = false;
      while (got) {
        const auto state = stream_.next(message_);
        if (state == message_stream::state::need_more) break;
        if (state == message_stream::state::framing_error)
          return end_framing(socket, message_.header, "a size below 16 or above the largest message");
        if (state == message_stream::state::fd_budget_exceeded)
          return end_framing(socket, message_.header, "more fds arrived than a connection may hold while framing");
        completed = true;
        const auto o = session_.handle(message_);
        if (auto s = send(socket, o); !s) return s.error();
        if (o.close) return o.error == errc{} ? status{} : status{o.error};
      }
      if (completed) c.last_message_at = now;
      // A partial message left now started in this receive unless it was pending before and nothing completed.
      if (got && stream_.pending() > 0 && (completed || !was_pending)) c.message_started_at = now;
      if (const char* what = overdue(c, now)) {
        report_timeout(what);
        header h{};
        if (stream_.pending_header(h)) send_final(socket, h, errc::timed_out);
        return errc::timed_out;
      }
    }
    return {};
  }

  server_options options_;
  vfio_user::session<Device> session_;
  message_stream stream_;
  message message_;
  unique_fd listener_;
  nvgrace::detail::atomic_word<int> listener_fd_{-1};
  nvgrace::detail::atomic_word<int> active_fd_{-1};
  nvgrace::detail::atomic_word<bool> stop_{false};
};

}  // namespace nvgrace::vfio_user
