// The in-process device against what a VM or an operator can get wrong: the
// readiness registers a VM may only read (§7.1), and options the driver's
// rules make nonsensical, refused before anything is allocated.

#include "shim_fixtures.hpp"

#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/result.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <vector>

using namespace device_test;

namespace {

std::vector<std::byte> read_bar0(shim_device& d, std::uint64_t offset, std::size_t n) {
  std::vector<std::byte> out(n);
  const auto r = kread(d, out, at(0, offset));
  REQUIRE(r.value == static_cast<ssize_t>(n));
  return out;
}

}  // namespace

TEST_CASE(
    "§7.1 the readiness registers are read-only through the device file: their bytes are dropped, the rest written") {
  auto d = make_hopper();
  for (const std::uint64_t reg : {shim::c2c_link_register, shim::hbm_training_register}) {
    CAPTURE(reg);
    const std::vector<std::byte> zeros(4, std::byte{0});
    const auto w = kwrite(d, zeros, at(0, reg));
    CHECK(w.value == 4);  // accepted in full, like a write to a hardware status register
    CHECK(w.pos == at(0, reg + 4));
    CHECK(d.bar0_register(reg) == shim::status_ready);
    // 12 bytes from reg - 4: the 4 before and the 4 after are written, the register's are not.
    const auto around = bytes_of({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    CHECK(kwrite(d, around, at(0, reg - 4)).value == 12);
    CHECK(read_bar0(d, reg - 4, 12) == bytes_of({1, 2, 3, 4, 0xFF, 0, 0, 0, 9, 10, 11, 12}));
    // A write that starts inside the register and one that ends inside it.
    CHECK(kwrite(d, bytes_of({0xA1, 0xA2, 0xA3, 0xA4}), at(0, reg + 2)).value == 4);
    CHECK(kwrite(d, bytes_of({0xB1, 0xB2, 0xB3, 0xB4}), at(0, reg - 2)).value == 4);
    CHECK(read_bar0(d, reg - 4, 12) == bytes_of({1, 2, 0xB1, 0xB2, 0xFF, 0, 0, 0, 0xA3, 0xA4, 11, 12}));
  }
  // One write covering both registers (0x1498 .. 0x200BF): everything else in it is written.
  std::vector<std::byte> big(0x200C0 - 0x1490, std::byte{0x5A});
  CHECK(kwrite(d, big, at(0, 0x1490)).value == static_cast<ssize_t>(big.size()));
  CHECK(d.bar0_register(shim::c2c_link_register) == shim::status_ready);
  CHECK(d.bar0_register(shim::hbm_training_register) == shim::status_ready);
  CHECK(d.bar0_register(0x1494) == 0x5A5A5A5Au);
  CHECK(d.bar0_register(0x200B8) == 0x5A5A5A5Au);
  // The rules of a BAR0 write still hold: clipped at 16 MiB, EIO with decode off.
  CHECK(kwrite(d, big, at(0, 16 * MiB)).value == -EINVAL);
  CHECK(config_write<std::uint16_t>(d, 0x04, 0) == 2);
  CHECK(kwrite(d, big, at(0, 0x1490)).value == -EIO);
}

TEST_CASE("§7.1 a reset after a VM's write to the readiness registers needs one poll, no wait") {
  auto d = make_hopper();
  fake_readiness source;
  source.device = &d;
  shim::test_hooks::set_readiness_source(d, &source);
  const std::vector<std::byte> zeros(4, std::byte{0});
  CHECK(kwrite(d, zeros, at(0, shim::c2c_link_register)).value == 4);
  CHECK(kwrite(d, zeros, at(0, shim::hbm_training_register)).value == 4);
  REQUIRE(d.reset().has_value());
  std::array<std::byte, 8> buf{};
  CHECK(d.pread(buf, at(4, 0)).value() == 8);
  CHECK(source.polls() == 1);
  CHECK(source.sleeps == 0);
}

TEST_CASE("§6 BAR0's memory is not offered to other processes (region_source), though it maps in process") {
  auto d = make_hopper();
  CHECK_FALSE(d.region_source(0).has_value());
  CHECK(d.region_source(4).has_value());
  CHECK(d.plan_mmap(at(0, 0), 4096).has_value());  // the in-process mmap still works
}

TEST_CASE(
    "§2.1 check_options: a BAR beyond the 2^40-byte region window is EOVERFLOW, emulated memory below 4 KiB EINVAL") {
  using nvgrace::errc;
  // Blackwell: usemem's BAR is next_pow2(memory); 1 TiB fits the window exactly.
  CHECK(shim_device::check_options(shim::blackwell(1 * TiB)).has_value());
  CHECK(shim_device::check_options(shim::blackwell(1 * TiB + 1)).error() == errc::value_too_large);
  CHECK(shim_device::check_options(shim::blackwell(64 * TiB)).error() == errc::value_too_large);
  // Hopper: usemem = memory - 1 GiB; 1 TiB + 1 GiB is the largest that fits.
  CHECK(shim_device::check_options(shim::hopper(1 * TiB + 1 * GiB)).has_value());
  CHECK(shim_device::check_options(shim::hopper(1 * TiB + 1 * GiB + 4096)).error() == errc::value_too_large);
  CHECK(shim_device::check_options(shim::hopper(64 * TiB)).error() == errc::value_too_large);
  // Real BARs: a power of two from 4 KiB to 1 TiB.
  CHECK(shim_device::check_options(shim::plain(1 * TiB, 4 * KiB)).has_value());
  CHECK(shim_device::check_options(shim::plain(2 * TiB)).error() == errc::value_too_large);
  CHECK(shim_device::check_options(shim::blackwell(64 * MiB, 2 * TiB)).error() == errc::value_too_large);
  // Blackwell memory below one 4 KiB page: nothing of it could be mapped.
  CHECK(shim_device::check_options(shim::blackwell(4 * KiB)).has_value());
  for (const std::uint64_t tiny : {std::uint64_t{1}, std::uint64_t{100}, std::uint64_t{2048}, 4 * KiB - 1}) {
    CAPTURE(tiny);
    CHECK(shim_device::check_options(shim::blackwell(tiny)).error() == errc::invalid_argument);
    CHECK(shim_device::create(shim::blackwell(tiny)).error() == errc::invalid_argument);
  }
  CHECK(shim_device::create(shim::blackwell(64 * TiB)).error() == errc::value_too_large);
}

TEST_CASE("a failed create's value() traps at run time (SIGILL), never hands out an empty device") {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The default actions, not doctest's crash reporting, in the child.
    ::signal(SIGILL, SIG_DFL);
    ::signal(SIGABRT, SIG_DFL);
    auto created = shim_device::create(shim::hopper(512 * MiB));  // EOVERFLOW: less than the carve-out
    volatile auto mode = created.value().mode();                  // precondition: has_value()
    static_cast<void>(mode);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK((WTERMSIG(status) == SIGILL || WTERMSIG(status) == SIGABRT));  // trap, or GSL's terminate
}
