// Test harness for the peer transport: a cluster of Transports + Listeners
// on loopback ephemeral ports, a condition-driven io_context loop (no
// sleeps), raw sockets for hostile peers, and a TCP forwarder standing in for
// a proxy.
//
// Threads: everything runs on the test's thread, which drives the
// io_context through run_until(); the one multi-threaded test says so.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include "raft/core/message.h"
#include "raft/node/listener.h"
#include "raft/node/transport.h"
#include "raft/node/transport_internal.h"

namespace raftkv::raft::test {

inline constexpr uint64_t kClusterId = 42;
inline constexpr std::chrono::milliseconds kDeadline{10000};
// Small enough that the oversize cases need no 64 MiB buffers.
inline constexpr size_t kTestMaxFrameBytes = size_t{1} << 20;

// Runs `io` until `done()` holds or `deadline` passes; returns done().
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds deadline = kDeadline);

// Messages whose every field is set from `seq`, so that a comparison catches
// a field lost or swapped on the way.
Message make_append(NodeId from, NodeId to, uint64_t seq, size_t data_bytes = 16);
Message make_snapshot_chunk(NodeId from, NodeId to, uint64_t seq, size_t data_bytes);
// Field-by-field equality (Message has no operator==); describes the first
// difference in *why.
bool same_message(const Message& a, const Message& b, std::string* why);

// Whole frames, for raw sockets.
std::string handshake_frame(uint64_t cluster_id, NodeId node);
std::string peer_frame(const std::vector<Message>& messages);

// One node: its Listener and Transport, and what it received.
struct TestNode {
  NodeId id;
  uint16_t port = 0;
  std::unique_ptr<Listener> listener;
  std::unique_ptr<Transport> transport;
  std::vector<Message> received;
  std::atomic<size_t> received_count{0};
  std::vector<std::pair<NodeId, bool>> peer_events;  // on_peer_connected calls
};

// TestCluster: nodes 1..n on 127.0.0.1 ephemeral ports. Listeners are
// opened first (their ports go into every Transport's peer map), then
// start() creates the Transports, after `tweak` had its say in their options.
class TestCluster {
 public:
  using Tweak = std::function<void(NodeId self, Transport::Options&)>;

  TestCluster(asio::io_context& io, int n);
  ~TestCluster();

  void start(Tweak tweak = nullptr);
  TestNode& node(uint64_t id) { return *nodes_.at(NodeId(id)); }

  // Stops and destroys node `id`'s Transport and Listener.
  void stop_node(uint64_t id);
  // Recreates them on the same port, with the same options, and forgets
  // what the node received.
  void restart_node(uint64_t id);

  void send(uint64_t from, std::vector<Message> messages) {
    node(from).transport->send(std::move(messages));
  }

 private:
  void create_transport(TestNode& n);

  asio::io_context& io_;
  std::map<NodeId, std::unique_ptr<TestNode>> nodes_;
  Tweak tweak_;
};

// RawPeer: a hand-driven client socket, for bytes no Transport would send.
class RawPeer {
 public:
  RawPeer(asio::io_context& io, uint16_t port);
  // Writes synchronously (test payloads fit the socket buffers).
  void write(std::string_view bytes);
  // Closes our sending direction: the other end reads EOF.
  void shutdown_send();
  // Starts watching for the other end closing; closed() then turns true.
  void watch_for_close();
  bool closed() const { return *closed_; }
  asio::ip::tcp::socket& socket() { return socket_; }

 private:
  asio::ip::tcp::socket socket_;
  std::shared_ptr<bool> closed_ = std::make_shared<bool>(false);
  std::shared_ptr<std::array<char, 4096>> buffer_ = std::make_shared<std::array<char, 4096>>();
};

// TcpForwarder: a minimal TCP proxy on its own ephemeral port, forwarding
// every connection to 127.0.0.1:target_port, byte for byte, both ways.
class TcpForwarder {
 public:
  TcpForwarder(asio::io_context& io, uint16_t target_port);
  ~TcpForwarder();
  uint16_t port() const { return port_; }
  size_t connections() const { return *connections_; }

 private:
  void accept();

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t target_port_;
  uint16_t port_ = 0;
  std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
  std::shared_ptr<size_t> connections_ = std::make_shared<size_t>(0);
};

}  // namespace raftkv::raft::test
