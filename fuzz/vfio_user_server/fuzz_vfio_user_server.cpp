// libFuzzer target: the vfio-user server's framing decoder and dispatcher,
// in process (no sockets), serving the real Grace device (backend/shim,
// Blackwell, 64 KiB + 100 bytes of memfd memory behind a 128 KiB BAR).
//
// Input: byte 0 = options, byte 1 = chunking seed, the rest = the byte stream
// a client sends.
// - options bit 0: prepend a valid VERSION (so later commands are reached);
// - options bit 1: attach a fresh eventfd to some receives (as SCM_RIGHTS
//   would), exercising fd ownership;
// - options bit 2: those eventfds are blocking and their counter is full
//   (2^64 - 2): a trigger that writes to one must not block;
// - seed 0 delivers the stream in one receive; otherwise receives of
//   pseudo-random sizes 1..256 (message boundaries fall anywhere).
//
// Checked on every reply: it is a reply to the message handled (same id and
// command, type REPLY), its size field equals its length, an error reply is
// header-only with a positive errno, and no reply exceeds the largest message.
// Checked after every input: every fd handed to the server is closed.
//
// Bounded waits: no message may keep the server for long. Each message is
// timed with the real clock and one taking more than NVGRACE_FUZZ_MAX_MESSAGE_MS
// (default 1000) is a finding. The device's readiness poll (§7.1: up to 30 s
// of 1 s sleeps once its BAR0 registers say "not ready") runs by default on a
// virtual clock, so it costs no real time and any sleep at all is a finding (a
// peer made the device not ready); with NVGRACE_FUZZ_REAL_CLOCK=1 it runs on
// the real clock and sleeps for real, and the per-message bound catches it.
//
// NVGRACE_FUZZ_SELFTEST=not_ready proves that both checks fire: the readiness
// registers read "not ready" until the poll has slept once (as if a peer had
// made the device not ready), so the first memory access sleeps 1 s, virtual
// or real. tests in fuzz/vfio_user_server/CMakeLists.txt expect the finding.

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/shim/test_hooks.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/mem/memfd_memory.hpp>
#include <nvgrace/posix/clock.hpp>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

namespace {

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using device = shim::memfd_device;

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "fuzz_vfio_user_server: %s\n", why);
  __builtin_trap();
}

/// The §7.1 readiness poll with the device's own BAR0 registers and a clock
/// that jumps instead of sleeping: a client that breaks the registers gets
/// ETIME after 31 virtual seconds, in no real time, and the sleeps are counted.
class virtual_readiness final : public shim::readiness_source {
public:
  virtual_readiness(const device& d, bool real_clock, bool selftest)
      : device_(d), real_clock_(real_clock), selftest_(selftest) {}
  std::uint32_t read32(std::uint64_t offset) noexcept override {
    if (selftest_ && sleeps == 0) return 0;  // not ready until one sleep
    return device_.bar0_register(offset);
  }
  std::uint64_t now_ms() noexcept override { return real_clock_ ? posix::monotonic_now_ms() : now_ms_; }
  bool sleep_ms(std::uint64_t ms) noexcept override {
    if (real_clock_)
      posix::monotonic_sleep_ms(ms);
    else
      now_ms_ += ms;
    ++sleeps;
    return true;
  }
  std::uint64_t sleeps = 0;

private:
  const device& device_;
  bool real_clock_;
  bool selftest_;
  std::uint64_t now_ms_ = 0;
};

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

struct harness {
  device dev = device::create(shim::blackwell((64u << 10) + 100)).value();
  bool real_clock = env_or("NVGRACE_FUZZ_REAL_CLOCK", 0) != 0;
  bool selftest = std::getenv("NVGRACE_FUZZ_SELFTEST") != nullptr &&
                  std::strcmp(std::getenv("NVGRACE_FUZZ_SELFTEST"), "not_ready") == 0;
  virtual_readiness readiness{dev, real_clock, selftest};
  std::uint64_t max_message_ms = env_or("NVGRACE_FUZZ_MAX_MESSAGE_MS", 1000);
  server_options options{};
  vfio_user::session<device> session{dev, options};
  message_stream stream{max_message_size_for(options.max_data_xfer_size)};
  message current;

  harness() {
    // The real clock without the self-test keeps the device's own source.
    if (!real_clock || selftest) shim::test_hooks::set_readiness_source(dev, &readiness);
  }
};

harness& state() {
  static harness h;
  return h;
}

void check_reply(const header& request, const session<device>::outcome& o, std::size_t limit) {
  if (o.reply.empty()) return;
  if (o.reply.size() < header_size || o.reply.size() > limit) fail("reply size out of bounds");
  const header h = load_header(o.reply);
  if (h.size != o.reply.size() || h.id != request.id || h.command != request.command) fail("reply header mismatch");
  if ((h.flags & message_flags::type_mask) != message_flags::type_reply) fail("reply not typed REPLY");
  if ((h.flags & message_flags::error) != 0) {
    if (h.size != header_size || h.error == 0 || o.fd >= 0) fail("malformed error reply");
  } else if (h.error != 0) {
    fail("error field without the ERROR flag");
  }
}

/// Handle one message under the bounded-wait checks.
session<device>::outcome handle_bounded(harness& h) {
  const std::uint64_t sleeps = h.readiness.sleeps;
  const std::uint64_t start = posix::monotonic_now_ms();
  auto o = h.session.handle(h.current);
  const std::uint64_t took = posix::monotonic_now_ms() - start;
  if (took > h.max_message_ms) {
    std::fprintf(stderr, "fuzz_vfio_user_server: one message kept the server %llu ms\n",
                 static_cast<unsigned long long>(took));
    fail("a message exceeded the bounded wait");
  }
  if (!h.real_clock && h.readiness.sleeps != sleeps)
    fail("a peer made the readiness poll wait (the device is not ready)");
  return o;
}

/// Process every complete message; false when the connection would be closed.
bool drain(harness& h) {
  while (true) {
    const auto st = h.stream.next(h.current);
    if (st == message_stream::state::need_more) return true;
    if (st == message_stream::state::framing_error) {
      const auto o = h.session.framing_error(h.current.header);
      check_reply(h.current.header, o, h.stream.limit());
      return false;
    }
    if (st == message_stream::state::fd_budget_exceeded) return false;
    const header request = h.current.header;
    const auto o = handle_bounded(h);
    check_reply(request, o, h.stream.limit());
    if (!h.current.fds.empty()) fail("handle() left an fd unowned");
    if (o.close) return false;
  }
}

/// An eventfd as a peer might send it: fresh, or blocking with a full counter.
int make_eventfd(bool full) {
  const int fd = ::eventfd(0, EFD_CLOEXEC | (full ? 0 : EFD_NONBLOCK));
  if (fd < 0) fail("eventfd");
  if (full) {
    const std::uint64_t most = 0xFFFF'FFFF'FFFF'FFFEull;
    if (::write(fd, &most, sizeof most) != static_cast<ssize_t>(sizeof most)) fail("eventfd write");
  }
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto& h = state();
  if (size < 2) return 0;
  const std::uint8_t options = data[0];
  std::uint32_t seed = data[1];
  std::vector<std::byte> bytes;
  if (options & 1) {
    // VERSION 0.0 without JSON.
    const std::uint8_t version[] = {0x00, 0x00, 0x01, 0x00, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (auto b : version) bytes.push_back(static_cast<std::byte>(b));
  }
  for (std::size_t i = 2; i < size; ++i) bytes.push_back(static_cast<std::byte>(data[i]));

  h.session.reset();
  h.stream.clear();
  std::size_t at = 0;
  bool open = true;
  std::vector<int> created;
  while (open && at < bytes.size()) {
    std::size_t chunk = bytes.size() - at;
    if (seed != 0) {
      seed = seed * 1103515245u + 12345u;
      chunk = std::min<std::size_t>(chunk, 1 + ((seed >> 16) & 0xFF));
    }
    const auto space = h.stream.receive_space();
    if (space.empty()) fail("no receive space: a real connection would stall");
    chunk = std::min(chunk, space.size());
    std::memcpy(space.data(), bytes.data() + at, chunk);
    std::vector<unique_fd> fds;
    if ((options & 2) && ((seed >> 8) & 3) == 0) {
      fds.emplace_back(make_eventfd((options & 4) != 0));
      created.push_back(fds.back().get());
    }
    h.stream.commit(chunk, std::move(fds));
    at += chunk;
    open = drain(h);
  }
  h.session.reset();
  h.stream.clear();
  // Every fd handed over is closed now (nothing else opens fds during the input,
  // so a number still open is one of ours, leaked).
  for (const int fd : created)
    if (::fcntl(fd, F_GETFD) != -1) fail("an fd handed to the server is still open");
  return 0;
}
