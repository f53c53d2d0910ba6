// vfio-user wire format: header codec, JSON capabilities, the framing decoder.
// Citations: "vfio-user PN" = docs/vfio-user.md's protocol reference; "§N" = docs/semantics.md.

#include <nvgrace/backend/vfio_user/capabilities.hpp>
#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/backend/vfio_user/transport.hpp>

#include "raw_peer.hpp"

#include <doctest/doctest.h>

#include <sys/eventfd.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <string_view>
#include <vector>

using namespace nvgrace;
using namespace nvgrace::vfio_user;
using nvgrace::vfio_user::testing::bytes_builder;
using nvgrace::vfio_user::testing::make_message;

namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

void feed(message_stream& s, std::span<const std::byte> bytes, std::vector<unique_fd> fds = {}) {
  auto space = s.receive_space();
  REQUIRE(space.size() >= bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  s.commit(bytes.size(), std::move(fds));
}

std::vector<unique_fd> eventfds(int n) {
  std::vector<unique_fd> fds;
  for (int i = 0; i < n; ++i) fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
  return fds;
}

}  // namespace

TEST_CASE("vfio-user P2 header layout: id, command, size, flags, error little-endian") {
  std::array<std::byte, 16> out{};
  store_header(out, header{0x1234, 9, 0x28, 0x21, 22});
  CHECK(std::vector<std::byte>(out.begin(), out.end()) ==
        bytes_of({0x34, 0x12, 0x09, 0x00, 0x28, 0, 0, 0, 0x21, 0, 0, 0, 22, 0, 0, 0}));
  CHECK(load_header(out) == header{0x1234, 9, 0x28, 0x21, 22});
}

TEST_CASE("vfio-user P2 error reply is header-only with flags 0x21 and the positive errno") {
  const header request{7, 5, 48, 0, 0};
  const auto e = error_header(request, nvgrace::errc::invalid_argument);
  CHECK(e == header{7, 5, 16, 0x21, 22});
  CHECK(reply_header(request, 32) == header{7, 5, 48, 0x1, 0});
}

TEST_CASE("vfio-user P2 an error reply with errno 0 or out of range reads as EINVAL") {
  CHECK(reply_errno(header{0, 0, 16, 0x21, 0}) == nvgrace::errc::invalid_argument);
  CHECK(reply_errno(header{0, 0, 16, 0x21, 5000}) == nvgrace::errc::invalid_argument);
  CHECK(reply_errno(header{0, 0, 16, 0x21, 17}) == nvgrace::errc::file_exists);
}

TEST_CASE("vfio-user P7 region access payload: offset u64, region u32, count u32") {
  std::array<std::byte, 16> out{};
  store_region_access(out, region_access{0x1122334455667788, 4, 0x1000});
  CHECK(std::vector<std::byte>(out.begin(), out.end()) ==
        bytes_of({0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 4, 0, 0, 0, 0, 0x10, 0, 0}));
  CHECK(load_region_access(out) == region_access{0x1122334455667788, 4, 0x1000});
  CHECK(max_message_size_for(1u << 20) == 16 + 16 + (1u << 20));
}

TEST_CASE("vfio-user P4 capabilities: QEMU's offer parses, every key read") {
  constexpr std::string_view qemu =
      R"({"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,)"
      R"("migration":{"pgsize":4096,"max_bitmap_size":268435456},"write_multiple":true}})";
  auto caps = parse_capabilities(qemu);
  REQUIRE(caps);
  CHECK(caps->max_msg_fds == 16u);
  CHECK(caps->max_data_xfer_size == 1048576u);
  CHECK(caps->pgsizes == 4096u);
  CHECK(caps->max_dma_maps == 65535u);
  CHECK(caps->migration);
  CHECK(caps->migration_pgsize == 4096u);
  CHECK(caps->write_multiple);
  CHECK_FALSE(caps->twin_socket);
}

TEST_CASE("vfio-user P4 capabilities: libvfio-user's reply with spaces, unknown keys skipped") {
  auto caps = parse_capabilities(R"( { "capabilities": { "max_msg_fds": 8, "max_data_xfer_size": 1048576,)"
                                 R"( "x": [1, -2.5e3, "s\"\u00e9", null, {}],)"
                                 R"( "twin_socket": {"supported": true, "fd_index": 0} }, "other": false } )");
  REQUIRE(caps);
  CHECK(caps->max_msg_fds == 8u);
  CHECK(caps->twin_socket);
  CHECK_FALSE(caps->max_dma_maps.has_value());
  CHECK_FALSE(caps->write_multiple);
}

TEST_CASE("vfio-user P4 capabilities: an empty text and an empty object name nothing") {
  CHECK(parse_capabilities("").has_value());
  CHECK(parse_capabilities("{}").has_value());
  CHECK_FALSE(parse_capabilities("{}")->max_msg_fds.has_value());
}

TEST_CASE("vfio-user P4 capabilities: malformed JSON and wrong types are EINVAL") {
  constexpr std::string_view bad[] = {
      "[]",
      "{",
      "{\"capabilities\":1}",
      "{\"capabilities\":{\"max_msg_fds\":-1}}",
      "{\"capabilities\":{\"max_msg_fds\":1.5}}",
      "{\"capabilities\":{\"max_msg_fds\":1e3}}",
      "{\"capabilities\":{\"max_msg_fds\":\"8\"}}",
      "{\"capabilities\":{\"max_msg_fds\":018}}",
      "{\"capabilities\":{\"max_data_xfer_size\":18446744073709551616}}",
      "{\"capabilities\":{\"write_multiple\":1}}",
      "{\"capabilities\":{\"migration\":true}}",
      "{\"capabilities\":{}} x",
      "{\"a\" 1}",
      "{\"a\":1,}",
      "{\"a\":tru}",
      "{\"a\":\"\\x\"}",
      "{\"a\":\"unterminated}",
      "{\"a\":[1,]}",
      "{\"a\":-}",
  };
  for (auto text : bad) {
    CAPTURE(text);
    CHECK(parse_capabilities(text).error() == nvgrace::errc::invalid_argument);
  }
  CHECK(parse_capabilities("{\"capabilities\":{\"max_data_xfer_size\":18446744073709551615}}")->max_data_xfer_size ==
        UINT64_MAX);
}

TEST_CASE("vfio-user P4 capabilities: nesting deeper than the limit is refused, not recursed") {
  std::string deep = "{\"a\":";
  for (int i = 0; i < 10000; ++i) deep += "[";
  CHECK(parse_capabilities(deep).error() == nvgrace::errc::invalid_argument);
  std::string ok = "{\"a\":";
  for (unsigned i = 0; i < max_json_depth - 2; ++i) ok += "[";
  for (unsigned i = 0; i < max_json_depth - 2; ++i) ok += "]";
  ok += "}";
  CHECK(parse_capabilities(ok).has_value());
}

TEST_CASE("vfio-user P4 capabilities are written NUL-terminated and read back") {
  capabilities caps;
  caps.max_msg_fds = 16;
  caps.max_data_xfer_size = 1048576;
  caps.max_dma_maps = 65535;
  caps.pgsizes = 4096;
  std::array<char, 256> out{};
  auto n = format_capabilities(out, caps);
  REQUIRE(n);
  const std::string_view text(out.data(), *n);
  CHECK(text == std::string_view("{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
                                 "\"max_dma_maps\":65535,\"pgsizes\":4096}}\0",
                                 *n));
  auto back = parse_capabilities(text.substr(0, text.size() - 1));
  REQUIRE(back);
  CHECK(back->max_dma_maps == 65535u);
  std::array<char, 20> small{};
  CHECK(format_capabilities(small, caps).error() == nvgrace::errc::no_buffer_space);
}

TEST_CASE("framing: pipelined messages in one receive come out one by one") {
  message_stream s(1024);
  auto a = make_message(1, command::device_reset);
  auto b = make_message(2, command::region_read, bytes_builder().u64(0).u32(4).u32(8).bytes());
  std::vector<std::byte> both(a);
  both.insert(both.end(), b.begin(), b.end());
  feed(s, both);
  message m;
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(m.header.id == 1);
  CHECK(m.bytes.size() == 16);
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(m.header.id == 2);
  CHECK(m.payload().size() == 16);
  CHECK(s.next(m) == message_stream::state::need_more);
  CHECK(s.pending() == 0);
}

TEST_CASE("framing: a message split across receives completes when its last byte arrives") {
  message_stream s(1024);
  auto b = make_message(3, command::region_write, bytes_builder().u64(0).u32(4).u32(4).u32(0xAABBCCDD).bytes());
  message m;
  for (std::size_t i = 0; i + 1 < b.size(); ++i) {
    feed(s, std::span<const std::byte>(b).subspan(i, 1));
    REQUIRE(s.next(m) == message_stream::state::need_more);
  }
  feed(s, std::span<const std::byte>(b).last(1));
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(std::vector<std::byte>(m.bytes.begin(), m.bytes.end()) == b);
}

TEST_CASE("framing: size below 16 or above the limit is a framing error") {
  message m;
  {
    message_stream s(1024);
    feed(s, make_message(1, 4, {}, 0, 15));
    CHECK(s.next(m) == message_stream::state::framing_error);
    CHECK(m.header.id == 1);
  }
  {
    message_stream s(1024);
    feed(s, make_message(2, 4, {}, 0, 1025));
    CHECK(s.next(m) == message_stream::state::framing_error);
  }
  {
    message_stream s(1024);
    feed(s, make_message(3, 4, std::vector<std::byte>(1024 - 16), 0));
    CHECK(s.next(m) == message_stream::state::ready);
  }
}

TEST_CASE("framing: fds received with a message's first byte belong to it") {
  message_stream s(1024);
  auto a = make_message(1, command::device_reset);
  auto b = make_message(2, command::dma_map, std::vector<std::byte>(32));
  feed(s, std::span<const std::byte>(a).first(8));
  // The rest of A and all of B in one receive, with B's fd (as Linux delivers it).
  std::vector<std::byte> rest(a.begin() + 8, a.end());
  rest.insert(rest.end(), b.begin(), b.end());
  feed(s, rest, eventfds(1));
  message m;
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(m.header.id == 1);
  CHECK(m.fds.empty());
  CHECK_FALSE(m.fds_misplaced);
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(m.header.id == 2);
  CHECK(m.fds.size() == 1);
  CHECK_FALSE(m.fds_misplaced);
}

TEST_CASE("framing: fds that arrive after a message's first byte are misplaced") {
  message_stream s(1024);
  auto b = make_message(2, command::dma_map, std::vector<std::byte>(32));
  feed(s, std::span<const std::byte>(b).first(20));
  feed(s, std::span<const std::byte>(b).subspan(20), eventfds(2));
  message m;
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(m.fds.size() == 2);
  CHECK(m.fds_misplaced);
}

TEST_CASE("framing: a receive truncated by MSG_CTRUNC marks its message") {
  message_stream s(1024);
  auto space = s.receive_space();
  auto a = make_message(1, command::device_reset);
  std::memcpy(space.data(), a.data(), a.size());
  s.commit(a.size(), {}, true);
  message m;
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(m.fds_misplaced);
}

TEST_CASE("framing: a partial message at the buffer end is moved to the front to complete") {
  message_stream s(64);
  auto small = make_message(1, command::device_reset);  // 16 bytes
  auto big =
      make_message(2, command::region_write, bytes_builder().u64(0).u32(4).u32(32).fill(32, std::byte{7}).bytes());
  REQUIRE(big.size() == 64);
  message m;
  feed(s, small);
  feed(s, std::span<const std::byte>(big).first(40));
  REQUIRE(s.next(m) == message_stream::state::ready);
  REQUIRE(s.next(m) == message_stream::state::need_more);
  // 24 bytes missing, only 8 free behind the partial message: receive_space compacts.
  CHECK(s.receive_space().size() == 24);
  feed(s, std::span<const std::byte>(big).subspan(40));
  REQUIRE(s.next(m) == message_stream::state::ready);
  CHECK(std::vector<std::byte>(m.bytes.begin(), m.bytes.end()) == big);
}

TEST_CASE("transport: send_message delivers fds with the first byte in one receive") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  unique_fd a(sv[0]), b(sv[1]);
  auto msg = make_message(9, command::dma_map, std::vector<std::byte>(32));
  unique_fd ev(::eventfd(0, EFD_CLOEXEC));
  const iovec part{msg.data(), msg.size()};
  const int fd = ev.get();
  REQUIRE(send_message(a.get(), std::span<const iovec>(&part, 1), std::span<const int>(&fd, 1)));
  message_stream s(1024);
  auto got = receive_into(b.get(), s);
  REQUIRE(got);
  CHECK(*got == msg.size());
  message m;
  REQUIRE(s.next(m) == message_stream::state::ready);
  REQUIRE(m.fds.size() == 1);
  CHECK(m.fds[0].get() != ev.get());
  CHECK_FALSE(m.fds_misplaced);
}
