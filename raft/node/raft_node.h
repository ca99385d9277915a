// RaftNode: the driver that turns the pure Raft core into a running node. It
// ticks the core, feeds it peer messages, proposals and reads, persists each
// Ready through the GroupCommitter, sends messages through the Transport,
// applies committed entries to the StateMachine and completes waiters.
//
// Threads: everything here runs on the Raft thread (the io_context given to
// the constructor), except that storage completions arrive from the storage
// thread and are posted back. Public methods must be called on the Raft
// thread. A node runs three threads in all: this one (core, network, apply),
// the GroupCommitter's storage thread, and the caller's main thread.
//
// Pipelining: up to kMaxWritesInFlight Readies may be in the storage queue at
// once; the leader's appends leave before its own write (Thesis §10.2.1) and
// everything accumulated during one fsync shares the next one (group commit).
// Committed entries are applied as soon as the local log holds them durably,
// without waiting for the write of the Ready that handed them out.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "raft/core/raft.h"
#include "raft/node/state_machine.h"

namespace asio {
class io_context;
}

namespace raftkv::raft {

class RocksLogStore;
class GroupCommitter;
class Transport;

struct NodeOptions {
  NodeId id;
  std::vector<NodeId> voters;
  int tick_ms = 50;
  int heartbeat_ticks = 2;  // 100 ms
  int election_ticks = 10;  // 0.5-1 s (etcd: 1-2 s)
  // Compact the log once this many entries were applied since the last
  // snapshot. Each compaction syncs the state first (checkpoint), a stall of
  // tens of ms under load: at 20000, p99 put latency was ~50 ms, at 100000
  // ~21-25 ms (docs/PERFORMANCE.md). The log is on disk, so a longer one
  // costs disk only; a restart replays from the state's index, not from here.
  uint64_t snapshot_every = 100000;
  // Where snapshot images are written and received (snapshot_files.h);
  // empty: <log store dir>/snapshots.
  std::string snapshot_dir;
  Config raft;  // flow-control knobs; id, voters, election/heartbeat and applied are set here
};

struct NodeStatus {
  NodeId id;
  Role role = Role::kFollower;
  Term term;
  NodeId leader;
  Index commit_index;
  Index applied_index;
};

class RaftNode {
 public:
  enum class Outcome : uint8_t {
    kApplied,    // committed and applied; the state machine holds its result
    kNotLeader,  // refused: not the leader (nothing was appended)
    kBusy,       // refused: too much is in flight (nothing was appended)
    kLost,       // appended but overwritten by another leader: never applied
    kCovered,    // an installed snapshot covers its index: it may be in the
                 // snapshot or not; the state machine (session table) knows
  };
  using ProposeDone = std::function<void(Outcome)>;
  // ok: leadership was confirmed and the state machine has applied at least
  // the read index, so a read of the state machine now is linearizable.
  using ReadDone = std::function<void(bool ok)>;

  RaftNode(asio::io_context& io, const NodeOptions& options, RocksLogStore& store,
           GroupCommitter& committer, StateMachine& sm, Transport& transport);
  ~RaftNode();
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Brings the state machine up to the stored snapshot and starts ticking;
  // the core then replays the log after the state machine's applied index.
  // An in-memory state machine is restored from the stored snapshot; a
  // durable() one keeps its persisted state and is restored only if it is
  // behind the stored snapshot (a crash interrupted an install). Returns
  // false (with a reason) if that is impossible: an image that cannot be
  // restored, or a durable state that does not fit the log.
  bool start(std::string* error);
  void stop();

  void step(std::vector<Message>&& msgs);
  void propose(Bytes command, ProposeDone done);
  void read(ReadDone done);
  // Hands leadership to the most up-to-date follower; done(true) once another
  // node leads (or false after `timeout_ms`). Used for a clean shutdown.
  void hand_off_leadership(int timeout_ms, std::function<void(bool)> done);

  NodeStatus status() const;
  NodeId leader() const;
  uint64_t syncs() const;
  uint64_t entries_persisted() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::raft
