// Transport: carries raft::Messages between the nodes of one cluster over TCP.
//
// Connections. Each direction between two nodes has its own connection: this
// node dials one persistent OUTBOUND connection per peer and only writes
// Raft messages on it; the peer dials its own connection to send us its
// messages, which the Listener accepts and hands to accept_inbound()
// (transport_internal.h). Every connection opens with the dialer's Handshake
// frame (cluster id, node id); the node id in that handshake is the only
// identity a connection ever has: socket addresses may be proxies and are
// used for log lines only.
//
// Coalescing. While a write to a peer is in flight, new messages for it
// accumulate; when the write completes they all go out together, as one
// frame (split only where a frame would exceed max_frame_bytes), in one
// write. A burst of small messages therefore costs a few frames and
// syscalls, not one per message.
//
// Loss instead of unbounded memory. Raft tolerates lost messages (it
// retransmits appends and re-sends heartbeats and votes), so the transport
// drops rather than buffers without bound:
//   - messages queued for a peer beyond max_queued_bytes are dropped;
//   - when a connection attempt fails or an established connection breaks,
//     the messages queued at that moment are dropped: by the time the next
//     attempt succeeds they are stale, and the core has already resent
//     whatever still matters. Messages sent after the failure are queued
//     (bounded) and go out when the next attempt succeeds;
//   - a message for an unknown node, for ourselves, or too large for one
//     frame is dropped.
// Every drop is counted in Stats::dropped_messages.
//
// Reconnecting. The first send() to a peer dials it; from then on the
// transport keeps the connection up, redialling after a failure with
// exponential backoff (reconnect_min doubling up to reconnect_max) and
// jitter from a generator seeded by our node id.
//
// Threads: the Transport lives on ONE thread, the one that runs the
// io_context passed to the constructor (the node's Raft event loop).
// Every public method, the constructor and the destructor must be called on
// that thread (or while no thread runs the io_context); the callbacks run on
// it too. Nothing here takes a lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "raft/core/message.h"
#include "raft/core/types.h"
#include "schema/frame.h"

namespace asio {
class io_context;
}  // namespace asio

namespace raftkv::raft {

struct TransportAccess;

class Transport {
 public:
  struct Options {
    NodeId self;
    uint64_t cluster_id = 0;
    // Where THIS node dials each peer, as "host:port" or "[v6-host]:port".
    // May be a proxy's address: identity travels in the handshake. The keys
    // are also the only node ids accepted on inbound connections.
    std::map<NodeId, std::string> peers;
    // Limit on one frame's payload that we send; Raft's max message size
    // must stay below it. Inbound frames are checked by the decoder the
    // Listener hands over with each connection, against the Listener's
    // max_frame_bytes: configure both alike, on every node.
    size_t max_frame_bytes = wire::kMaxFrameBytes;
    std::chrono::milliseconds reconnect_min{50};
    std::chrono::milliseconds reconnect_max{2000};
    // An attempt (resolve + TCP connect) that takes longer than this fails.
    std::chrono::milliseconds connect_timeout{3000};
    // Bound on messages waiting for one peer (by Message::byte_size()). With
    // the encoded write in flight, a peer holds at most about twice this.
    size_t max_queued_bytes = size_t{64} << 20;
  };

  struct Callbacks {
    // Messages received from peers, in the order each peer sent them, each
    // with to == self and from == the sending connection's handshake id.
    std::function<void(std::vector<Message>&&)> on_messages;
    // Our outbound connection to `peer` is up (true) or lost (false). For
    // logging and status; optional. stop() does not report the losses.
    std::function<void(NodeId peer, bool up)> on_peer_connected;
  };

  // Counters since construction. Frames and messages count Raft payloads
  // only (handshakes are not frames here); bytes count everything on the
  // wire, on peer connections the transport owns.
  struct Stats {
    uint64_t frames_sent = 0;
    uint64_t messages_sent = 0;
    uint64_t bytes_sent = 0;
    uint64_t frames_received = 0;
    uint64_t messages_received = 0;
    uint64_t bytes_received = 0;
    uint64_t connects = 0;          // outbound connections established
    uint64_t connect_failures = 0;  // outbound attempts that failed (resolve, connect, timeout)
    uint64_t disconnects = 0;       // established outbound connections lost
    uint64_t dropped_messages = 0;  // see "Loss instead of unbounded memory"
    uint64_t inbound_accepted = 0;  // inbound connections with a valid handshake
    uint64_t inbound_refused = 0;   // wrong cluster, unknown or own node id
    uint64_t inbound_errors = 0;    // inbound connections closed for a bad frame
  };

  // Dials nothing yet. `io` must outlive the Transport and everything it
  // posted (run or destroy the io_context after stop()).
  Transport(asio::io_context& io, Options options, Callbacks callbacks);
  // Calls stop().
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Sends each message to its `to`. Never blocks, never fails: a message
  // that cannot be sent is dropped and counted (Raft retransmits).
  void send(std::vector<Message>&& messages);

  // Closes every connection and stops redialling; later send()s drop. The
  // Transport may be destroyed right after, even while the io_context still
  // holds handlers of its operations. Idempotent. A callback may call it; a
  // callback must not destroy the Transport.
  void stop();

  // Whether our outbound connection to `peer` is established.
  bool connected(NodeId peer) const;
  NodeId self() const;
  Stats stats() const;

 private:
  friend struct TransportAccess;  // accept_inbound(); see transport_internal.h
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::raft
