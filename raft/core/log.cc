#include "raft/core/log.h"

#include <algorithm>

#include "raft/core/check.h"

namespace raftkv::raft {

RaftLog::RaftLog(const LogReader& storage, Index applied) : storage_(storage) {
  offset_ = storage_.last_index() + 1;
  in_progress_ = offset_;
  Index snap = storage_.first_index() - 1;
  committed_ = std::max(storage_.hard_state().commit, snap);
  RAFTKV_CHECK(committed_ <= storage_.last_index());
  applied_ = std::clamp(applied, snap, committed_);
  applying_ = applied_;
}

Index RaftLog::first_index() const {
  return snapshot_ ? snapshot_->index + 1 : storage_.first_index();
}

Index RaftLog::last_index() const {
  if (!unstable_.empty()) return unstable_.back().index;
  if (snapshot_) return snapshot_->index;
  return storage_.last_index();
}

std::optional<Term> RaftLog::term(Index i) const {
  if (snapshot_) {
    if (i == snapshot_->index) return snapshot_->term;
    if (i < snapshot_->index) return std::nullopt;
  }
  if (i >= offset_) {
    if (i > unstable_last()) return std::nullopt;
    return unstable_[i - offset_].term;
  }
  return storage_.term(i);
}

bool RaftLog::is_up_to_date(Index last, Term t) const {
  Term mine = last_term();
  return t > mine || (t == mine && last >= last_index());
}

std::vector<Entry> RaftLog::slice(Index lo, Index hi, size_t max_bytes) const {
  RAFTKV_CHECK(first_index() <= lo && lo <= hi && hi <= last_index() + 1);
  std::vector<Entry> out;
  if (lo < std::min(hi, offset_)) out = storage_.entries(lo, std::min(hi, offset_), max_bytes);
  size_t bytes = 0;
  for (const Entry& e : out)
    bytes += e.byte_size();
  // Storage stopped early: the byte limit is reached.
  if (lo < offset_ && (out.empty() || out.back().index + 1 < std::min(hi, offset_))) return out;
  for (Index i = std::max(lo, offset_); i < hi; ++i) {
    const Entry& e = unstable_[i - offset_];
    bytes += e.byte_size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

std::optional<Index> RaftLog::maybe_append(Index prev, Term prev_term, Index leader_commit,
                                           const std::vector<Entry>& entries) {
  if (!match_term(prev, prev_term)) return std::nullopt;
  Index last_new = prev + entries.size();
  // The first entry that is new or conflicts; entries we already hold with
  // the same term are identical (Log Matching, Raft §5.3) and are skipped, so
  // a delayed, duplicated append never truncates newer entries.
  size_t k = 0;
  while (k < entries.size() && match_term(entries[k].index, entries[k].term))
    ++k;
  if (k < entries.size()) {
    RAFTKV_CHECK_MSG(entries[k].index > committed_, "leader conflicts with a committed entry");
    truncate_and_append(entries, k);
  }
  commit_to(std::min(leader_commit, last_new));
  return last_new;
}

Index RaftLog::append(Entry entry) {
  RAFTKV_CHECK(entry.index == last_index() + 1);
  cut_unstable_at(entry.index);
  unstable_.push_back(std::move(entry));
  return last_index();
}

void RaftLog::truncate_and_append(const std::vector<Entry>& entries, size_t from) {
  cut_unstable_at(entries[from].index);
  for (size_t k = from; k < entries.size(); ++k) {
    RAFTKV_CHECK(entries[k].index == offset_ + unstable_.size());
    unstable_.push_back(entries[k]);
  }
}

void RaftLog::cut_unstable_at(Index start) {
  RAFTKV_CHECK(start > committed_ && start <= last_index() + 1);
  if (start <= offset_) {
    // Replaces the whole unstable tail, and shadows storage from `start` on;
    // the next persist truncates storage there.
    unstable_.clear();
    offset_ = start;
    in_progress_ = start;
  } else {
    unstable_.resize(start - offset_);
    in_progress_ = std::min(in_progress_, start);
  }
}

Index RaftLog::find_conflict_by_term(Index index, Term t) const {
  Index floor = first_index() - 1;
  index = std::min(index, last_index());
  while (index > floor) {
    auto ti = term(index);
    if (!ti || *ti <= t) break;
    index = index - 1;
  }
  return index;
}

void RaftLog::commit_to(Index i) {
  if (i <= committed_) return;
  RAFTKV_CHECK_MSG(i <= last_index(), "commit beyond the end of the log");
  committed_ = i;
}

bool RaftLog::maybe_commit(Index i, Term current_term) {
  if (i > committed_ && term(i) == current_term) {
    commit_to(i);
    return true;
  }
  return false;
}

void RaftLog::restore(const SnapshotMeta& meta) {
  Index i = meta.index;
  RAFTKV_CHECK(i > committed_);
  unstable_.clear();
  offset_ = i + 1;
  in_progress_ = offset_;
  committed_ = i;
  snapshot_ = meta;
  snapshot_in_progress_ = false;
}

std::vector<Entry> RaftLog::take_unpersisted() {
  std::vector<Entry> out;
  for (Index i = in_progress_; i <= unstable_last(); ++i)
    out.push_back(unstable_[i - offset_]);
  in_progress_ = unstable_last() + 1;
  return out;
}

std::optional<SnapshotMeta> RaftLog::take_snapshot() {
  if (!has_snapshot_to_hand_out()) return std::nullopt;
  snapshot_in_progress_ = true;
  // The application installs the snapshot into its state machine instead of
  // applying the entries it covers.
  applying_ = std::max(applying_, snapshot_->index);
  return snapshot_;
}

Index RaftLog::committed_limit() const {
  Index limit = std::min(committed_, in_progress_ - 1);
  // Nothing after an unstable snapshot may be applied before the snapshot
  // itself is handed out.
  if (snapshot_ && !snapshot_in_progress_) limit = std::min(limit, applying_);
  return limit;
}

std::vector<Entry> RaftLog::take_committed(size_t max_bytes) {
  Index hi = committed_limit();
  if (applying_ >= hi) return {};
  auto out = slice(applying_ + 1, hi + 1, max_bytes);
  applying_ = out.back().index;
  return out;
}

void RaftLog::stable_to(Index i, Term t) {
  // Ignore an ack for entries that were since replaced.
  if (i < offset_ || i > unstable_last() || unstable_[i - offset_].term != t) return;
  RAFTKV_CHECK(i < in_progress_);
  unstable_.erase(unstable_.begin(),
                  unstable_.begin() + static_cast<std::ptrdiff_t>(i - offset_ + 1));
  offset_ = i + 1;
}

void RaftLog::stable_snapshot_to(Index i) {
  if (snapshot_ && snapshot_->index == i) {
    RAFTKV_CHECK(snapshot_in_progress_);
    snapshot_.reset();
    snapshot_in_progress_ = false;
  }
}

void RaftLog::applied_to(Index i) {
  if (i <= applied_) return;
  RAFTKV_CHECK(i <= applying_);
  applied_ = i;
}

size_t RaftLog::unstable_bytes() const {
  size_t n = 0;
  for (const Entry& e : unstable_)
    n += e.byte_size();
  return n;
}

}  // namespace raftkv::raft
