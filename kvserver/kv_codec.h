// Little-endian encoding helpers shared by the KV snapshot image
// (kv_state_machine.cc) and RocksKvStore's records (rocks_kv_store.cc).
// Internal to kvserver/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kvserver/kv_store.h"

namespace raftkv::kv::codec {

inline void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_bytes(std::string& out, std::string_view b) {
  put_u32(out, static_cast<uint32_t>(b.size()));
  out.append(b);
}

// Reads untrusted bytes; every read is bounds-checked.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u64(uint64_t* v) { return fixed(v, 8); }
  bool u32(uint32_t* v) { return fixed(v, 4); }
  bool u8(uint8_t* v) { return fixed(v, 1); }
  // A u32 length and that many bytes, as a view into the input.
  bool bytes(std::string_view* s) {
    uint32_t n;
    if (!u32(&n) || n > in_.size() - pos_) return false;
    *s = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    if (n > in_.size() - pos_) return false;
    pos_ += n;
    return true;
  }
  std::string_view rest() {
    std::string_view r = in_.substr(pos_);
    pos_ = in_.size();
    return r;
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

inline bool valid_reply(uint8_t status, uint8_t has_value) {
  return status <= static_cast<uint8_t>(wire::ReplyStatus::kInternal) && has_value <= 1;
}

// A session's fields after its client id:
//   u64 seq | u64 last_active | u8 status | u8 has_value | u32 vlen | value
inline void put_session(std::string& out, const Session& s) {
  put_u64(out, s.seq);
  put_u64(out, s.last_active_ms);
  out.push_back(static_cast<char>(s.reply.status));
  out.push_back(s.reply.value ? 1 : 0);
  put_bytes(out, s.reply.value.value_or(""));
}
inline bool read_session(Reader& r, Session* s) {
  uint8_t status, has_value;
  std::string_view value;
  if (!r.u64(&s->seq) || !r.u64(&s->last_active_ms) || !r.u8(&status) || !r.u8(&has_value) ||
      !r.bytes(&value) || !valid_reply(status, has_value))
    return false;
  s->reply.status = static_cast<wire::ReplyStatus>(status);
  s->reply.value.reset();
  if (has_value) s->reply.value = std::string(value);
  return true;
}

}  // namespace raftkv::kv::codec
