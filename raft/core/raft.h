// Raft: the consensus state machine of one node (Ongaro & Ousterhout, "In
// Search of an Understandable Consensus Algorithm", and Ongaro's thesis).
// Pure and deterministic: no threads, clocks, sockets or disk. Time advances
// only by tick(), randomness comes from Config::seed, and every effect leaves
// through ready(). Not thread-safe: one thread owns an instance.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "raft/core/log.h"
#include "raft/core/progress.h"
#include "raft/core/random.h"
#include "raft/core/ready.h"

namespace raftkv::raft {

struct Config {
  NodeId id;
  // Every voting member, this node included. Used when storage holds no
  // snapshot that names the configuration (a brand new cluster).
  std::vector<NodeId> voters;
  // A follower campaigns after a random timeout in
  // [election_ticks, 2 * election_ticks); a leader heartbeats every
  // heartbeat_ticks. Invariant: heartbeat_ticks < election_ticks.
  int election_ticks = 10;
  int heartbeat_ticks = 1;
  bool pre_vote = true;      // Thesis §9.6
  bool check_quorum = true;  // Thesis §6.2: a leader without a live majority steps down
  // Flow control per follower: appends in flight, and bytes per append.
  size_t max_inflight_msgs = 256;
  size_t max_inflight_bytes = 64 << 20;
  size_t max_msg_bytes = 1 << 20;
  size_t max_snapshot_chunk = 64 << 10;
  // Back-pressure: a proposal is refused (Busy) while this many bytes are
  // appended but not committed.
  size_t max_uncommitted_bytes = 64 << 20;
  // Bound on committed entry bytes handed out in one Ready.
  size_t max_apply_bytes = 16 << 20;
  // The application's applied index at start (its state machine already
  // reflects the log up to here).
  Index applied;
  uint64_t seed = 1;
};

struct ProposeResult {
  enum class Status : uint8_t { kAccepted, kNotLeader, kBusy };
  Status status = Status::kNotLeader;
  Index index;         // kAccepted: where the entry sits...
  Term term;           // ...and its term: it commits iff this (index, term) does
  NodeId leader_hint;  // kNotLeader: the leader we know of, if any
};

class Raft {
 public:
  Raft(const Config& config, const LogReader& storage);

  void tick();
  // Messages of a stale term are answered or dropped inside.
  void step(const Message& m);
  ProposeResult propose(Bytes command);
  // ReadIndex (Thesis §6.4): the result arrives in Ready::read_states or,
  // if this node cannot serve it, Ready::failed_reads.
  void read_index(uint64_t context);
  // Thesis §3.10. Returns false if this node is not leader or target is unknown.
  bool transfer_leadership(NodeId target);
  // Starts an election now (tests and manual failover).
  void campaign_now();

  bool has_ready() const;
  Ready ready();
  // Acknowledges a whole Ready: persisted, sent and applied.
  void advance(const Ready& rd);
  // Finer acknowledgements for a pipelined driver.
  void on_persisted(Index index, Term term);
  void on_snapshot_persisted(Index index);
  void on_applied(Index index);

  // --- Introspection (tests, status, invariant checks) ---------------------
  NodeId id() const { return id_; }
  Term term() const { return term_; }
  NodeId vote() const { return vote_; }
  Role role() const { return role_; }
  NodeId leader() const { return leader_; }
  const RaftLog& log() const { return log_; }
  const std::vector<NodeId>& voters() const { return voters_; }
  const Progress* progress(NodeId peer) const;
  NodeId transferee() const { return transferee_; }
  // Aborts with a message if a local invariant is broken.
  void check_invariants() const;
  std::string describe() const;

 private:
  enum class CampaignKind { kPreVote, kVote, kTransfer };

  size_t quorum() const { return voters_.size() / 2 + 1; }
  bool is_voter(NodeId n) const;
  bool committed_in_current_term() const;

  void become_follower(Term term, NodeId leader);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void reset(Term term);
  void reset_election_timeout();
  void campaign(CampaignKind kind);
  void record_vote(NodeId from, bool granted);
  void tick_election();
  void tick_heartbeat();

  void step_leader(const Message& m);
  void step_candidate(const Message& m);
  void step_follower(const Message& m);
  void handle_vote_request(const Message& m);
  void handle_append(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot_chunk(const Message& m);
  void handle_append_response(const Message& m, Progress& pr);
  void handle_snapshot_ack(const Message& m, Progress& pr);
  void handle_heartbeat_response(const Message& m, Progress& pr);

  void send(Message m);
  bool send_append(NodeId to, bool allow_empty);
  void send_snapshot_chunks(NodeId to, Progress& pr);
  void broadcast_append();
  // Sends the commit index to followers no append has told it yet: an
  // append with no entries of its own, one per tick at most.
  void announce_commit();
  void broadcast_heartbeat();
  void send_timeout_now(NodeId to);
  bool maybe_commit();
  void on_commit_advanced();
  void flush_pending();
  void release_reads();
  void fail_all_reads();
  void update_self_progress();

  const Config config_;
  const NodeId id_;
  std::vector<NodeId> voters_;  // sorted
  Rng rng_;
  RaftLog log_;

  // Raft Figure 2 persistent state.
  Term term_;
  NodeId vote_;

  Role role_ = Role::kFollower;
  NodeId leader_;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  uint64_t heartbeat_round_ = 0;  // leader: heartbeat broadcasts so far
  int randomized_election_timeout_ = 0;
  std::map<NodeId, bool> votes_;

  // Leader state. std::map keeps iteration (and so message order) deterministic.
  std::map<NodeId, Progress> progress_;
  NodeId transferee_;
  bool broadcast_pending_ = false;
  std::deque<std::pair<Index, size_t>> uncommitted_;  // (index, bytes) of own proposals
  size_t uncommitted_bytes_ = 0;

  // ReadIndex state (leader). Reads in reads_ wait for a heartbeat round
  // >= their round to be acked by a quorum; reads in reads_before_commit_
  // wait for this term's first commit (Thesis §6.4 step 1).
  struct PendingRead {
    uint64_t context;
    Index index;
    uint64_t round;
  };
  std::deque<PendingRead> reads_;
  std::vector<uint64_t> reads_before_commit_;
  uint64_t read_round_ = 0;          // last round broadcast
  bool read_round_pending_ = false;  // reads wait for a round not yet sent
  std::map<NodeId, uint64_t> read_acks_;

  // Follower: the snapshot being received in chunks, and how many of its
  // bytes were accepted (handed to the application in snapshot_chunks; the
  // core keeps none of them).
  std::optional<SnapshotMeta> incoming_snapshot_;
  uint64_t incoming_bytes_ = 0;
  std::vector<SnapshotChunk> chunks_out_;

  // Output not yet handed out.
  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;
  std::vector<uint64_t> failed_reads_;
  SoftState prev_soft_;
  HardState prev_hard_;
};

const char* to_string(Role r);
const char* to_string(MessageType t);
std::string describe(const Message& m);

}  // namespace raftkv::raft
