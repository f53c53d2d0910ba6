#pragma once
/// \file
/// The server side of one vfio-user connection (docs/vfio-user.md):
/// `session<Device>` holds a client's protocol state and turns one complete
/// message (from `message_stream`) into at most one reply. Its only system
/// calls are the device's own and those on the fds a peer hands over
/// (checking, closing and signalling them), so the fuzzer drives it directly;
/// `server<Device>` (vfio_user/server.hpp) runs it on a socket.
///
/// Malformed input never terminates the process and never reaches device
/// memory: every command is validated before the device sees it, and refused
/// with a header-only error reply (flags 0x21, positive errno). Framing errors
/// (a size below 16 or above the limit, a message cut short by end of stream)
/// get an EINVAL reply and end the connection.
///
/// REGION_READ/WRITE make exactly one device pread/pwrite at file offset
/// index << 40 | offset and reply with the count it returned: an access that
/// crosses the BAR end comes back short (the kernel's clip, §5.1 step 3), one
/// at or past it is EINVAL, and a short count from the device (§5.1 E7) is
/// passed on, never retried.
///
/// Device memory a peer can reach by fd may be a file the peer truncates (a
/// regular file cannot be sealed): every REGION_READ/WRITE runs under
/// posix::guard_faults, so an access past the file's new end is refused with
/// EIO (and reported) instead of killing the process with SIGBUS. (A fault
/// abandons the device's pread/pwrite where it stood: a device must not hold a
/// lock or an allocation across its memory copy. The shim's copy path holds
/// neither; a device whose memory is reached by system calls never faults.)
///
/// If `Device` has `region_source(index) -> std::optional<mem::map_source>`,
/// regions with the MMAP flag are offered with that fd (SCM_RIGHTS, first byte
/// of the GET_REGION_INFO reply) and the reply's `offset` is the source offset;
/// without it (or with `server_options::share_region_fds` false), MMAP is
/// cleared and every access goes through REGION_READ/WRITE.
///
/// IRQ eventfds: SET_IRQS(EVENTFD) takes only eventfds (anything else is
/// EINVAL and nothing is assigned) and makes them non-blocking; a trigger
/// never blocks (posix::signal_eventfd): an eventfd whose counter is full is
/// an EAGAIN reply and an `irq_signal_failed` event.

#include <nvgrace/backend/vfio_user/capabilities.hpp>
#include <nvgrace/backend/vfio_user/protocol.hpp>
#include <nvgrace/backend/vfio_user/transport.hpp>
#include <nvgrace/core/bytes.hpp>
#include <nvgrace/core/checked.hpp>
#include <nvgrace/core/result.hpp>
#include <nvgrace/core/text_view.hpp>
#include <nvgrace/detail/minmax.hpp>
#include <nvgrace/mem/device_memory.hpp>
#include <nvgrace/posix/error.hpp>
#include <nvgrace/posix/eventfd.hpp>
#include <nvgrace/posix/fault_guard.hpp>
#include <nvgrace/posix/unique_fd.hpp>
#include <nvgrace/vfio/abi.hpp>
#include <nvgrace/vfio/device_file.hpp>
#include <nvgrace/vfio/region_info.hpp>

#include <sys/uio.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace nvgrace::vfio_user {

/// A device that can name the fd (and offset) behind a region's mappable
/// area. Detected, not required.
template <class D>
concept region_source_provider = requires(D& d, std::uint32_t index) {
  { d.region_source(index) } -> std::same_as<std::optional<mem::map_source>>;
};

/// What the server reports to its owner (for logging). Delivered on the
/// serving thread.
struct event {
  enum class kind : std::uint8_t {
    connected,          ///< a client was accepted (`peer_pid` when known, else -1)
    disconnected,       ///< the client went away or was dropped (`messages` handled)
    negotiated,         ///< VERSION succeeded (`minor` = the reply's minor)
    error_reply,        ///< a command was refused (`request`, `error`; `replied` false under NO_REPLY)
    framing_error,      ///< the stream could not be framed (or its peer sent fds beyond the budget); closed
    socket_error,       ///< a receive or send failed (`error`)
    timed_out,          ///< a deadline passed (`detail` says which); the connection is closed
    irq_signal_failed,  ///< an IRQ eventfd could not be signalled (`error`: EAGAIN when its counter is full)
    memory_fault,       ///< a REGION_READ/WRITE faulted: the memory's file shrank (`request`; replied EIO)
  };
  event::kind what = kind::connected;
  header request{};
  errc error{};
  bool replied = false;
  std::uint64_t messages = 0;
  int peer_pid = -1;
  std::uint16_t minor = 0;
  /// disconnected: the messages of the connection, by command.
  const command_counts* counts = nullptr;
  /// A fixed sentence for the log (timed_out, framing_error, irq_signal_failed), or nullptr.
  const char* detail = nullptr;
};

/// Called for every event; `context` is `server_options::event_context`.
using event_callback = void (*)(void* context, const event& e) noexcept;

/// Server limits, deadlines and what VERSION advertises. A deadline of 0
/// means "no limit". docs/vfio-user.md, "Limits", explains the defaults.
struct server_options {
  /// Largest REGION_READ/WRITE count accepted (advertised as max_data_xfer_size).
  std::uint32_t max_data_xfer_size = default_max_data_xfer_size;
  /// Most fds accepted in one message (advertised as max_msg_fds; ≤ 64).
  std::uint32_t max_msg_fds = 16;
  /// Most DMA windows one client may have (advertised as max_dma_maps).
  std::uint32_t max_dma_maps = 65535;
  /// The highest minor version spoken; the reply carries min(client's, this).
  std::uint16_t minor = 0;
  /// From accept to a successful VERSION, in ms: a client that connects and
  /// says nothing is dropped, so it cannot hold the device from the next one.
  std::uint32_t handshake_timeout_ms = 10'000;
  /// From a message's first byte to its last, in ms: a peer that stops (or
  /// trickles) inside a message is dropped.
  std::uint32_t message_timeout_ms = 10'000;
  /// Between messages once negotiated, in ms. Off by default: an attached VMM
  /// whose guest touches only mapped memory is silent for hours, legitimately.
  std::uint32_t idle_timeout_ms = 0;
  /// For one reply to be taken by the socket, in ms: a peer that stops
  /// reading its replies is dropped.
  std::uint32_t send_timeout_ms = 10'000;
  /// listen(2) backlog of `server::listen`.
  int backlog = default_listen_backlog;
  /// Offer region fds (MMAP) to peers at all. False keeps every byte of
  /// device memory behind REGION_READ/WRITE, e.g. for a memory file no peer
  /// may be able to truncate.
  bool share_region_fds = true;
  event_callback on_event = nullptr;
  void* event_context = nullptr;
};

/// Page size of DMA windows (advertised as pgsizes).
inline constexpr std::uint64_t dma_page_size = 4096;

/// The protocol state of one client connection and its dispatcher.
template <vfio::device_file Device>
class session {
public:
  /// What to do after a message.
  struct outcome {
    /// Bytes to send (empty: no reply).
    std::span<const std::byte> reply;
    /// An fd to attach to the reply (borrowed from the device), or -1.
    int fd = -1;
    /// Close the connection after sending.
    bool close = false;
    /// The error replied (or swallowed under NO_REPLY), if any.
    errc error{};
  };

  /// Buffers are allocated here, once; handling messages allocates only for
  /// per-client state (DMA windows, IRQ eventfds).
  session(Device& device, const server_options& options)
      : device_(device),
        options_(options),
        reply_(header_size + region_access_size + std::size_t{options.max_data_xfer_size}) {
    NVGRACE_EXPECTS(options.max_msg_fds <= max_fds_per_message);
    NVGRACE_EXPECTS(options.max_data_xfer_size >= vfio::region_info_size + 4096);
    // Now rather than at the first access: a program that installs its own
    // SIGBUS handler later knowingly replaces it.
    static_cast<void>(posix::install_fault_handler());
  }

  /// Forget the client: its DMA windows, IRQ eventfds (closed) and negotiation.
  void reset() noexcept {
    dma_maps_.clear();
    irq_triggers_.clear();
    negotiated_ = false;
    client_max_msg_fds_ = protocol_default_max_msg_fds;
    messages_ = 0;
    counts_ = {};
  }

  /// Handle one complete message; its fds are consumed (kept or closed).
  outcome handle(message& m) {
    ++messages_;
    counts_.count(m.header.command);
    if (m.payload().size() >= region_access_size)
      counts_.count_region_access(m.header.command, load_region_access(m.payload()).region);
    reply_fd_ = -1;
    close_ = false;
    const header& h = m.header;
    const bool is_command = (h.flags & message_flags::type_mask) == message_flags::type_command;
    status result = check_header(m);
    std::size_t payload_size = 0;
    if (result) {
      auto handled = dispatch(m);
      if (handled)
        payload_size = *handled;
      else
        result = handled.error();
    }
    m.fds.clear();  // whatever a handler did not keep is closed now
    const bool silent = is_command && (h.flags & message_flags::no_reply) != 0;
    if (!result) {
      report_error(h, result.error(), !silent);
      if (silent) return {{}, -1, close_, result.error()};
      store_header(reply_, error_header(h, result.error()));
      return {std::span<const std::byte>(reply_).first(header_size), -1, close_, result.error()};
    }
    if (silent) return {{}, -1, close_, {}};
    store_header(reply_, reply_header(h, payload_size));
    return {std::span<const std::byte>(reply_).first(header_size + payload_size), reply_fd_, close_, {}};
  }

  /// The reply to a message whose size cannot be framed (or that end of
  /// stream cut short): EINVAL, then close.
  outcome framing_error(const header& h) noexcept {
    report(event{event::kind::framing_error, h, errc::invalid_argument, true, messages_, -1, 0});
    store_header(reply_, error_header(h, errc::invalid_argument));
    return {std::span<const std::byte>(reply_).first(header_size), -1, true, errc::invalid_argument};
  }

  [[nodiscard]] std::uint64_t messages() const noexcept { return messages_; }
  /// The messages of this connection so far, by command (framing errors not included).
  [[nodiscard]] const command_counts& counts() const noexcept { return counts_; }
  [[nodiscard]] bool negotiated() const noexcept { return negotiated_; }
  /// DMA windows the client has mapped.
  [[nodiscard]] std::size_t dma_map_count() const noexcept { return dma_maps_.size(); }
  /// IRQ eventfds the client has assigned (all indexes).
  [[nodiscard]] std::size_t irq_eventfd_count() const noexcept {
    std::size_t n = 0;
    for (const auto& index : irq_triggers_)
      for (const auto& fd : index) n += fd.valid() ? 1 : 0;
    return n;
  }

  /// Signal the eventfd the client assigned to vector `vector` of IRQ `index`,
  /// never blocking. ENOENT when none is assigned; EAGAIN when its counter is
  /// full (reported as `irq_signal_failed`), or the errno of the write.
  status trigger_irq(std::uint32_t index, std::uint32_t vector) noexcept { return signal_vector(index, vector, {}); }

  void report(const event& e) const noexcept {
    if (options_.on_event != nullptr) options_.on_event(options_.event_context, e);
  }

private:
  static constexpr errc einval = errc::invalid_argument;

  struct dma_window {
    std::uint64_t size;
    std::uint64_t offset;
    std::uint32_t flags;
    bool had_fd;
  };

  void report_error(const header& h, errc e, bool replied) const noexcept {
    report(event{event::kind::error_reply, h, e, replied, messages_, -1, 0});
  }

  status check_header(const message& m) const noexcept {
    const header& h = m.header;
    if ((h.flags & message_flags::type_mask) != message_flags::type_command) return einval;
    if ((h.flags & ~(message_flags::type_mask | message_flags::no_reply)) != 0) return einval;
    if (h.error != 0) return einval;  // reserved in commands
    if (m.fds_misplaced) return einval;
    return {};
  }

  /// Run the command; the result is the reply payload size (written at reply_ + 16).
  result<std::size_t> dispatch(message& m) {
    const auto cmd = static_cast<command>(m.header.command);
    if (!negotiated_ && cmd != command::version) return einval;
    // Only DMA_MAP and SET_IRQS take fds.
    if (!m.fds.empty() && cmd != command::dma_map && cmd != command::device_set_irqs) return einval;
    switch (cmd) {
      case command::version: return do_version(m);
      case command::dma_map: return do_dma_map(m);
      case command::dma_unmap: return do_dma_unmap(m);
      case command::device_get_info: return do_get_info(m);
      case command::device_get_region_info: return do_get_region_info(m);
      case command::device_get_irq_info: return do_get_irq_info(m);
      case command::device_set_irqs: return do_set_irqs(m);
      case command::region_read: return do_region_read(m);
      case command::region_write: return do_region_write(m);
      case command::device_reset: return do_reset(m);
      default: return einval;  // unknown, server-to-client, or not implemented (no migration, no write-multi)
    }
  }

  [[nodiscard]] std::span<std::byte> out() noexcept { return std::span<std::byte>(reply_).subspan(header_size); }

  result<vfio::device_info> device_info() noexcept {
    if (!device_info_) {
      auto info = device_.get_device_info();
      if (!info) return info.error();
      device_info_ = *info;
    }
    return *device_info_;
  }

  result<std::size_t> do_version(const message& m) {
    if (negotiated_) return einval;
    const auto payload = m.payload();
    if (payload.size() < version_fixed_size) return einval;
    const auto major = load_le<std::uint16_t>(payload, 0);
    const auto minor = load_le<std::uint16_t>(payload, 2);
    if (major != protocol_major) {
      close_ = true;  // no common protocol: nothing else can follow
      return einval;
    }
    capabilities client{};
    if (payload.size() > version_fixed_size) {
      const auto json = payload.subspan(version_fixed_size);
      if (json.back() != std::byte{0}) return einval;  // the JSON must be NUL-terminated
      const text_view text(reinterpret_cast<const char*>(json.data()), json.size() - 1);
      auto parsed = parse_capabilities(text);
      if (!parsed) return einval;
      client = *parsed;
    }
    if (client.max_msg_fds && *client.max_msg_fds > 1024) return einval;
    if (client.max_data_xfer_size && *client.max_data_xfer_size == 0) return einval;
    client_max_msg_fds_ = client.max_msg_fds.value_or(protocol_default_max_msg_fds);

    const std::uint16_t reply_minor = nvgrace::detail::min(minor, options_.minor);
    capabilities ours;
    ours.max_msg_fds = options_.max_msg_fds;
    ours.max_data_xfer_size = options_.max_data_xfer_size;
    ours.max_dma_maps = options_.max_dma_maps;
    ours.pgsizes = dma_page_size;
    auto o = out();
    store_le<std::uint16_t>(o, 0, protocol_major);
    store_le<std::uint16_t>(o, 2, reply_minor);
    auto text = std::span<char>(reinterpret_cast<char*>(o.data() + version_fixed_size), o.size() - version_fixed_size);
    auto written = format_capabilities(text, ours);
    if (!written) return written.error();
    negotiated_ = true;
    report(event{event::kind::negotiated, m.header, {}, true, messages_, -1, reply_minor});
    return version_fixed_size + *written;
  }

  result<std::size_t> do_get_info(const message& m) {
    const auto payload = m.payload();
    // Tolerant: clients send 16 or 20 bytes and count argsz differently (1.5).
    if (payload.size() < device_info_size) return einval;
    if (load_le<std::uint32_t>(payload, 0) < device_info_size) return einval;
    auto info = device_info();
    if (!info) return info.error();
    auto o = out();
    store_le<std::uint32_t>(o, 0, static_cast<std::uint32_t>(device_info_size));
    store_le<std::uint32_t>(o, 4, info->flags & (vfio::device_flags::reset | vfio::device_flags::pci));
    store_le<std::uint32_t>(o, 8, info->num_regions);
    store_le<std::uint32_t>(o, 12, info->num_irqs);
    return device_info_size;
  }

  /// The fd behind region `index`, when the device can name one and the client can receive it.
  std::optional<mem::map_source> source_of(std::uint32_t index) {
    if constexpr (region_source_provider<Device>) {
      if (client_max_msg_fds_ == 0 || !options_.share_region_fds) return std::nullopt;
      auto source = device_.region_source(index);
      if (source && source->fd >= 0) return source;
    }
    static_cast<void>(index);
    return std::nullopt;
  }

  result<std::size_t> do_get_region_info(const message& m) {
    const auto payload = m.payload();
    if (payload.size() < vfio::region_info_size) return einval;
    const auto argsz = load_le<std::uint32_t>(payload, 0);
    const auto index = load_le<std::uint32_t>(payload, 8);
    if (argsz < vfio::region_info_size) return einval;
    auto info = device_info();
    if (!info) return info.error();
    if (index >= info->num_regions) return einval;

    auto o = out();
    // First ask with the bare struct to learn the size the caps need.
    vfio::store_region_info(o, vfio::region_info{vfio::region_info_size, 0, index, 0, 0, 0});
    if (auto s = device_.get_region_info(o.first(vfio::region_info_size)); !s) return s.error();
    auto first = vfio::load_region_info(o);
    std::uint64_t needed = vfio::region_info_size;
    if ((first.flags & vfio::region_flags::caps) != 0 && first.argsz > vfio::region_info_size) needed = first.argsz;
    if (needed > o.size()) return errc::no_buffer_space;
    const bool caps_fit = argsz >= needed;
    std::size_t payload_size = vfio::region_info_size;
    if (caps_fit && needed > vfio::region_info_size) {
      vfio::store_region_info(o, vfio::region_info{static_cast<std::uint32_t>(needed), 0, index, 0, 0, 0});
      if (auto s = device_.get_region_info(o.first(static_cast<std::size_t>(needed))); !s) return s.error();
      payload_size = static_cast<std::size_t>(needed);
    }
    // The kernel form becomes the wire form: argsz = needed, CAPS only with the chain.
    auto info_out = wire_region_info(vfio::load_region_info(o), static_cast<std::uint32_t>(needed),
                                     payload_size > vfio::region_info_size);
    info_out.index = index;
    const auto source = (info_out.flags & vfio::region_flags::mmap) != 0 ? source_of(index) : std::nullopt;
    if (source) {
      info_out.offset = source->offset;
      if (caps_fit) reply_fd_ = source->fd;  // the fd travels only with the whole answer
    } else {
      info_out.flags &= ~vfio::region_flags::mmap;
      info_out.offset = 0;
    }
    vfio::store_region_info(o, info_out);
    return payload_size;
  }

  result<std::size_t> do_get_irq_info(const message& m) {
    const auto payload = m.payload();
    if (payload.size() < irq_info_size) return einval;
    if (load_le<std::uint32_t>(payload, 0) < irq_info_size) return einval;
    const auto index = load_le<std::uint32_t>(payload, 8);
    auto info = device_info();
    if (!info) return info.error();
    if (index >= info->num_irqs) return einval;
    vfio::irq_info irq{static_cast<std::uint32_t>(irq_info_size), 0, index, 0};
    if (auto s = device_.get_irq_info(irq); !s) return s.error();
    auto o = out();
    store_le<std::uint32_t>(o, 0, static_cast<std::uint32_t>(irq_info_size));
    store_le<std::uint32_t>(o, 4, irq.flags);
    store_le<std::uint32_t>(o, 8, index);
    store_le<std::uint32_t>(o, 12, irq.count);
    return irq_info_size;
  }

  status signal_vector(std::uint32_t index, std::uint32_t vector, const header& request) noexcept {
    if (index >= irq_triggers_.size() || vector >= irq_triggers_[index].size() || !irq_triggers_[index][vector].valid())
      return errc::no_such_file_or_directory;
    auto s = posix::signal_eventfd(irq_triggers_[index][vector].get());
    if (!s)
      report(event{event::kind::irq_signal_failed, request, s.error(), false, messages_, -1, 0, nullptr,
                   "the IRQ eventfd cannot be signalled without blocking (its counter is full)"});
    return s;
  }

  /// Signal vectors [start, start + count) of `index` where `wanted(v)`:
  /// every one is tried; the result is the last failure other than "none assigned".
  template <class Wanted>
  status trigger_range(std::uint32_t index, std::uint32_t start, std::uint32_t count, const header& request,
                       Wanted&& wanted) noexcept {
    status last_failure;
    for (std::uint32_t v = 0; v < count; ++v) {
      if (!wanted(v)) continue;
      if (auto s = signal_vector(index, start + v, request); !s && s.error() != errc::no_such_file_or_directory)
        last_failure = s;
    }
    return last_failure;
  }

  /// Every fd of a SET_IRQS(EVENTFD) must be an eventfd, made non-blocking
  /// before anything is assigned (EINVAL otherwise).
  static status check_eventfds(std::span<const unique_fd> fds) noexcept {
    for (const auto& fd : fds) {
      const auto is = posix::is_eventfd(fd.get());
      if (!is || !*is) return einval;
    }
    for (const auto& fd : fds)
      if (auto s = posix::set_nonblocking(fd.get()); !s) return s;
    return {};
  }

  result<std::size_t> do_set_irqs(message& m) {
    namespace f = vfio::irq_set_flags;
    const auto payload = m.payload();
    if (payload.size() < irq_set_size) return einval;
    const auto argsz = load_le<std::uint32_t>(payload, 0);
    const auto flags = load_le<std::uint32_t>(payload, 4);
    const auto index = load_le<std::uint32_t>(payload, 8);
    const auto start = load_le<std::uint32_t>(payload, 12);
    const auto count = load_le<std::uint32_t>(payload, 16);
    if (argsz < irq_set_size) return einval;
    const std::uint32_t data = flags & (f::data_none | f::data_bool | f::data_eventfd);
    const std::uint32_t action = flags & (f::action_mask | f::action_unmask | f::action_trigger);
    if ((flags & ~(data | action)) != 0) return einval;
    if (std::popcount(data) != 1 || std::popcount(action) != 1) return einval;
    auto info = device_info();
    if (!info) return info.error();
    if (index >= info->num_irqs) return einval;
    const bool disable = data == f::data_none && action == f::action_trigger && count == 0;
    if (disable) {
      if (payload.size() != irq_set_size || start != 0) return einval;
      if (index < irq_triggers_.size()) irq_triggers_[index].clear();
      return 0;
    }
    vfio::irq_info irq{static_cast<std::uint32_t>(irq_info_size), 0, index, 0};
    if (auto s = device_.get_irq_info(irq); !s) return s.error();
    if (!range_within(start, count, irq.count)) return einval;
    if (action != f::action_trigger && (irq.flags & vfio::irq_flags::maskable) == 0) return einval;
    const std::size_t fds = m.fds.size();
    switch (data) {
      case f::data_none: {
        if (payload.size() != irq_set_size || fds != 0) return einval;
        if (action != f::action_trigger) return 0;
        auto s = trigger_range(index, start, count, m.header, [](std::uint32_t) { return true; });
        if (!s) return s.error();
        return 0;
      }
      case f::data_bool: {
        if (payload.size() != irq_set_size + std::size_t{count} || fds != 0) return einval;
        if (action != f::action_trigger) return 0;
        auto s = trigger_range(index, start, count, m.header,
                               [&](std::uint32_t v) { return payload[irq_set_size + v] != std::byte{0}; });
        if (!s) return s.error();
        return 0;
      }
      default: {                                         // eventfds, in SCM_RIGHTS; none de-assigns the range
        if (action != f::action_trigger) return einval;  // only trigger eventfds are kept
        if (payload.size() != irq_set_size && payload.size() != irq_set_size + 4 * std::size_t{count}) return einval;
        if (fds != 0 && fds != count) return einval;
        if (fds > options_.max_msg_fds) return einval;
        if (auto s = check_eventfds(m.fds); !s) return s.error();
        if (irq_triggers_.size() <= index) irq_triggers_.resize(std::size_t{index} + 1);
        auto& vectors = irq_triggers_[index];
        if (vectors.size() < std::size_t{start} + count) vectors.resize(std::size_t{start} + count);
        for (std::uint32_t v = 0; v < count; ++v)
          vectors[start + v] = fds == 0 ? unique_fd{} : std::move(m.fds[v]);  // replacing closes the old one
        return 0;
      }
    }
  }

  result<std::size_t> do_dma_map(message& m) {
    const auto payload = m.payload();
    if (payload.size() != dma_map_size) return einval;
    const auto req = load_dma_map(payload);
    if (req.argsz != dma_map_size) return einval;
    if ((req.flags & ~(dma_map_flags::read | dma_map_flags::write)) != 0) return einval;
    if (req.size == 0 || !checked_add(req.address, req.size)) return einval;
    if (!is_aligned(req.address, dma_page_size) || !is_aligned(req.size, dma_page_size)) return einval;
    if (m.fds.size() > 1) return einval;
    if (!m.fds.empty() && (!is_aligned(req.offset, dma_page_size) || !checked_add(req.offset, req.size))) return einval;
    // Windows never overlap: the one after must start at or past our end, the one before end at or before our start.
    auto after = dma_maps_.lower_bound(req.address);
    if (after != dma_maps_.end() && after->first < req.address + req.size) return errc::file_exists;
    if (after != dma_maps_.begin()) {
      auto before = after;
      --before;
      if (before->first + before->second.size > req.address) return errc::file_exists;
    }
    if (dma_maps_.size() >= options_.max_dma_maps) return errc::no_space_on_device;
    dma_maps_.emplace(req.address, dma_window{req.size, req.offset, req.flags, !m.fds.empty()});
    // The device does no DMA: the window is recorded, the fd is closed (by handle()).
    return 0;
  }

  result<std::size_t> do_dma_unmap(const message& m) {
    const auto payload = m.payload();
    if (payload.size() != dma_unmap_size) return einval;
    const auto req = load_dma_unmap(payload);
    if (req.argsz < dma_unmap_size) return einval;
    if (req.flags == dma_unmap_flags::unmap_all) {
      if (req.address != 0 || req.size != 0) return einval;
      dma_maps_.clear();
    } else {
      if (req.flags != 0) return einval;  // no dirty bitmaps: no migration
      auto it = dma_maps_.find(req.address);
      if (it == dma_maps_.end() || it->second.size != req.size) return errc::no_such_file_or_directory;
      dma_maps_.erase(it);
    }
    auto o = out();
    std::memcpy(o.data(), payload.data(), payload.size());  // the reply echoes the request
    return dma_unmap_size;
  }

  result<std::size_t> do_reset(const message& m) {
    if (!m.payload().empty()) return einval;
    if (auto s = device_.reset(); !s) return s.error();
    return 0;
  }

  /// A device access that may touch memory a peer can truncate: a fault is
  /// EIO and a `memory_fault` event (the bytes before the fault may be written).
  template <class Access>
  result<std::size_t> guarded(const header& request, Access&& access) noexcept {
    auto done = posix::guard_faults(access);
    if (done) return *done;
    report(event{event::kind::memory_fault, request, errc::io_error, true, messages_, -1, 0, nullptr,
                 "the access touched memory past the end of its file (truncated by someone holding its fd)"});
    return errc::io_error;
  }

  /// Shared checks of REGION_READ/WRITE; the result is the device file offset.
  result<std::uint64_t> access_position(const region_access& a) noexcept {
    if (a.count > options_.max_data_xfer_size) return einval;
    auto info = device_info();
    if (!info) return info.error();
    if (a.region >= info->num_regions) return einval;
    if (a.offset > vfio::offset_mask) return einval;  // would name another region
    return vfio::file_offset(a.region, a.offset);
  }

  result<std::size_t> do_region_read(const message& m) {
    const auto payload = m.payload();
    if (payload.size() != region_access_size) return einval;
    auto a = load_region_access(payload);
    auto pos = access_position(a);
    if (!pos) return pos.error();
    auto o = out();
    // The device copies straight into the reply; one call, its count is the reply's (short at the BAR end).
    auto done = guarded(m.header, [&] { return device_.pread(o.subspan(region_access_size, a.count), *pos); });
    if (!done) return done.error();
    if (*done > a.count) return errc::io_error;
    a.count = static_cast<std::uint32_t>(*done);
    store_region_access(o, a);
    return region_access_size + *done;
  }

  result<std::size_t> do_region_write(const message& m) {
    const auto payload = m.payload();
    if (payload.size() < region_access_size) return einval;
    auto a = load_region_access(payload);
    if (payload.size() - region_access_size != a.count) return einval;
    auto pos = access_position(a);
    if (!pos) return pos.error();
    auto done = guarded(m.header, [&] { return device_.pwrite(payload.subspan(region_access_size), *pos); });
    if (!done) return done.error();
    if (*done > a.count) return errc::io_error;
    a.count = static_cast<std::uint32_t>(*done);
    store_region_access(out(), a);
    return region_access_size;
  }

  Device& device_;
  server_options options_;
  std::vector<std::byte> reply_;
  std::optional<vfio::device_info> device_info_;
  std::map<std::uint64_t, dma_window> dma_maps_;
  std::vector<std::vector<unique_fd>> irq_triggers_;
  std::uint64_t client_max_msg_fds_ = protocol_default_max_msg_fds;
  std::uint64_t messages_ = 0;
  command_counts counts_{};
  int reply_fd_ = -1;
  bool negotiated_ = false;
  bool close_ = false;
};

}  // namespace nvgrace::vfio_user
