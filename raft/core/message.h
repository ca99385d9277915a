// The values that cross the core's boundary: log entries, hard state,
// snapshots and peer messages. Plain data; the wire encoding lives in schema/.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/core/types.h"

namespace raftkv::raft {

// Bytes: an immutable, shared byte string. A client command is encoded once
// and then travels by reference count into the log, to peers and into apply;
// it is never copied or re-encoded on the way. A Bytes may also view memory
// that something else owns (a slice of another Bytes, a mapped file): the
// owner lives as long as any Bytes that views it.
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(std::string s) {
    auto buf = std::make_shared<const std::string>(std::move(s));
    view_ = *buf;
    owner_ = std::move(buf);
  }
  // A copy of `s` (one allocation).
  explicit Bytes(std::string_view s)
      : Bytes(filled(s.size(), [s](char* d) { s.copy(d, s.size()); })) {}
  // A new buffer of `size` bytes that `fill(char* data)` writes once. The
  // bytes share one allocation with their reference count (a hot-path entry
  // costs one malloc and one free, not two of each), and data is 8-byte
  // aligned, so a FlatBuffers body inside it decodes in place.
  template <class Fill>
  static Bytes filled(size_t size, Fill fill) {
    if (size == 0) return Bytes();
    auto words = std::make_shared_for_overwrite<uint64_t[]>((size + 7) / 8);
    char* data = reinterpret_cast<char*>(words.get());
    fill(data);
    return viewing(std::move(words), std::string_view(data, size));
  }
  // A view of `view`, which `owner` keeps valid.
  static Bytes viewing(std::shared_ptr<const void> owner, std::string_view view) {
    Bytes b;
    b.owner_ = std::move(owner);
    b.view_ = view;
    return b;
  }

  std::string_view view() const { return view_; }
  size_t size() const { return view_.size(); }
  bool empty() const { return view_.empty(); }
  // [offset, offset + len) of this, sharing its owner (no copy).
  Bytes slice(size_t offset, size_t len) const {
    return viewing(owner_, view_.substr(offset, len));
  }
  // What keeps view() valid (null for an empty Bytes()).
  const std::shared_ptr<const void>& owner() const { return owner_; }
  bool operator==(const Bytes& o) const { return view() == o.view(); }

 private:
  std::shared_ptr<const void> owner_;
  std::string_view view_;
};

enum class EntryType : uint8_t {
  kNormal,  // carries an application command
  kNoop,    // appended by each new leader so that it can commit in its term; Raft §8
};

struct Entry {
  Term term;
  Index index;
  EntryType type = EntryType::kNormal;
  Bytes data;

  // Approximate in-memory and wire size, used for flow control limits.
  size_t byte_size() const { return data.size() + 24; }
  bool operator==(const Entry&) const = default;
};

// HardState: what a node must remember across a crash; Raft Figure 2
// ("persistent state on all servers"), plus the commit index as a hint.
struct HardState {
  Term term;
  NodeId vote;
  Index commit;
  bool operator==(const HardState&) const = default;
};

struct SnapshotMeta {
  Index index;                 // last log index the snapshot covers
  Term term;                   // term of that entry
  std::vector<NodeId> voters;  // the configuration at `index`
  bool operator==(const SnapshotMeta&) const = default;
};

struct Snapshot {
  SnapshotMeta meta;
  Bytes data;  // the application's state machine image
};

enum class MessageType : uint8_t {
  kPreVote,  // Thesis §9.6: would you vote for me at term+1?
  kPreVoteResponse,
  kVote,  // RequestVote; Raft §5.2
  kVoteResponse,
  kAppend,  // AppendEntries; Raft §5.3
  kAppendResponse,
  kHeartbeat,  // empty AppendEntries; carries commit and a ReadIndex round
  kHeartbeatResponse,
  kSnapshot,    // one chunk of InstallSnapshot; Raft §7
  kTimeoutNow,  // leadership transfer; Thesis §3.10
};
inline constexpr int kMessageTypeCount = 10;

// Message: one peer message. Field meanings depend on the type, as noted.
struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from;
  NodeId to;
  Term term;

  // Append: index/log_term of the entry preceding `entries`.
  // Vote/PreVote: the candidate's last log index and term.
  // AppendResponse: on success the highest index known to match; on reject
  //   the rejected prev index.
  // Heartbeat: the leader's heartbeat round (from 1); HeartbeatResponse
  //   echoes it, so the leader knows which round was answered.
  // Snapshot: unused (see snapshot.meta).
  Index index;
  Term log_term;
  std::vector<Entry> entries;
  Index commit;  // Append/Heartbeat: the leader's commit index

  bool reject = false;
  // AppendResponse reject: the follower's guess of the last index that may
  // match, and the term it has there (fast backtracking, Raft §5.3 end).
  Index reject_hint;
  Term hint_term;

  // Heartbeat/HeartbeatResponse: the ReadIndex round being confirmed.
  uint64_t read_round = 0;
  // Vote/PreVote/TimeoutNow: true for a campaign started by leadership
  // transfer, which voters grant despite a live leader (Thesis §3.10).
  bool transfer = false;

  // Snapshot: which snapshot, where this chunk starts, its bytes, and whether
  // it is the last one. The follower acks a partial transfer with an
  // AppendResponse carrying snapshot_ack and the bytes received so far; the
  // last chunk is acked, once installed and durable, like a successful append
  // up to snapshot.index.
  SnapshotMeta snapshot;
  uint64_t snapshot_offset = 0;
  Bytes snapshot_data;
  bool snapshot_done = false;
  bool snapshot_ack = false;

  size_t byte_size() const {
    size_t n = 64 + snapshot_data.size();
    for (const Entry& e : entries)
      n += e.byte_size();
    return n;
  }
};

}  // namespace raftkv::raft
