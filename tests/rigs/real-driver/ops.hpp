#pragma once
// The real-driver differential: one deterministic, seeded stream of operations on
// a VFIO device file, and one executor that applies an operation to any backend
// and reduces its outcome to a record (count or errno, a digest of every byte the
// caller can observe, the file position, SIGBUS on a mapped touch).
//
// The same stream runs twice: in the QEMU guest against Linux's nvgrace-gpu
// driver through linux_vfio::device, and on the host against shim::device built
// from the same ACPI inputs with the same initial memory. The records are compared
// one by one (tests/rigs/real-driver/host.cpp).
//
// Nothing here reads the model: the region geometry the generator aims at is
// computed from the profile with the driver's arithmetic written out below, so a
// wrong layout in the library cannot hide its own boundaries.

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/device_file.hpp>

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace nvgrace::rig {

inline constexpr std::uint64_t KiB_ = 1024;
inline constexpr std::uint64_t MiB_ = 1024 * KiB_;
inline constexpr std::uint64_t GiB_ = 1024 * MiB_;

// ---- the profile: what the firmware and the PCI function say ------------------------

enum class gpu : std::uint8_t { hopper, blackwell };

struct profile {
  gpu generation = gpu::hopper;         ///< what the NVIDIA DVSEC says (and the default device id)
  std::uint64_t base = 0;               ///< nvidia,gpu-mem-base-pa
  std::uint64_t size = 0;               ///< nvidia,gpu-mem-size; 0: no _DSD (the driver's fallback)
  std::uint64_t bar0_size = 16 * MiB_;  ///< the function's own BARs
  std::uint64_t bar2_size = 1 * MiB_;
  std::uint64_t bar4_size = 1 * MiB_;
  std::uint64_t config_size = 4096;
  std::uint64_t page = 4096;
  std::uint16_t device_id = 0;  ///< 0: 0x2342 for Hopper, 0x2941 for Blackwell
  bool dvsec = true;            ///< the function has the NVIDIA DVSEC
  bool cxl = false;             ///< the function has a CXL device DVSEC (memory active at once)
  /// The BAR0 readiness registers read ready this long after each reset; -1: never.
  std::int64_t ready_after_ms = 0;

  [[nodiscard]] bool fallback() const noexcept { return size == 0; }
  /// The generation the driver decides: without the DVSEC every device is Hopper.
  [[nodiscard]] gpu driver_generation() const noexcept { return dvsec ? generation : gpu::hopper; }
  [[nodiscard]] std::uint16_t pci_device_id() const noexcept {
    return device_id != 0 ? device_id : generation == gpu::hopper ? std::uint16_t{0x2342} : std::uint16_t{0x2941};
  }
};

/// One region index as the driver presents it.
struct region_shape {
  bool present = false;   ///< GET_REGION_INFO succeeds
  bool emulated = false;  ///< a fake BAR over GPU memory
  bool resmem = false;
  std::uint64_t real = 0;        ///< bytes backed by memory
  std::uint64_t bar = 0;         ///< region size
  std::uint64_t gpu_offset = 0;  ///< emulated: where byte 0 is in the GPU memory
};

[[nodiscard]] constexpr std::uint64_t pow2_ceil(std::uint64_t v) noexcept { return v <= 1 ? 1 : std::bit_ceil(v); }

/// The driver's carve-up (probe), written out independently of the library:
/// Hopper: usemem = size − 1 GiB, its BAR the next power of two of that, then
/// usemem rounded down to 512 MiB; resmem the rest, its BAR the next power of two.
/// Blackwell: all memory is usemem.
[[nodiscard]] inline std::array<region_shape, 9> shapes(const profile& p) {
  std::array<region_shape, 9> r{};
  for (std::uint32_t i = 0; i < 8; ++i) r[i].present = true;  // BAR0..5, ROM, config; VGA absent
  r[0].real = r[0].bar = p.bar0_size;
  r[2].real = r[2].bar = p.bar2_size;
  r[4].real = r[4].bar = p.bar4_size;
  r[7].real = r[7].bar = p.config_size;
  if (p.fallback()) return r;
  if (p.driver_generation() == gpu::hopper) {
    const std::uint64_t use = p.size - 1 * GiB_;
    r[4] = {true, true, false, use / (512 * MiB_) * (512 * MiB_), pow2_ceil(use), 0};
    const std::uint64_t res = p.size - r[4].real;
    r[2] = {true, true, true, res, pow2_ceil(res), r[4].real};
  } else {
    r[4] = {true, true, false, p.size, pow2_ceil(p.size), 0};
  }
  return r;
}

// ---- deterministic randomness and byte patterns ---------------------------------------

[[nodiscard]] constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class rng {
public:
  explicit constexpr rng(std::uint64_t seed) noexcept : state_(seed) {}
  constexpr std::uint64_t next() noexcept { return mix(state_++ * 0xD1B54A32D192ED03ull); }
  /// Uniform in [0, n) (n > 0; the modulo bias is irrelevant here).
  constexpr std::uint64_t below(std::uint64_t n) noexcept { return n == 0 ? 0 : next() % n; }
  constexpr bool chance(unsigned percent) noexcept { return below(100) < percent; }
  template <class T, std::size_t N>
  constexpr T pick(const std::array<T, N>& a) noexcept {
    return a[below(N)];
  }

private:
  std::uint64_t state_;
};

/// The initial content of the GPU memory at byte `at` (relative to its base).
[[nodiscard]] constexpr std::uint8_t seed_byte(std::uint64_t at) noexcept {
  return static_cast<std::uint8_t>(mix((at >> 3) ^ 0x5EEDu) >> (8 * (at & 7)));
}
inline void fill_seed(std::span<std::byte> out, std::uint64_t at) noexcept {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte{seed_byte(at + i)};
}

/// The bytes operation `op_index` writes.
inline void fill_data(std::span<std::byte> out, std::uint64_t seed, std::uint64_t op_index) noexcept {
  const std::uint64_t key = mix(seed ^ (op_index * 0x9E37ull));
  for (std::size_t i = 0; i < out.size(); i += 8) {
    const std::uint64_t v = mix(key + i);
    for (std::size_t j = 0; j < 8 && i + j < out.size(); ++j)
      out[i + j] = std::byte(static_cast<std::uint8_t>(v >> (8 * j)));
  }
}

/// FNV-1a, 64 bits.
[[nodiscard]] inline std::uint64_t digest(std::span<const std::byte> bytes,
                                          std::uint64_t h = 0xCBF29CE484222325ull) noexcept {
  for (const std::byte b : bytes) {
    h ^= std::to_integer<std::uint64_t>(b);
    h *= 0x100000001B3ull;
  }
  return h;
}

// ---- operations --------------------------------------------------------------------------

enum class kind : std::uint8_t {
  device_info,
  irq_info,
  region_info,
  pread,
  pwrite,
  read_fpos,
  config_read,
  config_write,
  mmap,
  reset,
  reopen,
};

/// Report classes: what a mismatch count is kept per.
enum class op_class : std::uint8_t {
  device_info,
  irq_info,
  region_info,
  read_usemem,
  read_resmem,
  read_bar,
  read_other,
  write_usemem,
  write_resmem,
  write_bar,
  write_other,
  fpos_read,
  config_read_bars,
  config_read_other,
  config_write_bars,
  config_write_command,
  config_write_other,
  mmap_inside,
  mmap_edge,
  mmap_outside,
  mmap_other,
  reset,
  reopen,
  count_
};

inline constexpr std::array<std::string_view, static_cast<std::size_t>(op_class::count_)> class_names{
    "device info",
    "irq info",
    "region info (argsz 0..80)",
    "pread usemem",
    "pread resmem",
    "pread real BAR",
    "pread other region",
    "pwrite usemem",
    "pwrite resmem",
    "pwrite real BAR",
    "pwrite other region",
    "read(2) at the file position",
    "config read: BAR registers",
    "config read: elsewhere",
    "config write: BAR registers",
    "config write: COMMAND",
    "config write: elsewhere",
    "mmap: inside real memory",
    "mmap: last page / huge / whole",
    "mmap: past real memory or BAR",
    "mmap: other regions / bad args",
    "VFIO_DEVICE_RESET",
    "close + re-open",
};

[[nodiscard]] constexpr std::string_view name_of(op_class c) noexcept {
  return class_names[static_cast<std::size_t>(c)];
}

struct op {
  kind k = kind::device_info;
  op_class cls = op_class::device_info;
  std::uint32_t index = 0;   ///< region or IRQ index
  std::uint64_t offset = 0;  ///< inside the region
  std::uint64_t length = 0;  ///< bytes (read/write/mmap)
  std::uint32_t argsz = 0;   ///< region/irq info
  std::uint64_t value = 0;   ///< config write: the value (little-endian, `length` bytes)
  bool touch_write = false;  ///< mmap: also write through the mapping
};

inline constexpr std::uint64_t c2c_register = 0x1498;
inline constexpr std::uint64_t hbm_register = 0x200BC;

/// True when a write to BAR0 [offset, offset + length) leaves both readiness registers alone.
[[nodiscard]] constexpr bool bar0_write_safe(std::uint64_t offset, std::uint64_t length) noexcept {
  for (const std::uint64_t reg : {c2c_register, hbm_register})
    if (offset < reg + 4 && reg < offset + length) return false;
  return true;
}

/// The stream: op(i) depends only on the profile, the seed, i and the total.
class stream {
public:
  stream(const profile& p, std::uint64_t seed, std::uint64_t total) : p_(p), seed_(seed), total_(total) {
    shapes_ = shapes(p);
    rng anchors(mix(seed ^ 0xA4C4));
    for (std::uint32_t i = 0; i < 9; ++i) {
      auto& pts = points_[i];
      const region_shape& r = shapes_[i];
      if (!r.present || r.bar == 0 || i == 7) continue;
      const std::uint64_t page = p.page;
      const std::uint64_t real_page = r.real / page * page;
      for (const std::uint64_t at :
           {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{7}, std::uint64_t{8}, page - 1,    page,
            r.real - 16,      r.real - 8,       r.real - 7,       r.real - 4,       r.real - 2,  r.real - 1,
            r.real,           r.real + 1,       r.real + 8,       real_page - 1,    real_page,   real_page + page,
            r.bar - page,     r.bar - 16,       r.bar - 8,        r.bar - 4,        r.bar - 1,   r.bar,
            r.bar + 1,        r.bar + page,     r.real / 2,       2 * MiB_ - 1,     1 * GiB_ - 8})
        if (at < r.bar + 2 * page) pts.push_back(at);
      for (int k = 0; k < 8; ++k) pts.push_back(anchors.below(r.real));  // anchors inside the memory
      if (i == 0) {  // BAR0's readiness registers (read only: writes never cover them)
        pts.push_back(c2c_register);
        pts.push_back(hbm_register);
      }
      std::sort(pts.begin(), pts.end());
      pts.erase(std::unique(pts.begin(), pts.end()), pts.end());
    }
  }

  [[nodiscard]] const std::array<region_shape, 9>& regions() const noexcept { return shapes_; }
  [[nodiscard]] const profile& prof() const noexcept { return p_; }
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }

  /// The seeded windows of the GPU memory (relative to its base): every
  /// interesting point of an emulated region ± 64 KiB.
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> seed_windows() const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> w;
    for (std::uint32_t i = 0; i < 9; ++i) {
      const region_shape& r = shapes_[i];
      if (!r.emulated) continue;
      for (const std::uint64_t at : points_[i]) {
        const std::uint64_t from = at > 64 * KiB_ ? at - 64 * KiB_ : 0;
        const std::uint64_t to = std::min(r.real, at + 64 * KiB_);
        if (from < to) w.emplace_back(r.gpu_offset + from, r.gpu_offset + to);
      }
    }
    std::sort(w.begin(), w.end());
    std::vector<std::pair<std::uint64_t, std::uint64_t>> merged;
    for (const auto& x : w) {
      if (!merged.empty() && x.first <= merged.back().second)
        merged.back().second = std::max(merged.back().second, x.second);
      else
        merged.push_back(x);
    }
    return merged;
  }

  [[nodiscard]] op at(std::uint64_t i) const {
    rng r(mix(seed_ ^ mix(i + 1)));
    // Fallback: every open after the first fails (the driver never unregisters its
    // pfn range), so the one re-open is the last operation.
    if (p_.fallback() && i + 1 == total_ && total_ > 1) return {kind::reopen, op_class::reopen};
    const std::uint64_t roll = r.below(10000);
    if (roll < 150) return {kind::device_info, op_class::device_info};
    if (roll < 350) return irq(r);
    if (roll < 1000) return region_info(r);
    if (roll < 3800) return transfer(r, kind::pread);
    if (roll < 6000) return transfer(r, kind::pwrite);
    if (roll < 6500) return transfer(r, kind::read_fpos);
    if (roll < 7700) return config_read(r);
    if (roll < 8900) return config_write(r);
    if (roll < 9950) return map(r);
    if (roll < 9985) return {kind::reset, op_class::reset};
    if (!p_.fallback()) return {kind::reopen, op_class::reopen};
    return {kind::reset, op_class::reset};
  }

private:
  [[nodiscard]] op irq(rng& r) const {
    op o{kind::irq_info, op_class::irq_info};
    o.index = static_cast<std::uint32_t>(r.below(7));  // 5, 6: EINVAL
    o.argsz = r.pick(std::array<std::uint32_t, 5>{16, 16, 15, 0, 32});
    return o;
  }

  [[nodiscard]] op region_info(rng& r) const {
    op o{kind::region_info, op_class::region_info};
    o.index = r.chance(95) ? static_cast<std::uint32_t>(r.below(10)) : 0xFFFF'FFFFu;
    o.argsz = r.chance(50) ? r.pick(std::array<std::uint32_t, 10>{0, 16, 31, 32, 33, 40, 48, 63, 64, 80})
                           : static_cast<std::uint32_t>(r.below(81));
    return o;
  }

  static constexpr std::uint64_t real_bar_max_length = 4097;

  [[nodiscard]] std::uint64_t size_for(rng& r) const {
    const std::uint64_t roll = r.below(100);
    if (roll < 55) return r.below(9);  // 0..8
    if (roll < 70) return 9 + r.below(56);
    if (roll < 90) return r.pick(std::array<std::uint64_t, 6>{16, 4095, 4096, 4097, 65536, 65537});
    return r.pick(std::array<std::uint64_t, 3>{256 * KiB_, 1 * MiB_, 1 * MiB_ + 3});
  }

  /// An offset near an interesting point of region `index`.
  [[nodiscard]] std::uint64_t offset_in(rng& r, std::uint32_t index, std::uint64_t length) const {
    const auto& pts = points_[index];
    const region_shape& s = shapes_[index];
    const std::uint64_t roll = r.below(100);
    if (roll < 8 || pts.empty()) return r.below(s.bar + 2 * p_.page + 1);
    std::uint64_t at = pts[r.below(pts.size())];
    if (roll < 40) {
      // So that the transfer ends exactly at, or straddles, the point.
      const std::uint64_t back = r.chance(50) ? length : r.below(length + 1);
      at = at >= back ? at - back : 0;
    } else if (roll < 60) {
      const std::uint64_t d = r.below(33);
      at = at >= d ? at - d : 0;
    } else if (roll < 70) {
      at += r.below(33);
    }
    return at;
  }

  [[nodiscard]] op transfer(rng& r, kind k) const {
    op o{k, op_class::read_other};
    const bool write = k == kind::pwrite;
    const std::uint64_t roll = r.below(100);
    std::uint32_t index = 0;
    if (roll < 40)
      index = 4;
    else if (roll < 75)
      index = 2;
    else if (roll < 90)
      index = 0;
    else
      index = r.pick(std::array<std::uint32_t, 7>{1, 3, 5, 6, 8, 9, 200});
    o.index = index;
    o.length = size_for(r);
    // A real BAR is served one 4-byte register access at a time, each a trapped round
    // trip to the emulated function (about 40 us under TCG): a 1 MiB transfer there costs
    // seconds and exercises no rule of the variant driver, so it stops one byte past a page.
    // read(2) reads at the file's position, which is in region 0: a real BAR.
    const bool emulated = index < 9 && shapes_[index].emulated && k != kind::read_fpos;
    if (!emulated) o.length = std::min<std::uint64_t>(o.length, real_bar_max_length);
    if (index < 9 && shapes_[index].bar != 0 && index != 7)
      o.offset = offset_in(r, index, o.length);
    else
      o.offset = r.below(4 * p_.page);
    if (write && index == 0 && !bar0_write_safe(o.offset, o.length)) o.offset = 0x30000 + r.below(4096);
    if (k == kind::read_fpos)
      o.cls = op_class::fpos_read;
    else if (index < 9 && shapes_[index].emulated)
      o.cls = shapes_[index].resmem ? (write ? op_class::write_resmem : op_class::read_resmem)
                                    : (write ? op_class::write_usemem : op_class::read_usemem);
    else if (index == 0 || index == 2 || index == 4)
      o.cls = write ? op_class::write_bar : op_class::read_bar;
    else
      o.cls = write ? op_class::write_other : op_class::read_other;
    return o;
  }

  [[nodiscard]] op config_read(rng& r) const {
    op o{kind::config_read, op_class::config_read_other};
    o.index = 7;
    const std::uint64_t roll = r.below(100);
    if (roll < 45) {
      o.offset = 0x10 + r.below(0x18);
      o.length = r.pick(std::array<std::uint64_t, 5>{1, 2, 4, 4, 8});
    } else if (roll < 60) {
      o.offset = r.pick(std::array<std::uint64_t, 6>{0x00, 0x04, 0x08, 0x2C, 0x30, 0x3C});
      o.length = r.pick(std::array<std::uint64_t, 3>{1, 2, 4});
    } else if (roll < 75) {
      o.offset = r.below(0x110);
      o.length = r.pick(std::array<std::uint64_t, 5>{1, 2, 3, 4, 8});
    } else if (roll < 85) {
      o.offset = r.pick(std::array<std::uint64_t, 7>{0xFFC, 0xFFE, 0xFFF, 0x1000, 0x1004, 0xFF8, 0x10000});
      o.length = r.pick(std::array<std::uint64_t, 4>{1, 2, 4, 8});
    } else if (roll < 95) {
      o.offset = r.pick(std::array<std::uint64_t, 5>{0x0C, 0x10, 0x14, 0x1C, 0x24});
      o.length = r.pick(std::array<std::uint64_t, 4>{8, 12, 16, 24});
    } else {
      o.offset = 0;
      o.length = r.pick(std::array<std::uint64_t, 4>{0, 64, 256, 4096});
    }
    if (o.offset < 0x28 && o.offset + o.length > 0x10) o.cls = op_class::config_read_bars;
    return o;
  }

  [[nodiscard]] op config_write(rng& r) const {
    op o{kind::config_write, op_class::config_write_other};
    o.index = 7;
    const std::uint64_t roll = r.below(100);
    if (roll < 55) {
      // The BAR registers: sizing, addresses, partial and straddling writes.
      o.offset = r.chance(60) ? r.pick(std::array<std::uint64_t, 6>{0x10, 0x14, 0x18, 0x1C, 0x20, 0x24})
                              : 0x0E + r.below(0x1C);
      o.length = r.pick(std::array<std::uint64_t, 6>{4, 4, 4, 1, 2, 8});
      const std::uint64_t v = r.below(6);
      o.value = v == 0   ? ~std::uint64_t{0}
                : v == 1 ? 0
                : v == 2 ? 0xFFFF'FFFE'FFFF'FFF0ull
                : v == 3 ? (r.next() & 0xFFFF'FFFF'FFFF'F000ull) | r.below(16)
                : v == 4 ? 0x0000'0040'0000'000Cull
                         : r.next();
      o.cls = op_class::config_write_bars;
      if (o.offset + o.length <= 0x10 || o.offset >= 0x28) o.cls = op_class::config_write_other;
    } else if (roll < 80) {
      // COMMAND: memory decode off and on (I/O, bus master, INTx disable along).
      o.offset = 0x04;
      o.length = r.chance(80) ? 2 : r.pick(std::array<std::uint64_t, 2>{1, 4});
      o.value = r.pick(std::array<std::uint64_t, 8>{0x0000, 0x0002, 0x0006, 0x0004, 0x0402, 0x0406, 0x0002, 0x0006});
      o.cls = op_class::config_write_command;
    } else {
      // Elsewhere: read-only ids, cache line, latency, interrupt line, ROM, and the end.
      const std::uint64_t roll2 = r.below(9);
      const std::array<std::pair<std::uint64_t, std::uint64_t>, 9> spots{
          {{0x00, 4}, {0x08, 4}, {0x0C, 1}, {0x0D, 1}, {0x3C, 1}, {0x30, 4}, {0xFFC, 4}, {0xFFE, 4}, {0x1000, 4}}};
      o.offset = spots[roll2].first;
      o.length = spots[roll2].second;
      o.value = r.chance(50) ? ~std::uint64_t{0} : r.next();
      if (o.offset == 0x30) o.value = r.chance(50) ? 0xFFFF'F800ull : 0;
    }
    return o;
  }

  [[nodiscard]] op map(rng& r) const {
    op o{kind::mmap, op_class::mmap_other};
    const std::uint64_t page = p_.page;
    const std::uint64_t roll = r.below(100);
    std::uint32_t index = roll < 40   ? 4
                          : roll < 80 ? 2
                          : roll < 90 ? 0
                                      : r.pick(std::array<std::uint32_t, 4>{1, 6, 7, 8});
    o.index = index;
    const region_shape& s = shapes_[index];
    o.length = page;
    o.touch_write = index != 0 && r.chance(50);
    if (index == 1 || index == 6 || index == 7 || index == 8 || s.bar == 0) {
      o.offset = 0;
      return o;
    }
    const std::uint64_t real_pages = s.real / page * page;
    const std::uint64_t c = r.below(12);
    o.cls = op_class::mmap_inside;
    switch (c) {
      case 0: o.offset = 0; break;
      case 1: o.offset = real_pages > page ? r.below(real_pages / page - 1) * page : 0; break;
      case 2:
        o.offset = real_pages >= page ? real_pages - page : 0;
        o.cls = op_class::mmap_edge;
        break;
      case 3:
        o.offset = real_pages;
        o.cls = op_class::mmap_outside;
        break;  // the partial page, or past the end
      case 4:
        o.offset = real_pages + page;
        o.cls = op_class::mmap_outside;
        break;
      case 5:
        o.offset = s.bar - page;
        o.cls = op_class::mmap_outside;
        break;
      case 6:
        o.offset = s.bar;
        o.cls = op_class::mmap_outside;
        break;
      case 7:  // a 2 MiB-aligned 2 MiB mapping, if it fits
        o.offset = real_pages >= 4 * MiB_ ? 2 * MiB_ : 0;
        o.length = 2 * MiB_;
        o.cls = op_class::mmap_edge;
        break;
      case 8:  // the whole mappable memory
        o.offset = 0;
        o.length = std::max(real_pages, page);
        o.cls = op_class::mmap_edge;
        break;
      case 9:  // one page more than that
        o.offset = 0;
        o.length = real_pages + page;
        o.cls = op_class::mmap_outside;
        break;
      case 10:  // not page-aligned, or length 0
        o.offset = r.chance(50) ? 8 : 0;
        o.length = o.offset == 8 ? page : 0;
        o.cls = op_class::mmap_other;
        break;
      default:  // a length that is not a page multiple, ending inside the real memory
        o.offset = real_pages >= 2 * page ? real_pages - 2 * page : 0;
        o.length = page + 123;
        o.cls = op_class::mmap_edge;
        break;
    }
    return o;
  }

  profile p_;
  std::uint64_t seed_ = 0;
  std::uint64_t total_ = 0;
  std::array<region_shape, 9> shapes_{};
  std::array<std::vector<std::uint64_t>, 9> points_{};
};

// ---- records -----------------------------------------------------------------------------

/// The observable outcome of one operation.
struct record {
  std::uint32_t op_index = 0;
  std::uint8_t k = 0;
  std::uint8_t cls = 0;
  std::uint16_t payload = 0;            ///< bytes of payload following the record (config reads)
  std::int64_t result = 0;              ///< ≥ 0: count / return; < 0: −errno
  std::uint64_t digest = 0;             ///< of every byte the caller can observe
  std::uint64_t aux = 0;                ///< file position delta, region-info argsz, SIGBUS bits
  std::array<std::uint8_t, 16> head{};  ///< the first observable bytes, for reports
};
static_assert(sizeof(record) == 48);

inline constexpr std::uint64_t sigbus_read = 1;
inline constexpr std::uint64_t sigbus_write = 2;

// ---- a SIGBUS-safe copy (a mapped page the driver refuses to fault in) ----------------------

namespace detail {
inline thread_local sigjmp_buf* guard_jump = nullptr;
extern "C" inline void on_guarded_fault(int) {
  if (guard_jump != nullptr) siglongjmp(*guard_jump, 1);
  ::signal(SIGBUS, SIG_DFL);
  ::raise(SIGBUS);
}
inline void install_guard() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = on_guarded_fault;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NODEFER;
    ::sigaction(SIGBUS, &sa, nullptr);  // what a refused fault on a device mapping raises
    return true;
  }();
  static_cast<void>(installed);
}
}  // namespace detail

/// memcpy that returns false instead of dying when the source or destination raises SIGBUS.
inline bool guarded_copy(void* dst, const void* src, std::size_t n) noexcept {
  detail::install_guard();
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) {
    detail::guard_jump = nullptr;
    return false;
  }
  detail::guard_jump = &jump;
  // volatile byte copy: the compiler may not move the accesses out of the guarded window
  auto* d = static_cast<volatile unsigned char*>(dst);
  const auto* s = static_cast<const volatile unsigned char*>(src);
  for (std::size_t i = 0; i < n; ++i) d[i] = s[i];
  detail::guard_jump = nullptr;
  return true;
}

// ---- the executor ------------------------------------------------------------------------------

/// A mapping the executor made, as a fault handler sees it.
struct mapping {
  std::byte* base = nullptr;
  std::uint64_t length = 0;       ///< bytes mapped (whole pages)
  std::uint64_t file_offset = 0;  ///< the device-file offset it maps
};

/// What a target must offer besides the device file:
///   file()                  the vfio::device_file
///   read_fpos(buf, after)   read(2) at the file's own position (a VFIO device file
///                           cannot be seeked: it starts at 0, i.e. BAR0, and moves as
///                           the driver advances it); `after` = the position afterwards
///   reopen()                close the device and open it again (the position is 0 again)
///   fault_in(m, at)         the first touch of the page holding byte `at` of mapping
///                           `m`: true when the fault handler inserts the page, false
///                           for SIGBUS (the kernel's target answers true and lets the
///                           touch itself find out; the model asks its fault handler)
template <class T>
concept target = requires(T& t, std::span<std::byte> buf, std::uint64_t& after, const mapping& m, std::uint64_t at) {
  requires vfio::device_file<std::remove_cvref_t<decltype(t.file())>>;
  { t.read_fpos(buf, after) } -> std::same_as<result<std::size_t>>;
  { t.reopen() } -> std::same_as<status>;
  { t.fault_in(m, at) } -> std::same_as<bool>;
};

namespace detail {
[[nodiscard]] inline std::int64_t code(errc e) noexcept { return -static_cast<std::int64_t>(to_errno(e)); }
template <class R>
[[nodiscard]] std::int64_t code_of(const R& r) {
  if (r.has_value()) {
    if constexpr (std::is_same_v<R, result<std::size_t>>)
      return static_cast<std::int64_t>(*r);
    else
      return 0;
  }
  return code(r.error());
}
inline void set_head(record& rec, std::span<const std::byte> bytes) {
  const std::size_t n = std::min<std::size_t>(16, bytes.size());
  for (std::size_t i = 0; i < n; ++i) rec.head[i] = std::to_integer<std::uint8_t>(bytes[i]);
}
}  // namespace detail

/// Apply `o` (operation number `i` of a stream with `seed`) to `t`. `scratch`
/// must hold at least 2 MiB + 64 bytes; `payload` receives the bytes of a config read.
template <target T>
record execute(T& t, const op& o, std::uint64_t i, std::uint64_t seed, std::span<std::byte> scratch,
               std::vector<std::byte>& payload) {
  record rec;
  rec.op_index = static_cast<std::uint32_t>(i);
  rec.k = static_cast<std::uint8_t>(o.k);
  rec.cls = static_cast<std::uint8_t>(o.cls);
  payload.clear();
  auto& f = t.file();
  switch (o.k) {
    case kind::device_info: {
      const auto info = f.get_device_info();
      rec.result = detail::code_of(info);
      if (info) {
        std::array<std::byte, sizeof(vfio::device_info)> bytes{};
        std::memcpy(bytes.data(), &*info, bytes.size());
        // cap_offset is only meaningful with the CAPS flag; argsz is what the caller sent.
        rec.digest = digest(bytes);
        detail::set_head(rec, bytes);
      }
      break;
    }
    case kind::irq_info: {
      vfio::irq_info info{o.argsz, 0xA5A5A5A5u, o.index, 0xA5A5A5A5u};
      const auto s = f.get_irq_info(info);
      rec.result = detail::code_of(s);
      std::array<std::byte, sizeof info> bytes{};
      std::memcpy(bytes.data(), &info, bytes.size());
      rec.digest = digest(bytes);
      detail::set_head(rec, bytes);
      break;
    }
    case kind::region_info: {
      std::array<std::byte, 80> buffer{};
      std::fill(buffer.begin(), buffer.end(), std::byte{0xA5});
      store_le<std::uint32_t>(buffer, 0, o.argsz);
      store_le<std::uint32_t>(buffer, 4, 0);
      store_le<std::uint32_t>(buffer, 8, o.index);
      store_le<std::uint32_t>(buffer, 12, 0);
      const auto s = f.get_region_info(buffer);
      rec.result = detail::code_of(s);
      rec.digest = digest(buffer);
      rec.aux = load_le<std::uint32_t>(buffer, 0);
      detail::set_head(rec, std::span<const std::byte>(buffer).subspan(16));  // size, offset
      payload.assign(buffer.begin(), buffer.end());
      break;
    }
    case kind::pread:
    case kind::read_fpos: {
      const auto out = scratch.first(static_cast<std::size_t>(o.length));
      std::fill(out.begin(), out.end(), std::byte{0x5A});
      std::uint64_t after = 0;
      const auto n =
          o.k == kind::pread ? f.pread(out, vfio::region_offset(o.index) + o.offset) : t.read_fpos(out, after);
      rec.result = detail::code_of(n);
      rec.digest = digest(out);
      rec.aux = after;
      detail::set_head(rec, out);
      break;
    }
    case kind::pwrite: {
      const auto in = scratch.first(static_cast<std::size_t>(o.length));
      fill_data(in, seed, i);
      const auto n = f.pwrite(in, vfio::region_offset(o.index) + o.offset);
      rec.result = detail::code_of(n);
      break;
    }
    case kind::config_read: {
      const auto out = scratch.first(static_cast<std::size_t>(o.length));
      std::fill(out.begin(), out.end(), std::byte{0x5A});
      const auto n = f.pread(out, vfio::file_offset(7, o.offset));
      rec.result = detail::code_of(n);
      rec.digest = digest(out);
      detail::set_head(rec, out);
      payload.assign(out.begin(), out.end());
      break;
    }
    case kind::config_write: {
      std::array<std::byte, 8> bytes{};
      store_le<std::uint64_t>(bytes, 0, o.value);
      const auto n = f.pwrite(std::span<const std::byte>(bytes).first(static_cast<std::size_t>(o.length)),
                              vfio::file_offset(7, o.offset));
      rec.result = detail::code_of(n);
      break;
    }
    case kind::mmap: {
      const auto p = f.mmap(nullptr, o.length, PROT_READ | PROT_WRITE, vfio::file_offset(o.index, o.offset));
      rec.result = detail::code_of(p);
      if (p) {
        auto* base = static_cast<std::byte*>(*p);
        std::array<std::byte, 48> seen{};
        std::fill(seen.begin(), seen.end(), std::byte{0x5A});
        const std::size_t len = static_cast<std::size_t>(o.length);
        const std::uint64_t page = 4096;
        const mapping m{base, (o.length + page - 1) / page * page, vfio::file_offset(o.index, o.offset)};
        // Every touched page faults once (nothing zaps the mapping while this operation
        // holds it); a page the handler refused faults again on its next touch.
        std::vector<std::uint64_t> inserted;
        const auto touch = [&](std::size_t at, void* dst, const void* src, std::size_t n) {
          const std::uint64_t pg = at / page;
          if (std::find(inserted.begin(), inserted.end(), pg) == inserted.end()) {
            if (!t.fault_in(m, at)) return false;
            inserted.push_back(pg);
          }
          return guarded_copy(dst, src, n);
        };
        bool ok = touch(0, seen.data(), base, std::min<std::size_t>(16, len));
        if (ok && len >= 32) ok = touch(len - 16, seen.data() + 16, base + len - 16, 16);
        if (!ok) rec.aux |= sigbus_read;
        if (o.touch_write && len >= 16) {
          const std::size_t at = (len / 2) & ~std::size_t{7};
          std::array<std::byte, 8> in{};
          fill_data(in, seed, i);
          bool wok = touch(at, base + at, in.data(), in.size());
          if (wok) wok = touch(at, seen.data() + 32, base + at, 8);
          if (!wok) rec.aux |= sigbus_write;
        }
        rec.digest = digest(seen);
        detail::set_head(rec, seen);
        ::munmap(*p, len);
      }
      break;
    }
    case kind::reset: rec.result = detail::code_of(f.reset()); break;
    case kind::reopen: rec.result = detail::code_of(t.reopen()); break;
  }
  if (payload.size() > 0xFFFF) payload.resize(0xFFFF);
  rec.payload = static_cast<std::uint16_t>(payload.size());
  return rec;
}

/// Scratch for execute(): the largest transfer plus slack.
inline constexpr std::size_t scratch_size = 2 * MiB_ + 64;

}  // namespace nvgrace::rig
