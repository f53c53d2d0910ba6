#pragma once
/// \file
/// The VMM side of a VFIO device, written once against `device_file`
/// (vfio/device_file.hpp) so it runs unchanged over every backend: the
/// in-process shim, a real /dev/vfio device and a vfio-user client.
///
/// What it does, in the order a VMM does it:
/// - discovers the regions by index (GET_REGION_INFO with a bounded argsz
///   retry loop; an index the device answers with EINVAL, such as VGA on a
///   non-VGA device, is *absent*, not an error) and decodes their capabilities;
/// - maps every sparse-mmap area (or the whole region when it has no sparse
///   capability) so that huge pages can back it: it reserves address space,
///   aligns the start to min(1 GiB, the largest power of two ≤ the area
///   length) and maps the area there with MAP_FIXED through the device file,
///   unwinding every earlier mapping if one fails;
/// - routes each access: wholly inside a mapped area → the copy path
///   (mem/copy.hpp) on the mapping, no system call; otherwise one pread or
///   pwrite on the device file. The byte count is returned as the device gave
///   it, so a short transfer stays visible. An aligned access of 1, 2, 4 or 8
///   bytes inside its region's first mapping is a few instructions inline;
///   everything else is one call;
/// - sizes BARs through config space as VMMs do, and reads/writes config
///   registers of 1, 2, 4 or 8 bytes.
///
/// How the mapped fast path touches a region's memory (plain copies, or the
/// aligned uncached chunk path) is not guessed: the caller's policy says it
/// (`accessor_options::uncached_regions`, e.g. grace::uncached_regions for a
/// Grace device), else the device says it when it can
/// (`region_caching(index)`, which the in-process device has), else it is
/// cached. `access::open(file)` opens one with the type deduced.
///
/// Capacities are fixed (no allocation): `max_regions` regions,
/// `max_sparse_areas` areas per region, replies up to `max_region_info_size`
/// bytes. A device that exceeds them is refused with E2BIG.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/detail/minmax.hpp>
#include <nvgrace/grace/mmap.hpp>
#include <nvgrace/mem/copy.hpp>
#include <nvgrace/mem/device_memory.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

namespace nvgrace::access {

/// Most regions an accessor tracks (vfio-pci has 9 plus device-specific ones).
inline constexpr std::uint32_t max_regions = 16;
/// Most sparse-mmap areas per region.
inline constexpr std::uint32_t max_sparse_areas = 8;
/// Largest region-info reply accepted (the retry loop never asks for more).
inline constexpr std::uint32_t max_region_info_size = 1024;
/// How many times GET_REGION_INFO is asked before a device that keeps asking
/// for a bigger argsz is declared broken (EPROTO).
inline constexpr unsigned region_info_attempts = 4;
static_assert(max_regions <= 32, "region presence is a 32-bit mask");
/// The largest alignment a mapping is given (a PUD-sized huge page).
inline constexpr std::uint64_t max_mapping_alignment = 1 * GiB;

/// One mmap-able part of a region, as the device described it.
struct area {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  friend constexpr bool operator==(area, area) = default;
};

/// A part of a region mapped into this process (the accessor owns the mapping).
struct mapped_area {
  std::uint64_t offset = 0;  ///< offset of the first mapped byte inside the region
  std::uint64_t length = 0;  ///< bytes mapped (whole pages)
  std::byte* base = nullptr;
  std::uint64_t file_offset = 0;  ///< the device-file offset it was mapped from
};

/// Everything the accessor knows about one region index that exists.
struct region_description {
  /// The final reply, every field as the device wrote it.
  vfio::region_info info{};
  /// True when the reply carried a sparse-mmap capability; then only `areas`
  /// may be mapped. Without it a mappable region is one area [0, size).
  bool has_sparse_mmap = false;
  std::array<area, max_sparse_areas> areas{};
  std::uint32_t area_count = 0;
  std::optional<vfio::region_type> type;
  bool msix_mappable = false;
  /// How the mapped fast path touches this region's memory.
  mem::caching caching = mem::caching::cached;
  std::array<mapped_area, max_sparse_areas> mapped{};
  std::uint32_t mapped_count = 0;

  [[nodiscard]] constexpr std::uint64_t size() const noexcept { return info.size; }
  [[nodiscard]] constexpr std::uint32_t flags() const noexcept { return info.flags; }
  [[nodiscard]] constexpr std::uint64_t file_offset() const noexcept { return info.offset; }
  [[nodiscard]] constexpr bool readable() const noexcept { return (info.flags & vfio::region_flags::read) != 0; }
  [[nodiscard]] constexpr bool writable() const noexcept { return (info.flags & vfio::region_flags::write) != 0; }
  [[nodiscard]] constexpr bool mappable() const noexcept { return (info.flags & vfio::region_flags::mmap) != 0; }
  [[nodiscard]] constexpr std::span<const area> sparse_areas() const noexcept {
    return std::span<const area>(areas).first(area_count);
  }
  [[nodiscard]] constexpr std::span<const mapped_area> mappings() const noexcept {
    return std::span<const mapped_area>(mapped).first(mapped_count);
  }
};

/// A BAR as sizing through config space shows it.
struct bar_info {
  unsigned bar = 0;          ///< BAR number 0..5
  bool implemented = false;  ///< false: reads back 0, or the upper half of a 64-bit BAR
  bool upper_half = false;   ///< this register is the high dword of BAR `bar - 1`
  bool is_io = false;
  bool is_64bit = false;
  bool prefetchable = false;
  std::uint64_t size = 0;
  friend constexpr bool operator==(const bar_info&, const bar_info&) = default;
};

/// Choices made when opening an accessor.
struct accessor_options {
  /// Map every mmap-able area at open. When false, call map_areas() later or
  /// route everything through pread/pwrite.
  bool map_areas = true;
  /// The caller's caching policy: bit i set → region i's mapped memory is
  /// touched only with the uncached chunk path, clear → plain copies. nullopt
  /// → ask the device (`region_caching`), else cached. The chunk path is valid
  /// on cached memory too, so marking a region uncached costs speed, never
  /// correctness.
  std::optional<std::uint32_t> uncached_regions;

  /// These options with the caching policy `mask` (bit i: region i uncached).
  [[nodiscard]] constexpr accessor_options with_uncached(std::uint32_t mask) const noexcept {
    accessor_options o = *this;
    o.uncached_regions = mask;
    return o;
  }
};

/// The other byte types a buffer may be made of (std::uint8_t is unsigned
/// char on every platform nvgrace runs on).
template <class B>
concept byte_like = std::same_as < std::remove_const_t<B>,
unsigned char > || std::same_as<std::remove_const_t<B>, char>;

/// Map every mmap-able area at open (the default).
inline constexpr accessor_options map_all{true, std::nullopt};
/// Map nothing at open: every access is a pread/pwrite until map_areas().
inline constexpr accessor_options map_none{false, std::nullopt};

/// A device file that tells when the mappings made through it were zapped
/// (reset, memory decode off, low power: the driver's fault-based mappings).
/// Detected, not required; a real /dev/vfio device refaults by itself.
template <class F>
concept knows_mapping_generation = requires(const F& f) {
  { f.mapping_generation() } -> std::same_as<std::uint64_t>;
};

/// A device file whose fault handler can be asked for a touch of a mapping.
template <class F>
concept has_fault_handler = requires(F& f, const grace::vma& v, std::uint64_t address, unsigned order) {
  { f.fault(v, address, order) } -> std::same_as<grace::fault_decision>;
};

/// A device file that knows how its regions' memory must be touched. Detected,
/// not required.
template <class F>
concept knows_region_caching = requires(const F& f, std::uint32_t index) {
  { f.region_caching(index) } -> std::same_as<std::optional<mem::caching>>;
};

/// GET_REGION_INFO for `index` into `buffer` with a bounded argsz retry loop:
/// ask with argsz 32; while the reply asks for more, ask again with what it
/// asked for (at most region_info_attempts times). Returns the argsz of the
/// final request (the number of meaningful bytes in `buffer`). Errors: the
/// device's (EINVAL = no such region); E2BIG when a reply asks for more than
/// `buffer` holds; EPROTO when the device keeps asking for more.
template <vfio::device_file File>
[[nodiscard]] result<std::uint32_t> query_region_info(File& file, std::uint32_t index,
                                                      std::span<std::byte> buffer) noexcept {
  NVGRACE_EXPECTS(buffer.size() >= vfio::region_info_size);
  std::uint32_t argsz = vfio::region_info_size;
  for (unsigned attempt = 0; attempt < region_info_attempts; ++attempt) {
    for (std::size_t i = 0; i < argsz; ++i) buffer[i] = std::byte{0};
    store_le<std::uint32_t>(buffer, 0, argsz);
    store_le<std::uint32_t>(buffer, 8, index);
    if (auto s = file.get_region_info(buffer.first(argsz)); !s) return s.error();
    const std::uint32_t wanted = load_le<std::uint32_t>(buffer, 0);
    if (wanted <= argsz) return argsz;
    if (wanted > buffer.size()) return errc::argument_list_too_long;
    argsz = wanted;
  }
  return errc::protocol_error;
}

namespace detail {

/// The error of a backend call's result, or no error.
template <class R>
[[nodiscard]] constexpr errc error_of(const R& r) noexcept {
  return r.has_value() ? errc{} : r.error();
}

}  // namespace detail

/// The VMM-side view of an open device. Holds a reference to the device file
/// (which must outlive it) and owns the mappings it made. Move-only.
///
/// Thread safety: after open (and map_areas) the region table is read-only,
/// so read/write may be called from many threads at once; map_areas,
/// unmap_areas and moving the accessor must not race with them.
template <vfio::device_file File>
class accessor {
public:
  accessor(const accessor&) = delete;
  accessor& operator=(const accessor&) = delete;
  accessor(accessor&& other) noexcept
      : file_(std::exchange(other.file_, nullptr)),
        device_info_(other.device_info_),
        region_count_(std::exchange(other.region_count_, 0)),
        present_(std::exchange(other.present_, 0)),
        mapped_generation_(other.mapped_generation_),
        regions_(other.regions_),
        words_(std::exchange(other.words_, {})),
        owners_(std::move(other.owners_)) {
    for (auto& r : other.regions_) r.mapped_count = 0;  // the mappings moved with us
  }
  accessor& operator=(accessor&& other) noexcept {
    if (this != &other) {
      unmap_areas();
      file_ = std::exchange(other.file_, nullptr);
      device_info_ = other.device_info_;
      region_count_ = std::exchange(other.region_count_, 0);
      present_ = std::exchange(other.present_, 0);
      mapped_generation_ = other.mapped_generation_;
      regions_ = other.regions_;
      words_ = std::exchange(other.words_, {});
      owners_ = std::move(other.owners_);
      for (auto& r : other.regions_) r.mapped_count = 0;
    }
    return *this;
  }
  ~accessor() = default;  // the owners unmap

  /// Query the device and every region, then (by default) map every
  /// mmap-able area. Errors: GET_DEVICE_INFO's; a region query's other than
  /// EINVAL (which marks the region absent); E2BIG beyond the fixed
  /// capacities; EBADMSG/ENOBUFS/EINVAL from decoding a malformed capability
  /// chain; a mapping's error (every mapping made is undone first).
  [[nodiscard]] static result<accessor> open(File& file, accessor_options options = {}) noexcept {
    accessor a(file);
    const auto info = file.get_device_info();
    if (!info) return info.error();
    a.device_info_ = *info;
    if (info->num_regions > max_regions) return errc::argument_list_too_long;
    a.region_count_ = info->num_regions;
    for (std::uint32_t index = 0; index < a.region_count_; ++index) {
      if (auto s = a.discover(index, options); !s) return s.error();
    }
    if (options.map_areas) {
      if (auto s = a.map_areas(); !s) return s.error();
    }
    return a;
  }

  /// The device file. Precondition: not moved from.
  [[nodiscard]] File& file() const noexcept {
    NVGRACE_EXPECTS(file_ != nullptr);
    return *file_;
  }
  [[nodiscard]] const vfio::device_info& device_info() const noexcept { return device_info_; }
  /// Number of region indices the device reports (num_regions).
  [[nodiscard]] std::uint32_t region_count() const noexcept { return region_count_; }
  /// Whether region `index` exists (GET_REGION_INFO answered it).
  [[nodiscard]] bool has_region(std::uint32_t index) const noexcept {
    return index < region_count_ && ((present_ >> index) & 1u) != 0;
  }
  /// Region `index`, or nullopt when the index is out of range or absent.
  [[nodiscard]] std::optional<region_description> find_region(std::uint32_t index) const noexcept {
    if (!has_region(index)) return std::nullopt;
    return regions_[index];
  }

  /// Map every mmap-able area of every region not mapped yet. On failure
  /// every mapping (including earlier regions') is undone and the error is
  /// returned; the accessor then routes everything through the device file.
  [[nodiscard]] status map_areas() noexcept {
    if constexpr (knows_mapping_generation<File>) mapped_generation_ = file_->mapping_generation();
    for (std::uint32_t index = 0; index < region_count_; ++index) {
      region_description& r = regions_[index];
      if (!has_region(index) || !r.mappable() || r.mapped_count != 0) continue;
      const area whole{0, r.size()};
      const std::span<const area> areas = r.has_sparse_mmap ? r.sparse_areas() : std::span<const area>(&whole, 1);
      for (const area& a : areas) {
        auto m = map_area(r, a);
        if (!m) {
          unmap_areas();
          return m.error();
        }
        if (m->size() == 0) continue;
        r.mapped[r.mapped_count] = {a.offset, m->size(), m->data(), r.file_offset() + a.offset};
        owner(index, r.mapped_count) = std::move(*m);
        ++r.mapped_count;
      }
      if (r.mapped_count != 0) {
        const mapped_area& first = r.mapped[0];
        words_[index] = {reinterpret_cast<std::uintptr_t>(first.base), first.offset, first.length};
      }
    }
    return {};
  }

  /// Undo every mapping this accessor made.
  void unmap_areas() noexcept {
    for (std::uint32_t index = 0; index < region_count_; ++index) {
      region_description& r = regions_[index];
      for (std::uint32_t i = 0; i < r.mapped_count; ++i) owner(index, i).reset();
      r.mapped_count = 0;
    }
    words_ = {};
  }

  /// Read `out.size()` bytes at `offset` of region `index`. Returns the bytes
  /// transferred: all of them through a mapping; whatever one pread gave
  /// otherwise (a short count is the device's answer, not retried). EINVAL
  /// for an index outside [0, num_regions) or an offset ≥ 2^40.
  [[nodiscard, gnu::always_inline]] result<std::size_t> read(std::uint32_t index, std::uint64_t offset,
                                                             std::span<std::byte> out) noexcept {
    return transfer(index, offset, out);
  }

  /// Write `in` at `offset` of region `index`; as read().
  [[nodiscard, gnu::always_inline]] result<std::size_t> write(std::uint32_t index, std::uint64_t offset,
                                                              std::span<const std::byte> in) noexcept {
    return transfer(index, offset, in);
  }

  /// read() into a buffer of unsigned char or std::uint8_t.
  template <byte_like Byte>
  [[nodiscard, gnu::always_inline]] result<std::size_t> read(std::uint32_t index, std::uint64_t offset,
                                                             std::span<Byte> out) noexcept {
    return read(index, offset, std::as_writable_bytes(out));
  }
  /// write() from a buffer of (const) unsigned char or std::uint8_t.
  template <byte_like Byte>
  [[nodiscard, gnu::always_inline]] result<std::size_t> write(std::uint32_t index, std::uint64_t offset,
                                                              std::span<const Byte> in) noexcept {
    return write(index, offset, std::as_bytes(in));
  }

  /// Read a config register of 1, 2, 4 or 8 bytes (little-endian) with one
  /// pread. EIO when the device returns fewer bytes.
  template <class T>
  requires(std::unsigned_integral<T> && (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8))
      [[nodiscard]] result<T> config_read(std::uint64_t offset) noexcept {
    std::array<std::byte, sizeof(T)> bytes{};
    const auto n = file_->pread(bytes, config_offset(offset));
    if (!n) return n.error();
    if (*n != sizeof(T)) return errc::io_error;
    return load_le<T>(bytes, 0);
  }

  /// Write a config register of 1, 2, 4 or 8 bytes with one pwrite. Returns
  /// the bytes the device accepted: a write that touches an emulated BAR
  /// window may legitimately return fewer (§3.3).
  template <class T>
  requires(std::unsigned_integral<T> && (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8))
      [[nodiscard]] result<std::size_t> config_write(std::uint64_t offset, T value) noexcept {
    std::array<std::byte, sizeof(T)> bytes{};
    store_le<T>(bytes, 0, value);
    return file_->pwrite(bytes, config_offset(offset));
  }

  /// Size every BAR through config space the way VMMs do: save the command
  /// register, turn I/O and memory decode off, and for each BAR write
  /// all-ones to its dword(s), read them back and restore the original value;
  /// finally restore the command register. Entry i+1 of a 64-bit BAR i is
  /// marked `upper_half`. Errors: a config access's; EIO on a short one.
  [[nodiscard]] result<std::array<bar_info, 6>> size_bars() noexcept {
    std::array<bar_info, 6> bars{};
    const auto command = config_read<std::uint16_t>(pci::reg::command);
    if (!command) return command.error();
    if (auto s =
            set_command(static_cast<std::uint16_t>(*command & ~(pci::command_bits::io | pci::command_bits::memory)));
        !s)
      return s.error();
    status failure;
    for (unsigned bar = 0; bar < 6 && failure; ++bar) {
      bars[bar].bar = bar;
      if (bar > 0 && bars[bar - 1].is_64bit && bars[bar - 1].implemented) {
        bars[bar].upper_half = true;
        continue;
      }
      const auto sized = size_one(bar);
      if (!sized)
        failure = sized.error();
      else
        bars[bar] = *sized;
    }
    // The command register is restored even when sizing failed half-way.
    const auto restored = set_command(*command);
    if (!failure) return failure.error();
    if (!restored) return restored.error();
    return bars;
  }

  /// Size one BAR (0..5) as size_bars() does, with its own command save/restore.
  [[nodiscard]] result<bar_info> size_bar(unsigned bar) noexcept {
    NVGRACE_EXPECTS(bar < 6);
    const auto command = config_read<std::uint16_t>(pci::reg::command);
    if (!command) return command.error();
    if (auto s =
            set_command(static_cast<std::uint16_t>(*command & ~(pci::command_bits::io | pci::command_bits::memory)));
        !s)
      return s.error();
    const auto sized = size_one(bar);
    const auto restored = set_command(*command);
    if (!sized) return sized.error();
    if (!restored) return restored.error();
    return *sized;
  }

private:
  /// Where the inline word path may touch region i: its first mapping, as
  /// the address of region offset 0 and the range of offsets it holds. Every
  /// mapping starts and ends on a page boundary at a page-aligned address, so
  /// a naturally aligned access of at most 8 bytes that starts inside it ends
  /// inside it. length 0: nothing mapped, no word path.
  struct word_window {
    std::uintptr_t base = 0;   ///< address of region offset `offset`
    std::uint64_t offset = 0;  ///< region offset of the first mapped byte
    std::uint64_t length = 0;  ///< bytes mapped
  };

  /// read() and write(): an aligned access of 1, 2, 4 or 8 bytes inside the
  /// region's first mapping, with the mappings still valid, is one load of
  /// the file's mapping generation, one test of shape and bounds, and one
  /// move, inline; the rest is one call to transfer_general. That is what
  /// transfer_general would do for it: the first mapping that holds the
  /// access is this one, and the copy path's plan for such an access, cached
  /// or uncached, is that one move.
  template <class Byte>
  [[nodiscard, gnu::always_inline]] result<std::size_t> transfer(std::uint32_t index, std::uint64_t offset,
                                                                 std::span<Byte> bytes) noexcept {
    if (index < max_regions) [[likely]] {
      const word_window& w = words_[index];
      const std::uint64_t inside = offset - w.offset;  // wraps, so fails the bounds test, below the mapping
      const std::uintptr_t address = w.base + static_cast<std::uintptr_t>(inside);
      if (((mem::detail::word_misfit(address, bytes.size()) != 0) | (inside >= w.length)) == 0) [[likely]] {
        bool valid = true;
        if constexpr (knows_mapping_generation<File>) valid = file_->mapping_generation() == mapped_generation_;
        if (valid) [[likely]] {
          auto* const memory = reinterpret_cast<std::byte*>(address);
          if constexpr (std::is_const_v<Byte>)
            mem::write_word(memory, bytes.data(), bytes.size());
          else
            mem::read_word(memory, bytes.data(), bytes.size());
          return bytes.size();
        }
      }
    }
    return transfer_general(index, offset, bytes);
  }

  /// transfer() past the word path, out of line: `bytes` is the destination
  /// of a read (std::byte) or the source of a write (const std::byte).
  template <class Byte>
  [[nodiscard, gnu::noinline]] result<std::size_t> transfer_general(std::uint32_t index, std::uint64_t offset,
                                                                    std::span<Byte> bytes) noexcept {
    if (index < region_count_ && offset <= vfio::offset_mask) [[likely]] {
      const region_description& r = regions_[index];
      if (const mapped_area* m = covering(r, offset, bytes.size())) [[likely]] {
        if constexpr (knows_mapping_generation<File>) {
          // The mapping was zapped since it was made: the touch faults first.
          if (file_->mapping_generation() != mapped_generation_) [[unlikely]]
            return transfer_after_zap(index, offset, bytes, *m);
        }
        // Wholly inside the mapping: no padding, so the copy path's memory copy.
        const mem::memory_view memory{m->base, m->length, r.caching};
        if constexpr (std::is_const_v<Byte>)
          mem::write_memory(memory, offset - m->offset, bytes);
        else
          mem::read_memory(memory, offset - m->offset, bytes);
        return bytes.size();
      }
    }
    return transfer_through_file(index, offset, bytes);
  }

  /// A touch of a zapped mapping, as the kernel handles it: the fault
  /// handler decides (a readiness wait after a reset, SIGBUS with memory
  /// decode off or in low power). A page inserted makes the mappings valid
  /// again and the access goes on through them; SIGBUS becomes EFAULT here
  /// (the error a copy from such a page gives) and nothing is copied. A file
  /// without a fault handler is read or written instead.
  template <class Byte>
  [[gnu::noinline]] result<std::size_t> transfer_after_zap(std::uint32_t index, std::uint64_t offset,
                                                           std::span<Byte> bytes, const mapped_area& m) noexcept {
    if constexpr (has_fault_handler<File>) {
      const auto page_shift = static_cast<unsigned>(std::countr_zero(posix::page_size()));
      const auto base = reinterpret_cast<std::uintptr_t>(m.base);
      const grace::vma v{base, base + m.length, m.file_offset >> page_shift};
      const std::uint64_t generation = file_->mapping_generation();
      const auto decision = file_->fault(v, base + (offset - m.offset), 0);
      if (decision.outcome == grace::fault_outcome::sigbus) return errc::bad_address;
      mapped_generation_ = generation;
      return transfer_general(index, offset, bytes);
    } else {
      return transfer_through_file(index, offset, bytes);
    }
  }

  /// One pread or pwrite on the device file, for what no mapping covers.
  template <class Byte>
  [[gnu::noinline]] result<std::size_t> transfer_through_file(std::uint32_t index, std::uint64_t offset,
                                                              std::span<Byte> bytes) noexcept {
    if (index >= region_count_ || offset > vfio::offset_mask) return errc::invalid_argument;
    if constexpr (std::is_const_v<Byte>)
      return file_->pwrite(bytes, vfio::region_offset(index) + offset);
    else
      return file_->pread(bytes, vfio::region_offset(index) + offset);
  }

  [[nodiscard]] static constexpr std::uint64_t config_offset(std::uint64_t offset) noexcept {
    return vfio::file_offset(vfio::to_index(vfio::region::config), offset);
  }

  [[nodiscard]] status set_command(std::uint16_t value) noexcept {
    const auto n = config_write<std::uint16_t>(pci::reg::command, value);
    if (!n) return n.error();
    if (*n != 2) return errc::io_error;
    return {};
  }

  [[nodiscard]] status write_dword_checked(std::uint64_t offset, std::uint32_t value) noexcept {
    const auto n = config_write<std::uint32_t>(offset, value);
    if (!n) return n.error();
    if (*n != 4) return errc::io_error;
    return {};
  }

  /// All-ones, read back, restore: for one BAR (and its upper dword if 64-bit).
  [[nodiscard]] result<bar_info> size_one(unsigned bar) noexcept {
    bar_info out;
    out.bar = bar;
    const std::uint64_t low_at = pci::reg::base_address(bar);
    const auto low = config_read<std::uint32_t>(low_at);
    if (!low) return low.error();
    out.is_io = (*low & pci::bar_bits::space_io) != 0;
    out.is_64bit = !out.is_io && (*low & pci::bar_bits::mem_type_mask) == pci::bar_bits::mem_type_64 && bar < 5;
    out.prefetchable = !out.is_io && (*low & pci::bar_bits::mem_prefetch) != 0;
    std::uint32_t high = 0;
    const std::uint64_t high_at = low_at + 4;
    if (out.is_64bit) {
      const auto h = config_read<std::uint32_t>(high_at);
      if (!h) return h.error();
      high = *h;
    }
    if (auto s = write_dword_checked(low_at, 0xFFFF'FFFFu); !s) return s.error();
    if (out.is_64bit) {
      if (auto s = write_dword_checked(high_at, 0xFFFF'FFFFu); !s) return s.error();
    }
    const auto low_back = config_read<std::uint32_t>(low_at);
    std::uint32_t high_back = 0;
    errc read_error = detail::error_of(low_back);
    if (out.is_64bit && read_error == errc{}) {
      const auto h = config_read<std::uint32_t>(high_at);
      read_error = detail::error_of(h);
      if (h) high_back = *h;
    }
    // Restore before judging what was read, so a failure leaves the BAR as it was.
    const auto restore_low = write_dword_checked(low_at, *low);
    const auto restore_high = out.is_64bit ? write_dword_checked(high_at, high) : status{};
    if (read_error != errc{}) return read_error;
    if (!restore_low) return restore_low.error();
    if (!restore_high) return restore_high.error();

    if (out.is_io) {
      const std::uint32_t bits = *low_back & pci::bar_bits::io_mask;
      out.size = bits & (~bits + 1);
    } else {
      const std::uint64_t readback = std::uint64_t{*low_back} | (std::uint64_t{high_back} << 32);
      out.size = pci::bar_size_from_readback(readback, out.is_64bit);
    }
    out.implemented = out.size != 0;
    if (!out.implemented) out.is_64bit = out.prefetchable = out.is_io = false;
    return out;
  }

  /// The mapping that holds all of [offset, offset + count), if any. An empty
  /// access is never served from a mapping: the device decides what it means.
  [[nodiscard, gnu::always_inline]] static const mapped_area* covering(const region_description& r,
                                                                       std::uint64_t offset,
                                                                       std::size_t count) noexcept {
    if (count == 0) return nullptr;
    for (std::uint32_t i = 0; i < r.mapped_count; ++i) {
      const mapped_area& m = r.mapped[i];
      if (offset >= m.offset && offset - m.offset <= m.length && count <= m.length - (offset - m.offset)) return &m;
    }
    return nullptr;
  }

  [[nodiscard]] status discover(std::uint32_t index, const accessor_options& options) noexcept {
    region_description& r = regions_[index];
    r = region_description{};
    present_ &= ~(1u << index);
    std::array<std::byte, max_region_info_size> buffer{};
    const auto used = query_region_info(*file_, index, buffer);
    if (!used) {
      if (used.error() == errc::invalid_argument) return {};  // absent
      return used.error();
    }
    const auto reply = std::span<const std::byte>(buffer).first(*used);
    present_ |= 1u << index;
    r.info = vfio::load_region_info(reply);
    const auto caps = vfio::decode_region_caps(reply);
    if (!caps) return caps.error();
    if (caps->sparse_mmap) {
      const auto& view = *caps->sparse_mmap;
      if (view.size() > max_sparse_areas) return errc::argument_list_too_long;
      r.has_sparse_mmap = true;
      for (std::uint32_t i = 0; i < view.size(); ++i) r.areas[i] = {view[i].offset, view[i].size};
      r.area_count = view.size();
    }
    r.type = caps->type;
    r.msix_mappable = caps->msix_mappable;
    r.caching = caching_of(index, options);
    return {};
  }

  /// The caller's policy, else what the device says, else cached.
  [[nodiscard]] mem::caching caching_of(std::uint32_t index, const accessor_options& options) const noexcept {
    if (options.uncached_regions)
      return ((*options.uncached_regions >> index) & 1u) != 0 ? mem::caching::uncached : mem::caching::cached;
    if constexpr (knows_region_caching<File>) {
      if (const auto said = file_->region_caching(index)) return *said;
    }
    return mem::caching::cached;
  }

  /// Map one area at an address aligned for huge pages. The area's last
  /// partial page (a real length that is not page-aligned) is left to
  /// pread/pwrite: the driver refuses to map it. Returns an empty mapping when
  /// nothing of the area can be mapped.
  [[nodiscard]] result<posix::mapping> map_area(const region_description& r, const area& a) noexcept {
    const std::uint64_t page = posix::page_size();
    const std::uint64_t length = align_down(a.size, page);
    if (length == 0) return posix::mapping{};
    if (!is_aligned(a.offset, page)) return errc::invalid_argument;
    const std::uint64_t alignment =
        nvgrace::detail::max(page, nvgrace::detail::min(max_mapping_alignment, std::bit_floor(length)));
    const auto reserve_length = checked_add(length, alignment);
    if (!reserve_length) return reserve_length.error();
    // Reserve address space, place the area at its aligned start inside it,
    // then give back what is left around it.
    auto reservation = posix::mapping::map(static_cast<std::size_t>(*reserve_length), PROT_NONE,
                                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!reservation) return reservation.error();
    const auto reserved = reinterpret_cast<std::uintptr_t>(reservation->data());
    const std::uintptr_t start = (reserved + (alignment - 1)) & ~static_cast<std::uintptr_t>(alignment - 1);
    const auto mapped =
        file_->mmap(reinterpret_cast<void*>(start), length, PROT_READ | PROT_WRITE, r.file_offset() + a.offset);
    if (!mapped) return mapped.error();  // the reservation unmaps itself
    std::byte* base = reservation->release();
    const std::uintptr_t end = start + static_cast<std::uintptr_t>(length);
    const std::uintptr_t reserved_end = reserved + static_cast<std::uintptr_t>(*reserve_length);
    if (start > reserved) ::munmap(base, start - reserved);
    if (reserved_end > end) ::munmap(reinterpret_cast<void*>(end), reserved_end - end);
    return posix::mapping(reinterpret_cast<void*>(start), static_cast<std::size_t>(length));
  }

  explicit accessor(File& file) noexcept : file_(&file) {}

  [[nodiscard]] posix::mapping& owner(std::uint32_t index, std::uint32_t area) noexcept {
    return owners_[std::size_t{index} * max_sparse_areas + area];
  }

  File* file_ = nullptr;
  vfio::device_info device_info_{};
  std::uint32_t region_count_ = 0;
  std::uint32_t present_ = 0;            ///< bit i: region i exists
  std::uint64_t mapped_generation_ = 0;  ///< the file's mapping generation the mappings are valid for
  std::array<region_description, max_regions> regions_{};
  std::array<word_window, max_regions> words_{};  ///< for transfer's word path; see word_window
  /// The mappings behind regions_[i].mapped[j], at i * max_sparse_areas + j.
  std::array<posix::mapping, std::size_t{max_regions} * max_sparse_areas> owners_{};
};

/// Open an accessor on any device file, the file's type deduced:
/// `auto acc = access::open(dev);`. See accessor::open.
template <vfio::device_file File>
[[nodiscard]] result<accessor<File>> open(File& file, accessor_options options = {}) noexcept {
  return accessor<File>::open(file, options);
}

}  // namespace nvgrace::access
