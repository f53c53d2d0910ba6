// The memory types behind emulated BARs: anonymous, memfd/file and span memory
// (§6.1: the memory a BAR maps; §5: the memory the copy path reads).
#include <nvgrace/mem/memory.hpp>
#include <nvgrace/posix/mapping.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace {

using namespace nvgrace::mem;

static_assert(device_memory<anonymous_memory> && !mappable_memory<anonymous_memory>);
static_assert(mappable_memory<memfd_memory>);
static_assert(device_memory<span_memory> && !mappable_memory<span_memory>);
static_assert(!std::is_copy_constructible_v<anonymous_memory> &&
              std::is_nothrow_move_constructible_v<anonymous_memory>);
static_assert(!std::is_copy_constructible_v<memfd_memory> && std::is_nothrow_move_constructible_v<memfd_memory>);
static_assert(!std::is_copy_assignable_v<memfd_memory> && std::is_nothrow_move_assignable_v<memfd_memory>);

constexpr std::uint64_t absurd = std::uint64_t{1} << 62;  // beyond any address space
const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

std::vector<std::byte> read_all(memory_view view, std::uint64_t offset, std::size_t count) {
  std::vector<std::byte> out(count);
  CHECK(read_window(view, offset, out) == count);
  return out;
}

std::vector<std::byte> ramp(std::size_t count, unsigned start) {
  std::vector<std::byte> out(count);
  for (std::size_t i = 0; i < count; ++i) out[i] = static_cast<std::byte>(start + i);
  return out;
}

/// A private temporary directory, removed with its files.
struct temp_dir {
  std::string path;
  temp_dir() {
    std::string templ = "/tmp/nvgrace-mem-test-XXXXXX";
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  ~temp_dir() {
    ::unlink((path + "/mem").c_str());
    ::rmdir(path.c_str());
  }
};

std::uint64_t file_size(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_size);
}

}  // namespace

TEST_CASE("§6.1 anonymous_memory: exact length, page-aligned zeroed mapping, copy path round trip") {
  for (const caching mode : {caching::cached, caching::uncached}) {
    auto made = anonymous_memory::create(100, mode);
    REQUIRE(made);
    anonymous_memory mem = std::move(made).value();
    CHECK(mem.length() == 100);
    CHECK_FALSE(mem.empty());
    const memory_view view = mem.view();
    CHECK(view.length == 100);
    CHECK(view.caching == mode);
    CHECK(reinterpret_cast<std::uintptr_t>(view.base) % page == 0);
    CHECK(read_all(view, 0, 100) == std::vector<std::byte>(100, std::byte{0}));
    const auto data = ramp(30, 1);
    CHECK(write_window(view, 90, data) == 30);  // 10 land, 20 dropped
    auto expected = std::vector<std::byte>(10, std::byte{0});
    expected.insert(expected.end(), data.begin(), data.begin() + 10);
    expected.resize(30, std::byte{0xFF});
    CHECK(read_all(view, 80, 30) == expected);

    anonymous_memory moved = std::move(mem);
    CHECK(mem.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(mem.view().base == nullptr);
    CHECK(moved.view().base == view.base);
    moved = anonymous_memory{};
    CHECK(moved.empty());
  }
}

TEST_CASE("§6.1 anonymous_memory factory errors are errnos, never crashes") {
  CHECK(anonymous_memory::create(0).error() == nvgrace::errc::invalid_argument);
  CHECK(anonymous_memory::create(std::numeric_limits<std::uint64_t>::max()).error() == nvgrace::errc::value_too_large);
  CHECK(anonymous_memory::create(std::uint64_t{1} << 63).error() == nvgrace::errc::value_too_large);
  CHECK(anonymous_memory::create(absurd).error() == nvgrace::errc::not_enough_memory);
  CHECK(anonymous_memory{}.empty());
  CHECK(anonymous_memory{}.view().base == nullptr);
}

TEST_CASE("§6.1 posix::mapping::map owns what mmap gave; a bad request is an errno and owns nothing") {
  CHECK(nvgrace::posix::page_size() == page);
  const int anonymous = MAP_SHARED | MAP_ANONYMOUS;
  auto made = nvgrace::posix::mapping::map(2 * page, PROT_READ | PROT_WRITE, anonymous, -1, 0);
  REQUIRE(made);
  nvgrace::posix::mapping m = std::move(made).value();
  REQUIRE(m.data() != nullptr);
  CHECK(m.size() == 2 * page);
  m.data()[2 * page - 1] = std::byte{0x42};
  void* const base = m.data();
  m.reset();
  CHECK(m.data() == nullptr);
  CHECK(m.size() == 0);
  CHECK(::msync(base, 2 * page, MS_ASYNC) == -1);  // unmapped
  CHECK(errno == ENOMEM);

  const auto beyond_off_t = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) + 1;
  CHECK(nvgrace::posix::mapping::map(page, PROT_READ, MAP_SHARED, 0, beyond_off_t).error() ==
        nvgrace::errc::value_too_large);
  CHECK(nvgrace::posix::mapping::map(0, PROT_READ, anonymous, -1, 0).error() == nvgrace::errc::invalid_argument);
  CHECK(nvgrace::posix::mapping::map(page, PROT_READ, MAP_SHARED, -1, 0).error() == nvgrace::errc::bad_file_descriptor);
}

TEST_CASE("§6.1 memfd_memory can be mapped again via its fd at its offset and sees the same bytes") {
  auto made = memfd_memory::create(3 * page + 5, caching::cached, "nvgrace-test");
  REQUIRE(made);
  memfd_memory mem = std::move(made).value();
  const map_source source = mem.source();
  REQUIRE(source.fd >= 0);
  CHECK(source.offset == 0);
  CHECK(mem.length() == 3 * page + 5);
  CHECK(::fcntl(source.fd, F_GETFD) == FD_CLOEXEC);
  struct stat st {};
  REQUIRE(::fstat(source.fd, &st) == 0);
  CHECK(static_cast<std::uint64_t>(st.st_size) == 3 * page + 5);  // the file is exactly the memory

  const auto data = ramp(200, 7);
  CHECK(write_window(mem.view(), 3 * page - 100, data) == 200);

  void* again =
      ::mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, source.fd, static_cast<off_t>(source.offset));
  REQUIRE(again != MAP_FAILED);
  auto* bytes = static_cast<std::byte*>(again);
  CHECK(std::vector(bytes + 3 * page - 100, bytes + 3 * page + 5) == std::vector(data.begin(), data.begin() + 105));
  bytes[0] = std::byte{0x5A};  // and the other way round
  CHECK(mem.view().base[0] == std::byte{0x5A});
  ::munmap(again, 4 * page);

  const int fd = source.fd;
  { memfd_memory gone = std::move(mem); }
  CHECK_FALSE(fd_is_open(fd));  // the destructor closed it
}

TEST_CASE("§6.1 memfd_memory is passable to another process: a child maps the fd and writes, the parent sees it") {
  auto made = memfd_memory::create(page, caching::uncached);
  REQUIRE(made);
  const memfd_memory& mem = *made;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    void* p = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, mem.source().fd, 0);
    if (p == MAP_FAILED) ::_exit(1);
    static_cast<unsigned char*>(p)[17] = 0xD7;
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(read_all(mem.view(), 16, 3) == std::vector{std::byte{0}, std::byte{0xD7}, std::byte{0}});
}

TEST_CASE("§6.1 memfd_memory factory errors are errnos, never crashes") {
  CHECK(memfd_memory::create(0).error() == nvgrace::errc::invalid_argument);
  CHECK(memfd_memory::create(std::numeric_limits<std::uint64_t>::max()).error() == nvgrace::errc::value_too_large);
  CHECK(memfd_memory::create(std::uint64_t{1} << 63).error() == nvgrace::errc::value_too_large);
  CHECK(memfd_memory::create(absurd).error() == nvgrace::errc::not_enough_memory);
  const std::string long_name(300, 'x');
  CHECK(memfd_memory::create(page, caching::cached, long_name.c_str()).error() == nvgrace::errc::invalid_argument);
  CHECK(memfd_memory{}.empty());
  CHECK(memfd_memory{}.source().fd == -1);
}

TEST_CASE("§6.1 memfd_memory::open_file persists memory in a regular file") {
  temp_dir dir;
  const std::string path = dir.path + "/mem";
  const auto data = ramp(64, 0x40);
  {
    auto made = memfd_memory::open_file(path.c_str(), 10000);
    REQUIRE(made);
    CHECK(file_size(path) == 10000);
    CHECK(made->source().offset == 0);
    CHECK(write_window(made->view(), 9990, data) == 64);
  }
  {  // reopened shorter: the file keeps its size, the memory sees its first bytes
    auto made = memfd_memory::open_file(path.c_str(), 9995, caching::uncached);
    REQUIRE(made);
    CHECK(file_size(path) == 10000);
    auto expected = std::vector(data.begin(), data.begin() + 5);
    expected.resize(10, std::byte{0xFF});
    CHECK(read_all(made->view(), 9990, 10) == expected);
  }
  {  // reopened longer: extended with zeros, old bytes intact
    auto made = memfd_memory::open_file(path.c_str(), 20000);
    REQUIRE(made);
    CHECK(file_size(path) == 20000);
    auto expected = std::vector(data.begin(), data.begin() + 10);
    expected.resize(20, std::byte{0});
    CHECK(read_all(made->view(), 9990, 20) == expected);
  }
  CHECK(memfd_memory::open_file((dir.path + "/missing/mem").c_str(), 100).error() ==
        nvgrace::errc::no_such_file_or_directory);
  CHECK(memfd_memory::open_file(dir.path.c_str(), 100).error() == nvgrace::errc::is_a_directory);
  CHECK(memfd_memory::open_file("/dev/null", 100).error() == nvgrace::errc::invalid_argument);
  CHECK(memfd_memory::open_file(path.c_str(), 0).error() == nvgrace::errc::invalid_argument);
  CHECK(file_size(path) == 20000);  // failures change nothing
}

TEST_CASE("§6.1 memfd_memory::adopt maps a received fd at a page offset and owns it") {
  const int fd = ::memfd_create("adopted", MFD_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(3 * page)) == 0);
  const auto data = ramp(16, 0x90);
  REQUIRE(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(page + 8)) == 16);

  auto made = memfd_memory::adopt(fd, page, 2 * page, caching::uncached);
  REQUIRE(made);
  CHECK(made->source().fd == fd);
  CHECK(made->source().offset == page);
  CHECK(made->length() == 2 * page);
  CHECK(read_all(made->view(), 8, 16) == data);
  { memfd_memory gone = std::move(made).value(); }
  CHECK_FALSE(fd_is_open(fd));
}

TEST_CASE("§6.1 memfd_memory::adopt errors close the fd and report an errno") {
  auto fresh = [] {
    const int fd = ::memfd_create("adopted", MFD_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(2 * page)) == 0);
    return fd;
  };
  int fd = fresh();
  CHECK(memfd_memory::adopt(fd, 100, page).error() == nvgrace::errc::invalid_argument);  // offset not page-aligned
  CHECK_FALSE(fd_is_open(fd));
  fd = fresh();
  CHECK(memfd_memory::adopt(fd, page, page + 1).error() ==
        nvgrace::errc::invalid_argument);  // past the end of the file
  CHECK_FALSE(fd_is_open(fd));
  fd = fresh();
  CHECK(memfd_memory::adopt(fd, 0, 0).error() == nvgrace::errc::invalid_argument);
  CHECK_FALSE(fd_is_open(fd));
  fd = fresh();
  CHECK(memfd_memory::adopt(fd, std::numeric_limits<std::uint64_t>::max() & ~(page - 1), page).error() ==
        nvgrace::errc::value_too_large);
  CHECK_FALSE(fd_is_open(fd));
  CHECK(memfd_memory::adopt(-1, 0, page).error() == nvgrace::errc::bad_file_descriptor);
  CHECK(memfd_memory::adopt(1 << 20, 0, page).error() == nvgrace::errc::bad_file_descriptor);  // not an open fd
}

TEST_CASE("§5 span_memory wraps caller bytes, aligned or not") {
  alignas(8) std::array<std::byte, 24> storage{};
  constexpr span_memory empty;
  static_assert(empty.empty() && empty.view().base == nullptr && empty.view().length == 0);
  const span_memory mem{std::span(storage).subspan(1, 20), caching::uncached};
  CHECK(mem.length() == 20);
  CHECK(mem.view().base == storage.data() + 1);
  CHECK(mem.view().caching == caching::uncached);
  const auto data = ramp(24, 1);
  CHECK(write_window(mem.view(), 0, data) == 24);
  CHECK(storage[0] == std::byte{0});
  CHECK(storage[20] == std::byte{20});
  CHECK(storage[21] == std::byte{0});
  auto expected = std::vector(data.begin(), data.begin() + 20);
  expected.resize(24, std::byte{0xFF});
  CHECK(read_all(mem.view(), 0, 24) == expected);
}
