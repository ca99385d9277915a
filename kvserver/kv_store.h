// KvStore: where a KvStateMachine keeps its state (data keys, the
// exactly-once session table and a meta record). One interface, two
// backends:
//   - make_memory_kv_store(): std::maps, nothing on disk. The simulator's
//     backend, and the default of KvStateMachine(); after a restart such a
//     state is rebuilt from the log store's snapshot image plus the log.
//   - RocksKvStore (rocks_kv_store.h): a RocksDB instance of its own, so the
//     data may exceed memory and survives a restart.
//
// Writes are visible to reads at once and are grouped by commit(): the
// writes since the last commit, the meta record included, reach the store's
// disk as ONE atomic unit, so what a crash leaves is always the state after
// some commit: a consistent prefix of the applied log.
//
// Threads: one at a time (the node's Raft thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "raft/core/types.h"
#include "schema/client_protocol.h"

namespace raftkv::kv {

struct ApplyResult {
  wire::ReplyStatus status = wire::ReplyStatus::kOk;
  std::optional<std::string> value;  // Get only
  bool operator==(const ApplyResult&) const = default;
};

// One client's latest applied write and its reply (exactly-once).
struct Session {
  uint64_t seq = 0;
  ApplyResult reply;
  uint64_t last_active_ms = 0;  // log time of its latest write
  bool operator==(const Session&) const = default;
};

// The state machine's bookkeeping, stored with the data it describes.
struct KvMeta {
  raft::Index applied;          // the last applied log index
  uint64_t log_time_ms = 0;     // the largest leader timestamp applied
  uint64_t next_expiry_ms = 0;  // log time of the next session-expiry scan
  bool operator==(const KvMeta&) const = default;
};

using KeyFn = std::function<void(std::string_view key, std::string_view value)>;
using SessionFn = std::function<void(uint64_t client, const Session& s)>;

// A consistent, read-only view of a whole store at one commit. It does not
// change when the store is written afterwards (a pinned RocksDB iterator, or a
// copy-on-write share of the maps).
class KvView {
 public:
  virtual ~KvView() = default;
  virtual KvMeta meta() const = 0;
  // Every key in byte order, then (separately) every session by client id.
  virtual void for_each_key(const KeyFn& f) const = 0;
  virtual void for_each_session(const SessionFn& f) const = 0;
};

// Receives the contents of a replace().
class KvSink {
 public:
  virtual ~KvSink() = default;
  virtual void put(std::string_view key, std::string_view value) = 0;
  virtual void put_session(uint64_t client, const Session& s) = 0;
};

class KvStore {
 public:
  virtual ~KvStore() = default;
  // True if the contents survive a restart of the process.
  virtual bool durable() const = 0;

  // Reads. They see every write made so far, committed or not.
  virtual KvMeta meta() const = 0;
  virtual std::optional<std::string> get(std::string_view key) const = 0;
  virtual std::optional<Session> session(uint64_t client) const = 0;
  virtual void for_each_session(const SessionFn& f) const = 0;
  // Diagnostics; RocksKvStore counts by scanning.
  virtual size_t key_count() const = 0;
  virtual size_t session_count() const = 0;

  // Writes, grouped by commit(); none fails (a RocksDB error stops the
  // process, as in RocksLogStore: see "Fail-stop" there).
  virtual void set_meta(const KvMeta& meta) = 0;
  virtual void put(std::string_view key, std::string_view value) = 0;
  virtual void erase(std::string_view key) = 0;
  virtual void put_session(uint64_t client, const Session& s) = 0;
  virtual void erase_session(uint64_t client) = 0;
  // Stores every write since the last commit as one atomic unit. Not synced:
  // after a crash the store may be at an earlier commit (never a mix).
  virtual void commit() = 0;

  // Whole-state operations. Each requires that nothing is uncommitted.
  // A view of the committed state; cheap (no copy of the data).
  virtual std::shared_ptr<const KvView> view() const = 0;
  // Replaces everything with `meta` and what `fill` puts into the sink.
  // Crash behaviour (durable stores): a crash during replace() leaves
  // either the old state or an EMPTY state at index 0, never a mix; the
  // caller must keep the source of the new contents until sync().
  virtual void replace(const KvMeta& meta, const std::function<void(KvSink&)>& fill) = 0;
  // Makes every commit so far survive a machine crash (fsync).
  virtual void sync() = 0;
  // Durable stores: a view of the newest committed state that is durable
  // already, if its index is above `newer_than`; nullptr otherwise, or if
  // finding it would wait for the disk. Never waits. If commits are held
  // back and no write is under way, starts writing them in the background,
  // so that a later call finds a newer state. Others: nullptr.
  virtual std::shared_ptr<const KvView> durable_view(raft::Index newer_than) = 0;
};

// The in-memory backend.
std::unique_ptr<KvStore> make_memory_kv_store();

}  // namespace raftkv::kv
