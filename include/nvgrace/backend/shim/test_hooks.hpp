#pragma once
/// \file
/// Fault injection for tests of the in-process device: what a test needs to
/// make the device misbehave the way hardware or the kernel can (a device
/// that is not ready, a runtime-PM resume that fails, a reset that fails).
/// Kept out of the device's own interface; a VMM never needs these.

#include <nvgrace/backend/shim/device.hpp>
#include <nvgrace/backend/shim/readiness.hpp>
#include <nvgrace/core/errc.hpp>

#include <cstdint>
#include <optional>

namespace nvgrace::shim {

struct test_hooks {
  /// Use `source` for the readiness poll (registers and clock); nullptr
  /// restores the default (the device's BAR0 and the monotonic clock).
  /// `source` must outlive its use.
  template <class Memory>
  static void set_readiness_source(device<Memory>& d, readiness_source* source) noexcept {
    d.core_->set_readiness_source(source);
  }
  /// Make runtime-PM resume fail: memory read/write (and core accesses) → EIO.
  template <class Memory>
  static void inject_pm_failure(device<Memory>& d, bool fail) noexcept {
    d.core_->inject_pm_failure(fail);
  }
  /// Make the core part of VFIO_DEVICE_RESET fail with `error` (nullopt: succeed).
  template <class Memory>
  static void inject_reset_failure(device<Memory>& d, std::optional<errc> error) noexcept {
    d.core_->inject_reset_failure(error);
  }
  /// Make a reset of the function (an FLR: mappings zapped, reset_done set,
  /// the CXL status starting over) land right after the next lockless CXL
  /// wait and before its locked look: that look then sees memory not active
  /// and answers EAGAIN (7.2 only: the CXL readiness path). One shot.
  template <class Memory>
  static void inject_reset_race(device<Memory>& d) noexcept {
    d.core_->inject_reset_race();
  }
  /// The address and size of the state word and the two windows every fast
  /// access reads (the device places them at fast_data_page_offset).
  template <class Memory>
  [[nodiscard]] static const void* fast_data(const device<Memory>& d) noexcept {
    return d.core_->fast_data();
  }
  template <class Memory>
  [[nodiscard]] static constexpr std::size_t fast_data_size(const device<Memory>&) noexcept {
    return device<Memory>::core::fast_data_size();
  }
  /// Set a 32-bit BAR0 register directly (no readiness, no decode check).
  template <class Memory>
  static void set_bar0_register(device<Memory>& d, std::uint64_t offset, std::uint32_t value) noexcept {
    d.core_->set_bar0_register(offset, value);
  }
};

}  // namespace nvgrace::shim
