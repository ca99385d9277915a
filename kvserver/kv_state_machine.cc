#include "kvserver/kv_state_machine.h"

#include <cstring>

#include <fmt/format.h>

#include "raft/core/check.h"
#include "schema/convert.h"

namespace raftkv::kv {

namespace {

// Snapshot image, version 1, little-endian:
//   "RKV1" | u64 applied | u64 log_time | u64 next_expiry
//   u64 nkeys    | nkeys    x (u32 klen | key | u32 vlen | value)
//   u64 nsession | nsession x (u64 client | u64 seq | u64 last_active |
//                              u8 status | u8 has_value | u32 vlen | value)
constexpr std::string_view kMagic = "RKV1";

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_bytes(std::string& out, std::string_view b) {
  put_u32(out, static_cast<uint32_t>(b.size()));
  out.append(b);
}

// Reads from an untrusted image; every read is bounds-checked.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u64(uint64_t* v) { return fixed(v, 8); }
  bool u32(uint32_t* v) { return fixed(v, 4); }
  bool u8(uint8_t* v) { return fixed(v, 1); }
  bool bytes(std::string* s) {
    uint32_t n;
    if (!u32(&n) || n > in_.size() - pos_) return false;
    s->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool magic(std::string_view m) {
    if (in_.substr(0, m.size()) != m) return false;
    pos_ = m.size();
    return true;
  }
  bool done() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  template <class T>
  bool fixed(T* v, size_t n) {
    if (in_.size() - pos_ < n) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; ++i)
      x |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    *v = static_cast<T>(x);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

void KvStateMachine::apply(const raft::Entry& e) {
  RAFTKV_CHECK_MSG(e.index == applied_ + 1, "entries must be applied in log order");
  applied_ = e.index;
  if (e.type != raft::EntryType::kNormal) return;
  auto cmd = wire::decode_kv_command(e.data.view());
  // The leader only proposes commands it encoded itself, so an undecodable
  // entry means a bug or corruption that the storage checksums missed. Every
  // replica skips it the same way, so state stays identical.
  if (!cmd.ok()) return;
  log_time_ms_ = std::max(log_time_ms_, cmd->timestamp_ms);
  Session& s = sessions_[cmd->client_id.value];
  if (cmd->client_id.value != 0 && cmd->seq <= s.seq) return;  // a retry: applied once already
  ApplyResult r = execute(*cmd);
  s.seq = cmd->seq;
  s.reply = std::move(r);
  s.last_active_ms = log_time_ms_;
  if (cmd->client_id.value == 0) sessions_.erase(0);
  expire_sessions();
}

ApplyResult KvStateMachine::execute(const wire::KvCommand& cmd) {
  ApplyResult r;
  switch (cmd.op) {
    case wire::Op::kPut:
      data_.insert_or_assign(cmd.key, cmd.value);
      break;
    case wire::Op::kAppend: {
      std::string& v = data_[cmd.key];
      // Appends beyond the value limit are refused, identically everywhere.
      if (v.size() + cmd.value.size() > kMaxValueBytes) {
        r.status = wire::ReplyStatus::kTooLarge;
        if (v.empty()) data_.erase(cmd.key);
      } else {
        v += cmd.value;
      }
      break;
    }
    case wire::Op::kDelete:
      if (data_.erase(cmd.key) == 0) r.status = wire::ReplyStatus::kNotFound;
      break;
    case wire::Op::kGet:
    case wire::Op::kStatus:
      r.status = wire::ReplyStatus::kBadRequest;  // never replicated
      break;
  }
  return r;
}

void KvStateMachine::expire_sessions() {
  if (log_time_ms_ < next_expiry_ms_) return;
  // Scans at most once a minute of log time, so expiry costs O(1) amortized.
  next_expiry_ms_ = log_time_ms_ + 60 * 1000;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.last_active_ms + kSessionTtlMs < log_time_ms_) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<std::string> KvStateMachine::get(std::string_view key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

std::optional<ApplyResult> KvStateMachine::session_reply(wire::ClientId client,
                                                         uint64_t seq) const {
  auto it = sessions_.find(client.value);
  if (it == sessions_.end() || it->second.seq != seq) return std::nullopt;
  return it->second.reply;
}

bool KvStateMachine::already_applied(wire::ClientId client, uint64_t seq) const {
  auto it = sessions_.find(client.value);
  return it != sessions_.end() && seq <= it->second.seq;
}

raft::Bytes KvStateMachine::snapshot() const {
  std::string out(kMagic);
  put_u64(out, applied_.value);
  put_u64(out, log_time_ms_);
  put_u64(out, next_expiry_ms_);
  put_u64(out, data_.size());
  for (auto& [k, v] : data_) {
    put_bytes(out, k);
    put_bytes(out, v);
  }
  put_u64(out, sessions_.size());
  for (auto& [c, s] : sessions_) {
    put_u64(out, c);
    put_u64(out, s.seq);
    put_u64(out, s.last_active_ms);
    out.push_back(static_cast<char>(s.reply.status));
    out.push_back(s.reply.value ? 1 : 0);
    put_bytes(out, s.reply.value.value_or(""));
  }
  return raft::Bytes(std::move(out));
}

bool KvStateMachine::restore(const raft::Snapshot& snap, std::string* error) {
  Reader r(snap.data.view());
  auto bad = [&](const std::string& why) {
    *error = fmt::format("snapshot at index {}: {}", snap.meta.index, why);
    return false;
  };
  if (snap.data.empty() && snap.meta.index == raft::Index(0)) {
    *this = KvStateMachine();
    return true;
  }
  if (!r.magic(kMagic)) return bad("not a raftkv KV image");
  uint64_t applied, log_time, next_expiry, nkeys, nsessions;
  if (!r.u64(&applied) || !r.u64(&log_time) || !r.u64(&next_expiry) || !r.u64(&nkeys))
    return bad("truncated header");
  if (applied != snap.meta.index.value)
    return bad(fmt::format("image is at index {}, not {}", applied, snap.meta.index));
  KvStateMachine fresh;
  fresh.applied_ = raft::Index(applied);
  fresh.log_time_ms_ = log_time;
  fresh.next_expiry_ms_ = next_expiry;
  for (uint64_t i = 0; i < nkeys; ++i) {
    std::string k, v;
    if (!r.bytes(&k) || !r.bytes(&v)) return bad(fmt::format("truncated at key {}", i));
    fresh.data_.emplace(std::move(k), std::move(v));
  }
  if (!r.u64(&nsessions)) return bad("truncated session count");
  for (uint64_t i = 0; i < nsessions; ++i) {
    uint64_t c;
    Session s;
    uint8_t status, has_value;
    std::string value;
    if (!r.u64(&c) || !r.u64(&s.seq) || !r.u64(&s.last_active_ms) || !r.u8(&status) ||
        !r.u8(&has_value) || !r.bytes(&value))
      return bad(fmt::format("truncated at session {}", i));
    if (status > static_cast<uint8_t>(wire::ReplyStatus::kInternal) || has_value > 1)
      return bad(fmt::format("session {} has an invalid reply", i));
    s.reply.status = static_cast<wire::ReplyStatus>(status);
    if (has_value) s.reply.value = std::move(value);
    fresh.sessions_.emplace(c, std::move(s));
  }
  if (!r.done()) return bad(fmt::format("{} trailing bytes", r.remaining()));
  *this = std::move(fresh);
  return true;
}

}  // namespace raftkv::kv
