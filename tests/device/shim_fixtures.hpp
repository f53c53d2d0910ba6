#pragma once
// Shared helpers of the device tests: small layouts that follow the driver's
// rules, a fake readiness source (registers + a clock that only sleeping
// advances), and short-hands for kernel-style calls.

#include "shim_shapes.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/shim/test_hooks.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/vfio/abi.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace device_test {

using namespace nvgrace;
using shim_device = shim::memfd_device;

// The device shapes (tests/conformance/shim_shapes.hpp).
using nvgrace::conformance::shim_shapes::blackwell_length;
using nvgrace::conformance::shim_shapes::blackwell_usemem_bar;
using nvgrace::conformance::shim_shapes::hopper_length;
using nvgrace::conformance::shim_shapes::hopper_resmem_bar;
using nvgrace::conformance::shim_shapes::hopper_resmem_real;
using nvgrace::conformance::shim_shapes::hopper_usemem_bar;
using nvgrace::conformance::shim_shapes::hopper_usemem_real;
inline constexpr std::uint64_t memory_base = shim::default_memory_base;  // the ACPI base of every shim device

inline constexpr std::uint32_t config_index = 7;

[[nodiscard]] inline std::uint64_t at(std::uint32_t index, std::uint64_t offset) {
  return vfio::file_offset(index, offset);
}

[[nodiscard]] inline shim_device make(const shim::device_options& options) {
  auto d = shim_device::create(options);
  REQUIRE(d.has_value());
  return std::move(*d);
}

[[nodiscard]] inline shim_device make_hopper(grace::resmem_return quirk = grace::resmem_return::upstream_short) {
  auto options = shim::hopper(hopper_length);
  options.resmem_quirk = quirk;
  return make(options);
}

/// A readiness source whose registers come from the device's BAR0 unless
/// overridden, and whose clock moves only when the poll sleeps.
struct fake_readiness final : shim::readiness_source {
  const shim_device* device = nullptr;
  std::optional<std::uint32_t> c2c;
  std::optional<std::uint32_t> hbm;
  std::uint64_t time = 0;  ///< milliseconds
  int c2c_reads = 0;
  int hbm_reads = 0;
  int sleeps = 0;

  std::uint32_t read32(std::uint64_t offset) noexcept override {
    if (offset == shim::c2c_link_register) {
      ++c2c_reads;
      if (c2c) return *c2c;
    } else if (offset == shim::hbm_training_register) {
      ++hbm_reads;
      if (hbm) return *hbm;
    }
    return device->bar0_register(offset);
  }
  std::uint64_t now_ms() noexcept override { return time; }
  bool sleep_ms(std::uint64_t ms) noexcept override {
    time += ms;
    ++sleeps;
    return !killed_at_sleep || sleeps < *killed_at_sleep;
  }
  /// A fatal signal ends the n-th sleep (1-based).
  std::optional<int> killed_at_sleep;
  [[nodiscard]] int polls() const { return c2c_reads; }
};

/// Kernel-style read: returns the count or −errno, and the position after it.
struct rw_result {
  ssize_t value = 0;
  std::uint64_t pos = 0;
};
inline rw_result kread(shim_device& d, std::span<std::byte> buf, std::uint64_t pos) {
  const ssize_t n = d.read(buf.data(), buf.size(), &pos);
  return {n, pos};
}
inline rw_result kwrite(shim_device& d, std::span<const std::byte> buf, std::uint64_t pos) {
  const ssize_t n = d.write(buf.data(), buf.size(), &pos);
  return {n, pos};
}

/// Config register reads/writes through the device file.
template <class T>
T config_read(shim_device& d, std::uint64_t offset) {
  std::array<std::byte, sizeof(T)> bytes{};
  const auto n = d.pread(bytes, at(config_index, offset));
  REQUIRE(n.has_value());
  REQUIRE(*n == sizeof(T));
  return load_le<T>(bytes, 0);
}
template <class T>
std::size_t config_write(shim_device& d, std::uint64_t offset, T value) {
  std::array<std::byte, sizeof(T)> bytes{};
  store_le<T>(bytes, 0, value);
  const auto n = d.pwrite(bytes, at(config_index, offset));
  REQUIRE(n.has_value());
  return *n;
}

/// VFIO_DEVICE_FEATURE through the kernel-style ioctl.
inline long feature(shim_device& d, std::vector<std::byte>& arg) {
  return shim::ioctl(d, vfio::ioctl::device_feature, arg.data());
}

/// A VFIO_DEVICE_FEATURE DMA_BUF request with `ranges`.
inline std::vector<std::byte> dma_buf_request(std::uint32_t flags, std::uint32_t region_index,
                                              std::vector<vfio::region_dma_range> ranges,
                                              std::uint32_t request_flags = 0,
                                              std::optional<std::uint32_t> nr_ranges = std::nullopt) {
  std::vector<std::byte> arg(8 + 16 + 16 * ranges.size());
  store_le<std::uint32_t>(arg, 0, static_cast<std::uint32_t>(arg.size()));
  store_le<std::uint32_t>(arg, 4, flags);
  store_le<std::uint32_t>(arg, 8, region_index);
  store_le<std::uint32_t>(arg, 12, 0);
  store_le<std::uint32_t>(arg, 16, request_flags);
  store_le<std::uint32_t>(arg, 20, nr_ranges.value_or(static_cast<std::uint32_t>(ranges.size())));
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    store_le<std::uint64_t>(arg, 24 + 16 * i, ranges[i].offset);
    store_le<std::uint64_t>(arg, 32 + 16 * i, ranges[i].length);
  }
  return arg;
}

inline constexpr std::uint32_t get_dma_buf = vfio::feature_flags::get | vfio::feature_dma_buf;

inline std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values) {
  std::vector<std::byte> out;
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

inline std::vector<std::byte> filled(std::size_t n, unsigned value) {
  return std::vector<std::byte>(n, static_cast<std::byte>(value));
}

}  // namespace device_test
