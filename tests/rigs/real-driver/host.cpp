// nvgrace-rig-host: the host half of the real-driver rig.
//
//   nvgrace-rig-host seed --file F --offset O [profile options] --seed N --ops N
//       write the initial GPU memory content (the stream's seeded windows) into the
//       file that backs the guest's GPU memory, at file offset O
//   nvgrace-rig-host extract --channel CH NAME FILE
//       copy the channel blob NAME (e.g. the guest's DSDT) into FILE
//   nvgrace-rig-host windows [profile options] --seed N --ops N
//       print the seeded windows (relative to the GPU memory base)
//   nvgrace-rig-host diff --channel CH [--memory-file F --memory-offset O] [--untouched LEN]
//                         [--name NAME] [--details N] [--trace-kind KIND]
//                         [--trace-from I --trace-to J]
//                         [profile options] --seed N --ops N
//       build shim::device from the same ACPI inputs, with the same initial memory,
//       in the driver's return mode (upstream short resmem return); apply the same
//       stream; compare every record the guest left in the channel with the model's;
//       then compare the GPU memory the guest's driver left in F with the model's.
//       Prints a report; exit 0 only when nothing differs.
//   nvgrace-rig-host probe-wait --driver-errno E --driver-reads N --guest-ms MS [profile options]
//       a function that never reports ready: the model's probe (its readiness wait on a
//       clock that advances as the guest kernel's 1 s sleeps do) must fail with the
//       driver's errno after as many reads of the C2C register as the server counted,
//       in about the time the guest measured
//   nvgrace-rig-host probe-compare --log CONSOLE [profile options]
//       run nvgrace-probe's checks on the model and compare its rule lines and exit
//       status with those nvgrace-probe printed in the guest (the console CONSOLE)

#include "channel.hpp"
#include "cli.hpp"
#include "model.hpp"
#include "ops.hpp"
#include "probe.hpp"
#include "render.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/mem/memfd_memory.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace nvgrace;
using shim_device = rig::model_device;

std::string take(std::vector<std::string>& rest, const std::string& flag) {
  for (std::size_t i = 0; i + 1 < rest.size(); ++i)
    if (rest[i] == flag) {
      std::string v = rest[i + 1];
      rest.erase(rest.begin() + static_cast<long>(i), rest.begin() + static_cast<long>(i) + 2);
      return v;
    }
  return {};
}

std::uint64_t take_number(std::vector<std::string>& rest, const std::string& flag, std::uint64_t fallback) {
  const std::string v = take(rest, flag);
  if (v.empty()) return fallback;
  const auto n = rig::parse_number(v);
  if (!n) {
    std::fprintf(stderr, "nvgrace-rig-host: %s: not a number: %s\n", flag.c_str(), v.c_str());
    std::exit(2);
  }
  return *n;
}

std::string errno_text(std::int64_t code) {
  if (code >= 0) return std::to_string(code);
  const std::string_view known = errno_name(static_cast<errc>(-code));
  if (known != "E?") return "-" + std::string(known);
  return "-errno" + std::to_string(-code);
}

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

std::string kind_name(rig::kind k) {
  switch (k) {
    case rig::kind::device_info: return "DEVICE_GET_INFO";
    case rig::kind::irq_info: return "GET_IRQ_INFO";
    case rig::kind::region_info: return "GET_REGION_INFO";
    case rig::kind::pread: return "pread";
    case rig::kind::pwrite: return "pwrite";
    case rig::kind::read_fpos: return "read(2)";
    case rig::kind::config_read: return "config pread";
    case rig::kind::config_write: return "config pwrite";
    case rig::kind::mmap: return "mmap";
    case rig::kind::reset: return "VFIO_DEVICE_RESET";
    case rig::kind::reopen: return "close + open";
  }
  return "?";
}

std::string trace_name(rig::kind k) {
  switch (k) {
    case rig::kind::device_info: return "device_info";
    case rig::kind::irq_info: return "irq_info";
    case rig::kind::region_info: return "region_info";
    case rig::kind::pread: return "pread";
    case rig::kind::pwrite: return "pwrite";
    case rig::kind::read_fpos: return "read_fpos";
    case rig::kind::config_read: return "config_read";
    case rig::kind::config_write: return "config_write";
    case rig::kind::mmap: return "mmap";
    case rig::kind::reset: return "reset";
    case rig::kind::reopen: return "reopen";
  }
  return "?";
}

std::string describe(const rig::op& o) {
  std::string s = kind_name(o.k);
  switch (o.k) {
    case rig::kind::irq_info:
    case rig::kind::region_info: s += " index " + std::to_string(o.index) + " argsz " + std::to_string(o.argsz); break;
    case rig::kind::pread:
    case rig::kind::pwrite:
      s += " region " + std::to_string(o.index) + " offset " + hex(o.offset) + " count " + std::to_string(o.length);
      break;
    case rig::kind::read_fpos: s += " count " + std::to_string(o.length); break;
    case rig::kind::config_read: s += " offset " + hex(o.offset) + " count " + std::to_string(o.length); break;
    case rig::kind::config_write:
      s += " offset " + hex(o.offset) + " count " + std::to_string(o.length) + " value " + hex(o.value);
      break;
    case rig::kind::mmap:
      s += " region " + std::to_string(o.index) + " offset " + hex(o.offset) + " length " + hex(o.length) +
           (o.touch_write ? " (+ write through it)" : "");
      break;
    default: break;
  }
  return s;
}

std::string head_text(const rig::record& r) {
  std::string s;
  char b[4];
  for (const auto byte : r.head) {
    std::snprintf(b, sizeof b, "%02x", byte);
    s += b;
  }
  return s;
}

std::string record_text(const rig::record& r, const std::vector<std::byte>& payload) {
  std::string s =
      errno_text(r.result) + ", bytes " + head_text(r) + ", aux " + hex(r.aux) + ", digest " + hex(r.digest);
  if (!payload.empty() && payload.size() <= 80) {
    s += ", payload ";
    char b[4];
    for (const auto byte : payload) {
      std::snprintf(b, sizeof b, "%02x", std::to_integer<unsigned>(byte));
      s += b;
    }
  }
  return s;
}

/// "+0x3c: 0a/ff, ..." for the bytes that differ (driver/model), at absolute offsets.
std::string byte_diff(const std::vector<std::byte>& driver, const std::vector<std::byte>& model, std::uint64_t base) {
  std::string s;
  int shown = 0;
  char b[48];
  for (std::size_t k = 0; k < driver.size() && k < model.size(); ++k) {
    if (driver[k] == model[k]) continue;
    if (++shown > 48) {
      s += " ...";
      break;
    }
    std::snprintf(b, sizeof b, "%s%03llx: %02x/%02x", s.empty() ? "" : ", ", static_cast<unsigned long long>(base + k),
                  std::to_integer<unsigned>(driver[k]), std::to_integer<unsigned>(model[k]));
    s += b;
  }
  return s;
}

using shim_target = rig::model_target;

int seed_file(rig::options o) {
  const std::string file = take(o.rest, "--file");
  const std::uint64_t offset = take_number(o.rest, "--offset", 0);
  if (file.empty() || !o.rest.empty() || o.prof.fallback()) {
    std::fputs("usage: nvgrace-rig-host seed --file F --offset O [profile options] --seed N --ops N\n", stderr);
    return 2;
  }
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "nvgrace-rig-host: %s: %s\n", file.c_str(), std::strerror(errno));
    return 3;
  }
  const rig::stream stream(o.prof, o.seed, o.ops);
  std::vector<std::byte> buf(1 << 20);
  std::uint64_t total = 0;
  for (const auto& w : stream.seed_windows()) {
    for (std::uint64_t at = w.first; at < w.second;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), w.second - at));
      rig::fill_seed(std::span<std::byte>(buf).first(n), at);
      if (::pwrite(fd, buf.data(), n, static_cast<off_t>(offset + at)) != static_cast<ssize_t>(n)) {
        std::fprintf(stderr, "nvgrace-rig-host: writing %s: %s\n", file.c_str(), std::strerror(errno));
        return 3;
      }
      at += n;
      total += n;
    }
  }
  ::close(fd);
  std::printf("nvgrace-rig-host: seeded %llu bytes in %zu windows of %s at offset %s\n",
              static_cast<unsigned long long>(total), stream.seed_windows().size(), file.c_str(), hex(offset).c_str());
  return 0;
}

int extract(rig::options o) {
  const std::string channel_path = take(o.rest, "--channel");
  if (channel_path.empty() || o.rest.size() != 2) {
    std::fputs("usage: nvgrace-rig-host extract --channel CH NAME FILE\n", stderr);
    return 2;
  }
  rig::channel ch;
  if (!ch.open(channel_path.c_str(), false)) {
    std::fprintf(stderr, "nvgrace-rig-host: cannot map %s: %s\n", channel_path.c_str(), std::strerror(errno));
    return 3;
  }
  const rig::channel_entry* e = ch.find(o.rest[0]);
  if (e == nullptr || e->done == 0) {
    std::fprintf(stderr, "nvgrace-rig-host: the channel holds no finished blob %s\n", o.rest[0].c_str());
    return 1;
  }
  const auto bytes = ch.bytes(*e);
  std::FILE* f = std::fopen(o.rest[1].c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::fprintf(stderr, "nvgrace-rig-host: cannot write %s\n", o.rest[1].c_str());
    if (f != nullptr) std::fclose(f);
    return 3;
  }
  std::fclose(f);
  return 0;
}

int windows(const rig::options& o) {
  const rig::stream stream(o.prof, o.seed, o.ops);
  for (const auto& w : stream.seed_windows()) std::printf("%s %s\n", hex(w.first).c_str(), hex(w.second).c_str());
  return 0;
}

/// Offset of the next data at or after `at` in fd (SEEK_DATA), or `end`.
std::uint64_t next_data(int fd, std::uint64_t at, std::uint64_t end) {
  const off_t r = ::lseek(fd, static_cast<off_t>(at), SEEK_DATA);
  if (r < 0) return errno == ENXIO ? end : at;  // no more data, or no SEEK_DATA: compare everything
  return std::min<std::uint64_t>(static_cast<std::uint64_t>(r), end);
}

struct class_stats {
  std::uint64_t ops = 0;
  std::uint64_t mismatches = 0;
  std::uint64_t first_mismatch = ~std::uint64_t{0};
};

int diff(rig::options o) {
  const std::string channel_path = take(o.rest, "--channel");
  const std::string memory_file = take(o.rest, "--memory-file");
  const std::uint64_t memory_offset = take_number(o.rest, "--memory-offset", 0);
  const std::uint64_t untouched = take_number(o.rest, "--untouched", 0);
  const std::uint64_t max_details = take_number(o.rest, "--details", 4);
  // --trace-kind K: print every operation of kind K (config_write, config_read, ...) with both records.
  const std::string trace_kind = take(o.rest, "--trace-kind");
  // --trace-from A --trace-to B: print operations A..B-1 with both records.
  const std::uint64_t trace_from = take_number(o.rest, "--trace-from", 0);
  const std::uint64_t trace_to = take_number(o.rest, "--trace-to", 0);
  std::string name = take(o.rest, "--name");
  if (name.empty()) name = "profile";
  if (channel_path.empty() || !o.rest.empty()) {
    std::fputs("usage: nvgrace-rig-host diff --channel CH [--memory-file F --memory-offset O] [options]\n", stderr);
    return 2;
  }

  // The guest's records.
  rig::channel ch;
  if (!ch.open(channel_path.c_str(), false)) {
    std::fprintf(stderr, "nvgrace-rig-host: cannot map %s: %s\n", channel_path.c_str(), std::strerror(errno));
    return 3;
  }
  const rig::channel_entry* e = ch.find("diff");
  if (e == nullptr) {
    std::printf("%s: FAIL: the guest left no differential records (did it run?)\n", name.c_str());
    return 1;
  }
  const auto blob = ch.bytes(*e);
  if (blob.size() < sizeof(rig::diff_header)) {
    std::printf("%s: FAIL: the record blob is truncated\n", name.c_str());
    return 1;
  }
  rig::diff_header head{};
  std::memcpy(&head, blob.data(), sizeof head);
  if (std::memcmp(head.magic, rig::diff_magic, sizeof head.magic) != 0 || head.seed != o.seed || head.total != o.ops) {
    std::printf("%s: FAIL: the records are of another run (seed %llu, %llu operations)\n", name.c_str(),
                static_cast<unsigned long long>(head.seed), static_cast<unsigned long long>(head.total));
    return 1;
  }
  if (head.open_errno != 0) {
    std::printf("%s: FAIL: the guest could not open the device: %s\n", name.c_str(),
                errno_text(-static_cast<std::int64_t>(head.open_errno)).c_str());
    return 1;
  }

  // The model, from the same ACPI inputs and the same initial memory.
  const rig::profile& p = o.prof;
  const shim::device_options options = rig::model_options(p);
  const rig::stream stream(p, o.seed, o.ops);
  auto created = [&]() -> result<shim_device> {
    if (p.fallback()) return shim_device::create(options);
    auto memory = mem::memfd_memory::create(p.size, mem::caching::cached, "nvgrace-rig-model");
    if (!memory) return memory.error();
    for (const auto& w : stream.seed_windows())
      rig::fill_seed(std::span<std::byte>(memory->view().base + w.first, static_cast<std::size_t>(w.second - w.first)),
                     w.first);
    return shim_device::create(options, std::move(*memory));
  }();
  if (!created) {
    std::printf("%s: FAIL: the model refuses the profile: %s (the driver probed it)\n", name.c_str(),
                std::string(errno_name(created.error())).c_str());
    return 1;
  }
  shim_device dev = std::move(*created);
  shim_target t{dev};

  // Config bits that are inputs of the platform, not rules of the driver: what the
  // guest's firmware, kernel and QEMU made of the function's config space (BAR
  // addresses, COMMAND bits such as I/O decode and SERR, the interrupt line, QEMU's
  // rewrite of the PCIe capability into an integrated endpoint's). The guest dumps the
  // function's config before binding; where a bit differs from what the server served
  // (the model's own physical config), inside those registers, that bit of a byte the
  // driver takes from vfio-pci's virtual config is the platform's and is not compared,
  // until the stream writes the byte (the virtual register then holds what was written,
  // on both sides). Bytes the driver's BAR emulation answers are always compared.
  std::array<std::uint8_t, 4096> platform{};
  std::array<bool, 4096> written{};
  std::uint64_t platform_bits_total = 0;
  if (const rig::channel_entry* ce = ch.find("config"); ce != nullptr && ce->done != 0) {
    auto served = shim_device::create(rig::physical_options(p));
    if (!served) {
      std::printf("%s: FAIL: cannot build the served function: %s\n", name.c_str(),
                  std::string(errno_name(served.error())).c_str());
      return 3;
    }
    const auto image = served->config_snapshot();
    const auto dumped = ch.bytes(*ce);
    for (std::size_t k = 0; k < image.size() && k < dumped.size(); ++k) {
      const bool platform_owned = (k >= 0x04 && k < 0x06) || (k >= 0x10 && k < 0x28) || k == 0x3C ||
                                  (k >= shim::config_layout::express && k < shim::config_layout::express + 0x3C);
      if (platform_owned) platform[k] = static_cast<std::uint8_t>(std::to_integer<unsigned>(image[k] ^ dumped[k]));
      platform_bits_total += static_cast<std::uint64_t>(std::popcount(platform[k]));
    }
  }
  // The driver's routing of a config access (its BAR2 window is tested first, and a
  // hit there ends the search even when BAR2 is not emulated): the window whose
  // emulated register answers, or 0 when vfio-pci's virtual config takes the access.
  const auto route = [&](std::uint64_t offset, std::uint64_t length) -> std::uint32_t {
    const auto hits = [&](std::uint64_t from) { return offset < from + 8 && from < offset + length; };
    if (hits(0x18)) return stream.regions()[2].emulated ? 2u : 0u;
    if (hits(0x20)) return stream.regions()[4].emulated ? 4u : 0u;
    return 0u;
  };
  // The bits of config byte `at` that are the platform's in a read routed to `window`.
  const auto platform_bits = [&](std::uint64_t at, std::uint32_t window) -> std::uint8_t {
    if (at >= platform.size() || written[at]) return 0;
    if (window != 0 && at >= 0x10 + 4 * window && at < 0x18 + 4 * window) return 0;  // the driver's own
    return platform[at];
  };
  const auto differing_bits = [&](std::byte a, std::byte b, std::uint64_t at, std::uint32_t window) {
    return static_cast<std::uint8_t>(std::to_integer<unsigned>(a ^ b) & ~platform_bits(at, window) & 0xFFu);
  };
  std::uint64_t masked_reads = 0;
  // Operation by operation.
  std::array<class_stats, static_cast<std::size_t>(rig::op_class::count_)> stats{};
  std::vector<std::string> details;
  std::vector<std::byte> scratch(rig::scratch_size);
  std::vector<std::byte> payload;
  std::size_t at = sizeof head;
  std::uint64_t mismatches = 0;
  std::uint64_t resynced = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < head.done; ++i) {
    if (at + sizeof(rig::record) > blob.size()) {
      std::printf("%s: FAIL: records end early at operation %llu\n", name.c_str(), static_cast<unsigned long long>(i));
      return 1;
    }
    rig::record guest{};
    std::memcpy(&guest, blob.data() + at, sizeof guest);
    std::vector<std::byte> guest_payload(blob.begin() + static_cast<long>(at + sizeof guest),
                                         blob.begin() + static_cast<long>(at + sizeof guest + guest.payload));
    at += sizeof guest + (guest.payload + 7u) / 8 * 8;
    const rig::op op = stream.at(i);
    if (guest.op_index != i || guest.k != static_cast<std::uint8_t>(op.k)) {
      std::printf("%s: FAIL: record %llu is not of this stream\n", name.c_str(), static_cast<unsigned long long>(i));
      return 1;
    }
    const std::string state_before = std::string("reset_done ") + (dev.reset_done() ? "1" : "0") + ", memory decode " +
                                     (dev.memory_enabled() ? "on" : "off") + ", resets so far " +
                                     std::to_string(dev.reset_count()) + ", mapping generation " +
                                     std::to_string(dev.mapping_generation()) + (dev.is_closed() ? ", closed" : "");
    // A write through a mapping that the driver refused (SIGBUS, or no mapping) but the
    // model let through would make every later read of those bytes differ: after
    // counting the mismatch, put the model's 8 bytes back.
    std::array<std::byte, 8> before{};
    std::byte* touched = nullptr;
    if (op.k == rig::kind::mmap && op.touch_write && op.length >= 16) {
      const mem::memory_view v = dev.region_memory(op.index).value_or(mem::memory_view{});
      const std::uint64_t touch_at = op.offset + ((op.length / 2) & ~std::uint64_t{7});
      if (v.base != nullptr && touch_at + 8 <= v.length) {
        touched = v.base + touch_at;
        std::memcpy(before.data(), touched, before.size());
      }
    }
    // Likewise a pwrite the two answer differently: afterwards the model's memory holds
    // what the driver's holds (the bytes the driver took, nothing more).
    std::vector<std::byte> write_before;
    mem::memory_view write_view{};
    if (op.k == rig::kind::pwrite && op.index < vfio::pci_num_regions) {
      write_view = dev.region_memory(op.index).value_or(mem::memory_view{});
      if (write_view.base != nullptr && op.offset < write_view.length) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(op.length, write_view.length - op.offset));
        write_before.assign(write_view.base + op.offset, write_view.base + op.offset + n);
      }
    }
    const rig::record model = rig::execute(t, op, i, o.seed, scratch, payload);
    if (op.k == rig::kind::pwrite && guest.result != model.result && write_view.base != nullptr &&
        op.offset < write_view.length) {
      std::memcpy(write_view.base + op.offset, write_before.data(), write_before.size());
      if (guest.result > 0) {
        const auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(static_cast<std::uint64_t>(guest.result), write_view.length - op.offset));
        std::vector<std::byte> data(static_cast<std::size_t>(op.length));
        rig::fill_data(data, o.seed, i);
        std::memcpy(write_view.base + op.offset, data.data(), std::min(n, data.size()));
      }
      ++resynced;
    }
    if (touched != nullptr) {
      const bool driver_wrote = guest.result == 0 && (guest.aux & rig::sigbus_write) == 0;
      const bool model_wrote = model.result == 0 && (model.aux & rig::sigbus_write) == 0;
      if (driver_wrote != model_wrote) {
        if (model_wrote) {
          std::memcpy(touched, before.data(), before.size());
        } else {
          std::array<std::byte, 8> in{};
          rig::fill_data(in, o.seed, i);
          std::memcpy(touched, in.data(), in.size());
        }
        ++resynced;
      }
    }
    if ((!trace_kind.empty() && trace_kind == trace_name(op.k)) || (i >= trace_from && i < trace_to))
      std::printf("   trace #%llu %s [model before: %s]\n      driver: %s\n      model:  %s\n",
                  static_cast<unsigned long long>(i), describe(op).c_str(), state_before.c_str(),
                  record_text(guest, guest_payload).c_str(), record_text(model, payload).c_str());
    class_stats& c = stats[static_cast<std::size_t>(op.cls)];
    ++c.ops;
    bool same = guest.result == model.result && guest.digest == model.digest && guest.aux == model.aux;
    if (!same && op.k == rig::kind::config_read && guest.result == model.result && guest.aux == model.aux &&
        guest_payload.size() == payload.size()) {
      bool equal_but_platform = true;
      const std::uint32_t window = route(op.offset, op.length);
      for (std::size_t k = 0; k < payload.size() && equal_but_platform; ++k)
        if (differing_bits(guest_payload[k], payload[k], op.offset + k, window) != 0) equal_but_platform = false;
      if (equal_but_platform) {
        same = true;
        ++masked_reads;
      }
    }
    // The file position: when the two differ after a read(2) (a mismatch, counted here),
    // the model takes the driver's, so that one difference is not counted again by every
    // later read(2).
    if (op.k == rig::kind::read_fpos && guest.aux != model.aux && guest.aux != ~std::uint64_t{0}) {
      t.fpos = guest.aux;
      ++resynced;
    }
    // A re-open rebuilds the virtual config space from the function on both sides: the
    // platform's bits are the platform's again. A written byte holds what was written.
    if (op.k == rig::kind::reopen && guest.result == 0) written.fill(false);
    if (op.k == rig::kind::config_write && guest.result > 0 && route(op.offset, op.length) == 0) {
      const auto end = std::min<std::uint64_t>(op.offset + static_cast<std::uint64_t>(guest.result), written.size());
      for (std::uint64_t k = op.offset; k < end; ++k) written[k] = true;
    }
    if (!same) {
      ++c.mismatches;
      ++mismatches;
      if (c.first_mismatch == ~std::uint64_t{0}) c.first_mismatch = i;
      if (c.mismatches <= max_details) {
        std::string d = "#" + std::to_string(i) + " [" + std::string(rig::name_of(op.cls)) + "] " + describe(op) +
                        "\n      driver: " + record_text(guest, guest_payload) +
                        "\n      model:  " + record_text(model, payload) +
                        "\n      model state before: " + state_before;
        if (op.k == rig::kind::config_read && guest_payload.size() == payload.size() && payload.size() > 16)
          d += "\n      differing bytes: " + byte_diff(guest_payload, payload, op.offset);
        details.push_back(d);
      }
    }
  }
  const double model_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The memory the driver left behind, against the model's.
  std::uint64_t memory_bytes = 0, memory_diffs = 0, untouched_diffs = 0;
  std::vector<std::string> memory_details;
  if (!memory_file.empty() && !p.fallback()) {
    const int fd = ::open(memory_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::printf("%s: FAIL: %s: %s\n", name.c_str(), memory_file.c_str(), std::strerror(errno));
      return 3;
    }
    const mem::memory_view model_memory = dev.gpu_memory().view();
    const int model_fd = dev.gpu_memory().source().fd;
    std::vector<std::byte> chunk(1 << 20);
    std::uint64_t pos = 0;
    while (pos < p.size) {
      const std::uint64_t g = next_data(fd, memory_offset + pos, memory_offset + p.size) - memory_offset;
      const std::uint64_t m = next_data(model_fd, pos, p.size);
      const std::uint64_t from = std::min(g, m);
      if (from >= p.size) break;
      const std::uint64_t to = std::min<std::uint64_t>(p.size, (from / chunk.size() + 1) * chunk.size());
      const std::size_t n = static_cast<std::size_t>(to - from);
      if (::pread(fd, chunk.data(), n, static_cast<off_t>(memory_offset + from)) != static_cast<ssize_t>(n)) {
        std::memset(chunk.data(), 0, n);  // past the end of a sparse file: zeros
      }
      for (std::size_t k = 0; k < n; ++k) {
        if (chunk[k] != model_memory.base[from + k]) {
          ++memory_diffs;
          if (memory_details.size() < max_details)
            memory_details.push_back("GPU memory byte " + hex(from + k) + ": driver left " +
                                     hex(std::to_integer<unsigned>(chunk[k])) + ", model " +
                                     hex(std::to_integer<unsigned>(model_memory.base[from + k])));
        }
      }
      memory_bytes += n;
      pos = to;
    }
    // Nothing may have been written between the real end and the end of the reserved range.
    for (std::uint64_t u = p.size; u < untouched;) {
      const std::uint64_t d = next_data(fd, memory_offset + u, memory_offset + untouched) - memory_offset;
      if (d >= untouched) break;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), untouched - d));
      if (::pread(fd, chunk.data(), n, static_cast<off_t>(memory_offset + d)) != static_cast<ssize_t>(n)) break;
      for (std::size_t k = 0; k < n; ++k)
        if (chunk[k] != std::byte{0}) ++untouched_diffs;
      u = d + n;
    }
    ::close(fd);
  }

  // The report.
  const double guest_s = static_cast<double>(head.elapsed_ns) / 1e9;
  std::printf("== %s: %llu of %llu operations, seed %llu; driver %.2f s (%.0f ops/s), model %.3f s\n", name.c_str(),
              static_cast<unsigned long long>(head.done), static_cast<unsigned long long>(head.total),
              static_cast<unsigned long long>(o.seed), guest_s,
              guest_s > 0 ? static_cast<double>(head.done) / guest_s : 0.0, model_s);
  std::printf("   %-40s %8s %10s\n", "operation class", "ops", "mismatches");
  for (std::size_t c = 0; c < stats.size(); ++c) {
    if (stats[c].ops == 0) continue;
    std::printf("   %-40s %8llu %10llu\n", std::string(rig::class_names[c]).c_str(),
                static_cast<unsigned long long>(stats[c].ops), static_cast<unsigned long long>(stats[c].mismatches));
  }
  std::printf("   %-40s %8llu %10llu\n", "total", static_cast<unsigned long long>(head.done),
              static_cast<unsigned long long>(mismatches));
  std::printf(
      "   config bits that are platform inputs (differ from the served function): %llu; "
      "config reads equal once those are set aside: %llu\n",
      static_cast<unsigned long long>(platform_bits_total), static_cast<unsigned long long>(masked_reads));
  if (resynced != 0)
    std::printf("   model state put back after a counted mismatch (writes, mapped writes, file positions): %llu\n",
                static_cast<unsigned long long>(resynced));
  if (!memory_file.empty() && !p.fallback())
    std::printf(
        "   GPU memory left by the driver: %llu bytes compared (seeded and written extents), %llu differ; "
        "%llu non-zero bytes past the real end\n",
        static_cast<unsigned long long>(memory_bytes), static_cast<unsigned long long>(memory_diffs),
        static_cast<unsigned long long>(untouched_diffs));
  for (const auto& d : details) std::printf("   %s\n", d.c_str());
  for (const auto& d : memory_details) std::printf("   %s\n", d.c_str());
  const bool complete = head.done == head.total;
  const std::uint64_t total_diffs = mismatches + memory_diffs + untouched_diffs;
  std::printf("RIG-RESULT %s ops=%llu mismatches=%llu memory_diffs=%llu complete=%s\n", name.c_str(),
              static_cast<unsigned long long>(head.done), static_cast<unsigned long long>(mismatches),
              static_cast<unsigned long long>(memory_diffs + untouched_diffs), complete ? "yes" : "no");
  if (!complete) return 1;
  return total_diffs == 0 ? 0 : 1;
}

}  // namespace

/// How long the guest kernel's schedule_timeout of 1000 ms sleeps: 250 jiffies at
/// the rig kernel's HZ=250, which the timer wheel (level 1, 8-jiffy granularity)
/// rounds up to the next multiple of 8 jiffies: 1000 to 1028 ms; the middle.
constexpr std::uint64_t guest_poll_sleep_ms = 1016;

int probe_wait(rig::options o) {
  const std::uint64_t driver_errno = take_number(o.rest, "--driver-errno", 0);
  const std::uint64_t driver_reads = take_number(o.rest, "--driver-reads", 0);
  const std::uint64_t guest_ms = take_number(o.rest, "--guest-ms", 0);
  if (!o.rest.empty()) {
    std::fputs("usage: nvgrace-rig-host probe-wait --driver-errno E --driver-reads N --guest-ms MS [profile]\n",
               stderr);
    return 2;
  }
  rig::replay_clock clock(o.prof, guest_poll_sleep_ms);
  shim::device_options options = rig::model_options(o.prof);
  options.readiness_clock = &clock;
  const auto created = o.prof.fallback() ? shim_device::create(options) : [&] {
    auto memory = mem::memfd_memory::create(o.prof.size, mem::caching::cached, "nvgrace-rig-model");
    if (!memory) return result<shim_device>(memory.error());
    return shim_device::create(options, std::move(*memory));
  }();
  const std::uint64_t model_errno = created ? 0 : static_cast<std::uint64_t>(to_errno(created.error()));
  const std::uint64_t model_ms = clock.now_ms();
  const std::uint64_t off = model_ms > guest_ms ? model_ms - guest_ms : guest_ms - model_ms;
  const bool same_errno = model_errno == driver_errno;
  const bool same_reads = clock.c2c_reads() == driver_reads;
  const bool close_time = off <= 2000;
  std::printf(
      "RIG-WAIT driver %s after %llu C2C reads in %llu ms (guest clock, whole bind); "
      "model %s after %llu C2C reads in %llu ms (%llu ms sleeps): errno %s, reads %s, time %s\n",
      errno_text(-static_cast<std::int64_t>(driver_errno)).c_str(), static_cast<unsigned long long>(driver_reads),
      static_cast<unsigned long long>(guest_ms), errno_text(-static_cast<std::int64_t>(model_errno)).c_str(),
      static_cast<unsigned long long>(clock.c2c_reads()), static_cast<unsigned long long>(model_ms),
      static_cast<unsigned long long>(guest_poll_sleep_ms), same_errno ? "same" : "DIFFERENT",
      same_reads ? "same" : "DIFFERENT", close_time ? "within 2 s" : "NOT within 2 s");
  return same_errno && same_reads && close_time ? 0 : 1;
}

/// The rule lines ("  PASS  region 4  size_pow2 ...") of nvgrace-probe's text output.
std::vector<std::string> rule_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("  PASS  region ", 0) == 0 || line.rfind("  FAIL  region ", 0) == 0 ||
        line.rfind("  SKIP  region ", 0) == 0)
      out.push_back(line);
    at = end + 1;
  }
  return out;
}

int probe_compare(rig::options o) {
  const std::string log = take(o.rest, "--log");
  if (log.empty() || !o.rest.empty()) {
    std::fputs("usage: nvgrace-rig-host probe-compare --log CONSOLE [profile]\n", stderr);
    return 2;
  }
  std::FILE* f = std::fopen(log.c_str(), "rb");
  if (f == nullptr) {
    std::printf("RIG-PROBE-COMPARE FAIL: cannot read %s\n", log.c_str());
    return 1;
  }
  std::string console;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) console.append(buf, n);
  std::fclose(f);
  // The guest's text run: between "RIG-STEP conformance" (or the start) and its exit status.
  const std::size_t rc_at = console.find("RIG-PROBE-TEXT-RC ");
  if (rc_at == std::string::npos) {
    std::printf("RIG-PROBE-COMPARE FAIL: the guest printed no nvgrace-probe result\n");
    return 1;
  }
  const int driver_rc = std::atoi(console.c_str() + rc_at + 18);
  const std::vector<std::string> driver = rule_lines(console.substr(0, rc_at));

  auto created = [&]() -> result<shim_device> {
    const shim::device_options options = rig::model_options(o.prof);
    if (o.prof.fallback()) return shim_device::create(options);
    auto memory = mem::memfd_memory::create(o.prof.size, mem::caching::cached, "nvgrace-rig-model");
    if (!memory) return memory.error();
    return shim_device::create(options, std::move(*memory));
  }();
  if (!created) {
    std::printf("RIG-PROBE-COMPARE FAIL: the model refuses the profile: %s\n",
                std::string(errno_name(created.error())).c_str());
    return 1;
  }
  const tools::probe::report r = tools::probe::run(*created);
  const int model_rc = tools::probe::exit_status(r);
  const std::vector<std::string> model = rule_lines(tools::probe::to_text(tools::probe::target_info{}, r));
  std::size_t differ = 0;
  for (std::size_t k = 0; k < std::max(driver.size(), model.size()); ++k) {
    const std::string d = k < driver.size() ? driver[k] : "(none)";
    const std::string m = k < model.size() ? model[k] : "(none)";
    if (d == m) continue;
    ++differ;
    std::printf("   rule line %zu differs:\n      driver: %s\n      model:  %s\n", k, d.c_str(), m.c_str());
  }
  std::size_t passed = 0;
  for (const auto& line : driver) passed += line.rfind("  PASS", 0) == 0 ? 1 : 0;
  std::printf("RIG-PROBE-COMPARE %s: driver exit %d, model exit %d; %zu rule lines (%zu PASS), %zu differ\n",
              differ == 0 && driver_rc == model_rc ? "same" : "DIFFERENT", driver_rc, model_rc, driver.size(), passed,
              differ);
  return differ == 0 && driver_rc == model_rc ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs("usage: nvgrace-rig-host seed|windows|diff ... (see the file comment)\n", stderr);
    return 2;
  }
  const std::string_view command = argv[1];
  rig::options o = rig::parse_options(argc, argv, 2);
  if (command == "seed") return seed_file(std::move(o));
  if (command == "windows") return windows(o);
  if (command == "extract") return extract(std::move(o));
  if (command == "diff") return diff(std::move(o));
  if (command == "probe-wait") return probe_wait(std::move(o));
  if (command == "probe-compare") return probe_compare(std::move(o));
  std::fputs("usage: nvgrace-rig-host seed|windows|extract|diff|probe-wait|probe-compare ...\n", stderr);
  return 2;
}
