#pragma once
/// \file
/// nvgrace-probe's engine, written once against the device_file concept so
/// that it runs on a real /dev/vfio device and, in the tests, on the shim:
/// collect the facts (device, regions, capabilities, IRQs, BAR sizes), then
/// for an NVIDIA Grace GPU check the nvgrace rules one by one.

#include "../common/cli.hpp"

#include <nvgrace/access/accessor.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/kernel_rule.hpp>
#include <nvgrace/grace/layout.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/posix/mapping.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nvgrace::tools::probe {

/// One region as GET_REGION_INFO described it.
struct region_fact {
  std::uint32_t index = 0;
  nvgrace::errc error{};                                      ///< the ioctl's errno (EINVAL: absent, e.g. VGA)
  std::uint32_t needed_argsz = 0;                             ///< argsz the reply asked for on the 32-byte query
  vfio::region_info info{};                                   ///< the final reply's fixed part
  nvgrace::errc caps_error{};                                 ///< the capability chain could not be decoded
  std::optional<std::vector<vfio::sparse_mmap_area>> sparse;  ///< SPARSE_MMAP areas
  std::optional<vfio::region_type> type;                      ///< TYPE capability
  bool msix_mappable = false;                                 ///< MSIX_MAPPABLE capability
  std::uint32_t unknown_caps = 0;

  [[nodiscard]] bool present() const noexcept { return error == nvgrace::errc{}; }
};

struct irq_fact {
  std::uint32_t index = 0;
  nvgrace::errc error{};
  vfio::irq_info info{};
};

enum class bar_kind : std::uint8_t { none, io, mem32, mem64 };

[[nodiscard]] constexpr std::string_view to_string(bar_kind k) noexcept {
  switch (k) {
    case bar_kind::io: return "io";
    case bar_kind::mem32: return "mem32";
    case bar_kind::mem64: return "mem64";
    case bar_kind::none: break;
  }
  return "none";
}

/// A BAR as config-space sizing saw it (a 64-bit BAR spans two registers and
/// is reported once, at its low index).
struct bar_fact {
  unsigned index = 0;
  std::uint32_t original = 0;  ///< the low register before sizing
  bar_kind kind = bar_kind::none;
  bool prefetchable = false;
  std::uint64_t size = 0;
  bool restored = false;  ///< the register reads its original value afterwards
};

enum class verdict : std::uint8_t { pass, fail, skip };

[[nodiscard]] constexpr std::string_view to_string(verdict v) noexcept {
  switch (v) {
    case verdict::pass: return "PASS";
    case verdict::fail: return "FAIL";
    case verdict::skip: break;
  }
  return "SKIP";
}

/// One nvgrace rule checked on one region.
struct rule_result {
  std::string id;    ///< stable name, e.g. "size_pow2"
  std::string spec;  ///< the section of docs/semantics.md, e.g. "§2.3"
  std::uint32_t region = 0;
  verdict outcome = verdict::skip;
  std::string detail;  ///< what was seen
};

struct pci_identity {
  std::uint16_t vendor = 0;
  std::uint16_t device = 0;
  std::uint16_t subsystem_vendor = 0;
  std::uint16_t subsystem = 0;
  std::uint32_t class_code = 0;  ///< 24 bits: base, sub, prog-if
  std::uint8_t revision = 0;
  std::uint16_t command = 0;
};

/// Everything nvgrace-probe found out.
struct report {
  nvgrace::errc info_error{};
  vfio::device_info info{};
  nvgrace::errc config_error{};
  pci_identity identity{};
  std::vector<region_fact> regions;
  std::vector<irq_fact> irqs;
  nvgrace::errc bar_error{};  ///< sizing failed (a config access failed or was short)
  std::vector<bar_fact> bars;

  std::optional<grace::device_id> grace;                  ///< the Grace id-table entry, if the device is one
  std::optional<grace::generation> generation;            ///< from the NVIDIA DVSEC in config space
  grace::kernel_rule rule = grace::kernel_rule::current;  ///< the driver the rules were judged by
  std::vector<rule_result> rules;

  [[nodiscard]] std::size_t count(verdict v) const noexcept {
    std::size_t n = 0;
    for (const auto& r : rules) n += r.outcome == v ? 1 : 0;
    return n;
  }
  [[nodiscard]] const region_fact* region(std::uint32_t index) const noexcept {
    for (const auto& r : regions)
      if (r.index == index) return &r;
    return nullptr;
  }
  [[nodiscard]] const bar_fact* bar(unsigned index) const noexcept {
    for (const auto& b : bars)
      if (b.index == index) return &b;
    return nullptr;
  }
};

/// What the probe may do.
struct options {
  bool size_bars = true;    ///< config-space BAR sizing (writes the BAR registers, restores them)
  bool check_rules = true;  ///< the Grace rules (for Grace devices only)
  /// Whose driver the device is judged by (the tool takes it from the
  /// running kernel's release unless told otherwise).
  grace::kernel_rule rule = grace::kernel_rule::current;
};

[[nodiscard]] constexpr std::string_view region_name(std::uint32_t index) noexcept {
  constexpr std::array<std::string_view, vfio::pci_num_regions> names{"BAR0", "BAR1", "BAR2",   "BAR3", "BAR4",
                                                                      "BAR5", "ROM",  "CONFIG", "VGA"};
  return index < names.size() ? names[index] : "DEVICE-SPECIFIC";
}

[[nodiscard]] constexpr std::string_view irq_name(std::uint32_t index) noexcept {
  constexpr std::array<std::string_view, vfio::pci_num_irqs> names{"INTX", "MSI", "MSIX", "ERR", "REQ"};
  return index < names.size() ? names[index] : "DEVICE-SPECIFIC";
}

[[nodiscard]] constexpr std::string_view cap_name(std::uint16_t id) noexcept {
  switch (id) {
    case vfio::cap_id::sparse_mmap: return "SPARSE_MMAP";
    case vfio::cap_id::type: return "TYPE";
    case vfio::cap_id::msix_mappable: return "MSIX_MAPPABLE";
    default: return "UNKNOWN";
  }
}

namespace detail {

/// GET_REGION_INFO with the accessor's argsz retry, then the capability chain
/// decoded. Unlike the accessor, every error stays attached to its region.
template <vfio::device_file F>
[[nodiscard]] region_fact query_region(F& dev, std::uint32_t index) {
  region_fact fact;
  fact.index = index;
  std::array<std::byte, access::max_region_info_size> buffer{};
  const auto used = access::query_region_info(dev, index, buffer);
  if (!used) {
    fact.error = used.error();
    return fact;
  }
  const auto reply = std::span<const std::byte>(buffer).first(*used);
  fact.needed_argsz = *used;
  fact.info = vfio::load_region_info(reply);
  const auto caps = vfio::decode_region_caps(reply);
  if (!caps) {
    fact.caps_error = caps.error();
    return fact;
  }
  if (caps->sparse_mmap) {
    std::vector<vfio::sparse_mmap_area> areas;
    for (std::uint32_t i = 0; i < caps->sparse_mmap->size(); ++i) areas.push_back((*caps->sparse_mmap)[i]);
    fact.sparse = std::move(areas);
  }
  fact.type = caps->type;
  fact.msix_mappable = caps->msix_mappable;
  fact.unknown_caps = caps->unknown;
  return fact;
}

/// Size every BAR with the accessor (decode off, all-ones, read back,
/// restore), recording each low register before and after.
template <vfio::device_file F>
[[nodiscard]] status size_bars(access::accessor<F>& acc, std::vector<bar_fact>& out) {
  std::array<std::uint32_t, 6> before{};
  for (unsigned n = 0; n < 6; ++n) {
    const auto reg = acc.template config_read<std::uint32_t>(pci::reg::base_address(n));
    if (!reg) return reg.error();
    before[n] = *reg;
  }
  const auto bars = acc.size_bars();
  if (!bars) return bars.error();
  for (const auto& bar : *bars) {
    if (bar.upper_half) continue;
    bar_fact fact;
    fact.index = bar.bar;
    fact.original = before[bar.bar];
    fact.kind = !bar.implemented ? bar_kind::none
                : bar.is_io      ? bar_kind::io
                : bar.is_64bit   ? bar_kind::mem64
                                 : bar_kind::mem32;
    fact.prefetchable = bar.prefetchable;
    fact.size = bar.size;
    const auto after = acc.template config_read<std::uint32_t>(pci::reg::base_address(bar.bar));
    fact.restored = after && *after == before[bar.bar];
    out.push_back(fact);
  }
  return {};
}

[[nodiscard]] inline std::string hex(std::uint64_t v) {
  constexpr std::string_view digits = "0123456789abcdef";
  std::string out = "0x";
  int shift = 60;
  while (shift > 0 && ((v >> shift) & 0xF) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) out += digits[(v >> shift) & 0xF];
  return out;
}

/// "ENOENT (No such file or directory)": the name as every tool writes it
/// (cli::errno_symbol, from the library's errno_name), then the message.
[[nodiscard]] inline std::string errno_text(nvgrace::errc e) {
  return cli::errno_symbol(e) + " (" + std::string(errno_message(e)) + ")";
}

/// The rules of one emulated region (index 2 = resmem, 4 = usemem).
template <vfio::device_file F>
void check_emulated_region(access::accessor<F>& acc, const report& facts, const region_fact& region,
                           std::vector<rule_result>& out) {
  const auto add = [&](std::string id, std::string spec, verdict v, std::string detail) {
    out.push_back(rule_result{std::move(id), std::move(spec), region.index, v, std::move(detail)});
  };
  const std::uint64_t memlength = (*region.sparse)[0].size;
  const std::uint64_t size = region.info.size;
  const std::uint64_t base = region.info.offset;
  F& dev = acc.file();

  // size_pow2: the region is the power-of-two BAR the driver derives from the
  // ACPI memory length. The length is not visible, but the regions imply it:
  // usemem + resmem on Hopper (resmem is the rest after usemem's 512 MiB
  // round-down), usemem alone on Blackwell. The model's layout of that length
  // under the probe's kernel rule gives each region's BAR and real length.
  {
    const grace::generation gen = grace::knows_blackwell(facts.rule)
                                      ? facts.generation.value_or(grace::generation::hopper)
                                      : grace::generation::hopper;
    const region_fact* other =
        facts.region(region.index == grace::usemem_index ? grace::resmem_index : grace::usemem_index);
    const bool other_has_area = other != nullptr && other->sparse && other->sparse->size() == 1;
    // The ACPI length: usemem + resmem on Hopper, usemem alone on Blackwell.
    const result<std::uint64_t> length = gen != grace::generation::hopper ? result<std::uint64_t>(memlength)
                                         : other_has_area ? checked_add(memlength, (*other->sparse)[0].size)
                                                          : result<std::uint64_t>(errc::invalid_argument);
    const std::string rule_text = "kernel rule " + std::string(grace::to_string(facts.rule));
    if (!length) {
      add("size_pow2", "§2.3", verdict::fail,
          "size " + hex(size) + ": the memory length cannot be reconstructed (Hopper needs both regions' areas)");
    } else {
      // The base does not change any size; 0 keeps every address in range.
      const auto decided = grace::decide_layout(0, *length, gen, facts.rule);
      const auto expected = decided.ok() ? decided.value.region(region.index) : std::nullopt;
      if (!expected) {
        add("size_pow2", "§2.3", verdict::fail,
            "size " + hex(size) + ": memory length " + hex(*length) + " has no layout (" +
                std::string(grace::describe(decided.failure)) + ", " + rule_text + ")");
      } else if (expected->reported_size != size || expected->real_length != memlength) {
        add("size_pow2", "§2.3", verdict::fail,
            "size " + hex(size) + ", sparse area " + hex(memlength) + "; memory length " + hex(*length) +
                " gives size " + hex(expected->reported_size) + ", area " + hex(expected->real_length) + " (" +
                rule_text + ")");
      } else {
        const bool sized_before_round_down = gen == grace::generation::hopper && region.index == grace::usemem_index &&
                                             grace::sizes_bar_before_round_down(facts.rule);
        add("size_pow2", "§2.3", verdict::pass,
            "size " + hex(size) + " = next power of two of " +
                (sized_before_round_down ? hex(*length - grace::carve_out_size) + " (memory length " + hex(*length) +
                                               " less the 1 GiB carve-out, before the 512 MiB round-down)"
                                         : hex(expected->real_length)) +
                ", " + rule_text);
      }
    }
  }

  // region_info: READ|WRITE|MMAP plus CAPS, and a 64-byte reply (32 info + 32 cap).
  if (region.info.flags == 0xF && region.needed_argsz == 64)
    add("region_info", "§4.3", verdict::pass, "flags 0xf, reply needs argsz 64");
  else
    add("region_info", "§4.3", verdict::fail,
        "flags " + hex(region.info.flags) + ", reply needs argsz " + std::to_string(region.needed_argsz) +
            " (expected 0xf and 64)");

  // bar_flags, bar_sizing: the emulated BAR register reads its flag bits as 0xC;
  // sizing gives the region size.
  if (const bar_fact* bar = facts.bar(region.index); bar == nullptr) {
    const std::string why =
        facts.bar_error != nvgrace::errc{} ? errno_text(facts.bar_error) : std::string("BAR sizing did not run");
    add("bar_flags", "§3", verdict::fail, "cannot read the BAR register: " + why);
    add("bar_sizing", "§3", verdict::fail, "cannot size the BAR: " + why);
  } else {
    add("bar_flags", "§3", (bar->original & 0xF) == 0xC ? verdict::pass : verdict::fail,
        "BAR" + std::to_string(region.index) + " register " + hex(bar->original) + ", low bits " +
            hex(bar->original & 0xF) + " (expected 0xc)");
    add("bar_sizing", "§3", bar->size == size && bar->restored ? verdict::pass : verdict::fail,
        "sizing reads back " + hex(bar->size) + " (" + std::string(to_string(bar->kind)) + "), region " + hex(size) +
            (bar->restored ? ", register restored" : ", register NOT restored"));
  }

  // read_padding, write_padding: accesses that cross memlength into the
  // padding. Each starts 8 bytes inside the memory, so that resmem's short
  // return (the driver returns the memory part only, §10 E7) shows.
  if (memlength >= size) {
    add("read_padding", "§5.1", verdict::skip, "no padding: the memory fills the BAR");
    add("write_padding", "§5.2", verdict::skip, "no padding: the memory fills the BAR");
  } else {
    constexpr std::size_t lead_max = 8;
    constexpr std::size_t padding_max = 16;
    const std::size_t lead = static_cast<std::size_t>(memlength < lead_max ? memlength : lead_max);
    const std::size_t padding =
        static_cast<std::size_t>(size - memlength < padding_max ? size - memlength : padding_max);
    const std::size_t count = lead + padding;
    const std::uint64_t at = memlength - lead;
    const bool resmem = region.index == grace::resmem_index;
    std::array<std::byte, lead_max + padding_max> buffer{};
    const auto span = std::span<std::byte>(buffer).first(count);
    const auto padding_all_ff = [&] {
      for (auto b : span.subspan(lead))
        if (b != std::byte{0xFF}) return false;
      return true;
    };
    // A count is right when it is the whole access, or (resmem only) the memory part.
    const auto count_text = [&](std::size_t n) {
      return n == count            ? std::to_string(n)
             : n == lead && resmem ? std::to_string(n) + " (the memory part: E7)"
                                   : std::to_string(n) + " (expected " + std::to_string(count) + ")";
    };
    const auto counts = [&](std::size_t n) { return n == count || (resmem && n == lead); };
    const std::string where = std::to_string(count) + " bytes at " + hex(at) + " (" + std::to_string(lead) +
                              " of memory, " + std::to_string(padding) + " of padding)";

    const auto read = acc.read(region.index, at, span);
    if (!read) {
      add("read_padding", "§5.1", verdict::fail, "pread of " + where + ": " + errno_text(read.error()));
    } else {
      const bool short_return = *read == lead && resmem;
      const bool ok = counts(*read) && (short_return || padding_all_ff());
      add("read_padding", "§5.1", ok ? verdict::pass : verdict::fail,
          "pread of " + where + " returned " + count_text(*read) +
              (short_return       ? std::string()
               : padding_all_ff() ? "; padding all 0xff"
                                  : "; padding not all 0xff"));
    }

    // The write carries the memory bytes just read, so the memory keeps its
    // contents, and zeros for the padding, which the driver must drop.
    std::array<std::byte, lead_max + padding_max> data{};
    const auto memory = acc.read(region.index, at, std::span<std::byte>(data).first(lead));
    if (!memory || *memory != lead) {
      add("write_padding", "§5.2", verdict::fail,
          "reading the " + std::to_string(lead) + " memory bytes at " + hex(at) +
              " failed: " + (memory ? "returned " + std::to_string(*memory) : errno_text(memory.error())));
    } else {
      const auto wrote = acc.write(region.index, at, std::span<const std::byte>(data).first(count));
      if (!wrote) {
        add("write_padding", "§5.2", verdict::fail, "pwrite of " + where + ": " + errno_text(wrote.error()));
      } else {
        buffer.fill(std::byte{0});
        const auto again = acc.read(region.index, memlength, span.subspan(lead));
        bool dropped = again && *again == padding;
        for (std::size_t i = lead; dropped && i < count; ++i) dropped = buffer[i] == std::byte{0xFF};
        add("write_padding", "§5.2", counts(*wrote) && dropped ? verdict::pass : verdict::fail,
            "pwrite of " + where + " (memory bytes as read, zeros) returned " + count_text(*wrote) +
                (dropped ? "; padding still reads 0xff" : "; padding no longer reads 0xff"));
      }
    }
  }

  // mmap_bound: mmap is bounded by memlength, not by the BAR size. The host's page
  // size matters: Grace hosts often run 64 KiB pages.
  const std::uint64_t page = posix::page_size();
  const std::uint64_t last_inside = align_down(memlength, page);
  if (last_inside < page) {
    add("mmap_bound", "§6.1", verdict::skip, "memory smaller than a page");
  } else {
    const auto inside = dev.mmap(nullptr, page, PROT_READ, base + last_inside - page);
    if (inside) ::munmap(*inside, page);
    const auto past = dev.mmap(nullptr, page, PROT_READ, base + last_inside);
    if (past) ::munmap(*past, page);
    const bool ok = inside && !past && past.error() == nvgrace::errc::invalid_argument;
    add("mmap_bound", "§6.1", ok ? verdict::pass : verdict::fail,
        "mmap of the page at " + hex(last_inside - page) + ": " + (inside ? "ok" : errno_text(inside.error())) +
            "; of the page at " + hex(last_inside) + ": " +
            (past ? std::string("succeeded (expected EINVAL)") : errno_text(past.error())));
  }
}

template <vfio::device_file F>
void check_grace_rules(access::accessor<F>& acc, report& facts) {
  for (const std::uint32_t index : {2u, 4u}) {
    const region_fact* region = facts.region(index);
    const bool emulated_expected = index == 4 || facts.generation != grace::generation::blackwell;
    const auto add = [&](verdict v, std::string detail) {
      facts.rules.push_back(rule_result{"emulated", index == 4 ? "§2.3" : "§2.2", index, v, std::move(detail)});
    };
    if (region == nullptr || !region->present()) {
      add(verdict::fail,
          "GET_REGION_INFO: " + errno_text(region == nullptr ? nvgrace::errc::no_such_device : region->error));
      continue;
    }
    if (region->caps_error != nvgrace::errc{}) {
      add(verdict::fail, "capability chain: " + errno_text(region->caps_error));
      continue;
    }
    const bool emulated = region->sparse && region->sparse->size() == 1 && (*region->sparse)[0].offset == 0;
    if (!emulated_expected) {
      add(emulated ? verdict::fail : verdict::pass,
          emulated ? "Blackwell exposes its real BAR at index 2, but the region carries a sparse-mmap capability"
                   : "Blackwell: index 2 is the real BAR (no sparse-mmap capability)");
      continue;
    }
    if (!emulated) {
      add(verdict::fail,
          "expected one sparse-mmap area at offset 0 describing the real memory; without it the driver runs its "
          "fallback ops (the ACPI GPU memory properties are missing or zero)");
      continue;
    }
    add(verdict::pass, "one sparse-mmap area: memory length " + hex((*region->sparse)[0].size));
    check_emulated_region(acc, facts, *region, facts.rules);
  }
}

}  // namespace detail

/// Collect the facts about `dev` and, for a Grace GPU, check its rules.
template <vfio::device_file F>
[[nodiscard]] report run(F& dev, const options& opts = {}) {
  report facts;
  const auto info = dev.get_device_info();
  if (!info) {
    facts.info_error = info.error();
    return facts;
  }
  facts.info = *info;
  for (std::uint32_t i = 0; i < info->num_regions; ++i) facts.regions.push_back(detail::query_region(dev, i));
  for (std::uint32_t i = 0; i < info->num_irqs; ++i) {
    irq_fact irq;
    irq.index = i;
    irq.info = vfio::irq_info{sizeof(vfio::irq_info), 0, i, 0};
    if (auto s = dev.get_irq_info(irq.info); !s) irq.error = s.error();
    facts.irqs.push_back(irq);
  }

  // Config space, BAR sizing and the rules' accesses go through the accessor,
  // without mappings: every access is a pread/pwrite the device answers.
  auto acc = access::accessor<F>::open(dev, access::map_none);
  if (!acc) {
    facts.config_error = facts.bar_error = acc.error();
    return facts;
  }
  const auto config = acc->find_region(vfio::to_index(vfio::region::config));
  if (!config.has_value() || config->size() < 64) {
    facts.config_error = facts.bar_error = nvgrace::errc::no_such_device;
    return facts;
  }
  std::vector<std::byte> space(
      static_cast<std::size_t>(std::min<std::uint64_t>(config->size(), pci::ext_config_space_size)));
  const auto got = acc->read(vfio::to_index(vfio::region::config), 0, space);
  if (!got || *got != space.size()) {
    facts.config_error = got ? nvgrace::errc::io_error : got.error();
  } else {
    auto& id = facts.identity;
    id.vendor = load_le<std::uint16_t>(space, pci::reg::vendor_id);
    id.device = load_le<std::uint16_t>(space, pci::reg::device_id);
    id.command = load_le<std::uint16_t>(space, pci::reg::command);
    id.revision = load_le<std::uint8_t>(space, pci::reg::revision_id);
    id.class_code = load_le<std::uint32_t>(space, pci::reg::revision_id) >> 8;
    id.subsystem_vendor = load_le<std::uint16_t>(space, pci::reg::subsystem_vendor_id);
    id.subsystem = load_le<std::uint16_t>(space, pci::reg::subsystem_id);
    facts.grace = grace::find_device(id.vendor, id.device);
    if (facts.grace.has_value()) {
      const auto generation = grace::generation_from_config(space);
      if (generation) facts.generation = *generation;
    }
  }
  if (opts.size_bars) {
    if (auto s = detail::size_bars(*acc, facts.bars); !s) facts.bar_error = s.error();
  }
  facts.rule = opts.rule;
  if (opts.check_rules && facts.grace.has_value()) detail::check_grace_rules(*acc, facts);
  return facts;
}

/// 0: no rule failed (or none applied); 1: a rule failed; 3: the device could
/// not be queried at all.
[[nodiscard]] inline int exit_status(const report& r) noexcept {
  if (r.info_error != nvgrace::errc{}) return 3;
  return r.count(verdict::fail) > 0 ? 1 : 0;
}

}  // namespace nvgrace::tools::probe
