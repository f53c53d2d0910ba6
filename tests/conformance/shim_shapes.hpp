#pragma once
// The shapes of the in-process shim device (backend/shim) that the device,
// accessor and conformance tests run on, with their layouts written out from
// §2.3 (never derived by the model): one place for tests/device's fixtures and
// the conformance expectations of tests/device and tests/vfio_user.

#include <nvgrace/core/checked.hpp>

#include <cstdint>

namespace nvgrace::conformance::shim_shapes {

/// Hopper with 1.5 GiB + 4 KiB (§2.3): usemem 512 MiB behind a 1 GiB BAR,
/// resmem 1 GiB + 4 KiB behind a 2 GiB BAR.
inline constexpr std::uint64_t hopper_length = 3 * GiB / 2 + 4 * KiB;
inline constexpr std::uint64_t hopper_usemem_real = 0x2000'0000;
inline constexpr std::uint64_t hopper_usemem_bar = 0x4000'0000;
inline constexpr std::uint64_t hopper_resmem_real = 0x4000'1000;
inline constexpr std::uint64_t hopper_resmem_bar = 0x8000'0000;
/// Blackwell with 64 MiB + 4 KiB: usemem is all of it, behind a 128 MiB BAR;
/// region 2 is the shim's default real 16 MiB BAR.
inline constexpr std::uint64_t blackwell_length = 64 * MiB + 4 * KiB;
inline constexpr std::uint64_t blackwell_usemem_bar = 128 * MiB;
inline constexpr std::uint64_t blackwell_bar2 = 16 * MiB;

}  // namespace nvgrace::conformance::shim_shapes
