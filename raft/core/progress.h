// Progress: the leader's view of one follower's log (Raft Figure 2,
// nextIndex/matchIndex), plus the flow control state that pipelining needs.
// Owned by the leader's Raft instance; single-threaded.
#pragma once

#include <deque>
#include <optional>

#include "raft/core/message.h"

namespace raftkv::raft {

// Inflights: the AppendEntries messages sent to a follower and not yet acked,
// bounded both in count and in bytes.
class Inflights {
 public:
  Inflights(size_t max_count, size_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}
  bool full() const { return items_.size() >= max_count_ || bytes_ >= max_bytes_; }
  size_t count() const { return items_.size(); }
  void add(Index last, size_t bytes);
  // Frees every message whose last index is <= `to`.
  void free_to(Index to);
  void free_first_one();
  void reset();

 private:
  struct Item {
    Index last;
    size_t bytes;
  };
  size_t max_count_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::deque<Item> items_;
};

enum class ProgressState : uint8_t {
  kProbe,      // one append per heartbeat until we find where logs match
  kReplicate,  // logs match: stream appends optimistically (pipelining)
  kSnapshot,   // follower is behind the compacted prefix: InstallSnapshot
};

struct Progress {
  Progress(Index next_index, size_t max_inflight, size_t max_inflight_bytes)
      : next(next_index), inflights(max_inflight, max_inflight_bytes) {}

  // Invariant: match < next.
  Index match;
  Index next;
  ProgressState state = ProgressState::kProbe;
  // kProbe: an append is outstanding. It stays so until a heartbeat sent
  // after it (number > probe_heartbeat) is answered: the follower has then
  // had the probe, or it was lost, and only then is a resend useful.
  bool probe_sent = false;
  uint64_t probe_heartbeat = 0;
  bool recent_active = false;  // heard from since the last check-quorum round
  // The highest commit index an append has told the follower.
  Index commit_sent;
  Inflights inflights;

  // kSnapshot: the snapshot being sent and how far the follower has acked.
  Snapshot snapshot;
  uint64_t snapshot_acked = 0;  // bytes the follower confirmed
  uint64_t snapshot_sent = 0;   // bytes sent (acked <= sent)
  bool snapshot_final_sent = false;
  std::optional<uint64_t> snapshot_resent_at;  // offset of the last go-back
  uint64_t snapshot_reported = 0;              // the follower's latest ack, whatever it was
  int snapshot_idle_ticks = 0;                 // heartbeats since the last chunk ack

  // True when no more appends may be sent right now.
  bool paused() const;
  void become_probe();
  void become_replicate();
  void become_snapshot(Snapshot snap);
  // A successful append response up to n. Returns true if match moved.
  bool maybe_update(Index n);
  // Replicate state: record an optimistic send of entries up to last.
  void sent_entries(Index last, size_t bytes);
  // A rejection for `rejected` (the prev index we sent), with the follower's
  // hint. Returns false if the rejection is stale and was ignored.
  bool maybe_decrease(Index rejected, Index hint);
};

}  // namespace raftkv::raft
