// RocksKvStore: the KvStore of raftkv-server, a RocksDB instance of its own
// (by default <data-dir>/state), separate from the Raft log store so that
// state writes never share the log's synced WAL. RocksDB stays out of this
// header (pimpl, like RocksLogStore).
//
// Layout (one column family, so a crash always recovers a prefix of the
// writes, whatever RocksDB flushed: see "Recovery" in the .cc):
//   "m"                      meta: u32 format (1) | u8 flags (1: a replace()
//                            is in progress) | u64 applied | u64 log_time |
//                            u64 next_expiry
//   "d" + key                the value
//   "s" + u64 BE client id   the session (kv_codec.h put_session)
//
// Write-behind: writes go into an overlay (a hash table of the latest write
// per key) that reads consult before the DB. commit() closes an apply run
// but keeps it there until the overlay holds write_behind_bytes; then all
// held-back runs, and the meta record of the last, go to the DB as ONE
// table file in key order, which the DB ingests atomically and durably.
// After a crash the store is therefore at some earlier commit, and the node
// replays the Raft log (the durable record) from the applied index found
// here. Why: written run by run, a put costs two random-key memtable
// inserts (value, session); held back, a client's session is written once
// per batch however many puts it made; and a sorted table file bypasses the
// WAL, the memtable and its flush, which cost ~2 of ~4.5 us of CPU per put
// as a sorted WriteBatch (store-bench, docs/PERFORMANCE.md).
// The batch is sorted and written by a background thread, one batch at a
// time, while reads consult it (a 4 MiB write stalled the Raft thread for
// tens of ms). sync() and view() write the held-back runs first. Before it
// compacts the log, the node pins durable_view() (via
// KvStateMachine::checkpoint_in_background) and compacts only up to its
// index, so the state always covers the log's compacted prefix.
//
// Views are RocksDB iterators made at one commit (RocksView in the .cc):
// pinning one is O(1); while it is held, RocksDB keeps the table files it
// reads (disk, not memory).
//
// Memory: the values live in RocksDB only. Sessions that were read or
// written since open are also cached (write-through; a session is read for
// every write): at most one small record per client active within the
// session TTL, as the in-memory table had.
//
// Threads: one at a time (plus the store's own background write). A view
// must not outlive its store.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "kvserver/kv_store.h"

namespace raftkv::kv {

struct RocksKvStoreOptions {
  // Committed runs are held in memory until they take this many bytes
  // (0: every commit() writes). Bounds both the memory and the log
  // a restart replays.
  size_t write_behind_bytes = size_t{4} << 20;
  // Whether those runs are written by a background thread (reads consult
  // them meanwhile) or before commit() returns.
  bool write_behind_in_background = true;
  // Size of each WriteBatch while replace() loads a new state.
  size_t replace_batch_bytes = size_t{4} << 20;
  // Tests only: called after each write replace() makes (1 = the write that
  // clears the old state, then the content batches, last the final meta),
  // e.g. to copy the directory as a crash at that point would leave it.
  std::function<void(int write)> after_replace_write;
};

class RocksKvStore final : public KvStore {
 public:
  // Opens (or creates) the store in `dir`. Null, with *error set, if the
  // directory holds something else or a damaged store. A replace() that a
  // crash interrupted is discarded here: the state becomes empty at index 0
  // (interrupted_replace_discarded() then says so).
  static std::unique_ptr<RocksKvStore> open(const std::string& dir,
                                            const RocksKvStoreOptions& options, std::string* error);
  ~RocksKvStore() override;
  RocksKvStore(const RocksKvStore&) = delete;
  RocksKvStore& operator=(const RocksKvStore&) = delete;

  bool durable() const override { return true; }
  KvMeta meta() const override;
  std::optional<std::string> get(std::string_view key) const override;
  std::optional<Session> session(uint64_t client) const override;
  void for_each_session(const SessionFn& f) const override;
  size_t key_count() const override;
  size_t session_count() const override;

  void set_meta(const KvMeta& meta) override;
  void put(std::string_view key, std::string_view value) override;
  void erase(std::string_view key) override;
  void put_session(uint64_t client, const Session& s) override;
  void erase_session(uint64_t client) override;
  void commit() override;

  std::shared_ptr<const KvView> view() const override;
  void replace(const KvMeta& meta, const std::function<void(KvSink&)>& fill) override;
  void sync() override;
  std::shared_ptr<const KvView> durable_view(raft::Index newer_than) override;

  const std::string& dir() const;
  bool interrupted_replace_discarded() const;
  // Writes what is held back, then compacts every table file into the last
  // level, in the calling thread. Views taken earlier are unaffected.
  void compact();

 private:
  struct Impl;
  explicit RocksKvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::kv
