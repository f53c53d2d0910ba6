#pragma once
/// \file
/// A vfio-user server for any `vfio::device_file` (docs/vfio-user.md): the
/// socket loop around `session<Device>` (vfio_user/session.hpp). One client at
/// a time; a client that disconnects loses its DMA windows and IRQ eventfds,
/// the device keeps its memory and state, and the next client is accepted.

#include <nvgrace/backend/vfio_user/session.hpp>
#include <nvgrace/backend/vfio_user/transport.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/detail/atomic.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/unique_fd.hpp>
#include <nvgrace/vfio/device_file.hpp>

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <span>

namespace nvgrace::vfio_user {

/// Serves one device on a UNIX socket, one client at a time.
template <vfio::device_file Device>
class server {
public:
  server(Device& device, server_options options = {})
      : options_(options), session_(device, options_),
        stream_(max_message_size_for(options.max_data_xfer_size)) {}
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Bind and listen at `path` (which must not exist).
  status listen(const char* path) noexcept {
    auto fd = listen_unix(path);
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

private:
  static int peer_pid(int socket) noexcept {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return -1;
    return cred.pid;
  }

  status send(int socket, const typename vfio_user::session<Device>::outcome& o) noexcept {
    if (o.reply.empty()) return {};
    const iovec part{const_cast<std::byte*>(o.reply.data()), o.reply.size()};
    const int fd = o.fd;
    auto s = send_message(socket, std::span<const iovec>(&part, 1),
                          fd >= 0 ? std::span<const int>(&fd, 1) : std::span<const int>());
    if (!s) session_.report(event{event::kind::socket_error, {}, s.error(), false, session_.messages(), -1, 0});
    return s;
  }

  status loop(int socket) {
    while (!stop_.load()) {
      auto got = receive_into(socket, stream_);
      if (!got) {
        if (got.error() == errc::interrupted) continue;
        session_.report(event{event::kind::socket_error, {}, got.error(), false, session_.messages(), -1, 0});
        return got.error();
      }
      if (*got == 0) {
        // End of stream inside a message: say so (the peer may only have shut its sending side).
        if (stream_.pending() > 0) {
          header h{};
          static_cast<void>(stream_.pending_header(h));
          static_cast<void>(send(socket, session_.framing_error(h)));
        }
        return {};
      }
      while (true) {
        const auto state = stream_.next(message_);
        if (state == message_stream::state::need_more) break;
        if (state == message_stream::state::framing_error) {
          static_cast<void>(send(socket, session_.framing_error(message_.header)));
          return errc::invalid_argument;
        }
        const auto o = session_.handle(message_);
        if (auto s = send(socket, o); !s) return s.error();
        if (o.close) return o.error == errc{} ? status{} : status{o.error};
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
