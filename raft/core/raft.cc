#include "raft/core/raft.h"

#include <algorithm>

#include "raft/core/check.h"

namespace raftkv::raft {

namespace {

bool is_response(MessageType t) {
  return t == MessageType::kPreVoteResponse || t == MessageType::kVoteResponse ||
         t == MessageType::kAppendResponse || t == MessageType::kHeartbeatResponse;
}

}  // namespace

Raft::Raft(const Config& config, const LogReader& storage)
    : config_(config), id_(config.id), rng_(config.seed), log_(storage, config.applied) {
  RAFTKV_CHECK(config_.heartbeat_ticks > 0 && config_.heartbeat_ticks < config_.election_ticks);
  RAFTKV_CHECK(config_.max_inflight_msgs > 0 && config_.max_snapshot_chunk > 0);
  voters_ = storage.snapshot_meta().voters;
  if (voters_.empty()) voters_ = config.voters;
  std::sort(voters_.begin(), voters_.end());
  RAFTKV_CHECK_MSG(is_voter(id_), "this node is not a member of the configuration");
  HardState hs = storage.hard_state();
  term_ = hs.term;
  vote_ = hs.vote;
  prev_hard_ = {term_, vote_, log_.committed()};
  become_follower(term_, kNoNode);
  prev_soft_ = {leader_, role_, term_};
}

bool Raft::is_voter(NodeId n) const {
  return std::binary_search(voters_.begin(), voters_.end(), n);
}

bool Raft::committed_in_current_term() const {
  return log_.term(log_.committed()) == term_;
}

const Progress* Raft::progress(NodeId peer) const {
  auto it = progress_.find(peer);
  return it == progress_.end() ? nullptr : &it->second;
}

// --- role transitions --------------------------------------------------------

void Raft::reset(Term term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  leader_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_election_timeout();
  votes_.clear();
  transferee_ = kNoNode;
  progress_.clear();
  broadcast_pending_ = false;
  uncommitted_.clear();
  uncommitted_bytes_ = 0;
  fail_all_reads();
  incoming_snapshot_.reset();
  incoming_bytes_ = 0;
}

void Raft::reset_election_timeout() {
  randomized_election_timeout_ =
      config_.election_ticks + static_cast<int>(rng_.below(config_.election_ticks));
}

void Raft::become_follower(Term term, NodeId leader) {
  reset(term);
  role_ = Role::kFollower;
  leader_ = leader;
}

void Raft::become_pre_candidate() {
  RAFTKV_CHECK(role_ != Role::kLeader);
  // Thesis §9.6: a pre-candidate does not touch its term or vote, so a node
  // that cannot win disrupts nobody.
  votes_.clear();
  role_ = Role::kPreCandidate;
  leader_ = kNoNode;
  fail_all_reads();
}

void Raft::become_candidate() {
  RAFTKV_CHECK(role_ != Role::kLeader);
  reset(next(term_));
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Raft::become_leader() {
  RAFTKV_CHECK(role_ == Role::kCandidate);
  Term term = term_;
  NodeId vote = vote_;
  reset(term);
  vote_ = vote;
  role_ = Role::kLeader;
  leader_ = id_;
  Index last = log_.last_index();
  for (NodeId n : voters_) {
    Progress pr(last + 1, config_.max_inflight_msgs, config_.max_inflight_bytes);
    // Every peer is presumed alive for the first check-quorum round.
    pr.recent_active = true;
    progress_.emplace(n, std::move(pr));
  }
  // The leader counts itself only up to what is durable on its own disk.
  Progress& self = progress_.at(id_);
  self.match = log_.persisted();
  self.become_replicate();
  self.next = last + 1;
  read_acks_.clear();
  // Raft §8 / Figure 8: a no-op of the new term lets the leader commit (and
  // so learn the commit index) without waiting for a client.
  log_.append(Entry{term_, last + 1, EntryType::kNoop, {}});
  broadcast_append();
}

void Raft::campaign(CampaignKind kind) {
  Term vote_term;
  MessageType type;
  if (kind == CampaignKind::kPreVote) {
    become_pre_candidate();
    vote_term = next(term_);
    type = MessageType::kPreVote;
  } else {
    become_candidate();
    vote_term = term_;
    type = MessageType::kVote;
  }
  record_vote(id_, true);
  if (role_ == Role::kLeader || role_ == Role::kFollower) return;  // single node decided
  for (NodeId n : voters_) {
    if (n == id_) continue;
    Message m;
    m.type = type;
    m.to = n;
    m.term = vote_term;
    m.index = log_.last_index();
    m.log_term = log_.last_term();
    m.transfer = kind == CampaignKind::kTransfer;
    send(std::move(m));
  }
}

void Raft::record_vote(NodeId from, bool granted) {
  votes_.emplace(from, granted);  // the first answer from each voter counts
  size_t yes = 0, no = 0;
  for (auto& [n, g] : votes_)
    (g ? yes : no)++;
  if (yes >= quorum()) {
    if (role_ == Role::kPreCandidate) {
      campaign(CampaignKind::kVote);
    } else if (role_ == Role::kCandidate) {
      become_leader();
    }
  } else if (no >= quorum()) {
    become_follower(term_, kNoNode);
  }
}

void Raft::campaign_now() {
  if (role_ == Role::kLeader) return;
  campaign(config_.pre_vote ? CampaignKind::kPreVote : CampaignKind::kVote);
}

// --- time -------------------------------------------------------------------

void Raft::tick() {
  if (role_ == Role::kLeader) {
    tick_heartbeat();
  } else {
    tick_election();
  }
}

void Raft::tick_election() {
  if (++election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    campaign_now();
  }
}

void Raft::tick_heartbeat() {
  ++heartbeat_elapsed_;
  if (++election_elapsed_ >= config_.election_ticks) {
    election_elapsed_ = 0;
    if (config_.check_quorum) {
      // Thesis §6.2: step down when no majority was heard from in an election
      // timeout, so clients find the real leader and stale reads are refused.
      size_t active = 0;
      for (auto& [n, pr] : progress_) {
        if (n == id_ || pr.recent_active) ++active;
        pr.recent_active = false;
      }
      if (active < quorum()) {
        become_follower(term_, kNoNode);
        return;
      }
    }
    // A transfer that did not finish within an election timeout is abandoned.
    transferee_ = kNoNode;
  }
  announce_commit();
  if (heartbeat_elapsed_ >= config_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    broadcast_heartbeat();
    // Retransmit snapshot chunks that went unacknowledged for an election timeout.
    for (auto& [n, pr] : progress_) {
      if (n == id_ || pr.state != ProgressState::kSnapshot) continue;
      if (++pr.snapshot_idle_ticks * config_.heartbeat_ticks >= config_.election_ticks) {
        pr.snapshot_idle_ticks = 0;
        // No progress for an election timeout: trust the follower's latest
        // report, even below what it acked before (it may have lost its
        // partial transfer and restarted from a delayed first chunk).
        pr.snapshot_acked = std::min(pr.snapshot_acked, pr.snapshot_reported);
        pr.snapshot_sent = pr.snapshot_acked;
        pr.snapshot_final_sent = false;
        pr.snapshot_resent_at.reset();
        send_snapshot_chunks(n, pr);
      }
    }
  }
}

// --- input -------------------------------------------------------------------

void Raft::step(const Message& m) {
  RAFTKV_CHECK(m.to == id_);
  if (!is_voter(m.from)) return;
  if (m.term > term_) {
    bool vote_request = m.type == MessageType::kVote || m.type == MessageType::kPreVote;
    if (vote_request && !m.transfer && config_.check_quorum && leader_ != kNoNode &&
        election_elapsed_ < config_.election_ticks) {
      // Thesis §4.2.3: while we hear from a leader, ignore (do not even adopt
      // the term of) vote requests; a removed or partitioned server cannot
      // disrupt the cluster.
      return;
    }
    if (m.type == MessageType::kPreVote) {
      // A pre-vote never changes our term.
    } else if (m.type == MessageType::kPreVoteResponse && !m.reject) {
      // Granted pre-votes carry the term we would campaign in.
    } else if (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnapshot) {
      become_follower(m.term, m.from);
    } else {
      become_follower(m.term, kNoNode);
    }
  } else if (m.term < term_) {
    if ((config_.check_quorum || config_.pre_vote) &&
        (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat)) {
      // A stale leader (e.g. one that was partitioned) learns our term and
      // steps down. Without this, pre-vote could leave it stranded.
      Message r;
      r.type = MessageType::kAppendResponse;
      r.to = m.from;
      send(std::move(r));
    } else if (m.type == MessageType::kPreVote) {
      Message r;
      r.type = MessageType::kPreVoteResponse;
      r.to = m.from;
      r.reject = true;
      send(std::move(r));
    }
    return;
  }

  if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
    handle_vote_request(m);
    return;
  }
  switch (role_) {
    case Role::kLeader:
      step_leader(m);
      break;
    case Role::kPreCandidate:
    case Role::kCandidate:
      step_candidate(m);
      break;
    case Role::kFollower:
      step_follower(m);
      break;
  }
}

void Raft::handle_vote_request(const Message& m) {
  bool pre = m.type == MessageType::kPreVote;
  // Raft §5.2: at most one vote per term, first come first served. A
  // pre-vote for a later term promises nothing, so it may always be granted.
  bool can_vote =
      vote_ == m.from || (vote_ == kNoNode && leader_ == kNoNode) || (pre && m.term > term_);
  Message r;
  r.type = pre ? MessageType::kPreVoteResponse : MessageType::kVoteResponse;
  r.to = m.from;
  if (can_vote && log_.is_up_to_date(m.index, m.log_term)) {  // Raft §5.4.1
    r.term = m.term;
    if (!pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    r.reject = true;
  }
  send(std::move(r));
}

void Raft::step_candidate(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      become_follower(m.term, m.from);
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      break;
    case MessageType::kSnapshot:
      become_follower(m.term, m.from);
      handle_snapshot_chunk(m);
      break;
    case MessageType::kPreVoteResponse:
      if (role_ == Role::kPreCandidate) record_vote(m.from, !m.reject);
      break;
    case MessageType::kVoteResponse:
      if (role_ == Role::kCandidate) record_vote(m.from, !m.reject);
      break;
    default:
      break;
  }
}

void Raft::step_follower(const Message& m) {
  switch (m.type) {
    case MessageType::kAppend:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_heartbeat(m);
      break;
    case MessageType::kSnapshot:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_snapshot_chunk(m);
      break;
    case MessageType::kTimeoutNow:
      // Thesis §3.10: the leader chose us; campaign at once, skipping pre-vote,
      // and tell voters to ignore their leader lease.
      campaign(CampaignKind::kTransfer);
      break;
    default:
      break;
  }
}

void Raft::handle_append(const Message& m) {
  Message r;
  r.type = MessageType::kAppendResponse;
  r.to = m.from;
  if (m.index < log_.committed()) {
    // Everything up to our commit index already matches the leader's log.
    r.index = log_.committed();
  } else if (auto last = log_.maybe_append(m.index, m.log_term, m.commit, m.entries)) {
    r.index = *last;
  } else {
    r.reject = true;
    r.index = m.index;
    // Skip, in one round trip, every index whose term is above the leader's
    // prev term: none of them can match.
    r.reject_hint = log_.find_conflict_by_term(std::min(m.index, log_.last_index()), m.log_term);
    r.hint_term = log_.term(r.reject_hint).value_or(Term(0));
  }
  send(std::move(r));
}

void Raft::handle_heartbeat(const Message& m) {
  // The leader sends min(commit, our match), so this never passes our log.
  log_.commit_to(std::min(m.commit, log_.last_index()));
  Message r;
  r.type = MessageType::kHeartbeatResponse;
  r.to = m.from;
  r.read_round = m.read_round;
  r.index = m.index;
  send(std::move(r));
}

void Raft::handle_snapshot_chunk(const Message& m) {
  Message r;
  r.type = MessageType::kAppendResponse;
  r.to = m.from;
  const SnapshotMeta& meta = m.snapshot;
  if (meta.index <= log_.committed()) {
    // We already have everything it covers.
    incoming_snapshot_.reset();
    incoming_bytes_ = 0;
    r.index = log_.committed();
    send(std::move(r));
    return;
  }
  bool have_transfer = incoming_snapshot_ == meta;
  if (!have_transfer && m.snapshot_offset == 0) {
    incoming_snapshot_ = meta;
    incoming_bytes_ = 0;
    have_transfer = true;
  }
  r.snapshot_ack = true;
  r.snapshot = meta;
  if (!have_transfer) {
    // We hold nothing of this snapshot (we restarted, or it is new to us and
    // chunk 0 was lost): ask the leader to start over.
    r.reject = true;
    send(std::move(r));
    return;
  }
  // Chunks are taken strictly in order; a duplicate (offset below what we
  // hold, e.g. a delayed chunk 0) or a chunk after a gap changes nothing.
  // The ack goes out after the Ready that carries the chunk is written.
  bool in_sequence = m.snapshot_offset == incoming_bytes_;
  if (in_sequence) {
    chunks_out_.push_back(SnapshotChunk{meta, m.snapshot_offset, m.snapshot_data});
    incoming_bytes_ += m.snapshot_data.size();
  }
  if (!in_sequence || !m.snapshot_done) {
    r.snapshot_offset = incoming_bytes_;
    send(std::move(r));
    return;
  }
  r.snapshot_ack = false;
  r.snapshot = {};
  incoming_snapshot_.reset();
  incoming_bytes_ = 0;
  if (log_.match_term(meta.index, meta.term)) {
    // Our log already holds the snapshot's last entry: keep the log and just
    // learn the commit index (Raft §7, "retain log entries following it").
    log_.commit_to(meta.index);
    r.index = log_.last_index();
  } else {
    log_.restore(meta);
    voters_ = meta.voters;
    r.index = meta.index;
  }
  send(std::move(r));
}

void Raft::step_leader(const Message& m) {
  auto it = progress_.find(m.from);
  if (it == progress_.end() || m.from == id_) return;
  Progress& pr = it->second;
  switch (m.type) {
    case MessageType::kAppendResponse:
      pr.recent_active = true;
      if (m.snapshot_ack) {
        handle_snapshot_ack(m, pr);
      } else {
        handle_append_response(m, pr);
      }
      break;
    case MessageType::kHeartbeatResponse:
      pr.recent_active = true;
      handle_heartbeat_response(m, pr);
      break;
    default:
      break;
  }
}

void Raft::handle_append_response(const Message& m, Progress& pr) {
  if (m.reject) {
    Index hint = m.reject_hint;
    // Jump straight past every entry of ours whose term exceeds the
    // follower's term at its hint: none of them can match.
    if (m.hint_term > Term(0)) hint = log_.find_conflict_by_term(hint, m.hint_term);
    if (pr.maybe_decrease(m.index, hint)) send_append(m.from, true);
    return;
  }
  bool was_paused = pr.paused();
  if (!pr.maybe_update(m.index)) return;  // duplicate or reordered ack
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.become_replicate();
      break;
    case ProgressState::kSnapshot:
      if (pr.match >= pr.snapshot.meta.index) {
        pr.become_probe();
        pr.become_replicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.inflights.free_to(m.index);
      break;
  }
  if (maybe_commit()) {
    on_commit_advanced();
  } else if (was_paused) {
    send_append(m.from, false);
  }
  // Keep the pipeline full.
  while (send_append(m.from, false)) {
  }
  if (transferee_ == m.from && pr.match == log_.last_index()) send_timeout_now(m.from);
}

void Raft::handle_snapshot_ack(const Message& m, Progress& pr) {
  if (pr.state != ProgressState::kSnapshot || m.snapshot != pr.snapshot.meta) return;
  pr.snapshot_reported = m.reject ? 0 : m.snapshot_offset;
  if (m.reject) {
    // The follower holds nothing of this transfer: start over.
    pr.snapshot_acked = pr.snapshot_sent = 0;
    pr.snapshot_final_sent = false;
    pr.snapshot_resent_at.reset();
    pr.snapshot_idle_ticks = 0;
  } else if (m.snapshot_offset > pr.snapshot_acked) {
    pr.snapshot_idle_ticks = 0;
    pr.snapshot_acked = m.snapshot_offset;
    pr.snapshot_sent = std::max(pr.snapshot_sent, pr.snapshot_acked);
  } else if (m.snapshot_offset == pr.snapshot_acked && pr.snapshot_sent > pr.snapshot_acked &&
             pr.snapshot_resent_at != pr.snapshot_acked) {
    // A repeated ack: the chunk at the acked offset was lost or overtaken,
    // and the follower dropped everything after it. Go back to it, once per
    // offset (later repeats are answered by chunks already resent).
    pr.snapshot_resent_at = pr.snapshot_acked;
    pr.snapshot_sent = pr.snapshot_acked;
    pr.snapshot_final_sent = false;
  }
  // An ack below what was acked already is usually a reordered, stale one:
  // ignored here; the idle timer above recovers if it was the truth.
  send_snapshot_chunks(m.from, pr);
}

void Raft::handle_heartbeat_response(const Message& m, Progress& pr) {
  // A probe goes again only once a heartbeat sent after it is answered.
  // Answers to earlier heartbeats say nothing about it: resending on them
  // would queue a copy of up to max_msg_bytes per heartbeat behind a slow
  // follower.
  if (pr.state == ProgressState::kProbe && m.index.value > pr.probe_heartbeat) {
    pr.probe_sent = false;
  }
  // The follower is alive, so appends that filled the window may have been
  // lost: free one slot; a gap in what it receives turns into a rejection
  // and a probe from its real position.
  if (pr.state == ProgressState::kReplicate && pr.inflights.full()) pr.inflights.free_first_one();
  if (pr.match < log_.last_index()) send_append(m.from, true);
  uint64_t& acked = read_acks_[m.from];
  if (m.read_round > acked) {
    acked = m.read_round;
    release_reads();
  }
}

ProposeResult Raft::propose(Bytes command) {
  ProposeResult res;
  if (role_ != Role::kLeader) {
    res.status = ProposeResult::Status::kNotLeader;
    res.leader_hint = leader_;
    return res;
  }
  size_t bytes = command.size() + 24;
  if (transferee_ != kNoNode ||
      (uncommitted_bytes_ > 0 && uncommitted_bytes_ + bytes > config_.max_uncommitted_bytes)) {
    res.status = ProposeResult::Status::kBusy;
    res.leader_hint = leader_;
    return res;
  }
  Index index = log_.last_index() + 1;
  log_.append(Entry{term_, index, EntryType::kNormal, std::move(command)});
  uncommitted_.emplace_back(index, bytes);
  uncommitted_bytes_ += bytes;
  // Sent in flush_pending(), so all proposals drained before the next
  // ready() share one AppendEntries per follower.
  broadcast_pending_ = voters_.size() > 1;
  res.status = ProposeResult::Status::kAccepted;
  res.index = index;
  res.term = term_;
  res.leader_hint = id_;
  return res;
}

void Raft::read_index(uint64_t context) {
  if (role_ != Role::kLeader) {
    failed_reads_.push_back(context);
    return;
  }
  // Thesis §6.4 step 1: until an entry of this term commits, our commit index
  // may lag the cluster's.
  if (!committed_in_current_term()) {
    reads_before_commit_.push_back(context);
    return;
  }
  if (voters_.size() == 1) {
    read_states_.push_back({context, log_.committed()});
    return;
  }
  // Step 2-3: record the commit index; confirm leadership with a heartbeat
  // round sent after this point. All reads queued before the next ready()
  // share one round.
  reads_.push_back({context, log_.committed(), read_round_ + 1});
  read_round_pending_ = true;
}

void Raft::release_reads() {
  while (!reads_.empty()) {
    uint64_t round = reads_.front().round;
    if (round > read_round_) break;  // its round was not sent yet
    size_t acks = 1;                 // ourselves
    for (auto& [n, r] : read_acks_)
      if (n != id_ && r >= round) ++acks;
    if (acks < quorum()) break;
    read_states_.push_back({reads_.front().context, reads_.front().index});
    reads_.pop_front();
  }
}

void Raft::fail_all_reads() {
  for (auto& r : reads_)
    failed_reads_.push_back(r.context);
  reads_.clear();
  for (uint64_t c : reads_before_commit_)
    failed_reads_.push_back(c);
  reads_before_commit_.clear();
  read_round_pending_ = false;
}

bool Raft::transfer_leadership(NodeId target) {
  if (role_ != Role::kLeader || target == id_ || !is_voter(target)) return false;
  if (transferee_ == target) return true;
  transferee_ = target;
  // The transfer must finish within one election timeout or it is abandoned.
  election_elapsed_ = 0;
  const Progress& pr = progress_.at(target);
  if (pr.match == log_.last_index()) {
    send_timeout_now(target);
  } else {
    send_append(target, true);
  }
  return true;
}

void Raft::send_timeout_now(NodeId to) {
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  send(std::move(m));
}

// --- output ------------------------------------------------------------------

void Raft::send(Message m) {
  m.from = id_;
  // Responses carry our current term, except granted votes, which carry the
  // term they grant (set by the caller).
  if (m.term == Term(0)) m.term = term_;
  // Thesis §3.8: a vote or an ack is a promise about durable state, so
  // responses (and vote requests, which follow our own durable vote) wait
  // until the Ready's writes are on disk. The leader's replication traffic may
  // go at once, overlapping its own disk write (Thesis §10.2.1).
  bool after_persist =
      is_response(m.type) || m.type == MessageType::kVote || m.type == MessageType::kPreVote;
  (after_persist ? msgs_after_persist_ : msgs_).push_back(std::move(m));
}

bool Raft::send_append(NodeId to, bool allow_empty) {
  Progress& pr = progress_.at(to);
  if (pr.paused()) return false;
  Index prev = pr.next - 1;
  std::optional<Term> prev_term = log_.term(prev);
  if (!prev_term) {
    // The entries the follower needs are compacted: Raft §7.
    std::optional<Snapshot> snap = log_.storage_snapshot();
    if (!snap) {
      // The application is still writing the image: probe again once the
      // follower answers the next heartbeat, which asks for it anew.
      pr.become_probe();
      pr.probe_sent = true;
      pr.probe_heartbeat = heartbeat_round_;
      return false;
    }
    pr.become_snapshot(std::move(*snap));
    send_snapshot_chunks(to, pr);
    return false;
  }
  Message m;
  m.type = MessageType::kAppend;
  m.to = to;
  m.index = prev;
  m.log_term = *prev_term;
  if (pr.next <= log_.last_index()) {
    m.entries = log_.slice(pr.next, log_.last_index() + 1, config_.max_msg_bytes);
  }
  if (m.entries.empty() && !allow_empty) return false;
  m.commit = log_.committed();
  pr.commit_sent = std::max(pr.commit_sent, m.commit);
  if (pr.state == ProgressState::kReplicate) {
    if (!m.entries.empty()) {
      size_t bytes = 0;
      for (const Entry& e : m.entries)
        bytes += e.byte_size();
      pr.sent_entries(m.entries.back().index, bytes);
    }
  } else {
    pr.probe_sent = true;
    pr.probe_heartbeat = heartbeat_round_;
  }
  send(std::move(m));
  return true;
}

void Raft::send_snapshot_chunks(NodeId to, Progress& pr) {
  RAFTKV_CHECK(pr.state == ProgressState::kSnapshot);
  const uint64_t total = pr.snapshot.data.size();
  const uint64_t chunk = config_.max_snapshot_chunk;
  // A few chunks in flight hide the round trip; the follower drops chunks
  // that arrive out of order and the idle timer resends from its ack.
  const uint64_t window = 4 * chunk;
  while (!pr.snapshot_final_sent && pr.snapshot_sent - pr.snapshot_acked < window) {
    uint64_t len = std::min(chunk, total - pr.snapshot_sent);
    Message m;
    m.type = MessageType::kSnapshot;
    m.to = to;
    m.snapshot = pr.snapshot.meta;
    m.snapshot_offset = pr.snapshot_sent;
    m.snapshot_data = pr.snapshot.data.slice(pr.snapshot_sent, len);
    m.snapshot_done = pr.snapshot_sent + len == total;
    pr.snapshot_sent += len;
    pr.snapshot_final_sent = m.snapshot_done;
    send(std::move(m));
  }
}

void Raft::broadcast_append() {
  for (auto& [n, pr] : progress_)
    if (n != id_) send_append(n, true);
}

void Raft::broadcast_heartbeat() {
  // A new round confirms leadership for every read registered so far.
  if (!reads_.empty()) {
    read_round_ = reads_.back().round;
    read_round_pending_ = false;
  }
  ++heartbeat_round_;
  for (auto& [n, pr] : progress_) {
    if (n == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = n;
    // Never tell a follower to commit past what it is known to hold.
    m.commit = std::min(pr.match, log_.committed());
    m.read_round = read_round_;
    m.index = Index(heartbeat_round_);
    send(std::move(m));
  }
}

bool Raft::maybe_commit() {
  std::vector<Index> matches;
  matches.reserve(progress_.size());
  for (auto& [n, pr] : progress_)
    matches.push_back(pr.match);
  std::sort(matches.begin(), matches.end(), std::greater<Index>());
  // The highest index held by a majority (Raft §5.3), committed only if it
  // is from our term (Raft §5.4.2).
  return log_.maybe_commit(matches[quorum() - 1], term_);
}

void Raft::on_commit_advanced() {
  Index c = log_.committed();
  while (!uncommitted_.empty() && uncommitted_.front().first <= c) {
    uncommitted_bytes_ -= uncommitted_.front().second;
    uncommitted_.pop_front();
  }
  if (!reads_before_commit_.empty() && committed_in_current_term()) {
    auto pending = std::move(reads_before_commit_);
    reads_before_commit_.clear();
    for (uint64_t ctx : pending)
      read_index(ctx);
  }
  // Followers learn the new commit index with the next append, which under
  // load follows within a round trip; announce_commit() covers a pause.
}

void Raft::announce_commit() {
  for (auto& [n, pr] : progress_) {
    if (n != id_ && pr.commit_sent < log_.committed()) send_append(n, true);
  }
}

void Raft::flush_pending() {
  if (role_ != Role::kLeader) return;
  if (broadcast_pending_) {
    broadcast_pending_ = false;
    broadcast_append();
  }
  if (read_round_pending_) broadcast_heartbeat();
}

bool Raft::has_ready() const {
  if (broadcast_pending_ || read_round_pending_) return true;
  if (SoftState{leader_, role_, term_} != prev_soft_) return true;
  if (HardState{term_, vote_, log_.committed()} != prev_hard_) return true;
  return !msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty() ||
         !failed_reads_.empty() || !chunks_out_.empty() || log_.has_unpersisted() ||
         log_.has_snapshot_to_hand_out() || log_.has_committed_to_hand_out();
}

Ready Raft::ready() {
  flush_pending();
  Ready rd;
  SoftState soft{leader_, role_, term_};
  if (soft != prev_soft_) rd.soft_state = prev_soft_ = soft;
  HardState hard{term_, vote_, log_.committed()};
  bool vote_changed = hard.term != prev_hard_.term || hard.vote != prev_hard_.vote;
  if (hard != prev_hard_) rd.hard_state = prev_hard_ = hard;
  rd.snapshot_chunks = std::move(chunks_out_);
  chunks_out_.clear();
  rd.snapshot = log_.take_snapshot();
  rd.entries = log_.take_unpersisted();
  rd.committed_entries = log_.take_committed(config_.max_apply_bytes);
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  rd.failed_reads = std::move(failed_reads_);
  failed_reads_.clear();
  rd.messages = std::move(msgs_);
  msgs_.clear();
  rd.persisted_messages = std::move(msgs_after_persist_);
  msgs_after_persist_.clear();
  rd.must_sync = vote_changed || rd.snapshot.has_value() || !rd.entries.empty();
  return rd;
}

void Raft::advance(const Ready& rd) {
  if (rd.snapshot) on_snapshot_persisted(rd.snapshot->index);
  if (!rd.entries.empty()) on_persisted(rd.entries.back().index, rd.entries.back().term);
  if (rd.snapshot) on_applied(rd.snapshot->index);
  if (!rd.committed_entries.empty()) on_applied(rd.committed_entries.back().index);
}

void Raft::on_persisted(Index index, Term term) {
  log_.stable_to(index, term);
  update_self_progress();
}

void Raft::on_snapshot_persisted(Index index) {
  log_.stable_snapshot_to(index);
}

void Raft::on_applied(Index index) {
  log_.applied_to(index);
}

void Raft::update_self_progress() {
  if (role_ != Role::kLeader) return;
  // Thesis §10.2.1: the leader counts itself toward a commit quorum only for
  // entries durable on its own disk.
  if (progress_.at(id_).maybe_update(log_.persisted()) && maybe_commit()) on_commit_advanced();
}

}  // namespace raftkv::raft

namespace raftkv::raft {

void Raft::check_invariants() const {
  // Invariant: applied <= applying <= commit <= last_index.
  RAFTKV_CHECK(log_.applied() <= log_.applying());
  RAFTKV_CHECK(log_.applying() <= log_.committed());
  RAFTKV_CHECK(log_.committed() <= log_.last_index());
  RAFTKV_CHECK(log_.first_index() <= log_.last_index() + 1);
  // A vote, if any, is for this term (reset() clears it on term change).
  RAFTKV_CHECK(role_ != Role::kCandidate || vote_ == id_);
  RAFTKV_CHECK(role_ != Role::kLeader || leader_ == id_);
  if (role_ == Role::kLeader) {
    for (auto& [n, pr] : progress_) {
      RAFTKV_CHECK(pr.match < pr.next);
      RAFTKV_CHECK(pr.match <= log_.last_index());
    }
    RAFTKV_CHECK(progress_.at(id_).match <= log_.persisted());
  }
}

}  // namespace raftkv::raft
