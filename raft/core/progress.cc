#include "raft/core/progress.h"

#include <algorithm>

#include "raft/core/check.h"

namespace raftkv::raft {

void Inflights::add(Index last, size_t bytes) {
  RAFTKV_CHECK(items_.empty() || items_.back().last < last);
  items_.push_back({last, bytes});
  bytes_ += bytes;
}

void Inflights::free_to(Index to) {
  while (!items_.empty() && items_.front().last <= to) {
    bytes_ -= items_.front().bytes;
    items_.pop_front();
  }
}

void Inflights::free_first_one() {
  if (!items_.empty()) free_to(items_.front().last);
}

void Inflights::reset() {
  items_.clear();
  bytes_ = 0;
}

bool Progress::paused() const {
  switch (state) {
    case ProgressState::kProbe:
      return probe_sent;
    case ProgressState::kReplicate:
      return inflights.full();
    case ProgressState::kSnapshot:
      return true;
  }
  return true;
}

void Progress::become_probe() {
  if (state == ProgressState::kSnapshot) {
    // The follower holds at least the snapshot now, or will ask again.
    next = std::max(match + 1, snapshot.meta.index + 1);
  } else {
    next = match + 1;
  }
  state = ProgressState::kProbe;
  probe_sent = false;
  inflights.reset();
  snapshot = {};
}

void Progress::become_replicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  probe_sent = false;
  inflights.reset();
  snapshot = {};
}

void Progress::become_snapshot(Snapshot snap) {
  state = ProgressState::kSnapshot;
  probe_sent = false;
  inflights.reset();
  snapshot = std::move(snap);
  snapshot_acked = 0;
  snapshot_sent = 0;
  snapshot_final_sent = false;
  snapshot_resent_at.reset();
  snapshot_reported = 0;
  snapshot_idle_ticks = 0;
}

bool Progress::maybe_update(Index n) {
  bool moved = false;
  if (match < n) {
    match = n;
    moved = true;
    probe_sent = false;
  }
  next = std::max(next, n + 1);
  return moved;
}

void Progress::sent_entries(Index last, size_t bytes) {
  RAFTKV_CHECK(state == ProgressState::kReplicate);
  next = last + 1;
  inflights.add(last, bytes);
}

bool Progress::maybe_decrease(Index rejected, Index hint) {
  if (state == ProgressState::kReplicate) {
    // A rejection of something already matched is a stale, reordered reply.
    if (rejected <= match) return false;
    Index n = std::max(match + 1, std::min(rejected, hint + 1));
    become_probe();
    next = n;
    return true;
  }
  // Probe: only the reply to our latest probe (prev == next - 1) counts.
  if (next - 1 != rejected) return false;
  next = std::max(match + 1, std::min(rejected, hint + 1));
  probe_sent = false;
  return true;
}

}  // namespace raftkv::raft
