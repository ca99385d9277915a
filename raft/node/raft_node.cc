#include "raft/node/raft_node.h"

#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>
#include <asio.hpp>

#include "raft/core/check.h"
#include "raft/node/group_commit.h"
#include "raft/node/log_line.h"
#include "raft/node/proposal_waiters.h"
#include "raft/node/rocks_log_store.h"
#include "raft/node/snapshot_files.h"
#include "raft/node/transport.h"

namespace raftkv::raft {

namespace {
// Readies in the storage queue at once. More would only queue behind the
// disk; the core keeps accumulating meanwhile, and the next Ready takes it all.
constexpr size_t kMaxWritesInFlight = 8;

// The core's view of the log store. For a durable() state machine,
// compaction leaves an empty image in the store (the state machine holds the
// state), so the snapshot for a lagging follower is the state machine's
// pinned view instead: at pinned_index() >= the store's snapshot index
// (equal, except after a restart, when the pin is the persisted state). A
// newer snapshot serves a follower as well as the stored one would: it holds
// only applied, hence committed, state, and our log has the term of its
// index and the entries after it (pinned <= applied <= last index). Its
// image is written to a file in the background; until it is complete the
// core is told "not yet" and asks again later.
class CoreStorage final : public LogReader {
 public:
  CoreStorage(const RocksLogStore& store, const StateMachine& sm, SnapshotFiles& files)
      : store_(store), sm_(sm), files_(files) {}
  HardState hard_state() const override { return store_.hard_state(); }
  SnapshotMeta snapshot_meta() const override { return store_.snapshot_meta(); }
  Index first_index() const override { return store_.first_index(); }
  Index last_index() const override { return store_.last_index(); }
  std::optional<Term> term(Index i) const override { return store_.term(i); }
  std::vector<Entry> entries(Index lo, Index hi, size_t max_bytes) const override {
    return store_.entries(lo, hi, max_bytes);
  }
  std::optional<Snapshot> snapshot() const override {
    Snapshot snap = *store_.snapshot();
    if (!sm_.durable() || !snap.data.empty() || snap.meta.index == Index(0)) return snap;
    Index pinned = sm_.pinned_index();
    std::optional<Term> term = store_.term(pinned);
    RAFTKV_CHECK_MSG(pinned >= snap.meta.index && term,
                     "the state machine's pinned view is behind the compacted log");
    std::optional<Bytes> image =
        files_.outgoing(pinned, [this] { return sm_.pinned_image_writer(); });
    if (!image) return std::nullopt;
    return Snapshot{SnapshotMeta{pinned, *term, snap.meta.voters}, std::move(*image)};
  }

 private:
  const RocksLogStore& store_;
  const StateMachine& sm_;
  SnapshotFiles& files_;
};

[[noreturn]] void fatal(const std::string& what) {
  log_line("raft", "FATAL: " + what);
  std::abort();
}
}  // namespace

struct RaftNode::Impl {
  Impl(asio::io_context& io_, const NodeOptions& o, RocksLogStore& st, GroupCommitter& gc,
       StateMachine& s, Transport& t)
      : io(io_),
        opts(o),
        store(st),
        committer(gc),
        sm(s),
        transport(t),
        files(o.snapshot_dir.empty() ? st.dir() + "/snapshots" : o.snapshot_dir),
        core_storage(st, s, files),
        ticker(io_),
        hold_timer(io_) {}

  asio::io_context& io;
  NodeOptions opts;
  RocksLogStore& store;
  GroupCommitter& committer;
  StateMachine& sm;
  Transport& transport;
  SnapshotFiles files;
  CoreStorage core_storage;
  std::unique_ptr<Raft> raft;
  asio::steady_timer ticker;
  std::minstd_rand tick_rng{std::random_device{}()};  // the ticker's phase shifts
  bool stopped = false;
  bool pump_scheduled = false;
  // A follower's small write waiting for more entries (hold_small_write()).
  asio::steady_timer hold_timer;
  bool hold_armed = false;
  // Posted callbacks check this, so none runs after the node is gone.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  // Readies handed to storage, oldest first; completions arrive in order.
  // A Ready with nothing to write still waits its turn here (its
  // persisted_messages may answer entries an earlier write is making
  // durable) but not on the storage thread: it rides with the write ahead
  // of it and completes right after it.
  struct InFlight {
    Ready rd;
    bool rides_along = false;
  };
  std::deque<InFlight> writes;
  // The commit index is volatile state (Raft Figure 2): a restart that finds
  // an older one only re-learns it from the leader. So a hard state that
  // changes nothing but the commit index gets no write of its own (under
  // load that was a write, a storage-thread wakeup and a post back per
  // commit on every node); it goes with the node's next write, unless a
  // newer hard state does.
  std::optional<HardState> deferred_hard_state;

  // Apply is decoupled from the Ready that carried the entries: a committed
  // entry is applied as soon as it is durable in the local log, which is
  // usually before the write of the Ready that handed it out (on a leader,
  // always: it commits only what its own disk holds, thesis §10.2.1). So
  // replies do not wait for the fsync of newer entries.
  // The local log is durable through `durable_through`, and no write in
  // flight replaces an entry at or below it. Invariant: every entry in
  // `to_apply` at or below it is the committed entry of that index.
  Index durable_through;
  struct ToApply {
    std::optional<SnapshotMeta> snapshot;  // install this (once durable) ...
    bool snapshot_durable = false;
    Entry entry;  // ... or apply this
  };
  // Committed output of the core not yet applied, in order.
  std::deque<ToApply> to_apply;

  // Proposals by log index. A waiter completes when its index is applied:
  // kApplied if the applied entry has its term, kLost otherwise.
  ProposalWaiters<ProposeDone> proposals;
  uint64_t next_read = 1;
  std::map<uint64_t, ReadDone> reads_awaiting_confirmation;
  std::multimap<Index, ReadDone> reads_awaiting_apply;

  SoftState soft;
  struct HandOff {
    int ticks_left;
    std::function<void(bool)> done;
  };
  std::optional<HandOff> hand_off;

  void schedule_pump() {
    if (pump_scheduled || stopped) return;
    pump_scheduled = true;
    // Everything that arrives in this turn of the event loop (a socket read
    // full of requests, a batch of peer messages) shares one Ready.
    asio::post(io, [this, a = alive] {
      if (!*a) return;
      pump_scheduled = false;
      pump();
    });
  }

  // WritePacing for a follower's inline write: a few entries right after a
  // large write wait (here, not on the storage thread: the Raft thread must
  // go on reading the appends that are to join them). The Ready stays with
  // the core meanwhile, so a heartbeat response waits too, by at most the
  // window. Only in steady replication: never with a write in flight, a
  // snapshot to install, or a term (and so possibly a vote) not yet stored.
  bool hold_small_write() {
    if (raft->role() != Role::kFollower || !writes.empty() ||
        raft->log().has_snapshot_to_hand_out() || raft->term() != store.hard_state().term) {
      return false;
    }
    const uint64_t unwritten = raft->log().last_index().value - raft->log().persisted().value;
    if (unwritten == 0) return false;
    std::optional<GroupCommitter::Clock::time_point> until = committer.hold_until(unwritten);
    if (!until) return false;
    if (!hold_armed) {
      hold_armed = true;
      hold_timer.expires_at(*until);
      hold_timer.async_wait([this, a = alive](const asio::error_code&) {
        if (!*a) return;
        hold_armed = false;
        schedule_pump();
      });
    }
    return true;
  }

  void pump() {
    while (!stopped && raft->has_ready() && writes.size() < kMaxWritesInFlight) {
      if (hold_small_write()) return;
      Ready rd = raft->ready();
      if (rd.soft_state) on_soft_state(*rd.soft_state);
      for (uint64_t ctx : rd.failed_reads)
        finish_read(ctx, false);
      // Thesis §10.2.1: replication leaves now, in parallel with our own write.
      if (!rd.messages.empty()) transport.send(std::move(rd.messages));
      rd.messages.clear();
      // Ready step 2 begins with the incoming snapshot image, on disk.
      for (const SnapshotChunk& c : rd.snapshot_chunks)
        files.write_chunk(c);
      rd.snapshot_chunks.clear();
      Bytes image;
      if (rd.snapshot) {
        // Durability rule (Raft §7; thesis §5.1): the received image is
        // fsynced under its index BEFORE the log store records the snapshot
        // and drops the log, so a crash leaves it for start() to restore.
        std::string path = files.seal(rd.snapshot->index);
        // A durable state machine takes it from the file; otherwise the log
        // store keeps it as the snapshot's image.
        if (!sm.durable()) image = map_or_die(path);
      }
      WriteRequest req = WriteRequest::from_ready(rd, std::move(image));
      defer_commit_only_hard_state(req);
      // Entries this write replaces are no longer the durable ones.
      durable_through = std::min(durable_through, last_kept(rd));
      // Ready step 4 in order: the snapshot, then the committed entries.
      if (rd.snapshot) to_apply.push_back(ToApply{rd.snapshot, false, {}});
      for (Entry& e : rd.committed_entries)
        to_apply.push_back(ToApply{std::nullopt, false, std::move(e)});
      rd.committed_entries.clear();
      for (const ReadState& rs : rd.read_states) {
        auto it = reads_awaiting_confirmation.find(rs.context);
        if (it == reads_awaiting_confirmation.end()) continue;
        reads_awaiting_apply.emplace(rs.index, std::move(it->second));
        reads_awaiting_confirmation.erase(it);
      }
      rd.read_states.clear();
      const bool nothing_to_write = req.empty();
      writes.push_back(InFlight{std::move(rd), nothing_to_write});
      // A follower's write is all that stands between it and its ack, so
      // with nothing else in flight it writes here: no hand-off to the
      // storage thread and back (two wakeups per cycle on its critical
      // path). It applies only after the write and its acks (in
      // on_write_done()): entries committed earlier can wait, the leader
      // cannot. write_now() returns once the write is durable, so the acks
      // that on_write_done() sends still follow the fsync (Thesis §3.8). A
      // leader keeps writing in the background, in parallel with
      // replication and with its clients (Thesis §10.2.1).
      if (!nothing_to_write && writes.size() == 1 && raft->role() != Role::kLeader &&
          committer.write_now(req)) {
        on_write_done();
        continue;
      }
      apply_durable();
      if (nothing_to_write) {
        if (writes.size() == 1) on_write_done();
        continue;
      }
      // Runs on the storage thread, possibly after this node is gone: it
      // touches only the io_context (which outlives the node) and `alive`.
      committer.submit(std::move(req), [this, &ctx = io, a = alive] {
        asio::post(ctx, [this, a] {
          if (*a) on_write_done();
        });
      });
    }
  }

  void defer_commit_only_hard_state(WriteRequest& req) {
    // No entries, no snapshot and no sync: only the commit index changed.
    if (req.hard_state && !req.sync && req.entries.empty() && !req.snapshot) {
      deferred_hard_state = std::move(req.hard_state);
      req.hard_state.reset();
      return;
    }
    if (req.empty()) return;
    // Term and vote changes always come with a sync, which the branch above
    // excludes, so a deferred hard state holds the current term and vote;
    // its commit index is at most what the log held when it was handed out,
    // and committed entries are never replaced.
    if (!req.hard_state) req.hard_state = std::move(deferred_hard_state);
    deferred_hard_state.reset();
  }

  // Runs once the oldest outstanding Ready's writes are durable; then
  // completes the Readies that ride along behind it.
  void on_write_done() {
    do {
      finish_oldest_write();
    } while (!writes.empty() && writes.front().rides_along);
    maybe_compact();
    schedule_pump();
  }

  void finish_oldest_write() {
    RAFTKV_CHECK(!writes.empty());
    Ready rd = std::move(writes.front().rd);
    writes.pop_front();
    // Raft Figure 2 / Thesis §3.8: votes and acks only after the write above.
    if (!rd.persisted_messages.empty()) transport.send(std::move(rd.persisted_messages));
    Index written = rd.snapshot ? rd.snapshot->index : Index(0);
    if (!rd.entries.empty()) written = rd.entries.back().index;
    if (written > Index(0)) {
      // Durable now, up to where a write still in flight replaces entries.
      durable_through = std::max(durable_through, written);
      for (const InFlight& later : writes)
        durable_through = std::min(durable_through, last_kept(later.rd));
    }
    if (rd.snapshot) {
      for (ToApply& a : to_apply) {
        if (a.snapshot && a.snapshot->index == rd.snapshot->index) a.snapshot_durable = true;
      }
    }
    // Ready step 5, split: persisted now; applied as apply_durable() goes.
    if (rd.snapshot) raft->on_snapshot_persisted(rd.snapshot->index);
    if (!rd.entries.empty()) raft->on_persisted(rd.entries.back().index, rd.entries.back().term);
    apply_durable();
  }

  // The last index whose stored entry `rd`'s write leaves in place (a
  // snapshot drops the log, but covers what is at or below its index).
  static Index last_kept(const Ready& rd) {
    Index kept(UINT64_MAX);
    if (rd.snapshot) kept = rd.snapshot->index;
    if (!rd.entries.empty()) kept = std::min(kept, rd.entries.front().index - 1);
    return kept;
  }

  // Applies (and installs) the head of to_apply while it is durable here.
  void apply_durable() {
    // Waiters are answered only after applied_batch_done(): the state
    // machine stores the run's writes there, as one batch.
    std::vector<std::pair<ProposeDone, Outcome>> answers;
    bool applied_any = false;
    Index applied_to;
    auto end_run = [&] {
      if (!applied_any) return;
      RAFTKV_CHECK_MSG(applied_to <= store.last_index(),
                       "applied an entry the local log does not hold durably");
      sm.applied_batch_done();
      raft->on_applied(applied_to);
      applied_any = false;
      for (auto& [done, outcome] : answers)
        done(outcome);
      answers.clear();
    };
    while (!to_apply.empty() && !stopped) {
      ToApply& a = to_apply.front();
      if (a.snapshot) {
        if (!a.snapshot_durable) break;
        end_run();
        SnapshotMeta meta = *a.snapshot;
        to_apply.pop_front();
        install_snapshot(meta);
        raft->on_applied(meta.index);
        // Waiters at or below the snapshot never see their entry applied
        // here, but the snapshot may contain it: the outcome is for the
        // state machine to tell, not "lost".
        proposals.take_through(meta.index, [](ProposeDone done) { done(Outcome::kCovered); });
        continue;
      }
      // Durability rule (Raft Figure 2; thesis §3.8): the state machine
      // takes only entries durable in the local log, so after a crash the
      // state is never ahead of the log it recovers with.
      if (a.entry.index > durable_through) break;
      Entry e = std::move(a.entry);
      to_apply.pop_front();
      // A durable state machine may be ahead of the commit index the log
      // store recorded (that write is not synced): skip what it has.
      bool has = sm.durable() && e.index <= sm.applied_index();
      if (!has) sm.apply(e);
      applied_any = true;
      applied_to = e.index;
      if (auto w = proposals.take(e.index, e.term)) {
        answers.emplace_back(std::move(w->done), w->applied ? Outcome::kApplied : Outcome::kLost);
      }
    }
    end_run();
    serve_reads();
  }

  static Bytes map_or_die(const std::string& path) {
    std::string error;
    std::optional<Bytes> image = map_file(path, &error);
    if (!image) fatal("cannot read a received snapshot image: " + error);
    return std::move(*image);
  }

  // Restores a snapshot received from the leader (its log store record is
  // durable) from its installed image file.
  void install_snapshot(const SnapshotMeta& meta) {
    std::string error;
    if (!sm.restore(Snapshot{meta, map_or_die(files.installed_path(meta.index))}, &error)) {
      fatal("cannot install snapshot: " + error);
    }
    // The state machine holds the image durably now (for one that is not
    // durable, the log store does): the file may go.
    if (sm.durable()) sm.checkpoint();
    files.remove_installed(meta.index);
    log_line("raft", fmt::format("snapshot installed at index {} term {}", meta.index, meta.term));
  }

  void serve_reads() {
    Index applied = sm.applied_index();
    while (!reads_awaiting_apply.empty() && reads_awaiting_apply.begin()->first <= applied) {
      auto done = std::move(reads_awaiting_apply.begin()->second);
      reads_awaiting_apply.erase(reads_awaiting_apply.begin());
      done(true);
    }
  }

  void finish_read(uint64_t ctx, bool ok) {
    auto it = reads_awaiting_confirmation.find(ctx);
    if (it == reads_awaiting_confirmation.end()) return;
    auto done = std::move(it->second);
    reads_awaiting_confirmation.erase(it);
    done(ok);
  }

  void on_soft_state(const SoftState& s) {
    if (s.term != soft.term) log_line("raft", fmt::format("term {} -> {}", soft.term, s.term));
    if (s.role != soft.role || s.leader != soft.leader) {
      if (s.role == Role::kLeader) {
        log_line("raft", fmt::format("won election: leader of term {}", s.term));
      } else if (soft.role == Role::kLeader) {
        log_line("raft", fmt::format("lost leadership in term {}; now {} (leader {})", s.term,
                                     to_string(s.role), s.leader));
        files.forget_outgoing();
      } else {
        log_line("raft",
                 fmt::format("{} in term {}, leader {}", to_string(s.role), s.term, s.leader));
      }
    }
    // Reads confirmed by the old leadership were already released; the rest
    // fail through Ready::failed_reads. Reads past confirmation but waiting
    // for apply stay valid: their index was confirmed.
    soft = s;
  }

  void maybe_compact() {
    Index applied = sm.applied_index();
    Index snap = store.snapshot_meta().index;
    if (opts.snapshot_every == 0 || applied <= snap || applied - snap < opts.snapshot_every) {
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    Index at = applied;
    Bytes image;
    if (sm.durable()) {
      // Durability rule (Raft paper §7, thesis §5.1: the log may drop only
      // what a durable snapshot covers): compact only up to a state that is
      // durable already, so after any crash state.applied >= the log's
      // first index - 1. checkpoint_in_background() pins that state without
      // waiting for the disk (a synced checkpoint here stalled the Raft
      // thread 12-117 ms per compaction under load) and starts storing the
      // rest, so a later call gets closer to `applied`. Compact only close
      // to it: the log's flush after a compaction writes every entry above
      // the compaction index to a table file. The gap allowed grows with
      // the log's excess over the interval, so compaction always happens.
      // The store keeps an empty image; followers get the pinned view.
      at = sm.checkpoint_in_background();
      const uint64_t excess = applied - snap - opts.snapshot_every;
      if (at <= snap || applied - at > std::max(opts.snapshot_every / 16, excess)) return;
    } else {
      // Only applied (hence durable: we apply after the write) state is
      // compacted, so the log never loses an entry the state machine lacks.
      image = sm.snapshot();
    }
    std::optional<Term> term = raft->log().term(at);
    if (!term) return;
    StoreStatus st = store.compact(at, std::move(image), *term, raft->voters());
    if (!st.ok()) {
      log_line("raft", fmt::format("snapshot at {} refused: {}", at, st.error));
      return;
    }
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    log_line("raft", fmt::format("snapshot taken at index {} term {} ({:.1f} ms)", at, *term,
                                 took.count() / 1000.0));
  }

  // start() for a durable() state machine: it kept its state, so replay
  // only the log after its applied index. It is behind the store's snapshot
  // only after a crash between installing a snapshot in the log store and
  // restoring it into the state machine (or during that restore); the store
  // then still holds the installed image (compaction, which drops it, runs
  // only after checkpoint() made a later state durable).
  bool recover_durable_state(std::string* error) {
    Index applied = sm.applied_index();
    SnapshotMeta meta = store.snapshot_meta();
    if (applied < meta.index) {
      Snapshot snap = *store.snapshot();
      if (snap.data.empty()) {
        // The log store records a received snapshot whose image only the
        // installed file holds (see pump()): the install was interrupted.
        std::string why;
        std::optional<Bytes> image = map_file(files.installed_path(meta.index), &why);
        if (!image) {
          *error = fmt::format(
              "the state is at index {}, behind the log's snapshot at {}, whose image only the "
              "state held: the state directory was lost or damaged ({})",
              applied, meta.index, why);
          return false;
        }
        snap.data = std::move(*image);
      }
      if (!sm.restore(snap, error)) return false;
      log_line("raft", fmt::format("state restored from the stored snapshot at index {} (it was "
                                   "at {}: an install was interrupted, or the data dir comes "
                                   "from a build that kept the state in memory)",
                                   meta.index, applied));
      applied = sm.applied_index();
    }
    if (applied > store.last_index()) {
      *error = fmt::format("the state is at index {}, beyond the log's last index {}", applied,
                           store.last_index());
      return false;
    }
    sm.checkpoint();                            // pins the view CoreStorage::snapshot() serves
    files.remove_installed(Index(UINT64_MAX));  // the state holds them durably now
    log_line("raft",
             fmt::format("state recovered at index {}; replaying the log after it", applied));
    return true;
  }

  void on_tick() {
    if (stopped) return;
    const Role before = raft->role();
    raft->tick();
    if (hand_off) {
      if (raft->role() != Role::kLeader && raft->leader() != kNoNode && raft->leader() != opts.id) {
        auto done = std::move(hand_off->done);
        hand_off.reset();
        done(true);
      } else if (--hand_off->ticks_left <= 0) {
        auto done = std::move(hand_off->done);
        hand_off.reset();
        done(false);
      } else if (raft->role() == Role::kLeader && raft->transferee() == kNoNode) {
        start_transfer();
      }
    }
    // A compaction that waits for the state store's background write must
    // not wait for the next write of ours too (an idle node).
    maybe_compact();
    pump();
    const Role after = raft->role();
    arm_ticker(after != before && (after == Role::kPreCandidate || after == Role::kCandidate));
  }

  // Election timeouts are drawn in whole ticks (Raft §5.2), so two nodes
  // whose ticks fall in the same millisecond split the vote whenever they
  // draw the same count, and after a split they are still in phase for the
  // next draw (seen once in 45 failovers: two splits in a row, 2.3 s). A
  // random phase at start and a random shift of it, under one tick, each
  // time this node starts a campaign keep competing candidates apart.
  void arm_ticker(bool shift_phase) {
    int delay_ms = opts.tick_ms;
    if (shift_phase) delay_ms += std::uniform_int_distribution<int>(0, opts.tick_ms - 1)(tick_rng);
    ticker.expires_after(std::chrono::milliseconds(delay_ms));
    ticker.async_wait([this, a = alive](const asio::error_code& ec) {
      if (!ec && *a) on_tick();
    });
  }

  void start_transfer() {
    // The follower with the longest matching log can take over soonest.
    NodeId best;
    Index best_match;
    for (NodeId n : raft->voters()) {
      if (n == opts.id) continue;
      const Progress* pr = raft->progress(n);
      if (pr && pr->recent_active && (best == kNoNode || pr->match > best_match)) {
        best = n;
        best_match = pr->match;
      }
    }
    if (best != kNoNode) {
      log_line("raft", fmt::format("transferring leadership to {}", best));
      raft->transfer_leadership(best);
    }
  }
};

RaftNode::RaftNode(asio::io_context& io, const NodeOptions& options, RocksLogStore& store,
                   GroupCommitter& committer, StateMachine& sm, Transport& transport)
    : impl_(std::make_unique<Impl>(io, options, store, committer, sm, transport)) {}

RaftNode::~RaftNode() {
  *impl_->alive = false;
  impl_->stopped = true;
}

bool RaftNode::start(std::string* error) {
  Impl& m = *impl_;
  if (m.sm.durable()) {
    if (!m.recover_durable_state(error)) return false;
  } else {
    Snapshot snap = *m.store.snapshot();
    if (snap.meta.index > Index(0) && !m.sm.restore(snap, error)) return false;
    m.files.remove_installed(Index(UINT64_MAX));  // the log store holds the image
  }
  Config cfg = m.opts.raft;
  cfg.id = m.opts.id;
  cfg.voters = m.opts.voters;
  cfg.election_ticks = m.opts.election_ticks;
  cfg.heartbeat_ticks = m.opts.heartbeat_ticks;
  cfg.applied = m.sm.applied_index();
  // Randomized timeouts must differ between nodes and between restarts.
  cfg.seed = std::random_device{}() ^ (m.opts.id.value << 32);
  m.raft = std::make_unique<Raft>(cfg, m.core_storage);
  m.durable_through = m.store.last_index();  // every stored entry was synced
  m.soft = {m.raft->leader(), m.raft->role(), m.raft->term()};
  log_line("raft", fmt::format("node {} started: term {} log [{}..{}] commit {} applied {}",
                               m.opts.id, m.raft->term(), m.raft->log().first_index(),
                               m.raft->log().last_index(), m.raft->log().committed(), cfg.applied));
  m.arm_ticker(/*shift_phase=*/true);
  return true;
}

void RaftNode::stop() {
  impl_->stopped = true;
  impl_->ticker.cancel();
  impl_->hold_timer.cancel();
}

void RaftNode::step(std::vector<Message>&& msgs) {
  if (impl_->stopped) return;
  for (const Message& m : msgs)
    impl_->raft->step(m);
  impl_->schedule_pump();
}

void RaftNode::propose(Bytes command, ProposeDone done) {
  Impl& m = *impl_;
  if (m.stopped) return done(Outcome::kNotLeader);
  ProposeResult r = m.raft->propose(std::move(command));
  switch (r.status) {
    case ProposeResult::Status::kNotLeader:
      return done(Outcome::kNotLeader);
    case ProposeResult::Status::kBusy:
      return done(Outcome::kBusy);
    case ProposeResult::Status::kAccepted:
      break;
  }
  // A waiter this one replaces belongs to an entry that was overwritten.
  if (auto old = m.proposals.add(r.index, r.term, std::move(done))) (*old)(Outcome::kLost);
  m.schedule_pump();
}

void RaftNode::read(ReadDone done) {
  Impl& m = *impl_;
  if (m.stopped) return done(false);
  uint64_t ctx = m.next_read++;
  m.reads_awaiting_confirmation.emplace(ctx, std::move(done));
  m.raft->read_index(ctx);
  m.schedule_pump();
}

void RaftNode::hand_off_leadership(int timeout_ms, std::function<void(bool)> done) {
  Impl& m = *impl_;
  if (m.raft->role() != Role::kLeader || m.opts.voters.size() == 1) return done(true);
  m.hand_off = Impl::HandOff{std::max(1, timeout_ms / m.opts.tick_ms), std::move(done)};
  m.start_transfer();
  m.schedule_pump();
}

NodeStatus RaftNode::status() const {
  const Raft& r = *impl_->raft;
  return {impl_->opts.id,           r.role(), r.term(), r.leader(), r.log().committed(),
          impl_->sm.applied_index()};
}

NodeId RaftNode::leader() const {
  return impl_->raft->leader();
}
uint64_t RaftNode::syncs() const {
  return impl_->committer.stats().syncs;
}
uint64_t RaftNode::entries_persisted() const {
  return impl_->committer.stats().entries;
}

}  // namespace raftkv::raft
