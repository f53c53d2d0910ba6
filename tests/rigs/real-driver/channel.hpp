#pragma once
// The guest → host channel of the real-driver rig: a memory the guest writes and
// the host reads after QEMU exits.
//
// It is QEMU's ivshmem-plain device, whose BAR2 is a host file (memory-backend-file,
// share=on). The guest maps BAR2 through sysfs (/sys/bus/pci/devices/BDF/resource2),
// the host maps the file: the same bytes, no driver, no copy, no console parsing. The
// serial console would also work, but it carries kernel messages, is slow under TCG
// for megabytes of records, and needs escaping for binary data.
//
// Layout: a 4 KiB directory (magic, then up to 63 named blobs), then the blobs,
// each 4 KiB-aligned. A blob's length grows while its writer runs, so a crash still
// leaves what was written; `done` is set last.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace nvgrace::rig {

struct channel_entry {
  char name[40];
  std::uint64_t offset;
  std::uint64_t length;
  std::uint64_t done;
};
static_assert(sizeof(channel_entry) == 64);

struct channel_header {
  char magic[8];
  std::uint64_t next_free;
  std::uint32_t count;
  std::uint32_t reserved[11];
  channel_entry entries[63];
};
static_assert(sizeof(channel_header) == 4096);

inline constexpr char channel_magic[8] = {'N', 'V', 'G', 'R', 'I', 'G', 'C', '1'};

/// A mapping of the channel (sysfs resource file in the guest, the backing file on the host).
class channel {
public:
  channel() = default;
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  ~channel() {
    if (base_ != nullptr) ::munmap(base_, size_);
  }

  /// Map `path` read-write (`writable`) or read-only. False on failure (errno set).
  bool open(const char* path, bool writable) {
    const int fd = ::open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(2 * sizeof(channel_header))) {
      ::close(fd);
      return false;
    }
    size_ = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size_, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return false;
    base_ = static_cast<std::byte*>(p);
    return true;
  }

  [[nodiscard]] channel_header& header() const { return *reinterpret_cast<channel_header*>(base_); }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] std::byte* at(std::uint64_t offset) const { return base_ + offset; }

  /// Make the directory valid (the guest does this once; the file starts zeroed).
  void init_if_blank() {
    channel_header& h = header();
    if (std::memcmp(h.magic, channel_magic, sizeof channel_magic) == 0) return;
    std::memset(&h, 0, sizeof h);
    h.next_free = sizeof(channel_header);
    std::memcpy(h.magic, channel_magic, sizeof channel_magic);
  }

  /// Start a blob named `name` taking the rest of the channel; nullptr when full.
  channel_entry* begin_blob(std::string_view name) {
    channel_header& h = header();
    if (h.count >= 63 || h.next_free >= size_) return nullptr;
    channel_entry& e = h.entries[h.count];
    std::memset(&e, 0, sizeof e);
    std::memcpy(e.name, name.data(), std::min<std::size_t>(name.size(), sizeof e.name - 1));
    e.offset = h.next_free;
    ++h.count;
    return &e;
  }
  /// Room left for the blob `e` (it is always the last one).
  [[nodiscard]] std::uint64_t room(const channel_entry& e) const { return size_ - e.offset; }
  /// Close blob `e` at `length` bytes.
  void end_blob(channel_entry& e, std::uint64_t length) {
    e.length = length;
    header().next_free = (e.offset + length + 4095) / 4096 * 4096;
    e.done = 1;
    ::msync(base_, size_, MS_SYNC);
  }

  /// The blob named `name` (the last one of that name), or nullptr.
  [[nodiscard]] const channel_entry* find(std::string_view name) const {
    const channel_header& h = header();
    if (std::memcmp(h.magic, channel_magic, sizeof channel_magic) != 0) return nullptr;
    const channel_entry* found = nullptr;
    for (std::uint32_t i = 0; i < h.count && i < 63; ++i)
      if (std::string_view(h.entries[i].name, ::strnlen(h.entries[i].name, sizeof h.entries[i].name)) == name)
        found = &h.entries[i];
    return found;
  }
  [[nodiscard]] std::span<const std::byte> bytes(const channel_entry& e) const {
    if (e.offset > size_ || e.length > size_ - e.offset) return {};
    return {base_ + e.offset, static_cast<std::size_t>(e.length)};
  }

private:
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
};

/// The head of the "diff" blob; records (48 bytes + payload, 8-aligned) follow.
struct diff_header {
  char magic[8];  ///< "NVGRDIF1"
  std::uint64_t seed;
  std::uint64_t total;       ///< operations planned
  std::uint64_t done;        ///< operations whose records follow
  std::uint64_t elapsed_ns;  ///< wall time of the run so far
  std::uint64_t open_errno;  ///< the first open's errno (0: opened)
  std::uint64_t reserved[10];
};
static_assert(sizeof(diff_header) == 128);
inline constexpr char diff_magic[8] = {'N', 'V', 'G', 'R', 'D', 'I', 'F', '1'};

}  // namespace nvgrace::rig
