// Host-side tests of the /dev/vfio backend that need no VFIO device: owners,
// PCI addresses, sysfs group resolution (against a scratch sysfs tree), the
// errno of every open path, and the device_file members on an adopted memfd.

#include <nvgrace/backend/linux/device.hpp>
#include <nvgrace/core/bytes.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace lv = nvgrace::linux_vfio;
namespace vfio = nvgrace::vfio;
namespace fs = std::filesystem;

namespace {

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

/// A scratch directory removed at the end of the test.
struct scratch_dir {
  fs::path path;
  scratch_dir() {
    std::string pattern = (fs::temp_directory_path() / "nvgrace-linux-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~scratch_dir() { fs::remove_all(path); }
  void touch(const fs::path& file) const {
    fs::create_directories((path / file).parent_path());
    const int fd = ::open((path / file).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    ::close(fd);
  }
  void link(const fs::path& at, const std::string& target) const {
    fs::create_directories((path / at).parent_path());
    fs::create_symlink(target, path / at);
  }
};

lv::unique_fd make_memfd(std::size_t size) {
  lv::unique_fd fd(::memfd_create("nvgrace-linux-test", MFD_CLOEXEC));
  REQUIRE(fd.valid());
  REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
  return fd;
}

std::array<std::byte, 32> region_info_query(std::uint32_t argsz, std::uint32_t index) {
  std::array<std::byte, 32> buffer{};
  nvgrace::store_le<std::uint32_t>(buffer, 0, argsz);
  nvgrace::store_le<std::uint32_t>(buffer, 8, index);
  return buffer;
}

}  // namespace

// ---- owners ------------------------------------------------------------------------

TEST_CASE("[linux] unique_fd: default owns nothing, closes on destruction, moves ownership") {
  lv::unique_fd empty;
  CHECK(empty.get() == -1);
  CHECK_FALSE(empty.valid());
  CHECK_FALSE(static_cast<bool>(empty));
  CHECK(lv::unique_fd(-5).get() == -1);

  int raw = ::memfd_create("owned", MFD_CLOEXEC);
  REQUIRE(raw >= 0);
  {
    lv::unique_fd a(raw);
    CHECK(a.get() == raw);
    lv::unique_fd b(std::move(a));
    CHECK(a.get() == -1);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(b.get() == raw);
    lv::unique_fd c;
    c = std::move(b);
    CHECK(b.get() == -1);  // NOLINT(bugprone-use-after-move)
    CHECK(c.get() == raw);
    CHECK(fd_is_open(raw));
  }
  CHECK_FALSE(fd_is_open(raw));
  CHECK(errno == EBADF);
}

TEST_CASE("[linux] unique_fd: release gives up ownership; reset closes the old descriptor") {
  const int raw = ::memfd_create("released", MFD_CLOEXEC);
  REQUIRE(raw >= 0);
  int kept = -1;
  {
    lv::unique_fd a(raw);
    kept = a.release();
    CHECK(a.get() == -1);
  }
  CHECK(kept == raw);
  CHECK(fd_is_open(raw));

  const int other = ::memfd_create("other", MFD_CLOEXEC);
  REQUIRE(other >= 0);
  lv::unique_fd owner(raw);
  owner.reset(other);
  CHECK_FALSE(fd_is_open(raw));
  CHECK(owner.get() == other);
  owner.reset(other);  // resetting to the same descriptor must not close it
  CHECK(fd_is_open(other));
  lv::unique_fd assigned(::memfd_create("third", MFD_CLOEXEC));
  const int third = assigned.get();
  assigned = std::move(owner);  // the third descriptor is closed, other is kept
  CHECK_FALSE(fd_is_open(third));
  CHECK(assigned.get() == other);
  owner.reset();  // NOLINT(bugprone-use-after-move)
  assigned.reset();
  CHECK_FALSE(fd_is_open(other));
}

TEST_CASE("[linux] mapping: unmapped on destruction and on reset, moves ownership") {
  const std::size_t length = 2 * 4096;
  void* raw = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(raw != MAP_FAILED);
  {
    lv::mapping a(raw, length);
    CHECK(a.data() == static_cast<std::byte*>(raw));
    CHECK(a.size() == length);
    lv::mapping b(std::move(a));
    CHECK_FALSE(static_cast<bool>(a));  // NOLINT(bugprone-use-after-move)
    CHECK(a.size() == 0);
    CHECK(::msync(raw, length, MS_ASYNC) == 0);  // still mapped
  }
  // msync on a range that is no longer mapped fails with ENOMEM.
  CHECK(::msync(raw, length, MS_ASYNC) == -1);
  CHECK(errno == ENOMEM);

  void* other = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(other != MAP_FAILED);
  lv::mapping m(other, length);
  m.reset();
  CHECK(m.data() == nullptr);
  CHECK(::msync(other, length, MS_ASYNC) == -1);
  CHECK(lv::mapping(nullptr, 4096).size() == 0);
}

// ---- PCI addresses -------------------------------------------------------------------

TEST_CASE("[linux] parse_pci_address: the forms sysfs and lspci print") {
  const auto full = lv::parse_pci_address("0000:01:00.0");
  REQUIRE(full);
  CHECK(*full == lv::pci_address{0, 0x01, 0x00, 0});
  CHECK(lv::parse_pci_address("0009:0A:1f.7").value() == lv::pci_address{9, 0x0a, 0x1f, 7});
  CHECK(lv::parse_pci_address("3b:00.1").value() == lv::pci_address{0, 0x3b, 0, 1});
  CHECK(lv::parse_pci_address("10000:e1:00.0").value() == lv::pci_address{0x10000, 0xe1, 0, 0});  // VMD domain
  CHECK(lv::parse_pci_address("ffffffff:ff:1f.7").value() == lv::pci_address{0xffffffff, 0xff, 0x1f, 7});
}

TEST_CASE("[linux] parse_pci_address: everything else is EINVAL") {
  for (const char* bad : {"",
                          "0000:01:00",
                          "0000:01:00.",
                          "0000:01:00.8",
                          "0000:01:20.0",
                          "0000:1:00.0",
                          "0000:001:00.0",
                          "000:01:00.0",
                          "123456789:01:00.0",
                          "0000:01:00.0 ",
                          " 0000:01:00.0",
                          "0000:01:00.00",
                          "0000-01:00.0",
                          "0000:01.00.0",
                          "g000:01:00.0",
                          "0000:01:0g.0",
                          "0000::01:00.0",
                          "01:00",
                          "/dev/vfio/3",
                          "0000:01:00.0/"}) {
    CAPTURE(bad);
    const auto parsed = lv::parse_pci_address(bad);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error() == nvgrace::errc::invalid_argument);
  }
}

TEST_CASE("[linux] to_string: canonical lower-case spelling, round trip") {
  CHECK(lv::to_string(lv::pci_address{0, 1, 0, 0}).view() == "0000:01:00.0");
  CHECK(lv::to_string(lv::parse_pci_address("0009:0A:1F.7").value()).view() == "0009:0a:1f.7");
  CHECK(lv::to_string(lv::parse_pci_address("3b:00.1").value()).view() == "0000:3b:00.1");
  CHECK(lv::to_string(lv::pci_address{0x10000, 0xe1, 0, 0}).view() == "10000:e1:00.0");
  CHECK(lv::to_string(lv::pci_address{0xffffffff, 0xff, 0x1f, 7}).view() == "ffffffff:ff:1f.7");
  static_assert(lv::to_string(lv::pci_address{0, 2, 3, 4}).view() == "0000:02:03.4");
  static_assert(lv::parse_pci_address("0000:02:03.4").value() == lv::pci_address{0, 2, 3, 4});
}

TEST_CASE("[linux] path_string: ENAMETOOLONG past the capacity, EINVAL for an embedded NUL, unchanged on error") {
  lv::path_string<8> p;
  CHECK(p.append("/dev/").has_value());
  const auto too_long = p.append("vfio");
  CHECK(too_long.error() == nvgrace::errc::filename_too_long);
  CHECK(p.view() == "/dev/");
  CHECK(p.append("ab").has_value());
  CHECK(p.view() == "/dev/ab");
  CHECK(std::strlen(p.c_str()) == 7);
  CHECK(p.append("x").error() == nvgrace::errc::filename_too_long);  // 7 characters + NUL fill 8
  CHECK(lv::path_string<8>::from(std::string_view("a\0b", 3)).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("[linux] group node names: number and no-IOMMU detection") {
  CHECK(lv::group_number_of("/dev/vfio/12").value() == "12");
  CHECK(lv::group_number_of("/dev/vfio/noiommu-3").value() == "3");
  CHECK(lv::group_number_of("7").value() == "7");
  CHECK(lv::group_number_of("/dev/vfio/vfio").error() == nvgrace::errc::invalid_argument);
  CHECK(lv::group_number_of("/dev/vfio/devices/vfio0").error() == nvgrace::errc::invalid_argument);
  CHECK(lv::group_number_of("/dev/vfio/noiommu-").error() == nvgrace::errc::invalid_argument);
  CHECK(lv::group_number_of("/dev/vfio/1a").error() == nvgrace::errc::invalid_argument);
  CHECK(lv::is_noiommu_group("/dev/vfio/noiommu-0"));
  CHECK_FALSE(lv::is_noiommu_group("/dev/vfio/0"));
}

// ---- sysfs resolution (scratch tree with the kernel's layout) ----------------------------

TEST_CASE("[linux] group_node_for: sysfs iommu_group link → /dev/vfio/N, else noiommu-N, else exact errno") {
  scratch_dir root;
  const std::string sysfs = (root.path / "sys").string();
  const std::string dev = (root.path / "dev").string();
  const lv::system_paths paths{sysfs, dev};
  const auto address = lv::parse_pci_address("0000:00:02.0").value();

  SUBCASE("no such PCI device: ENOENT") {
    CHECK(lv::group_node_for(address, paths).error() == nvgrace::errc::no_such_file_or_directory);
  }
  SUBCASE("device without an IOMMU group: ENODEV") {
    fs::create_directories(root.path / "sys/bus/pci/devices/0000:00:02.0");
    CHECK(lv::group_node_for(address, paths).error() == nvgrace::errc::no_such_device);
  }
  SUBCASE("group link that does not end in a number: EBADMSG") {
    root.link("sys/bus/pci/devices/0000:00:02.0/iommu_group", "../../../kernel/iommu_groups/x1");
    CHECK(lv::group_node_for(address, paths).error() == nvgrace::errc::bad_message);
  }
  SUBCASE("group exists but neither node does (not bound to vfio-pci): ENOENT") {
    root.link("sys/bus/pci/devices/0000:00:02.0/iommu_group", "../../../kernel/iommu_groups/7");
    CHECK(lv::group_node_for(address, paths).error() == nvgrace::errc::no_such_file_or_directory);
  }
  SUBCASE("IOMMU group node") {
    root.link("sys/bus/pci/devices/0000:00:02.0/iommu_group", "../../../kernel/iommu_groups/7");
    root.touch("dev/vfio/7");
    root.touch("dev/vfio/noiommu-7");  // the real group wins
    CHECK(lv::group_node_for(address, paths).value().view() == dev + "/vfio/7");
  }
  SUBCASE("no-IOMMU group node") {
    root.link("sys/bus/pci/devices/0000:00:02.0/iommu_group", "../../../kernel/iommu_groups/7");
    root.touch("dev/vfio/noiommu-7");
    CHECK(lv::group_node_for(address, paths).value().view() == dev + "/vfio/noiommu-7");
  }
  SUBCASE("paths that do not fit: ENAMETOOLONG") {
    const std::string long_root(600, 'x');
    CHECK(lv::group_node_for(address, lv::system_paths{long_root, dev}).error() == nvgrace::errc::filename_too_long);
  }
}

TEST_CASE("[linux] sole_device_of_group: the one PCI device of a group, exact errno otherwise") {
  scratch_dir root;
  const std::string sysfs = (root.path / "sys").string();
  const lv::system_paths paths{sysfs, "/dev"};
  CHECK(lv::sole_device_of_group("/dev/vfio/5", paths).error() == nvgrace::errc::no_such_file_or_directory);
  CHECK(lv::sole_device_of_group("/dev/vfio/vfio", paths).error() == nvgrace::errc::invalid_argument);
  fs::create_directories(root.path / "sys/kernel/iommu_groups/5/devices");
  CHECK(lv::sole_device_of_group("/dev/vfio/5", paths).error() == nvgrace::errc::no_such_device);
  root.link("sys/kernel/iommu_groups/5/devices/0000:00:03.0", "../../../../devices/pci0000:00/0000:00:03.0");
  CHECK(lv::sole_device_of_group("/dev/vfio/5", paths).value() == lv::pci_address{0, 0, 3, 0});
  CHECK(lv::sole_device_of_group("/dev/vfio/noiommu-5", paths).value() == lv::pci_address{0, 0, 3, 0});
  root.link("sys/kernel/iommu_groups/5/devices/0000:00:03.1", "../../../../devices/pci0000:00/0000:00:03.1");
  CHECK(lv::sole_device_of_group("/dev/vfio/5", paths).error() == nvgrace::errc::invalid_argument);
}

// ---- opening: every path reports the errno of the step that failed ---------------------

TEST_CASE("[linux] open_group: missing group node is ENOENT, a non-VFIO file is ENOTTY") {
  const auto address = lv::pci_address{0, 1, 0, 0};
  CHECK(lv::device::open_group("/nonexistent/vfio/42", address).error() == nvgrace::errc::no_such_file_or_directory);
  // /dev/null opens but answers no VFIO ioctl: VFIO_GROUP_GET_STATUS fails with ENOTTY.
  CHECK(lv::device::open_group("/dev/null", address).error() == nvgrace::errc::inappropriate_io_control_operation);
  CHECK(lv::device::open_group(std::string(600, 'x'), address).error() == nvgrace::errc::filename_too_long);
}

TEST_CASE("[linux] open_pci: resolves the group through sysfs, then opens it") {
  scratch_dir root;
  const std::string sysfs = (root.path / "sys").string();
  const std::string dev = (root.path / "dev").string();
  const lv::system_paths paths{sysfs, dev};
  const auto address = lv::pci_address{0, 0x99, 0, 0};
  CHECK(lv::device::open_pci(address, paths).error() == nvgrace::errc::no_such_file_or_directory);
  root.link("sys/bus/pci/devices/0000:99:00.0/iommu_group", "../../../kernel/iommu_groups/3");
  root.touch("dev/vfio/3");  // a plain file: the open reaches it and fails at the first ioctl
  CHECK(lv::device::open_pci(address, paths).error() == nvgrace::errc::inappropriate_io_control_operation);
}

TEST_CASE("[linux] open_cdev: missing cdev or iommufd is ENOENT, a non-VFIO file is ENOTTY") {
  CHECK(lv::device::open_cdev("/dev/vfio/devices/vfio-nonexistent").error() ==
        nvgrace::errc::no_such_file_or_directory);
  CHECK(lv::device::open_cdev("/dev/null", "/nonexistent/iommu").error() == nvgrace::errc::no_such_file_or_directory);
  // VFIO_DEVICE_BIND_IOMMUFD on /dev/null
  CHECK(lv::device::open_cdev("/dev/null", "/dev/null").error() == nvgrace::errc::inappropriate_io_control_operation);
}

TEST_CASE("[linux] adopt: EBADF for no descriptor") {
  CHECK(lv::device::adopt(lv::unique_fd()).error() == nvgrace::errc::bad_file_descriptor);
}

// ---- the device_file members, on a memfd standing in for a device fd --------------------

TEST_CASE("[linux] §1 pread/pwrite at region file offsets: exact bytes, short counts as counts") {
  // A sparse memfd reaching into region 2 (offset 2 << 40) stands in for a device fd.
  const std::uint64_t bar2 = vfio::region_offset(2);
  auto fd = make_memfd(static_cast<std::size_t>(bar2 + 0x2000));
  auto dev = lv::device::adopt(std::move(fd));
  REQUIRE(dev);
  CHECK(dev->mode() == lv::open_mode::adopted);

  const std::array<std::byte, 4> pattern{std::byte{0xde}, std::byte{0xad}, std::byte{0xbe}, std::byte{0xef}};
  CHECK(dev->pwrite(pattern, bar2 + 0x10).value() == 4);
  std::array<std::byte, 6> back{};
  CHECK(dev->pread(back, bar2 + 0xf).value() == 6);
  CHECK(back == std::array<std::byte, 6>{std::byte{0}, std::byte{0xde}, std::byte{0xad}, std::byte{0xbe},
                                         std::byte{0xef}, std::byte{0}});
  // The file ends 2 bytes after this offset: the count says so, it is not an error.
  CHECK(dev->pread(back, bar2 + 0x2000 - 2).value() == 2);
  CHECK(dev->pread(back, bar2 + 0x2000).value() == 0);
  // Offsets beyond off_t are rejected as the kernel rejects negative ones.
  CHECK(dev->pread(back, std::uint64_t{1} << 63).error() == nvgrace::errc::invalid_argument);
  CHECK(dev->pwrite(pattern, ~std::uint64_t{0}).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("[linux] pread/pwrite keep the kernel's errno") {
  const int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(raw >= 0);
  auto dev = lv::device::adopt(lv::unique_fd(raw));
  REQUIRE(dev);
  const std::array<std::byte, 4> data{};
  CHECK(dev->pwrite(data, 0).error() == nvgrace::errc::bad_file_descriptor);  // opened read-only
  auto pipe_fds = std::array<int, 2>{};
  REQUIRE(::pipe2(pipe_fds.data(), O_CLOEXEC) == 0);
  lv::unique_fd write_end(pipe_fds[1]);
  auto pipe_dev = lv::device::adopt(lv::unique_fd(pipe_fds[0]));
  std::array<std::byte, 4> buffer{};
  CHECK(pipe_dev->pread(buffer, 0).error() == nvgrace::errc::invalid_seek);  // ESPIPE
}

TEST_CASE("[linux] §4.2 ioctls on a non-VFIO fd give ENOTTY; a buffer smaller than its argsz is EFAULT") {
  auto dev = lv::device::adopt(make_memfd(4096));
  REQUIRE(dev);
  CHECK(dev->get_device_info().error() == nvgrace::errc::inappropriate_io_control_operation);
  vfio::irq_info irq{sizeof(vfio::irq_info), 0, 0, 0};
  CHECK(dev->get_irq_info(irq).error() == nvgrace::errc::inappropriate_io_control_operation);
  CHECK(dev->reset().error() == nvgrace::errc::inappropriate_io_control_operation);

  auto query = region_info_query(32, 2);
  CHECK(dev->get_region_info(query).error() == nvgrace::errc::inappropriate_io_control_operation);
  // These never reach the kernel (which would answer ENOTTY here): the kernel
  // would read 32 bytes, or write argsz bytes, past the caller's buffer.
  CHECK(dev->get_region_info(std::span<std::byte>(query).first(31)).error() == nvgrace::errc::bad_address);
  auto oversized = region_info_query(64, 2);
  CHECK(dev->get_region_info(oversized).error() == nvgrace::errc::bad_address);
}

TEST_CASE("[linux] mmap: MAP_SHARED at the file offset, MAP_FIXED at a given address, errno kept") {
  const std::uint64_t page = 4096;
  auto fd = make_memfd(4 * page);
  const int raw = fd.get();
  auto dev = lv::device::adopt(std::move(fd));
  REQUIRE(dev);
  REQUIRE(::pwrite(raw, "page-two", 8, static_cast<off_t>(2 * page)) == 8);

  const auto p = dev->mmap(nullptr, page, PROT_READ | PROT_WRITE, 2 * page);
  REQUIRE(p);
  lv::mapping owned(*p, page);
  CHECK(std::memcmp(owned.data(), "page-two", 8) == 0);
  std::memcpy(owned.data() + 8, "+shared", 7);  // MAP_SHARED: visible through the fd
  std::array<char, 15> back{};
  REQUIRE(::pread(raw, back.data(), back.size(), static_cast<off_t>(2 * page)) == 15);
  CHECK(std::string(back.data(), back.size()) == "page-two+shared");

  // MAP_FIXED: replace the second page of a reserved range, exactly there.
  void* reserve = ::mmap(nullptr, 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(reserve != MAP_FAILED);
  lv::mapping reserved(reserve, 2 * page);
  void* want = static_cast<std::byte*>(reserve) + page;
  const auto fixed = dev->mmap(want, page, PROT_READ, 2 * page);
  REQUIRE(fixed);
  CHECK(*fixed == want);
  CHECK(std::memcmp(want, "page-two+shared", 15) == 0);

  CHECK(dev->mmap(nullptr, page, PROT_READ, 1).error() == nvgrace::errc::invalid_argument);  // unaligned offset
  CHECK(dev->mmap(nullptr, 0, PROT_READ, 0).error() == nvgrace::errc::invalid_argument);     // zero length
  CHECK(dev->mmap(nullptr, page, PROT_READ, std::uint64_t{1} << 63).error() == nvgrace::errc::invalid_argument);
}

TEST_CASE("[linux] device is move-only and closes its descriptor once") {
  static_assert(!std::is_copy_constructible_v<lv::device>);
  static_assert(std::is_nothrow_move_constructible_v<lv::device>);
  auto fd = make_memfd(4096);
  const int raw = fd.get();
  {
    auto dev = lv::device::adopt(std::move(fd));
    REQUIRE(dev);
    lv::device moved = std::move(*dev);
    CHECK(moved.fd() == raw);
    CHECK(dev->fd() == -1);
    CHECK(fd_is_open(raw));
  }
  CHECK_FALSE(fd_is_open(raw));
}
