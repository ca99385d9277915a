// KvStateMachine: the replicated key-value map and the exactly-once session
// table, applied from committed log entries. Deterministic: every replica
// that applies the same entries holds the same state, including which
// sessions have expired (by leader-stamped time in the entries, never by a
// local clock; LogCabin's design).
//
// Threads: owned by the node's Raft thread (apply and reads happen there).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "raft/node/state_machine.h"
#include "schema/client_protocol.h"

namespace raftkv::kv {

// Documented limits; requests over them are refused with kTooLarge before
// they reach the log.
inline constexpr size_t kMaxKeyBytes = 4 << 10;
inline constexpr size_t kMaxValueBytes = 1 << 20;
// A session with no write for this long (in leader-stamped log time) is
// forgotten; a clerk silent for longer must not retry an old request.
inline constexpr uint64_t kSessionTtlMs = 60 * 60 * 1000;

struct ApplyResult {
  wire::ReplyStatus status = wire::ReplyStatus::kOk;
  std::optional<std::string> value;  // Get only
  bool operator==(const ApplyResult&) const = default;
};

class KvStateMachine final : public raft::StateMachine {
 public:
  void apply(const raft::Entry& e) override;
  raft::Bytes snapshot() const override;
  bool restore(const raft::Snapshot& snap, std::string* error) override;
  raft::Index applied_index() const override { return applied_; }

  std::optional<std::string> get(std::string_view key) const;
  // The reply recorded for (client, seq), if seq is the client's latest
  // applied request. A retried write finds its first outcome here.
  std::optional<ApplyResult> session_reply(wire::ClientId client, uint64_t seq) const;
  // True if (client, seq) was applied already (seq <= the session's latest).
  bool already_applied(wire::ClientId client, uint64_t seq) const;

  size_t key_count() const { return data_.size(); }
  size_t session_count() const { return sessions_.size(); }

 private:
  struct Session {
    uint64_t seq = 0;
    ApplyResult reply;
    uint64_t last_active_ms = 0;
  };
  ApplyResult execute(const wire::KvCommand& cmd);
  void expire_sessions();

  std::map<std::string, std::string, std::less<>> data_;
  std::map<uint64_t, Session> sessions_;
  raft::Index applied_;
  // Invariant: log_time_ms_ only grows (max of the timestamps applied).
  uint64_t log_time_ms_ = 0;
  uint64_t next_expiry_ms_ = 0;
};

}  // namespace raftkv::kv
