#pragma once
/// \file
/// Internals shared by the owning memory types: length validation, page
/// rounding and the shared read/write mapping they all hold.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/posix/mapping.hpp>

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <nvgrace/core/errc.hpp>

namespace nvgrace::mem::detail {

/// `length` rounded up to whole pages, or EOVERFLOW.
[[nodiscard]] inline result<std::uint64_t> round_to_pages(std::uint64_t length) noexcept {
  const std::uint64_t page = posix::page_size();
  const auto padded = checked_add(length, page - 1);
  if (!padded) return padded.error();
  return align_down(*padded, page);
}

/// Validate a requested memory length and give its mapping length: 0 is
/// EINVAL (mmap(2) maps nothing of length 0); a length that does not fit a
/// size_t / off_t, or overflows when rounded to pages, is EOVERFLOW.
[[nodiscard]] inline result<std::uint64_t> mapping_length(std::uint64_t length) noexcept {
  if (length == 0) return errc::invalid_argument;
  if (length > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
      length > std::numeric_limits<std::size_t>::max())
    return errc::value_too_large;
  return round_to_pages(length);
}

/// A MAP_SHARED read/write mapping of `length` (a page multiple, as
/// mapping_length gives) bytes of `fd` at `offset` (page multiple), or of
/// anonymous shared memory when fd < 0. `extra_flags` are OR-ed into MAP_SHARED.
[[nodiscard]] inline result<posix::mapping> map_shared(std::uint64_t length, int fd, std::uint64_t offset,
                                                       int extra_flags = 0) noexcept {
  const int flags = MAP_SHARED | extra_flags | (fd < 0 ? MAP_ANONYMOUS : 0);
  return posix::mapping::map(static_cast<std::size_t>(length), PROT_READ | PROT_WRITE, flags, fd, offset);
}

}  // namespace nvgrace::mem::detail
