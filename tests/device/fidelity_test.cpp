// The in-process device against the Linux 7.2 driver's behaviours that a VMM meets in
// production: kernel-rule profiles, runtime PM around ioctls, re-open, readiness at probe
// and after reset (BAR0 and the CXL device DVSEC), zapped mappings and the fault handler,
// DMA-buf lifetime, and the rest of the ioctl surface. Exact errno, counts and times.
#include "shim_fixtures.hpp"

#include <nvgrace/access/accessor.hpp>
#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/shim/test_hooks.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/mmap.hpp>
#include <nvgrace/grace/vf_token.hpp>
#include <nvgrace/pci/config.hpp>

#include <doctest/doctest.h>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <optional>
#include <vector>

using namespace device_test;

namespace {

constexpr std::uint32_t resmem = 2;
constexpr std::uint32_t usemem = 4;

/// Registers that become ready at `ready_at` ms on a clock that only sleeping
/// advances; a fatal signal can end the n-th sleep. Usable before the device
/// exists (probe), so it never reads the device.
struct scripted_clock final : shim::readiness_source {
  std::optional<std::uint64_t> ready_at = 0;
  std::uint64_t time = 0;
  int reads = 0;
  int sleeps = 0;
  std::optional<int> killed_at_sleep;

  std::uint32_t read32(std::uint64_t) noexcept override {
    ++reads;
    return ready_at && time >= *ready_at ? shim::status_ready : 0;
  }
  std::uint64_t now_ms() noexcept override { return time; }
  bool sleep_ms(std::uint64_t ms) noexcept override {
    time += ms;
    ++sleeps;
    return !killed_at_sleep || sleeps < *killed_at_sleep;
  }
};

shim::device_options hopper_with(grace::kernel_rule rule, shim::readiness_source* clock = nullptr) {
  auto o = shim::hopper(hopper_length);
  o.rule = rule;
  o.resmem_quirk = grace::resmem_return::upstream_short;
  o.readiness_clock = clock;
  return o;
}

std::array<std::byte, 8> buffer8() { return std::array<std::byte, 8>{}; }

}  // namespace

// ---- kernel rules as profiles --------------------------------------------------------------

TEST_CASE("Blackwell under the 6.13 rule: the carve-out exists, region 2 is resmem everywhere") {
  auto o = shim::blackwell(186 * GiB + 16 * KiB);
  o.rule = grace::kernel_rule::v6_13;
  auto d = make(o);
  const auto l = d.layout();
  REQUIRE(l.has_value());
  CHECK(l->generation == grace::generation::hopper);
  CHECK(l->resmem.real_length == GiB + 16 * KiB);
  CHECK(l->resmem.reported_size == 2 * GiB);
  CHECK(d.kind(resmem) == shim::region_kind::emulated);
  // The read that had no region to go to before: served from the carve-out.
  auto b = buffer8();
  REQUIRE(d.pread(b, at(resmem, 0)).value() == 8);
  // Region info and config space agree on the 2 GiB BAR.
  nvgrace::vfio::region_info info{32, 0, resmem, 0, 0, 0};
  std::array<std::byte, 32> raw{};
  store_le<std::uint32_t>(raw, 0, 32);
  store_le<std::uint32_t>(raw, 8, resmem);
  REQUIRE(d.get_region_info(raw));
  info = vfio::load_region_info(raw);
  CHECK(info.size == 2 * GiB);
  CHECK(info.flags == 0xF);
  CHECK(config_write<std::uint64_t>(d, 0x18, ~std::uint64_t{0}) == 8);
  CHECK(config_read<std::uint64_t>(d, 0x18) == 0xFFFF'FFFF'8000'000Cu);
  // The last GiB of memory is reachable: its last byte, through region 2.
  CHECK(d.pread(std::span(b).first(1), at(resmem, GiB + 16 * KiB - 1)).value() == 1);
  // mmap under 6.13: region 2 is the carve-out, not the function's BAR2: mapped
  // write-combine (Normal-NC at stage 2) up to its real length, all at mmap time.
  CHECK(d.plan_mmap(at(resmem, 0), GiB + 16 * KiB).value() ==
        grace::mmap_plan{0, GiB + 16 * KiB, true, grace::stage2_memory::normal_nc, true});
  CHECK(d.plan_mmap(at(resmem, 0), GiB + 20 * KiB).error() == nvgrace::errc::invalid_argument);
  CHECK(d.plan_mmap(at(resmem, GiB + 16 * KiB), 4096).error() == nvgrace::errc::invalid_argument);
  // Region 4 is usemem: 185 GiB after the carve-out and the 512 MiB round-down, cacheable.
  CHECK(l->usemem.real_length == 185 * GiB);
  CHECK(d.plan_mmap(at(usemem, 185 * GiB - 4096), 4096).value() ==
        grace::mmap_plan{185 * GiB - 4096, 4096, false, grace::stage2_memory::cacheable, true});
  CHECK(d.plan_mmap(at(usemem, 185 * GiB), 4096).error() == nvgrace::errc::invalid_argument);
  // A real mapping of each, and a touch that does not fault: mapped at mmap time.
  for (const std::uint32_t index : {resmem, usemem}) {
    const auto p = d.mmap(nullptr, 4096, PROT_READ | PROT_WRITE, at(index, 0));
    REQUIRE(p.has_value());
    CHECK(::munmap(*p, 4096) == 0);
  }
  const std::uint64_t base = 0x7f00'0000'0000;
  const grace::vma v2{base, base + 2 * MiB, vfio::region_offset(resmem) >> 12};
  CHECK(d.fault(v2, base + 4096 + 3, 9) ==
        grace::fault_decision{grace::fault_outcome::premapped, base + 4096, ((memory_base + 185 * GiB) >> 12) + 1});
  // Under the current rule region 2 of the same device is the function's BAR2 (E2).
  auto now = make(shim::blackwell(186 * GiB + 16 * KiB));
  CHECK(now.kind(resmem) == shim::region_kind::memory_bar);
  CHECK(now.plan_mmap(at(resmem, 0), 4096).value() ==
        grace::mmap_plan{0, 4096, false, grace::stage2_memory::device, false});
}

TEST_CASE("before 6.19: mmap maps the whole range at once, no touch faults, no huge page, zaps miss it") {
  for (const grace::kernel_rule rule : {grace::kernel_rule::v6_13, grace::kernel_rule::v6_18}) {
    INFO("rule ", grace::to_string(rule));
    scripted_clock clock;
    auto d = make(hopper_with(rule, &clock));
    CHECK(d.plan_mmap(at(usemem, 0), hopper_usemem_real).value() ==
          grace::mmap_plan{0, hopper_usemem_real, false, grace::stage2_memory::cacheable, true});
    CHECK(d.plan_mmap(at(resmem, 0), GiB).value() ==
          grace::mmap_plan{0, GiB, true, grace::stage2_memory::normal_nc, true});
    // The same bound as later kernels: the real length (E9).
    CHECK(d.plan_mmap(at(usemem, 0), hopper_usemem_real + 4096).error() == nvgrace::errc::invalid_argument);
    CHECK(d.plan_mmap(at(usemem, hopper_usemem_real), 4096).error() == nvgrace::errc::invalid_argument);
    const auto p = d.mmap(nullptr, 2 * MiB, PROT_READ | PROT_WRITE, at(usemem, 0));
    REQUIRE(p.has_value());
    CHECK(::munmap(*p, 2 * MiB) == 0);
    const std::uint64_t base = 0x7f00'0000'0000;
    const grace::vma v{base, base + hopper_usemem_real, vfio::region_offset(usemem) >> 12};
    const std::uint64_t first_pfn = memory_base >> 12;
    CHECK(d.fault(v, base + 4096 + 5, 0) ==
          grace::fault_decision{grace::fault_outcome::premapped, base + 4096, first_pfn + 1});
    // A PMD- or PUD-aligned touch is still the page mmap mapped: never a huge insert.
    CHECK(d.fault(v, base + 2 * MiB + 5, 9) ==
          grace::fault_decision{grace::fault_outcome::premapped, base + 2 * MiB, first_pfn + 512});
    CHECK(d.fault(v, base, 18) == grace::fault_decision{grace::fault_outcome::premapped, base, first_pfn});
    // resmem: the PFN after usemem's real length.
    const grace::vma r{base, base + GiB, (vfio::region_offset(resmem) >> 12) + 2};
    CHECK(d.fault(r, base, 0) ==
          grace::fault_decision{grace::fault_outcome::premapped, base, ((memory_base + hopper_usemem_real) >> 12) + 2});
    // A reset and memory decode off do not reach these mappings: nothing zapped,
    // no readiness wait, no SIGBUS.
    const int reads = clock.reads;
    REQUIRE(d.reset());
    CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
    CHECK(d.mapping_generation() == 0);
    CHECK(d.fault(v, base, 0) == grace::fault_decision{grace::fault_outcome::premapped, base, first_pfn});
    CHECK(clock.reads == reads);
    CHECK(clock.time == 0);
    // A real BAR's mapping faults through vfio-pci-core under every rule: SIGBUS with decode off.
    const grace::vma bar0{base, base + 16 * MiB, vfio::region_offset(0) >> 12};
    CHECK(d.fault(bar0, base, 0).outcome == grace::fault_outcome::sigbus);
    CHECK(config_write<std::uint16_t>(d, pci::reg::command, pci::command_bits::memory) == 2);
    CHECK(d.fault(bar0, base, 0).outcome == grace::fault_outcome::insert_pte);
  }
  // The current rule, for contrast: nothing mapped at mmap time, faults insert (huge) pages.
  auto now = make(hopper_with(grace::kernel_rule::current));
  CHECK_FALSE(now.plan_mmap(at(usemem, 0), 4096)->populated);
  const std::uint64_t base = 0x7f00'0000'0000;
  const grace::vma v{base, base + hopper_usemem_real, vfio::region_offset(usemem) >> 12};
  auto b = buffer8();
  REQUIRE(now.pread(b, at(usemem, 0)).value() == 8);  // the open-time readiness check
  CHECK(now.fault(v, base + 2 * MiB, 9).outcome == grace::fault_outcome::insert_pmd);
}

TEST_CASE("kernel rules: the spelling the tools accept, and what each rule has") {
  using grace::kernel_rule;
  grace::kernel_rule r{};
  for (const char* text : {"6.13", "6.18", "7.1", "current"}) {
    REQUIRE(grace::parse_kernel_rule(text, r));
    CHECK(grace::to_string(r) == text);
  }
  CHECK_FALSE(grace::parse_kernel_rule("6.12", r));
  static_assert(!grace::knows_blackwell(kernel_rule::v6_13) && grace::knows_blackwell(kernel_rule::v6_18));
  static_assert(!grace::waits_at_probe(kernel_rule::v6_13) && grace::waits_at_probe(kernel_rule::v6_18));
  static_assert(!grace::probe_timeout_fails(kernel_rule::v6_18) && grace::probe_timeout_fails(kernel_rule::v7_1));
  static_assert(!grace::has_access_readiness(kernel_rule::v6_18) && grace::has_access_readiness(kernel_rule::v7_1));
  static_assert(!grace::has_cxl_readiness(kernel_rule::v7_1) && grace::has_cxl_readiness(kernel_rule::current));
  static_assert(!grace::waits_are_killable(kernel_rule::v7_1) && grace::waits_are_killable(kernel_rule::current));
}

TEST_CASE("6.14-6.18: memory decode and runtime PM are ignored, no readiness on access, no DMA-buf") {
  auto d = make(hopper_with(grace::kernel_rule::v6_18));
  CHECK_FALSE(d.reset_done());  // the flag does not exist before 6.19
  REQUIRE(d.reset());
  CHECK_FALSE(d.reset_done());
  CHECK(d.mapping_generation() == 0);  // mmap-time mappings: nothing to zap
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
  auto b = buffer8();
  CHECK(d.pread(b, at(usemem, 0)).value() == 8);  // 6.19+ would be EIO after a reset with decode off
  shim::test_hooks::inject_pm_failure(d, true);
  CHECK(d.pread(b, at(usemem, 0)).value() == 8);                  // no runtime-PM wrapping of memory accesses
  CHECK(d.get_device_info().error() == nvgrace::errc::io_error);  // but the vfio core's ioctls still resume
  shim::test_hooks::inject_pm_failure(d, false);
  auto arg = dma_buf_request(get_dma_buf, usemem, {{0, 4096}});
  CHECK(feature(d, arg) == -ENOTTY);
}

// ---- runtime PM before every ioctl ---------------------------------------------------------

TEST_CASE("a failed runtime-PM resume: every ioctl is EIO before the driver runs, RESET zeroes nothing") {
  auto d = make_hopper();
  CHECK(config_write<std::uint64_t>(d, 0x20, 0x1234'5678'0000'0000u) == 8);
  shim::test_hooks::inject_pm_failure(d, true);
  CHECK(d.get_device_info().error() == nvgrace::errc::io_error);
  std::array<std::byte, 64> info{};
  store_le<std::uint32_t>(info, 0, 64);
  store_le<std::uint32_t>(info, 8, usemem);
  CHECK(d.get_region_info(info).error() == nvgrace::errc::io_error);
  vfio::irq_info irq{16, 0, 0, 0};
  CHECK(d.get_irq_info(irq).error() == nvgrace::errc::io_error);
  CHECK(d.reset().error() == nvgrace::errc::io_error);
  CHECK(d.emulated_bar_raw(usemem) == 0x1234'5678'0000'0000u);  // not zeroed
  int unused = 0;
  CHECK(shim::ioctl(d, vfio::ioctl::device_reset, &unused) == -EIO);
  CHECK(shim::ioctl(d, vfio::ioctl::device_get_info, info.data()) == -EIO);
  CHECK(shim::ioctl(d, 0x1234, nullptr) == -EIO);  // even before the unknown command is looked at
  auto arg = dma_buf_request(get_dma_buf, usemem, {{0, 4096}});
  CHECK(feature(d, arg) == -EIO);
  shim::test_hooks::inject_pm_failure(d, false);
  CHECK(d.reset());
  CHECK(d.emulated_bar_raw(usemem) == 0);
}

// ---- close and re-open -----------------------------------------------------------------------

TEST_CASE("re-open rebuilds the virtual config: memory decode is back, the first access succeeds") {
  auto d = make_hopper();
  auto b = buffer8();
  REQUIRE(d.pread(b, at(usemem, 0)).value() == 8);  // the open-time readiness wait is done
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
  CHECK_FALSE(d.memory_enabled());
  REQUIRE(d.reset());
  CHECK(d.pread(b, at(usemem, 0)).error() == nvgrace::errc::io_error);
  REQUIRE(d.reopen());
  CHECK(d.memory_enabled());
  CHECK((config_read<std::uint16_t>(d, pci::reg::command) & pci::command_bits::memory) != 0);
  CHECK(d.pread(b, at(usemem, 0)).value() == 8);
}

TEST_CASE("the fallback variant: the first open works, every later open is EBUSY and the device stays closed") {
  auto d = make(shim::plain());
  auto b = buffer8();
  REQUIRE(d.pread(b, at(0, 0)).value() == 8);
  CHECK(d.reopen().error() == nvgrace::errc::device_or_resource_busy);
  CHECK(d.is_closed());
  CHECK(d.pread(b, at(0, 0)).error() == nvgrace::errc::bad_file_descriptor);
  CHECK(d.get_device_info().error() == nvgrace::errc::bad_file_descriptor);
  CHECK(d.reset().error() == nvgrace::errc::bad_file_descriptor);
  CHECK(d.open().error() == nvgrace::errc::device_or_resource_busy);
  // The full variant re-opens as often as it is closed.
  auto h = make_hopper();
  for (int i = 0; i < 3; ++i) REQUIRE(h.reopen());
  CHECK_FALSE(h.is_closed());
}

// ---- readiness at probe ------------------------------------------------------------------------

TEST_CASE("readiness at probe: never ready → ETIME after the 30 s poll (6.19 on), the probe goes on before") {
  scripted_clock clock;
  clock.ready_at = std::nullopt;
  const auto failed = shim::memfd_device::create(hopper_with(grace::kernel_rule::current, &clock));
  CHECK(failed.error() == nvgrace::errc::stream_timeout);
  CHECK(clock.time == 31000);
  CHECK(clock.sleeps == 31);
  // 6.19 to 7.1: the same, the sleep cannot be interrupted.
  scripted_clock older;
  older.ready_at = std::nullopt;
  older.killed_at_sleep = 3;
  CHECK(shim::memfd_device::create(hopper_with(grace::kernel_rule::v7_1, &older)).error() ==
        nvgrace::errc::stream_timeout);
  CHECK(older.time == 31000);
  // 6.14 to 6.18: 30 s spent, then the probe succeeds (the enable's status overwrote ETIME).
  scripted_clock bug;
  bug.ready_at = std::nullopt;
  auto went_on = shim::memfd_device::create(hopper_with(grace::kernel_rule::v6_18, &bug));
  REQUIRE(went_on.has_value());
  CHECK(bug.time == 31000);
  // 6.10 to 6.13: no wait at all.
  scripted_clock none;
  none.ready_at = std::nullopt;
  REQUIRE(shim::memfd_device::create(hopper_with(grace::kernel_rule::v6_13, &none)).has_value());
  CHECK(none.reads == 0);
}

TEST_CASE("readiness at probe: ready after 5 s waits 5 polls; a fatal signal ends the 7.2 wait with EINTR") {
  scripted_clock clock;
  clock.ready_at = 5000;
  REQUIRE(shim::memfd_device::create(hopper_with(grace::kernel_rule::current, &clock)).has_value());
  CHECK(clock.time == 5000);
  CHECK(clock.sleeps == 5);
  scripted_clock killed;
  killed.ready_at = std::nullopt;
  killed.killed_at_sleep = 3;
  CHECK(shim::memfd_device::create(hopper_with(grace::kernel_rule::current, &killed)).error() ==
        nvgrace::errc::interrupted);
  CHECK(killed.sleeps == 3);
  // Readiness comes before the carve-up: a device too small for Hopper and never ready is ETIME.
  scripted_clock small;
  small.ready_at = std::nullopt;
  auto o = hopper_with(grace::kernel_rule::current, &small);
  o.acpi.gpu_mem_size = GiB;
  CHECK(shim::memfd_device::create(o).error() == nvgrace::errc::stream_timeout);
  small.time = 0;
  small.ready_at = 0;
  CHECK(shim::memfd_device::create(o).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("the readiness registers follow the time since the last reset of the function") {
  // Static registers: ready at once. (BAR0 is never handed to another process:
  // its registers must stay read-only to a VM, shim_hardening_test.cpp.)
  auto d = make_hopper();
  CHECK(d.bar0_register(shim::c2c_link_register) == shim::status_ready);
  CHECK_FALSE(d.region_source(0).has_value());
  // Ready 2 s after every reset, on a clock the test moves.
  scripted_clock clock;
  auto o = shim::physical(grace::generation::hopper);
  o.readiness.ready_after_ms = 2000;
  o.readiness_clock = &clock;
  auto p = make(o);
  CHECK(p.bar0_register(shim::c2c_link_register) == 0);
  CHECK(p.bar0_register(shim::hbm_training_register) == 0);
  CHECK_FALSE(p.region_source(0).has_value());  // time-dependent registers are trapped
  std::array<std::byte, 8> regs{};
  REQUIRE(p.pread(regs, at(0, shim::c2c_link_register)).value() == 8);
  CHECK(load_le<std::uint32_t>(regs, 0) == 0);
  clock.time = 2000;
  CHECK(p.bar0_register(shim::c2c_link_register) == shim::status_ready);
  REQUIRE(p.pread(regs, at(0, shim::hbm_training_register - 4)).value() == 8);
  CHECK(load_le<std::uint32_t>(regs, 4) == shim::status_ready);
  // An FLR through config space starts the function over.
  const auto devctl = config_read<std::uint16_t>(p, shim::config_layout::express_devctl);
  CHECK(config_write<std::uint16_t>(p, shim::config_layout::express_devctl,
                                    static_cast<std::uint16_t>(devctl | shim::config_layout::devctl_bcr_flr)) == 2);
  CHECK(p.bar0_register(shim::c2c_link_register) == 0);
  clock.time = 3999;
  CHECK(p.bar0_register(shim::c2c_link_register) == 0);
  clock.time = 4000;
  CHECK(p.bar0_register(shim::c2c_link_register) == shim::status_ready);
  // Never ready.
  o.readiness.ready_after_ms = std::nullopt;
  auto never = make(o);
  clock.time = 1'000'000;
  CHECK(never.bar0_register(shim::c2c_link_register) == 0);
}

// ---- readiness after reset: the CXL device DVSEC (7.2) -------------------------------------------

TEST_CASE("CXL device DVSEC: found by the config walk, its status dword changes with time since reset") {
  scripted_clock clock;
  auto o = hopper_with(grace::kernel_rule::current, &clock);
  o.cxl = shim::cxl_readiness{1, 0, 2000, false};
  auto d = make(o);  // the probe waited for MEM_ACTIVE: 2 s
  CHECK(clock.time == 2000);
  const auto config = d.config_snapshot();
  const auto nvidia = pci::find_dvsec(config, grace::nvidia_vendor_id, grace::gpu_cap_dvsec_id);
  const auto cxl = pci::find_dvsec(config, shim::cxl_vendor_id, shim::cxl_device_dvsec_id);
  REQUIRE(nvidia.has_value());
  REQUIRE(cxl.has_value());
  CHECK(*cxl == 0x110);
  const std::uint64_t status_at = *cxl + shim::cxl_range1_size_low;
  // The open-time reset started the function over: valid at once, active 2 s later.
  CHECK(config_read<std::uint32_t>(d, status_at) == (1u << 13 | 0x1));
  auto b = buffer8();
  REQUIRE(d.pread(b, at(usemem, 0)).value() == 8);  // the first access waits
  CHECK(clock.time == 4000);
  CHECK_FALSE(d.reset_done());
  CHECK(config_read<std::uint32_t>(d, status_at) == (1u << 13 | 0x3));
  REQUIRE(d.reset());
  CHECK(config_read<std::uint32_t>(d, status_at) == (1u << 13 | 0x1));
  // A fatal signal during the wait: EINTR, and the next access waits again.
  clock.killed_at_sleep = clock.sleeps + 1;
  CHECK(d.pread(b, at(usemem, 0)).error() == nvgrace::errc::interrupted);
  CHECK(d.reset_done());
  clock.killed_at_sleep = std::nullopt;
  REQUIRE(d.pread(b, at(usemem, 0)).value() == 8);
}

TEST_CASE("CXL wait: ETIME when MEM_ACTIVE misses the field's timeout, ENODEV when the function is gone") {
  using shim::cxl_readiness;
  // Valid at once, never active, timeout field 1: 4 s after valid was seen, then ETIME.
  scripted_clock clock;
  auto o = hopper_with(grace::kernel_rule::current, &clock);
  o.cxl = cxl_readiness{1, 0, std::nullopt, false};
  CHECK(shim::memfd_device::create(o).error() == nvgrace::errc::stream_timeout);
  CHECK(clock.time == 5000);  // checks at 0..4 s are within the deadline; at 5 s it has passed
  // Never valid: the 1 s allowance for MEM_INFO_VALID.
  scripted_clock never;
  o.readiness_clock = &never;
  o.cxl = cxl_readiness{4, std::nullopt, std::nullopt, false};
  CHECK(shim::memfd_device::create(o).error() == nvgrace::errc::stream_timeout);
  CHECK(never.time == 2000);
  // Fields 5..7 are clamped to 256 s.
  static_assert(shim::cxl_active_timeout_ms(7u << 13) == 256000);
  static_assert(shim::cxl_active_timeout_ms(0) == 1000 && shim::cxl_active_timeout_ms(2u << 13) == 16000);
  // All ones: the function is gone, at once.
  scripted_clock gone;
  o.readiness_clock = &gone;
  o.cxl = cxl_readiness{0, 0, 0, true};
  CHECK(shim::memfd_device::create(o).error() == nvgrace::errc::no_such_device);
  CHECK(gone.sleeps == 0);
  // Before 7.2 the CXL DVSEC is ignored: the BAR0 registers decide.
  scripted_clock legacy;
  o.readiness_clock = &legacy;
  o.rule = grace::kernel_rule::v7_1;
  REQUIRE(shim::memfd_device::create(o).has_value());
  CHECK(legacy.reads == 2);
}

TEST_CASE("CXL: a reset between the lockless wait and the locked look: read/write EAGAIN, a fault retries") {
  // 7.2 read/write: the wait (ETIME/EINTR/ENODEV) runs before memory_lock; under
  // it one look at the status, whose EAGAIN read/write return as it is and the
  // fault handler answers by waiting again.
  scripted_clock clock;
  auto o = hopper_with(grace::kernel_rule::current, &clock);
  o.cxl = shim::cxl_readiness{1, 0, 2000, false};  // valid at once, active 2 s after each reset
  auto d = make(o);
  REQUIRE(clock.time == 2000);  // the probe's wait
  auto b = buffer8();
  const std::uint32_t resets = d.reset_count();
  const std::uint64_t generation = d.mapping_generation();
  shim::test_hooks::inject_reset_race(d);
  CHECK(d.pread(b, at(usemem, 0)).error() == nvgrace::errc::resource_unavailable_try_again);
  CHECK(clock.time == 4000);  // the wait saw MEM_ACTIVE after 2 s; then the reset landed
  CHECK(d.reset_count() == resets + 1);
  CHECK(d.mapping_generation() == generation + 1);
  CHECK(d.reset_done());  // the raced reset's flag stays: the next access waits again
  CHECK(kread(d, b, at(usemem, 0)).value == 8);
  CHECK(clock.time == 6000);
  CHECK_FALSE(d.reset_done());
  // A write the same; the kernel-style call returns −EAGAIN and leaves the position.
  REQUIRE(d.reset());
  shim::test_hooks::inject_reset_race(d);
  const auto w = kwrite(d, b, at(usemem, 0));
  CHECK(w.value == -EAGAIN);
  CHECK(w.pos == at(usemem, 0));
  CHECK(clock.time == 8000);
  CHECK(d.pwrite(b, at(usemem, 0)).value() == 8);
  CHECK(clock.time == 10000);
  // The fault handler does not SIGBUS on EAGAIN: it waits for the raced reset too.
  REQUIRE(d.reset());
  shim::test_hooks::inject_reset_race(d);
  const std::uint64_t base = 0x7f00'0000'0000;
  const grace::vma v{base, base + hopper_usemem_real, vfio::region_offset(usemem) >> 12};
  CHECK(d.fault(v, base, 0) == grace::fault_decision{grace::fault_outcome::insert_pte, base, memory_base >> 12});
  CHECK(clock.time == 14000);  // two 2 s waits
  CHECK_FALSE(d.reset_done());
  // Before 7.2 there is no CXL path and no such race: the BAR0 poll runs under the lock.
  scripted_clock legacy;
  auto old = hopper_with(grace::kernel_rule::v7_1, &legacy);
  old.cxl = shim::cxl_readiness{1, 0, 2000, false};
  auto e = make(old);
  shim::test_hooks::inject_reset_race(e);
  CHECK(e.pread(b, at(usemem, 0)).value() == 8);
  CHECK(legacy.time == 0);
}

// ---- mappings after reset: zap and fault ---------------------------------------------------------

TEST_CASE("faults: pte/pmd/pud by alignment, SIGBUS with decode off or in low power, a wait after reset") {
  scripted_clock clock;
  auto d = make(hopper_with(grace::kernel_rule::current, &clock));
  shim::test_hooks::set_readiness_source(d, &clock);
  auto b = buffer8();
  REQUIRE(d.pread(b, at(usemem, 0)).value() == 8);  // the open-time wait
  const std::uint64_t base = 0x7f00'0000'0000;
  const grace::vma v{base, base + hopper_usemem_real, vfio::region_offset(usemem) >> 12};
  CHECK(d.fault(v, base + 4096, 0).outcome == grace::fault_outcome::insert_pte);
  CHECK(d.fault(v, base + 2 * MiB + 5, 9).outcome == grace::fault_outcome::insert_pmd);
  CHECK(d.fault(v, base, 18).outcome == grace::fault_outcome::fallback);  // 512 MiB of memory: no room for 1 GiB
  const grace::vma odd{base + 4096, base + 4096 + 4 * MiB, vfio::region_offset(usemem) >> 12};
  CHECK(d.fault(odd, base + 4096, 9).outcome == grace::fault_outcome::fallback);  // misaligned: the MM retries
  // A reset zaps the mappings; the next touch waits for readiness, then maps.
  const auto generation = d.mapping_generation();
  clock.ready_at = clock.time + 3000;
  REQUIRE(d.reset());
  CHECK(d.mapping_generation() == generation + 1);
  const std::uint64_t before = clock.time;
  CHECK(d.fault(v, base, 0).outcome == grace::fault_outcome::insert_pte);
  CHECK(clock.time - before == 3000);
  CHECK_FALSE(d.reset_done());
  // Memory decode off: zapped, and the touch is SIGBUS.
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
  CHECK(d.mapping_generation() == generation + 2);
  CHECK(d.fault(v, base, 0).outcome == grace::fault_outcome::sigbus);
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, pci::command_bits::memory) == 2);
  CHECK(d.fault(v, base, 0).outcome == grace::fault_outcome::insert_pte);
  // Low power: zapped, SIGBUS until exit.
  REQUIRE(d.low_power_entry());
  CHECK(d.mapping_generation() == generation + 3);
  CHECK(d.fault(v, base, 0).outcome == grace::fault_outcome::sigbus);
  REQUIRE(d.low_power_exit());
  CHECK(d.fault(v, base, 0).outcome == grace::fault_outcome::insert_pte);
  // A readiness timeout after a reset: SIGBUS.
  clock.ready_at = std::nullopt;
  REQUIRE(d.reset());
  CHECK(d.fault(v, base, 0).outcome == grace::fault_outcome::sigbus);
  CHECK(d.reset_done());  // it stays set: the next touch waits again
}

TEST_CASE("faults on a real BAR's mapping: vfio-pci-core's handler, SIGBUS with decode off or in low power, no wait") {
  // Blackwell: region 2 is the function's own BAR2 (16 MiB right after the 16 MiB BAR0).
  scripted_clock clock;
  auto o = shim::blackwell(blackwell_length);
  o.readiness_clock = &clock;
  auto d = make(o);
  REQUIRE(d.kind(0) == shim::region_kind::memory_bar);
  REQUIRE(d.kind(2) == shim::region_kind::memory_bar);
  const std::uint64_t base = 0x7f00'0000'0000;
  const grace::vma bar0{base, base + 16 * MiB, vfio::region_offset(0) >> 12};
  const grace::vma bar2{base, base + 16 * MiB, (vfio::region_offset(2) >> 12) + 3};  // mapped from page 3 on
  CHECK(d.fault(bar0, base + 0x1498, 0) ==
        grace::fault_decision{grace::fault_outcome::insert_pte, base + 0x1000, 0x6600'0000'1ull});
  CHECK(d.fault(bar2, base + 5 * 4096 + 7, 0) ==
        grace::fault_decision{grace::fault_outcome::insert_pte, base + 5 * 4096, 0x6600'0100'0ull + 3 + 5});
  // A reset zaps them too, but the core's handler does not wait for readiness:
  // the registers never read ready and the touch still maps, reset_done stays set.
  clock.ready_at = std::nullopt;
  const int reads = clock.reads;
  REQUIRE(d.reset());
  CHECK(d.fault(bar2, base, 0).outcome == grace::fault_outcome::insert_pte);
  CHECK(clock.reads == reads);
  CHECK(d.reset_done());
  // Memory decode off: SIGBUS on BAR0 and BAR2 alike, until it is on again.
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
  CHECK(d.fault(bar0, base, 0).outcome == grace::fault_outcome::sigbus);
  CHECK(d.fault(bar2, base, 0).outcome == grace::fault_outcome::sigbus);
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, pci::command_bits::memory) == 2);
  CHECK(d.fault(bar2, base, 0).outcome == grace::fault_outcome::insert_pte);
  // Low power: SIGBUS until exit.
  REQUIRE(d.low_power_entry());
  CHECK(d.fault(bar0, base, 0).outcome == grace::fault_outcome::sigbus);
  REQUIRE(d.low_power_exit());
  CHECK(d.fault(bar0, base, 0).outcome == grace::fault_outcome::insert_pte);
  // Regions without memory have no handler: SIGBUS.
  const grace::vma config{base, base + 4096, vfio::region_offset(7) >> 12};
  CHECK(d.fault(config, base, 0).outcome == grace::fault_outcome::sigbus);
}

// ---- DMA-buf lifetime -------------------------------------------------------------------------

TEST_CASE("DMA-bufs: revoked on decode off, reset, low power and close; restored when memory is back") {
  auto d = make_hopper();
  auto arg = dma_buf_request(get_dma_buf, usemem, {{0, 4096}});
  const long fd = feature(d, arg);
  REQUIRE(fd == shim::first_dma_buf_fd);
  const auto revoked = [&] { return d.dma_bufs().at(0).revoked; };
  CHECK_FALSE(revoked());
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
  CHECK(revoked());
  // Exported while decode is off: revoked from the start.
  auto second = dma_buf_request(get_dma_buf, resmem, {{0, 4096}});
  REQUIRE(feature(d, second) == shim::first_dma_buf_fd + 1);
  CHECK(d.dma_bufs().at(1).revoked);
  // A reset with decode off leaves them revoked; decode on restores both.
  REQUIRE(d.reset());
  CHECK(revoked());
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, pci::command_bits::memory) == 2);
  CHECK_FALSE(revoked());
  CHECK_FALSE(d.dma_bufs().at(1).revoked);
  REQUIRE(d.reset());
  CHECK_FALSE(revoked());
  REQUIRE(d.low_power_entry());
  CHECK(revoked());
  REQUIRE(d.low_power_exit());
  CHECK_FALSE(revoked());
  // The importer closes one; closing the device revokes the rest for good.
  REQUIRE(d.release_dma_buf(static_cast<int>(fd)));
  CHECK(d.release_dma_buf(static_cast<int>(fd)).error() == nvgrace::errc::no_such_file_or_directory);
  REQUIRE(d.dma_bufs().size() == 1);
  REQUIRE(d.reopen());
  const auto after = d.dma_bufs();
  REQUIRE(after.size() == 1);
  CHECK(after[0].revoked);
  CHECK(after[0].detached);
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, pci::command_bits::memory) == 2);
  CHECK(d.dma_bufs().at(0).revoked);
}

TEST_CASE("DMA-buf ranges: no cap but the kernel's copy-in limit (4 MiB of ranges)") {
  auto d = make_hopper();
  std::vector<vfio::region_dma_range> many;
  for (std::uint64_t i = 0; i < 1000; ++i) many.push_back({i * 4096, 4096});
  auto arg = dma_buf_request(get_dma_buf, usemem, many);
  REQUIRE(feature(d, arg) >= shim::first_dma_buf_fd);
  CHECK(d.last_dma_buf()->ranges.size() == 1000);
  CHECK(d.last_dma_buf()->ranges[999] == grace::phys_range{shim::default_memory_base + 999 * 4096, 4096});
  // 262,145 ranges are 4 MiB + 16 bytes: ENOMEM before anything is read.
  auto huge = dma_buf_request(get_dma_buf, usemem, {{0, 4096}}, 0, 262145);
  CHECK(feature(d, huge) == -ENOMEM);
}

// ---- the rest of the ioctl surface -------------------------------------------------------------

TEST_CASE("LOW_POWER features: SET only, entry twice EINVAL, a wake-up eventfd signalled by the next ioctl") {
  auto d = make_hopper();
  const auto low_power = [&](std::uint32_t feature_id, std::uint32_t flags, std::optional<std::int32_t> fd) {
    std::vector<std::byte> arg(fd ? 12 : 8);
    store_le<std::uint32_t>(arg, 0, static_cast<std::uint32_t>(arg.size()));
    store_le<std::uint32_t>(arg, 4, flags | feature_id);
    if (fd) store_le<std::uint32_t>(arg, 8, static_cast<std::uint32_t>(*fd));
    return feature(d, arg);
  };
  using namespace vfio::feature_flags;
  CHECK(low_power(vfio::feature_low_power_entry, probe | set, std::nullopt) == 0);
  CHECK(low_power(vfio::feature_low_power_entry, get, std::nullopt) == -EINVAL);
  CHECK(low_power(vfio::feature_low_power_entry, set, std::nullopt) == 0);
  CHECK(d.low_power());
  CHECK(low_power(vfio::feature_low_power_entry, set, std::nullopt) == -EINVAL);
  CHECK(low_power(vfio::feature_low_power_exit, set, std::nullopt) == 0);
  CHECK_FALSE(d.low_power());
  CHECK(low_power(vfio::feature_low_power_exit, set, std::nullopt) == 0);  // not engaged: nothing to do
  CHECK(low_power(vfio::feature_low_power_entry_with_wakeup, set, -1) == -EINVAL);
  CHECK(low_power(vfio::feature_low_power_entry_with_wakeup, set, std::nullopt) == -EINVAL);  // no payload
  const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  CHECK(low_power(vfio::feature_low_power_entry_with_wakeup, set, efd) == 0);
  CHECK(d.low_power());
  std::uint64_t count = 0;
  CHECK(::read(efd, &count, sizeof count) == -1);  // nothing yet
  REQUIRE(d.get_device_info().has_value());        // any ioctl resumes the device
  CHECK_FALSE(d.low_power());
  REQUIRE(::read(efd, &count, sizeof count) == static_cast<ssize_t>(sizeof count));
  CHECK(count == 1);
  ::close(efd);
  // Not an SR-IOV PF: no VF token to set.
  CHECK(low_power(vfio::feature_pci_vf_token, set, std::nullopt) == -ENOTTY);
}

TEST_CASE("stage-2 memory types: usemem cacheable, resmem Normal-NC, a real BAR Device") {
  auto d = make_hopper();
  CHECK(d.plan_mmap(at(usemem, 0), 4096)->stage2 == grace::stage2_memory::cacheable);
  CHECK(d.plan_mmap(at(resmem, 0), 4096)->stage2 == grace::stage2_memory::normal_nc);
  CHECK(d.plan_mmap(at(0, 0), 4096)->stage2 == grace::stage2_memory::device);
  auto b = make(shim::blackwell(blackwell_length));
  CHECK(b.plan_mmap(at(resmem, 0), 4096)->stage2 == grace::stage2_memory::device);  // the real BAR
  static_assert(grace::to_string(grace::stage2_memory::normal_nc) == "normal-nc");
}

TEST_CASE("the driver binds a listed id only through driver_override, under its sysfs name") {
  static_assert(grace::driver_name == "nvgrace_gpu_vfio_pci");
  static_assert(grace::binds(0x10DE, 0x2342, "nvgrace_gpu_vfio_pci"));
  static_assert(!grace::binds(0x10DE, 0x2342, ""));  // the id alone never binds it
  static_assert(!grace::binds(0x10DE, 0x2342, "vfio-pci"));
  static_assert(!grace::binds(0x10DE, 0x1234, "nvgrace_gpu_vfio_pci"));
  CHECK(grace::binds(0x10DE, 0x31C2, "nvgrace_gpu_vfio_pci"));
}

TEST_CASE("the bare PCI function: no driver rules, any number of opens, the DVSEC can be absent") {
  auto o = shim::physical(grace::generation::blackwell);
  auto p = make(o);
  CHECK(p.mode() == grace::mode::plain);
  CHECK_FALSE(p.reset_done());  // nobody opened it
  for (int i = 0; i < 3; ++i) REQUIRE(p.reopen());
  const auto config = p.config_snapshot();
  CHECK(grace::driver_generation(config) == grace::generation::blackwell);
  CHECK(p.region_memory(2)->length == 64 * KiB);
  o.nvidia_dvsec = false;
  auto no_dvsec = make(o);
  const auto bare = no_dvsec.config_snapshot();
  CHECK_FALSE(pci::find_dvsec(bare, grace::nvidia_vendor_id, grace::gpu_cap_dvsec_id).has_value());
  CHECK(grace::driver_generation(bare) == grace::generation::hopper);
  // A Grace device without the DVSEC is carved as Hopper by the driver.
  auto h = shim::blackwell(3 * GiB);
  h.nvidia_dvsec = false;
  CHECK(make(h).layout()->has_resmem());
}

TEST_CASE("the accessor finds out that its mappings were zapped: the touch faults, waits or fails") {
  scripted_clock clock;
  auto d = make(hopper_with(grace::kernel_rule::current, &clock));
  auto acc = access::open(d);
  REQUIRE(acc.has_value());
  REQUIRE(acc->find_region(usemem)->mapped_count == 1);
  const std::array<std::byte, 8> pattern{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                         std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
  REQUIRE(acc->write(usemem, 64, pattern).value() == 8);  // the open-time readiness wait happens here
  // A reset: the next mapped access faults, waits 2 s for readiness, then goes through the mapping.
  clock.ready_at = clock.time + 2000;
  REQUIRE(d.reset());
  const std::uint64_t before = clock.time;
  auto b = buffer8();
  REQUIRE(acc->read(usemem, 64, b).value() == 8);
  CHECK(b == pattern);
  CHECK(clock.time - before == 2000);
  // Memory decode off: the touch is SIGBUS, reported as EFAULT; nothing is copied.
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
  b.fill(std::byte{0x77});
  CHECK(acc->read(usemem, 64, b).error() == nvgrace::errc::bad_address);
  CHECK(b[0] == std::byte{0x77});
  CHECK(acc->write(usemem, 64, pattern).error() == nvgrace::errc::bad_address);
  // Decode back on: the mapping works again, with no further wait.
  CHECK(config_write<std::uint16_t>(d, pci::reg::command, pci::command_bits::memory) == 2);
  const std::uint64_t again = clock.time;
  REQUIRE(acc->read(usemem, 64, b).value() == 8);
  CHECK(b == pattern);
  CHECK(clock.time == again);
}

// ---- the VF token (the Grace GPU is no SR-IOV function) ---------------------------------------------

TEST_CASE("VF token at BIND_IOMMUFD: EINVAL with a token, bound without; the core's argument checks first") {
  auto d = make(hopper_with(grace::kernel_rule::current));
  std::array<std::byte, 16> uuid{std::byte{0x5e}, std::byte{0x1f}, std::byte{0x0a}};
  vfio::device_bind_iommufd_token bind{sizeof(vfio::device_bind_iommufd_token), vfio::bind_flag_token, 3, 0,
                                       reinterpret_cast<std::uintptr_t>(uuid.data())};
  // An open device file is bound already: EINVAL, token or not.
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == -EINVAL);
  CHECK_FALSE(d.is_closed());
  d.close();                                                                  // from here on: a cdev file not bound yet
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == -EINVAL);  // a token: not a PF or VF
  CHECK(d.is_closed());
  bind.token_uuid_ptr = 0;
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == -EFAULT);  // copied in before it is judged
  bind.flags = 2;
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == -EINVAL);  // unknown flag
  bind.flags = 0;
  bind.iommufd = -1;
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == -EINVAL);  // negative iommufd
  bind.iommufd = 3;
  bind.argsz = 12;
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == -EINVAL);  // argsz < 16
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, nullptr) == -EFAULT);
  // Bytes past the 24 the kernel knows must be zero.
  std::array<std::byte, 32> longer{};
  store_le<std::uint32_t>(longer, 0, 32);
  store_le<std::uint32_t>(longer, 8, 3);
  longer[28] = std::byte{1};
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, longer.data()) == -E2BIG);
  CHECK(d.is_closed());
  // No token (flag clear: the pointer is never read): bound, the device opened.
  bind.argsz = sizeof bind;
  bind.token_uuid_ptr = 1;
  const std::uint32_t resets = d.reset_count();
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == 0);
  CHECK(bind.out_devid == shim::detail::fake_iommufd_devid);
  CHECK_FALSE(d.is_closed());
  CHECK(d.reset_count() == resets + 1);                                       // the open-time reset
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &bind) == -EINVAL);  // bound twice
  // The 16-byte struct of 6.6–6.16 works too; zeroed trailing bytes are fine.
  d.close();
  vfio::device_bind_iommufd plain_bind{sizeof(vfio::device_bind_iommufd), 0, 3, 0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, &plain_bind) == 0);
  CHECK(plain_bind.out_devid == 1);
  d.close();
  longer[28] = std::byte{0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_bind_iommufd, longer.data()) == 0);
  // The fallback variant's second open is EBUSY through the bind as well (E14).
  auto f = make(shim::plain());
  f.close();
  plain_bind.out_devid = 0;
  CHECK(shim::ioctl(f, vfio::ioctl::device_bind_iommufd, &plain_bind) == -EBUSY);
  CHECK(plain_bind.out_devid == 0);
  CHECK(f.is_closed());
}

TEST_CASE("VF token in VFIO_GROUP_GET_DEVICE_FD's name: EINVAL with a token, malformed options EINVAL") {
  using grace::group_device_name_outcome;
  using grace::match_device_name;
  using grace::name_match;
  constexpr nvgrace::text_view bdf = "0009:01:00.0";
  static_assert(grace::is_valid_uuid("bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3"));
  static_assert(grace::is_valid_uuid("BD8D9D2B-5A5F-4F5A-A211-F591514BA1F3"));
  static_assert(!grace::is_valid_uuid("bd8d9d2b-5a5f-4f5a-a211-f591514ba1f"));   // 35 characters
  static_assert(!grace::is_valid_uuid("bd8d9d2b_5a5f-4f5a-a211-f591514ba1f3"));  // no '-' at 8
  static_assert(!grace::is_valid_uuid("gd8d9d2b-5a5f-4f5a-a211-f591514ba1f3"));  // not hex
  static_assert(grace::check_vf_token(true).error() == nvgrace::errc::invalid_argument);
  static_assert(grace::check_vf_token(false).has_value());
  // The name alone, or with trailing spaces: this device.
  CHECK(match_device_name(bdf, "0009:01:00.0").value() == name_match::match);
  CHECK(match_device_name(bdf, "0009:01:00.0   ").value() == name_match::match);
  CHECK(group_device_name_outcome(bdf, "0009:01:00.0").has_value());
  // Another name: no match, and with no other device in the group ENODEV.
  CHECK(match_device_name(bdf, "0009:01:00.01").value() == name_match::no_match);
  CHECK(match_device_name(bdf, "0009:01:00").value() == name_match::no_match);
  CHECK(match_device_name(bdf, "0009:01:00.0\tx").value() == name_match::no_match);
  CHECK(group_device_name_outcome(bdf, "0009:01:00.1").error() == nvgrace::errc::no_such_device);
  // A well-formed token: the function has none, EINVAL.
  CHECK(match_device_name(bdf, "0009:01:00.0 vf_token=bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3").error() ==
        nvgrace::errc::invalid_argument);
  CHECK(group_device_name_outcome(bdf, "0009:01:00.0  vf_token=bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3 ").error() ==
        nvgrace::errc::invalid_argument);
  // Malformed: a short or invalid UUID, an unknown option, a second token, junk after the UUID.
  for (const char* name :
       {"0009:01:00.0 vf_token=bd8d9d2b", "0009:01:00.0 vf_token=bd8d9d2b-5a5f-4f5a-a211-f591514ba1fz",
        "0009:01:00.0 foo", "0009:01:00.0 vf_token", "0009:01:00.0 vf_token=bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3x",
        "0009:01:00.0 vf_token=bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3 "
        "vf_token=bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3"}) {
    INFO(name);
    CHECK(match_device_name(bdf, name).error() == nvgrace::errc::invalid_argument);
  }
}
