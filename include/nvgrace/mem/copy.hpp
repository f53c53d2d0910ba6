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
/// vfio chunk plan (vfio/chunk_plan.hpp). A register-sized access (1, 2, 4 or
/// 8 bytes, naturally aligned) is one move either way: read_word / write_word,
/// for callers that have already decided it lies wholly in memory.
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
// - one access: a count of 1, 2, 4 or 8 at an address aligned to it (a guest's
//   register access, the common case) is a plan of that one access;
// - head: at most one 1-, one 2- and one 4-byte access, each taken when the
//   address has that bit set and enough bytes remain, reach 8-alignment;
// - body: 8-byte accesses while 8 bytes remain (four per turn, then one by one);
// - tail: at most one 4-, one 2- and one 1-byte access, as the remainder allows.
// If the head stops early (too few bytes for the next step) the remainder is
// below that step's width and its address is aligned to it, so the tail's
// narrower accesses are still what the rule picks. tests/mem checks this
// against vfio::chunks for every base alignment, offset and length.
//
// `remaining` shrinks only under a guard that it is large enough, never as
// `count - done`: that keeps every step's bound visible to GCC's range
// analysis, which otherwise warns (-Wstringop-overflow) about 8-byte steps it
// cannot rule out when a small constant count is inlined.

/// True when `count` bytes at `address` of memory touched as `mode` are one
/// uncached, naturally aligned access: uncached, a count of 1, 2, 4 or 8, and
/// an address that is a multiple of it. Computed as one word that is zero
/// exactly then, so the caller tests it with one branch: count & (count - 1)
/// is zero only for a power of two, address & (count - 1) only when aligned,
/// count & ~15 only below 16, and the last term only for uncached memory.
[[nodiscard, gnu::always_inline]] inline bool single_access(caching mode, std::uintptr_t address,
                                                            std::size_t count) noexcept {
  static_assert(static_cast<unsigned>(caching::cached) == 0 && static_cast<unsigned>(caching::uncached) == 1);
  const std::size_t cached = static_cast<std::size_t>(mode) ^ 1u;
  return (((address | count) & (count - 1)) | (count & ~std::size_t{15}) | cached) == 0;
}

/// Zero exactly when `count` bytes at `address` are one naturally aligned
/// access of 1, 2, 4 or 8 bytes. For such a count, count − 1 has just the bits
/// below the width, which neither the count nor ~7 has, and the address has
/// none of them when aligned. Any other count shares a bit with count − 1
/// (3, 5, 6, 7 with themselves; 0 and everything above 8 with ~7). One word,
/// so the caller can fold other conditions in and test once.
[[nodiscard, gnu::always_inline]] constexpr std::uint64_t word_misfit(std::uintptr_t address,
                                                                      std::size_t count) noexcept {
  return (static_cast<std::uint64_t>(address) | count | ~std::uint64_t{7}) & (std::uint64_t{count} - 1);
}

/// Uncached read of `count` > 0 bytes at `device` into `user`: the general plan.
template <class Io>
inline void chunked_read_plan(const std::byte* device, std::byte* user, std::size_t count) noexcept {
  const std::byte* d = device;
  std::byte* u = user;
  std::size_t remaining = count;
  const auto address = reinterpret_cast<std::uintptr_t>(device);
  if ((address & 7u) != 0) [[unlikely]] {
    if ((address & 1u) != 0 && remaining >= 1) {
      load_chunk<Io, std::uint8_t>(d, u);
      d += 1;
      u += 1;
      remaining -= 1;
    }
    if ((reinterpret_cast<std::uintptr_t>(d) & 2u) != 0 && remaining >= 2) {
      load_chunk<Io, std::uint16_t>(d, u);
      d += 2;
      u += 2;
      remaining -= 2;
    }
    if ((reinterpret_cast<std::uintptr_t>(d) & 4u) != 0 && remaining >= 4) {
      load_chunk<Io, std::uint32_t>(d, u);
      d += 4;
      u += 4;
      remaining -= 4;
    }
  }
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

/// Uncached write of `count` > 0 bytes from `user` to `device`: the general plan.
template <class Io>
inline void chunked_write_plan(std::byte* device, const std::byte* user, std::size_t count) noexcept {
  std::byte* d = device;
  const std::byte* u = user;
  std::size_t remaining = count;
  const auto address = reinterpret_cast<std::uintptr_t>(device);
  if ((address & 7u) != 0) [[unlikely]] {
    if ((address & 1u) != 0 && remaining >= 1) {
      store_chunk<Io, std::uint8_t>(d, u);
      d += 1;
      u += 1;
      remaining -= 1;
    }
    if ((reinterpret_cast<std::uintptr_t>(d) & 2u) != 0 && remaining >= 2) {
      store_chunk<Io, std::uint16_t>(d, u);
      d += 2;
      u += 2;
      remaining -= 2;
    }
    if ((reinterpret_cast<std::uintptr_t>(d) & 4u) != 0 && remaining >= 4) {
      store_chunk<Io, std::uint32_t>(d, u);
      d += 4;
      u += 4;
      remaining -= 4;
    }
  }
  // Four 8-byte accesses per turn, as in the read.
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

/// The one access of single_access(mode, device, count): 8, 4, 2 or 1 bytes.
template <class Io>
[[gnu::always_inline]] inline void single_load(const std::byte* device, std::byte* user, std::size_t count) noexcept {
  if (count >= 4) {
    if (count == 8)
      load_chunk<Io, std::uint64_t>(device, user);
    else
      load_chunk<Io, std::uint32_t>(device, user);
  } else {
    if (count == 2)
      load_chunk<Io, std::uint16_t>(device, user);
    else
      load_chunk<Io, std::uint8_t>(device, user);
  }
}

/// The one store of single_access(mode, device, count): 8, 4, 2 or 1 bytes.
template <class Io>
[[gnu::always_inline]] inline void single_store(std::byte* device, const std::byte* user, std::size_t count) noexcept {
  if (count >= 4) {
    if (count == 8)
      store_chunk<Io, std::uint64_t>(device, user);
    else
      store_chunk<Io, std::uint32_t>(device, user);
  } else {
    if (count == 2)
      store_chunk<Io, std::uint16_t>(device, user);
    else
      store_chunk<Io, std::uint8_t>(device, user);
  }
}

// copy_out / copy_in are forced inline, so that at every call site a cached
// copy is a direct memcpy call and a single uncached access a single
// instruction (GCC declines to inline them into the device's read path
// otherwise, which cost 1–4 ns per access). The single uncached access is laid
// out first, on the straight path: it costs about a cycle, so a taken branch
// to reach it and one back would double it, while a memcpy call costs tens of
// cycles and does not notice one taken branch.

/// Cached or uncached copy of `count` > 0 bytes from device memory to the user buffer.
template <class Io>
[[gnu::always_inline]] inline void copy_out(const std::byte* device, caching mode, std::byte* user,
                                            std::size_t count) noexcept {
  if (single_access(mode, reinterpret_cast<std::uintptr_t>(device), count)) [[likely]] {
    single_load<Io>(device, user, count);
  } else if (mode == caching::cached) {
    std::memcpy(user, device, count);
  } else {
    chunked_read_plan<Io>(device, user, count);
  }
}

/// Cached or uncached copy of `count` > 0 bytes from the user buffer to device memory.
template <class Io>
[[gnu::always_inline]] inline void copy_in(std::byte* device, caching mode, const std::byte* user,
                                           std::size_t count) noexcept {
  if (single_access(mode, reinterpret_cast<std::uintptr_t>(device), count)) [[likely]] {
    single_store<Io>(device, user, count);
  } else if (mode == caching::cached) {
    std::memcpy(device, user, count);
  } else {
    chunked_write_plan<Io>(device, user, count);
  }
}

// The word moves of read_word / write_word, with the access policy as a
// parameter. 8 bytes is tested first and falls straight through: a VMM's
// register accesses are mostly 8 and 4 bytes wide.
template <class Io>
[[gnu::always_inline]] inline void read_word_with(const std::byte* device, std::byte* user,
                                                  std::size_t count) noexcept {
  NVGRACE_EXPECTS(word_misfit(reinterpret_cast<std::uintptr_t>(device), count) == 0);
  if (count == 8) [[likely]]
    load_chunk<Io, std::uint64_t>(device, user);
  else if (count == 4)
    load_chunk<Io, std::uint32_t>(device, user);
  else if (count == 2)
    load_chunk<Io, std::uint16_t>(device, user);
  else
    load_chunk<Io, std::uint8_t>(device, user);
}
template <class Io>
[[gnu::always_inline]] inline void write_word_with(std::byte* device, const std::byte* user,
                                                   std::size_t count) noexcept {
  NVGRACE_EXPECTS(word_misfit(reinterpret_cast<std::uintptr_t>(device), count) == 0);
  if (count == 8) [[likely]]
    store_chunk<Io, std::uint64_t>(device, user);
  else if (count == 4)
    store_chunk<Io, std::uint32_t>(device, user);
  else if (count == 2)
    store_chunk<Io, std::uint16_t>(device, user);
  else
    store_chunk<Io, std::uint8_t>(device, user);
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
  const std::size_t count = out.size();
  // The common case first, tested with two compares and left straight away:
  // wholly inside the memory and not empty (count - 1 wraps for 0). One copy, no fill.
  if (offset < mem.length && count - 1 < mem.length - offset) [[likely]] {
    copy_out<Io>(mem.base + offset, mem.caching, out.data(), count);
    return count;
  }
  const auto in_memory = static_cast<std::size_t>(in_memory_count(mem.length, offset, count));
  if (in_memory != 0) copy_out<Io>(mem.base + offset, mem.caching, out.data(), in_memory);
  if (in_memory != count) fill(out.data() + in_memory, count - in_memory);
  return count;
}

template <class Io>
inline std::size_t write_window_with(memory_view mem, std::uint64_t offset, std::span<const std::byte> in) noexcept {
  NVGRACE_EXPECTS(in.size() <= ~offset);
  const std::size_t count = in.size();
  // As in read_window_with: wholly inside the memory and not empty first.
  if (offset < mem.length && count - 1 < mem.length - offset) [[likely]] {
    copy_in<Io>(mem.base + offset, mem.caching, in.data(), count);
    return count;
  }
  const auto in_memory = static_cast<std::size_t>(in_memory_count(mem.length, offset, count));
  if (in_memory != 0) copy_in<Io>(mem.base + offset, mem.caching, in.data(), in_memory);
  return count;  // the part past the memory is dropped (§5.2)
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

/// True when `count` bytes at `address` are one naturally aligned access of
/// 1, 2, 4 or 8 bytes: a guest's register-sized access, which the word
/// functions below move with one instruction.
[[nodiscard]] constexpr bool is_word_access(std::uintptr_t address, std::size_t count) noexcept {
  return detail::word_misfit(address, count) == 0;
}

/// Copy the `count` bytes of memory at `device` to `user` with one volatile
/// access of their size: the whole §5.3 chunk plan of such an access, and a
/// correct copy of cached memory too, so it needs no caching mode.
/// Precondition: is_word_access(device, count).
[[gnu::always_inline]] inline void read_word(const std::byte* device, std::byte* user, std::size_t count) noexcept {
  detail::read_word_with<detail::volatile_io>(device, user, count);
}

/// Copy `count` bytes from `user` to the memory at `device` with one volatile
/// store of their size. Precondition: is_word_access(device, count).
[[gnu::always_inline]] inline void write_word(std::byte* device, const std::byte* user, std::size_t count) noexcept {
  detail::write_word_with<detail::volatile_io>(device, user, count);
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
