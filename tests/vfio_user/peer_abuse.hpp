#pragma once
// Helpers of the malformed-input tests that attack from outside the message
// format: the server's events, counts of the fds this process holds, and
// region fds asked for over the wire.

#include <nvgrace/backend/vfio_user/session.hpp>

#include "raw_peer.hpp"
#include "requests.hpp"

#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace nvgrace::vfio_user::testing {

/// Every event a server reports, kept (thread-safe) for the test to count.
class event_log {
public:
  /// Options whose events come here; `base` supplies the rest.
  server_options options(server_options base = {}) {
    base.on_event = &record;
    base.event_context = this;
    return base;
  }
  [[nodiscard]] std::size_t count(event::kind k) {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& e : events_) n += e.what == k ? 1 : 0;
    return n;
  }
  /// The events of kind `k`, in order.
  [[nodiscard]] std::vector<event> of(event::kind k) {
    std::lock_guard lock(mutex_);
    std::vector<event> out;
    for (const auto& e : events_)
      if (e.what == k) out.push_back(e);
    return out;
  }

private:
  static void record(void* self, const event& e) noexcept {
    auto& log = *static_cast<event_log*>(self);
    std::lock_guard lock(log.mutex_);
    event kept = e;
    kept.counts = nullptr;  // points into the session; not valid later
    log.events_.push_back(kept);
  }
  std::mutex mutex_;
  std::vector<event> events_;
};

/// The fds this process has open (entries of /proc/self/fd, less the one
/// the listing itself uses).
inline std::size_t open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  std::size_t n = 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;
}

/// The eventfds this process has open.
inline std::size_t open_eventfd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  std::size_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[64] = {};
    const std::string path = std::string("/proc/self/fd/") + e->d_name;
    if (::readlink(path.c_str(), target, sizeof target - 1) > 0 && std::string(target) == "anon_inode:[eventfd]") ++n;
  }
  ::closedir(d);
  return n;
}

/// GET_REGION_INFO of `index` with room for its caps: the reply (with its fd, if any).
inline reply region_info_with_fd(raw_peer& peer, std::uint32_t index, std::uint16_t id = 0x5100) {
  return peer.call(make_message(id, command::device_get_region_info, region_info_req(256, index)));
}

/// An eventfd (blocking unless `nonblocking`), with its counter at `value`.
inline unique_fd make_eventfd(std::uint64_t value = 0, bool nonblocking = false) {
  unique_fd fd(::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0)));
  REQUIRE(fd);
  if (value != 0) REQUIRE(::write(fd.get(), &value, sizeof value) == 8);
  return fd;
}

/// The most an eventfd counter holds.
inline constexpr std::uint64_t eventfd_full = 0xFFFF'FFFF'FFFF'FFFEull;

}  // namespace nvgrace::vfio_user::testing
