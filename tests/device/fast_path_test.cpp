// The in-process device's fast tiers (an aligned word, an unclipped window of an
// idle device, both inline) against the full path (grace::plan_access): every
// access around the ends of the real memory and of the BAR, with exact bytes,
// counts, positions and errno, on an idle device and on one that must take the
// full path; then every state that sends an access to the full path.
#include "shim_fixtures.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/grace/access_plan.hpp>
#include <nvgrace/pci/config.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using namespace device_test;

namespace {

constexpr std::uint32_t resmem = 2;
constexpr std::uint32_t usemem = 4;
constexpr std::byte canary{0x5A};

/// What the driver answers for one access, worked out from grace::plan_access
/// and the bytes in memory before it.
struct expected {
  ssize_t value = 0;
  std::uint64_t advance = 0;
  std::vector<std::byte> buffer;  ///< a read's buffer afterwards
  std::vector<std::byte> memory;  ///< memory [around, around + size) afterwards
};

/// One emulated region of a device, as the plan sees it.
struct region_model {
  std::uint32_t index = 0;
  grace::memregion model{};
  bool is_resmem = false;
  grace::resmem_return quirk = grace::resmem_return::documented;
  std::byte* memory = nullptr;
};

region_model model_of(shim_device& d, std::uint32_t index) {
  const auto layout = d.layout();
  REQUIRE(layout.has_value());
  region_model m;
  m.index = index;
  m.is_resmem = layout->has_resmem() && index == resmem;
  m.model = m.is_resmem ? layout->resmem : layout->usemem;
  m.quirk = d.options().resmem_quirk;
  m.memory = d.region_memory(index)->base;
  return m;
}

/// The bytes of memory the test looks at around an access: 16 on either side.
struct neighbourhood {
  std::uint64_t from = 0;
  std::uint64_t to = 0;
};
neighbourhood around(const region_model& r, std::uint64_t offset, std::size_t count) {
  const std::uint64_t real = r.model.real_length;
  const std::uint64_t from = std::min(offset, real) >= 16 ? std::min(offset, real) - 16 : 0;
  const std::uint64_t end = offset < real && count < real - offset ? offset + count : real;
  return {from, std::min(real, end + 16)};
}

expected model_access(grace::direction dir, const region_model& r, std::uint64_t offset,
                      std::span<const std::byte> data) {
  const neighbourhood n = around(r, offset, data.size());
  expected e;
  e.memory.assign(r.memory + n.from, r.memory + n.to);
  e.buffer.assign(data.begin(), data.end());
  const auto plan = grace::plan_access(dir, r.model, offset, data.size(), r.is_resmem, r.quirk);
  if (!plan) {
    e.value = -static_cast<ssize_t>(plan.error());
    return e;
  }
  for (std::uint64_t i = 0; i < plan->memory_bytes; ++i) {
    if (dir == grace::direction::read)
      e.buffer[i] = r.memory[offset + i];
    else
      e.memory[offset + i - n.from] = data[i];
  }
  if (dir == grace::direction::read)
    for (std::uint64_t i = plan->memory_bytes; i < plan->memory_bytes + plan->padding_bytes; ++i)
      e.buffer[i] = std::byte{0xFF};
  e.value = static_cast<ssize_t>(plan->returned);
  e.advance = plan->advance;
  return e;
}

/// Data to write: distinct from what memory holds, different for every access.
std::vector<std::byte> data_for(std::size_t count, unsigned salt) {
  std::vector<std::byte> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<std::byte>(0x80 | ((i * 13 + salt) & 0x7F));
  return out;
}

/// The four entry points, each checked against the model; `before` runs before
/// every call (to put the device in the state under test). Returns the failures.
template <class Before>
int check_access(shim_device& d, const region_model& r, std::uint64_t offset, std::size_t count, unsigned salt,
                 Before before) {
  int failures = 0;
  const std::uint64_t pos = at(r.index, offset);
  const neighbourhood n = around(r, offset, count);
  auto report = [&](const char* call, bool ok) {
    if (ok) return;
    ++failures;
    MESSAGE(call << " region " << r.index << " offset " << offset << " count " << count);
  };

  for (int call = 0; call < 2; ++call) {  // pread, then read() with a position
    std::vector<std::byte> buf(count, canary);
    const expected e = model_access(grace::direction::read, r, offset, buf);
    before();
    ssize_t value = 0;
    std::uint64_t after = pos;
    if (call == 0) {
      const auto got = d.pread(buf, pos);
      value = got ? static_cast<ssize_t>(*got) : -static_cast<ssize_t>(got.error());
    } else {
      value = d.read(buf.data(), buf.size(), &after);
    }
    report(call == 0 ? "pread" : "read",
           value == e.value && buf == e.buffer && (call == 0 || after == (value < 0 ? pos : pos + e.advance)));
  }
  for (int call = 0; call < 2; ++call) {  // pwrite, then write() with a position
    const std::vector<std::byte> data = data_for(count, salt + static_cast<unsigned>(call));
    const expected e = model_access(grace::direction::write, r, offset, data);
    before();
    ssize_t value = 0;
    std::uint64_t after = pos;
    if (call == 0) {
      const auto got = d.pwrite(data, pos);
      value = got ? static_cast<ssize_t>(*got) : -static_cast<ssize_t>(got.error());
    } else {
      value = d.write(data.data(), data.size(), &after);
    }
    const bool memory_ok = std::equal(e.memory.begin(), e.memory.end(), r.memory + n.from);
    report(call == 0 ? "pwrite" : "write",
           value == e.value && memory_ok && (call == 0 || after == (value < 0 ? pos : pos + e.advance)));
  }
  return failures;
}

/// Offsets around 0, the end of the real memory and the end of the BAR.
std::vector<std::uint64_t> offsets_of(const grace::memregion& m) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 0; i <= 17; ++i) out.push_back(i);
  for (std::uint64_t i = 0; i <= 17; ++i) out.push_back(m.real_length - i);
  for (std::uint64_t i = 1; i <= 9; ++i) out.push_back(m.real_length + i);
  for (std::uint64_t i = 1; i <= 17; ++i) out.push_back(m.reported_size - i);
  out.push_back(m.reported_size);
  out.push_back(m.reported_size + 1);
  out.push_back(vfio::offset_mask);
  return out;
}

constexpr std::array<std::size_t, 14> counts = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 4096};

/// Every (offset, count) of a region through the four calls; `before` as in check_access.
template <class Before>
int sweep(shim_device& d, std::uint32_t index, Before before) {
  const region_model r = model_of(d, index);
  int failures = 0;
  unsigned salt = 0;
  for (const std::uint64_t offset : offsets_of(r.model))
    for (const std::size_t count : counts) failures += check_access(d, r, offset, count, salt += 3, before);
  return failures;
}

struct shape {
  std::string name;
  shim::device_options options;
  std::vector<std::uint32_t> regions;
};

std::vector<shape> shapes() {
  std::vector<shape> out;
  auto documented = shim::hopper(hopper_length);
  documented.resmem_quirk = grace::resmem_return::documented;
  out.push_back({"Hopper, documented resmem return", documented, {usemem, resmem}});
  auto upstream = shim::hopper(hopper_length);
  upstream.resmem_quirk = grace::resmem_return::upstream_short;
  out.push_back({"Hopper, upstream short resmem return", upstream, {usemem, resmem}});
  // resmem's real memory ends 5 bytes past a multiple of 8: the last aligned
  // words before its end take the window tier, not the word tier.
  auto ragged = shim::hopper(hopper_length + 5);
  ragged.resmem_quirk = grace::resmem_return::documented;
  out.push_back({"Hopper, resmem ending off an 8-byte boundary", ragged, {usemem, resmem}});
  out.push_back({"Blackwell, usemem ending off an 8-byte boundary", shim::blackwell(blackwell_length + 3), {usemem}});
  return out;
}

}  // namespace

TEST_CASE("fast tiers: every access around the memory and BAR ends gives the plan's bytes, count and position") {
  for (const shape& s : shapes()) {
    CAPTURE(s.name);
    auto d = make(s.options);
    std::array<std::byte, 8> probe{};
    REQUIRE(d.pread(probe, at(usemem, 0)).has_value());  // clears the open-time reset_done
    REQUIRE_FALSE(d.reset_done());
    for (const std::uint32_t index : s.regions) {
      CAPTURE(index);
      CHECK(sweep(d, index, [] {}) == 0);
    }
  }
}

TEST_CASE("fast tiers: the same accesses through the full path (readiness pending each time) agree") {
  for (const shape& s : shapes()) {
    CAPTURE(s.name);
    auto d = make(s.options);
    for (const std::uint32_t index : s.regions) {
      CAPTURE(index);
      // A reset before every call sets reset_done: each access polls readiness
      // (the registers say ready) and so runs the full plan.
      int resets = 0;
      CHECK(sweep(d, index, [&] {
              REQUIRE(d.reset().has_value());
              REQUIRE(d.reset_done());
              ++resets;
            }) == 0);
      CHECK(resets > 0);
    }
  }
}

TEST_CASE("fast tiers: exact bytes at the word/window/full-path boundaries") {
  auto options = shim::hopper(hopper_length + 5);  // resmem real length ≡ 5 (mod 8)
  options.resmem_quirk = grace::resmem_return::documented;
  auto d = make(options);
  const std::uint64_t real = hopper_resmem_real + 5;
  std::byte* const memory = d.region_memory(resmem)->base;
  for (std::uint64_t i = 0; i < 16; ++i) memory[real - 16 + i] = static_cast<std::byte>(0xB0 + i);
  std::array<std::byte, 8> b{};
  REQUIRE(d.pread(b, at(usemem, 0)).has_value());

  // The last whole aligned word: the word tier.
  REQUIRE(d.pread(b, at(resmem, real - 13)).value() == 8);  // real − 13 ≡ 0 (mod 8)
  CHECK(b == std::array<std::byte, 8>{std::byte{0xB3}, std::byte{0xB4}, std::byte{0xB5}, std::byte{0xB6},
                                      std::byte{0xB7}, std::byte{0xB8}, std::byte{0xB9}, std::byte{0xBA}});
  // An aligned word that ends 1 byte before the real end, past the word limit: the window tier.
  std::array<std::byte, 4> four{};
  REQUIRE(d.pread(four, at(resmem, real - 5)).value() == 4);
  CHECK(four == std::array<std::byte, 4>{std::byte{0xBB}, std::byte{0xBC}, std::byte{0xBD}, std::byte{0xBE}});
  // An aligned word over the real end: memory, then 0xFF.
  b.fill(canary);
  REQUIRE(d.pread(b, at(resmem, real - 5)).value() == 8);
  CHECK(b == std::array<std::byte, 8>{std::byte{0xBB}, std::byte{0xBC}, std::byte{0xBD}, std::byte{0xBE},
                                      std::byte{0xBF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}});
  // A write over the real end keeps only the memory part.
  const std::array<std::byte, 8> w{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                   std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
  REQUIRE(d.pwrite(w, at(resmem, real - 5)).value() == 8);
  CHECK(memory[real - 5] == std::byte{1});
  CHECK(memory[real - 1] == std::byte{5});
  // The last word of the BAR: padding, count 8; one past: EINVAL; the final byte: clipped to 1.
  b.fill(canary);
  REQUIRE(d.pread(b, at(resmem, hopper_resmem_bar - 8)).value() == 8);
  CHECK(std::all_of(b.begin(), b.end(), [](std::byte x) { return x == std::byte{0xFF}; }));
  CHECK(d.pread(b, at(resmem, hopper_resmem_bar)).error() == nvgrace::errc::invalid_argument);
  std::uint64_t pos = at(resmem, hopper_resmem_bar - 1);
  b.fill(canary);
  CHECK(d.read(b.data(), b.size(), &pos) == 1);
  CHECK(pos == at(resmem, hopper_resmem_bar));
  CHECK(b[0] == std::byte{0xFF});
  CHECK(b[1] == canary);
  // Zero bytes: the full path, count 0, position unchanged.
  pos = at(usemem, 8);
  CHECK(d.read(b.data(), 0, &pos) == 0);
  CHECK(pos == at(usemem, 8));
  // Positions past region 8 and past 2^63.
  CHECK(d.pread(b, at(9, 0)).error() == nvgrace::errc::invalid_argument);
  CHECK(d.pread(b, std::uint64_t{1} << 63).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("fast tiers step aside: PM failure, closed file, readiness with decode off, upstream short return") {
  const std::array<std::byte, 8> w{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                   std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
  std::vector<std::byte> big(4096, canary);
  std::array<std::byte, 8> b{};

  SUBCASE("a runtime-PM failure is EIO for a word and a window, and nothing moves") {
    auto d = make_hopper(grace::resmem_return::documented);
    REQUIRE(d.pwrite(w, at(usemem, 64)).value() == 8);
    shim::test_hooks::inject_pm_failure(d, true);
    b.fill(canary);
    CHECK(d.pread(b, at(usemem, 64)).error() == nvgrace::errc::io_error);
    CHECK(b[0] == canary);
    CHECK(d.pread(big, at(usemem, 0)).error() == nvgrace::errc::io_error);
    CHECK(big[0] == canary);
    CHECK(d.pwrite(b, at(usemem, 64)).error() == nvgrace::errc::io_error);
    CHECK(d.region_memory(usemem)->base[64] == std::byte{1});
    CHECK(d.pread(b, at(resmem, 0)).error() == nvgrace::errc::io_error);
    shim::test_hooks::inject_pm_failure(d, false);
    CHECK(d.pread(b, at(usemem, 64)).value() == 8);
    CHECK(b == w);
  }
  SUBCASE("before 7.1 memory accesses ignore a PM failure, on the full path too") {
    auto o = shim::hopper(hopper_length);
    o.rule = grace::kernel_rule::v6_18;
    auto d = make(o);
    REQUIRE(d.pwrite(w, at(usemem, 64)).value() == 8);
    shim::test_hooks::inject_pm_failure(d, true);
    CHECK(d.pread(b, at(usemem, 64)).value() == 8);
    CHECK(b == w);
    CHECK(d.pread(big, at(usemem, 0)).value() == 4096);
  }
  SUBCASE("a closed file is EBADF for a word and a window") {
    auto d = make_hopper();
    REQUIRE(d.pread(b, at(usemem, 0)).has_value());
    d.close();
    CHECK(d.pread(b, at(usemem, 0)).error() == nvgrace::errc::bad_file_descriptor);
    CHECK(d.pwrite(w, at(usemem, 0)).error() == nvgrace::errc::bad_file_descriptor);
    CHECK(d.pread(big, at(usemem, 0)).error() == nvgrace::errc::bad_file_descriptor);
    std::uint64_t pos = at(usemem, 0);
    CHECK(d.read(b.data(), b.size(), &pos) == -EBADF);
    CHECK(pos == at(usemem, 0));
  }
  SUBCASE("after a reset with decode off: EIO in memory, a write in the padding still succeeds") {
    auto d = make_hopper();
    REQUIRE(d.pread(b, at(usemem, 0)).has_value());
    REQUIRE(d.reset().has_value());
    REQUIRE(d.reset_done());
    CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
    CHECK(d.pread(b, at(usemem, 0)).error() == nvgrace::errc::io_error);
    CHECK(d.pwrite(w, at(usemem, 0)).error() == nvgrace::errc::io_error);
    CHECK(d.pread(big, at(usemem, 0)).error() == nvgrace::errc::io_error);
    CHECK(d.pwrite(w, at(usemem, hopper_usemem_real)).value() == 8);
    CHECK(d.reset_done());
    // Decode on again: the next access waits, succeeds and clears reset_done.
    CHECK(config_write<std::uint16_t>(d, pci::reg::command, pci::command_bits::memory) == 2);
    CHECK(d.pread(b, at(usemem, 0)).value() == 8);
    CHECK_FALSE(d.reset_done());
  }
  SUBCASE("decode off on a ready device changes nothing for emulated memory; low power neither") {
    auto d = make_hopper();
    REQUIRE(d.pwrite(w, at(usemem, 64)).value() == 8);
    CHECK(config_write<std::uint16_t>(d, pci::reg::command, 0) == 2);
    b.fill(canary);
    CHECK(d.pread(b, at(usemem, 64)).value() == 8);
    CHECK(b == w);
    REQUIRE(d.low_power_entry().has_value());
    b.fill(canary);
    CHECK(d.pread(b, at(usemem, 64)).value() == 8);
    CHECK(b == w);
  }
  SUBCASE("upstream's resmem short return: a word in memory does not advance the position") {
    auto d = make_hopper(grace::resmem_return::upstream_short);
    REQUIRE(d.pread(b, at(usemem, 0)).has_value());
    std::uint64_t pos = at(resmem, 0);
    CHECK(d.read(b.data(), b.size(), &pos) == 8);
    CHECK(pos == at(resmem, 0));
    pos = at(usemem, 0);
    CHECK(d.read(b.data(), b.size(), &pos) == 8);
    CHECK(pos == at(usemem, 8));
  }
}

TEST_CASE("fast tiers: their data sits at a fixed page offset, wherever the heap put the device") {
  // Several devices, so at least one would land elsewhere if the placement
  // came from the allocator rather than the device's alignment.
  std::vector<decltype(make_hopper(grace::resmem_return::documented))> devices;
  for (int i = 0; i < 4; ++i) devices.push_back(make_hopper(grace::resmem_return::documented));
  for (const auto& d : devices) {
    const auto address = reinterpret_cast<std::uintptr_t>(shim::test_hooks::fast_data(d));
    CHECK(address % shim::detail::fast_data_alignment == shim::detail::fast_data_page_offset);
    CHECK(address % 4096 == 256);
    // The state word and the two windows (resmem, usemem): 8 + 2 × 40 bytes,
    // ending at page offset 344, well before the 0x800 where a copy of the
    // benchmarks' straddling accesses begins.
    CHECK(shim::test_hooks::fast_data_size(d) == 88);
    CHECK(address % 4096 + shim::test_hooks::fast_data_size(d) == 344);
  }
}
