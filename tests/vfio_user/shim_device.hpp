#pragma once
// The real in-process Grace device (backend/shim) as the tests serve it, with
// helpers that read and write its GPU memory through the memfd (system calls,
// so a race detector sees no unsynchronised access to the server's mapping).

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/mem/memfd_memory.hpp>

#include <gsl/assert>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace nvgrace::vfio_user::testing {

using shim_device = shim::device<mem::memfd_memory>;

inline shim_device make_shim(const shim::device_options& options) {
  auto d = shim_device::create(options);
  Expects(d.has_value());
  return std::move(d).value();
}

/// All GPU memory bytes (both emulated regions on Hopper).
inline std::vector<std::byte> gpu_snapshot(const shim_device& d) {
  const auto& memory = d.gpu_memory();
  std::vector<std::byte> out(static_cast<std::size_t>(memory.length()));
  const auto n = ::pread(memory.source().fd, out.data(), out.size(), static_cast<off_t>(memory.source().offset));
  Expects(n == static_cast<ssize_t>(out.size()));
  return out;
}

/// `n` GPU memory bytes from `offset`.
inline std::vector<std::byte> gpu_snapshot_range(const shim_device& d, std::uint64_t offset, std::size_t n) {
  const auto& memory = d.gpu_memory();
  std::vector<std::byte> out(n);
  const auto got = ::pread(memory.source().fd, out.data(), n, static_cast<off_t>(memory.source().offset + offset));
  Expects(got == static_cast<ssize_t>(n));
  return out;
}

/// Overwrite GPU memory at `offset` (from the start of the whole memory).
inline void gpu_poke(const shim_device& d, std::uint64_t offset, std::span<const std::byte> bytes) {
  const auto& memory = d.gpu_memory();
  const auto n =
      ::pwrite(memory.source().fd, bytes.data(), bytes.size(), static_cast<off_t>(memory.source().offset + offset));
  Expects(n == static_cast<ssize_t>(bytes.size()));
}

}  // namespace nvgrace::vfio_user::testing
