// The in-process nvgrace-gpu device (backend/shim/device.hpp): every
// behaviour with exact bytes, counts, positions and errno.
#include "shim_fixtures.hpp"

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/grace/ids.hpp>
#include <nvgrace/grace/region_info.hpp>
#include <nvgrace/mem/anonymous_memory.hpp>
#include <nvgrace/mem/memfd_memory.hpp>
#include <nvgrace/pci/config.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace device_test;

namespace {

constexpr std::uint32_t resmem = 2;
constexpr std::uint32_t usemem = 4;
constexpr std::byte ff{0xFF};
constexpr std::byte untouched{0x5A};
// The function's own BAR4 as the shim places it (BAR0 16 MiB at 0x6600_0000_0000,
// BAR2 16 MiB, then BAR4): a 64-bit prefetchable BAR at 0x6600_0200_0000. Under
// the emulation it is still in config space where the windows do not patch.
constexpr std::uint64_t function_bar4 = 0x6600'0200'000Cu;

std::vector<std::byte> config_bytes(shim_device& d, std::uint64_t offset, std::size_t count) {
  std::vector<std::byte> out(count);
  const auto n = d.pread(out, at(config_index, offset));
  REQUIRE(n.has_value());
  REQUIRE(*n == count);
  return out;
}

/// A region-info reply for `index` with `argsz`, through the device_file call.
std::vector<std::byte> region_info(shim_device& d, std::uint32_t index, std::uint32_t argsz, nvgrace::errc& error) {
  std::vector<std::byte> buffer(std::max<std::size_t>(argsz, 32), std::byte{0xA5});
  store_le<std::uint32_t>(buffer, 0, argsz);
  store_le<std::uint32_t>(buffer, 8, index);
  const auto s = d.get_region_info(buffer);
  error = s ? nvgrace::errc{} : s.error();
  return buffer;
}

}  // namespace

// ---- §1 / §2 probe -----------------------------------------------------------------

TEST_CASE("§2.1 missing ACPI properties or a size of 0 give plain vfio-pci, not a probe failure") {
  CHECK(make(shim::plain()).mode() == grace::mode::plain);
  shim::device_options size_zero;
  size_zero.acpi = {memory_base, 0};
  CHECK(make(size_zero).mode() == grace::mode::plain);
  shim::device_options no_base;
  no_base.acpi = {std::nullopt, 2 * GiB};
  CHECK(make(no_base).mode() == grace::mode::plain);
  CHECK(make(shim::hopper(hopper_length)).mode() == grace::mode::emulated);
  CHECK_FALSE(make(shim::plain()).layout().has_value());
}

TEST_CASE("§2.3 E13 Hopper memory of 1 GiB to 1.5 GiB fails the probe with EINVAL, below 1 GiB with EOVERFLOW") {
  CHECK(shim_device::create(shim::hopper(1 * GiB)).error() == nvgrace::errc::invalid_argument);
  CHECK(shim_device::create(shim::hopper(5 * GiB / 4)).error() == nvgrace::errc::invalid_argument);
  CHECK(shim_device::create(shim::hopper(GiB / 2)).error() == nvgrace::errc::value_too_large);
}

TEST_CASE("§2.1 check_options: the probe's checks without allocating: ENODEV, EINVAL, the layout's errno") {
  CHECK(shim_device::check_options(shim::hopper(hopper_length)).has_value());
  CHECK(shim_device::check_options(shim::plain()).has_value());
  shim::device_options unknown_id = shim::hopper(hopper_length);
  unknown_id.device_id = 0x1234;
  CHECK(shim_device::check_options(unknown_id).error() == nvgrace::errc::no_such_device);
  CHECK(shim_device::check_options(shim::plain(3000)).error() == nvgrace::errc::invalid_argument);
  CHECK(shim_device::check_options(shim::hopper(1 * GiB)).error() == nvgrace::errc::invalid_argument);
  CHECK(shim_device::check_options(shim::hopper(GiB / 2)).error() == nvgrace::errc::value_too_large);
}

TEST_CASE("§2.1 GPU memory supplied from outside must be exactly the ACPI size; plain mode takes none") {
  auto short_by_a_page = mem::memfd_memory::create(hopper_length - 4 * KiB);
  REQUIRE(short_by_a_page);
  CHECK(shim_device::create(shim::hopper(hopper_length), std::move(*short_by_a_page)).error() ==
        nvgrace::errc::invalid_argument);
  auto one_more = mem::memfd_memory::create(blackwell_length + 1);
  REQUIRE(one_more);
  CHECK(shim_device::create(shim::blackwell(blackwell_length), std::move(*one_more)).error() ==
        nvgrace::errc::invalid_argument);
  auto page = mem::memfd_memory::create(4 * KiB);
  REQUIRE(page);
  CHECK(shim_device::create(shim::plain(), std::move(*page)).error() == nvgrace::errc::invalid_argument);
  // The probe's errno comes first, whatever the memory.
  auto half = mem::memfd_memory::create(GiB / 2);
  REQUIRE(half);
  CHECK(shim_device::create(shim::hopper(GiB / 2), std::move(*half)).error() == nvgrace::errc::value_too_large);
}

TEST_CASE("§5 a device over a file-backed GPU memory: pwrite lands in the file, the file's bytes read back") {
  char path[] = "/tmp/nvgrace-shim-file-XXXXXX";
  const int made = ::mkstemp(path);
  REQUIRE(made >= 0);
  ::close(made);
  {
    auto memory = mem::memfd_memory::open_file(path, hopper_length);
    REQUIRE(memory);
    auto created = shim_device::create(shim::hopper(hopper_length), std::move(*memory));
    REQUIRE(created);
    shim_device& d = *created;
    CHECK(d.mode() == grace::mode::emulated);
    CHECK(d.gpu_memory().length() == hopper_length);

    const auto use_bytes = bytes_of({0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88});
    const auto res_bytes = bytes_of({0xA1, 0xB2, 0xC3, 0xD4});
    CHECK(d.pwrite(use_bytes, at(usemem, 0x1000)).value() == 8);
    CHECK(d.pwrite(res_bytes, at(resmem, 0x20)).value() == 4);

    // Another descriptor of the same file sees them: usemem from byte 0,
    // resmem right after usemem's real length (§2.3).
    const int reader = ::open(path, O_RDWR | O_CLOEXEC);
    REQUIRE(reader >= 0);
    std::vector<std::byte> back(8);
    CHECK(::pread(reader, back.data(), 8, 0x1000) == 8);
    CHECK(back == use_bytes);
    back.resize(4);
    CHECK(::pread(reader, back.data(), 4, static_cast<off_t>(hopper_usemem_real + 0x20)) == 4);
    CHECK(back == res_bytes);

    // And the other way: bytes written to the file are what the device reads.
    const auto from_file = bytes_of({0xDE, 0xAD, 0xBE, 0xEF});
    CHECK(::pwrite(reader, from_file.data(), 4, 0x2000) == 4);
    std::vector<std::byte> seen(4);
    CHECK(d.pread(seen, at(usemem, 0x2000)).value() == 4);
    CHECK(seen == from_file);
    ::close(reader);
  }
  struct stat st {};
  REQUIRE(::stat(path, &st) == 0);
  CHECK(static_cast<std::uint64_t>(st.st_size) == hopper_length);
  ::unlink(path);
}

TEST_CASE("§2.3 the small Hopper layout: usemem BAR sized before the 512 MiB round-down") {
  auto d = make_hopper();
  const auto l = d.layout();
  REQUIRE(l.has_value());
  CHECK(l->usemem == grace::memregion{memory_base, hopper_usemem_real, hopper_usemem_bar});
  CHECK(l->resmem == grace::memregion{memory_base + hopper_usemem_real, hopper_resmem_real, hopper_resmem_bar});
  CHECK(d.region_memory(usemem)->length == hopper_usemem_real);
  CHECK(d.region_memory(usemem)->caching == mem::caching::cached);
  CHECK(d.region_memory(resmem)->length == hopper_resmem_real);
  CHECK(d.region_memory(resmem)->caching == mem::caching::uncached);
  // resmem follows usemem in the one GPU memory.
  CHECK(d.region_memory(resmem)->base == d.region_memory(usemem)->base + hopper_usemem_real);
}

TEST_CASE("§1 device ids come from the driver's table") {
  CHECK(make(shim::hopper(hopper_length)).device_id() == 0x2342);
  CHECK(make(shim::blackwell(blackwell_length)).device_id() == 0x2941);
  auto options = shim::blackwell(blackwell_length);
  options.device_id = 0x31C2;
  auto gb300 = make(options);
  CHECK(config_read<std::uint32_t>(gb300, 0) == 0x31C2'10DEu);
  options.device_id = 0x1234;
  CHECK(shim_device::create(options).error() == nvgrace::errc::no_such_device);
  auto bad_bar = shim::plain(3 * MiB);
  CHECK(shim_device::create(bad_bar).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§2.2 the generation is visible through the NVIDIA DVSEC in extended config space") {
  for (const auto gen : {grace::generation::hopper, grace::generation::blackwell}) {
    CAPTURE(grace::to_string(gen));
    auto d = make(gen == grace::generation::hopper ? shim::hopper(hopper_length) : shim::blackwell(blackwell_length));
    const auto config = d.config_snapshot();
    const auto found = grace::generation_from_config(config);
    REQUIRE(found.has_value());
    CHECK(*found == gen);
    const auto dvsec = pci::find_dvsec(config, 0x10DE, 3);
    REQUIRE(dvsec.has_value());
    CHECK(*dvsec == 0x100);
    CHECK(load_le<std::uint16_t>(config, 0x10A) == (gen == grace::generation::blackwell ? 1 : 0));
  }
}

// ---- §3 config space ------------------------------------------------------------------

TEST_CASE("§3 config space: IDs, class 0x0302, BAR0 64-bit 16 MiB, capability list with PCI Express") {
  auto d = make_hopper();
  const auto head = config_bytes(d, 0, 0x40);
  CHECK(load_le<std::uint16_t>(head, 0x00) == 0x10DE);
  CHECK(load_le<std::uint16_t>(head, 0x02) == 0x2342);
  CHECK(load_le<std::uint16_t>(head, 0x04) == pci::command_bits::memory);
  CHECK(load_le<std::uint16_t>(head, 0x06) == pci::status_bits::cap_list);
  CHECK(head[0x09] == std::byte{0x00});
  CHECK(head[0x0A] == std::byte{0x02});
  CHECK(head[0x0B] == std::byte{0x03});
  CHECK(head[0x0E] == std::byte{0x00});
  CHECK((load_le<std::uint32_t>(head, 0x10) & 0xF) == pci::bar_bits::mem_type_64);
  CHECK(load_le<std::uint32_t>(head, 0x10) == 0x0000'0004u);  // 0x6600_0000_0000: low dword is 0
  CHECK(load_le<std::uint32_t>(head, 0x14) == 0x0000'6600u);
  // The emulated BARs read 0x0C at open (§3, bar_val 0).
  CHECK(load_le<std::uint64_t>(head, 0x18) == 0xC);
  // E4: this read also touched the resmem window, so 0x20 is the function's own BAR4.
  CHECK(load_le<std::uint64_t>(head, 0x20) == function_bar4);
  CHECK(config_read<std::uint64_t>(d, 0x20) == 0xC);
  CHECK(load_le<std::uint32_t>(head, 0x30) == 0);  // no ROM
  CHECK(head[0x3D] == std::byte{0x01});            // INTA

  // Walk the standard capability list: PM → MSI → PCIe, and nothing else.
  const auto config = d.config_snapshot();
  std::vector<unsigned> ids;
  for (unsigned ptr = std::to_integer<unsigned>(config[0x34]), hops = 0; ptr != 0 && hops < 48; ++hops) {
    ids.push_back(std::to_integer<unsigned>(config[ptr]));
    ptr = std::to_integer<unsigned>(config[ptr + 1]);
  }
  CHECK(ids == std::vector<unsigned>{pci::cap::power_management, pci::cap::msi, pci::cap::express});
  CHECK(d.region_memory(0)->length == 16 * MiB);
}

TEST_CASE("§3 emulated BARs size themselves: all-ones reads ~(bar_size − 1) | 0xC") {
  auto d = make_hopper();
  CHECK(config_write<std::uint64_t>(d, 0x18, ~std::uint64_t{0}) == 8);
  CHECK(config_write<std::uint64_t>(d, 0x20, ~std::uint64_t{0}) == 8);
  CHECK(config_read<std::uint32_t>(d, 0x18) == 0x8000'000Cu);  // 2 GiB resmem BAR
  CHECK(config_read<std::uint32_t>(d, 0x1C) == 0xFFFF'FFFFu);
  CHECK(config_read<std::uint64_t>(d, 0x20) == 0xFFFF'FFFF'C000'000Cu);  // 1 GiB usemem BAR
  // Writes store raw bytes; the mask is applied only on read.
  CHECK(d.emulated_bar_raw(resmem) == ~std::uint64_t{0});
  CHECK(config_write<std::uint32_t>(d, 0x20, 0x1234'5678u) == 4);
  CHECK(d.emulated_bar_raw(usemem) == 0xFFFF'FFFF'1234'5678u);
  CHECK(config_read<std::uint32_t>(d, 0x20) == 0x0000'000Cu);
}

TEST_CASE("§3.3 E3 an 8-byte config write at 0x14 stores bytes 4..7 into resmem, returns 4, ppos 0x18") {
  auto d = make_hopper();
  const std::uint32_t bar0_high = config_read<std::uint32_t>(d, 0x14);
  const auto data = bytes_of({0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88});
  const auto r = kwrite(d, data, at(config_index, 0x14));
  CHECK(r.value == 4);
  CHECK(r.pos == at(config_index, 0x18));
  CHECK(d.emulated_bar_raw(resmem) == 0x8877'6655u);
  CHECK(config_read<std::uint32_t>(d, 0x14) == bar0_high);  // the core write was never done
}

TEST_CASE("§3.3 a 0x1000-byte config write at 0x10 returns 8 and skips the size check") {
  auto d = make_hopper();
  const auto data = filled(0x1000, 0xEE);
  const auto r = kwrite(d, data, at(config_index, 0x10));
  CHECK(r.value == 8);
  CHECK(r.pos == at(config_index, 0x18));
  CHECK(d.emulated_bar_raw(resmem) == 0xEEEE'EEEE'EEEE'EEEEu);
  // Without the window the same write is EFAULT (0x10 + 0x1000 > 4096).
  auto p = make(shim::plain());
  CHECK(kwrite(p, data, at(config_index, 0x10)).value == -EFAULT);
}

TEST_CASE("§3.2 E4 a config read spanning both windows patches only the resmem bytes") {
  auto d = make_hopper();
  CHECK(config_write<std::uint64_t>(d, 0x18, ~std::uint64_t{0}) == 8);
  CHECK(config_write<std::uint64_t>(d, 0x20, ~std::uint64_t{0}) == 8);
  const auto r = config_bytes(d, 0x18, 16);
  CHECK(load_le<std::uint64_t>(r, 0) == 0xFFFF'FFFF'8000'000Cu);
  CHECK(load_le<std::uint64_t>(r, 8) == function_bar4);  // the core's BAR4/5, not the usemem emulation
}

TEST_CASE("§3.2 E5 sub-dword reads inside the windows at 0x19, 0x1D, 0x23, 0x27") {
  auto d = make_hopper();
  CHECK(config_write<std::uint64_t>(d, 0x18, 0x0123'4567'89AB'CDEFu) == 8);
  CHECK(config_write<std::uint64_t>(d, 0x20, 0xFEDC'BA98'7654'3210u) == 8);
  // resmem reads (raw & ~(2 GiB − 1)) | 0xC = 0x01234567_0000000C; usemem (1 GiB) 0xFEDCBA98_4000000C.
  CHECK(config_bytes(d, 0x19, 2) == bytes_of({0x00, 0x00}));
  CHECK(config_bytes(d, 0x1D, 2) == bytes_of({0x45, 0x23}));
  CHECK(config_bytes(d, 0x23, 1) == bytes_of({0x40}));
  CHECK(config_bytes(d, 0x27, 1) == bytes_of({0xFE}));
  CHECK(config_bytes(d, 0x1F, 2) == bytes_of({0x01, 0x0C}));  // resmem's last byte + core 0x20
}

TEST_CASE("§10 E2 Blackwell: an access touching 0x18–0x1F is the real BAR2, even its usemem bytes") {
  auto d = make(shim::blackwell(blackwell_length));
  CHECK(config_write<std::uint64_t>(d, 0x20, ~std::uint64_t{0}) == 8);
  CHECK(config_read<std::uint64_t>(d, 0x20) == 0xFFFF'FFFF'F800'000Cu);  // usemem 128 MiB, emulated
  const auto r = config_bytes(d, 0x18, 16);
  CHECK((load_le<std::uint32_t>(r, 0) & 0xF) == 0xC);    // the real 64-bit prefetchable BAR2
  CHECK(load_le<std::uint64_t>(r, 8) == function_bar4);  // core bytes, not the emulated usemem value
  // Sizing the real BAR2 goes to the core: 16 MiB.
  CHECK(config_write<std::uint64_t>(d, 0x18, ~std::uint64_t{0}) == 8);
  CHECK(config_read<std::uint32_t>(d, 0x18) == 0xFF00'000Cu);
  CHECK(config_read<std::uint32_t>(d, 0x1C) == 0xFFFF'FFFFu);
  CHECK(d.emulated_bar_raw(resmem) == 0);
}

TEST_CASE("§3 BAR0 sizes itself like vfio-pci's virtual config and restores exactly") {
  auto d = make_hopper();
  const std::uint32_t low = config_read<std::uint32_t>(d, 0x10);
  const std::uint32_t high = config_read<std::uint32_t>(d, 0x14);
  CHECK(config_write<std::uint32_t>(d, 0x10, 0xFFFF'FFFFu) == 4);
  CHECK(config_write<std::uint32_t>(d, 0x14, 0xFFFF'FFFFu) == 4);
  CHECK(config_read<std::uint32_t>(d, 0x10) == 0xFF00'0004u);
  CHECK(config_read<std::uint32_t>(d, 0x14) == 0xFFFF'FFFFu);
  CHECK(config_write<std::uint32_t>(d, 0x10, low) == 4);
  CHECK(config_write<std::uint32_t>(d, 0x14, high) == 4);
  CHECK(config_read<std::uint32_t>(d, 0x10) == low);
  CHECK(config_read<std::uint32_t>(d, 0x14) == high);
  // Unimplemented BARs and the ROM read 0 after all-ones too.
  auto p = make(shim::plain(16 * MiB, 0));
  CHECK(config_write<std::uint64_t>(p, 0x20, ~std::uint64_t{0}) == 8);
  CHECK(config_read<std::uint64_t>(p, 0x20) == 0);
  CHECK(config_write<std::uint32_t>(p, 0x30, 0xFFFF'FFFFu) == 4);
  CHECK(config_read<std::uint32_t>(p, 0x30) == 0);
}

TEST_CASE("§3.2 config reads: EFAULT at or past 4096, count 0 → 0, position advanced by the count") {
  auto d = make_hopper();
  std::array<std::byte, 4> buf{};
  auto r = kread(d, buf, at(config_index, 4092));
  CHECK(r.value == 4);
  CHECK(r.pos == at(config_index, 4096));
  CHECK(kread(d, buf, at(config_index, 4094)).value == -EFAULT);
  CHECK(kread(d, buf, at(config_index, 4096)).value == -EFAULT);
  r = kread(d, std::span<std::byte>(buf).first(0), at(config_index, 5000));
  CHECK(r.value == 0);
  CHECK(r.pos == at(config_index, 5000));
  CHECK(kwrite(d, buf, at(config_index, 4094)).value == -EFAULT);
}

TEST_CASE("§3 the command register is writable, the IDs and class are read-only") {
  auto d = make_hopper();
  CHECK(config_write<std::uint16_t>(d, 0x04, 0x0006) == 2);
  CHECK(config_read<std::uint16_t>(d, 0x04) == 0x0006);
  CHECK(config_write<std::uint16_t>(d, 0x04, 0xFFFF) == 2);
  CHECK(config_read<std::uint16_t>(d, 0x04) == 0x0547);
  CHECK(config_write<std::uint32_t>(d, 0x00, 0) == 4);
  CHECK(config_read<std::uint32_t>(d, 0x00) == 0x2342'10DEu);
  CHECK(config_write<std::uint32_t>(d, 0x08, 0) == 4);
  CHECK(config_read<std::uint32_t>(d, 0x08) == 0x0302'00A1u);
}

// ---- §4 region info and device info --------------------------------------------------

TEST_CASE("§4.3 emulated region info is byte for byte the model's reply for every argsz") {
  auto d = make_hopper();
  for (const std::uint32_t index : {resmem, usemem}) {
    for (const std::uint32_t argsz : {32u, 40u, 63u, 64u, 100u}) {
      CAPTURE(index);
      CAPTURE(argsz);
      nvgrace::errc error{};
      const auto got = region_info(d, index, argsz, error);
      REQUIRE(error == nvgrace::errc{});
      const auto want = grace::region_info_reply(*d.layout(), index, argsz);
      REQUIRE(want.has_value());
      CHECK(
          std::equal(want->bytes.begin(), want->bytes.begin() + static_cast<std::ptrdiff_t>(want->size), got.begin()));
      // Nothing past the reply is touched.
      CHECK(std::all_of(got.begin() + static_cast<std::ptrdiff_t>(want->size), got.end(),
                        [](std::byte b) { return b == std::byte{0xA5}; }));
    }
  }
  nvgrace::errc error{};
  const auto full = region_info(d, usemem, 64, error);
  const auto info = vfio::load_region_info(full);
  CHECK(info.flags == 0xF);
  CHECK(info.size == hopper_usemem_bar);
  CHECK(info.offset == 0x400'0000'0000u);
  CHECK(load_le<std::uint64_t>(full, 56) == hopper_usemem_real);
}

TEST_CASE("§4 other regions answer like vfio-pci: BAR0 0x7, empty BARs and ROM 0, config 0x3, VGA EINVAL") {
  auto d = make_hopper();
  struct row {
    std::uint32_t index;
    std::uint32_t flags;
    std::uint64_t size;
  };
  for (const row r :
       {row{0, 0x7, 16 * MiB}, row{1, 0, 0}, row{3, 0, 0}, row{5, 0, 0}, row{6, 0, 0}, row{7, 0x3, 4096}}) {
    CAPTURE(r.index);
    vfio::region_info info{sizeof(vfio::region_info), 0, r.index, 0, 0, 0};
    CHECK(shim::ioctl(d, vfio::ioctl::device_get_region_info, &info) == 0);
    CHECK(info.argsz == 32);
    CHECK(info.flags == r.flags);
    CHECK(info.cap_offset == 0);
    CHECK(info.size == r.size);
    CHECK(info.offset == vfio::region_offset(r.index));
  }
  vfio::region_info vga{sizeof(vfio::region_info), 0, 8, 0, 0, 0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_get_region_info, &vga) == -EINVAL);
  vfio::region_info beyond{sizeof(vfio::region_info), 0, 9, 0, 0, 0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_get_region_info, &beyond) == -EINVAL);
  vfio::region_info small{31, 0, 0, 0, 0, 0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_get_region_info, &small) == -EINVAL);
  // device_file: a buffer shorter than its argsz claims is EFAULT.
  std::array<std::byte, 32> buffer{};
  store_le<std::uint32_t>(buffer, 0, 64);
  store_le<std::uint32_t>(buffer, 8, usemem);
  CHECK(d.get_region_info(buffer).error() == nvgrace::errc::bad_address);
}

TEST_CASE("§4 DEVICE_GET_INFO: RESET|PCI, 9 regions, 5 IRQs; argsz is left as written") {
  auto d = make_hopper();
  vfio::device_info info{16, 0, 0, 0, 0xDEAD};
  CHECK(shim::ioctl(d, vfio::ioctl::device_get_info, &info) == 0);
  CHECK(info.argsz == 16);
  CHECK(info.flags == (vfio::device_flags::reset | vfio::device_flags::pci));
  CHECK(info.num_regions == 9);
  CHECK(info.num_irqs == 5);
  CHECK(info.cap_offset == 0xDEAD);  // only 16 bytes are copied back
  vfio::device_info short_info{15, 0, 0, 0, 0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_get_info, &short_info) == -EINVAL);
  auto options = shim::hopper(hopper_length);
  options.reset_supported = false;
  const auto no_reset = make(options).get_device_info();
  REQUIRE(no_reset.has_value());
  CHECK(no_reset->flags == vfio::device_flags::pci);
  CHECK(no_reset->argsz == 20);
}

TEST_CASE("§4 GET_IRQ_INFO counts follow the config space: INTA, one MSI vector, no MSI-X, PCIe ERR, REQ") {
  auto d = make_hopper();
  const auto config = d.config_snapshot();
  // What the config space implies.
  unsigned msi_vectors = 0;
  bool msix = false;
  bool express = false;
  for (unsigned ptr = std::to_integer<unsigned>(config[0x34]), hops = 0; ptr != 0 && hops < 48; ++hops) {
    const unsigned id = std::to_integer<unsigned>(config[ptr]);
    if (id == pci::cap::msi) msi_vectors = 1u << ((load_le<std::uint16_t>(config, ptr + 2) >> 1) & 7);
    if (id == pci::cap::msix) msix = true;
    if (id == pci::cap::express) express = true;
    ptr = std::to_integer<unsigned>(config[ptr + 1]);
  }
  REQUIRE(msi_vectors == 1);
  REQUIRE_FALSE(msix);
  REQUIRE(express);
  constexpr std::uint32_t ev = vfio::irq_flags::eventfd;
  constexpr std::uint32_t nr = vfio::irq_flags::noresize;
  const std::array<std::pair<std::uint32_t, std::uint32_t>, 5> want{{
      {1, ev | vfio::irq_flags::maskable | vfio::irq_flags::automasked},
      {1, ev | nr},
      {0, ev | nr},
      {1, ev | nr},
      {1, ev | nr},
  }};
  for (std::uint32_t index = 0; index < 5; ++index) {
    CAPTURE(index);
    vfio::irq_info irq{16, 0, index, 0};
    CHECK(shim::ioctl(d, vfio::ioctl::device_get_irq_info, &irq) == 0);
    CHECK(irq.count == want[index].first);
    CHECK(irq.flags == want[index].second);
  }
  vfio::irq_info beyond{16, 0, 5, 0};
  CHECK(d.get_irq_info(beyond).error() == nvgrace::errc::invalid_argument);
  vfio::irq_info small{15, 0, 0, 0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_get_irq_info, &small) == -EINVAL);
}

// ---- §5 read / write --------------------------------------------------------------------

TEST_CASE("§5.1 E6 usemem reads at memlength −1/0 and bar_size −1/0: bytes, 0xFF, clipping, EINVAL") {
  auto d = make_hopper();
  const auto seed = bytes_of({0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8});
  REQUIRE(d.pwrite(seed, at(usemem, hopper_usemem_real - 8)).value() == 8);

  std::vector<std::byte> buf = filled(16, 0x5A);
  auto r = kread(d, buf, at(usemem, hopper_usemem_real - 8));  // crosses memlength
  CHECK(r.value == 16);
  CHECK(r.pos == at(usemem, hopper_usemem_real + 8));
  CHECK(std::equal(seed.begin(), seed.end(), buf.begin()));
  CHECK(std::all_of(buf.begin() + 8, buf.end(), [](std::byte b) { return b == ff; }));

  buf = filled(1, 0x5A);
  CHECK(kread(d, buf, at(usemem, hopper_usemem_real - 1)).value == 1);
  CHECK(buf[0] == std::byte{0xA8});
  CHECK(kread(d, buf, at(usemem, hopper_usemem_real)).value == 1);
  CHECK(buf[0] == ff);

  buf = filled(16, 0x5A);
  r = kread(d, buf, at(usemem, hopper_usemem_bar - 1));  // clipped at the BAR end
  CHECK(r.value == 1);
  CHECK(r.pos == at(usemem, hopper_usemem_bar));
  CHECK(buf[0] == ff);
  CHECK(buf[1] == untouched);
  CHECK(kread(d, buf, at(usemem, hopper_usemem_bar)).value == -EINVAL);
  CHECK(kread(d, buf, at(usemem, vfio::offset_mask)).value == -EINVAL);
  r = kread(d, std::span<std::byte>(buf).first(0), at(usemem, 5));
  CHECK(r.value == 0);
  CHECK(r.pos == at(usemem, 5));
}

TEST_CASE("§5.1 E7 a resmem read crossing memlength returns short, keeps ppos, does not fill") {
  auto d = make_hopper(grace::resmem_return::upstream_short);
  const auto seed = bytes_of({1, 2, 3, 4, 5, 6, 7, 8});
  // The write straddles too: it returns only the memory part and keeps ppos.
  std::vector<std::byte> twelve = filled(12, 0x77);
  std::copy(seed.begin(), seed.end(), twelve.begin());
  auto w = kwrite(d, twelve, at(resmem, hopper_resmem_real - 8));
  CHECK(w.value == 8);
  CHECK(w.pos == at(resmem, hopper_resmem_real - 8));

  std::vector<std::byte> buf = filled(16, 0x5A);
  const auto r = kread(d, buf, at(resmem, hopper_resmem_real - 8));
  CHECK(r.value == 8);
  CHECK(r.pos == at(resmem, hopper_resmem_real - 8));
  CHECK(std::equal(seed.begin(), seed.end(), buf.begin()));
  CHECK(std::all_of(buf.begin() + 8, buf.end(), [](std::byte b) { return b == untouched; }));

  // Entirely in the padding: the normal path (0xFF, full count, ppos advanced).
  buf = filled(16, 0x5A);
  const auto p = kread(d, buf, at(resmem, hopper_resmem_real));
  CHECK(p.value == 16);
  CHECK(p.pos == at(resmem, hopper_resmem_real + 16));
  CHECK(std::all_of(buf.begin(), buf.end(), [](std::byte b) { return b == ff; }));
}

TEST_CASE("§5.1 the documented resmem semantics return the whole count with 0xFF padding") {
  auto d = make_hopper(grace::resmem_return::documented);
  std::vector<std::byte> buf = filled(16, 0x5A);
  const auto r = kread(d, buf, at(resmem, hopper_resmem_real - 8));
  CHECK(r.value == 16);
  CHECK(r.pos == at(resmem, hopper_resmem_real + 8));
  CHECK(std::all_of(buf.begin() + 8, buf.end(), [](std::byte b) { return b == ff; }));
}

TEST_CASE("§5.2 writes into the padding are dropped and return the count; BAR end clips; EINVAL past it") {
  auto d = make_hopper();
  const auto data = filled(16, 0x42);
  auto w = kwrite(d, data, at(usemem, hopper_usemem_real - 4));
  CHECK(w.value == 16);
  CHECK(w.pos == at(usemem, hopper_usemem_real + 12));
  std::vector<std::byte> back = filled(8, 0);
  REQUIRE(d.pread(back, at(usemem, hopper_usemem_real - 4)).value() == 8);
  CHECK(back == bytes_of({0x42, 0x42, 0x42, 0x42, 0xFF, 0xFF, 0xFF, 0xFF}));
  w = kwrite(d, data, at(usemem, hopper_usemem_bar - 2));
  CHECK(w.value == 2);
  CHECK(w.pos == at(usemem, hopper_usemem_bar));
  CHECK(kwrite(d, data, at(usemem, hopper_usemem_bar)).value == -EINVAL);
  // The backing memory saw exactly the in-memory bytes.
  const mem::memory_view m = *d.region_memory(usemem);
  CHECK(m.base[hopper_usemem_real - 1] == std::byte{0x42});
}

TEST_CASE("§5 core regions: absent and unimplemented regions EINVAL, count 0 → 0, BAR0 clipped at 16 MiB") {
  auto d = make_hopper();
  std::array<std::byte, 8> buf{};
  for (const std::uint32_t index : {1u, 3u, 5u, 6u, 8u, 9u, 200u}) {
    CAPTURE(index);
    CHECK(kread(d, buf, at(index, 0)).value == -EINVAL);
    CHECK(kwrite(d, buf, at(index, 0)).value == -EINVAL);
    CHECK(kread(d, std::span<std::byte>(buf).first(0), at(index, 0)).value == 0);
  }
  // BAR0: the readiness registers read 0xFF.
  std::array<std::byte, 4> reg{};
  CHECK(kread(d, reg, at(0, shim::c2c_link_register)).value == 4);
  CHECK(load_le<std::uint32_t>(reg, 0) == 0xFF);
  CHECK(kread(d, reg, at(0, shim::hbm_training_register)).value == 4);
  CHECK(load_le<std::uint32_t>(reg, 0) == 0xFF);
  const auto r = kread(d, buf, at(0, 16 * MiB - 4));
  CHECK(r.value == 4);
  CHECK(r.pos == at(0, 16 * MiB));
  CHECK(kread(d, buf, at(0, 16 * MiB)).value == -EINVAL);
  CHECK(d.pread(buf, ~std::uint64_t{0}).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§5 core BARs refuse access with memory decode off (EIO); emulated memory does not once ready") {
  auto d = make_hopper();
  std::array<std::byte, 8> buf{};
  REQUIRE(d.pread(buf, at(usemem, 0)).has_value());  // the first access clears reset_done
  CHECK(config_write<std::uint16_t>(d, 0x04, 0) == 2);
  CHECK_FALSE(d.memory_enabled());
  CHECK(d.pread(buf, at(0, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pwrite(buf, at(0, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pread(buf, at(0, 0 + 16 * MiB)).error() == nvgrace::errc::invalid_argument);  // bounds first
  // §7.2: the driver only checks decode inside the readiness check, which is skipped once ready.
  CHECK(d.pread(buf, at(usemem, 0)).value() == 8);
  CHECK(config_write<std::uint16_t>(d, 0x04, pci::command_bits::memory) == 2);
  CHECK(d.pread(buf, at(0, 0)).value() == 8);
}

// ---- §7 readiness, reset, PM ------------------------------------------------------------

TEST_CASE("§7.2 the first memory access after open polls readiness once; later ones do not") {
  auto d = make_hopper();
  fake_readiness source;
  source.device = &d;
  shim::test_hooks::set_readiness_source(d, &source);
  CHECK(d.reset_done());
  std::array<std::byte, 8> buf{};
  CHECK(d.pread(buf, at(usemem, 0)).value() == 8);
  CHECK(source.c2c_reads == 1);
  CHECK(source.hbm_reads == 1);
  CHECK(source.sleeps == 0);
  CHECK_FALSE(d.reset_done());
  CHECK(d.pread(buf, at(resmem, 0)).value() == 8);
  CHECK(source.polls() == 1);
  // Config space and region info never wait (§7.2).
  REQUIRE(d.reset().has_value());
  static_cast<void>(config_read<std::uint32_t>(d, 0));
  CHECK(source.polls() == 1);
  CHECK(d.pwrite(buf, at(usemem, 0)).value() == 8);
  CHECK(source.polls() == 2);
}

TEST_CASE("§7.2 a reset that lands during the readiness wait keeps reset_done set for the next access") {
  auto d = make_hopper();
  // The poll's first register read is where a concurrent VFIO_DEVICE_RESET lands.
  struct reset_midway final : shim::readiness_source {
    shim_device* d = nullptr;
    int reads = 0;
    std::uint32_t read32(std::uint64_t offset) noexcept override {
      if (reads++ == 0) static_cast<void>(d->reset());
      return d->bar0_register(offset);
    }
    std::uint64_t now_ms() noexcept override { return 0; }
    bool sleep_ms(std::uint64_t) noexcept override { return true; }
  } source;
  source.d = &d;
  shim::test_hooks::set_readiness_source(d, &source);
  const std::uint32_t resets = d.reset_count();
  std::array<std::byte, 8> buf{};
  CHECK(d.pread(buf, at(usemem, 0)).value() == 8);  // this access completes (ordered before the reset)
  CHECK(d.reset_count() == resets + 1);
  CHECK(d.reset_done());                            // but the reset's flag survives
  CHECK(d.pread(buf, at(usemem, 0)).value() == 8);  // so the next access polls again
  CHECK(source.reads == 4);
  CHECK_FALSE(d.reset_done());
}

TEST_CASE("§7.1 readiness timeout: ETIME after checks at t = 0..30 s, returned at t = 31 s") {
  auto d = make_hopper();
  fake_readiness source;
  source.device = &d;
  shim::test_hooks::set_bar0_register(d, shim::c2c_link_register, 0);  // the C2C link is down
  shim::test_hooks::set_readiness_source(d, &source);
  std::vector<std::byte> buf = filled(8, 0x5A);
  const auto r = kread(d, buf, at(usemem, 0));
  CHECK(r.value == -ETIME);
  CHECK(r.pos == at(usemem, 0));
  CHECK(buf == filled(8, 0x5A));
  CHECK(source.c2c_reads == 31);
  CHECK(source.hbm_reads == 0);  // only read once C2C is ready
  CHECK(source.sleeps == 31);
  CHECK(source.time == 31000);
  CHECK(d.reset_done());  // an error leaves it set
  // Ready now: the next access polls once and succeeds.
  shim::test_hooks::set_bar0_register(d, shim::c2c_link_register, 0xFF);
  CHECK(kread(d, buf, at(usemem, 0)).value == 8);
  CHECK(source.c2c_reads == 32);
  CHECK_FALSE(d.reset_done());
}

TEST_CASE("§7.1 each register must equal 0xFF exactly: HBM 0x1FF is not ready") {
  auto d = make_hopper();
  fake_readiness source;
  source.device = &d;
  source.hbm = 0x1FF;
  shim::test_hooks::set_readiness_source(d, &source);
  std::array<std::byte, 8> buf{};
  CHECK(d.pwrite(buf, at(usemem, 0)).error() == nvgrace::errc::stream_timeout);
  CHECK(source.c2c_reads == 31);
  CHECK(source.hbm_reads == 31);
  // Ready on the third check: two sleeps.
  source.hbm.reset();
  source.c2c_reads = source.hbm_reads = source.sleeps = 0;
  shim::test_hooks::set_bar0_register(d, shim::hbm_training_register, 0);
  struct flip_after final : shim::readiness_source {
    shim_device* d = nullptr;
    int checks = 0;
    std::uint32_t read32(std::uint64_t offset) noexcept override {
      if (offset == shim::c2c_link_register && ++checks == 3)
        shim::test_hooks::set_bar0_register(*d, shim::hbm_training_register, 0xFF);
      return d->bar0_register(offset);
    }
    std::uint64_t now_ms() noexcept override { return 1000u * static_cast<std::uint64_t>(checks); }
    bool sleep_ms(std::uint64_t) noexcept override { return true; }
  } flip;
  flip.d = &d;
  shim::test_hooks::set_readiness_source(d, &flip);
  CHECK(d.pwrite(buf, at(usemem, 0)).value() == 8);
  CHECK(flip.checks == 3);
}

TEST_CASE("§10 E8 with reset_done and decode off: a read in the padding is EIO, a write there succeeds") {
  auto d = make_hopper();
  fake_readiness source;
  source.device = &d;
  shim::test_hooks::set_readiness_source(d, &source);
  REQUIRE(d.reset_done());
  CHECK(config_write<std::uint16_t>(d, 0x04, 0) == 2);
  std::array<std::byte, 8> buf{};
  CHECK(d.pread(buf, at(usemem, hopper_usemem_real)).error() == nvgrace::errc::io_error);
  CHECK(d.pread(buf, at(usemem, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pwrite(buf, at(usemem, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pwrite(buf, at(usemem, hopper_usemem_real)).value() == 8);
  CHECK(d.pwrite(buf, at(resmem, hopper_resmem_real)).value() == 8);
  CHECK(source.polls() == 0);  // decode off is EIO before any wait
  CHECK(d.reset_done());
  // A zero-length read still runs the check (§5 zero-length).
  CHECK(d.pread(std::span<std::byte>(buf).first(0), at(usemem, 0)).error() == nvgrace::errc::io_error);
}

TEST_CASE("§7.4 a runtime-PM failure makes memory and core accesses EIO") {
  auto d = make_hopper();
  shim::test_hooks::inject_pm_failure(d, true);
  std::array<std::byte, 8> buf{};
  CHECK(d.pread(buf, at(usemem, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pwrite(buf, at(resmem, hopper_resmem_real)).error() == nvgrace::errc::io_error);
  CHECK(d.pread(std::span<std::byte>(buf).first(0), at(usemem, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pread(buf, at(usemem, hopper_usemem_bar)).error() == nvgrace::errc::io_error);  // before the bounds
  CHECK(d.pread(buf, at(config_index, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pread(buf, at(0, 0)).error() == nvgrace::errc::io_error);
  CHECK(d.pread(std::span<std::byte>(buf).first(0), at(config_index, 0)).value() == 0);
  CHECK(d.pread(buf, at(9, 0)).error() == nvgrace::errc::invalid_argument);
  // The emulated BAR window is intercepted before the core's PM get.
  CHECK(config_write<std::uint32_t>(d, 0x20, 0xFFFF'FFFFu) == 4);
  shim::test_hooks::inject_pm_failure(d, false);
  CHECK(d.pread(buf, at(usemem, 0)).value() == 8);
}

TEST_CASE("§7.3 E11 reset zeroes the emulated BARs even when the core reset fails, and sets reset_done") {
  auto d = make_hopper();
  std::array<std::byte, 8> buf{};
  REQUIRE(d.pread(buf, at(usemem, 0)).has_value());
  REQUIRE_FALSE(d.reset_done());
  const std::uint32_t resets = d.reset_count();

  CHECK(config_write<std::uint64_t>(d, 0x18, ~std::uint64_t{0}) == 8);
  CHECK(config_write<std::uint64_t>(d, 0x20, ~std::uint64_t{0}) == 8);
  shim::test_hooks::inject_reset_failure(d, nvgrace::errc::resource_unavailable_try_again);
  CHECK(d.reset().error() == nvgrace::errc::resource_unavailable_try_again);
  CHECK(config_read<std::uint64_t>(d, 0x18) == 0xC);
  CHECK(config_read<std::uint64_t>(d, 0x20) == 0xC);
  CHECK_FALSE(d.reset_done());
  CHECK(d.reset_count() == resets);

  shim::test_hooks::inject_reset_failure(d, std::nullopt);
  CHECK(config_write<std::uint64_t>(d, 0x20, ~std::uint64_t{0}) == 8);
  vfio::device_info unused{};
  CHECK(shim::ioctl(d, vfio::ioctl::device_reset, &unused) == 0);
  CHECK(config_read<std::uint64_t>(d, 0x20) == 0xC);
  CHECK(d.reset_done());
  CHECK(d.reset_count() == resets + 1);

  auto options = shim::hopper(hopper_length);
  options.reset_supported = false;
  auto n = make(options);
  CHECK_FALSE(n.reset_done());  // the reset at open could not happen
  CHECK(config_write<std::uint64_t>(n, 0x18, ~std::uint64_t{0}) == 8);
  CHECK(n.reset().error() == nvgrace::errc::invalid_argument);
  CHECK(config_read<std::uint64_t>(n, 0x18) == 0xC);
}

TEST_CASE("§10 E12 an FLR through config space sets reset_done but keeps the emulated BARs") {
  auto d = make_hopper();
  std::array<std::byte, 8> buf{};
  REQUIRE(d.pread(buf, at(usemem, 0)).has_value());
  CHECK(config_write<std::uint64_t>(d, 0x20, ~std::uint64_t{0}) == 8);
  CHECK((config_read<std::uint32_t>(d, shim::config_layout::express_devcap) & shim::config_layout::devcap_flr) != 0);
  const std::uint16_t devctl = config_read<std::uint16_t>(d, shim::config_layout::express_devctl);
  CHECK(config_write<std::uint16_t>(d, shim::config_layout::express_devctl, devctl | 0x8000) == 2);
  CHECK(d.reset_done());
  CHECK(config_read<std::uint16_t>(d, shim::config_layout::express_devctl) == devctl);  // FLR bit reads 0
  CHECK(config_read<std::uint64_t>(d, 0x20) == 0xFFFF'FFFF'C000'000Cu);
}

TEST_CASE("§7.5 reopen zeroes the emulated BARs and the open-time reset sets reset_done") {
  auto d = make_hopper();
  std::array<std::byte, 8> buf{};
  REQUIRE(d.pread(buf, at(usemem, 0)).has_value());
  CHECK(config_write<std::uint64_t>(d, 0x18, ~std::uint64_t{0}) == 8);
  REQUIRE(d.reopen());
  CHECK(config_read<std::uint64_t>(d, 0x18) == 0xC);
  CHECK(d.reset_done());
}

// ---- §6 mmap ---------------------------------------------------------------------------

TEST_CASE("§6.1 E9 mapping exactly memlength works and is the device memory; one more page is EINVAL") {
  auto d = make_hopper();
  const auto p = d.mmap(nullptr, hopper_usemem_real, PROT_READ | PROT_WRITE, at(usemem, 0));
  REQUIRE(p.has_value());
  auto* bytes = static_cast<std::byte*>(*p);
  bytes[hopper_usemem_real - 1] = std::byte{0x3C};
  std::array<std::byte, 1> b{};
  CHECK(d.pread(b, at(usemem, hopper_usemem_real - 1)).value() == 1);
  CHECK(b[0] == std::byte{0x3C});
  b[0] = std::byte{0x4D};
  CHECK(d.pwrite(b, at(usemem, 0)).value() == 1);
  CHECK(bytes[0] == std::byte{0x4D});
  ::munmap(*p, hopper_usemem_real);

  CHECK(d.mmap(nullptr, hopper_usemem_real + 4096, PROT_READ, at(usemem, 0)).error() ==
        nvgrace::errc::invalid_argument);
  CHECK(d.mmap(nullptr, 4096, PROT_READ, at(usemem, hopper_usemem_real)).error() == nvgrace::errc::invalid_argument);
  CHECK(d.mmap(nullptr, ~std::uint64_t{0} - 4095, PROT_READ, at(usemem, 4096)).error() ==
        nvgrace::errc::value_too_large);
}

TEST_CASE("§6.1 resmem maps write-combine and the partial last page of its memory is not mappable") {
  auto d = make(shim::hopper(3 * GiB / 2 + 100));
  const std::uint64_t real = GiB + 100;
  REQUIRE(d.layout()->resmem.real_length == real);
  const auto plan = d.plan_mmap(at(resmem, 0), GiB);
  REQUIRE(plan.has_value());
  CHECK(plan->write_combine);
  CHECK(plan->length == GiB);
  CHECK_FALSE(d.plan_mmap(at(usemem, 0), 4096)->write_combine);
  CHECK(d.mmap(nullptr, real, PROT_READ, at(resmem, 0)).error() == nvgrace::errc::invalid_argument);
  const auto p = d.mmap(nullptr, GiB, PROT_READ | PROT_WRITE, at(resmem, 0));
  REQUIRE(p.has_value());
  static_cast<std::byte*>(*p)[GiB - 1] = std::byte{0x61};
  ::munmap(*p, GiB);
  std::array<std::byte, 1> b{};
  CHECK(d.pread(b, at(resmem, GiB - 1)).value() == 1);
  CHECK(b[0] == std::byte{0x61});
}

TEST_CASE("§6.1 mmap refuses config, empty BARs, unaligned offsets and length 0; plain BARs map whole") {
  auto d = make_hopper();
  CHECK(d.mmap(nullptr, 4096, PROT_READ, at(config_index, 0)).error() == nvgrace::errc::invalid_argument);
  CHECK(d.mmap(nullptr, 4096, PROT_READ, at(1, 0)).error() == nvgrace::errc::invalid_argument);
  CHECK(d.mmap(nullptr, 4096, PROT_READ, at(usemem, 100)).error() == nvgrace::errc::invalid_argument);
  CHECK(d.mmap(nullptr, 0, PROT_READ, at(usemem, 0)).error() == nvgrace::errc::invalid_argument);
  CHECK(d.mmap(nullptr, 4096, PROT_READ, at(9, 0)).error() == nvgrace::errc::invalid_argument);
  auto p = make(shim::plain(16 * MiB, 32 * MiB));
  const auto m = p.mmap(nullptr, 32 * MiB, PROT_READ | PROT_WRITE, at(usemem, 0));
  REQUIRE(m.has_value());
  ::munmap(*m, 32 * MiB);
  CHECK(p.mmap(nullptr, 4096, PROT_READ, at(usemem, 32 * MiB)).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("§6 region_source is the fd and offset of the sparse area; a second mapping sees the same bytes") {
  auto d = make_hopper();
  for (const std::uint32_t index : {resmem, usemem}) {
    CAPTURE(index);
    const auto source = d.region_source(index);
    REQUIRE(source.has_value());
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, source->fd, static_cast<off_t>(source->offset));
    REQUIRE(p != MAP_FAILED);
    static_cast<std::byte*>(p)[8] = static_cast<std::byte>(0x90 + index);
    ::munmap(p, 4096);
    std::array<std::byte, 1> b{};
    CHECK(d.pread(b, at(index, 8)).value() == 1);
    CHECK(b[0] == static_cast<std::byte>(0x90 + index));
  }
  CHECK(d.region_source(resmem)->offset == hopper_usemem_real);
  CHECK_FALSE(d.region_source(config_index).has_value());
  CHECK_FALSE(d.region_source(1).has_value());
  CHECK_FALSE(d.region_source(0).has_value());  // BAR0: its readiness registers stay in this process
  // Memory without an fd: no source, and mmap is ENODEV.
  auto a = shim::device<mem::anonymous_memory>::create(shim::hopper(hopper_length));
  REQUIRE(a.has_value());
  CHECK_FALSE(a->region_source(usemem).has_value());
  CHECK(a->mmap(nullptr, 4096, PROT_READ, at(usemem, 0)).error() == nvgrace::errc::no_such_device);
  std::array<std::byte, 8> buf{};
  CHECK(a->pread(buf, at(usemem, 0)).value() == 8);
}

// ---- §8 DMA-buf ------------------------------------------------------------------------

TEST_CASE("§8.2 DEVICE_FEATURE DMA_BUF is validated in the core's order") {
  using namespace vfio::feature_flags;
  auto d = make_hopper();
  auto req = [&](std::uint32_t flags, std::uint32_t index, std::vector<vfio::region_dma_range> ranges,
                 std::uint32_t request_flags = 0) {
    auto arg = dma_buf_request(flags, index, std::move(ranges), request_flags);
    return feature(d, arg);
  };
  const std::vector<vfio::region_dma_range> one{{0, 4096}};
  std::vector<std::byte> tiny(8);
  store_le<std::uint32_t>(tiny, 0, 7);
  store_le<std::uint32_t>(tiny, 4, get | vfio::feature_dma_buf);
  CHECK(feature(d, tiny) == -EINVAL);                                            // argsz < 8
  CHECK(req(get | vfio::feature_dma_buf | (1u << 20), usemem, one) == -EINVAL);  // unknown flag
  CHECK(req(get | set | vfio::feature_dma_buf, usemem, one) == -EINVAL);         // GET and SET
  CHECK(req(get | 1, usemem, one) == -ENOTTY);                                   // another feature
  CHECK(req(set | vfio::feature_dma_buf, usemem, one) == -EINVAL);               // SET unsupported
  CHECK(req(probe | get | vfio::feature_dma_buf, usemem, one) == 0);
  CHECK(req(probe | set | vfio::feature_dma_buf, usemem, one) == -EINVAL);
  CHECK(req(vfio::feature_dma_buf, usemem, one) == -EINVAL);  // neither GET nor SET
  auto short_arg = dma_buf_request(get | vfio::feature_dma_buf, usemem, {});
  store_le<std::uint32_t>(short_arg, 0, 8 + 15);
  CHECK(feature(d, short_arg) == -EINVAL);                    // argsz < 8 + 16
  CHECK(req(get_dma_buf, usemem, {}) == -EINVAL);             // nr_ranges 0
  CHECK(req(get_dma_buf, usemem, one, 1) == -EINVAL);         // flags ≠ 0
  CHECK(req(get_dma_buf, 6, one) == -ENODEV);                 // not a BAR
  CHECK(req(get_dma_buf, usemem, {{100, 4096}}) == -EINVAL);  // unaligned offset
  CHECK(req(get_dma_buf, usemem, {{0, 0}}) == -EINVAL);       // empty range
  CHECK(req(get_dma_buf, usemem, {{0, std::uint64_t{1} << 63}, {0, std::uint64_t{1} << 63}}) ==
        -EINVAL);                                                // total overflows
  auto lying = dma_buf_request(get_dma_buf, usemem, one, 0, 2);  // claims 2 ranges, carries 1
  CHECK(feature(d, lying) == -EFAULT);
  CHECK_FALSE(d.last_dma_buf().has_value());
}

TEST_CASE("§8.3 emulated DMA-buf ranges are physical ranges of the real memory, bounded by memlength") {
  auto d = make_hopper();
  auto arg = dma_buf_request(get_dma_buf, usemem, {{0, 4096}, {8192, 4096}});
  const long fd = feature(d, arg);
  CHECK(fd == shim::first_dma_buf_fd);
  auto rec = d.last_dma_buf();
  REQUIRE(rec.has_value());
  CHECK(rec->fd == fd);
  CHECK(rec->region_index == usemem);
  CHECK_FALSE(rec->revoked);
  REQUIRE(rec->ranges.size() == 2);
  CHECK(rec->ranges[0] == grace::phys_range{memory_base, 4096});
  CHECK(rec->ranges[1] == grace::phys_range{memory_base + 8192, 4096});

  arg = dma_buf_request(get_dma_buf, resmem, {{GiB, 4096}});  // the last page of resmem's memory
  CHECK(feature(d, arg) == shim::first_dma_buf_fd + 1);
  CHECK(d.last_dma_buf()->ranges[0] == grace::phys_range{memory_base + hopper_usemem_real + GiB, 4096});
  arg = dma_buf_request(get_dma_buf, usemem, {{hopper_usemem_real, 4096}});  // padding: inside the BAR, not memory
  CHECK(feature(d, arg) == -EINVAL);
  arg = dma_buf_request(get_dma_buf, usemem, {{~std::uint64_t{0} - 4095, 4096}});
  CHECK(feature(d, arg) == -EOVERFLOW);
  // Exported while decode is off: the buffer starts revoked.
  CHECK(config_write<std::uint16_t>(d, 0x04, 0) == 2);
  arg = dma_buf_request(get_dma_buf, usemem, {{0, 4096}});
  CHECK(feature(d, arg) == shim::first_dma_buf_fd + 2);
  CHECK(d.last_dma_buf()->revoked);
}

TEST_CASE("§8.3 other BARs use the PCI resource; a BAR without one has no provider (EINVAL)") {
  auto d = make(shim::blackwell(blackwell_length));
  auto arg = dma_buf_request(get_dma_buf, 0, {{4096, 4096}});
  CHECK(feature(d, arg) >= shim::first_dma_buf_fd);
  CHECK(d.last_dma_buf()->ranges[0] == grace::phys_range{shim::default_bar0_address + 4096, 4096});
  arg = dma_buf_request(get_dma_buf, resmem, {{0, 16 * MiB}});  // Blackwell index 2: the real BAR
  CHECK(feature(d, arg) >= shim::first_dma_buf_fd);
  CHECK(d.last_dma_buf()->ranges[0].length == 16 * MiB);
  arg = dma_buf_request(get_dma_buf, resmem, {{0, 16 * MiB + 4096}});
  CHECK(feature(d, arg) == -EINVAL);
  arg = dma_buf_request(get_dma_buf, 1, {{0, 4096}});
  CHECK(feature(d, arg) == -EINVAL);
}

// ---- §9 ioctls ---------------------------------------------------------------------------

TEST_CASE("§9 E15 IOEVENTFD is ENOTTY for every BAR in the full variant; unknown ioctls are ENOTTY") {
  auto d = make_hopper();
  for (const std::uint32_t index : {0u, resmem, usemem}) {
    vfio::device_ioeventfd request{32, 4, vfio::region_offset(index), 0, -1, 0};
    CHECK(shim::ioctl(d, vfio::ioctl::device_ioeventfd, &request) == -ENOTTY);
  }
  vfio::irq_set set{20, 0, 0, 0, 0};
  CHECK(shim::ioctl(d, vfio::ioctl::device_set_irqs, &set) == -ENOTTY);
  CHECK(shim::ioctl(d, vfio::ioctl::device_pci_hot_reset, nullptr) == -ENOTTY);
  CHECK(shim::ioctl(d, 0x1234, nullptr) == -ENOTTY);
}

TEST_CASE("§2.1 E13 plain mode: IOEVENTFD is the core's: validated, stored, removed") {
  auto d = make(shim::plain(16 * MiB, 32 * MiB));
  const int efd = ::eventfd(0, EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  auto ioeventfd = [&](std::uint32_t argsz, std::uint32_t flags, std::uint64_t offset, std::uint64_t data, int fd) {
    vfio::device_ioeventfd request{argsz, flags, offset, data, fd, 0};
    return shim::ioctl(d, vfio::ioctl::device_ioeventfd, &request);
  };
  CHECK(ioeventfd(32, 4, at(usemem, 0x100), 7, efd) == 0);
  CHECK(d.ioeventfd_count() == 1);
  CHECK(ioeventfd(32, 4, at(usemem, 0x100), 7, efd) == -EEXIST);
  CHECK(ioeventfd(32, 4, at(usemem, 0x100), 7, -1) == 0);
  CHECK(d.ioeventfd_count() == 0);
  CHECK(ioeventfd(32, 4, at(usemem, 0x100), 7, -1) == -ENODEV);
  CHECK(ioeventfd(27, 4, at(usemem, 0), 0, efd) == -EINVAL);             // argsz
  CHECK(ioeventfd(32, 3, at(usemem, 0), 0, efd) == -EINVAL);             // two sizes
  CHECK(ioeventfd(32, 0x14, at(usemem, 0), 0, efd) == -EINVAL);          // unknown flag
  CHECK(ioeventfd(32, 4, at(usemem, 0), 0, -2) == -EINVAL);              // fd < −1
  CHECK(ioeventfd(32, 8, at(usemem, 32 * MiB - 4), 0, efd) == -EINVAL);  // past the BAR
  CHECK(ioeventfd(32, 4, at(1, 0), 0, efd) == -EINVAL);                  // no BAR there
  CHECK(ioeventfd(32, 4, at(config_index, 0), 0, efd) == -EINVAL);       // not a BAR
  CHECK(ioeventfd(32, 8, at(0, 0x1000), 1, efd) == 0);
  ::close(efd);
}

// ---- plain mode and Blackwell ------------------------------------------------------------

TEST_CASE("§2.1 plain mode: BAR2 and BAR4 are ordinary 64-bit regions without padding or readiness") {
  auto d = make(shim::plain(16 * MiB, 32 * MiB));
  fake_readiness source;
  source.device = &d;
  shim::test_hooks::set_readiness_source(d, &source);
  nvgrace::errc error{};
  const auto reply = region_info(d, usemem, 64, error);
  REQUIRE(error == nvgrace::errc{});
  const auto info = vfio::load_region_info(reply);
  CHECK(info.flags == 0x7);
  CHECK(info.size == 32 * MiB);
  CHECK(info.argsz == 64);
  CHECK(info.cap_offset == 0);
  std::vector<std::byte> buf = filled(16, 0x5A);
  const auto r = kread(d, buf, at(usemem, 32 * MiB - 8));
  CHECK(r.value == 8);
  CHECK(r.pos == at(usemem, 32 * MiB));
  CHECK(std::all_of(buf.begin() + 8, buf.end(), [](std::byte b) { return b == untouched; }));
  CHECK(kread(d, buf, at(usemem, 32 * MiB)).value == -EINVAL);
  CHECK(source.polls() == 0);
  CHECK(config_write<std::uint64_t>(d, 0x18, ~std::uint64_t{0}) == 8);
  CHECK(config_read<std::uint64_t>(d, 0x18) == 0xFFFF'FFFF'FF00'000Cu);
  CHECK(d.reset().has_value());
  CHECK(config_read<std::uint64_t>(d, 0x18) == 0xFFFF'FFFF'FF00'000Cu);  // reset keeps core BARs
}

TEST_CASE("§10 E2 Blackwell: region 2 is the real BAR; region 4 is all of the memory, emulated") {
  auto d = make(shim::blackwell(blackwell_length, 16 * MiB));
  CHECK(d.kind(resmem) == shim::region_kind::memory_bar);
  CHECK(d.kind(usemem) == shim::region_kind::emulated);
  nvgrace::errc error{};
  auto info = vfio::load_region_info(region_info(d, resmem, 64, error));
  CHECK(info.flags == 0x7);
  CHECK(info.size == 16 * MiB);
  info = vfio::load_region_info(region_info(d, usemem, 32, error));
  CHECK(info.flags == 0xF);
  CHECK(info.argsz == 64);
  CHECK(info.size == blackwell_usemem_bar);
  std::vector<std::byte> buf = filled(16, 0x5A);
  CHECK(kread(d, buf, at(usemem, blackwell_length - 8)).value == 16);
  CHECK(std::all_of(buf.begin() + 8, buf.end(), [](std::byte b) { return b == ff; }));
  CHECK(kread(d, buf, at(resmem, 16 * MiB - 8)).value == 8);
  const auto m = d.mmap(nullptr, 16 * MiB, PROT_READ, at(resmem, 0));
  REQUIRE(m.has_value());
  ::munmap(*m, 16 * MiB);
}

TEST_CASE("§5 the kernel's MAX_RW_COUNT caps one transfer") {
  // usemem: 4.5 GiB of memory behind an 8 GiB BAR, so 3.5 GiB of padding.
  // A 2.5 GiB write there is dropped (no byte of the buffer is read), and
  // capped at 0x7FFFF000. The buffer is MAP_NORESERVE and never touched.
  auto d = make(shim::hopper(11 * GiB / 2));
  REQUIRE(d.layout()->usemem.real_length == 9 * GiB / 2);
  REQUIRE(d.layout()->usemem.reported_size == 8 * GiB);
  const std::size_t count = 5 * GiB / 2;
  void* p = ::mmap(nullptr, count, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(p != MAP_FAILED);
  std::uint64_t pos = at(usemem, 9 * GiB / 2);
  CHECK(d.write(p, count, &pos) == static_cast<ssize_t>(shim::max_rw_count));
  CHECK(pos == at(usemem, 9 * GiB / 2 + shim::max_rw_count));
  ::munmap(p, count);
}
