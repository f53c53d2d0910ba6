// Precondition violations at run time, as a consumer without GSL meets them. The same
// source builds three binaries: the default (trap), with a handler installed, and with
// NVGRACE_NO_RUNTIME_CONTRACTS (no run-time check). Each violation runs in a forked child.
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int report_fd = -1;

// The handler writes what it was told to a pipe, then returns: the trap must still follow.
[[maybe_unused]] void write_report(const char* condition, const char* file, int line) noexcept {
  const std::string text = std::string(condition) + "|" + file + "|" + std::to_string(line);
  [[maybe_unused]] const auto n = ::write(report_fd, text.data(), text.size());
}

struct outcome {
  int status = 0;
  std::string report;
};

/// Run `violation` in a child; `value` is what the child exits with if it survives.
template <class F>
outcome in_child(F violation) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    report_fd = fds[1];
#if defined(NVGRACE_CONTRACTS_TEST_MODE_handler)
    nvgrace::set_contract_handler(write_report);
#endif
    const int survived = violation();
    ::_exit(survived);
  }
  ::close(fds[1]);
  outcome o;
  char buffer[512];
  ssize_t n = 0;
  while ((n = ::read(fds[0], buffer, sizeof buffer)) > 0) o.report.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  REQUIRE(::waitpid(pid, &o.status, 0) == pid);
  return o;
}

[[maybe_unused]] int value_of_an_error() {
  const nvgrace::result<int> r = nvgrace::errc::io_error;
  volatile int v = r.value();  // precondition: has_value()
  static_cast<void>(v);
  return 7;
}

int odd_alignment() {
  volatile std::uint64_t alignment = 3;
  volatile std::uint64_t v = nvgrace::align_down(1000, alignment);  // precondition: a power of two
  static_cast<void>(v);
  return 7;
}

}  // namespace

#if !defined(NVGRACE_NO_RUNTIME_CONTRACTS)
TEST_CASE("a violated precondition traps (SIGILL), after the handler if one is installed") {
  for (auto* violation : {&value_of_an_error, &odd_alignment}) {
    const auto o = in_child(violation);
    REQUIRE(WIFSIGNALED(o.status));
    CHECK(WTERMSIG(o.status) == SIGILL);
#if defined(NVGRACE_CONTRACTS_TEST_MODE_handler)
    // condition|file|line, as the macro spelled them.
    CHECK(o.report.find("|") != std::string::npos);
    CHECK((o.report.rfind("has_value()", 0) == 0 || o.report.rfind("std::has_single_bit(alignment)", 0) == 0));
    CHECK(o.report.find(violation == &value_of_an_error ? "core/result.hpp|" : "core/checked.hpp|") !=
          std::string::npos);
#else
    CHECK(o.report.empty());
#endif
  }
}

TEST_CASE("a kept precondition costs nothing visible: no trap, no report") {
  const auto o = in_child([] {
    const nvgrace::result<int> r = 5;
    return r.value() + static_cast<int>(nvgrace::align_down(1000, 512) / 512);
  });
  REQUIRE(WIFEXITED(o.status));
  CHECK(WEXITSTATUS(o.status) == 6);
  CHECK(o.report.empty());
}

TEST_CASE("set_contract_handler returns the handler it replaces") {
  const auto before = nvgrace::set_contract_handler(write_report);
  const bool replaced_ours = nvgrace::set_contract_handler(before) == write_report;
  CHECK(replaced_ours);
}
#else
TEST_CASE("NVGRACE_NO_RUNTIME_CONTRACTS: a violation at run time is not checked") {
  // The alignment precondition only guards the arithmetic: 1000 & ~2 = 1000.
  const auto o = in_child(odd_alignment);
  REQUIRE(WIFEXITED(o.status));
  CHECK(WEXITSTATUS(o.status) == 7);
}
#endif
