// RaftLog: the node's view of its log, joining what storage holds durably with
// the unstable tail (entries and a snapshot not yet acknowledged as durable).
// Owned by one Raft instance; single-threaded.
#pragma once

#include <deque>
#include <optional>
#include <vector>

#include "raft/core/storage.h"

namespace raftkv::raft {

class RaftLog {
 public:
  RaftLog(const LogReader& storage, Index applied);

  Index first_index() const;
  Index last_index() const;
  Term last_term() const { return *term(last_index()); }
  // nullopt below first_index() - 1 (compacted) or above last_index().
  std::optional<Term> term(Index i) const;
  bool match_term(Index i, Term t) const { return term(i) == t; }
  // Raft §5.4.1: a candidate's log is at least as up to date as ours.
  bool is_up_to_date(Index last, Term t) const;
  // Entries [lo, hi), stopping once max_bytes is exceeded (at least one entry).
  // Invariant: first_index() <= lo <= hi <= last_index() + 1.
  std::vector<Entry> slice(Index lo, Index hi, size_t max_bytes) const;

  // Follower side of AppendEntries (Raft §5.3): if our log has prev_term at
  // prev, append `entries` (dropping a conflicting suffix) and advance commit.
  // Returns the index of the last entry the leader sent, or nullopt when prev
  // does not match.
  std::optional<Index> maybe_append(Index prev, Term prev_term, Index leader_commit,
                                    const std::vector<Entry>& entries);
  // Leader side: appends one entry at last_index() + 1, moved in (a proposal
  // costs no vector and no copy of its command's handle). Returns its index.
  Index append(Entry entry);
  // Fast backtracking (Raft §5.3 end): the largest index <= index whose term
  // is <= t, or first_index() - 1 when the search reaches the compacted prefix.
  Index find_conflict_by_term(Index index, Term t) const;

  void commit_to(Index i);
  // Raft §5.4.2 / Figure 8: only commit by counting replicas for an entry of
  // the current term.
  bool maybe_commit(Index i, Term current_term);
  // Replaces the log with a snapshot's state (the follower lacked its last entry).
  void restore(const SnapshotMeta& meta);

  // --- Ready support -------------------------------------------------------
  // Unstable entries not yet handed to the application; marks them in progress.
  std::vector<Entry> take_unpersisted();
  bool has_unpersisted() const { return in_progress_ <= unstable_last(); }
  std::optional<SnapshotMeta> take_snapshot();
  bool has_snapshot_to_hand_out() const { return snapshot_.has_value() && !snapshot_in_progress_; }
  // Committed entries not yet handed out for apply, limited to entries that
  // are durable or already handed out for persisting (the application
  // persists a Ready before applying it).
  std::vector<Entry> take_committed(size_t max_bytes);
  bool has_committed_to_hand_out() const { return applying_ < committed_limit(); }
  // Acknowledgements from the application.
  void stable_to(Index i, Term t);
  void stable_snapshot_to(Index i);
  void applied_to(Index i);

  // The latest snapshot in storage, for a follower behind the compacted prefix.
  // nullopt while the application prepares it.
  std::optional<Snapshot> storage_snapshot() const { return storage_.snapshot(); }

  Index committed() const { return committed_; }
  Index applied() const { return applied_; }
  Index applying() const { return applying_; }
  // Index of the last entry known durable on this node's own disk.
  Index persisted() const { return offset_ - 1; }
  // Bytes of entries appended but not yet committed (for proposal back-pressure).
  size_t unstable_bytes() const;

 private:
  Index unstable_last() const { return offset_ + unstable_.size() - 1; }
  Index committed_limit() const;
  void truncate_and_append(const std::vector<Entry>& entries, size_t from);
  // Drops unstable entries at and after `start`, so that the next push_back
  // onto unstable_ is the entry at `start`.
  void cut_unstable_at(Index start);

  const LogReader& storage_;
  // Invariant: applied_ <= applying_ <= committed_ <= last_index().
  Index committed_;
  Index applying_;  // last index handed out for apply
  Index applied_;
  // Unstable snapshot, if any, and whether it was handed out in a Ready.
  std::optional<SnapshotMeta> snapshot_;
  bool snapshot_in_progress_ = false;
  // Invariant: unstable_[k].index == offset_ + k; every index < offset_ is in
  // storage (or in snapshot_).
  std::deque<Entry> unstable_;
  Index offset_;
  // Invariant: offset_ <= in_progress_ <= unstable_last() + 1. Entries in
  // [offset_, in_progress_) were handed out to be persisted but not yet acked.
  Index in_progress_;
};

}  // namespace raftkv::raft
