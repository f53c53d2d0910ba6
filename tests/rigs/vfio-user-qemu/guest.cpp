// The program of tests/rigs/vfio-user-qemu: one static binary used on both sides.
//
// In the guest (QEMU, vfio-user-pci in front of nvgrace-vfio-user-server) it checks the
// device through sysfs only: the id files, `resource`, `config` (pread/pwrite) and mmap of
// `resourceN` windows. On the host it seeds and checks the server's --memory-file.
//
//   guest configs                        the configuration names, one a line
//   guest server-args NAME               the server's --generation/--size for NAME
//   guest seed NAME FILE                 host: write the seed bytes the guest will read
//   guest verify NAME FILE STAGE         host: check FILE after STAGE (first|second)
//   guest run NAME BDF PHASE             guest: first | second | third (see README.md)
//   guest server-gone NAME BDF           guest: wait until the server is gone, then check
//
// Every check prints "PASS: ..." or "FAIL: ..."; the exit status is 1 if one failed.
// `run` also prints "TRAPPED NAME region R reads N writes M": the accesses it made that
// QEMU must forward as REGION_READ/REGION_WRITE (run.sh compares them with the server's
// per-region counts; all other accesses must cause no message).

#include <nvgrace/grace/layout.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::uint64_t KiB = std::uint64_t{1} << 10;
constexpr std::uint64_t MiB = std::uint64_t{1} << 20;
constexpr std::uint64_t GiB = std::uint64_t{1} << 30;
constexpr std::uint64_t page = 4 * KiB;
constexpr std::int64_t not_in_file = -1;

// ---- the configurations ------------------------------------------------------------------

/// One BAR as the guest must see it. Expected values are written out (not computed) so that
/// the test does not share a bug with the model; the static_asserts below tie them to it.
struct bar_spec {
  std::uint32_t index;
  std::uint64_t size;        ///< BAR size (config space, sysfs)
  std::uint64_t real;        ///< bytes of memory behind it; the rest reads 0xFF
  std::int64_t file_offset;  ///< where byte 0 lives in --memory-file; not_in_file for a real BAR
  bool emulated;             ///< a Grace memory BAR (64-bit prefetchable, sparse mmap)
};

struct config {
  std::string_view name;
  std::string_view generation;
  std::uint64_t size;  ///< the server's --size
  std::uint16_t device_id;
  bar_spec bar2;
  bar_spec bar4;
};

// clang-format off
constexpr config configs[] = {
    {"hopper-2g", "hopper", 2 * GiB, 0x2342, {2, 1 * GiB, 1 * GiB, 1 * GiB, true}, {4, 1 * GiB, 1 * GiB, 0, true}},
    {"hopper-2g+12345", "hopper", 2 * GiB + 12345, 0x2342,
     {2, 2 * GiB, 1 * GiB + 12345, 1 * GiB, true}, {4, 2 * GiB, 1 * GiB, 0, true}},
    {"hopper-3g", "hopper", 3 * GiB, 0x2342, {2, 1 * GiB, 1 * GiB, 2 * GiB, true}, {4, 2 * GiB, 2 * GiB, 0, true}},
    {"blackwell-3g", "blackwell", 3 * GiB, 0x2941,
     {2, 16 * MiB, 16 * MiB, not_in_file, false}, {4, 4 * GiB, 3 * GiB, 0, true}},
};
// clang-format on

/// The model (nvgrace::grace::derive_layout) agrees with the table.
constexpr bool agrees_with_model(const config& c) {
  namespace g = nvgrace::grace;
  constexpr std::uint64_t base = 0x4000'0000'0000;  // any base: sizes do not depend on it
  const auto gen = c.generation == "hopper" ? g::generation::hopper : g::generation::blackwell;
  const auto l = g::derive_layout(base, c.size, gen);
  if (!l) return false;
  const auto& d = *l;
  if (c.bar4.size != d.usemem.reported_size || c.bar4.real != d.usemem.real_length || c.bar4.file_offset != 0)
    return false;
  if (gen == g::generation::blackwell) return !d.has_resmem() && !c.bar2.emulated;
  return c.bar2.size == d.resmem.reported_size && c.bar2.real == d.resmem.real_length &&
         c.bar2.file_offset == static_cast<std::int64_t>(d.resmem.phys_base - base);
}
static_assert(agrees_with_model(configs[0]));
static_assert(agrees_with_model(configs[1]));
static_assert(agrees_with_model(configs[2]));
static_assert(agrees_with_model(configs[3]));

constexpr std::uint32_t bar0_size = 16 * MiB;
constexpr std::uint32_t class_code = 0x030200;
constexpr std::uint16_t subsystem_device = 0x16EB;
constexpr std::uint32_t revision = 0xA1;
// Linux resource flags (sysfs `resource`): IORESOURCE_MEM | MEM_64 | SIZEALIGN, plus the BAR's
// own low bits (0x4 = 64-bit, 0x8 = prefetchable) and IORESOURCE_PREFETCH.
constexpr std::uint64_t flags_mem64 = 0x140204;
constexpr std::uint64_t flags_mem64_prefetch = 0x14220C;

// ---- the points every stage touches --------------------------------------------------------

constexpr std::size_t record_size = 64;

/// The last page boundary inside real memory (the records sit below it).
constexpr std::uint64_t mapped_end(const bar_spec& b) { return b.real & ~(page - 1); }

struct points {
  std::vector<std::uint64_t> seeds;   ///< written by the host before the first boot
  std::vector<std::uint64_t> first;   ///< written by the first VMM
  std::vector<std::uint64_t> second;  ///< written by the second VMM
};

points points_of(const bar_spec& b) {
  const std::uint64_t me = mapped_end(b);
  points p;
  if (b.file_offset != not_in_file) p.seeds = {0x1000, (me / 2) & ~std::uint64_t{63}, me - 128};
  p.first = {0x0, me - 256};
  p.second = {0x2040, me - 192};
  return p;
}

/// 64 recognisable bytes for (tag, region, offset): text, then a position-dependent filler.
std::vector<std::uint8_t> record(std::string_view tag, std::uint32_t region, std::uint64_t offset) {
  std::vector<std::uint8_t> r(record_size);
  char text[record_size + 1];
  const int n = std::snprintf(text, sizeof text, "nvgrace %.*s r%u +0x%010" PRIx64 " ", static_cast<int>(tag.size()),
                              tag.data(), region, offset);
  for (std::size_t i = 0; i < record_size; ++i)
    r[i] = i < static_cast<std::size_t>(n) ? static_cast<std::uint8_t>(text[i])
                                           : static_cast<std::uint8_t>('a' + (i * 7 + offset) % 26);
  return r;
}

/// The 8 bytes the host puts at the end of real memory (read by the straddling access) and,
/// for a real end inside a page, at the start of that last page.
constexpr std::uint64_t tail_seed = 0x1716151413121110;
constexpr std::uint64_t partial_seed = 0x2726252423222120;
/// What the guest writes there.
constexpr std::uint64_t straddle_value = 0xA8A7A6A5A4A3A2A1;
constexpr std::uint64_t partial_value = 0xB8B7B6B5B4B3B2B1;
constexpr std::uint64_t padding_value = 0x1122334455667788;
constexpr std::uint64_t all_ones = ~std::uint64_t{0};

bool has_padding(const bar_spec& b) { return b.file_offset != not_in_file && b.real < b.size; }
bool has_partial_page(const bar_spec& b) { return b.file_offset != not_in_file && b.real % page != 0; }
/// Where the straddling 8-byte access starts: the aligned word holding the real end, or, when
/// the end is 8-aligned (then page-aligned here), 4 bytes before it (crossing into the padding).
std::uint64_t straddle_at(const bar_spec& b) { return b.real % 8 != 0 ? b.real & ~std::uint64_t{7} : b.real - 4; }

// ---- reporting -----------------------------------------------------------------------------

int failures = 0;
std::string prefix;  // "[hopper-2g 00:10.0] "

void check(bool ok, const std::string& what) {
  std::printf("%s: %s%s\n", ok ? "PASS" : "FAIL", prefix.c_str(), what.c_str());
  if (!ok) ++failures;
}

std::string hex(std::uint64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

std::string hex_bytes(const std::uint8_t* p, std::size_t n) {
  std::string s;
  char b[4];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

[[noreturn]] void die(const std::string& what) {
  std::printf("FAIL: %s%s (%s)\n", prefix.c_str(), what.c_str(), std::strerror(errno));
  std::exit(1);
}

const config* find_config(std::string_view name) {
  for (const auto& c : configs)
    if (c.name == name) return &c;
  return nullptr;
}

// ---- exact-width accesses (x86-64 guest) -----------------------------------------------------

std::uint64_t load64(const volatile void* p) {
  std::uint64_t v;
  asm volatile("movq %1, %0" : "=r"(v) : "m"(*static_cast<const volatile std::uint64_t*>(p)) : "memory");
  return v;
}
void store64(volatile void* p, std::uint64_t v) {
  asm volatile("movq %1, %0" : "=m"(*static_cast<volatile std::uint64_t*>(p)) : "r"(v) : "memory");
}

// ---- sysfs ---------------------------------------------------------------------------------

std::string device_dir;

std::string read_text(const std::string& file) {
  const int fd = ::open((device_dir + "/" + file).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + file);
  char b[4096];
  const ssize_t n = ::read(fd, b, sizeof b - 1);
  ::close(fd);
  if (n < 0) die("read " + file);
  std::string s(b, static_cast<std::size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct config_file {
  int fd = -1;
  void open() {
    fd = ::open((device_dir + "/config").c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) die("open config");
  }
  std::uint32_t read(std::uint32_t offset, unsigned width) const {
    std::uint32_t v = 0;
    if (::pread(fd, &v, width, offset) != static_cast<ssize_t>(width)) die("pread config at " + hex(offset));
    return v;
  }
  void write(std::uint32_t offset, std::uint32_t value, unsigned width) const {
    if (::pwrite(fd, &value, width, offset) != static_cast<ssize_t>(width)) die("pwrite config at " + hex(offset));
  }
};

/// A mapped window of resourceN: [offset, offset + length) of the BAR, page-aligned underneath.
class window {
public:
  window(std::uint32_t bar, std::uint64_t offset, std::uint64_t length) {
    const std::string file = device_dir + "/resource" + std::to_string(bar);
    const int fd = ::open(file.c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) die("open resource" + std::to_string(bar));
    skip_ = offset % page;
    length_ = (skip_ + length + page - 1) & ~(page - 1);
    base_ = ::mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset - skip_));
    ::close(fd);
    if (base_ == MAP_FAILED) die("mmap resource" + std::to_string(bar) + " at " + hex(offset));
  }
  window(const window&) = delete;
  window& operator=(const window&) = delete;
  ~window() { ::munmap(base_, length_); }
  volatile std::uint8_t* at(std::uint64_t delta) const {
    return static_cast<volatile std::uint8_t*>(base_) + skip_ + delta;
  }

private:
  void* base_ = nullptr;
  std::uint64_t length_ = 0;
  std::uint64_t skip_ = 0;
};

struct trap_count {
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
};
trap_count traps[6];

/// The REGION_READ/REGION_WRITE messages an 8-byte access at `offset` of BAR `b` causes.
/// QEMU maps exactly the sparse area {0, real} from the server's fd (even when it ends inside
/// a page) and traps the rest of the BAR; an access crossing the real end is split there, and
/// the trapped part goes out in naturally aligned pieces of 1, 2, 4 or 8 bytes (measured with
/// QEMU 10.2 under TCG: a load at real end - 1 is 1 byte mapped + 1 + 2 + 4 bytes trapped).
unsigned messages_for(const bar_spec& b, std::uint64_t offset) {
  if (b.file_offset == not_in_file) return 0;  // a real BAR: mapped whole
  std::uint64_t at = offset > b.real ? offset : b.real;
  const std::uint64_t end = offset + 8;
  unsigned n = 0;
  while (at < end) {
    std::uint64_t piece = 8;
    while (piece > 1 && (at % piece != 0 || at + piece > end)) piece /= 2;
    at += piece;
    ++n;
  }
  return n;
}

std::uint64_t bar_load(const bar_spec& b, std::uint64_t offset) {
  const window w(b.index, offset, 8);
  traps[b.index].reads += messages_for(b, offset);
  return load64(w.at(0));
}
void bar_store(const bar_spec& b, std::uint64_t offset, std::uint64_t value) {
  const window w(b.index, offset, 8);
  traps[b.index].writes += messages_for(b, offset);
  store64(w.at(0), value);
}

std::vector<std::uint8_t> read_record(const bar_spec& b, std::uint64_t offset) {
  const window w(b.index, offset, record_size);
  std::vector<std::uint8_t> r(record_size);
  for (std::size_t i = 0; i < record_size; i += 8) {
    const std::uint64_t v = load64(w.at(i));
    std::memcpy(&r[i], &v, 8);
  }
  return r;
}
void write_record(const bar_spec& b, std::uint64_t offset, const std::vector<std::uint8_t>& r) {
  const window w(b.index, offset, record_size);
  for (std::size_t i = 0; i < record_size; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, &r[i], 8);
    store64(w.at(i), v);
  }
}

std::string printable(const std::vector<std::uint8_t>& r) {
  std::string s;
  for (auto c : r) s += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '.';
  return s;
}

void expect_record(const bar_spec& b, std::uint64_t offset, std::string_view tag, const std::string& what) {
  const auto got = read_record(b, offset);
  const auto want = record(tag, b.index, offset);
  check(got == want, what + ": BAR" + std::to_string(b.index) + " +" + hex(offset) + " reads the '" + std::string(tag) +
                         "' record" + (got == want ? "" : " (got \"" + printable(got) + "\")"));
}

// ---- the guest checks ------------------------------------------------------------------------

void check_identity(const config& c) {
  check(read_text("vendor") == "0x10de", "vendor 0x10de (" + read_text("vendor") + ")");
  char want[16];
  std::snprintf(want, sizeof want, "0x%04x", c.device_id);
  check(read_text("device") == want, std::string("device ") + want + " (" + read_text("device") + ")");
  check(read_text("class") == "0x030200", "class 0x030200, 3D controller (" + read_text("class") + ")");
  check(read_text("subsystem_vendor") == "0x10de" && read_text("subsystem_device") == "0x16eb",
        "subsystem 10de:16eb (" + read_text("subsystem_vendor") + ":" + read_text("subsystem_device") + ")");
  check(read_text("revision") == "0xa1", "revision 0xa1 (" + read_text("revision") + ")");
  config_file cfg;
  cfg.open();
  const std::uint32_t id = cfg.read(0x00, 4), cls = cfg.read(0x08, 4);
  check(id == (std::uint32_t{c.device_id} << 16 | 0x10DE) && cls == (class_code << 8 | revision),
        "config dwords 0x00/0x08: " + hex(id) + " " + hex(cls));
  ::close(cfg.fd);
}

struct resource_line {
  std::uint64_t start = 0, end = 0, flags = 0;
};

std::vector<resource_line> read_resources() {
  std::vector<resource_line> out;
  const std::string text = read_text("resource");
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    resource_line r;
    if (std::sscanf(text.substr(at, nl - at).c_str(), "%" SCNx64 " %" SCNx64 " %" SCNx64, &r.start, &r.end, &r.flags) !=
        3)
      die("unparsable resource line");
    out.push_back(r);
    at = nl + 1;
  }
  return out;
}

void check_resources(const config& c) {
  const auto res = read_resources();
  if (res.size() < 7) die("resource has fewer than 7 lines");
  const auto expect = [&](std::uint32_t bar, std::uint64_t size, std::uint64_t flags) {
    const auto& r = res[bar];
    const std::uint64_t got = r.start == 0 && r.end == 0 ? 0 : r.end - r.start + 1;
    check(got == size && r.flags == flags && (size == 0 || r.start % size == 0),
          "BAR" + std::to_string(bar) + " size " + hex(size) + " flags " + hex(flags) + " (sysfs: " + hex(r.start) +
              "-" + hex(r.end) + " flags " + hex(r.flags) + ")");
  };
  expect(0, bar0_size, flags_mem64);
  expect(2, c.bar2.size, flags_mem64_prefetch);
  expect(4, c.bar4.size, flags_mem64_prefetch);
  // BAR1/3/5 are the upper halves of the 64-bit BARs; 6 is the (absent) ROM.
  for (std::uint32_t i : {1u, 3u, 5u, 6u}) expect(i, 0, 0);
}

/// Size the BARs through config space as firmware does, then put everything back.
void check_bar_sizing(const config& c) {
  config_file cfg;
  cfg.open();
  const auto res = read_resources();
  const std::uint32_t command = cfg.read(0x04, 2);
  check((command & 0x2) != 0, "COMMAND has memory decode on before sizing (" + hex(command) + ")");
  cfg.write(0x04, command & ~0x2u, 2);
  check(cfg.read(0x04, 2) == (command & ~0x2u), "COMMAND memory decode off");
  struct bar {
    std::uint32_t index;
    std::uint64_t size;
    std::uint32_t flags;
  };
  for (const bar b : {bar{0, bar0_size, 0x4}, bar{2, c.bar2.size, 0xC}, bar{4, c.bar4.size, 0xC}}) {
    const std::uint32_t reg = 0x10 + 4 * b.index;
    const std::uint32_t lo = cfg.read(reg, 4), hi = cfg.read(reg + 4, 4);
    const std::uint64_t address = (std::uint64_t{hi} << 32) | (lo & ~0xFu);
    check(address == res[b.index].start && (lo & 0xF) == b.flags, "BAR" + std::to_string(b.index) +
                                                                      " register holds the sysfs address " +
                                                                      hex(address) + ", low bits " + hex(lo & 0xF));
    cfg.write(reg, 0xFFFFFFFF, 4);
    cfg.write(reg + 4, 0xFFFFFFFF, 4);
    const std::uint32_t mlo = cfg.read(reg, 4), mhi = cfg.read(reg + 4, 4);
    const std::uint64_t mask = ~(b.size - 1);
    check(mlo == (static_cast<std::uint32_t>(mask) | b.flags) && mhi == static_cast<std::uint32_t>(mask >> 32),
          "BAR" + std::to_string(b.index) + " sizing: all-ones reads back " + hex(mhi) + ":" + hex(mlo) + " = size " +
              hex(b.size));
    cfg.write(reg, lo, 4);
    cfg.write(reg + 4, hi, 4);
    check(cfg.read(reg, 4) == lo && cfg.read(reg + 4, 4) == hi,
          "BAR" + std::to_string(b.index) + " restored to " + hex(address));
  }
  cfg.write(0x04, command, 2);
  check(cfg.read(0x04, 2) == command, "COMMAND restored, memory decode on (" + hex(command) + ")");
  ::close(cfg.fd);
}

/// Reads and writes inside real memory (mapped: no message) and, in the first phase, the
/// accesses at and past the real end (trapped: REGION_READ/REGION_WRITE).
void check_memory(const config& c, std::string_view phase) {
  for (const bar_spec* b : {&c.bar2, &c.bar4}) {
    const points p = points_of(*b);
    if (phase == "first") {
      for (auto o : p.seeds) expect_record(*b, o, "host", "seeded by the host");
      for (auto o : p.first) {
        write_record(*b, o, record("vmm1", b->index, o));
        expect_record(*b, o, "vmm1", "written through the mapping");
      }
    } else if (phase == "second") {
      for (auto o : p.first) expect_record(*b, o, "vmm1", "second VMM sees the first's write");
      for (auto o : p.second) {
        write_record(*b, o, record("vmm2", b->index, o));
        expect_record(*b, o, "vmm2", "written through the mapping");
      }
    } else {
      for (auto o : p.seeds) expect_record(*b, o, "host", "third VMM");
      for (auto o : p.first) expect_record(*b, o, "vmm1", "third VMM");
      for (auto o : p.second) expect_record(*b, o, "vmm2", "third VMM");
    }
  }
  if (phase != "first") return;

  for (const bar_spec* bp : {&c.bar2, &c.bar4}) {
    const bar_spec& b = *bp;
    const std::string bar = "BAR" + std::to_string(b.index) + " ";
    if (has_partial_page(b)) {
      // The last page is only partly real memory; its real bytes are mapped like the rest.
      const std::uint64_t me = mapped_end(b);
      const std::uint64_t got = bar_load(b, me);
      check(got == partial_seed, bar + "+" + hex(me) +
                                     " (real memory in the last, partly real page) reads the host's " +
                                     hex(partial_seed) + " (" + hex(got) + ")");
      bar_store(b, me + 8, partial_value);
      const std::uint64_t back = bar_load(b, me + 8);
      check(back == partial_value,
            bar + "+" + hex(me + 8) + " write in the partly real page reads back (" + hex(back) + ")");
    }
    if (!has_padding(b)) continue;
    // Straddling the real end: the real bytes, then 0xFF; a write keeps only the real part.
    const std::uint64_t s = straddle_at(b);
    const unsigned real_bytes = static_cast<unsigned>(b.real - s);
    const std::uint64_t keep = (std::uint64_t{1} << (8 * real_bytes)) - 1;
    const std::uint64_t seed_part = tail_seed >> (8 * (8 - real_bytes));  // the seed's last real_bytes bytes
    const std::uint64_t want_read = (seed_part & keep) | (all_ones & ~keep);
    const std::uint64_t got = bar_load(b, s);
    check(got == want_read, bar + "8-byte read at +" + hex(s) + " straddling the real end " + hex(b.real) + ": " +
                                std::to_string(real_bytes) + " real bytes then 0xFF = " + hex(want_read) + " (" +
                                hex(got) + ")");
    bar_store(b, s, straddle_value);
    const std::uint64_t want_back = (straddle_value & keep) | (all_ones & ~keep);
    const std::uint64_t back = bar_load(b, s);
    check(back == want_back, bar + "8-byte write straddling the real end keeps the real part: reads " + hex(want_back) +
                                 " (" + hex(back) + ")");
    // Past the real end: 0xFF everywhere, writes dropped.
    const std::uint64_t first_pad = (b.real + 7) & ~std::uint64_t{7};
    const std::uint64_t middle = (b.real + (b.size - b.real) / 2) & ~std::uint64_t{7};
    const std::uint64_t last = b.size - 8;
    for (const std::uint64_t o : {first_pad == s ? first_pad + 8 : first_pad, middle, last}) {
      const std::uint64_t v = bar_load(b, o);
      check(v == all_ones, bar + "read at +" + hex(o) + " past the real end is all 0xFF (" + hex(v) + ")");
      bar_store(b, o, padding_value);
      const std::uint64_t after = bar_load(b, o);
      check(after == all_ones, bar + "write at +" + hex(o) + " past the real end is dropped (" + hex(after) + ")");
    }
  }
}

int run(const config& c, std::string_view phase) {
  if (phase != "first" && phase != "second" && phase != "third") {
    std::fprintf(stderr, "unknown phase\n");
    return 2;
  }
  check_identity(c);
  if (phase == "first") {
    check_resources(c);
    check_bar_sizing(c);
  }
  check_memory(c, phase);
  for (const bar_spec* b : {&c.bar2, &c.bar4})
    std::printf("TRAPPED %.*s region %u reads %" PRIu64 " writes %" PRIu64 "\n", static_cast<int>(c.name.size()),
                c.name.data(), b->index, traps[b->index].reads, traps[b->index].writes);
  return failures == 0 ? 0 : 1;
}

double now() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

/// The host stops the server during this run: config reads turn all-ones, the pages QEMU
/// mapped from the server's fd keep their contents.
int server_gone(const config& c) {
  config_file cfg;
  cfg.open();
  std::printf("WAITING-FOR-SIGTERM %.*s\n", static_cast<int>(c.name.size()), c.name.data());
  std::fflush(stdout);
  const double t0 = now();
  std::uint32_t v = 0;
  while ((v = cfg.read(0x2C, 4)) != 0xFFFFFFFF && now() - t0 < 60) ::usleep(50000);
  check(v == 0xFFFFFFFF, "after the server stopped, config dword 0x2c (subsystem ids) reads all-ones (" + hex(v) +
                             ", after " + std::to_string(static_cast<int>((now() - t0) * 1000)) + " ms)");
  ::close(cfg.fd);
  for (const bar_spec* b : {&c.bar2, &c.bar4})
    for (auto o : points_of(*b).second) expect_record(*b, o, "vmm2", "server gone, the mapped page still");
  return failures == 0 ? 0 : 1;
}

// ---- the host side -------------------------------------------------------------------------

int open_file(const char* path, int flags) {
  const int fd = ::open(path, flags | O_CLOEXEC);
  if (fd < 0) die(std::string("open ") + path);
  return fd;
}

void put(int fd, std::uint64_t at, const void* data, std::size_t n) {
  if (::pwrite(fd, data, n, static_cast<off_t>(at)) != static_cast<ssize_t>(n)) die("pwrite memory file");
}
std::vector<std::uint8_t> get(int fd, std::uint64_t at, std::size_t n) {
  std::vector<std::uint8_t> b(n);
  if (::pread(fd, b.data(), n, static_cast<off_t>(at)) != static_cast<ssize_t>(n)) die("pread memory file");
  return b;
}

/// Create FILE with the configuration's size (as the server would) and write the seeds.
int seed(const config& c, const char* path) {
  const int fd = open_file(path, O_RDWR | O_CREAT | O_TRUNC);
  if (::ftruncate(fd, static_cast<off_t>(c.size)) != 0) die("ftruncate");
  for (const bar_spec* b : {&c.bar2, &c.bar4}) {
    if (b->file_offset == not_in_file) continue;
    const auto base = static_cast<std::uint64_t>(b->file_offset);
    for (auto o : points_of(*b).seeds) put(fd, base + o, record("host", b->index, o).data(), record_size);
    if (has_padding(*b)) put(fd, base + b->real - 8, &tail_seed, 8);
    if (has_partial_page(*b)) put(fd, base + mapped_end(*b), &partial_seed, 8);
  }
  ::close(fd);
  std::printf("seeded %s (%" PRIu64 " bytes)\n", path, c.size);
  return 0;
}

/// What the file must hold after a stage: the guest's writes where they belong, the seeds
/// untouched, nothing of the dropped writes, and its length.
int verify(const config& c, const char* path, std::string_view stage) {
  const int fd = open_file(path, O_RDONLY);
  struct stat st {};
  if (::fstat(fd, &st) != 0) die("fstat");
  check(
      static_cast<std::uint64_t>(st.st_size) == c.size,
      std::string("memory file keeps its length ") + std::to_string(c.size) + " (" + std::to_string(st.st_size) + ")");
  for (const bar_spec* b : {&c.bar2, &c.bar4}) {
    if (b->file_offset == not_in_file) continue;
    const auto base = static_cast<std::uint64_t>(b->file_offset);
    const points p = points_of(*b);
    const std::string bar = "file, BAR" + std::to_string(b->index) + " ";
    const auto expect = [&](std::uint64_t o, std::string_view tag) {
      const auto got = get(fd, base + o, record_size);
      check(got == record(tag, b->index, o),
            bar + "+" + hex(o) + " (file offset " + hex(base + o) + ") holds the '" + std::string(tag) + "' record");
    };
    for (auto o : p.seeds) expect(o, "host");
    for (auto o : p.first) expect(o, "vmm1");
    if (stage == "second")
      for (auto o : p.second) expect(o, "vmm2");
    if (has_partial_page(*b)) {
      const std::uint64_t me = mapped_end(*b);
      const auto w = get(fd, base + me, 16);
      std::uint64_t s0, s1;
      std::memcpy(&s0, &w[0], 8);
      std::memcpy(&s1, &w[8], 8);
      check(s0 == partial_seed && s1 == partial_value,
            bar + "+" + hex(me) + ": host seed, then the guest's write (" + hex_bytes(w.data(), 16) + ")");
    }
    if (has_padding(*b)) {
      // [real - 8, real): the seed, its last bytes replaced by the straddling write's real part.
      const std::uint64_t s = straddle_at(*b);
      const unsigned real_bytes = static_cast<unsigned>(b->real - s);
      std::uint8_t want[8];
      std::memcpy(want, &tail_seed, 8);
      std::memcpy(want + 8 - real_bytes, &straddle_value, real_bytes);
      const auto got = get(fd, base + b->real - 8, 8);
      check(std::memcmp(got.data(), want, 8) == 0,
            bar + "last 8 real bytes: seed, then the " + std::to_string(real_bytes) +
                " real bytes of the straddling write (" + hex_bytes(got.data(), 8) + ")");
    }
  }
  ::close(fd);
  return failures == 0 ? 0 : 1;
}

int usage() {
  std::fputs(
      "usage: guest configs | server-args NAME | seed NAME FILE | verify NAME FILE first|second |\n"
      "       run NAME BDF first|second|third | server-gone NAME BDF | peek NAME BDF 2|4 OFFSET [VALUE]\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) return usage();
  const std::string_view cmd = argv[1];
  if (cmd == "configs") {
    for (const auto& c : configs) std::printf("%.*s\n", static_cast<int>(c.name.size()), c.name.data());
    return 0;
  }
  if (argc < 3) return usage();
  const config* c = find_config(argv[2]);
  if (c == nullptr) {
    std::fprintf(stderr, "unknown configuration '%s'\n", argv[2]);
    return 2;
  }
  if (cmd == "server-args" && argc == 3) {
    std::printf("--generation %.*s --size %" PRIu64 "\n", static_cast<int>(c->generation.size()), c->generation.data(),
                c->size);
    return 0;
  }
  if (cmd == "seed" && argc == 4) return seed(*c, argv[3]);
  if (cmd == "verify" && argc == 5) {
    prefix = "[" + std::string(c->name) + " host] ";
    return verify(*c, argv[3], argv[4]);
  }
  if ((cmd == "run" && argc == 5) || (cmd == "server-gone" && argc == 4)) {
    const std::string bdf = argv[3];
    device_dir = "/sys/bus/pci/devices/" + bdf;
    prefix = "[" + std::string(c->name) + " " + bdf.substr(5) + "] ";
    if (::access(device_dir.c_str(), F_OK) != 0) die("no device " + device_dir);
    return cmd == "run" ? run(*c, argv[4]) : server_gone(*c);
  }
  if (cmd == "peek" && (argc == 6 || argc == 7)) {  // a debugging aid: one 8-byte load (and store)
    device_dir = "/sys/bus/pci/devices/" + std::string(argv[3]);
    const bar_spec& b = std::string_view(argv[4]) == "2" ? c->bar2 : c->bar4;
    const std::uint64_t offset = std::strtoull(argv[5], nullptr, 0);
    if (argc == 7) bar_store(b, offset, std::strtoull(argv[6], nullptr, 0));
    std::printf("BAR%u +%s: %s\n", b.index, hex(offset).c_str(), hex(bar_load(b, offset)).c_str());
    return 0;
  }
  return usage();
}
