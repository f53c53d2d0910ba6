#pragma once
/// \file
/// nvgrace-probe's two outputs: the human report and the --json document
/// (schema "nvgrace-probe/1", documented in docs/probe.md).

#include "../common/cli.hpp"
#include "../common/json.hpp"
#include "probe.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace nvgrace::tools::probe {

inline constexpr cli::tool tool{"nvgrace-probe", "nvgrace-probe/1"};

/// Where a rule is explained: its heading in docs/probe.md (which links the
/// rule's section of docs/semantics.md, the one `spec` names).
[[nodiscard]] inline std::string rule_doc(std::string_view id) { return "docs/probe.md#" + std::string(id); }

/// How the device was reached (printed as given; empty fields are omitted / null).
struct target_info {
  std::string target;  ///< the command-line argument
  std::string mode;    ///< "group" or "cdev"
  std::string node;    ///< group node or cdev path
  std::string bdf;     ///< PCI address, when known
  unsigned long iommu_type = 0;
};

[[nodiscard]] constexpr std::string_view iommu_type_name(unsigned long type) noexcept {
  switch (type) {
    case vfio::iommu_type::type1: return "type1";
    case vfio::iommu_type::type1v2: return "type1v2";
    case vfio::iommu_type::noiommu: return "noiommu";
    default: return "";
  }
}

namespace detail {

[[nodiscard]] inline std::string region_flag_letters(std::uint32_t flags) {
  std::string s;
  s += (flags & vfio::region_flags::read) ? 'R' : '-';
  s += (flags & vfio::region_flags::write) ? 'W' : '-';
  s += (flags & vfio::region_flags::mmap) ? 'M' : '-';
  s += (flags & vfio::region_flags::caps) ? 'C' : '-';
  return s;
}

[[nodiscard]] inline std::string irq_flag_words(std::uint32_t flags) {
  std::string s;
  if (flags & vfio::irq_flags::eventfd) s += " EVENTFD";
  if (flags & vfio::irq_flags::maskable) s += " MASKABLE";
  if (flags & vfio::irq_flags::automasked) s += " AUTOMASKED";
  if (flags & vfio::irq_flags::noresize) s += " NORESIZE";
  return s;
}

[[nodiscard]] inline std::string hex_digits(std::uint64_t v, int width) {
  constexpr std::string_view digits = "0123456789abcdef";
  std::string s(static_cast<std::size_t>(width), '0');
  for (int i = width - 1; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = digits[v & 0xF];
  return s;
}

[[nodiscard]] inline std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

}  // namespace detail

/// The human-readable report.
[[nodiscard]] inline std::string to_text(const target_info& target, const report& r) {
  using detail::hex;
  std::string out;
  out += "nvgrace-probe: " + target.target;
  if (!target.bdf.empty() && target.bdf != target.target) out += " (" + target.bdf + ")";
  out += " via " + target.node + " [" + target.mode;
  if (!iommu_type_name(target.iommu_type).empty()) out += ", IOMMU " + std::string(iommu_type_name(target.iommu_type));
  out += "]\n";
  if (r.info_error != nvgrace::errc{}) {
    out += "VFIO_DEVICE_GET_INFO failed: " + detail::errno_text(r.info_error) + "\n";
    return out;
  }
  out += "device: flags " + hex(r.info.flags);
  if (r.info.flags & vfio::device_flags::pci) out += " PCI";
  if (r.info.flags & vfio::device_flags::reset) out += " RESET";
  out += ", " + std::to_string(r.info.num_regions) + " regions, " + std::to_string(r.info.num_irqs) + " irqs\n";
  if (r.config_error != nvgrace::errc{}) {
    out += "config space: " + detail::errno_text(r.config_error) + "\n";
  } else {
    const auto& id = r.identity;
    out += "pci: " + detail::hex_digits(id.vendor, 4) + ":" + detail::hex_digits(id.device, 4) + " subsystem " +
           detail::hex_digits(id.subsystem_vendor, 4) + ":" + detail::hex_digits(id.subsystem, 4) + " class " +
           detail::hex_digits(id.class_code, 6) + " rev " + detail::hex_digits(id.revision, 2) + " command " +
           hex(id.command) + "\n";
  }

  out += "regions:\n  idx name     size                 offset               flags argsz\n";
  for (const auto& region : r.regions) {
    out += "  " + detail::pad(std::to_string(region.index), 4) + detail::pad(std::string(region_name(region.index)), 9);
    if (!region.present()) {
      out += "GET_REGION_INFO: " + detail::errno_text(region.error) + "\n";
      continue;
    }
    out += detail::pad(hex(region.info.size), 21) + detail::pad(hex(region.info.offset), 21) +
           detail::pad(hex(region.info.flags) + " " + detail::region_flag_letters(region.info.flags), 10) +
           std::to_string(region.needed_argsz) + "\n";
    if (region.caps_error != nvgrace::errc{})
      out += "      capabilities: " + detail::errno_text(region.caps_error) + "\n";
    if (region.sparse) {
      out += "      cap SPARSE_MMAP: " + std::to_string(region.sparse->size()) + " area(s)\n";
      for (std::size_t i = 0; i < region.sparse->size(); ++i)
        out += "        area " + std::to_string(i) + ": offset " + hex((*region.sparse)[i].offset) + " size " +
               hex((*region.sparse)[i].size) + "\n";
    }
    if (region.type)
      out += "      cap TYPE: type " + hex(region.type->type) + " subtype " + hex(region.type->subtype) + "\n";
    if (region.msix_mappable) out += "      cap MSIX_MAPPABLE\n";
    if (region.unknown_caps != 0) out += "      " + std::to_string(region.unknown_caps) + " unknown capability id(s)\n";
  }

  out += "irqs:\n";
  for (const auto& irq : r.irqs) {
    out += "  " + detail::pad(std::to_string(irq.index), 4) + detail::pad(std::string(irq_name(irq.index)), 6);
    if (irq.error != nvgrace::errc{})
      out += "GET_IRQ_INFO: " + detail::errno_text(irq.error) + "\n";
    else
      out += "count " + std::to_string(irq.info.count) + " flags " + hex(irq.info.flags) +
             detail::irq_flag_words(irq.info.flags) + "\n";
  }

  if (r.bar_error != nvgrace::errc{}) {
    out += "bars: sizing failed: " + detail::errno_text(r.bar_error) + "\n";
  }
  if (!r.bars.empty()) {
    out += "bars (config-space sizing, decode off):\n";
    for (const auto& bar : r.bars) {
      out += "  BAR" + std::to_string(bar.index) + "  " + detail::pad(std::string(to_string(bar.kind)), 6);
      if (bar.kind != bar_kind::none)
        out += "size " + detail::pad(hex(bar.size), 14) + (bar.prefetchable ? "prefetchable " : "");
      out += "register " + hex(bar.original) + (bar.restored ? "" : " (NOT restored)") + "\n";
    }
  }

  if (!r.grace.has_value()) {
    if (r.config_error == nvgrace::errc{})
      out += "grace rules: do not apply (" + detail::hex_digits(r.identity.vendor, 4) + ":" +
             detail::hex_digits(r.identity.device, 4) + " is not an NVIDIA Grace GPU)\n";
    else
      out += "grace rules: do not apply (device identity unknown)\n";
    return out;
  }
  out += "grace rules: " + std::string(r.grace->name);
  if (r.generation) out += ", " + std::string(grace::to_string(*r.generation));
  out += ", judged by kernel rule " + std::string(grace::to_string(r.rule)) + "\n";
  for (const auto& rule : r.rules)
    out += "  " + std::string(to_string(rule.outcome)) + "  region " + std::to_string(rule.region) + "  " +
           detail::pad(rule.id, 14) + detail::pad(rule.spec, 6) + rule.detail + "\n";
  out += "summary: " + std::to_string(r.count(verdict::pass)) + " passed, " + std::to_string(r.count(verdict::fail)) +
         " failed, " + std::to_string(r.count(verdict::skip)) + " skipped\n";
  return out;
}

/// The --json document (schema "nvgrace-probe/1"); every 64-bit value also as a "_hex" string.
[[nodiscard]] inline std::string to_json(const target_info& target, const report& r) {
  json::writer w;
  const auto errc_or_null = [&](std::string_view key, nvgrace::errc e) {
    w.key(key);
    if (e == nvgrace::errc{})
      w.null();
    else
      w.string(cli::errno_symbol(e));
  };
  cli::begin_document(w, tool);
  w.member("target", target.target);
  w.member("mode", target.mode);
  w.member("node", target.node);
  w.key("bdf");
  target.bdf.empty() ? w.null() : w.string(target.bdf);
  w.key("iommu_type");
  target.iommu_type == 0 ? w.null() : w.number(std::uint64_t{target.iommu_type});

  w.key("device");
  w.begin_object();
  errc_or_null("error", r.info_error);
  w.member("flags", r.info.flags);
  w.member("reset", (r.info.flags & vfio::device_flags::reset) != 0);
  w.member("pci", (r.info.flags & vfio::device_flags::pci) != 0);
  w.member("num_regions", r.info.num_regions);
  w.member("num_irqs", r.info.num_irqs);
  w.end_object();

  w.key("pci");
  if (r.info_error != nvgrace::errc{} || r.config_error != nvgrace::errc{}) {
    w.null();
  } else {
    w.begin_object();
    w.member("vendor", r.identity.vendor);
    w.member("device", r.identity.device);
    w.member("subsystem_vendor", r.identity.subsystem_vendor);
    w.member("subsystem", r.identity.subsystem);
    w.member("class", r.identity.class_code);
    w.member("revision", std::uint32_t{r.identity.revision});
    w.member("command", r.identity.command);
    w.end_object();
  }

  w.key("regions");
  w.begin_array();
  for (const auto& region : r.regions) {
    w.begin_object();
    w.member("index", region.index);
    w.member("name", region_name(region.index));
    errc_or_null("error", region.error);
    if (region.present()) {
      w.member_u64("size", region.info.size);
      w.member_u64("offset", region.info.offset);
      w.member("flags", region.info.flags);
      w.member("argsz", region.needed_argsz);
      errc_or_null("caps_error", region.caps_error);
      w.key("caps");
      w.begin_array();
      if (region.sparse) {
        w.begin_object();
        w.member("id", std::uint32_t{vfio::cap_id::sparse_mmap});
        w.member("name", cap_name(vfio::cap_id::sparse_mmap));
        w.key("areas");
        w.begin_array();
        for (const auto& area : *region.sparse) {
          w.begin_object();
          w.member_u64("offset", area.offset);
          w.member_u64("size", area.size);
          w.end_object();
        }
        w.end_array();
        w.end_object();
      }
      if (region.type) {
        w.begin_object();
        w.member("id", std::uint32_t{vfio::cap_id::type});
        w.member("name", cap_name(vfio::cap_id::type));
        w.member("type", region.type->type);
        w.member("subtype", region.type->subtype);
        w.end_object();
      }
      if (region.msix_mappable) {
        w.begin_object();
        w.member("id", std::uint32_t{vfio::cap_id::msix_mappable});
        w.member("name", cap_name(vfio::cap_id::msix_mappable));
        w.end_object();
      }
      w.end_array();
      w.member("unknown_caps", region.unknown_caps);
    }
    w.end_object();
  }
  w.end_array();

  w.key("irqs");
  w.begin_array();
  for (const auto& irq : r.irqs) {
    w.begin_object();
    w.member("index", irq.index);
    w.member("name", irq_name(irq.index));
    errc_or_null("error", irq.error);
    if (irq.error == nvgrace::errc{}) {
      w.member("count", irq.info.count);
      w.member("flags", irq.info.flags);
    }
    w.end_object();
  }
  w.end_array();

  w.key("bars");
  w.begin_object();
  errc_or_null("error", r.bar_error);
  w.key("list");
  w.begin_array();
  for (const auto& bar : r.bars) {
    w.begin_object();
    w.member("index", std::uint32_t{bar.index});
    w.member("kind", to_string(bar.kind));
    w.member("prefetchable", bar.prefetchable);
    w.member_u64("size", bar.size);
    w.member("register", bar.original);
    w.member("restored", bar.restored);
    w.end_object();
  }
  w.end_array();
  w.end_object();

  w.key("grace");
  w.begin_object();
  w.member("applies", r.grace.has_value());
  if (!r.grace.has_value()) {
    w.member("reason", r.config_error == nvgrace::errc{} ? "not an NVIDIA Grace GPU" : "device identity unknown");
  } else {
    w.member("model", r.grace->name);
    w.key("generation");
    r.generation ? w.string(grace::to_string(*r.generation)) : w.null();
    w.member("kernel_rule", grace::to_string(r.rule));
  }
  w.key("rules");
  w.begin_array();
  for (const auto& rule : r.rules) {
    w.begin_object();
    w.member("id", rule.id);
    w.member("spec", rule.spec);
    w.member("doc", rule_doc(rule.id));
    w.member("region", rule.region);
    w.member("result", to_string(rule.outcome));
    w.member("detail", rule.detail);
    w.end_object();
  }
  w.end_array();
  w.end_object();

  w.key("summary");
  w.begin_object();
  w.member("passed", std::uint64_t{r.count(verdict::pass)});
  w.member("failed", std::uint64_t{r.count(verdict::fail)});
  w.member("skipped", std::uint64_t{r.count(verdict::skip)});
  w.end_object();
  w.member("exit_status", exit_status(r));
  w.end_object();
  return w.str();
}

}  // namespace nvgrace::tools::probe
