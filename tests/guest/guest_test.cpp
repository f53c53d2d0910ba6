// Runs inside the QEMU guest of tests/guest/run.sh, against the real Linux
// VFIO stack (vfio, vfio_iommu_type1, vfio-pci; Debian 6.1): an ivshmem-plain
// device (1af4:1110, BAR2 = a host file) and a virtio-rng-pci device
// (1af4:1005, whose MSI-X BAR carries a region capability), both bound to
// vfio-pci. Every expected value below is what that kernel returns
// (see tests/guest/README.md and docs/probe.md).
//
// The host seeds BAR2 before boot and checks after power-off what this
// program wrote (layout in tests/guest/layout.hpp).

#include "conformance.hpp"
#include "layout.hpp"

#include <nvgrace/access/accessor.hpp>
#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/pci/config.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace lv = nvgrace::linux_vfio;
namespace vfio = nvgrace::vfio;
namespace pci = nvgrace::pci;
namespace layout = nvgrace::guest_layout;
namespace nva = nvgrace::access;
using nvgrace::load_le;
using nvgrace::store_le;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

/// The device of VFIO_DEVICES ("BDF=GROUP" words) whose sysfs ids match.
std::string find_device(std::string_view vendor_device) {
  const std::string list = env("VFIO_DEVICES");
  std::size_t at = 0;
  while (at < list.size()) {
    const std::size_t end = std::min(list.find(' ', at), list.size());
    const std::string word = list.substr(at, end - at);
    at = end + 1;
    const std::string bdf = word.substr(0, word.find('='));
    std::ifstream v("/sys/bus/pci/devices/" + bdf + "/vendor"), d("/sys/bus/pci/devices/" + bdf + "/device");
    std::string vendor, device;
    v >> vendor;
    d >> device;
    if (vendor.size() == 6 && device.size() == 6 && vendor.substr(2) + ":" + device.substr(2) == vendor_device)
      return bdf;
  }
  return {};
}

lv::pci_address ivshmem_address() {
  const auto a = lv::parse_pci_address(env("VFIO_BDF"));
  REQUIRE_MESSAGE(a, "VFIO_BDF is not set: run this through tests/guest/run.sh");
  return *a;
}

lv::device open_ivshmem() {
  auto dev = lv::device::open_pci(ivshmem_address());
  REQUIRE_MESSAGE(dev, "open_pci: ", nvgrace::errno_name(dev.error()));
  return std::move(*dev);
}

std::uint64_t shm_size() { return std::strtoull(env("VFIO_SHM_SIZE").c_str(), nullptr, 10); }

/// Region info with the 32-byte struct only.
vfio::region_info region_info(lv::device& dev, std::uint32_t index) {
  std::array<std::byte, vfio::region_info_size> buffer{};
  vfio::store_region_info(buffer, vfio::region_info{vfio::region_info_size, 0, index, 0, 0, 0});
  REQUIRE(dev.get_region_info(buffer));
  return vfio::load_region_info(buffer);
}

template <std::unsigned_integral T>
T config_read(lv::device& dev, std::uint16_t reg) {
  std::array<std::byte, sizeof(T)> b{};
  REQUIRE(dev.pread(b, vfio::file_offset(7, reg)).value() == sizeof(T));
  return load_le<T>(b);
}

template <std::unsigned_integral T>
void config_write(lv::device& dev, std::uint16_t reg, T value) {
  std::array<std::byte, sizeof(T)> b{};
  store_le<T>(b, 0, value);
  REQUIRE(dev.pwrite(b, vfio::file_offset(7, reg)).value() == sizeof(T));
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace

// First, so that the patterns the later cases write (and the host checks)
// are not overwritten by the suite's own writes to BAR2.
TEST_CASE("[guest] conformance suite: the /dev/vfio backend on ivshmem-plain") {
  nvgrace::conformance::run_conformance([] { return lv::device::open_pci(ivshmem_address()); },
                                        nvgrace::conformance::ivshmem_expectations(shm_size()));
}

TEST_CASE("[guest] open by PCI address: group node from sysfs, container, IOMMU type; a second open is EBUSY") {
  auto dev = open_ivshmem();
  CHECK(dev.mode() == lv::open_mode::group);
  CHECK(dev.fd() >= 0);
  CHECK(dev.address() == ivshmem_address());
  const auto expected_type = env("VFIO_MODE") == "noiommu" ? vfio::iommu_type::noiommu : vfio::iommu_type::type1v2;
  CHECK(dev.iommu_type() == expected_type);
  CHECK(lv::group_node_for(ivshmem_address()).value().view() == env("VFIO_GROUP"));
  // A group node opens once at a time.
  CHECK(lv::device::open_group(env("VFIO_GROUP"), ivshmem_address()).error() == nvgrace::errc::device_or_resource_busy);
}

TEST_CASE("[guest] open_group: a device that is not in the group is the kernel's error") {
  // VFIO_GROUP_GET_DEVICE_FD for a name the group does not hold: ENODEV.
  CHECK(lv::device::open_group(env("VFIO_GROUP"), lv::pci_address{0, 0, 0x1f, 7}).error() ==
        nvgrace::errc::no_such_device);
  // The 6.1 guest has no device cdevs (Linux 6.6+).
  CHECK(lv::device::open_cdev("/dev/vfio/devices/vfio0").error() == nvgrace::errc::no_such_file_or_directory);
}

TEST_CASE("[guest] device info: ivshmem is PCI, no reset, 9 regions, 5 irqs") {
  auto dev = open_ivshmem();
  const auto info = dev.get_device_info();
  REQUIRE(info);
  CHECK(info->argsz == 20);
  CHECK(info->flags == vfio::device_flags::pci);
  CHECK(info->num_regions == 9);
  CHECK(info->num_irqs == 5);
  CHECK(info->cap_offset == 0);
  // No FLR/PM reset on ivshmem: VFIO_DEVICE_RESET is EINVAL.
  CHECK(dev.reset().error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("[guest] §4.1 region info: exact replies for every ivshmem region") {
  auto dev = open_ivshmem();
  struct expected {
    std::uint64_t size;
    std::uint32_t flags;
  };
  const std::array<expected, 8> table{
      {{0x100, 0x7}, {0, 0}, {shm_size(), 0x7}, {0, 0}, {0, 0}, {0, 0}, {0, 0}, {0x100, 0x3}}};
  for (std::uint32_t index = 0; index < table.size(); ++index) {
    CAPTURE(index);
    std::array<std::byte, vfio::region_info_size> reply{};
    vfio::store_region_info(reply, vfio::region_info{vfio::region_info_size, 0, index, 0, 0, 0});
    REQUIRE(dev.get_region_info(reply));
    std::array<std::byte, vfio::region_info_size> expected_bytes{};
    vfio::store_region_info(expected_bytes, vfio::region_info{32, table[index].flags, index, 0, table[index].size,
                                                              vfio::region_offset(index)});
    CHECK(reply == expected_bytes);
  }
  // VGA: not a VGA device.
  std::array<std::byte, vfio::region_info_size> vga{};
  vfio::store_region_info(vga, vfio::region_info{vfio::region_info_size, 0, 8, 0, 0, 0});
  CHECK(dev.get_region_info(vga).error() == nvgrace::errc::invalid_argument);
  // §4.2: argsz below 32 is EINVAL from the kernel.
  std::array<std::byte, vfio::region_info_size> small{};
  vfio::store_region_info(small, vfio::region_info{31, 0, 2, 0, 0, 0});
  CHECK(dev.get_region_info(small).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("[guest] §4.2 argsz retry: virtio-rng's MSI-X BAR asks for 40 bytes, then carries cap id 3") {
  const auto bdf = find_device("1af4:1005");
  REQUIRE_MESSAGE(!bdf.empty(), "no virtio-rng-pci device bound to vfio-pci");
  auto dev = lv::device::open_pci(lv::parse_pci_address(bdf).value());
  REQUIRE(dev);

  // 32 bytes: success, argsz raised to 40, CAPS set, no chain.
  std::array<std::byte, 64> buffer{};
  vfio::store_region_info(buffer, vfio::region_info{32, 0, 1, 0, 0, 0});
  REQUIRE(dev->get_region_info(std::span(buffer).first(32)));
  auto info = vfio::load_region_info(buffer);
  CHECK(info.argsz == 40);
  CHECK(info.flags == 0xF);
  CHECK(info.cap_offset == 0);
  CHECK(info.size == 0x1000);
  CHECK(info.offset == vfio::region_offset(1));
  CHECK(vfio::decode_region_caps(std::span(buffer).first(32)).error() == nvgrace::errc::no_buffer_space);

  // 39 bytes still is not enough.
  buffer.fill(std::byte{0});
  vfio::store_region_info(buffer, vfio::region_info{39, 0, 1, 0, 0, 0});
  REQUIRE(dev->get_region_info(std::span(buffer).first(39)));
  CHECK(vfio::load_region_info(buffer).argsz == 40);
  CHECK(vfio::load_region_info(buffer).cap_offset == 0);

  // 40 bytes: the chain at 32, MSIX_MAPPABLE version 1, next 0.
  buffer.fill(std::byte{0xAA});
  vfio::store_region_info(buffer, vfio::region_info{40, 0, 1, 0, 0, 0});
  REQUIRE(dev->get_region_info(std::span(buffer).first(40)));
  info = vfio::load_region_info(buffer);
  CHECK(info.argsz == 40);
  CHECK(info.cap_offset == 32);
  CHECK(load_le<std::uint16_t>(buffer, 32) == vfio::cap_id::msix_mappable);
  CHECK(load_le<std::uint16_t>(buffer, 34) == 1);
  CHECK(load_le<std::uint32_t>(buffer, 36) == 0);
  CHECK(buffer[40] == std::byte{0xAA});  // nothing written past the reply
  const auto caps = vfio::decode_region_caps(std::span(buffer).first(40));
  REQUIRE(caps);
  CHECK(caps->msix_mappable);
  CHECK_FALSE(caps->sparse_mmap);

  // A bigger argsz is left as the caller wrote it.
  vfio::store_region_info(buffer, vfio::region_info{64, 0, 1, 0, 0, 0});
  REQUIRE(dev->get_region_info(buffer));
  CHECK(vfio::load_region_info(buffer).argsz == 64);
  CHECK(vfio::load_region_info(buffer).cap_offset == 32);
}

TEST_CASE("[guest] irq info: ivshmem has no INTx pin, MSI/MSI-X unsized, ERR absent, REQ one") {
  auto dev = open_ivshmem();
  const auto irq = [&](std::uint32_t index) {
    vfio::irq_info info{sizeof(vfio::irq_info), 0, index, 0};
    const auto s = dev.get_irq_info(info);
    return std::pair{s, info};
  };
  CHECK(irq(0).second.flags == 0x7);
  CHECK(irq(0).second.count == 0);
  CHECK(irq(1).second.flags == 0x9);
  CHECK(irq(2).second.flags == 0x9);
  CHECK(irq(3).first.error() == nvgrace::errc::invalid_argument);
  CHECK(irq(4).second.count == 1);
  CHECK(irq(4).second.flags == 0x9);
  vfio::irq_info bad{8, 0, 0, 0};  // argsz below the struct
  CHECK(dev.get_irq_info(bad).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("[guest] BAR2: the host's seed reads back through pread and mmap") {
  auto dev = open_ivshmem();
  const std::uint64_t bar2 = region_info(dev, 2).offset;
  std::array<std::byte, layout::seed_size> seen{};
  REQUIRE(dev.pread(seen, bar2 + layout::seed_offset).value() == seen.size());
  CHECK(std::memcmp(seen.data(), layout::seed_text.data(), layout::seed_text.size()) == 0);
  for (std::size_t i = layout::seed_text.size(); i < seen.size(); ++i) {
    CAPTURE(i);
    REQUIRE(seen[i] == layout::seed_byte(i));
  }
  const auto p = dev.mmap(nullptr, shm_size(), PROT_READ, bar2);
  REQUIRE(p);
  lv::mapping map(*p, shm_size());
  CHECK(std::memcmp(map.data() + layout::seed_offset, seen.data(), seen.size()) == 0);
}

TEST_CASE("[guest] BAR2: writes through mmap and pwrite, each seen by the other path") {
  auto dev = open_ivshmem();
  const std::uint64_t bar2 = region_info(dev, 2).offset;
  const std::uint64_t size = shm_size();
  const auto p = dev.mmap(nullptr, size, PROT_READ | PROT_WRITE, bar2);
  REQUIRE(p);
  lv::mapping map(*p, size);
  auto* bytes = map.data();

  std::memcpy(bytes + layout::mmap_text_offset, layout::mmap_text.data(), layout::mmap_text.size());
  auto* words = reinterpret_cast<volatile std::uint32_t*>(bytes + layout::words_offset);
  for (std::uint32_t i = 0; i < layout::word_count; ++i) words[i] = layout::word(i);
  std::memcpy(bytes + size - layout::end_text.size(), layout::end_text.data(), layout::end_text.size());

  // mmap → pread
  std::array<std::byte, layout::mmap_text.size()> text{};
  REQUIRE(dev.pread(text, bar2 + layout::mmap_text_offset).value() == text.size());
  CHECK(std::memcmp(text.data(), layout::mmap_text.data(), text.size()) == 0);
  std::vector<std::byte> word_bytes(layout::word_count * 4);
  REQUIRE(dev.pread(word_bytes, bar2 + layout::words_offset).value() == word_bytes.size());
  for (std::uint32_t i = 0; i < layout::word_count; ++i) {
    CAPTURE(i);
    REQUIRE(load_le<std::uint32_t>(word_bytes, 4 * i) == layout::word(i));
  }

  // pwrite → mmap
  REQUIRE(dev.pwrite(bytes_of(layout::pwrite_text), bar2 + layout::pwrite_text_offset).value() ==
          layout::pwrite_text.size());
  CHECK(std::memcmp(bytes + layout::pwrite_text_offset, layout::pwrite_text.data(), layout::pwrite_text.size()) == 0);
  std::vector<std::byte> block(layout::block_size);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = layout::block_byte(i);
  REQUIRE(dev.pwrite(block, bar2 + layout::block_offset).value() == block.size());
  CHECK(std::memcmp(bytes + layout::block_offset, block.data(), block.size()) == 0);

  // Unaligned, odd-sized transfers go through the kernel's 8/4/2/1 chunking intact.
  const std::array<std::byte, 3> odd{std::byte{0x11}, std::byte{0x22}, std::byte{0x33}};
  REQUIRE(dev.pwrite(odd, bar2 + layout::odd_offset).value() == 3);
  std::array<std::byte, 5> around{};
  REQUIRE(dev.pread(around, bar2 + layout::odd_offset - 1).value() == 5);
  CHECK(around ==
        std::array<std::byte, 5>{std::byte{0}, std::byte{0x11}, std::byte{0x22}, std::byte{0x33}, std::byte{0}});
}

TEST_CASE("[guest] region ends: short count at the BAR end, EINVAL past it, mmap bounded by the region") {
  auto dev = open_ivshmem();
  const auto bar0 = region_info(dev, 0);
  std::array<std::byte, 8> buffer{};
  // vfio-pci clips a BAR access at the BAR end and reports the shorter count.
  CHECK(dev.pread(buffer, bar0.offset + bar0.size - 4).value() == 4);
  CHECK(dev.pread(buffer, bar0.offset + bar0.size).error() == nvgrace::errc::invalid_argument);
  const std::uint64_t bar2 = region_info(dev, 2).offset;
  CHECK(dev.mmap(nullptr, shm_size() + 4096, PROT_READ, bar2).error() == nvgrace::errc::invalid_argument);
  CHECK(dev.mmap(nullptr, 4096, PROT_READ, bar2 + shm_size()).error() == nvgrace::errc::invalid_argument);
  // Config space has no MMAP flag.
  CHECK(dev.mmap(nullptr, 4096, PROT_READ, vfio::region_offset(7)).error() == nvgrace::errc::invalid_argument);
  // MAP_FIXED lands exactly where asked.
  void* reserve = ::mmap(nullptr, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(reserve != MAP_FAILED);
  lv::mapping reserved(reserve, 2 * 4096);
  void* want = static_cast<std::byte*>(reserve) + 4096;
  const auto fixed = dev.mmap(want, 4096, PROT_READ, bar2 + layout::seed_offset);
  REQUIRE(fixed);
  CHECK(*fixed == want);
  CHECK(std::memcmp(want, layout::seed_text.data(), layout::seed_text.size()) == 0);
}

TEST_CASE("[guest] config space: ids, and EIO on BAR2 while memory decode is off") {
  auto dev = open_ivshmem();
  CHECK(config_read<std::uint16_t>(dev, pci::reg::vendor_id) == 0x1af4);
  CHECK(config_read<std::uint16_t>(dev, pci::reg::device_id) == 0x1110);
  const auto command = config_read<std::uint16_t>(dev, pci::reg::command);
  CHECK((command & pci::command_bits::memory) != 0);
  const std::uint64_t bar2 = region_info(dev, 2).offset;

  config_write<std::uint16_t>(dev, pci::reg::command, static_cast<std::uint16_t>(command & ~pci::command_bits::memory));
  CHECK(config_read<std::uint16_t>(dev, pci::reg::command) == (command & ~pci::command_bits::memory));
  std::array<std::byte, 4> buffer{};
  CHECK(dev.pread(buffer, bar2).error() == nvgrace::errc::io_error);
  CHECK(dev.pwrite(buffer, bar2).error() == nvgrace::errc::io_error);
  config_write<std::uint16_t>(dev, pci::reg::command, command);
  CHECK(dev.pread(buffer, bar2 + layout::seed_offset).value() == 4);
  CHECK(std::memcmp(buffer.data(), layout::seed_text.data(), 4) == 0);
}

// ---- the accessor, unchanged, over the /dev/vfio device file --------------------------------

TEST_CASE("[guest] accessor: regions discovered with the argsz retry, VGA absent, BAR2 mapped") {
  auto dev = open_ivshmem();
  auto acc = nva::accessor<lv::device>::open(dev);
  REQUIRE_MESSAGE(acc, "accessor::open: ", nvgrace::errno_name(acc.error()));
  CHECK(acc->region_count() == 9);
  CHECK(!acc->find_region(8).has_value());  // VGA answered EINVAL: absent, not an error
  const auto bar0 = acc->find_region(0);
  REQUIRE(bar0.has_value());
  CHECK(bar0->size() == 0x100);
  CHECK(bar0->mappings().empty());  // less than a page: pread/pwrite only
  const auto bar2 = acc->find_region(2);
  REQUIRE(bar2.has_value());
  CHECK(bar2->size() == shm_size());
  CHECK_FALSE(bar2->has_sparse_mmap);
  REQUIRE(bar2->mappings().size() == 1);
  CHECK(bar2->mappings()[0].offset == 0);
  CHECK(bar2->mappings()[0].length == shm_size());
  CHECK(bar2->caching == nvgrace::mem::caching::cached);
  const auto config = acc->find_region(7);
  REQUIRE(config.has_value());
  CHECK(config->flags() == 0x3);
  CHECK(config->mappings().empty());

  // The virtio-rng MSI-X BAR: the accessor asks again with argsz 40 and decodes cap id 3.
  const auto bdf = find_device("1af4:1005");
  REQUIRE(!bdf.empty());
  auto rng = lv::device::open_pci(lv::parse_pci_address(bdf).value());
  REQUIRE(rng);
  std::array<std::byte, nva::max_region_info_size> buffer{};
  CHECK(nva::query_region_info(*rng, 1, buffer).value() == 40);
  auto rng_acc = nva::accessor<lv::device>::open(*rng, nva::map_none);
  REQUIRE(rng_acc);
  const auto msix = rng_acc->find_region(1);
  REQUIRE(msix.has_value());
  CHECK(msix->msix_mappable);
  CHECK(msix->flags() == 0xF);
}

TEST_CASE("[guest] accessor: reads and writes through the BAR2 mapping and through pread/pwrite agree") {
  auto dev = open_ivshmem();
  auto mapped = nva::accessor<lv::device>::open(dev);
  REQUIRE(mapped);
  // A second accessor over the same device file, without mappings: every access is a pread/pwrite.
  auto direct = nva::accessor<lv::device>::open(dev, nva::map_none);
  REQUIRE(direct);
  REQUIRE(direct->find_region(2)->mappings().empty());

  // mapped write → direct (pread) read
  REQUIRE(mapped->write(2, layout::accessor_map_offset, bytes_of(layout::accessor_map_text)).value() ==
          layout::accessor_map_text.size());
  std::array<std::byte, layout::accessor_map_text.size()> back{};
  REQUIRE(direct->read(2, layout::accessor_map_offset, back).value() == back.size());
  CHECK(std::memcmp(back.data(), layout::accessor_map_text.data(), back.size()) == 0);
  // direct (pwrite) write → mapped read
  REQUIRE(direct->write(2, layout::accessor_file_offset, bytes_of(layout::accessor_file_text)).value() ==
          layout::accessor_file_text.size());
  std::array<std::byte, layout::accessor_file_text.size()> back2{};
  REQUIRE(mapped->read(2, layout::accessor_file_offset, back2).value() == back2.size());
  CHECK(std::memcmp(back2.data(), layout::accessor_file_text.data(), back2.size()) == 0);
  // BAR0 (not mapped) goes to the device: ivshmem's IVPosition register reads 0 without a server.
  std::array<std::byte, 4> ivposition{};
  CHECK(mapped->read(0, 8, ivposition).value() == 4);
  // Past the BAR end the kernel clips: the short count comes back as it is.
  std::array<std::byte, 8> tail{};
  CHECK(mapped->read(0, 0xFC, tail).value() == 4);
  CHECK(mapped->read(9, 0, tail).error() == nvgrace::errc::invalid_argument);  // no such index
}

TEST_CASE("[guest] accessor: BAR sizing through config space with decode off, everything restored") {
  auto dev = open_ivshmem();
  auto acc = nva::accessor<lv::device>::open(dev, nva::map_none);
  REQUIRE(acc);
  const auto command = acc->config_read<std::uint16_t>(pci::reg::command).value();
  std::array<std::uint32_t, 6> before{};
  for (unsigned n = 0; n < 6; ++n) before[n] = acc->config_read<std::uint32_t>(pci::reg::base_address(n)).value();

  const auto bars = acc->size_bars();
  REQUIRE(bars);
  const auto& b = *bars;
  CHECK(b[0] == nva::bar_info{0, true, false, false, false, false, 0x100});
  CHECK(b[1] == nva::bar_info{1, false, false, false, false, false, 0});
  CHECK(b[2] == nva::bar_info{2, true, false, false, true, true, shm_size()});
  CHECK(b[3].upper_half);
  CHECK(b[4] == nva::bar_info{4, false, false, false, false, false, 0});
  CHECK(b[5] == nva::bar_info{5, false, false, false, false, false, 0});

  CHECK(acc->config_read<std::uint16_t>(pci::reg::command).value() == command);
  for (unsigned n = 0; n < 6; ++n) {
    CAPTURE(n);
    CHECK(acc->config_read<std::uint32_t>(pci::reg::base_address(n)).value() == before[n]);
  }
  CHECK(acc->size_bar(2).value() == b[2]);
}

TEST_CASE("[guest] accessor: EIO from the device while memory decode is off, data back after") {
  auto dev = open_ivshmem();
  auto acc = nva::accessor<lv::device>::open(dev, nva::map_none);
  REQUIRE(acc);
  const auto command = acc->config_read<std::uint16_t>(pci::reg::command).value();
  REQUIRE(acc->config_write<std::uint16_t>(pci::reg::command,
                                           static_cast<std::uint16_t>(command & ~pci::command_bits::memory))
              .value() == 2);
  std::array<std::byte, 8> buffer{};
  CHECK(acc->read(2, layout::seed_offset, buffer).error() == nvgrace::errc::io_error);
  CHECK(acc->write(2, layout::seed_offset, buffer).error() == nvgrace::errc::io_error);
  CHECK(acc->read(0, 0, buffer).error() == nvgrace::errc::io_error);
  // Config space stays reachable.
  CHECK(acc->config_read<std::uint16_t>(pci::reg::vendor_id).value() == 0x1af4);
  REQUIRE(acc->config_write<std::uint16_t>(pci::reg::command, command).value() == 2);
  REQUIRE(acc->read(2, layout::seed_offset, buffer).value() == 8);
  CHECK(std::memcmp(buffer.data(), layout::seed_text.data(), 8) == 0);
}
