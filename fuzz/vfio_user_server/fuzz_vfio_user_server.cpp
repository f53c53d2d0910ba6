// libFuzzer target: the vfio-user server's framing decoder and dispatcher,
// in process (no sockets), serving the real Grace device (backend/shim,
// Blackwell, 64 KiB + 100 bytes of memfd memory behind a 128 KiB BAR).
//
// Input: byte 0 = options, byte 1 = chunking seed, the rest = the byte stream
// a client sends.
// - options bit 0: prepend a valid VERSION (so later commands are reached);
// - options bit 1: attach a fresh eventfd to some receives (as SCM_RIGHTS
//   would), exercising fd ownership;
// - seed 0 delivers the stream in one receive; otherwise receives of
//   pseudo-random sizes 1..256 (message boundaries fall anywhere).
//
// Checked on every reply: it is a reply to the message handled (same id and
// command, type REPLY), its size field equals its length, an error reply is
// header-only with a positive errno, and no reply exceeds the largest message.
// Checked after every input: every fd handed to the server is closed.

#include <nvgrace/backend/shim/shim.hpp>
#include <nvgrace/backend/shim/test_hooks.hpp>
#include <nvgrace/backend/vfio_user/server.hpp>
#include <nvgrace/mem/memfd_memory.hpp>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace {

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using device = shim::device<mem::memfd_memory>;

[[noreturn]] void fail() { __builtin_trap(); }

/// The §7.1 readiness poll with the device's own BAR0 registers and a clock
/// that jumps instead of sleeping: a client that breaks the registers gets
/// ETIME after 31 virtual seconds, in no real time.
class instant_readiness final : public shim::readiness_source {
public:
  explicit instant_readiness(const device& d) : device_(d) {}
  std::uint32_t read32(std::uint64_t offset) noexcept override { return device_.bar0_register(offset); }
  std::uint64_t now_ms() noexcept override { return now_; }
  bool sleep_ms(std::uint64_t ms) noexcept override {
    now_ += ms;
    return true;
  }

private:
  const device& device_;
  std::uint64_t now_ = 0;
};

struct harness {
  device dev = device::create(shim::blackwell((64u << 10) + 100)).value();
  instant_readiness readiness{dev};
  server_options options{};
  vfio_user::session<device> session{dev, options};
  message_stream stream{max_message_size_for(options.max_data_xfer_size)};
  message current;
};

harness& state() {
  static harness h;
  static const bool wired = (shim::test_hooks::set_readiness_source(h.dev, &h.readiness), true);
  static_cast<void>(wired);
  return h;
}

void check_reply(const header& request, const session<device>::outcome& o, std::size_t limit) {
  if (o.reply.empty()) return;
  if (o.reply.size() < header_size || o.reply.size() > limit) fail();
  const header h = load_header(o.reply);
  if (h.size != o.reply.size() || h.id != request.id || h.command != request.command) fail();
  if ((h.flags & message_flags::type_mask) != message_flags::type_reply) fail();
  if ((h.flags & message_flags::error) != 0) {
    if (h.size != header_size || h.error == 0 || o.fd >= 0) fail();
  } else if (h.error != 0) {
    fail();
  }
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
    const header request = h.current.header;
    const auto o = h.session.handle(h.current);
    check_reply(request, o, h.stream.limit());
    if (!h.current.fds.empty()) fail();  // handle() keeps or closes every fd
    if (o.close) return false;
  }
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
    if (space.empty()) fail();  // a buffer that cannot take a byte would stall a real connection
    chunk = std::min(chunk, space.size());
    std::memcpy(space.data(), bytes.data() + at, chunk);
    std::vector<unique_fd> fds;
    if ((options & 2) && ((seed >> 8) & 3) == 0) {
      fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
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
    if (::fcntl(fd, F_GETFD) != -1) fail();
  return 0;
}
