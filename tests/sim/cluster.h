// Cluster: N Raft cores in one process over a simulated network and simulated
// disks, all driven by one seed. Virtual time only (1 unit = 1 simulated ms);
// nothing here sleeps or reads a clock, so a seed replays a run exactly.
//
// Faults: message drop, duplication, delay and reordering (optionally long
// delays), partitions, disk latency, crash (volatile state and unsynced writes
// lost; only what a node was told is persisted survives) and restart.
// Safety checkers run after every event; a violation throws SimFailure.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "raft/core/memory_storage.h"
#include "raft/core/raft.h"
#include "raft/node/state_machine.h"  // header-only interface (kvsim hook below)

namespace raftkv::sim {

using raft::Index;
using raft::NodeId;
using raft::Term;

struct SimFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct NetworkFaults {
  double drop = 0;         // probability a message is lost
  double duplicate = 0;    // probability a message is delivered twice
  int min_delay = 1;       // ms
  int max_delay = 5;       // ms; delays are uniform, so messages reorder
  double long_delay = 0;   // probability of a delay in [200, 2000] ms
};

struct SimOptions {
  int nodes = 3;
  uint64_t seed = 1;
  NetworkFaults net;
  int max_disk_delay = 0;   // ms; each Ready becomes durable after [0, max] ms
  int tick_ms = 10;
  raft::Config raft;        // id, voters, seed and applied are filled in per node
  // Take a snapshot whenever applied - snapshot index reaches this (0 = never).
  uint64_t snapshot_every = 0;

  // --- Added for tests/kvsim (pluggable application state machine) ---------
  // Unset (the default): nothing below changes the simulator's behaviour.
  // Set: each node incarnation gets a fresh state machine from this factory,
  // fed as RaftNode feeds its own: restore() from the durable snapshot at
  // start and from every installed snapshot, then apply() of every committed
  // entry (normal and no-op) in log order. Compaction images then come from
  // its snapshot() instead of encode_snapshot(AppliedLog). AppliedLog and all
  // checkers keep running; an AppliedLog rebuilt from such an image knows only
  // its index, and n_committed() already falls back on the cluster-wide record
  // for compacted indexes. A crash destroys the instance (volatile state).
  std::function<std::unique_ptr<raft::StateMachine>(NodeId)> state_machine;
  // Also take a snapshot whenever the durable log holds at least this many
  // bytes (MemoryStorage::log_bytes(); 6.824's maxraftstate). 0 = never.
  size_t snapshot_log_bytes = 0;
};

// What a node's state machine applied: index -> command. Volatile; rebuilt
// from the snapshot and log replay on restart.
struct AppliedLog {
  Index snapshot_index;
  std::map<uint64_t, std::string> commands;  // kNormal entries only
  Index last;
};

class Cluster {
 public:
  explicit Cluster(SimOptions opts);
  ~Cluster();

  // --- time ----------------------------------------------------------------
  uint64_t now() const { return now_; }
  // Runs every event up to now() + ms.
  void run_for(uint64_t ms);
  // Runs until pred() holds (checked after each event) or ms pass; returns pred().
  template <class Pred>
  bool run_until(Pred pred, uint64_t ms) {
    uint64_t deadline = now_ + ms;
    while (!pred()) {
      if (!step_once(deadline)) return pred();
    }
    return true;
  }

  // --- faults --------------------------------------------------------------
  void set_faults(const NetworkFaults& f) { opts_.net = f; }
  const NetworkFaults& faults() const { return opts_.net; }
  void set_max_disk_delay(int ms) { opts_.max_disk_delay = ms; }
  void disconnect(NodeId n);
  void connect(NodeId n);
  bool connected(NodeId n) const { return !isolated_.count(n); }
  // Only nodes in the same group can talk. Nodes in no group are isolated.
  void partition(const std::vector<std::vector<NodeId>>& groups);
  void heal();  // reconnect everyone, clear partitions
  void crash(NodeId n);
  void restart(NodeId n);
  bool alive(NodeId n) const;
  // True while a node has handed out writes that are not yet durable: a crash
  // now loses them (the window where acks-before-fsync bugs live).
  bool has_unsynced_writes(NodeId n) const;
  // The highest-term leader among live nodes, if any.
  std::optional<NodeId> any_leader() const;

  // --- clients ----------------------------------------------------------------
  raft::ProposeResult propose(NodeId n, const std::string& command);
  // 6.824's one(): submit until some leader commits it on >= expected nodes.
  // Returns the index, or throws SimFailure after `ms`.
  Index one(const std::string& command, int expected, bool retry, uint64_t ms = 10000);
  // How many nodes applied `index`, and the command there (throws if they differ).
  int n_committed(Index index, std::string* command = nullptr) const;
  // 6.824's checkOneLeader(): waits for a single leader among connected nodes.
  NodeId check_one_leader(uint64_t ms = 5000);
  void check_no_leader() const;  // among connected nodes
  Term check_terms() const;      // connected nodes agree on the term
  // Waits until `n` nodes applied `index`; returns false on timeout.
  bool wait_committed(Index index, int n, uint64_t ms);
  void read_index(NodeId n, uint64_t context);

  // --- introspection ---------------------------------------------------------
  int size() const { return static_cast<int>(nodes_.size()); }
  std::vector<NodeId> ids() const;
  const raft::Raft& raft(NodeId n) const;
  const raft::MemoryStorage& storage(NodeId n) const;
  const AppliedLog& applied(NodeId n) const;
  // The node's SimOptions::state_machine instance; null while the node is
  // crashed or when none is configured. (Added for tests/kvsim.)
  raft::StateMachine* state_machine(NodeId n) const;
  std::vector<raft::ReadState> take_read_states(NodeId n);
  std::vector<uint64_t> take_failed_reads(NodeId n);
  uint64_t messages_sent() const { return messages_sent_; }
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t messages_sent(raft::MessageType t) const { return sent_by_type_[static_cast<int>(t)]; }
  // Requests only (6.824 counts an RPC and its reply as one).
  uint64_t requests_sent() const;
  uint64_t trace_hash() const { return trace_hash_; }
  uint64_t elections_won() const { return elections_won_; }
  // Highest index applied by any node: every write acknowledged so far is at
  // or below it, so a linearizable read issued now must reflect it.
  Index max_applied_anywhere() const {
    return applied_.empty() ? Index(0) : Index(applied_.rbegin()->first);
  }
  // Largest persisted Raft state (log bytes) of any node, for snapshot tests.
  size_t max_log_bytes() const;
  std::string describe() const;

  // Full (slow) checks, run at the end of randomized runs.
  void check_log_matching_full() const;

 private:
  struct Node;
  struct Event {
    uint64_t at;
    uint64_t seq;
    enum Kind { kDeliver, kTick, kDisk, kWake } kind;
    NodeId node;
    raft::Message msg;
    uint64_t epoch;  // tick/disk events of a crashed incarnation are void
    bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  bool step_once(uint64_t deadline);
  void process(const Event& e);
  void drain_ready(Node& n);
  void complete_disk_write(Node& n);
  void send_all(std::vector<raft::Message>& msgs);
  bool link_up(NodeId a, NodeId b) const;
  void schedule(Event e);
  void start_node(NodeId id);
  void apply(Node& n, const raft::Ready& rd);
  void maybe_snapshot(Node& n);
  void restore_state_machine(Node& n, const raft::Snapshot& snap);  // kvsim hook
  void hash(uint64_t v);

  // Checkers.
  void check_after_event();
  void observe_entries(const Node& n, const std::vector<raft::Entry>& entries);
  void observe_leader(const Node& n);

  SimOptions opts_;
  raft::Rng rng_;
  uint64_t now_ = 0;
  uint64_t seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  std::set<NodeId> isolated_;
  std::map<NodeId, int> group_;  // empty = no partition

  uint64_t messages_sent_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t sent_by_type_[raft::kMessageTypeCount] = {};
  uint64_t trace_hash_ = 1469598103934665603ULL;
  uint64_t elections_won_ = 0;

  // Checker state, cluster-wide.
  std::map<uint64_t, NodeId> leader_of_term_;                  // election safety
  std::map<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, uint64_t>>
      entry_identity_;                                         // (index, term) -> (data hash, prev term)
  std::map<uint64_t, std::pair<uint64_t, std::string>> applied_;  // index -> (term, command)
};

// Encodes/decodes a command list as a snapshot image.
std::string encode_snapshot(const AppliedLog& log);
AppliedLog decode_snapshot(Index index, std::string_view data);

}  // namespace raftkv::sim
