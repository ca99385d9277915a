// KvSim: the replicated KV service on the deterministic cluster simulator.
//
// Every node runs the PRODUCTION KvStateMachine (kvserver/kv_state_machine.h),
// plugged into sim::Cluster through SimOptions::state_machine: committed
// entries are applied to it, compaction images come from its snapshot() and
// installed snapshots go through its restore(). Around it, KvSim models what
// the production process adds, in virtual time:
//
//  * Server (kvserver/client_service.cc + raft/node/raft_node.cc): a write is
//    answered from the session table if (client, seq) was applied already;
//    otherwise it is encoded as a wire::KvCommand (leader-stamped with virtual
//    time), proposed, and answered when the entry at the proposal's
//    (index, term) is applied on that node (the session reply is read then),
//    kNotLeader if another entry is applied at that index or a snapshot covers
//    it (RaftNode's kLost), kBusy/kNotLeader if the proposal is refused, and
//    kTimeout after request_timeout. A Get is a ReadIndex on the contacted
//    node (Cluster::read_index); failed reads answer kNotLeader; a confirmed
//    read is served from that node's KvStateMachine once its applied index
//    reaches the read index. Never from a follower's local state.
//  * Client network: requests and replies travel as real frames
//    (wire::append_client_*_frame / FrameDecoder / decode_client_*), delayed
//    per the cluster's current NetworkFaults. The production transport is
//    TCP: no duplicates, and a connection either delivers or breaks. So a
//    message the faults drop breaks its connection, and the clerk sees the
//    break as labrpc reports a lost RPC: a lost request within 0-100 ms, a
//    lost reply (the server did the work) when it would have arrived. A clerk
//    reaches a server only while their link is enabled (6.824's
//    ConnectClient/DisconnectClient); across a disabled link messages vanish
//    and connects hang (the attempt times out). A connection belongs to one
//    server incarnation, so a crash closes it ("connection closed").
//  * SimClerk (client/clerk.cc's retry loop): client id + seq, retries reuse
//    the seq; tries the endpoint it believes leads, follows NotLeader hints,
//    moves on after a failed attempt (attempt budget max(1 s, timeout/3)),
//    backs off 20..500 ms after a full round of failures, retries kTimeout at
//    the same endpoint, and gives up at the per-op deadline: a write that may
//    have been applied then ends kTimeout (outcome unknown), one that surely
//    was not ends kUnavailable. op_timeout_ms = 0 retries forever (6.824's
//    Clerk, which never gives up).
//
// Every operation's call/return (virtual ms) and outcome go into a lincheck
// history: kOk results as known outcomes, kTimeout as outcome_unknown, and
// writes that surely did not apply (kUnavailable) are left out, a claim that
// check_outcome_claims() verifies against what was really applied.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "client/clerk.h"
#include "kvserver/kv_state_machine.h"
#include "lincheck/lincheck.h"
#include "raft/core/random.h"
#include "raft/node/proposal_waiters.h"
#include "schema/client_protocol.h"
#include "tests/sim/cluster.h"

namespace raftkv::kvsim {

using raft::Index;
using raft::NodeId;
using raft::Term;
using sim::Cluster;
using sim::NetworkFaults;
using sim::SimFailure;
using sim::SimOptions;

class KvSim;

// --- server side -------------------------------------------------------------------

// KvNode: one incarnation of one node's state machine: the production
// KvStateMachine plus RaftNode's proposal waiters (Outcome kApplied/kLost by
// (index, term)). Created by the cluster at each start, destroyed at a crash.
class KvNode final : public raft::StateMachine {
 public:
  enum class Outcome { kApplied, kLost, kCovered };
  // Called with this node, right after the entry (or snapshot) was applied.
  using WriteDone = std::function<void(Outcome, const KvNode&)>;

  KvNode(KvSim& sim, NodeId id, uint64_t incarnation);
  ~KvNode() override;

  void apply(const raft::Entry& e) override;
  raft::Bytes snapshot() const override { return kv_.snapshot(); }
  bool restore(const raft::Snapshot& snap, std::string* error) override;
  Index applied_index() const override { return kv_.applied_index(); }

  // RaftNode::propose's waiter: done(kApplied) when the entry at (index, term)
  // is applied; done(kLost) when another entry is applied there, a snapshot
  // covers it, or a newer proposal lands at the same index.
  void wait_for(Index index, Term term, WriteDone done);

  const kv::KvStateMachine& kv() const { return kv_; }
  NodeId id() const { return id_; }
  uint64_t incarnation() const { return incarnation_; }  // unique across the run

 private:
  KvSim& sim_;
  NodeId id_;
  uint64_t incarnation_;
  kv::KvStateMachine kv_;
  raft::ProposalWaiters<WriteDone> waiters_;
};

// --- clerk --------------------------------------------------------------------------

// The production clerk's error codes, so outcome claims mean the same thing.
using Code = client::Code;
using client::to_string;

struct OpResult {
  Code code = Code::kOk;
  std::optional<std::string> value;  // Get: nullopt = absent
  uint64_t call = 0;                 // virtual ms
  uint64_t ret = 0;
  int attempts = 0;
  bool ok() const { return code == Code::kOk; }
  // 6.824's Get returns "" for an absent key.
  std::string value_or_empty() const { return value.value_or(""); }
};

struct ClerkOptions {
  // Per-operation deadline, retries included (client::Options::timeout,
  // production default 5000 ms). 0: no deadline (6.824's Clerk).
  uint64_t op_timeout_ms = 5000;
  // Each attempt (connect + request + reply) gets max(1000, op_timeout/3),
  // as client/clerk.cc does; with no deadline, production's default (1666).
  uint64_t attempt_ms() const {
    uint64_t t = op_timeout_ms == 0 ? 5000 : op_timeout_ms;
    return std::max<uint64_t>(1000, t / 3);
  }
};

class KvSim;

class SimClerk {
 public:
  using Done = std::function<void(const OpResult&)>;

  // One operation at a time (the production Clerk serializes its callers).
  void get(const std::string& key, Done done);
  void put(const std::string& key, const std::string& value, Done done);
  void append(const std::string& key, const std::string& value, Done done);
  void del(const std::string& key, Done done);
  bool busy() const { return op_.has_value(); }

  int id() const { return id_; }
  uint64_t client_id() const { return client_id_; }
  // 6.824 ConnectClient / DisconnectClient: which servers this clerk reaches.
  void connect_to(const std::vector<NodeId>& servers);
  void disconnect_from(const std::vector<NodeId>& servers);
  bool link_enabled(NodeId server) const { return enabled_.count(server) > 0; }

 private:
  friend class KvSim;
  SimClerk(KvSim& sim, int id, uint64_t client_id, std::vector<NodeId> endpoints,
           ClerkOptions opts);

  enum class Phase { kReady, kSleeping, kConnecting, kAwaitingReply };
  struct Conn {
    bool open = false;
    uint64_t incarnation = 0;  // the server incarnation it is connected to
  };
  struct Op {
    wire::ClientRequest req;
    bool is_write = false;
    Done done;
    uint64_t call = 0;
    uint64_t deadline = 0;  // UINT64_MAX: none
    bool maybe_applied = false;
    int failures_in_row = 0;
    uint64_t backoff = 20;
    int attempts = 0;
    Phase phase = Phase::kReady;
    uint64_t wake_at = 0;     // kSleeping / kConnecting / kAwaitingReply timeout
    size_t ep = 0;            // kConnecting / kAwaitingReply
    uint64_t request_id = 0;  // kAwaitingReply
  };

  void begin(wire::Op op, const std::string& key, const std::string& value, Done done);
  void run();   // the retry loop, from kReady until it waits or finishes
  void poll();  // timers and connection state, each simulated ms
  void on_reply(NodeId from, const wire::ClientReply& r);
  void on_reset(NodeId from, uint64_t request_id);
  void attempt_failed(bool maybe_applied);
  void advance();
  void follow_hint(const wire::ClientReply& r);
  void sleep_backoff();
  void finish(Code code, std::optional<std::string> value);

  KvSim& sim_;
  int id_;
  uint64_t client_id_;
  uint64_t seq_ = 0;
  uint64_t next_request_ = 1;
  std::vector<NodeId> endpoints_;
  std::set<NodeId> enabled_;
  std::map<size_t, Conn> conns_;
  size_t current_ = 0;
  ClerkOptions opts_;
  std::optional<Op> op_;
};

// --- the whole service ----------------------------------------------------------------

struct KvSimStats {
  uint64_t ops = 0, ok = 0, timeouts = 0, unavailable = 0, attempts = 0;
  uint64_t not_leader_replies = 0, timeout_replies = 0, busy_replies = 0;
  uint64_t dedup_replies = 0;  // writes answered from the session table
  uint64_t lost_writes = 0;    // proposals whose entry was overwritten or covered (kLost)
  uint64_t reads_served = 0, reads_failed = 0;
  uint64_t snapshots_restored = 0;                 // KvStateMachine::restore from a non-empty image
  uint64_t client_msgs = 0, client_msgs_lost = 0;  // lost: across a disabled link
  uint64_t connection_resets = 0;                  // messages the faults dropped
};

class KvSim {
 public:
  struct Options {
    SimOptions cluster;  // state_machine is filled in by KvSim
    ClerkOptions clerk;
    uint64_t request_timeout_ms = 5000;  // ClientServiceOptions::request_timeout
    uint64_t seed = 1;                   // client network and clerk endpoint order
    // Planted bugs, for the harness's self-tests only (Lab3Meta): serve Gets
    // from the contacted node's local state without ReadIndex; give every
    // retry of a write a fresh seq (so exactly-once cannot hold).
    bool bug_local_reads = false;
    bool bug_fresh_seq_per_attempt = false;
    // Prints every clerk attempt, reply and outcome to stderr (debugging a replayed seed).
    bool trace = false;
  };

  explicit KvSim(Options opts);
  ~KvSim();
  KvSim(const KvSim&) = delete;
  KvSim& operator=(const KvSim&) = delete;

  Cluster& cluster() { return *cluster_; }
  const Cluster& cluster() const { return *cluster_; }
  uint64_t now() const { return cluster_->now(); }

  // 6.824 makeClient(to): a clerk with ends for every server (in a random
  // order, like random_handles), links enabled to `to` only.
  SimClerk& make_clerk(const std::vector<NodeId>& to);
  SimClerk& make_clerk(const std::vector<NodeId>& to, const ClerkOptions& opts);
  // A production-style clerk that knows exactly these endpoints, in this
  // order (client::Options::endpoints), all reachable.
  SimClerk& make_clerk_for(const std::vector<NodeId>& endpoints, const ClerkOptions& opts);

  // Virtual time: runs the cluster, the client network, the servers and the
  // clerks in 1 ms steps.
  void run_for(uint64_t ms);
  template <class Pred>
  bool run_until(Pred pred, uint64_t ms) {
    const uint64_t deadline = now() + ms;
    while (!pred()) {
      if (now() >= deadline) return pred();
      step_ms();
    }
    return true;
  }

  // The running incarnation's state machine, or null while crashed.
  KvNode* node(NodeId n) const;

  const std::vector<lincheck::Operation>& history() const { return history_; }
  // Ground truth for the clerk's outcome claims: a write whose command entry
  // was applied anywhere must not have been reported kUnavailable
  // ("definitely not applied"), and one reported kOk must have been applied.
  // Returns what is wrong ("" if nothing). Valid at any time (applied is
  // forever); most complete at the end of a run.
  std::string check_outcome_claims() const;
  const KvSimStats& stats() const { return stats_; }
  // Largest snapshot image on any node's disk (6.824's SnapshotSize()).
  size_t max_snapshot_bytes() const;
  std::string describe() const;

 private:
  friend class SimClerk;
  friend class KvNode;

  struct Msg {
    uint64_t at;
    uint64_t seq;
    enum Kind { kRequest, kReply, kReset } kind;
    int clerk;
    NodeId server;
    uint64_t incarnation;  // the connection's server incarnation
    std::string frame;     // kRequest/kReply: one encoded client frame
    uint64_t request_id;   // kReset: the request whose connection broke
    bool operator>(const Msg& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  // A request in progress at a server (ClientService's Pending): replies at
  // most once, whichever of completion or request_timeout comes first.
  struct Pending {
    int clerk;
    NodeId server;
    uint64_t incarnation;
    uint64_t request_id;
    uint64_t deadline;
    bool replied = false;
    std::string key;        // Get
    uint64_t read_ctx = 0;  // Get: ReadIndex context
    Index read_index;       // Get: confirmed index, 0 while unconfirmed
    bool confirmed = false;
  };

  void step_ms();
  void deliver_due();
  void poll_servers();
  void send(bool to_server, int clerk, NodeId server, uint64_t incarnation, uint64_t request_id,
            std::string frame);
  bool client_link_up(int clerk, NodeId server) const;

  // Server side.
  void serve(NodeId server, uint64_t incarnation, int clerk, const wire::ClientRequest& req);
  void reply(Pending& p, wire::ClientReply r);
  wire::ClientReply not_leader(NodeId server, uint64_t request_id, const std::string& message);
  void record(const SimClerk& ck, const wire::ClientRequest& req, const OpResult& r);
  template <class... Args>
  void trace(fmt::format_string<Args...> f, Args&&... args) {
    if (opts_.trace)
      fmt::print(stderr, "t={} {}\n", now(), fmt::format(f, std::forward<Args>(args)...));
  }

  Options opts_;
  raft::Rng rng_;
  std::unique_ptr<Cluster> cluster_;
  uint64_t next_incarnation_ = 1;
  std::map<NodeId, KvNode*> live_;  // registered by KvNode's lifetime
  std::vector<std::unique_ptr<SimClerk>> clerks_;
  uint64_t msg_seq_ = 0;
  std::priority_queue<Msg, std::vector<Msg>, std::greater<Msg>> net_;
  std::vector<std::shared_ptr<Pending>> pending_;  // every unanswered request
  uint64_t next_read_ctx_ = 1;
  std::vector<lincheck::Operation> history_;
  KvSimStats stats_;
  struct WriteClaim {
    uint64_t client, seq;
    std::string what;  // for messages
  };
  std::set<std::pair<uint64_t, uint64_t>>
      applied_writes_;  // (client, seq) of every applied command
  std::vector<WriteClaim> claimed_unavailable_, claimed_ok_;
};

}  // namespace raftkv::kvsim
