// The client protocol and the replicated command as plain C++ values. The
// clerk, the client service and the KV state machine use these; only
// schema/convert.cc knows their FlatBuffers form (kv.fbs, which documents
// each field's wire meaning).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "raft/core/ready.h"
#include "raft/core/types.h"

namespace raftkv::wire {

struct ClientIdTag {};
// ClientId: a clerk's identity for exactly-once sessions; 0 means "none".
using ClientId = raft::StrongU64<ClientIdTag>;

enum class Op : uint8_t {
  kGet,
  kPut,
  kAppend,  // appends `value` to the key's current value
  kDelete,
  kStatus,  // asks the contacted node about itself; never replicated
};

enum class ReplyStatus : uint8_t {
  kOk,
  kNotFound,   // Get/Delete of an absent key
  kNotLeader,  // retry at leader_hint / leader_address
  kBusy,       // the node is behind; back off and retry
  kTimeout,    // outcome unknown; retry with the same (client_id, seq)
  kBadRequest,
  kTooLarge,  // key or value over the server's limit
  kInternal,
};

std::string_view to_string(Op op);
std::string_view to_string(ReplyStatus status);

struct ClientRequest {
  uint64_t request_id = 0;  // connection-local correlation id, echoed in the reply
  ClientId client_id;       // (client_id, seq): the exactly-once identity of a write
  uint64_t seq = 0;
  Op op = Op::kGet;
  std::string key;
  std::string value;  // Put/Append only

  bool operator==(const ClientRequest&) const = default;
};

// The contacted node's view of itself: the answer to Op::kStatus.
struct NodeStatus {
  raft::NodeId node_id;
  raft::Role role = raft::Role::kFollower;
  raft::Term term;
  raft::NodeId leader;  // kNoNode if unknown
  raft::Index commit_index;
  raft::Index applied_index;

  bool operator==(const NodeStatus&) const = default;
};

struct ClientReply {
  uint64_t request_id = 0;
  ReplyStatus status = ReplyStatus::kOk;
  std::optional<std::string> value;       // Get: present (possibly empty) iff the key exists
  raft::NodeId leader_hint;               // NotLeader: who leads, if known
  std::string leader_address;             // NotLeader: where to reach it, if known
  std::string message;                    // human-readable detail for an error
  std::optional<NodeStatus> node_status;  // Op::kStatus only

  bool operator==(const ClientReply&) const = default;
};

// KvCommand: a client write as replicated through the log (the data of a
// normal raft::Entry). Every replica applies the same bytes, so everything
// apply depends on is in here, including the time.
struct KvCommand {
  ClientId client_id;
  uint64_t seq = 0;
  Op op = Op::kPut;
  std::string key;
  std::string value;
  // Stamped by the leader when it proposes. Sessions expire by this time,
  // never by a replica's clock, so all replicas agree on which are alive.
  uint64_t timestamp_ms = 0;

  bool operator==(const KvCommand&) const = default;
};

}  // namespace raftkv::wire
