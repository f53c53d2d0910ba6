#pragma once
/// \file
/// The BAR0 readiness poll the driver runs on the first memory access after
/// open or reset (docs/semantics.md, "Readiness"). Time is integer
/// milliseconds; registers and clock come from an injectable
/// `readiness_source`, so a test drives the 30-second timeout with a fake clock
/// and never sleeps. The real clock lives in posix/clock.hpp.

#include <nvgrace/core/result.hpp>

#include <cstdint>

namespace nvgrace::shim {

/// BAR0 offset of the 32-bit C2C link status register.
inline constexpr std::uint64_t c2c_link_register = 0x1498;
/// BAR0 offset of the 32-bit HBM training status register.
inline constexpr std::uint64_t hbm_training_register = 0x200BC;
/// Each register must read exactly this when the device is ready.
inline constexpr std::uint32_t status_ready = 0xFF;
/// Sleep between polls, in milliseconds (the driver's poll quantum).
inline constexpr std::uint64_t poll_quantum_ms = 1000;
/// Time allowed before ETIME, in milliseconds (the driver's poll timeout).
inline constexpr std::uint64_t poll_timeout_ms = 30000;

/// Where the readiness poll reads its registers and its time. Implementations
/// must be callable from several threads at once if the device is (concurrent
/// first accesses each poll, as they do in the driver under the read side of
/// its memory lock).
class readiness_source {
public:
  readiness_source() = default;
  readiness_source(const readiness_source&) = default;
  readiness_source& operator=(const readiness_source&) = default;
  virtual ~readiness_source() = default;

  /// A 32-bit little-endian register of BAR0.
  virtual std::uint32_t read32(std::uint64_t bar0_offset) noexcept = 0;
  /// Monotonic time in milliseconds since an arbitrary epoch.
  virtual std::uint64_t now_ms() noexcept = 0;
  /// Wait `ms` milliseconds (uninterruptibly, as msleep does up to 7.1).
  virtual void sleep_ms(std::uint64_t ms) noexcept = 0;
};

/// The driver's `wait_device_ready`: deadline = now + 30 s; read C2C then
/// (only if it is ready) HBM; both 0xFF → ready; otherwise sleep 1 s and stop
/// with ETIME once now is strictly after the deadline. At least one check
/// always happens; with a clock that only sleeps advance, the checks happen at
/// t = 0, 1, ..., 30 s and ETIME is returned at t = 31 s.
[[nodiscard]] inline status wait_device_ready(readiness_source& source) noexcept {
  const std::uint64_t deadline = source.now_ms() + poll_timeout_ms;
  do {
    if (source.read32(c2c_link_register) == status_ready && source.read32(hbm_training_register) == status_ready)
      return {};
    source.sleep_ms(poll_quantum_ms);
  } while (!(source.now_ms() > deadline));
  return errc::stream_timeout;  // ETIME
}

}  // namespace nvgrace::shim
