#pragma once
/// \file
/// §7.1: the BAR0 readiness poll the driver runs on the first memory access
/// after open or reset. The registers and the clock come from an injectable
/// `readiness_source`, so a test can drive the 30-second timeout with a fake
/// clock and never sleep.

#include <nvgrace/core/result.hpp>

#include <chrono>
#include <cstdint>
#include <thread>

namespace nvgrace::shim {

/// BAR0 offset of the 32-bit C2C link status register.
inline constexpr std::uint64_t c2c_link_register = 0x1498;
/// BAR0 offset of the 32-bit HBM training status register.
inline constexpr std::uint64_t hbm_training_register = 0x200BC;
/// Each register must read exactly this when the device is ready.
inline constexpr std::uint32_t status_ready = 0xFF;
/// Sleep between polls (POLL_QUANTUM_MS).
inline constexpr std::chrono::milliseconds poll_quantum{1000};
/// Time allowed before ETIME (POLL_TIMEOUT_MS).
inline constexpr std::chrono::milliseconds poll_timeout{30000};

/// Where the readiness poll reads its registers and its time. The device's
/// default reads its own BAR0 memory and uses std::chrono::steady_clock and
/// std::this_thread::sleep_for. Implementations must be callable from several
/// threads at once if the device is (concurrent first accesses each poll, as
/// they do in the driver under the read side of memory_lock).
class readiness_source {
public:
  readiness_source() = default;
  readiness_source(const readiness_source&) = default;
  readiness_source& operator=(const readiness_source&) = default;
  virtual ~readiness_source() = default;

  /// A 32-bit little-endian register of BAR0.
  virtual std::uint32_t read32(std::uint64_t bar0_offset) noexcept = 0;
  /// Monotonic time since an arbitrary epoch.
  virtual std::chrono::milliseconds now() noexcept = 0;
  /// Wait (uninterruptibly, as msleep does up to 7.1).
  virtual void sleep(std::chrono::milliseconds duration) noexcept = 0;
};

/// The real clock: steady_clock and sleep_for.
[[nodiscard]] inline std::chrono::milliseconds steady_now() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch());
}
inline void steady_sleep(std::chrono::milliseconds duration) noexcept { std::this_thread::sleep_for(duration); }

/// §7.1 `wait_device_ready`: deadline = now + 30 s; read C2C then (only if it
/// is ready) HBM; both 0xFF → ready; otherwise sleep 1 s and stop with ETIME
/// once now is strictly after the deadline. At least one check always
/// happens; with a clock that only sleeps advance, the checks happen at
/// t = 0, 1, ..., 30 s and ETIME is returned at t = 31 s.
[[nodiscard]] inline status wait_device_ready(readiness_source& source) noexcept {
  const auto deadline = source.now() + poll_timeout;
  do {
    if (source.read32(c2c_link_register) == status_ready && source.read32(hbm_training_register) == status_ready)
      return {};
    source.sleep(poll_quantum);
  } while (!(source.now() > deadline));
  return errc::stream_timeout;  // ETIME
}

}  // namespace nvgrace::shim
