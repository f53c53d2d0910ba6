// Memory fds handed to someone else: memfds sealed against size changes, a
// regular file's mapping surviving a truncation (posix::guard_faults), and
// eventfds received from someone else (posix/eventfd.hpp). Real memfds,
// files, eventfds and forked children.
#include <nvgrace/mem/memfd_memory.hpp>
#include <nvgrace/posix/eventfd.hpp>
#include <nvgrace/posix/fault_guard.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace nvgrace;

namespace {

const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));

/// A file in a fresh temporary directory, both removed on destruction.
struct temp_file {
  std::string dir, path;
  temp_file() {
    char d[] = "/tmp/nvgrace-fd-XXXXXX";
    REQUIRE(::mkdtemp(d) != nullptr);
    dir = d;
    path = dir + "/memory";
  }
  ~temp_file() {
    ::unlink(path.c_str());
    ::rmdir(dir.c_str());
  }
};

/// Run `f` in a child with default signal actions; its wait status.
template <class F>
int in_child(F f) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGBUS, SIG_DFL);  // not doctest's crash report: the default action
    f();
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

}  // namespace

TEST_CASE(
    "memfd_memory::create seals the size (shrink, grow) and further seals; open_file and adopt say whether they are") {
  auto m = mem::memfd_memory::create(3 * page + 100);
  REQUIRE(m);
  const int fd = m->source().fd;
  CHECK(::fcntl(fd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
  CHECK(m->size_sealed());
  errno = 0;
  CHECK(::ftruncate(fd, 0) == -1);
  CHECK(errno == EPERM);
  errno = 0;
  CHECK(::ftruncate(fd, static_cast<off_t>(4 * page)) == -1);
  CHECK(errno == EPERM);
  errno = 0;
  CHECK(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == -1);
  CHECK(errno == EPERM);
  // Writing (through the fd and the mapping) is what the memory is for: still allowed.
  const char text[] = "still writable";
  CHECK(::pwrite(fd, text, sizeof text, 8) == static_cast<ssize_t>(sizeof text));
  CHECK(std::memcmp(m->view().base + 8, text, sizeof text) == 0);
  // A moved-to object keeps the answer, a moved-from one says no.
  mem::memfd_memory moved = std::move(*m);
  CHECK(moved.size_sealed());
  CHECK_FALSE(m->size_sealed());

  temp_file file;
  auto f = mem::memfd_memory::open_file(file.path.c_str(), 2 * page);
  REQUIRE(f);
  CHECK_FALSE(f->size_sealed());

  // adopt: sealed by its maker or not.
  auto sealed = mem::memfd_memory::adopt(::dup(moved.source().fd), 0, page);
  REQUIRE(sealed);
  CHECK(sealed->size_sealed());
  const int plain = ::memfd_create("plain", MFD_CLOEXEC);
  REQUIRE(::ftruncate(plain, static_cast<off_t>(page)) == 0);
  auto unsealed = mem::memfd_memory::adopt(plain, 0, page);
  REQUIRE(unsealed);
  CHECK_FALSE(unsealed->size_sealed());
}

TEST_CASE(
    "guard_faults: an access past a truncated file's end is nullopt, the bytes before it stay, the next access works") {
  temp_file file;
  auto m = mem::memfd_memory::open_file(file.path.c_str(), 4 * page);
  REQUIRE(m);
  std::memset(m->view().base, 0x11, 4 * page);
  REQUIRE(::ftruncate(m->source().fd, static_cast<off_t>(page)) == 0);  // someone else holding the fd
  std::byte* const base = m->view().base;
  std::vector<std::byte> out(2 * page, std::byte{0});
  // A forward copy from the first page into the third faults in the second page.
  const volatile std::byte* const source = base;
  const auto copied = posix::guard_faults([&] {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = source[page / 2 + i];
    return 1;
  });
  CHECK_FALSE(copied.has_value());
  // What was copied before the fault stays copied: the rest of the first page.
  CHECK(out[page / 2 - 1] == std::byte{0x11});
  CHECK(out[page / 2] == std::byte{0});
  // A store past the end: nullopt too, and the file keeps its size.
  const auto stored = posix::guard_faults([&] {
    base[2 * page] = std::byte{0x22};
    return 2;
  });
  CHECK_FALSE(stored.has_value());
  struct stat st {};
  REQUIRE(::fstat(m->source().fd, &st) == 0);
  CHECK(static_cast<std::uint64_t>(st.st_size) == page);
  // Inside the file: the value of f, and the data intact.
  const auto inside = posix::guard_faults([&] { return std::to_integer<int>(base[page - 1]); });
  REQUIRE(inside.has_value());
  CHECK(*inside == 0x11);
  // Nested guards: the inner one catches its own fault, the outer goes on.
  const auto outer = posix::guard_faults([&] {
    const auto inner = posix::guard_faults([&] { return std::to_integer<int>(base[3 * page]); });
    return inner.has_value() ? 1 : 2;
  });
  REQUIRE(outer.has_value());
  CHECK(*outer == 2);
  // Many in a row (the signal mask is left as it was each time).
  int faults = 0;
  for (int i = 0; i < 100; ++i)
    faults += posix::guard_faults([&] { return std::to_integer<int>(base[2 * page]); }) ? 0 : 1;
  CHECK(faults == 100);
  sigset_t mask;
  REQUIRE(::pthread_sigmask(SIG_SETMASK, nullptr, &mask) == 0);
  CHECK_FALSE(sigismember(&mask, SIGBUS));
}

TEST_CASE("guard_faults: a fault outside any guard, or a SIGBUS sent inside one, still kills the process") {
  temp_file file;
  auto m = mem::memfd_memory::open_file(file.path.c_str(), 2 * page);
  REQUIRE(m);
  REQUIRE(posix::install_fault_handler());
  REQUIRE(::ftruncate(m->source().fd, 0) == 0);
  volatile std::byte* const base = m->view().base;
  const int unguarded = in_child([&] {
    posix::install_fault_handler();
    static_cast<void>(base[0]);
  });
  REQUIRE(WIFSIGNALED(unguarded));
  CHECK(WTERMSIG(unguarded) == SIGBUS);
  const int sent = in_child([] {
    posix::install_fault_handler();
    static_cast<void>(posix::guard_faults([] { return ::raise(SIGBUS); }));
  });
  REQUIRE(WIFSIGNALED(sent));
  CHECK(WTERMSIG(sent) == SIGBUS);
}

TEST_CASE("is_eventfd tells an eventfd from a pipe, a memfd, a socket and a closed fd") {
  const int ev = ::eventfd(0, EFD_CLOEXEC);
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  const int memfd = ::memfd_create("x", MFD_CLOEXEC);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(posix::is_eventfd(ev).value());
  for (const int fd : {p[0], p[1], memfd, sock}) CHECK_FALSE(posix::is_eventfd(fd).value());
  for (const int fd : {ev, p[0], p[1], memfd, sock}) ::close(fd);
  CHECK(posix::is_eventfd(ev).error() == errc::no_such_file_or_directory);
}

TEST_CASE("signal_eventfd never blocks: a full counter is EAGAIN, O_NONBLOCK is restored first, the counter kept") {
  const int ev = ::eventfd(0, EFD_CLOEXEC);  // blocking, as its sender made it
  REQUIRE(posix::signal_eventfd(ev));
  CHECK((::fcntl(ev, F_GETFL) & O_NONBLOCK) != 0);
  std::uint64_t value = 0;
  REQUIRE(::read(ev, &value, 8) == 8);
  CHECK(value == 1);
  value = 0xFFFF'FFFF'FFFF'FFFEull;
  REQUIRE(::write(ev, &value, 8) == 8);
  REQUIRE(::fcntl(ev, F_SETFL, ::fcntl(ev, F_GETFL) & ~O_NONBLOCK) == 0);  // the sender clears it again
  CHECK(posix::signal_eventfd(ev).error() == errc::resource_unavailable_try_again);
  CHECK((::fcntl(ev, F_GETFL) & O_NONBLOCK) != 0);
  REQUIRE(::read(ev, &value, 8) == 8);
  CHECK(value == 0xFFFF'FFFF'FFFF'FFFEull);
  ::close(ev);
  CHECK(posix::signal_eventfd(ev).error() == errc::bad_file_descriptor);
}
