#include "kvserver/kv_state_machine.h"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "kvserver/kv_codec.h"
#include "raft/core/check.h"
#include "schema/convert.h"
#include "schema/frame.h"

namespace raftkv::kv {

namespace {

constexpr std::string_view kMagic = "RKV1";

// --- the in-memory backend ------------------------------------------------------------

struct MemState {
  KvMeta meta;
  std::map<std::string, std::string, std::less<>> data;
  std::map<uint64_t, Session> sessions;
};

class MemoryView final : public KvView {
 public:
  explicit MemoryView(std::shared_ptr<const MemState> s) : s_(std::move(s)) {}
  KvMeta meta() const override { return s_->meta; }
  void for_each_key(const KeyFn& f) const override {
    for (const auto& [k, v] : s_->data)
      f(k, v);
  }
  void for_each_session(const SessionFn& f) const override {
    for (const auto& [c, s] : s_->sessions)
      f(c, s);
  }

 private:
  std::shared_ptr<const MemState> s_;
};

// Copy-on-write: a view shares the maps; the first write after it copies.
class MemoryKvStore final : public KvStore {
 public:
  bool durable() const override { return false; }
  KvMeta meta() const override { return state_->meta; }
  std::optional<std::string> get(std::string_view key) const override {
    auto it = state_->data.find(key);
    if (it == state_->data.end()) return std::nullopt;
    return it->second;
  }
  std::optional<Session> session(uint64_t client) const override {
    auto it = state_->sessions.find(client);
    if (it == state_->sessions.end()) return std::nullopt;
    return it->second;
  }
  void for_each_session(const SessionFn& f) const override {
    for (const auto& [c, s] : state_->sessions)
      f(c, s);
  }
  size_t key_count() const override { return state_->data.size(); }
  size_t session_count() const override { return state_->sessions.size(); }

  void set_meta(const KvMeta& meta) override { mut().meta = meta; }
  void put(std::string_view key, std::string_view value) override {
    auto& data = mut().data;
    auto it = data.find(key);
    if (it == data.end()) {
      data.emplace(std::string(key), std::string(value));
    } else {
      it->second.assign(value);
    }
  }
  void erase(std::string_view key) override {
    auto& data = mut().data;
    auto it = data.find(key);
    if (it != data.end()) data.erase(it);
  }
  void put_session(uint64_t client, const Session& s) override { mut().sessions[client] = s; }
  void erase_session(uint64_t client) override { mut().sessions.erase(client); }
  void commit() override {}

  std::shared_ptr<const KvView> view() const override {
    return std::make_shared<MemoryView>(state_);
  }
  void replace(const KvMeta& meta, const std::function<void(KvSink&)>& fill) override {
    auto fresh = std::make_shared<MemState>();
    fresh->meta = meta;
    struct Sink final : KvSink {
      MemState& s;
      explicit Sink(MemState& st) : s(st) {}
      void put(std::string_view k, std::string_view v) override {
        s.data.insert_or_assign(std::string(k), std::string(v));
      }
      void put_session(uint64_t c, const Session& se) override { s.sessions[c] = se; }
    } sink(*fresh);
    fill(sink);
    state_ = std::move(fresh);
  }
  void sync() override {}
  std::shared_ptr<const KvView> durable_view(raft::Index) override { return nullptr; }

 private:
  MemState& mut() {
    if (state_.use_count() > 1) state_ = std::make_shared<MemState>(*state_);
    return *state_;
  }
  std::shared_ptr<MemState> state_ = std::make_shared<MemState>();
};

// True if `payload` starts with a well-formed payload header (frame.h:
// reserved bytes zero) of a version or kind newer than this build knows.
// Other garbage is not taken for a newer release.
bool written_by_a_newer_release(std::string_view payload) {
  if (payload.size() < wire::kPayloadHeaderBytes) return false;
  for (size_t i = 2; i < wire::kPayloadHeaderBytes; ++i)
    if (payload[i] != '\0') return false;
  auto version = static_cast<uint8_t>(payload[0]);
  auto kind = static_cast<uint8_t>(payload[1]);
  return version > wire::kProtocolVersion || kind > static_cast<uint8_t>(wire::kNewestPayloadKind);
}

// --- the snapshot image ---------------------------------------------------------------

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isprint(static_cast<unsigned char>(c))) {
      out.push_back(c);
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

// Parses an RKV1 image, feeding `sink` (if any) as it goes. Keys and client
// ids must be strictly increasing, as encode_image writes them: then every
// backend holds the same state for any image it accepts.
bool walk_image(std::string_view image, KvMeta* meta, KvSink* sink, std::string* error) {
  auto bad = [&](std::string why) {
    *error = std::move(why);
    return false;
  };
  if (image.substr(0, kMagic.size()) != kMagic) {
    if (image.size() >= kMagic.size() && image.substr(0, 3) == "RKV") {
      return bad(fmt::format("unknown KV image version '{}' (this build reads {})",
                             printable(image.substr(0, kMagic.size())), kMagic));
    }
    return bad("not a raftkv KV image");
  }
  codec::Reader r(image.substr(kMagic.size()));
  uint64_t applied, nkeys, nsessions;
  if (!r.u64(&applied) || !r.u64(&meta->log_time_ms) || !r.u64(&meta->next_expiry_ms) ||
      !r.u64(&nkeys))
    return bad("truncated header");
  meta->applied = raft::Index(applied);
  std::string_view prev_key;
  for (uint64_t i = 0; i < nkeys; ++i) {
    std::string_view k, v;
    if (!r.bytes(&k) || !r.bytes(&v)) return bad(fmt::format("truncated at key {}", i));
    if (i > 0 && k <= prev_key) return bad(fmt::format("key {} is out of order", i));
    prev_key = k;
    if (sink) sink->put(k, v);
  }
  if (!r.u64(&nsessions)) return bad("truncated session count");
  uint64_t prev_client = 0;
  for (uint64_t i = 0; i < nsessions; ++i) {
    uint64_t c;
    Session s;
    if (!r.u64(&c) || !codec::read_session(r, &s))
      return bad(fmt::format("session {} is truncated or invalid", i));
    if (i > 0 && c <= prev_client) return bad(fmt::format("session {} is out of order", i));
    prev_client = c;
    if (sink) sink->put_session(c, s);
  }
  if (!r.done()) return bad(fmt::format("{} trailing bytes", r.remaining()));
  return true;
}

}  // namespace

std::unique_ptr<KvStore> make_memory_kv_store() {
  return std::make_unique<MemoryKvStore>();
}

void KvStateMachine::write_image(const KvView& view, raft::ImageOut& out) {
  KvMeta meta = view.meta();
  std::string rec(kMagic);
  codec::put_u64(rec, meta.applied.value);
  codec::put_u64(rec, meta.log_time_ms);
  codec::put_u64(rec, meta.next_expiry_ms);
  // Counts are filled in once known: a RocksDB view is walked only once.
  auto count_placeholder = [&] {
    uint64_t at = out.size() + rec.size();
    codec::put_u64(rec, 0);
    out.append(rec);
    rec.clear();
    return at;
  };
  auto fill_count = [&](uint64_t at, uint64_t n) {
    std::string v;
    codec::put_u64(v, n);
    out.overwrite(at, v);
  };
  uint64_t nkeys_at = count_placeholder();
  uint64_t nkeys = 0;
  view.for_each_key([&](std::string_view k, std::string_view v) {
    rec.clear();
    codec::put_bytes(rec, k);
    codec::put_bytes(rec, v);
    out.append(rec);
    ++nkeys;
  });
  rec.clear();
  fill_count(nkeys_at, nkeys);
  uint64_t nsessions_at = count_placeholder();
  uint64_t nsessions = 0;
  view.for_each_session([&](uint64_t c, const Session& s) {
    rec.clear();
    codec::put_u64(rec, c);
    codec::put_session(rec, s);
    out.append(rec);
    ++nsessions;
  });
  fill_count(nsessions_at, nsessions);
}

raft::Bytes KvStateMachine::encode_image(const KvView& view) {
  raft::StringImageOut out;
  write_image(view, out);
  return raft::Bytes(std::move(out.data));
}

KvStateMachine::KvStateMachine() : KvStateMachine(make_memory_kv_store()) {}

KvStateMachine::KvStateMachine(std::unique_ptr<KvStore> store)
    : store_(std::move(store)), meta_(store_->meta()) {}

KvStateMachine::~KvStateMachine() = default;

bool KvStateMachine::RunClients::insert(uint64_t client) {
  if (2 * (size_ + 1) > slots_.size()) {
    // Grow (power of two, at least twice the entries) and re-insert.
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(64, 2 * old.size()), Slot{});
    size_ = 0;
    for (const Slot& s : old)
      if (s.stamp == stamp_) insert(s.id);
  }
  const size_t mask = slots_.size() - 1;
  // Fibonacci hashing spreads sequential ids over the table.
  for (size_t i = (client * 0x9E3779B97F4A7C15ull) >> 20 & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.stamp != stamp_) {
      s = Slot{client, stamp_};
      ++size_;
      return true;
    }
    if (s.id == client) return false;
  }
}

void KvStateMachine::apply(const raft::Entry& e) {
  RAFTKV_CHECK_MSG(e.index == meta_.applied + 1, "entries must be applied in log order");
  if (!run_open_) {
    run_open_ = true;
    superseded_.clear();
    run_clients_.clear();
  }
  meta_.applied = e.index;
  if (e.type == raft::EntryType::kNormal) apply_command(e);
  // The meta record goes with the entry's changes (kv_store.h: one atomic
  // unit per commit), so a stored state is always exactly that of an index.
  store_->set_meta(meta_);
}

void KvStateMachine::apply_command(const raft::Entry& e) {
  auto cmd = wire::decode_log_command(e.data.view());
  if (!cmd.ok()) {
    // An entry of a newer release (a payload version or kind this build does
    // not know) must not be skipped: replicas that read it apply it, and
    // this one would diverge. Stop; an upgraded binary resumes from the log.
    if (written_by_a_newer_release(e.data.view())) {
      std::fprintf(stderr,
                   "raftkv: FATAL: log entry %" PRIu64
                   " was written by a newer raftkv release (%s); this build cannot apply it "
                   "and stops rather than diverge: upgrade this node\n",
                   e.index.value, cmd.error().message.c_str());
      std::fflush(stderr);
      std::abort();
    }
    // Otherwise the leader only proposes requests it decoded itself, so an
    // undecodable entry means a bug or corruption that the storage
    // checksums missed. Every replica skips it the same way.
    return;
  }
  meta_.log_time_ms = std::max(meta_.log_time_ms, cmd->timestamp_ms);
  const uint64_t client = cmd->client_id.value;
  std::optional<Session> prior;
  bool seen_in_run = false;  // an earlier entry of this run named the client
  if (client != 0) {
    prior = store_->session(client);
    seen_in_run = !run_clients_.insert(client);
    if (cmd->seq <= (prior ? prior->seq : 0)) return;  // a retry: applied once already
  }
  ApplyResult r = execute(*cmd);
  if (client != 0) {
    // A waiter of that earlier entry will look for the record replaced here.
    if (seen_in_run && prior) {
      superseded_.push_back({client, prior->seq, prior->reply});
      if (superseded_.size() > kMaxSuperseded) superseded_.pop_front();
    }
    store_->put_session(client, Session{cmd->seq, std::move(r), meta_.log_time_ms});
  }
  expire_sessions();
}

void KvStateMachine::applied_batch_done() {
  store_->commit();
  run_open_ = false;
}

ApplyResult KvStateMachine::execute(const wire::KvCommandRef& cmd) {
  ApplyResult r;
  switch (cmd.op) {
    case wire::Op::kPut:
      store_->put(cmd.key, cmd.value);
      break;
    case wire::Op::kAppend: {
      std::string v = store_->get(cmd.key).value_or("");
      // Appends beyond the value limit are refused, identically everywhere.
      if (v.size() + cmd.value.size() > kMaxValueBytes) {
        r.status = wire::ReplyStatus::kTooLarge;
      } else {
        v += cmd.value;
        store_->put(cmd.key, v);
      }
      break;
    }
    case wire::Op::kDelete:
      if (store_->get(cmd.key)) {
        store_->erase(cmd.key);
      } else {
        r.status = wire::ReplyStatus::kNotFound;
      }
      break;
    case wire::Op::kGet:
    case wire::Op::kStatus:
      r.status = wire::ReplyStatus::kBadRequest;  // never replicated
      break;
  }
  return r;
}

void KvStateMachine::expire_sessions() {
  if (meta_.log_time_ms < meta_.next_expiry_ms) return;
  // Scans at most once a minute of log time, so expiry costs O(1) amortized.
  meta_.next_expiry_ms = meta_.log_time_ms + 60 * 1000;
  std::vector<uint64_t> expired;
  store_->for_each_session([&](uint64_t c, const Session& s) {
    if (s.last_active_ms + kSessionTtlMs < meta_.log_time_ms) expired.push_back(c);
  });
  for (uint64_t c : expired)
    store_->erase_session(c);
}

std::optional<std::string> KvStateMachine::get(std::string_view key) const {
  return store_->get(key);
}

std::optional<ApplyResult> KvStateMachine::session_reply(wire::ClientId client,
                                                         uint64_t seq) const {
  std::optional<Session> s = store_->session(client.value);
  if (s && s->seq == seq) return std::move(s->reply);
  for (auto it = superseded_.rbegin(); it != superseded_.rend(); ++it) {
    if (it->client == client.value && it->seq == seq) return it->reply;
  }
  return std::nullopt;
}

bool KvStateMachine::already_applied(wire::ClientId client, uint64_t seq) const {
  std::optional<Session> s = store_->session(client.value);
  return s && seq <= s->seq;
}

raft::Bytes KvStateMachine::snapshot() const {
  return encode_image(*store_->view());
}

void KvStateMachine::checkpoint() {
  // Order matters for the caller's compaction: the state is durable before
  // the view that stands for the compacted log prefix exists.
  store_->sync();
  pinned_ = store_->view();
}

raft::Index KvStateMachine::checkpoint_in_background() {
  if (auto v = store_->durable_view(pinned_index())) pinned_ = std::move(v);
  return pinned_index();
}

raft::Index KvStateMachine::pinned_index() const {
  return pinned_ ? pinned_->meta().applied : raft::Index(0);
}

raft::ImageWriter KvStateMachine::pinned_image_writer() const {
  RAFTKV_CHECK_MSG(pinned_ != nullptr, "pinned_image_writer() before checkpoint()");
  // Holds the view: a later checkpoint() re-pins without disturbing it.
  return [view = pinned_](raft::ImageOut& out) { write_image(*view, out); };
}

bool KvStateMachine::restore(const raft::Snapshot& snap, std::string* error) {
  std::string_view image = snap.data.view();
  KvMeta meta;
  std::string why;
  if (!(image.empty() && snap.meta.index == raft::Index(0))) {
    if (!walk_image(image, &meta, nullptr, &why)) {
      *error = fmt::format("snapshot at index {}: {}", snap.meta.index, why);
      return false;
    }
    if (meta.applied != snap.meta.index) {
      *error =
          fmt::format("snapshot at index {}: image is at index {}", snap.meta.index, meta.applied);
      return false;
    }
  }
  // The whole image was checked above; only now is the state replaced.
  store_->replace(meta, [&](KvSink& sink) {
    KvMeta again;
    RAFTKV_CHECK(image.empty() || walk_image(image, &again, &sink, &why));
  });
  meta_ = meta;
  run_open_ = false;
  superseded_.clear();
  run_clients_.clear();
  if (store_->durable()) pinned_ = store_->view();
  return true;
}

}  // namespace raftkv::kv
