#pragma once
/// \file
/// THE copy path between device memory and a caller's buffer. Every consumer
/// (the in-process device, the accessor's mapped fast path, the vfio-user
/// server) copies through these functions, so there is one implementation of
/// the §5 byte rules and one place to make fast.
///
/// An emulated memory BAR is a window whose first `mem.length` bytes are
/// memory and whose remainder is padding that reads as 0xFF and drops writes
/// (§5.1, §5.2, E6). Cached memory is copied with one bulk `memcpy` and the
/// padding filled with one `memset`. Uncached memory (resmem, §5.3) is touched
/// only by naturally aligned 8/4/2/1-byte volatile accesses in the order of the
/// vfio chunk plan (vfio/chunk_plan.hpp).
///
/// Nothing here allocates, throws or makes a system call.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/contracts.hpp>
#include <nvgrace/mem/device_memory.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace nvgrace::mem {

/// The value every padding byte reads as (§5.1 step 7).
inline constexpr std::byte padding_byte{0xFF};

/// How many of the `count` bytes at `offset` of a window lie in its first
/// `length` bytes (the memory): the driver's mem_count (§5.1 step 4).
[[nodiscard]] constexpr std::uint64_t in_memory_count(std::uint64_t length, std::uint64_t offset,
                                                      std::uint64_t count) noexcept {
  const std::uint64_t start = offset < length ? offset : length;  // min: no branch
  const std::uint64_t available = length - start;
  return count < available ? count : available;
}

namespace detail {

/// The real accesses of the uncached path. Tests substitute a recording
/// policy with the same two static members to observe every access.
struct volatile_io {
  template <class T>
  [[nodiscard]] static T load(const std::byte* address) noexcept {
    return *reinterpret_cast<const volatile T*>(address);
  }
  template <class T>
  static void store(std::byte* address, T value) noexcept {
    *reinterpret_cast<volatile T*>(address) = value;
  }
};

template <class Io, class T>
inline void load_chunk(const std::byte* device, std::byte* user) noexcept {
  const T value = Io::template load<T>(device);
  std::memcpy(user, &value, sizeof(T));  // the user buffer has no alignment: memcpy, not a cast
}

template <class Io, class T>
inline void store_chunk(std::byte* device, const std::byte* user) noexcept {
  T value;
  std::memcpy(&value, user, sizeof(T));
  Io::template store<T>(device, value);
}

// The uncached loops below issue exactly the accesses of vfio::chunks(address,
// count) (§5.3), with the alignment judged from the address so every access is
// naturally aligned whatever the base. Rather than asking next_chunk_width at
// every step they unroll what that rule produces:
// - head: at most one 1-, one 2- and one 4-byte access, each taken when the
//   address has that bit set and enough bytes remain, reach 8-alignment;
// - body: 8-byte accesses while 8 bytes remain (four per turn, then one by one);
// - tail: at most one 4-, one 2- and one 1-byte access, as the remainder allows.
// If the head stops early (too few bytes for the next step) the remainder is
// below that step's width and its address is aligned to it, so the tail's
// narrower accesses are still what the rule picks. tests/mem checks this
// against vfio::chunks for every base alignment, offset and length.

/// Uncached read of `count` > 0 bytes at `device` into `user`.
template <class Io>
inline void chunked_read(const std::byte* device, std::byte* user, std::size_t count) noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(device);
  std::size_t done = 0;
  if ((address & 7u) != 0) [[unlikely]] {
    if ((address & 1u) != 0) {  // count ≥ 1: the callers never pass 0
      load_chunk<Io, std::uint8_t>(device, user);
      done = 1;
    }
    if (((address + done) & 2u) != 0 && count - done >= 2) {
      load_chunk<Io, std::uint16_t>(device + done, user + done);
      done += 2;
    }
    if (((address + done) & 4u) != 0 && count - done >= 4) {
      load_chunk<Io, std::uint32_t>(device + done, user + done);
      done += 4;
    }
  }
  const std::byte* d = device + done;
  std::byte* u = user + done;
  std::size_t remaining = count - done;
  // Four 8-byte accesses per turn: fewer loop branches per byte, and a loop
  // whose speed does not hinge on where the code happens to be placed.
  for (; remaining >= 32; remaining -= 32, d += 32, u += 32) {
    load_chunk<Io, std::uint64_t>(d, u);
    load_chunk<Io, std::uint64_t>(d + 8, u + 8);
    load_chunk<Io, std::uint64_t>(d + 16, u + 16);
    load_chunk<Io, std::uint64_t>(d + 24, u + 24);
  }
  for (; remaining >= 8; remaining -= 8, d += 8, u += 8) load_chunk<Io, std::uint64_t>(d, u);
  // remaining < 8 here, so its bits name the tail's accesses: 4, then 2, then 1.
  if ((remaining & 4u) != 0) {
    load_chunk<Io, std::uint32_t>(d, u);
    d += 4;
    u += 4;
  }
  if ((remaining & 2u) != 0) {
    load_chunk<Io, std::uint16_t>(d, u);
    d += 2;
    u += 2;
  }
  if ((remaining & 1u) != 0) load_chunk<Io, std::uint8_t>(d, u);
}

/// Uncached write of `count` > 0 bytes from `user` to `device`.
template <class Io>
inline void chunked_write(std::byte* device, const std::byte* user, std::size_t count) noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(device);
  std::size_t done = 0;
  if ((address & 7u) != 0) [[unlikely]] {
    if ((address & 1u) != 0) {  // count ≥ 1: the callers never pass 0
      store_chunk<Io, std::uint8_t>(device, user);
      done = 1;
    }
    if (((address + done) & 2u) != 0 && count - done >= 2) {
      store_chunk<Io, std::uint16_t>(device + done, user + done);
      done += 2;
    }
    if (((address + done) & 4u) != 0 && count - done >= 4) {
      store_chunk<Io, std::uint32_t>(device + done, user + done);
      done += 4;
    }
  }
  std::byte* d = device + done;
  const std::byte* u = user + done;
  std::size_t remaining = count - done;
  // Four 8-byte accesses per turn: fewer loop branches per byte, and a loop
  // whose speed does not hinge on where the code happens to be placed.
  for (; remaining >= 32; remaining -= 32, d += 32, u += 32) {
    store_chunk<Io, std::uint64_t>(d, u);
    store_chunk<Io, std::uint64_t>(d + 8, u + 8);
    store_chunk<Io, std::uint64_t>(d + 16, u + 16);
    store_chunk<Io, std::uint64_t>(d + 24, u + 24);
  }
  for (; remaining >= 8; remaining -= 8, d += 8, u += 8) store_chunk<Io, std::uint64_t>(d, u);
  // remaining < 8 here, so its bits name the tail's accesses: 4, then 2, then 1.
  if ((remaining & 4u) != 0) {
    store_chunk<Io, std::uint32_t>(d, u);
    d += 4;
    u += 4;
  }
  if ((remaining & 2u) != 0) {
    store_chunk<Io, std::uint16_t>(d, u);
    d += 2;
    u += 2;
  }
  if ((remaining & 1u) != 0) store_chunk<Io, std::uint8_t>(d, u);
}

/// Cached or uncached copy of `count` > 0 bytes from device memory to the user buffer.
template <class Io>
inline void copy_out(const std::byte* device, caching mode, std::byte* user, std::size_t count) noexcept {
  if (mode == caching::cached) [[likely]]
    std::memcpy(user, device, count);
  else
    chunked_read<Io>(device, user, count);
}

/// Cached or uncached copy of `count` > 0 bytes from the user buffer to device memory.
template <class Io>
inline void copy_in(std::byte* device, caching mode, const std::byte* user, std::size_t count) noexcept {
  if (mode == caching::cached) [[likely]]
    std::memcpy(device, user, count);
  else
    chunked_write<Io>(device, user, count);
}

inline void fill(std::byte* out, std::size_t count) noexcept {
  std::memset(out, std::to_integer<unsigned char>(padding_byte), count);
}

// The public functions below, with the access policy of the uncached path as a parameter.
// The emptiness tests are needed: an empty span or an empty memory may carry a null pointer.

template <class Io>
inline void read_memory_with(memory_view mem, std::uint64_t offset, std::span<std::byte> out) noexcept {
  NVGRACE_EXPECTS(range_within(offset, out.size(), mem.length));
  if (!out.empty()) copy_out<Io>(mem.base + offset, mem.caching, out.data(), out.size());
}

template <class Io>
inline void write_memory_with(memory_view mem, std::uint64_t offset, std::span<const std::byte> in) noexcept {
  NVGRACE_EXPECTS(range_within(offset, in.size(), mem.length));
  if (!in.empty()) copy_in<Io>(mem.base + offset, mem.caching, in.data(), in.size());
}

template <class Io>
inline std::size_t read_window_with(memory_view mem, std::uint64_t offset, std::span<std::byte> out) noexcept {
  NVGRACE_EXPECTS(out.size() <= ~offset);
  const auto in_memory = static_cast<std::size_t>(in_memory_count(mem.length, offset, out.size()));
  if (in_memory != 0) copy_out<Io>(mem.base + offset, mem.caching, out.data(), in_memory);
  if (in_memory != out.size()) fill(out.data() + in_memory, out.size() - in_memory);
  return out.size();
}

template <class Io>
inline std::size_t write_window_with(memory_view mem, std::uint64_t offset, std::span<const std::byte> in) noexcept {
  NVGRACE_EXPECTS(in.size() <= ~offset);
  const auto in_memory = static_cast<std::size_t>(in_memory_count(mem.length, offset, in.size()));
  if (in_memory != 0) copy_in<Io>(mem.base + offset, mem.caching, in.data(), in_memory);
  return in.size();  // the part past the memory is dropped (§5.2)
}

}  // namespace detail

/// Copy `out.size()` bytes of memory at `offset` into `out`.
/// Precondition: [offset, offset + out.size()) lies inside the memory.
/// Cached: one memcpy. Uncached: the §5.3 chunk plan of aligned volatile loads.
inline void read_memory(memory_view mem, std::uint64_t offset, std::span<std::byte> out) noexcept {
  detail::read_memory_with<detail::volatile_io>(mem, offset, out);
}

/// Copy `in` into memory at `offset`.
/// Precondition: [offset, offset + in.size()) lies inside the memory.
/// Cached: one memcpy. Uncached: the §5.3 chunk plan of aligned volatile stores.
inline void write_memory(memory_view mem, std::uint64_t offset, std::span<const std::byte> in) noexcept {
  detail::write_memory_with<detail::volatile_io>(mem, offset, in);
}

/// Fill `out` with the padding byte 0xFF (one memset).
inline void fill_padding(std::span<std::byte> out) noexcept {
  if (!out.empty()) detail::fill(out.data(), out.size());
}

/// Read `out.size()` bytes of the window at `offset`: the part inside the
/// memory is copied (read_memory), the rest of `out` is filled with 0xFF
/// (fill_padding). Returns out.size().
/// Precondition: offset + out.size() does not overflow (the caller's access
/// plan has already clipped the request to the BAR, §5.1 steps 2–3).
inline std::size_t read_window(memory_view mem, std::uint64_t offset, std::span<std::byte> out) noexcept {
  return detail::read_window_with<detail::volatile_io>(mem, offset, out);
}

/// Write `in` to the window at `offset`: the part inside the memory is copied
/// (write_memory), the rest is dropped (§5.2). Returns in.size().
/// Precondition: offset + in.size() does not overflow.
inline std::size_t write_window(memory_view mem, std::uint64_t offset, std::span<const std::byte> in) noexcept {
  return detail::write_window_with<detail::volatile_io>(mem, offset, in);
}

}  // namespace nvgrace::mem
