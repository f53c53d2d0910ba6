#pragma once
// The in-process model of a rig profile: shim::device built from the same inputs
// the guest's driver gets (the ACPI _DSD properties, the PCI function the server
// shows), in the driver's return mode (upstream's short resmem return), and a
// readiness clock that only the model's own sleeps advance.

#include "ops.hpp"

#include <nvgrace/backend/shim/shim.hpp>

#include <cstdint>
#include <optional>

namespace nvgrace::rig {

using model_device = shim::memfd_device;

[[nodiscard]] inline grace::generation to_grace(gpu g) noexcept {
  return g == gpu::hopper ? grace::generation::hopper : grace::generation::blackwell;
}

/// The function the vfio-user server shows the guest (nvgrace-vfio-user-server
/// --physical with the profile's options): what the driver probes.
[[nodiscard]] inline shim::device_options physical_options(const profile& p) {
  shim::device_options o = shim::physical(to_grace(p.generation), p.bar2_size, p.bar4_size);
  o.device_id = p.pci_device_id();
  o.nvidia_dvsec = p.dvsec;
  if (p.cxl) o.cxl = shim::cxl_readiness{};
  o.readiness.ready_after_ms =
      p.ready_after_ms < 0 ? std::nullopt : std::optional<std::uint64_t>(static_cast<std::uint64_t>(p.ready_after_ms));
  return o;
}

/// The model of the driver bound to that function: the same function (ids,
/// DVSECs, its own BAR2/BAR4 sizes and placement, readiness), plus the GPU
/// memory of the _DSD, the 7.2 rules, and upstream's short resmem return.
[[nodiscard]] inline shim::device_options model_options(const profile& p) {
  shim::device_options o = physical_options(p);
  o.bare_function = false;
  if (!p.fallback()) o.acpi = {p.base, p.size};
  o.rule = grace::kernel_rule::current;
  o.resmem_quirk = grace::resmem_return::upstream_short;
  return o;
}

/// A readiness source for the model's probe: the profile's BAR0 registers on a
/// clock that only sleeps advance, each by `sleep_ms` (the guest's time per poll,
/// when the rig measured it; else the quantum asked for). Counts the register reads.
class replay_clock final : public shim::readiness_source {
public:
  replay_clock(const profile& p, std::uint64_t sleep_ms) noexcept : p_(p), sleep_(sleep_ms) {}
  std::uint32_t read32(std::uint64_t offset) noexcept override {
    if (offset == shim::c2c_link_register) ++c2c_reads_;
    if (offset == shim::hbm_training_register) ++hbm_reads_;
    if (offset != shim::c2c_link_register && offset != shim::hbm_training_register) return 0;
    const bool ready = p_.ready_after_ms >= 0 && now_ >= static_cast<std::uint64_t>(p_.ready_after_ms);
    return ready ? shim::status_ready : 0;
  }
  std::uint64_t now_ms() noexcept override { return now_; }
  bool sleep_ms(std::uint64_t ms) noexcept override {
    now_ += sleep_ != 0 ? sleep_ : ms;
    return true;
  }
  [[nodiscard]] std::uint64_t c2c_reads() const noexcept { return c2c_reads_; }
  [[nodiscard]] std::uint64_t hbm_reads() const noexcept { return hbm_reads_; }

private:
  profile p_;
  std::uint64_t sleep_ = 0;
  std::uint64_t now_ = 0;
  std::uint64_t c2c_reads_ = 0;
  std::uint64_t hbm_reads_ = 0;
};

/// The model as a target of the executor (ops.hpp).
struct model_target {
  model_device& d;
  std::uint64_t fpos = 0;  // the device file's position (a fresh file starts at 0)

  model_device& file() { return d; }
  result<std::size_t> read_fpos(std::span<std::byte> buf, std::uint64_t& after) {
    const ssize_t n = d.read(buf.data(), buf.size(), &fpos);
    after = fpos;
    if (n < 0) return static_cast<errc>(-n);
    return static_cast<std::size_t>(n);
  }
  status reopen() {
    fpos = 0;
    return d.reopen();
  }
  /// The driver's fault handler for the first touch of a page of `m`.
  bool fault_in(const mapping& m, std::uint64_t at) {
    const auto base = reinterpret_cast<std::uintptr_t>(m.base);
    const grace::vma v{base, base + m.length, m.file_offset / 4096};
    return d.fault(v, base + at / 4096 * 4096, 0).outcome == grace::fault_outcome::insert_pte;
  }
};
static_assert(target<model_target>);

}  // namespace nvgrace::rig
