// LogReader: the core's read-only view of durable Raft state. The node's
// storage (RocksDB in production, MemoryStorage in simulation) implements it;
// the core never writes through it: writes leave the core in a Ready.
#pragma once

#include <optional>
#include <vector>

#include "raft/core/message.h"

namespace raftkv::raft {

class LogReader {
 public:
  virtual ~LogReader() = default;

  virtual HardState hard_state() const = 0;
  virtual SnapshotMeta snapshot_meta() const = 0;
  // The latest snapshot, with its data, for sending to a lagging follower.
  // nullopt while the application is still preparing its image (the core
  // asks again at the follower's next heartbeat response).
  virtual std::optional<Snapshot> snapshot() const = 0;
  // Invariant: first_index() == snapshot_meta().index + 1.
  virtual Index first_index() const = 0;
  // Invariant: last_index() >= snapshot_meta().index; equal when the log is empty.
  virtual Index last_index() const = 0;
  // Term of entry i, for snapshot_meta().index <= i <= last_index(); nullopt
  // outside that range (compacted or not yet written).
  virtual std::optional<Term> term(Index i) const = 0;
  // Entries [lo, hi), first_index() <= lo <= hi <= last_index() + 1. Returns
  // at least one entry when lo < hi, and stops once max_bytes is exceeded.
  virtual std::vector<Entry> entries(Index lo, Index hi, size_t max_bytes) const = 0;
};

}  // namespace raftkv::raft
