#pragma once
/// \file
/// Device memory backed by a file descriptor (a memfd, or a regular file for
/// memory that persists), mapped shared in this process and mappable again by
/// fd + offset: by another process (vfio-user passes the fd) or by this one
/// (the in-process device's mmap).
///
/// Whoever holds the fd can change the file's size, and a mapping touched past
/// the file's end raises SIGBUS. A memfd made by `create` is therefore sealed:
/// its size can neither shrink nor grow, and no seal can be added (which also
/// keeps anyone from sealing out the writable mappings of later users). A
/// regular file cannot be sealed: code that touches the mapping of a file
/// someone else may truncate wraps the access in posix::guard_faults
/// (posix/fault_guard.hpp), as the vfio-user server does. `size_sealed()`
/// tells the two apart.

#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/mem/detail/mapping.hpp>
#include <nvgrace/mem/device_memory.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/posix/unique_fd.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <limits>
#include <utility>

namespace nvgrace::mem {

/// Owns a file descriptor and a `MAP_SHARED` mapping of `length()` bytes of it
/// at `source().offset`. Three factories:
/// - `create`: a fresh memfd (`memfd_create` + `ftruncate`), zero-filled;
/// - `open_file`: a regular file opened or created at a path, extended with
///   zeros to at least `length` bytes (never shortened), for memory that must
///   outlive the process;
/// - `adopt`: an fd received from elsewhere (e.g. over a socket) and the
///   offset of the memory in it.
/// Move-only; a default-constructed object is empty (fd -1).
class memfd_memory {
public:
  memfd_memory() noexcept = default;
  memfd_memory(memfd_memory&& other) noexcept
      : fd_(std::move(other.fd_)),
        mapping_(std::move(other.mapping_)),
        offset_(std::exchange(other.offset_, 0)),
        length_(std::exchange(other.length_, 0)),
        mode_(other.mode_),
        size_sealed_(std::exchange(other.size_sealed_, false)) {}
  memfd_memory& operator=(memfd_memory&& other) noexcept {
    mapping_ = std::move(other.mapping_);
    fd_ = std::move(other.fd_);
    offset_ = std::exchange(other.offset_, 0);
    length_ = std::exchange(other.length_, 0);
    mode_ = other.mode_;
    size_sealed_ = std::exchange(other.size_sealed_, false);
    return *this;
  }
  memfd_memory(const memfd_memory&) = delete;
  memfd_memory& operator=(const memfd_memory&) = delete;
  ~memfd_memory() = default;

  /// A new memfd named `name` (shown in /proc/PID/fd; at most 249 bytes) of
  /// `length` zero bytes, close-on-exec, sealed with F_SEAL_SHRINK,
  /// F_SEAL_GROW and F_SEAL_SEAL (its size is fixed for every holder of the
  /// fd). Errors: EINVAL for length 0, EOVERFLOW for a length beyond off_t or
  /// page rounding, otherwise the errno of memfd_create, ftruncate, fcntl or mmap.
  [[nodiscard]] static result<memfd_memory> create(std::uint64_t length, caching mode = caching::cached,
                                                   const char* name = "nvgrace-memory") noexcept {
    const auto mapped = detail::mapping_length(length);
    if (!mapped) return mapped.error();
    posix::unique_fd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd) return posix::last_error();
    if (::ftruncate(fd.get(), static_cast<off_t>(length)) != 0) return posix::last_error();
    if (::fcntl(fd.get(), F_ADD_SEALS, size_seals | F_SEAL_SEAL) != 0) return posix::last_error();
    return map(std::move(fd), 0, length, *mapped, mode);
  }

  /// The regular file at `path`, created (mode 0600) if missing and extended
  /// with zeros if shorter than `length`; its first `length` bytes are the
  /// memory. Not sealable: anyone given `source().fd` can truncate the file
  /// (see the class comment). Errors: as `create`, plus open(2)'s errno, and
  /// EINVAL when the path is not a regular file.
  [[nodiscard]] static result<memfd_memory> open_file(const char* path, std::uint64_t length,
                                                      caching mode = caching::cached) noexcept {
    const auto mapped = detail::mapping_length(length);
    if (!mapped) return mapped.error();
    posix::unique_fd fd(::open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return posix::last_error();
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return posix::last_error();
    if (!S_ISREG(st.st_mode)) return errc::invalid_argument;
    if (static_cast<std::uint64_t>(st.st_size) < length && ::ftruncate(fd.get(), static_cast<off_t>(length)) != 0)
      return posix::last_error();
    return map(std::move(fd), 0, length, *mapped, mode);
  }

  /// Take ownership of `fd` (closed on failure too) and map `length` bytes of
  /// it at `offset`. Errors: EBADF for a negative fd, EINVAL for length 0, an
  /// offset that is not page-aligned, or a regular file shorter than
  /// offset + length (touching a mapping past the end of a file would raise
  /// SIGBUS), EOVERFLOW when offset + length overflows, otherwise fstat's or
  /// mmap's errno.
  [[nodiscard]] static result<memfd_memory> adopt(int fd, std::uint64_t offset, std::uint64_t length,
                                                  caching mode = caching::cached) noexcept {
    if (fd < 0) return errc::bad_file_descriptor;
    posix::unique_fd owned(fd);
    const auto mapped = detail::mapping_length(length);
    if (!mapped) return mapped.error();
    if (!is_aligned(offset, posix::page_size())) return errc::invalid_argument;
    const auto end = checked_add(offset, length);
    if (!end || *end > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return errc::value_too_large;
    struct stat st {};
    if (::fstat(owned.get(), &st) != 0) return posix::last_error();
    if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) < *end) return errc::invalid_argument;
    return map(std::move(owned), offset, length, *mapped, mode);
  }

  /// The memory as the copy path sees it.
  [[nodiscard]] memory_view view() const noexcept { return {mapping_.data(), length_, mode_}; }
  /// Where to map the same memory again: this object's fd and the memory's offset in it.
  /// The fd stays owned by this object (dup it to hand it on).
  [[nodiscard]] map_source source() const noexcept { return {fd_.get(), offset_}; }
  /// True when no holder of the fd can shrink or grow the file (a memfd sealed
  /// with F_SEAL_SHRINK and F_SEAL_GROW: every `create`d one, and an adopted
  /// one sealed so by its maker), so the mapping can never fault.
  [[nodiscard]] bool size_sealed() const noexcept { return size_sealed_; }
  /// The exact length of the memory (the mapping is rounded up to pages).
  [[nodiscard]] std::uint64_t length() const noexcept { return length_; }
  /// True for a default-constructed or moved-from object.
  [[nodiscard]] bool empty() const noexcept { return length_ == 0; }

private:
  [[nodiscard]] static result<memfd_memory> map(posix::unique_fd fd, std::uint64_t offset, std::uint64_t length,
                                                std::uint64_t mapped_length, caching mode) noexcept {
    auto mapping = detail::map_shared(mapped_length, fd.get(), offset);
    if (!mapping) return mapping.error();
    memfd_memory m;
    m.fd_ = std::move(fd);
    m.mapping_ = std::move(mapping).value();
    m.offset_ = offset;
    m.length_ = length;
    m.mode_ = mode;
    const int seals = ::fcntl(m.fd_.get(), F_GET_SEALS);  // EINVAL for a file that is not a memfd
    m.size_sealed_ = seals >= 0 && (seals & size_seals) == size_seals;
    return m;
  }

  static constexpr int size_seals = F_SEAL_SHRINK | F_SEAL_GROW;

  posix::unique_fd fd_;
  posix::mapping mapping_;
  std::uint64_t offset_ = 0;
  std::uint64_t length_ = 0;
  caching mode_ = caching::cached;
  bool size_sealed_ = false;
};

static_assert(mappable_memory<memfd_memory>);

}  // namespace nvgrace::mem
