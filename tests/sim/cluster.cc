#include "tests/sim/cluster.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <utility>

#include <fmt/format.h>

namespace raftkv::sim {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::Ready;
using raft::Role;

namespace {

uint64_t fnv(std::string_view s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ULL;
  return h;
}

void fail(const std::string& what) {
  throw SimFailure(what);
}

}  // namespace

struct Cluster::Node {
  NodeId id;
  std::unique_ptr<raft::MemoryStorage> disk;  // survives crashes
  std::unique_ptr<raft::Raft> raft;           // null while crashed
  AppliedLog applied;
  std::unique_ptr<raft::StateMachine> sm;  // SimOptions::state_machine; null if unset or crashed
  uint64_t epoch = 0;
  // Readies handed out and not yet durable, in order, each with the time its
  // write completes. A crash loses them.
  std::deque<std::pair<Ready, uint64_t>> writes;
  std::vector<raft::ReadState> read_states;
  std::vector<uint64_t> failed_reads;
  bool was_leader = false;
};

std::string encode_snapshot(const AppliedLog& log) {
  std::string out = fmt::format("{}\n", log.last.value);
  for (auto& [i, cmd] : log.commands)
    out += fmt::format("{} {} {}\n", i, cmd.size(), cmd);
  return out;
}

AppliedLog decode_snapshot(Index index, std::string_view data) {
  AppliedLog log;
  log.snapshot_index = index;
  size_t nl = data.find('\n');
  log.last = Index(std::stoull(std::string(data.substr(0, nl))));
  size_t pos = nl + 1;
  while (pos < data.size()) {
    size_t sp1 = data.find(' ', pos);
    size_t sp2 = data.find(' ', sp1 + 1);
    uint64_t i = std::stoull(std::string(data.substr(pos, sp1 - pos)));
    size_t len = std::stoull(std::string(data.substr(sp1 + 1, sp2 - sp1 - 1)));
    log.commands[i] = std::string(data.substr(sp2 + 1, len));
    pos = sp2 + 1 + len + 1;
  }
  if (log.last != index) fail(fmt::format("snapshot image at {} claims index {}", index, log.last));
  return log;
}

Cluster::Cluster(SimOptions opts) : opts_(std::move(opts)), rng_(opts_.seed) {
  std::vector<NodeId> voters;
  for (int i = 1; i <= opts_.nodes; ++i)
    voters.push_back(NodeId(i));
  for (NodeId id : voters) {
    auto n = std::make_unique<Node>();
    n->id = id;
    n->disk = std::make_unique<raft::MemoryStorage>(voters);
    nodes_.emplace(id, std::move(n));
  }
  for (NodeId id : voters)
    start_node(id);
}

Cluster::~Cluster() = default;

std::vector<NodeId> Cluster::ids() const {
  std::vector<NodeId> out;
  for (auto& [id, n] : nodes_)
    out.push_back(id);
  return out;
}

const raft::Raft& Cluster::raft(NodeId n) const {
  const Node& node = *nodes_.at(n);
  if (!node.raft) fail(fmt::format("node {} is crashed", n));
  return *node.raft;
}
const raft::MemoryStorage& Cluster::storage(NodeId n) const {
  return *nodes_.at(n)->disk;
}
const AppliedLog& Cluster::applied(NodeId n) const {
  return nodes_.at(n)->applied;
}
raft::StateMachine* Cluster::state_machine(NodeId n) const {
  return nodes_.at(n)->sm.get();
}
bool Cluster::alive(NodeId n) const {
  return nodes_.at(n)->raft != nullptr;
}
bool Cluster::has_unsynced_writes(NodeId n) const {
  return !nodes_.at(n)->writes.empty();
}

std::optional<NodeId> Cluster::any_leader() const {
  std::optional<NodeId> best;
  for (auto& [id, n] : nodes_) {
    if (!n->raft || n->raft->role() != Role::kLeader) continue;
    if (!best || n->raft->term() > nodes_.at(*best)->raft->term()) best = id;
  }
  return best;
}

std::vector<raft::ReadState> Cluster::take_read_states(NodeId n) {
  return std::exchange(nodes_.at(n)->read_states, {});
}
std::vector<uint64_t> Cluster::take_failed_reads(NodeId n) {
  return std::exchange(nodes_.at(n)->failed_reads, {});
}

void Cluster::hash(uint64_t v) {
  trace_hash_ = (trace_hash_ ^ v) * 1099511628211ULL;
}

void Cluster::start_node(NodeId id) {
  Node& n = *nodes_.at(id);
  ++n.epoch;
  n.writes.clear();
  n.read_states.clear();
  n.failed_reads.clear();
  n.was_leader = false;
  // The state machine restarts from the durable snapshot.
  const raft::Snapshot& snap = n.disk->stored_snapshot();
  if (opts_.state_machine) {
    // kvsim hook: the image is the pluggable state machine's, not an AppliedLog.
    n.sm = opts_.state_machine(id);
    n.applied = AppliedLog{};
    if (snap.meta.index > Index(0)) {
      restore_state_machine(n, snap);
      n.applied.snapshot_index = n.applied.last = snap.meta.index;
    }
  } else if (snap.meta.index > Index(0)) {
    n.applied = decode_snapshot(snap.meta.index, snap.data.view());
  } else {
    n.applied = AppliedLog{};
  }
  raft::Config cfg = opts_.raft;
  cfg.id = id;
  cfg.voters = ids();
  cfg.applied = n.applied.last;
  cfg.seed = opts_.seed * 1000003 + id.value * 7919 + n.epoch;
  // Like a production node, which writes a snapshot image to a file in the
  // background, the disk answers "not ready yet" for the image half the
  // time, so the core's retry path runs under every fault injected here.
  n.disk->set_image_ready(
      [rng = raft::Rng(cfg.seed ^ 0x5EED)]() mutable { return !rng.chance(0.5); });
  n.raft = std::make_unique<raft::Raft>(cfg, *n.disk);
  // Stagger first ticks so nodes are not in lockstep.
  schedule({now_ + 1 + rng_.below(opts_.tick_ms), 0, Event::kTick, id, {}, n.epoch});
}

void Cluster::crash(NodeId id) {
  Node& n = *nodes_.at(id);
  if (!n.raft) return;
  hash(0xC0FFEE + id.value);
  n.raft.reset();
  n.sm.reset();      // kvsim hook: the state machine is volatile too
  n.writes.clear();  // unsynced writes are lost
  n.applied = AppliedLog{};
  ++n.epoch;
}

void Cluster::restart(NodeId id) {
  crash(id);
  start_node(id);
}

void Cluster::disconnect(NodeId n) {
  isolated_.insert(n);
}
void Cluster::connect(NodeId n) {
  isolated_.erase(n);
}

void Cluster::partition(const std::vector<std::vector<NodeId>>& groups) {
  group_.clear();
  for (auto& [id, n] : nodes_)
    group_[id] = -1;
  for (size_t g = 0; g < groups.size(); ++g)
    for (NodeId id : groups[g])
      group_[id] = static_cast<int>(g);
}

void Cluster::heal() {
  isolated_.clear();
  group_.clear();
}

bool Cluster::link_up(NodeId a, NodeId b) const {
  if (isolated_.count(a) || isolated_.count(b)) return false;
  if (group_.empty()) return true;
  int ga = group_.at(a), gb = group_.at(b);
  return ga >= 0 && ga == gb;
}

void Cluster::schedule(Event e) {
  e.seq = ++seq_;
  events_.push(std::move(e));
}

void Cluster::send_all(std::vector<Message>& msgs) {
  for (Message& m : msgs) {
    ++messages_sent_;
    bytes_sent_ += m.byte_size();
    ++sent_by_type_[static_cast<int>(m.type)];
    hash(fnv(raft::describe(m)));
    if (!link_up(m.from, m.to)) continue;
    if (rng_.chance(opts_.net.drop)) continue;
    int copies = rng_.chance(opts_.net.duplicate) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      uint64_t delay =
          opts_.net.min_delay +
          rng_.below(static_cast<uint64_t>(opts_.net.max_delay - opts_.net.min_delay + 1));
      if (rng_.chance(opts_.net.long_delay)) delay = 200 + rng_.below(1800);
      schedule({now_ + delay, 0, Event::kDeliver, m.to, m, 0});
    }
  }
  msgs.clear();
}

bool Cluster::step_once(uint64_t deadline) {
  if (events_.empty() || events_.top().at > deadline) {
    now_ = std::max(now_, deadline);
    return false;
  }
  Event e = events_.top();
  events_.pop();
  now_ = e.at;
  process(e);
  check_after_event();
  return true;
}

void Cluster::run_for(uint64_t ms) {
  uint64_t deadline = now_ + ms;
  while (step_once(deadline)) {
  }
}

void Cluster::process(const Event& e) {
  Node& n = *nodes_.at(e.node);
  switch (e.kind) {
    case Event::kTick:
      if (e.epoch != n.epoch || !n.raft) return;
      n.raft->tick();
      schedule({now_ + opts_.tick_ms, 0, Event::kTick, n.id, {}, n.epoch});
      break;
    case Event::kDeliver:
      // A message also needs the link up when it arrives.
      if (!n.raft || !link_up(e.msg.from, e.msg.to)) return;
      hash(fnv(raft::describe(e.msg)) + 1);
      n.raft->step(e.msg);
      break;
    case Event::kDisk:
      if (e.epoch != n.epoch || !n.raft) return;
      complete_disk_write(n);
      break;
    case Event::kWake:
      break;
  }
  if (n.raft) drain_ready(n);
}

void Cluster::drain_ready(Node& n) {
  while (n.raft && n.raft->has_ready()) {
    Ready rd = n.raft->ready();
    if (rd.soft_state && rd.soft_state->role == Role::kLeader) observe_leader(n);
    n.failed_reads.insert(n.failed_reads.end(), rd.failed_reads.begin(), rd.failed_reads.end());
    // Thesis §10.2.1: the leader's appends leave before its own write is durable.
    send_all(rd.messages);
    observe_entries(n, rd.entries);
    uint64_t done = now_;
    if (opts_.max_disk_delay > 0 && (rd.must_sync || !n.writes.empty())) {
      done += rng_.below(static_cast<uint64_t>(opts_.max_disk_delay) + 1);
    }
    if (!n.writes.empty()) done = std::max(done, n.writes.back().second);
    n.writes.emplace_back(std::move(rd), done);
    if (done == now_ && n.writes.size() == 1) {
      complete_disk_write(n);
    } else {
      schedule({done, 0, Event::kDisk, n.id, {}, n.epoch});
    }
  }
}

void Cluster::complete_disk_write(Node& n) {
  while (!n.writes.empty() && n.writes.front().second <= now_) {
    Ready rd = std::move(n.writes.front().first);
    n.writes.pop_front();
    n.disk->persist(rd);
    // Durable now: votes and acks may go out (Raft Figure 2).
    send_all(rd.persisted_messages);
    apply(n, rd);
    n.raft->advance(rd);
    maybe_snapshot(n);
  }
}

void Cluster::apply(Node& n, const Ready& rd) {
  if (rd.snapshot && n.sm) {
    // kvsim hook: install into the pluggable state machine.
    // The disk holds the image now: persist() ran first.
    restore_state_machine(n, n.disk->stored_snapshot());
    n.applied = AppliedLog{};
    n.applied.snapshot_index = n.applied.last = rd.snapshot->index;
  } else if (rd.snapshot) {
    n.applied = decode_snapshot(rd.snapshot->index, n.disk->stored_snapshot().data.view());
  }
  for (const Entry& e : rd.committed_entries) {
    if (e.index != n.applied.last + 1) {
      fail(fmt::format("node {} applied {} after {}", n.id, e.index, n.applied.last));
    }
    n.applied.last = e.index;
    if (n.sm) n.sm->apply(e);  // kvsim hook
    std::string cmd(e.data.view());
    if (e.type == EntryType::kNormal) n.applied.commands[e.index.value] = cmd;
    // State machine safety (Raft §5.4.3): no two nodes apply different
    // entries at one index.
    auto [it, fresh] = applied_.emplace(e.index.value, std::make_pair(e.term.value, cmd));
    if (!fresh && (it->second.first != e.term.value || it->second.second != cmd)) {
      fail(
          fmt::format("state machine safety: node {} applied {}/{} '{}' where another applied "
                      "{}/{} '{}'",
                      n.id, e.index, e.term, cmd, e.index, it->second.first, it->second.second));
    }
  }
  for (const raft::ReadState& rs : rd.read_states)
    n.read_states.push_back(rs);
}

void Cluster::maybe_snapshot(Node& n) {
  // snapshot_log_bytes (kvsim hook) is an additional, independent trigger.
  bool by_bytes = opts_.snapshot_log_bytes > 0 && n.disk->log_bytes() >= opts_.snapshot_log_bytes;
  if (opts_.snapshot_every == 0 && !by_bytes) return;
  Index applied = n.applied.last;
  if (!by_bytes && applied - n.disk->snapshot_meta().index < opts_.snapshot_every) return;
  if (applied <= n.disk->snapshot_meta().index) return;  // nothing new to compact
  // Only durable, applied state is compacted.
  if (applied > n.disk->last_index()) return;
  if (n.sm) {
    // kvsim hook: the pluggable state machine provides the image.
    if (n.sm->applied_index() != applied) {
      fail(fmt::format("node {}: state machine at {} but {} applied", n.id, n.sm->applied_index(),
                       applied));
    }
    n.disk->compact(applied, n.sm->snapshot());
    return;
  }
  n.disk->compact(applied, raft::Bytes(encode_snapshot(n.applied)));
}

void Cluster::restore_state_machine(Node& n, const raft::Snapshot& snap) {
  std::string error;
  if (!n.sm->restore(snap, &error)) {
    fail(fmt::format("node {}: state machine cannot restore snapshot {}: {}", n.id, snap.meta.index,
                     error));
  }
}

raft::ProposeResult Cluster::propose(NodeId id, const std::string& command) {
  Node& n = *nodes_.at(id);
  if (!n.raft) return {};
  auto res = n.raft->propose(raft::Bytes(command));
  // Like the node driver, which drains its whole inbox before one ready():
  // proposals made at the same instant share one append per follower.
  schedule({now_, 0, Event::kWake, id, {}, n.epoch});
  return res;
}

void Cluster::read_index(NodeId id, uint64_t context) {
  Node& n = *nodes_.at(id);
  if (!n.raft) return;
  n.raft->read_index(context);
  schedule({now_, 0, Event::kWake, id, {}, n.epoch});
}

// --- 6.824-style helpers ------------------------------------------------------

int Cluster::n_committed(Index index, std::string* command) const {
  int count = 0;
  std::optional<std::string> seen;
  for (auto& [id, n] : nodes_) {
    if (n->applied.last < index) continue;
    auto it = n->applied.commands.find(index.value);
    std::string cmd = it == n->applied.commands.end() ? std::string() : it->second;
    if (it == n->applied.commands.end() && index <= n->applied.snapshot_index) {
      // Compacted on this node: the global record knows what it was.
      auto g = applied_.find(index.value);
      if (g != applied_.end()) cmd = g->second.second;
    }
    if (seen && *seen != cmd) fail(fmt::format("index {}: '{}' vs '{}'", index, *seen, cmd));
    seen = cmd;
    ++count;
  }
  if (command && seen) *command = *seen;
  return count;
}

bool Cluster::wait_committed(Index index, int n, uint64_t ms) {
  return run_until([&] { return n_committed(index) >= n; }, ms);
}

Index Cluster::one(const std::string& command, int expected, bool retry, uint64_t ms) {
  uint64_t deadline = now_ + ms;
  size_t start = 0;
  while (now_ < deadline) {
    std::optional<Index> index;
    for (size_t k = 0; k < nodes_.size() && !index; ++k) {
      NodeId id = NodeId((start + k) % nodes_.size() + 1);
      if (!alive(id) || !connected(id)) continue;
      auto res = propose(id, command);
      if (res.status == raft::ProposeResult::Status::kAccepted) index = res.index;
    }
    start = (start + 1) % nodes_.size();
    if (index) {
      // Somebody claimed to be the leader; wait for agreement.
      uint64_t wait_until = std::min(deadline, now_ + 2000);
      while (now_ < wait_until) {
        std::string got;
        if (n_committed(*index, &got) >= expected && got == command) return *index;
        run_for(20);
      }
      if (!retry) fail(fmt::format("one({}) failed to reach agreement", command));
    } else {
      run_for(50);
    }
  }
  fail(fmt::format("one({}) failed to reach agreement within {} ms", command, ms));
  return Index(0);
}

NodeId Cluster::check_one_leader(uint64_t ms) {
  uint64_t deadline = now_ + ms;
  while (now_ < deadline) {
    run_for(100);
    std::map<uint64_t, std::vector<NodeId>> leaders;
    for (auto& [id, n] : nodes_) {
      if (n->raft && connected(id) && n->raft->role() == Role::kLeader)
        leaders[n->raft->term().value].push_back(id);
    }
    for (auto& [t, ls] : leaders)
      if (ls.size() > 1) fail(fmt::format("term {} has {} leaders", t, ls.size()));
    if (!leaders.empty()) return leaders.rbegin()->second.front();
  }
  fail("expected one leader, got none");
  return raft::kNoNode;
}

void Cluster::check_no_leader() const {
  for (auto& [id, n] : nodes_) {
    if (n->raft && connected(id) && n->raft->role() == Role::kLeader)
      fail(fmt::format("expected no leader among connected nodes, but {} claims to be one", id));
  }
}

Term Cluster::check_terms() const {
  std::optional<Term> term;
  for (auto& [id, n] : nodes_) {
    if (!n->raft || !connected(id)) continue;
    if (term && *term != n->raft->term()) fail("servers disagree on term");
    term = n->raft->term();
  }
  return term.value_or(Term(0));
}

uint64_t Cluster::requests_sent() const {
  using T = raft::MessageType;
  uint64_t n = 0;
  for (T t : {T::kPreVote, T::kVote, T::kAppend, T::kHeartbeat, T::kSnapshot, T::kTimeoutNow})
    n += messages_sent(t);
  return n;
}

size_t Cluster::max_log_bytes() const {
  size_t m = 0;
  for (auto& [id, n] : nodes_)
    m = std::max(m, n->disk->log_bytes());
  return m;
}

std::string Cluster::describe() const {
  std::string s = fmt::format("t={}ms\n", now_);
  for (auto& [id, n] : nodes_) {
    s += n->raft ? n->raft->describe() : fmt::format("node {}: crashed", id);
    s += connected(id) ? "\n" : " (disconnected)\n";
  }
  return s;
}

// --- checkers ------------------------------------------------------------------

void Cluster::observe_leader(const Node& n) {
  const raft::Raft& r = *n.raft;
  ++elections_won_;
  // Election safety (Raft §5.2): at most one leader per term.
  auto [it, fresh] = leader_of_term_.emplace(r.term().value, n.id);
  if (!fresh && it->second != n.id) {
    fail(fmt::format("election safety: term {} has leaders {} and {}", r.term(), it->second, n.id));
  }
  // Leader completeness (Raft §5.4): a leader holds every entry committed
  // (applied anywhere) before its term.
  for (auto& [index, te] : applied_) {
    Index i(index);
    if (i < r.log().first_index()) continue;  // covered by its snapshot
    auto t = r.log().term(i);
    if (!t || t->value != te.first) {
      fail(fmt::format("leader completeness: leader {} (term {}) lacks committed entry {}/{}", n.id,
                       r.term(), index, te.first));
    }
  }
}

void Cluster::observe_entries(const Node& n, const std::vector<Entry>& entries) {
  // Log matching (Raft §5.3): an (index, term) names one entry cluster-wide,
  // with one predecessor term. By induction, logs that share an entry share
  // the whole prefix before it.
  for (const Entry& e : entries) {
    auto key = std::make_pair(e.index.value, e.term.value);
    uint64_t data = fnv(e.data.view()) ^ static_cast<uint64_t>(e.type);
    auto [it, fresh] = entry_identity_.emplace(key, std::make_pair(data, 0));
    if (!fresh && it->second.first != data) {
      fail(
          fmt::format("log matching: node {} has entry {}/{} with other contents than another "
                      "node's",
                      n.id, e.index, e.term));
    }
    // Predecessor terms are compared where known (not compacted); 0 = unknown.
    std::optional<Term> prev = n.raft->log().term(e.index - 1);
    if (prev && e.index > Index(1)) {
      uint64_t p = prev->value + 1;
      if (it->second.second == 0) it->second.second = p;
      if (it->second.second != p) {
        fail(fmt::format("log matching: node {} has {}/{} after term {}, another node after {}",
                         n.id, e.index, e.term, prev->value, it->second.second - 1));
      }
    }
  }
}

void Cluster::check_after_event() {
  for (auto& [id, n] : nodes_) {
    if (!n->raft) continue;
    n->raft->check_invariants();
    // A leader's term is registered when it is handed out in a Ready, so check
    // the live role here too.
    if (n->raft->role() == Role::kLeader) {
      auto it = leader_of_term_.find(n->raft->term().value);
      if (it != leader_of_term_.end() && it->second != id) {
        fail(fmt::format("election safety: term {} has leaders {} and {}", n->raft->term(),
                         it->second, id));
      }
    }
  }
}

void Cluster::check_log_matching_full() const {
  // Pairwise: wherever two logs hold the same (index, term), every earlier
  // entry is identical.
  std::vector<const Node*> live;
  for (auto& [id, n] : nodes_)
    if (n->raft) live.push_back(n.get());
  for (size_t a = 0; a < live.size(); ++a) {
    for (size_t b = a + 1; b < live.size(); ++b) {
      const raft::RaftLog& la = live[a]->raft->log();
      const raft::RaftLog& lb = live[b]->raft->log();
      Index lo = std::max(la.first_index(), lb.first_index());
      Index hi = std::min(la.last_index(), lb.last_index());
      Index match(0);
      for (Index i = hi; i >= lo && i > Index(0); i = i - 1) {
        if (la.term(i) == lb.term(i)) {
          match = i;
          break;
        }
      }
      if (match < lo) continue;
      auto ea = la.slice(lo, match + 1, SIZE_MAX);
      auto eb = lb.slice(lo, match + 1, SIZE_MAX);
      if (ea != eb) {
        fail(fmt::format("log matching: nodes {} and {} share {}/{} but differ before it",
                         live[a]->id, live[b]->id, match, *la.term(match)));
      }
    }
  }
}

}  // namespace raftkv::sim
