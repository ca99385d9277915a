// ClientService: serves clerks on the node's listening port. It reads
// ClientRequest frames from each client connection, turns writes into
// KvCommands proposed through the RaftNode, serves reads through ReadIndex,
// and writes ClientReply frames back (coalesced: replies that become ready
// while a write is in flight share the next write).
//
// Threads: everything runs on the node's Raft thread (the io_context of the
// RaftNode and the Listener). The KvStateMachine is read on that thread too.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "kvserver/kv_state_machine.h"
#include "raft/node/raft_node.h"

namespace asio {
class io_context;
}

namespace raftkv::raft {
struct ClientHandler;
}

namespace raftkv::kv {

struct ClientServiceOptions {
  // Client-facing address of each member, for NotLeader redirects.
  std::map<raft::NodeId, std::string> addresses;
  // A write not applied within this is answered kTimeout (outcome unknown).
  std::chrono::milliseconds request_timeout{5000};
  // Requests in progress per connection; more are answered kBusy.
  size_t max_inflight_per_connection = 4096;
  size_t max_frame_bytes = 4 << 20;
};

class ClientService {
 public:
  ClientService(asio::io_context& io, ClientServiceOptions options, raft::RaftNode& node,
                KvStateMachine& kv);
  ~ClientService();
  // The Listener's hand-over hook for client connections.
  raft::ClientHandler handler();
  // Closes every client connection.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace raftkv::kv
