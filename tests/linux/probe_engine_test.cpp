// nvgrace-probe's engine on the shim device: every Grace rule passes on a
// faithful model, a device that breaks one rule fails exactly that rule,
// and the outputs say so. (On a real kernel the engine runs in tests/guest.)

#include "probe.hpp"
#include "render.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/core/bytes.hpp>

#include <doctest/doctest.h>

#include <sys/mman.h>

#include <array>
#include <map>
#include <string>
#include <utility>

namespace np = nvgrace::tools::probe;
namespace shim = nvgrace::shim;
namespace vfio = nvgrace::vfio;
using nvgrace::GiB;
using nvgrace::MiB;

namespace {

using shim_device = shim::memfd_device;

shim_device make(const shim::device_options& options) {
  auto d = shim_device::create(options);
  REQUIRE_MESSAGE(d, "shim create: ", nvgrace::errno_name(d.error()));
  return std::move(*d);
}

/// "region:id" → verdict, for exact comparisons.
std::map<std::string, np::verdict> verdicts(const np::report& r) {
  std::map<std::string, np::verdict> out;
  for (const auto& rule : r.rules) out[std::to_string(rule.region) + ":" + rule.id] = rule.outcome;
  return out;
}

/// What a broken device does wrong.
enum class fault { none, zero_padding, map_past_end, bar4_flags, region4_size, short_config };

/// A device_file that forwards to the shim and breaks one rule.
struct faulty_device {
  shim_device& inner;
  fault what;
  std::uint64_t usemem_length;

  nvgrace::result<vfio::device_info> get_device_info() noexcept { return inner.get_device_info(); }
  nvgrace::status get_irq_info(vfio::irq_info& info) noexcept { return inner.get_irq_info(info); }
  nvgrace::status reset() noexcept { return inner.reset(); }

  nvgrace::status get_region_info(std::span<std::byte> buffer) noexcept {
    const auto s = inner.get_region_info(buffer);
    if (s && what == fault::region4_size && nvgrace::load_le<std::uint32_t>(buffer, 8) == 4)
      nvgrace::store_le<std::uint64_t>(buffer, 16, nvgrace::load_le<std::uint64_t>(buffer, 16) * 2);
    return s;
  }

  nvgrace::result<std::size_t> pread(std::span<std::byte> buffer, std::uint64_t pos) noexcept {
    const auto n = inner.pread(buffer, pos);
    if (!n) return n;
    const std::uint32_t index = vfio::region_index_of(pos);
    const std::uint64_t offset = vfio::offset_in_region(pos);
    if (what == fault::zero_padding && index == 4)  // the padding bytes of the read read 0
      for (std::size_t i = 0; i < *n; ++i)
        if (offset + i >= usemem_length) buffer[i] = std::byte{0};
    // (The bound on the buffer follows from *n <= buffer.size(); GCC 12 cannot
    // see that once the device's read is inlined, and warns.)
    if (what == fault::bar4_flags && index == 7 && offset <= 0x20 && offset + *n > 0x20 &&
        0x20 - offset < buffer.size())
      buffer[0x20 - offset] &= std::byte{0xF7};  // prefetchable bit gone: low bits 0x4
    if (what == fault::short_config && index == 7 && *n > 1) return *n - 1;
    return n;
  }
  nvgrace::result<std::size_t> pwrite(std::span<const std::byte> data, std::uint64_t pos) noexcept {
    return inner.pwrite(data, pos);
  }
  nvgrace::result<void*> mmap(void* addr, std::uint64_t length, int prot, std::uint64_t pos) noexcept {
    auto p = inner.mmap(addr, length, prot, pos);
    if (!p && what == fault::map_past_end) {
      void* anon = ::mmap(addr, length, prot, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (anon != MAP_FAILED) return anon;
    }
    return p;
  }
};
static_assert(nvgrace::vfio::device_file<faulty_device>);

// 96 GiB + 300 MiB: both regions have padding (the second worked example of the layout rules).
constexpr std::uint64_t hopper_memlength = 96 * GiB + 300 * MiB;
constexpr std::uint64_t hopper_usemem = 0x17'C000'0000;

}  // namespace

TEST_CASE("probe: a Hopper device passes every rule on both emulated regions") {
  auto dev = make(shim::hopper(hopper_memlength));
  const auto r = np::run(dev);
  CHECK(r.info_error == nvgrace::errc{});
  REQUIRE(r.grace.has_value());
  CHECK(r.grace->name == "GH200 120GB");
  CHECK(r.generation == nvgrace::grace::generation::hopper);
  const std::map<std::string, np::verdict> expected{
      {"2:emulated", np::verdict::pass},      {"2:size_pow2", np::verdict::pass},
      {"2:region_info", np::verdict::pass},   {"2:bar_flags", np::verdict::pass},
      {"2:bar_sizing", np::verdict::pass},    {"2:read_padding", np::verdict::pass},
      {"2:write_padding", np::verdict::pass}, {"2:mmap_bound", np::verdict::pass},
      {"4:emulated", np::verdict::pass},      {"4:size_pow2", np::verdict::pass},
      {"4:region_info", np::verdict::pass},   {"4:bar_flags", np::verdict::pass},
      {"4:bar_sizing", np::verdict::pass},    {"4:read_padding", np::verdict::pass},
      {"4:write_padding", np::verdict::pass}, {"4:mmap_bound", np::verdict::pass}};
  CHECK(verdicts(r) == expected);
  CHECK(r.rules.size() == 16);
  CHECK(np::exit_status(r) == 0);

  // The facts behind them.
  const auto* usemem = r.region(4);
  REQUIRE(usemem != nullptr);
  CHECK(usemem->info.size == 128 * GiB);
  CHECK(usemem->needed_argsz == 64);
  REQUIRE(usemem->sparse);
  REQUIRE(usemem->sparse->size() == 1);
  CHECK((*usemem->sparse)[0].offset == 0);
  CHECK((*usemem->sparse)[0].size == hopper_usemem);
  const auto* bar2 = r.bar(2);
  REQUIRE(bar2 != nullptr);
  CHECK(bar2->kind == np::bar_kind::mem64);
  CHECK(bar2->prefetchable);
  CHECK(bar2->size == 2 * GiB);
  CHECK((bar2->original & 0xF) == 0xC);
  CHECK(bar2->restored);
  CHECK(r.region(8)->error == nvgrace::errc::invalid_argument);  // VGA
  // Sizing restored each emulated BAR by writing back what it read (0xC in
  // the low dword, 0 in the high one); writes store raw bytes.
  CHECK(dev.emulated_bar_raw(2) == 0xC);
  CHECK(dev.emulated_bar_raw(4) == 0xC);
}

TEST_CASE("probe: Blackwell exposes the real BAR at index 2; usemem passes every rule") {
  auto dev = make(shim::blackwell(186 * GiB + 4096));
  const auto r = np::run(dev);
  REQUIRE(r.grace.has_value());
  CHECK(r.generation == nvgrace::grace::generation::blackwell);
  CHECK(r.rules.size() == 9);
  CHECK(verdicts(r).at("2:emulated") == np::verdict::pass);
  CHECK(r.count(np::verdict::pass) == 9);
  CHECK(np::exit_status(r) == 0);
}

TEST_CASE("probe: padding rules are skipped when the memory fills the BAR") {
  auto dev = make(shim::hopper(96 * GiB));  // resmem is exactly 1 GiB: no padding at index 2
  const auto r = np::run(dev);
  const auto v = verdicts(r);
  CHECK(v.at("2:read_padding") == np::verdict::skip);
  CHECK(v.at("2:write_padding") == np::verdict::skip);
  CHECK(v.at("4:read_padding") == np::verdict::pass);
  CHECK(r.count(np::verdict::skip) == 2);
  CHECK(r.count(np::verdict::fail) == 0);
  CHECK(np::exit_status(r) == 0);
}

TEST_CASE("probe §10 E1: the usemem BAR is sized before the round-down, judged by the kernel's rule") {
  // 65 GiB + 100 MiB: 64 GiB of usemem behind a 128 GiB BAR since 6.14 (64 GiB before).
  auto dev = make(shim::hopper(65 * GiB + 100 * MiB));
  const auto current = np::run(dev);
  CHECK(current.rule == nvgrace::grace::kernel_rule::current);
  CHECK(current.region(4)->info.size == 128 * GiB);
  CHECK((*current.region(4)->sparse)[0].size == 64 * GiB);
  CHECK(verdicts(current).at("4:size_pow2") == np::verdict::pass);
  CHECK(verdicts(current).at("2:size_pow2") == np::verdict::pass);
  CHECK(np::exit_status(current) == 0);
  for (const auto& rule : current.rules)
    if (rule.id == "size_pow2" && rule.region == 4)
      CHECK(rule.detail ==
            "size 0x2000000000 = next power of two of 0x1006400000 (memory length 0x1046400000 less the 1 GiB "
            "carve-out, before the 512 MiB round-down), kernel rule current");

  // The same device judged by the 6.13 driver: its usemem BAR would be 64 GiB.
  np::options old;
  old.rule = nvgrace::grace::kernel_rule::v6_13;
  const auto judged_old = np::run(dev, old);
  CHECK(verdicts(judged_old).at("4:size_pow2") == np::verdict::fail);
  CHECK(verdicts(judged_old).at("2:size_pow2") == np::verdict::pass);
  for (const auto& rule : judged_old.rules)
    if (rule.id == "size_pow2" && rule.region == 4)
      CHECK(rule.detail ==
            "size 0x2000000000, sparse area 0x1000000000; memory length 0x1046400000 gives size "
            "0x1000000000, area 0x1000000000 (kernel rule 6.13)");

  // A 6.13 device passes under the 6.13 rule.
  auto options = shim::hopper(65 * GiB + 100 * MiB);
  options.rule = nvgrace::grace::kernel_rule::v6_13;
  auto dev613 = make(options);
  CHECK(dev613.layout()->usemem.reported_size == 64 * GiB);
  CHECK(np::exit_status(np::run(dev613, old)) == 0);
}

TEST_CASE("probe §10 E7: the padding accesses straddle the real end, so resmem's short return shows") {
  auto options = shim::hopper(hopper_memlength);
  options.resmem_quirk = nvgrace::grace::resmem_return::upstream_short;
  auto dev = make(options);
  const std::uint64_t resmem_length = hopper_memlength - hopper_usemem;
  // The 8 memory bytes below the end of resmem, which write_padding writes back as read.
  const auto pattern = std::array{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                  std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
  const std::uint64_t last8 = nvgrace::vfio::region_offset(2) + resmem_length - 8;
  REQUIRE(dev.pwrite(pattern, last8).value() == 8);

  const auto r = np::run(dev);
  const auto v = verdicts(r);
  CHECK(v.at("2:read_padding") == np::verdict::pass);
  CHECK(v.at("2:write_padding") == np::verdict::pass);
  CHECK(np::exit_status(r) == 0);
  for (const auto& rule : r.rules) {
    if (rule.region != 2) continue;
    if (rule.id == "read_padding")
      CHECK(rule.detail ==
            "pread of 24 bytes at 0x52bffff8 (8 of memory, 16 of padding) returned 8 (the memory "
            "part: E7)");
    if (rule.id == "write_padding")
      CHECK(rule.detail ==
            "pwrite of 24 bytes at 0x52bffff8 (8 of memory, 16 of padding) (memory bytes as read, "
            "zeros) returned 8 (the memory part: E7); padding still reads 0xff");
  }
  std::array<std::byte, 8> after{};
  REQUIRE(dev.pread(after, last8).value() == 8);
  CHECK(after == pattern);

  // With the documented full count the same accesses return 24, and usemem always does.
  auto full = make(shim::hopper(hopper_memlength));
  const auto rf = np::run(full);
  for (const auto& rule : rf.rules) {
    if (rule.id == "read_padding")
      CHECK(rule.detail == "pread of 24 bytes at " + std::string(rule.region == 2 ? "0x52bffff8" : "0x17bffffff8") +
                               " (8 of memory, 16 of padding) returned 24; padding all 0xff");
  }
  CHECK(np::exit_status(rf) == 0);
}

TEST_CASE("probe: a Grace id without emulated regions (fallback ops) fails the layout rule") {
  auto dev = make(shim::plain());
  const auto r = np::run(dev);
  REQUIRE(r.grace.has_value());
  const std::map<std::string, np::verdict> expected{{"2:emulated", np::verdict::fail},
                                                    {"4:emulated", np::verdict::fail}};
  CHECK(verdicts(r) == expected);
  CHECK(np::exit_status(r) == 1);
}

TEST_CASE("probe: a device that breaks one rule fails exactly that rule") {
  auto dev = make(shim::hopper(hopper_memlength));
  const auto failed = [&](fault what) {
    faulty_device broken{dev, what, hopper_usemem};
    const auto r = np::run(broken);
    std::map<std::string, np::verdict> out;
    for (const auto& [key, v] : verdicts(r))
      if (v != np::verdict::pass) out[key] = v;
    return std::pair{out, np::exit_status(r)};
  };
  using V = np::verdict;
  CHECK(failed(fault::none) == std::pair{std::map<std::string, V>{}, 0});
  CHECK(failed(fault::zero_padding) ==
        std::pair{std::map<std::string, V>{{"4:read_padding", V::fail}, {"4:write_padding", V::fail}}, 1});
  CHECK(failed(fault::map_past_end) ==
        std::pair{std::map<std::string, V>{{"2:mmap_bound", V::fail}, {"4:mmap_bound", V::fail}}, 1});
  CHECK(failed(fault::bar4_flags) == std::pair{std::map<std::string, V>{{"4:bar_flags", V::fail}}, 1});
  // A region twice the next power of two: the size rule and the BAR sizing disagree with it.
  CHECK(failed(fault::region4_size) ==
        std::pair{std::map<std::string, V>{{"4:size_pow2", V::fail}, {"4:bar_sizing", V::fail}}, 1});
}

TEST_CASE("§2.3 E1 probe: a Hopper usemem BAR sized before the 512 MiB round-down passes from 6.14 on") {
  // 0x72C00123 bytes (what the real-driver rig's low profile gives the 7.2 driver):
  // usemem 0x32C00123 before the round-down → a 1 GiB BAR around 512 MiB of memory.
  auto dev = make(shim::hopper(0x72C0'0123));
  const auto r = np::run(dev);
  const auto* usemem = r.region(4);
  REQUIRE(usemem != nullptr);
  CHECK(usemem->info.size == 1 * GiB);
  CHECK((*usemem->sparse)[0].size == 512 * MiB);
  CHECK(verdicts(r).at("4:size_pow2") == np::verdict::pass);
  CHECK(verdicts(r).at("2:size_pow2") == np::verdict::pass);  // resmem: the exact next power of two
  CHECK(np::exit_status(r) == 0);
  const auto rule = [&](const np::report& rep) {
    for (const auto& x : rep.rules)
      if (x.id == "size_pow2" && x.region == 4) return x.detail;
    return std::string();
  };
  CHECK(rule(r) ==
        "size 0x40000000 = next power of two of 0x32c00123 (memory length 0x72c00123 less the 1 GiB "
        "carve-out, before the 512 MiB round-down), kernel rule current");
  // Held to the 6.13 rule (sized after the round-down), the same device fails exactly that rule.
  np::options old;
  old.rule = nvgrace::grace::kernel_rule::v6_13;
  const auto r13 = np::run(dev, old);
  CHECK(verdicts(r13).at("4:size_pow2") == np::verdict::fail);
  CHECK(rule(r13) ==
        "size 0x40000000, sparse area 0x20000000; memory length 0x72c00123 gives size 0x20000000, "
        "area 0x20000000 (kernel rule 6.13)");
  CHECK(np::exit_status(r13) == 1);
}

TEST_CASE("probe: short config reads stop the config facts, not the region facts") {
  auto dev = make(shim::hopper(hopper_memlength));
  faulty_device broken{dev, fault::short_config, hopper_usemem};
  const auto r = np::run(broken);
  CHECK(r.config_error == nvgrace::errc::io_error);
  CHECK(r.bar_error == nvgrace::errc::io_error);
  CHECK(r.bars.empty());
  CHECK(!r.grace.has_value());  // identity unknown: the rules cannot be chosen
  CHECK(r.regions.size() == 9);
  CHECK(r.region(4)->sparse.has_value());
  const auto text = np::to_text(np::target_info{"x", "shim", "x", "", 0}, r);
  CHECK(text.find("config space: EIO") != std::string::npos);
  CHECK(text.find("grace rules: do not apply (device identity unknown)") != std::string::npos);
}

TEST_CASE("probe: text and JSON outputs carry the verdicts and the facts") {
  auto dev = make(shim::hopper(hopper_memlength));
  faulty_device broken{dev, fault::bar4_flags, hopper_usemem};
  const auto r = np::run(broken);
  const np::target_info target{"0000:01:00.0", "group", "/dev/vfio/7", "0000:01:00.0", 3};
  const auto text = np::to_text(target, r);
  CHECK(text.rfind("nvgrace-probe: 0000:01:00.0 via /dev/vfio/7 [group, IOMMU type1v2]\n", 0) == 0);
  CHECK(text.find("  4   BAR4     0x2000000000         0x40000000000        0xf RWMC  64\n") != std::string::npos);
  CHECK(text.find("        area 0: offset 0x0 size 0x17c0000000\n") != std::string::npos);
  CHECK(text.find("grace rules: GH200 120GB, hopper, judged by kernel rule current\n") != std::string::npos);
  CHECK(text.find("  FAIL  region 4  bar_flags     §3   BAR4 register 0x4, low bits 0x4 (expected 0xc)\n") !=
        std::string::npos);
  CHECK(text.find("summary: 15 passed, 1 failed, 0 skipped\n") != std::string::npos);

  const auto json = np::to_json(target, r);
  CHECK(json.rfind(
            R"({"schema":"nvgrace-probe/1","tool":"nvgrace-probe","version":")" + std::string(nvgrace::version.string) +
                R"(","target":"0000:01:00.0","mode":"group","node":"/dev/vfio/7",)"
                R"("bdf":"0000:01:00.0","iommu_type":3,"device":{"error":null,"flags":3,"reset":true,"pci":true,)"
                R"("num_regions":9,"num_irqs":5},)",
            0) == 0);
  // Every 64-bit value also as hex: JSON readers that keep 53 bits (jq, JavaScript) stay exact.
  CHECK(json.find(R"({"index":4,"name":"BAR4","error":null,"size":137438953472,"size_hex":"0x2000000000",)"
                  R"("offset":4398046511104,"offset_hex":"0x40000000000","flags":15,)"
                  R"("argsz":64,"caps_error":null,"caps":[{"id":1,"name":"SPARSE_MMAP","areas":[{"offset":0,)"
                  R"("offset_hex":"0x0","size":102005473280,"size_hex":"0x17c0000000"}]}],"unknown_caps":0})") !=
        std::string::npos);
  CHECK(json.find(R"({"id":"bar_flags","spec":"§3","doc":"docs/probe.md#bar_flags","region":4,"result":"FAIL",)") !=
        std::string::npos);
  CHECK(
      json.find(
          R"("grace":{"applies":true,"model":"GH200 120GB","generation":"hopper","kernel_rule":"current","rules":[)") !=
      std::string::npos);
  const std::string_view tail = R"(,"summary":{"passed":15,"failed":1,"skipped":0},"exit_status":1})";
  CHECK(std::string_view(json).ends_with(tail));
}
