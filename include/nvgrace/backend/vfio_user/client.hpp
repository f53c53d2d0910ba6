#pragma once
/// \file
/// `vfio_user::client`: an `vfio::device_file` over a vfio-user socket, so a
/// VMM reaches a vfio-user device exactly as it reaches /dev/vfio or the
/// in-process shim.
///
/// Mapping of the device-file calls (file offsets are index << 40 + offset):
/// - get_device_info → DEVICE_GET_INFO;
/// - get_region_info → DEVICE_GET_REGION_INFO with the caller's argsz; the
///   reply is rewritten to what the kernel would return (argsz echoed when the
///   caps fit, CAPS set when they do not, `offset` = index << 40). The fd the
///   server sends with a complete reply is kept per region;
/// - mmap → mmap of that fd at the server's region offset + the offset inside
///   the region, inside a sparse area (else EINVAL, as the driver's memlength
///   bound);
/// - pread/pwrite → REGION_READ/WRITE split by the server's
///   max_data_xfer_size; a short chunk ends the transfer (short count);
/// - get_irq_info → DEVICE_GET_IRQ_INFO; reset → DEVICE_RESET.
///
/// Every reply has a timeout (`client_options::timeout`, ETIMEDOUT): by
/// default SO_RCVTIMEO bounds each receive, so the common one-receive reply
/// costs no extra system call, and a reply that arrives in pieces gets at most
/// one more timeout in total; `wait_mode::poll` polls before every receive
/// against one deadline instead. A timeout, a malformed reply (EPROTO,
/// EMSGSIZE) or a lost connection closes the socket: later calls fail with
/// ENOTCONN (one request is outstanding at a time, so a late reply could never
/// be told apart). An error reply is just its errno.
///
/// Small messages (≤ 4 KiB + 64) go through send(2)/recv(2) on contiguous
/// buffers; larger ones are gathered/scattered with sendmsg/recvmsg so the
/// data is copied once. Only GET_REGION_INFO replies are received with room
/// for an fd; an fd a server attaches to any other reply is closed by the
/// kernel and never reaches this process.

#include <nvgrace/backend/vfio_user/capabilities.hpp>
#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/backend/vfio_user/transport.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>
#include <nvgrace/detail/minmax.hpp>
#include <nvgrace/posix/clock.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/unique_fd.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/caps.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace nvgrace::vfio_user {

/// Client settings.
struct client_options {
  /// The longest wait for any reply (and for a blocked send), in milliseconds.
  std::uint32_t timeout_ms = 5000;
  /// The largest REGION_READ/WRITE chunk this client sends, whatever the server allows.
  std::uint32_t max_data_xfer_size = default_max_data_xfer_size;
  /// How the reply wait is bounded: a socket receive timeout (SO_RCVTIMEO; one
  /// system call per reply) or poll(2) before every receive (two).
  enum class wait_mode : std::uint8_t { socket_timeout, poll } wait = wait_mode::socket_timeout;
};

/// Defensive bounds on what a server may announce (QEMU's values).
inline constexpr std::uint32_t client_max_regions = 100;
inline constexpr std::uint32_t client_max_irqs = 50;
/// The largest region info (struct + capability chain) `mmap` fetches on its
/// own: room for ~4000 sparse areas. A server needing more is EMSGSIZE.
inline constexpr std::uint32_t client_max_region_info_size = 64 * 1024;

/// A vfio-user device seen through the device-file concept.
class client {
public:
  client() noexcept = default;
  client(client&&) noexcept = default;
  client& operator=(client&&) noexcept = default;
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() = default;

  /// Connect to the server listening at `path`, negotiate VERSION and read
  /// the device info.
  [[nodiscard]] static result<client> connect(const char* path, client_options options = {}) {
    auto fd = connect_unix(path);
    if (!fd) return fd.error();
    return adopt(fd->release(), options);
  }

  /// Take a connected stream socket (e.g. one end of a socketpair) and negotiate on it.
  [[nodiscard]] static result<client> adopt(int socket, client_options options = {}) {
    client c;
    c.socket_.reset(socket);
    c.options_ = options;
    if (!c.socket_) return errc::bad_file_descriptor;
    if (auto s = c.set_timeouts(); !s) return s.error();
    if (auto s = c.negotiate(); !s) return s.error();
    auto info = c.get_device_info();
    if (!info) return info.error();
    return c;
  }

  // ---- vfio::device_file -------------------------------------------------------

  /// DEVICE_GET_INFO. The result reads as the kernel's 20-byte struct would:
  /// argsz 20, cap_offset 0 (vfio-user has no device capabilities).
  [[nodiscard]] result<vfio::device_info> get_device_info() {
    std::array<std::byte, device_info_size> request{};
    store_le<std::uint32_t>(request, 0, static_cast<std::uint32_t>(device_info_size));
    std::array<std::byte, 64> reply{};
    auto got = transact(command::device_get_info, as_parts(request), reply, {}, nullptr);
    if (!got) return got.error();
    if (got->payload < device_info_size) return fail(errc::protocol_error);
    vfio::device_info info{static_cast<std::uint32_t>(sizeof(vfio::device_info)), load_le<std::uint32_t>(reply, 4),
                           load_le<std::uint32_t>(reply, 8), load_le<std::uint32_t>(reply, 12), 0};
    if (info.num_regions > client_max_regions || info.num_irqs > client_max_irqs) return fail(errc::protocol_error);
    info_ = info;
    if (regions_.size() != info.num_regions) regions_.resize(info.num_regions);
    return info;
  }

  /// DEVICE_GET_REGION_INFO with kernel argsz semantics (see the file comment).
  /// EFAULT when the buffer is shorter than 32 bytes or than its argsz.
  [[nodiscard]] status get_region_info(std::span<std::byte> buffer) {
    if (buffer.size() < vfio::region_info_size) return errc::bad_address;
    const auto argsz = load_le<std::uint32_t>(buffer, 0);
    const auto index = load_le<std::uint32_t>(buffer, 8);
    if (argsz < vfio::region_info_size) return errc::invalid_argument;
    if (argsz > buffer.size()) return errc::bad_address;
    std::array<std::byte, vfio::region_info_size> request{};
    store_le<std::uint32_t>(request, 0, argsz);
    store_le<std::uint32_t>(request, 8, index);
    // Receive into a copy so a failed or malformed reply leaves the caller's buffer as it was.
    scratch_.resize(argsz);
    unique_fd fd;
    auto got = transact(command::device_get_region_info, as_parts(request), {}, scratch_, &fd);
    if (!got) return got.error();
    const std::size_t payload = got->payload;
    if (payload < vfio::region_info_size || payload > argsz) return fail(errc::protocol_error);
    const auto reply = std::span<const std::byte>(scratch_).first(payload);
    auto info = vfio::load_region_info(reply);
    if (info.index != index || info.argsz < vfio::region_info_size) return fail(errc::protocol_error);
    const bool caps_fit = info.argsz <= argsz;
    const bool has_caps = (info.flags & vfio::region_flags::caps) != 0;
    std::optional<vfio::region_caps> caps;
    if (!caps_fit) {
      // "Ask again with argsz = needed": the bare struct, without CAPS (the wire
      // form) or with CAPS and cap_offset 0 (the kernel's form); never a chain.
      if (payload != vfio::region_info_size || (has_caps && info.cap_offset != 0)) return fail(errc::protocol_error);
    } else if (has_caps) {
      // The chain fits, so it must be here, whole: a CAPS reply without it would
      // leave the caller decoding its own stale bytes as the chain.
      if (payload != info.argsz || payload == vfio::region_info_size) return fail(errc::protocol_error);
      auto decoded = vfio::decode_region_caps(reply);
      if (!decoded) return fail(errc::protocol_error);
      caps = *decoded;
    } else if (payload != vfio::region_info_size || info.argsz != vfio::region_info_size) {
      return fail(errc::protocol_error);  // no caps: the bare struct, needing no more
    }
    const std::uint64_t source_offset = info.offset;
    // What the kernel would have written.
    info.offset = vfio::region_offset(index);
    if (caps_fit) {
      info.argsz = argsz;
    } else {
      info.flags |= vfio::region_flags::caps;
      info.cap_offset = 0;
    }
    std::memcpy(buffer.data(), reply.data(), reply.size());
    vfio::store_region_info(buffer, info);
    if (index < regions_.size()) {
      auto& r = regions_[index];
      r.size = info.size;
      r.flags = info.flags;
      if (caps_fit) {
        r.areas.clear();
        r.has_areas = caps && caps->sparse_mmap;
        if (r.has_areas)
          for (std::uint32_t i = 0; i < caps->sparse_mmap->size(); ++i) r.areas.push_back((*caps->sparse_mmap)[i]);
      }
      if (fd) {
        r.fd = std::move(fd);
        r.fd_offset = source_offset;
      }
    }
    return {};
  }

  /// DEVICE_GET_IRQ_INFO for `irq.index` (argsz < 16 → EINVAL, as the kernel).
  [[nodiscard]] status get_irq_info(vfio::irq_info& irq) {
    if (irq.argsz < irq_info_size) return errc::invalid_argument;
    std::array<std::byte, irq_info_size> request{};
    store_le<std::uint32_t>(request, 0, static_cast<std::uint32_t>(irq_info_size));
    store_le<std::uint32_t>(request, 8, irq.index);
    std::array<std::byte, irq_info_size> reply{};
    auto got = transact(command::device_get_irq_info, as_parts(request), reply, {}, nullptr);
    if (!got) return got.error();
    if (got->payload != irq_info_size || load_le<std::uint32_t>(reply, 8) != irq.index)
      return fail(errc::protocol_error);
    irq.flags = load_le<std::uint32_t>(reply, 4);
    irq.count = load_le<std::uint32_t>(reply, 12);
    return {};
  }

  /// DEVICE_RESET.
  [[nodiscard]] status reset() {
    auto got = transact(command::device_reset, {}, {}, {}, nullptr);
    if (!got) return got.error();
    if (got->payload != 0) return fail(errc::protocol_error);
    return {};
  }

  /// REGION_READ at file offset `pos`, in chunks of at most max_data_xfer_size().
  [[nodiscard]] result<std::size_t> pread(std::span<std::byte> buffer, std::uint64_t pos) {
    return transfer(pos, buffer.size(), [&](const region_access& a, std::size_t done) -> result<std::size_t> {
      std::array<std::byte, region_access_size> request{};
      store_region_access(request, a);
      std::array<std::byte, region_access_size> echo{};
      auto data = buffer.subspan(done, a.count);
      auto got = transact(command::region_read, as_parts(request), echo, data, nullptr);
      if (!got) return got.error();
      const auto r = load_region_access(echo);
      if (got->payload < region_access_size || r.offset != a.offset || r.region != a.region || r.count > a.count ||
          got->payload != region_access_size + std::size_t{r.count})
        return fail(errc::protocol_error);
      return std::size_t{r.count};
    });
  }

  /// REGION_WRITE at file offset `pos`, in chunks of at most max_data_xfer_size().
  [[nodiscard]] result<std::size_t> pwrite(std::span<const std::byte> data, std::uint64_t pos) {
    return transfer(pos, data.size(), [&](const region_access& a, std::size_t done) -> result<std::size_t> {
      std::array<std::byte, region_access_size> request{};
      store_region_access(request, a);
      const std::array<iovec, 2> parts{iovec{request.data(), request.size()},
                                       iovec{const_cast<std::byte*>(data.data() + done), a.count}};
      std::array<std::byte, region_access_size> echo{};
      auto got = transact(command::region_write, parts, echo, {}, nullptr);
      if (!got) return got.error();
      const auto r = load_region_access(echo);
      if (got->payload != region_access_size || r.offset != a.offset || r.region != a.region || r.count > a.count)
        return fail(errc::protocol_error);
      return std::size_t{r.count};
    });
  }

  /// Map `length` bytes at file offset `pos` from the fd the server passed for
  /// that region (fetched now if no GET_REGION_INFO brought it yet). MAP_FIXED
  /// at `addr` when non-null. EINVAL: no fd, or the range is outside the
  /// region's sparse areas (or the region without areas); EOVERFLOW: the
  /// offsets overflow.
  [[nodiscard]] result<void*> mmap(void* addr, std::uint64_t length, int prot, std::uint64_t pos) {
    const auto index = vfio::region_index_of(pos);
    const auto offset = vfio::offset_in_region(pos);
    if (!socket_) return errc::not_connected;
    if (index >= regions_.size() || length == 0) return errc::invalid_argument;
    if (!regions_[index].fd)
      if (auto s = refresh_region(index); !s) return s.error();
    const auto& r = regions_[index];
    if (!r.fd || (r.flags & vfio::region_flags::mmap) == 0) return errc::invalid_argument;
    const auto end = checked_add(offset, length);
    if (!end) return errc::value_too_large;
    bool inside = false;
    if (r.has_areas) {
      for (const auto& area : r.areas) inside = inside || (offset >= area.offset && *end - area.offset <= area.size);
    } else {
      inside = *end <= r.size;
    }
    if (!inside) return errc::invalid_argument;
    const auto file_offset = checked_add(r.fd_offset, offset);
    if (!file_offset || *file_offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) ||
        length > std::numeric_limits<std::size_t>::max())
      return errc::value_too_large;
    void* p = ::mmap(addr, static_cast<std::size_t>(length), prot, MAP_SHARED | (addr != nullptr ? MAP_FIXED : 0),
                     r.fd.get(), static_cast<off_t>(*file_offset));
    if (p == MAP_FAILED) return posix::last_error();
    return p;
  }

  // ---- vfio-user specifics -------------------------------------------------------

  /// The negotiated minor version.
  [[nodiscard]] std::uint16_t minor() const noexcept { return minor_; }
  /// The capabilities the server's VERSION reply named.
  [[nodiscard]] const capabilities& server_capabilities() const noexcept { return server_caps_; }
  /// The REGION_READ/WRITE chunk size in use.
  [[nodiscard]] std::uint32_t max_data_xfer_size() const noexcept { return chunk_; }
  /// The socket (-1 once closed).
  [[nodiscard]] int socket() const noexcept { return socket_.get(); }
  [[nodiscard]] bool connected() const noexcept { return socket_.valid(); }
  /// The fd the server passed for region `index`, or -1.
  [[nodiscard]] int region_fd(std::uint32_t index) const noexcept {
    return index < regions_.size() ? regions_[index].fd.get() : -1;
  }
  /// Close the connection (the server drops this client's state).
  void close() noexcept { socket_.reset(); }

private:
  struct region_state {
    unique_fd fd;
    std::uint64_t fd_offset = 0;
    std::uint64_t size = 0;
    std::uint32_t flags = 0;
    bool has_areas = false;
    std::vector<vfio::sparse_mmap_area> areas;
  };

  struct received {
    std::size_t payload = 0;
  };

  static std::array<iovec, 1> as_parts(std::span<std::byte> bytes) noexcept {
    return {iovec{bytes.data(), bytes.size()}};
  }

  /// A protocol or transport failure: the stream cannot be trusted any more.
  errc fail(errc e) noexcept {
    socket_.reset();
    return e;
  }

  status set_timeouts() noexcept {
    const std::uint64_t ms = options_.timeout_ms;
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
    if (::setsockopt(socket_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) return posix::last_error();
    if (options_.wait == client_options::wait_mode::socket_timeout &&
        ::setsockopt(socket_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
      return posix::last_error();
    return {};
  }

  status negotiate() {
    std::array<std::byte, 128> request{};
    store_le<std::uint16_t>(request, 0, protocol_major);
    store_le<std::uint16_t>(request, 2, 0);
    capabilities ours;
    ours.max_msg_fds = 1;  // one region fd per reply is all this client takes
    ours.max_data_xfer_size = options_.max_data_xfer_size;
    auto text = std::span<char>(reinterpret_cast<char*>(request.data() + version_fixed_size),
                                request.size() - version_fixed_size);
    auto written = format_capabilities(text, ours);
    if (!written) return written.error();
    std::array<std::byte, 4096> reply{};
    const std::array<iovec, 1> parts{iovec{request.data(), version_fixed_size + *written}};
    auto got = transact(command::version, parts, {}, reply, nullptr);
    if (!got) return got.error();
    if (got->payload < version_fixed_size) return fail(errc::protocol_error);
    if (load_le<std::uint16_t>(reply, 0) != protocol_major || load_le<std::uint16_t>(reply, 2) != 0)
      return fail(errc::protocol_error);
    minor_ = 0;
    if (got->payload > version_fixed_size) {
      if (reply[got->payload - 1] != std::byte{0}) return fail(errc::protocol_error);
      const text_view json(reinterpret_cast<const char*>(reply.data() + version_fixed_size),
                           got->payload - version_fixed_size - 1);
      auto caps = parse_capabilities(json);
      if (!caps) return fail(errc::protocol_error);
      server_caps_ = *caps;
    }
    const std::uint64_t server_max = server_caps_.max_data_xfer_size.value_or(protocol_default_max_data_xfer_size);
    if (server_max == 0) return fail(errc::protocol_error);
    chunk_ = static_cast<std::uint32_t>(nvgrace::detail::min<std::uint64_t>(server_max, options_.max_data_xfer_size));
    if (chunk_ == 0) chunk_ = 1;
    return {};
  }

  /// Ask for region `index` with room for its caps, to learn its fd and areas.
  /// The size the server says it needs is bounded before it sizes a buffer
  /// (EMSGSIZE above client_max_region_info_size; the connection stays); a
  /// server that needs more again on the second ask is EPROTO.
  status refresh_region(std::uint32_t index) {
    std::size_t size = vfio::region_info_size;
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::vector<std::byte> info(size);
      store_le<std::uint32_t>(info, 0, static_cast<std::uint32_t>(size));
      store_le<std::uint32_t>(info, 8, index);
      if (auto s = get_region_info(info); !s) return s;
      const auto needed = load_le<std::uint32_t>(info, 0);
      if (needed <= size) return {};
      if (needed > client_max_region_info_size) return errc::message_size;
      size = needed;
    }
    return fail(errc::protocol_error);
  }

  /// Split [pos, pos + size) into REGION_READ/WRITE chunks; `one` moves one
  /// chunk and returns its count. A short chunk ends the transfer; an error
  /// after some progress returns the progress.
  template <class One>
  result<std::size_t> transfer(std::uint64_t pos, std::size_t size, One&& one) {
    const auto index = vfio::region_index_of(pos);
    const auto offset = vfio::offset_in_region(pos);
    std::size_t done = 0;
    do {
      const std::uint64_t at = offset + done;
      std::size_t n = nvgrace::detail::min<std::size_t>(size - done, chunk_);
      // Stay inside the region's 2^40 window; the server refuses offsets beyond it.
      if (at > vfio::offset_mask) break;
      n = static_cast<std::size_t>(nvgrace::detail::min<std::uint64_t>(n, vfio::offset_mask + 1 - at));
      auto moved = one(region_access{at, index, static_cast<std::uint32_t>(n)}, done);
      if (!moved) {
        if (done == 0) return moved.error();
        break;
      }
      done += *moved;
      if (*moved < n) break;
    } while (done < size);
    return done;
  }

  /// Messages up to this size travel through contiguous buffers with
  /// send(2)/recv(2): every msghdr-based call costs measurably more (the
  /// header and iovec copies), and small messages are the hot path.
  static constexpr std::size_t small_message = 4096 + 64;

  /// Wait until the socket is readable (poll mode) within the deadline.
  status wait_readable(std::uint64_t deadline_ms) noexcept {
    if (options_.wait != client_options::wait_mode::poll) return {};
    while (true) {
      const std::uint64_t now = posix::monotonic_now_ms();
      if (now > deadline_ms) return errc::timed_out;
      pollfd p{socket_.get(), POLLIN, 0};
      const int n =
          ::poll(&p, 1, static_cast<int>(nvgrace::detail::min<std::uint64_t>(deadline_ms - now + 1, 1u << 30)));
      if (n > 0) return {};
      if (n == 0) return errc::timed_out;
      if (errno != EINTR) return posix::last_error();
    }
  }

  /// The overall bound of one reply. In socket-timeout mode each receive is
  /// bounded by SO_RCVTIMEO and the clock is read only once a reply arrives in
  /// pieces (so a reply takes at most twice the timeout); in poll mode it is
  /// read before the first wait.
  struct reply_deadline {
    std::optional<std::uint64_t> at_ms;
    std::uint64_t get(std::uint32_t timeout_ms) {
      if (!at_ms) at_ms = posix::monotonic_now_ms() + timeout_ms;
      return *at_ms;
    }
  };

  /// What the reply header says, checked against the request.
  enum class verdict : std::uint8_t { ok, error_reply, malformed, too_big };
  [[nodiscard]] static verdict judge(const header& h, std::uint16_t id, command cmd, std::size_t got,
                                     std::size_t capacity) noexcept {
    if (h.id != id || h.command != static_cast<std::uint16_t>(cmd) ||
        (h.flags & message_flags::type_mask) != message_flags::type_reply || (h.flags & ~message_flags::known) != 0 ||
        h.size < header_size || got > h.size)
      return verdict::malformed;
    if ((h.flags & message_flags::error) != 0) return h.size == header_size ? verdict::error_reply : verdict::malformed;
    return h.size > capacity ? verdict::too_big : verdict::ok;
  }

  /// The reply header has arrived: its total size, or the call's error (an
  /// error reply's errno; a malformed or oversized reply closes the connection).
  result<std::size_t> accept_header(const header& h, std::uint16_t id, command cmd, std::size_t got,
                                    std::size_t capacity) noexcept {
    switch (judge(h, id, cmd, got, capacity)) {
      case verdict::malformed: return fail(errc::protocol_error);
      case verdict::too_big: return fail(errc::message_size);
      case verdict::error_reply: return reply_errno(h);
      case verdict::ok: break;
    }
    return std::size_t{h.size};
  }

  /// Before each receive of a reply (`got` bytes of it so far): the overall
  /// deadline once the reply arrives in pieces, and readability in poll mode.
  /// A timeout closes the connection.
  status before_receive(reply_deadline& deadline, std::size_t got) noexcept {
    if (got > 0 && posix::monotonic_now_ms() > deadline.get(options_.timeout_ms)) return fail(errc::timed_out);
    if (options_.wait == client_options::wait_mode::poll)
      if (auto s = wait_readable(deadline.get(options_.timeout_ms)); !s) return fail(s.error());
    return {};
  }

  /// One receive's error, as this client reports it (and the connection is closed).
  errc receive_error(ssize_t r) noexcept {
    if (r == 0) return fail(errc::connection_reset);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return fail(errc::timed_out);
    return fail(posix::last_error());
  }

  /// Send one command and receive its reply: the reply's payload goes to
  /// `fixed` then `data` (it may not exceed their total). `fd_out`: where an
  /// fd that came with the reply goes (nullptr: the reply takes none; an fd
  /// sent anyway is closed by the kernel, which never gives it to us).
  result<received> transact(command cmd, std::span<const iovec> parts, std::span<std::byte> fixed,
                            std::span<std::byte> data, unique_fd* fd_out) {
    if (!socket_) return errc::not_connected;
    std::size_t request_payload = 0;
    for (const auto& p : parts) request_payload += p.iov_len;
    const std::uint16_t id = next_id_++;
    const header request{id, static_cast<std::uint16_t>(cmd), static_cast<std::uint32_t>(header_size + request_payload),
                         message_flags::type_command, 0};
    status sent;
    if (header_size + request_payload <= small_message) {
      std::array<std::byte, small_message> out;  // NOLINT: filled below
      store_header(out, request);
      std::size_t at = header_size;
      for (const auto& p : parts) {
        if (p.iov_len > 0) std::memcpy(out.data() + at, p.iov_base, p.iov_len);
        at += p.iov_len;
      }
      sent = send_bytes(socket_.get(), std::span<const std::byte>(out.data(), at));
    } else {
      std::array<std::byte, header_size> head{};
      store_header(head, request);
      std::array<iovec, 4> out{};
      std::size_t n = 0;
      out[n++] = iovec{head.data(), head.size()};
      for (const auto& p : parts) out[n++] = p;
      sent = send_message(socket_.get(), std::span<const iovec>(out.data(), n));
    }
    if (!sent) {
      // SO_SNDTIMEO expired: the server stopped reading.
      return fail(sent.error() == errc::resource_unavailable_try_again ? errc::timed_out : sent.error());
    }

    const std::size_t capacity = header_size + fixed.size() + data.size();
    if (fd_out == nullptr && capacity <= small_message) return receive_small(id, cmd, fixed, data);
    return receive_scattered(id, cmd, fixed, data, fd_out);
  }

  /// The reply through one contiguous buffer and recv(2), then copied out.
  result<received> receive_small(std::uint16_t id, command cmd, std::span<std::byte> fixed, std::span<std::byte> data) {
    std::array<std::byte, small_message> in;  // NOLINT: filled by recv
    const std::size_t capacity = header_size + fixed.size() + data.size();
    std::size_t got = 0;
    std::size_t target = header_size;  // bytes needed: the header, then the whole message
    std::size_t limit = capacity;      // bytes that may be read (never past this reply)
    reply_deadline deadline;
    if (options_.wait == client_options::wait_mode::poll) deadline.get(options_.timeout_ms);
    while (got < target) {
      if (auto s = before_receive(deadline, got); !s) return s.error();
      const ssize_t r = ::recv(socket_.get(), in.data() + got, limit - got, 0);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        return receive_error(r);
      }
      const bool had_header = got >= header_size;
      got += static_cast<std::size_t>(r);
      if (!had_header && got >= header_size) {
        const auto size = accept_header(load_header(in), id, cmd, got, capacity);
        if (!size) return size.error();
        target = limit = *size;
      }
    }
    const std::size_t payload = target - header_size;
    const std::size_t to_fixed = nvgrace::detail::min(payload, fixed.size());
    if (to_fixed > 0) std::memcpy(fixed.data(), in.data() + header_size, to_fixed);
    if (payload > to_fixed) std::memcpy(data.data(), in.data() + header_size + to_fixed, payload - to_fixed);
    return received{payload};
  }

  /// The reply scattered by recvmsg(2) straight into `fixed` and `data`
  /// (large transfers: no copy), with its fd if one may come.
  result<received> receive_scattered(std::uint16_t id, command cmd, std::span<std::byte> fixed,
                                     std::span<std::byte> data, unique_fd* fd_out) {
    std::array<std::byte, header_size> reply_head{};
    const std::size_t capacity = header_size + fixed.size() + data.size();
    std::size_t got = 0;
    std::size_t target = header_size;
    std::size_t limit = capacity;
    reply_deadline deadline;
    if (options_.wait == client_options::wait_mode::poll) deadline.get(options_.timeout_ms);
    while (got < target) {
      if (auto s = before_receive(deadline, got); !s) return s.error();
      std::array<iovec, 3> in{};
      std::size_t count = 0;
      std::size_t skip = got;
      std::size_t room = limit - got;
      auto add = [&](std::byte* base, std::size_t length) {
        if (skip >= length) {
          skip -= length;
          return;
        }
        const std::size_t take = nvgrace::detail::min(length - skip, room);
        if (take > 0) in[count++] = iovec{base + skip, take};
        room -= take;
        skip = 0;
      };
      add(reply_head.data(), header_size);
      add(fixed.data(), fixed.size());
      add(data.data(), data.size());
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
      msghdr msg{};
      msg.msg_iov = in.data();
      msg.msg_iovlen = count;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t r = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        return receive_error(r);
      }
      // One fd, with the first bytes of a reply that may carry one; any other is refused.
      const bool fd_allowed = fd_out != nullptr && got == 0;
      const std::size_t fds_here = detail::take_received_fds(msg, [&](std::size_t position, unique_fd fd) {
        if (fd_allowed && position == 0) *fd_out = std::move(fd);
      });
      if ((msg.msg_flags & MSG_CTRUNC) != 0 || fds_here > (fd_allowed ? 1u : 0u)) return fail(errc::protocol_error);
      const bool had_header = got >= header_size;
      got += static_cast<std::size_t>(r);
      if (!had_header && got >= header_size) {
        const auto size = accept_header(load_header(reply_head), id, cmd, got, capacity);
        if (!size) {
          if (fd_out != nullptr) fd_out->reset();  // a failed reply hands out no fd
          return size.error();
        }
        target = limit = *size;
      }
    }
    return received{target - header_size};
  }

  unique_fd socket_;
  client_options options_;
  capabilities server_caps_;
  std::uint16_t minor_ = 0;
  std::uint16_t next_id_ = 0;
  std::uint32_t chunk_ = default_max_data_xfer_size;
  vfio::device_info info_{};
  std::vector<region_state> regions_;
  std::vector<std::byte> scratch_;
};

static_assert(vfio::device_file<client>);

}  // namespace nvgrace::vfio_user
