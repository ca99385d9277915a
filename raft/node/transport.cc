#include "raft/node/transport.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <iterator>
#include <set>
#include <span>
#include <utility>

#include <fmt/format.h>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include "raft/core/check.h"
#include "raft/core/random.h"
#include "raft/node/log_line.h"
#include "raft/node/transport_internal.h"
#include "schema/convert.h"

namespace raftkv::raft {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Room asked of the decoder for each read: a typical batch arrives in one.
constexpr size_t kReadChunk = size_t{64} << 10;
// A write buffer that grew beyond this for one burst is released once
// written, so that the burst does not pin its memory for the connection's life.
constexpr size_t kRetainedWriteBuffer = size_t{1} << 20;
// Headroom left below max_frame_bytes when grouping messages by their
// estimated size, for the frame's own tables and padding.
constexpr size_t kFrameHeadroom = 1024;

// An upper estimate of a message's encoded size: Message::byte_size() plus
// the FlatBuffers tables and offsets around it and each entry.
size_t encoded_estimate(const Message& m) {
  return m.byte_size() + 64 + 16 * m.entries.size();
}

std::string describe(const asio::error_code& ec) {
  if (ec == asio::error::eof) return "closed by the peer";
  return ec.message();
}

bool is_power_of_two(uint64_t n) {
  return n != 0 && (n & (n - 1)) == 0;
}

void set_peer_socket_options(tcp::socket& socket) {
  // Raft's latency is a few round trips; never let Nagle hold a heartbeat.
  asio::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  // Lets the kernel notice a peer that vanished without a FIN.
  socket.set_option(asio::socket_base::keep_alive(true), ignored);
}

}  // namespace

// OutboundPeer: our one connection to a peer and the messages waiting for
// it. Owned by Transport::Impl and shared with the completion handlers of
// its operations, which may outlive the Transport (stop() marks it stopped;
// a stopped peer's handlers return without touching the Impl).
struct OutboundPeer {
  enum class State {
    kIdle,        // never asked to send; not dialled yet
    kConnecting,  // resolving or connecting; `timer` is the attempt's deadline
    kConnected,
    kBackoff,  // the last attempt or connection failed; `timer` is the redial wait
  };

  OutboundPeer(asio::io_context& io, NodeId id, std::string address, milliseconds backoff)
      : id(id),
        address(std::move(address)),
        socket(io),
        resolver(io),
        timer(io),
        backoff(backoff) {}

  const NodeId id;
  const std::string address;
  State state = State::kIdle;
  bool stopped = false;
  // Bumped whenever the socket is closed or a new attempt starts. A handler
  // carries the epoch it was started in; if that differs, it belongs to an
  // earlier connection and does nothing.
  uint64_t epoch = 0;
  tcp::socket socket;
  tcp::resolver resolver;
  asio::steady_timer timer;

  // Invariant: queued_bytes == sum of byte_size() over queue <= max_queued_bytes.
  std::vector<Message> queue;
  size_t queued_bytes = 0;
  bool dropping = false;  // a queue-full drop streak is on; it is logged once

  // Invariant: non-empty iff a write is in flight (kConnected only). Holds
  // whole frames: the handshake first on a new connection, then peer frames.
  std::string write_buffer;
  uint64_t frames_in_flight = 0;
  uint64_t messages_in_flight = 0;

  // The peer never writes on our outbound connection; we read only to learn
  // that it closed, and discard whatever arrives.
  std::array<char, 512> read_buffer;

  milliseconds backoff;  // the next redial's base delay
  Clock::time_point connected_at;
  uint64_t failed_attempts = 0;  // consecutive, since the last established connection
};

// InboundConnection: a peer's connection to us, after its handshake. Shared
// with its read handler like OutboundPeer; `closed` plays `stopped`'s role.
struct InboundConnection {
  InboundConnection(tcp::socket&& socket, wire::FrameDecoder&& decoder, NodeId peer,
                    std::string remote)
      : socket(std::move(socket)),
        decoder(std::move(decoder)),
        peer(peer),
        remote(std::move(remote)) {}

  tcp::socket socket;
  wire::FrameDecoder decoder;
  const NodeId peer;         // from the handshake: the only identity we trust
  const std::string remote;  // the socket's remote address, for log lines only
  bool closed = false;
};

// Transport::Impl: see transport.h. Runs on the io_context thread only.
class Transport::Impl {
 public:
  Impl(asio::io_context& io, Options options, Callbacks callbacks);

  void send(std::vector<Message>&& messages);
  void stop();
  void accept_inbound(tcp::socket&& socket, wire::FrameDecoder&& decoder,
                      const wire::Handshake& handshake);

  bool connected(NodeId peer) const {
    auto it = peers_.find(peer);
    return it != peers_.end() && it->second->state == OutboundPeer::State::kConnected;
  }
  NodeId self() const { return options_.self; }
  Stats stats() const { return stats_; }

 private:
  using PeerPtr = std::shared_ptr<OutboundPeer>;
  using InboundPtr = std::shared_ptr<InboundConnection>;

  // Outbound.
  void dial(const PeerPtr& p);
  template <class Endpoints>
  void connect_to(const PeerPtr& p, const Endpoints& endpoints);
  void on_connected(const PeerPtr& p);
  void encode_queue(OutboundPeer& p);
  void encode_frames(OutboundPeer& p, std::span<const Message> messages);
  void start_write(const PeerPtr& p);
  void read_outbound(const PeerPtr& p);
  void connection_failed(const PeerPtr& p, std::string_view why);
  milliseconds next_backoff(OutboundPeer& p);

  // Inbound.
  void read_inbound(const InboundPtr& c);
  bool drain_inbound(const InboundPtr& c);
  // Takes `c` by value: a caller may pass inbound_'s own entry, which the
  // erase inside destroys.
  void close_inbound(InboundPtr c, std::string_view why, bool error);

  void log(std::string_view text) const { log_line(component_, text); }

  asio::io_context& io_;
  const Options options_;
  const Callbacks callbacks_;
  const std::string component_;
  std::string handshake_frame_;  // ours, encoded once
  Rng rng_;                      // backoff jitter only
  bool stopped_ = false;
  std::map<NodeId, PeerPtr> peers_;
  // Invariant: at most one live connection per peer; a newer handshake from
  // the same node replaces the older connection, which is likely half-open.
  std::map<NodeId, InboundPtr> inbound_;
  std::set<NodeId> warned_unknown_;  // recipients already logged as unknown
  Stats stats_;
};

Transport::Impl::Impl(asio::io_context& io, Options options, Callbacks callbacks)
    : io_(io),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      component_(fmt::format("transport/{}", options_.self)),
      rng_(options_.self.value) {
  RAFTKV_CHECK(options_.self != kNoNode);
  RAFTKV_CHECK(options_.cluster_id != 0);
  RAFTKV_CHECK(options_.max_frame_bytes >= wire::kPayloadHeaderBytes &&
               options_.max_frame_bytes <= wire::kFrameBytesCeiling);
  RAFTKV_CHECK(options_.reconnect_min.count() >= 1);
  RAFTKV_CHECK(options_.reconnect_max >= options_.reconnect_min);
  RAFTKV_CHECK(options_.connect_timeout.count() >= 1);
  for (const auto& [id, address] : options_.peers) {
    // A cluster's member list usually names this node too; we never dial it.
    if (id == options_.self || id == kNoNode) continue;
    peers_.emplace(id, std::make_shared<OutboundPeer>(io_, id, address, options_.reconnect_min));
  }
  wire::Status s = wire::append_handshake_frame(
      wire::Handshake{wire::kProtocolVersion, options_.cluster_id, options_.self},
      &handshake_frame_);
  RAFTKV_CHECK(s.ok());
}

void Transport::Impl::send(std::vector<Message>&& messages) {
  if (stopped_) {
    stats_.dropped_messages += messages.size();
    return;
  }
  std::vector<PeerPtr> touched;
  for (Message& m : messages) {
    auto it = peers_.find(m.to);
    if (it == peers_.end()) {
      ++stats_.dropped_messages;
      if (warned_unknown_.insert(m.to).second) {
        log(m.to == options_.self
                ? fmt::format("dropping messages to ourselves (node {})", m.to)
                : fmt::format("dropping messages to node {}: not a configured peer", m.to));
      }
      continue;
    }
    OutboundPeer& p = *it->second;
    const size_t size = m.byte_size();
    if (p.queued_bytes + size > options_.max_queued_bytes) {
      ++stats_.dropped_messages;
      if (!p.dropping) {
        p.dropping = true;
        log(fmt::format("queue for peer {} is full ({} bytes): dropping messages until it drains",
                        p.id, p.queued_bytes));
      }
      continue;
    }
    p.queued_bytes += size;
    p.queue.push_back(std::move(m));
    if (std::find(touched.begin(), touched.end(), it->second) == touched.end()) {
      touched.push_back(it->second);
    }
  }
  for (const PeerPtr& p : touched) {
    switch (p->state) {
      case OutboundPeer::State::kIdle:
        dial(p);
        break;
      case OutboundPeer::State::kConnected:
        // Otherwise the write in flight picks the queue up when it completes.
        if (p->write_buffer.empty()) {
          encode_queue(*p);
          start_write(p);
        }
        break;
      case OutboundPeer::State::kConnecting:
      case OutboundPeer::State::kBackoff:
        break;  // sent once connected
    }
  }
}

void Transport::Impl::dial(const PeerPtr& p) {
  RAFTKV_CHECK(!p->stopped && p->state != OutboundPeer::State::kConnected);
  p->state = OutboundPeer::State::kConnecting;
  const uint64_t epoch = ++p->epoch;
  std::optional<HostPort> hp = split_host_port(p->address);
  uint16_t port = 0;
  if (!hp) {
    connection_failed(p, fmt::format("bad address \"{}\" (want host:port)", p->address));
    return;
  }
  p->timer.expires_after(options_.connect_timeout);
  p->timer.async_wait([this, p, epoch](const asio::error_code& ec) {
    // The state check: the deadline may fire in the same turn as the
    // connect completes, after on_connected() could no longer cancel it.
    if (p->stopped || epoch != p->epoch || ec) return;
    if (p->state != OutboundPeer::State::kConnecting) return;
    connection_failed(p,
                      fmt::format("no connection within {} ms", options_.connect_timeout.count()));
  });
  asio::error_code ec;
  const asio::ip::address address = asio::ip::make_address(hp->host, ec);
  const auto [end, parse_error] =
      std::from_chars(hp->port.data(), hp->port.data() + hp->port.size(), port);
  if (!ec && parse_error == std::errc() && end == hp->port.data() + hp->port.size()) {
    // A literal address needs no resolver (whose async form runs a thread).
    connect_to(p, std::array<tcp::endpoint, 1>{tcp::endpoint(address, port)});
    return;
  }
  p->resolver.async_resolve(
      hp->host, hp->port,
      [this, p, epoch](const asio::error_code& ec, const tcp::resolver::results_type& results) {
        if (p->stopped || epoch != p->epoch) return;
        if (ec) {
          connection_failed(p, fmt::format("cannot resolve: {}", ec.message()));
          return;
        }
        connect_to(p, results);
      });
}

template <class Endpoints>
void Transport::Impl::connect_to(const PeerPtr& p, const Endpoints& endpoints) {
  const uint64_t epoch = p->epoch;
  asio::async_connect(p->socket, endpoints,
                      [this, p, epoch](const asio::error_code& ec, const tcp::endpoint&) {
                        if (p->stopped || epoch != p->epoch) return;
                        if (ec) {
                          connection_failed(p, fmt::format("cannot connect: {}", ec.message()));
                          return;
                        }
                        on_connected(p);
                      });
}

void Transport::Impl::on_connected(const PeerPtr& p) {
  RAFTKV_CHECK(p->state == OutboundPeer::State::kConnecting && p->write_buffer.empty());
  p->timer.cancel();
  p->state = OutboundPeer::State::kConnected;
  p->connected_at = Clock::now();
  p->failed_attempts = 0;
  ++stats_.connects;
  set_peer_socket_options(p->socket);
  log(fmt::format("connected to peer {} at {}", p->id, p->address));
  // The handshake and everything queued while connecting: one write.
  p->write_buffer = handshake_frame_;
  encode_queue(*p);
  start_write(p);
  read_outbound(p);
  if (callbacks_.on_peer_connected) callbacks_.on_peer_connected(p->id, true);
}

void Transport::Impl::encode_queue(OutboundPeer& p) {
  std::vector<Message> batch = std::move(p.queue);
  p.queue.clear();
  p.queued_bytes = 0;
  p.dropping = false;
  encode_frames(p, batch);
}

// Appends `messages` to p.write_buffer as few frames as the limits allow:
// greedy groups by estimated size, halved when the estimate was too low.
void Transport::Impl::encode_frames(OutboundPeer& p, std::span<const Message> messages) {
  const size_t budget = options_.max_frame_bytes > 2 * kFrameHeadroom
                            ? options_.max_frame_bytes - kFrameHeadroom
                            : options_.max_frame_bytes / 2;
  size_t start = 0;
  while (start < messages.size()) {
    size_t end = start;
    size_t bytes = 0;
    size_t entries = 0;
    while (end < messages.size()) {
      const Message& m = messages[end];
      const bool first = end == start;
      if (!first &&
          (bytes + encoded_estimate(m) > budget || end - start >= wire::kMaxMessagesPerFrame ||
           entries + m.entries.size() > wire::kMaxEntriesPerFrame)) {
        break;
      }
      bytes += encoded_estimate(m);
      entries += m.entries.size();
      ++end;
    }
    std::span<const Message> group = messages.subspan(start, end - start);
    start = end;
    wire::Status s = wire::append_peer_frame(group, &p.write_buffer, options_.max_frame_bytes);
    if (s.ok()) {
      ++p.frames_in_flight;
      p.messages_in_flight += group.size();
    } else if (group.size() > 1) {
      const size_t half = group.size() / 2;
      encode_frames(p, group.first(half));
      encode_frames(p, group.subspan(half));
    } else {
      // Raft's max message size is configured below the frame limit; a
      // message over it is a misconfiguration, and retrying cannot help.
      ++stats_.dropped_messages;
      log(fmt::format("dropping a message to peer {}: {}", p.id, s.error().message));
    }
  }
}

void Transport::Impl::start_write(const PeerPtr& p) {
  if (p->write_buffer.empty()) return;
  const uint64_t epoch = p->epoch;
  asio::async_write(p->socket, asio::buffer(p->write_buffer),
                    [this, p, epoch](const asio::error_code& ec, size_t bytes) {
                      if (p->stopped || epoch != p->epoch) return;
                      if (ec) {
                        connection_failed(p, fmt::format("write failed: {}", describe(ec)));
                        return;
                      }
                      stats_.bytes_sent += bytes;
                      stats_.frames_sent += p->frames_in_flight;
                      stats_.messages_sent += p->messages_in_flight;
                      p->frames_in_flight = 0;
                      p->messages_in_flight = 0;
                      if (p->write_buffer.capacity() > kRetainedWriteBuffer) {
                        std::string().swap(p->write_buffer);
                      } else {
                        p->write_buffer.clear();
                      }
                      // Coalescing: everything that arrived during the write goes out now,
                      // together.
                      encode_queue(*p);
                      start_write(p);
                    });
}

void Transport::Impl::read_outbound(const PeerPtr& p) {
  const uint64_t epoch = p->epoch;
  p->socket.async_read_some(asio::buffer(p->read_buffer),
                            [this, p, epoch](const asio::error_code& ec, size_t) {
                              if (p->stopped || epoch != p->epoch) return;
                              if (ec) {
                                connection_failed(p, describe(ec));
                                return;
                              }
                              read_outbound(p);
                            });
}

void Transport::Impl::connection_failed(const PeerPtr& p, std::string_view why) {
  RAFTKV_CHECK(!p->stopped);
  const bool was_connected = p->state == OutboundPeer::State::kConnected;
  ++p->epoch;
  asio::error_code ignored;
  // Cancels every operation on the socket: none touches write_buffer again.
  p->socket.close(ignored);
  p->resolver.cancel();
  p->timer.cancel();
  // What was in flight may or may not have arrived; it counts as neither
  // sent nor dropped.
  p->write_buffer.clear();
  p->frames_in_flight = 0;
  p->messages_in_flight = 0;
  const size_t dropped = p->queue.size();
  stats_.dropped_messages += dropped;
  p->queue.clear();
  p->queued_bytes = 0;
  p->dropping = false;

  if (was_connected) {
    ++stats_.disconnects;
    // A connection that lasted is a fresh start; one that broke at once
    // (a peer refusing our handshake, say) keeps backing off.
    if (Clock::now() - p->connected_at >= options_.reconnect_max) {
      p->backoff = options_.reconnect_min;
    }
  } else {
    ++p->failed_attempts;
    ++stats_.connect_failures;
  }
  const milliseconds delay = next_backoff(*p);
  if (was_connected) {
    log(
        fmt::format("lost connection to peer {} at {}: {}; {} queued messages dropped; "
                    "redialling in {} ms",
                    p->id, p->address, why, dropped, delay.count()));
  } else if (is_power_of_two(p->failed_attempts)) {
    // 1, 2, 4, 8... attempts: an unreachable peer costs a few lines, not one
    // per attempt.
    log(
        fmt::format("peer {} at {} unreachable (attempt {}): {}; {} queued messages dropped; "
                    "redialling in {} ms",
                    p->id, p->address, p->failed_attempts, why, dropped, delay.count()));
  }

  p->state = OutboundPeer::State::kBackoff;
  const uint64_t epoch = p->epoch;
  p->timer.expires_after(delay);
  p->timer.async_wait([this, p, epoch](const asio::error_code& ec) {
    if (p->stopped || epoch != p->epoch || ec) return;
    if (p->state != OutboundPeer::State::kBackoff) return;
    dial(p);
  });
  if (was_connected && callbacks_.on_peer_connected) callbacks_.on_peer_connected(p->id, false);
}

// Equal jitter: uniform in [base/2, base], then the base doubles up to the
// maximum. Peers that lost a leader at the same moment do not redial in step.
milliseconds Transport::Impl::next_backoff(OutboundPeer& p) {
  const uint64_t base = static_cast<uint64_t>(p.backoff.count());
  const uint64_t half = base / 2;
  const milliseconds delay(half + rng_.below(base - half + 1));
  p.backoff = std::min(p.backoff * 2, options_.reconnect_max);
  return delay;
}

void Transport::Impl::accept_inbound(tcp::socket&& socket, wire::FrameDecoder&& decoder,
                                     const wire::Handshake& handshake) {
  const std::string remote = remote_address(socket);
  std::string refusal;
  if (stopped_) {
    refusal = "transport stopped";
  } else if (handshake.protocol_version != wire::kProtocolVersion) {
    refusal = fmt::format("protocol version {} (this node speaks {})", handshake.protocol_version,
                          wire::kProtocolVersion);
  } else if (handshake.cluster_id != options_.cluster_id) {
    refusal = fmt::format("handshake from node {} of cluster {}, this is cluster {}",
                          handshake.node_id, handshake.cluster_id, options_.cluster_id);
  } else if (handshake.node_id == options_.self) {
    refusal = fmt::format("handshake claims our own node id {}", handshake.node_id);
  } else if (!peers_.contains(handshake.node_id)) {
    refusal = fmt::format("node {} is not a configured peer", handshake.node_id);
  }
  if (!refusal.empty()) {
    ++stats_.inbound_refused;
    log(fmt::format("refused connection from {}: {}", remote, refusal));
    asio::error_code ignored;
    socket.close(ignored);
    return;
  }

  auto c = std::make_shared<InboundConnection>(std::move(socket), std::move(decoder),
                                               handshake.node_id, remote);
  set_peer_socket_options(c->socket);
  ++stats_.inbound_accepted;
  if (auto it = inbound_.find(c->peer); it != inbound_.end()) {
    close_inbound(it->second, "replaced by a newer connection from the same peer", false);
  }
  inbound_[c->peer] = c;
  log(fmt::format("accepted connection from peer {} at {}", c->peer, c->remote));
  // The Listener may have read past the handshake.
  if (drain_inbound(c)) read_inbound(c);
}

void Transport::Impl::read_inbound(const InboundPtr& c) {
  const std::span<char> space = c->decoder.prepare(kReadChunk);
  c->socket.async_read_some(
      asio::buffer(space.data(), space.size()),
      [this, c](const asio::error_code& ec, size_t bytes) {
        if (c->closed) return;
        if (ec) {
          const wire::Status tail = c->decoder.finish();
          if (ec == asio::error::eof && !tail.ok()) {
            close_inbound(c, fmt::format("closed by the peer mid-frame: {}", tail.error().message),
                          true);
          } else {
            close_inbound(c, describe(ec), false);
          }
          return;
        }
        c->decoder.commit(bytes);
        stats_.bytes_received += bytes;
        if (drain_inbound(c)) read_inbound(c);
      });
}

// Delivers every complete frame buffered in c's decoder, as one batch.
// Returns false if the connection is closed: for a bad frame (after the
// good frames before it are delivered), or by a callback that stopped us.
bool Transport::Impl::drain_inbound(const InboundPtr& c) {
  std::vector<Message> batch;
  std::string error;
  while (true) {
    auto frame = c->decoder.next();
    if (!frame.ok()) {
      error = fmt::format("malformed frame: {}", frame.error().message);
      break;
    }
    if (!frame->has_value()) break;
    const wire::Frame& f = **frame;
    if (f.kind != wire::PayloadKind::kPeerMessages) {
      error = fmt::format("unexpected {} frame on a peer connection", wire::to_string(f.kind));
      break;
    }
    auto decoded = wire::decode_peer_messages(f.payload);
    if (!decoded.ok()) {
      error = fmt::format("undecodable peer frame: {}", decoded.error().message);
      break;
    }
    // A peer speaks only for itself and only to us: anything else is a bug
    // or an impostor, and the whole frame is suspect.
    auto stray = std::find_if(decoded->begin(), decoded->end(), [&](const Message& m) {
      return m.to != options_.self || m.from != c->peer;
    });
    if (stray != decoded->end()) {
      error = fmt::format("dropped a frame with a message from node {} to node {}", stray->from,
                          stray->to);
      break;
    }
    ++stats_.frames_received;
    stats_.messages_received += decoded->size();
    if (batch.empty()) {
      batch = std::move(*decoded);
    } else {
      std::move(decoded->begin(), decoded->end(), std::back_inserter(batch));
    }
  }
  if (!batch.empty() && callbacks_.on_messages) callbacks_.on_messages(std::move(batch));
  if (c->closed) return false;
  if (!error.empty()) {
    close_inbound(c, error, true);
    return false;
  }
  return true;
}

void Transport::Impl::close_inbound(InboundPtr c, std::string_view why, bool error) {
  if (c->closed) return;
  c->closed = true;
  asio::error_code ignored;
  c->socket.close(ignored);
  if (auto it = inbound_.find(c->peer); it != inbound_.end() && it->second == c) {
    inbound_.erase(it);
  }
  if (error) {
    ++stats_.inbound_errors;
    log(fmt::format("closed connection from peer {} at {}: {}", c->peer, c->remote, why));
  } else {
    log(fmt::format("connection from peer {} at {} ended: {}", c->peer, c->remote, why));
  }
}

void Transport::Impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ignored;
  for (auto& [id, p] : peers_) {
    // After this no handler of p touches the Impl, which may then go away.
    p->stopped = true;
    p->socket.close(ignored);
    p->resolver.cancel();
    p->timer.cancel();
    stats_.dropped_messages += p->queue.size();
    p->queue.clear();
    p->queued_bytes = 0;
  }
  for (auto& [id, c] : inbound_) {
    c->closed = true;
    c->socket.close(ignored);
  }
  inbound_.clear();
  log("stopped");
}

Transport::Transport(asio::io_context& io, Options options, Callbacks callbacks)
    : impl_(std::make_unique<Impl>(io, std::move(options), std::move(callbacks))) {}

Transport::~Transport() {
  impl_->stop();
}

void Transport::send(std::vector<Message>&& messages) {
  impl_->send(std::move(messages));
}
void Transport::stop() {
  impl_->stop();
}
bool Transport::connected(NodeId peer) const {
  return impl_->connected(peer);
}
NodeId Transport::self() const {
  return impl_->self();
}
Transport::Stats Transport::stats() const {
  return impl_->stats();
}

void TransportAccess::accept_inbound(Transport& transport, tcp::socket&& socket,
                                     wire::FrameDecoder&& decoder,
                                     const wire::Handshake& handshake) {
  transport.impl_->accept_inbound(std::move(socket), std::move(decoder), handshake);
}

}  // namespace raftkv::raft
