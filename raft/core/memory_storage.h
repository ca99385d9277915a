// MemoryStorage: a LogReader kept in memory. The simulator uses it as a
// node's disk: whatever was written here survives a simulated crash.
// Not thread-safe.
#pragma once

#include <deque>
#include <functional>

#include "raft/core/ready.h"
#include "raft/core/storage.h"

namespace raftkv::raft {

class MemoryStorage final : public LogReader {
 public:
  explicit MemoryStorage(std::vector<NodeId> voters);

  HardState hard_state() const override { return hard_state_; }
  SnapshotMeta snapshot_meta() const override { return snapshot_.meta; }
  std::optional<Snapshot> snapshot() const override {
    if (image_ready_ && !image_ready_()) return std::nullopt;
    return snapshot_;
  }
  // The stored snapshot, whatever set_image_ready() says (for the driver).
  const Snapshot& stored_snapshot() const { return snapshot_; }
  // Tests: snapshot() answers "not ready yet" whenever `ready` says false,
  // as a production node does while it writes an image in the background.
  void set_image_ready(std::function<bool()> ready) { image_ready_ = std::move(ready); }
  Index first_index() const override { return snapshot_.meta.index + 1; }
  Index last_index() const override { return snapshot_.meta.index + entries_.size(); }
  std::optional<Term> term(Index i) const override;
  std::vector<Entry> entries(Index lo, Index hi, size_t max_bytes) const override;

  void set_hard_state(const HardState& hs) { hard_state_ = hs; }
  // Appends entries, first discarding any stored suffix at or after
  // entries.front().index. Invariant: entries.front().index <= last_index() + 1.
  void append(const std::vector<Entry>& entries);
  // Writes the storage half of a Ready (ready.h, step 2): its snapshot
  // chunks, its snapshot, entries and hard state.
  void persist(const Ready& rd);
  // Continues (offset > 0) or starts (offset 0) the incoming snapshot image.
  void write_snapshot_chunk(const SnapshotChunk& chunk);
  // Replaces everything with a snapshot received from the leader, whose
  // image is the incoming image.
  void install_snapshot(const SnapshotMeta& meta);
  // Takes a snapshot of the state machine at `index` (which must be in the
  // log) and discards the log prefix it covers.
  void compact(Index index, Bytes data);

  size_t log_bytes() const;

 private:
  HardState hard_state_;
  Snapshot snapshot_;
  std::string incoming_;  // the snapshot image being received
  std::function<bool()> image_ready_;
  // Invariant: entries_[k].index == snapshot_.meta.index + 1 + k.
  std::deque<Entry> entries_;
};

}  // namespace raftkv::raft
