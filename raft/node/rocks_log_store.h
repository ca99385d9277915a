// RocksLogStore: a node's durable Raft state — log, hard state, snapshot and
// identity — in one RocksDB instance, behind the core's LogReader interface.
//
// On-disk layout (format version 2; record formats in storage_codec.h):
//   column family "log"       8-byte big-endian index -> the records of
//                             the entries written together from there
//   column family "meta"      "format_version", "identity" (cluster id, node
//                             id), "hard_state", "snapshot_meta" (meta plus
//                             the size and CRC32C of the snapshot data)
//   column family "snapshot"  the latest snapshot's data, in chunks of
//                             kSnapshotChunkBytes under 8-byte big-endian
//                             chunk numbers
//   any other column family   the application's (e.g. "kv", "sessions");
//                             this class opens them but never touches them
//
// The snapshot lives in a column family rather than in a file so that
// installing it (drop the log, new meta, new data) or compacting to it
// (drop a log prefix, new meta, new data) is one atomic WriteBatch: a crash
// leaves the old state or the new one, never a meta that names missing data.
// A file would need temp + fsync + rename + directory fsync ordered before
// the meta write, and a sweep of orphans after a crash. The price is that a
// whole snapshot passes through memory in one batch, fine for snapshots of
// up to a few hundred MB. raftkv-server's state machine is durable(), so its
// store keeps only the snapshot meta (an empty image); its images travel as
// files (snapshot_files.h).
//
// Recovery: open() refuses, with a message naming the problem, any directory
// whose contents it cannot vouch for. It opens RocksDB with paranoid checks,
// then reads every record once: the format version, the identity, each log
// entry (checksum, stored index == key, no gaps, terms never decrease), the
// hard state (commit <= last index) and the snapshot (first index == snapshot
// index + 1, data size and checksum). After that, reads that find bad bytes
// stop the process: this class never returns data it cannot verify.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "raft/core/ready.h"
#include "raft/core/storage.h"

namespace raftkv::raft {

// One atomic write: the storage half of a Ready (ready.h, step 2).
struct WriteRequest {
  // Installed first: replaces the snapshot and drops the whole log (Raft §7).
  std::optional<Snapshot> snapshot;
  // Appended next, after deleting any stored entry at index >=
  // entries.front().index. Entries at or below the snapshot index are
  // already covered by it and skipped. Invariant: entries are consecutive
  // and entries.front().index <= last_index() + 1.
  std::vector<Entry> entries;
  std::optional<HardState> hard_state;
  // true: durable before write() returns. Must be true whenever the node
  // will act on the write having happened (send a vote or an append ack,
  // report it persisted to the core).
  bool sync = true;

  bool empty() const { return !snapshot && entries.empty() && !hard_state; }
  // `snapshot_image`: the image of rd.snapshot (the Ready carries only its
  // meta; the node assembles the image from the Ready's chunks).
  static WriteRequest from_ready(const Ready& rd, Bytes snapshot_image = {});
};

struct RocksLogStoreOptions {
  // Identity. A new store records what is given here; an existing store
  // refuses to open if a given (non-zero) id differs from the recorded one,
  // so a node can never start on another node's data. Zero: do not check.
  uint64_t cluster_id = 0;
  NodeId node_id;
  // The configuration of a brand-new store: its snapshot_meta().voters, as
  // for MemoryStorage(voters). Ignored when the store already exists.
  std::vector<NodeId> initial_voters;
  // Application column families to open (created if missing), e.g. "kv".
  // Column families already in the directory are always opened.
  std::vector<std::string> extra_column_families;
};

class RocksLogStore;

// The outcome of RocksLogStore::open(): a store, or why there is none.
struct OpenResult {
  std::unique_ptr<RocksLogStore> store;
  std::string error;  // set when !store
  bool ok() const { return store != nullptr; }
};

// The outcome of an operation the store may refuse: empty when done.
struct [[nodiscard]] StoreStatus {
  std::string error;
  bool ok() const { return error.empty(); }
};

// RocksLogStore owns the RocksDB instance of one node's data directory.
//
// Threads: the LogReader methods may be called from any thread (normally the
// Raft thread) concurrently with write() and compact(). They see the state
// as of the last completed write: an in-memory index (first/last index and
// every entry's term, the hard state and snapshot meta) and a RocksDB
// snapshot are published together under a mutex after each write, and
// entries()/snapshot() read through that RocksDB snapshot, so a reader never
// sees the index of one write and the bytes of another. write(),
// write_group() and compact() are serialized by a separate mutex; normally
// the storage thread (GroupCommitter) writes and the apply thread compacts.
//
// Durability (Raft Figure 2: term, vote and log are "updated on stable
// storage before responding to RPCs"; Thesis §3.8): a write with sync set is
// in the RocksDB WAL and fsynced before write() returns, and the node tells
// the core "persisted" (and sends votes and append acks) only after that.
// A sync also makes every earlier unsynced write durable, since the WAL is
// one append-only file sequence.
//
// Fail-stop: if RocksDB reports an error on a write or an fsync, the
// process prints the error and aborts. After a failed fsync the kernel may
// have dropped the dirty pages and cleared the error, so retrying can
// "succeed" without the data ever reaching the disk; acknowledging anything
// after that could lose a vote or a committed entry. Restart recovers from
// what the disk really holds. The same applies to a read that finds bad
// bytes after open (LogReader has no error path, and wrong data is worse
// than none).
class RocksLogStore final : public LogReader {
 public:
  // Bytes per snapshot chunk in the "snapshot" column family.
  static constexpr size_t kSnapshotChunkBytes = size_t{1} << 20;
  // Bound on the WAL files kept (see open()).
  static constexpr uint64_t kMaxWalBytes = uint64_t{128} << 20;
  // Rate at which obsolete files are deleted (see open()).
  static constexpr int64_t kDeleteBytesPerSecond = int64_t{256} << 20;
  // The on-disk format this build writes; it also opens (and upgrades)
  // stores of the oldest format. 2: a log value holds the entries of one
  // write (storage_codec.h); 1: one entry per value.
  static constexpr uint32_t kFormatVersion = 2;
  static constexpr uint32_t kOldestFormatVersion = 1;

  // Opens the store in `dir`. A missing or empty directory becomes a new
  // store (durably initialized before open returns); an existing store is
  // verified as described in the file comment. Never throws; never aborts on
  // bad data on disk.
  static OpenResult open(const std::string& dir, const RocksLogStoreOptions& options);

  ~RocksLogStore() override;
  RocksLogStore(const RocksLogStore&) = delete;
  RocksLogStore& operator=(const RocksLogStore&) = delete;

  // LogReader; any thread.
  HardState hard_state() const override;
  SnapshotMeta snapshot_meta() const override;
  // Always has a value.
  std::optional<Snapshot> snapshot() const override;
  Index first_index() const override;
  Index last_index() const override;
  std::optional<Term> term(Index i) const override;
  std::vector<Entry> entries(Index lo, Index hi, size_t max_bytes) const override;

  // Writes the request as one RocksDB WriteBatch: snapshot, then entries,
  // then hard state, with WriteOptions.sync = req.sync. A synced write of
  // nothing still syncs the WAL (a barrier for earlier unsynced writes).
  void write(const WriteRequest& req);
  // Writes several requests, in order, as ONE WriteBatch with ONE sync if
  // any of them asks for one. The result equals writing them one by one.
  void write_group(std::span<const WriteRequest* const> reqs);

  // Saves `data`, the state machine at `index` (whose entry has `term`), as
  // the snapshot with configuration `voters`, and deletes the log prefix up
  // to `index`: one synced batch. Refuses an index beyond last_index(), at
  // or below the current snapshot, or whose term is not `term`. The caller
  // must only compact to an index its state machine has applied. Empty
  // `data` is how RaftNode records that a durable state machine holds the
  // image itself (StateMachine::durable()); the caller must then have made
  // that state durable first (Raft paper §7).
  StoreStatus compact(Index index, Bytes data, Term term, std::vector<NodeId> voters);

  uint64_t cluster_id() const;
  NodeId node_id() const;
  const std::string& dir() const;

 private:
  struct Impl;
  friend class RocksLogStoreAccess;  // rocks_log_store_internal.h

  explicit RocksLogStore(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::raft
