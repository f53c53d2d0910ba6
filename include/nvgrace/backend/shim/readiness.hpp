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
  /// Wait `ms` milliseconds. False when a fatal signal ended the wait early
  /// (7.2's killable sleeps then return EINTR; older kernels sleep on).
  virtual bool sleep_ms(std::uint64_t ms) noexcept = 0;
};

/// The driver's BAR0 readiness poll: deadline = now + 30 s; read C2C then
/// (only if it is ready) HBM; both 0xFF → ready; otherwise sleep 1 s and stop
/// with ETIME once now is strictly after the deadline. At least one check
/// always happens; with a clock that only sleeps advance, the checks happen at
/// t = 0, 1, ..., 30 s and ETIME is returned at t = 31 s. With `killable`
/// (7.2) a sleep ended by a fatal signal returns EINTR.
[[nodiscard]] inline status wait_device_ready(readiness_source& source, bool killable = false) noexcept {
  const std::uint64_t deadline = source.now_ms() + poll_timeout_ms;
  do {
    if (source.read32(c2c_link_register) == status_ready && source.read32(hbm_training_register) == status_ready)
      return {};
    if (!source.sleep_ms(poll_quantum_ms) && killable) return errc::interrupted;
  } while (!(source.now_ms() > deadline));
  return errc::stream_timeout;  // ETIME
}

// ---- the CXL device DVSEC (7.2) ----------------------------------------------------------

/// PCI vendor id of the CXL consortium, the CXL device DVSEC's vendor.
inline constexpr std::uint16_t cxl_vendor_id = 0x1E98;
/// DVSEC id of the CXL device DVSEC.
inline constexpr std::uint16_t cxl_device_dvsec_id = 0;
/// Offset of Range 1 Size Low inside the DVSEC.
inline constexpr std::uint16_t cxl_range1_size_low = 0x1C;
inline constexpr std::uint32_t cxl_mem_info_valid = 1u << 0;
inline constexpr std::uint32_t cxl_mem_active = 1u << 1;
inline constexpr unsigned cxl_active_timeout_shift = 13;

/// The time MEM_ACTIVE may take once MEM_INFO_VALID is set: 1 s << 2·t for
/// the 3-bit field t, with 5..7 clamped to 256 s.
[[nodiscard]] constexpr std::uint64_t cxl_active_timeout_ms(std::uint32_t status) noexcept {
  const std::uint32_t t = (status >> cxl_active_timeout_shift) & 0x7;
  return std::uint64_t{1000} << (2 * (t < 4 ? t : 4));
}

/// One look at the status under the driver's lock: ready; ENODEV when the
/// register reads all ones (the function is gone); EAGAIN when memory is not
/// valid and active yet.
[[nodiscard]] constexpr status test_cxl_ready(std::uint32_t status) noexcept {
  if (status == 0xFFFF'FFFFu) return errc::no_such_device;
  if ((status & cxl_mem_info_valid) != 0 && (status & cxl_mem_active) != 0) return {};
  return errc::resource_unavailable_try_again;
}

/// The 7.2 CXL wait: 1 s for MEM_INFO_VALID, then the field's timeout for
/// MEM_ACTIVE, checking once a second: ETIME when time runs out, EINTR when
/// a fatal signal ends a sleep, ENODEV when the register reads all ones.
/// `status` reads the register.
template <class Status>
[[nodiscard]] status wait_cxl_ready(readiness_source& source, Status status_of) noexcept {
  std::uint64_t deadline = source.now_ms() + poll_quantum_ms;
  bool active_phase = false;
  for (;;) {
    const std::uint32_t status = status_of();
    const auto tested = test_cxl_ready(status);
    if (tested.error() != errc::resource_unavailable_try_again) return tested;
    if (!active_phase && (status & cxl_mem_info_valid) != 0) {
      deadline = source.now_ms() + cxl_active_timeout_ms(status);
      active_phase = true;
    }
    if (source.now_ms() > deadline) return errc::stream_timeout;
    if (!source.sleep_ms(poll_quantum_ms)) return errc::interrupted;
  }
}

}  // namespace nvgrace::shim
