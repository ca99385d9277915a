// KvStateMachine: the replicated key-value map and the exactly-once session
// table, applied from committed log entries. Deterministic: every replica
// that applies the same entries holds the same state, including which
// sessions have expired (by leader-stamped time in the entries, never by a
// local clock; LogCabin's design).
//
// The state lives in a KvStore (kv_store.h): in memory by default (the
// simulator), or in RocksDB (RocksKvStore, the server), in which case it is
// durable() and survives restarts at its persisted applied index.
//
// Snapshot image ("RKV1", little-endian), the same for both backends:
//   "RKV1" | u64 applied | u64 log_time | u64 next_expiry
//   u64 nkeys    | nkeys    x (u32 klen | key | u32 vlen | value)
//   u64 nsession | nsession x (u64 client | u64 seq | u64 last_active |
//                              u8 status | u8 has_value | u32 vlen | value)
// Keys in byte order, sessions by client id. An image with another "RKV"
// version is refused with a message naming it.
//
// Threads: owned by the node's Raft thread (apply and reads happen there).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvserver/kv_store.h"
#include "raft/node/state_machine.h"
#include "schema/client_protocol.h"

namespace raftkv::wire {
struct KvCommandRef;
}

namespace raftkv::kv {

// Documented limits; requests over them are refused with kTooLarge before
// they reach the log.
inline constexpr size_t kMaxKeyBytes = 4 << 10;
inline constexpr size_t kMaxValueBytes = 1 << 20;
// A session with no write for this long (in leader-stamped log time) is
// forgotten; a clerk silent for longer must not retry an old request.
inline constexpr uint64_t kSessionTtlMs = 60 * 60 * 1000;

class KvStateMachine final : public raft::StateMachine {
 public:
  // In memory (make_memory_kv_store()).
  KvStateMachine();
  // On `store`; a durable store resumes at the applied index it persisted.
  explicit KvStateMachine(std::unique_ptr<KvStore> store);
  ~KvStateMachine() override;
  KvStateMachine(const KvStateMachine&) = delete;
  KvStateMachine& operator=(const KvStateMachine&) = delete;

  void apply(const raft::Entry& e) override;
  // Commits the run's writes to the store as one batch (kv_store.h).
  void applied_batch_done() override;
  raft::Bytes snapshot() const override;
  bool restore(const raft::Snapshot& snap, std::string* error) override;
  raft::Index applied_index() const override { return meta_.applied; }
  bool durable() const override { return store_->durable(); }
  void checkpoint() override;
  raft::Index checkpoint_in_background() override;
  raft::Index pinned_index() const override;
  raft::ImageWriter pinned_image_writer() const override;

  std::optional<std::string> get(std::string_view key) const;
  // The reply recorded for (client, seq), if seq is the client's latest
  // applied request (or was, within the last apply run: the node answers a
  // run's waiters after the whole run is applied). A retried write finds its
  // first outcome here.
  std::optional<ApplyResult> session_reply(wire::ClientId client, uint64_t seq) const;
  // True if (client, seq) was applied already (seq <= the session's latest).
  bool already_applied(wire::ClientId client, uint64_t seq) const;

  size_t key_count() const { return store_->key_count(); }
  size_t session_count() const { return store_->session_count(); }

  // Writes a view as an RKV1 image, or encodes it in memory.
  static void write_image(const KvView& view, raft::ImageOut& out);
  static raft::Bytes encode_image(const KvView& view);

 private:
  void apply_command(const raft::Entry& e);
  ApplyResult execute(const wire::KvCommandRef& cmd);
  void expire_sessions();

  std::unique_ptr<KvStore> store_;
  // Invariant: meta_ == store_->meta() (the store's meta includes
  // uncommitted writes); log_time_ms only grows.
  KvMeta meta_;
  // The view checkpoint() or checkpoint_in_background() pinned (durable
  // stores). Declared after store_, so it is released before the store
  // closes.
  std::shared_ptr<const KvView> pinned_;
  // Replies of writes whose session record a later write of the same client
  // replaced within the current apply run (a client with several writes in
  // flight), so their waiters still find them after the run. Cleared when
  // the next run starts; at most kMaxSuperseded (the newest), which also
  // bounds it under a driver that never ends a run (the simulator, which
  // answers each waiter right after its entry).
  static constexpr size_t kMaxSuperseded = 64;
  struct Superseded {
    uint64_t client, seq;
    ApplyResult reply;
  };
  std::deque<Superseded> superseded_;
  // The clients written in this run: an open-addressing set that a new run
  // empties in O(1) (a slot is in use iff its stamp is the current run's),
  // so a put costs no allocation. Client id 0 never enters it.
  class RunClients {
   public:
    // Returns true if `client` was not in the set.
    bool insert(uint64_t client);
    void clear() {
      ++stamp_;
      size_ = 0;
    }

   private:
    struct Slot {
      uint64_t id = 0;
      uint64_t stamp = 0;  // in use iff == stamp_
    };
    std::vector<Slot> slots_;
    uint64_t stamp_ = 1;
    size_t size_ = 0;
  };
  RunClients run_clients_;
  bool run_open_ = false;
};

}  // namespace raftkv::kv
