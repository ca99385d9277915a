// Ready: everything the core produced since the last ready() call, for the
// application to persist, send and apply. The contract, in order:
//   1. `messages` may be sent at once (the leader's replication traffic; its
//      own disk write runs in parallel, Thesis §10.2.1).
//   2. Write `snapshot_chunks` to the incoming snapshot image, in order (a
//      chunk at offset 0 starts a new image, discarding any partial one;
//      the others continue it). Then write `snapshot`, whose image is the
//      incoming image as it now stands, then `entries` (truncating any
//      stored suffix at or after entries.front().index), then `hard_state`,
//      atomically; fsync if must_sync. A hard_state that changes only the
//      commit index (must_sync false, no entries, no snapshot) may instead go
//      with a later write: the commit index is volatile (Raft Figure 2), and
//      RaftNode defers it so.
//   3. Only then send `persisted_messages` (votes and acks promise durable
//      state; Raft Figure 2, Thesis §3.8).
//   4. Install `snapshot` into the state machine, then apply
//      `committed_entries` in order; serve `read_states` once applied >= index.
//      A committed entry may be applied before this Ready's write completes
//      if the local log already holds it durably and no write in flight
//      replaces it (RaftNode does: the write usually carries only newer
//      entries); the snapshot still goes first.
//   5. Call advance(ready) (or the finer on_persisted / on_applied, each as
//      its part is done).
#pragma once

#include <optional>
#include <vector>

#include "raft/core/message.h"

namespace raftkv::raft {

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };

struct SoftState {
  NodeId leader;
  Role role = Role::kFollower;
  Term term;
  bool operator==(const SoftState&) const = default;
};

// A ReadIndex request (Thesis §6.4) whose leadership check passed: the read
// may be served once the state machine has applied `index`.
struct ReadState {
  uint64_t context = 0;
  Index index;
};

// One chunk of a snapshot arriving from the leader (Raft §7), accepted in
// order: its offset is the size of the incoming image so far.
struct SnapshotChunk {
  SnapshotMeta meta;
  uint64_t offset = 0;
  Bytes data;
};

struct Ready {
  std::optional<SoftState> soft_state;
  std::optional<HardState> hard_state;
  // A complete snapshot received from the leader. The core never holds its
  // image: that is the incoming image assembled from snapshot_chunks (of
  // this Ready and earlier ones), so a snapshot larger than memory streams
  // through to the application's disk.
  std::vector<SnapshotChunk> snapshot_chunks;
  std::optional<SnapshotMeta> snapshot;
  std::vector<Entry> entries;
  std::vector<Entry> committed_entries;
  std::vector<ReadState> read_states;
  std::vector<uint64_t> failed_reads;  // contexts of reads that cannot be served here
  std::vector<Message> messages;
  std::vector<Message> persisted_messages;
  bool must_sync = false;
};

}  // namespace raftkv::raft
