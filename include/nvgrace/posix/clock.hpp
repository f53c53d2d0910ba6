#pragma once
/// \file
/// Monotonic time in integer milliseconds (CLOCK_MONOTONIC) and a sleep that
/// resumes after signals: the clock of the in-process device's readiness poll
/// and of the vfio-user deadlines. POSIX <time.h> only, so no <chrono>.

#include <time.h>

#include <cerrno>
#include <cstdint>

namespace nvgrace::posix {

/// Milliseconds of CLOCK_MONOTONIC.
[[nodiscard]] inline std::uint64_t monotonic_now_ms() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000u;
}

/// Sleep `ms` milliseconds, all of them even if signals arrive (like the
/// driver's msleep, which is not interruptible).
inline void monotonic_sleep_ms(std::uint64_t ms) noexcept {
  timespec left{static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1'000'000)};
  while (::nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

}  // namespace nvgrace::posix
