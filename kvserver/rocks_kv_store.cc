#include "kvserver/rocks_kv_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <span>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "kvserver/id_map.h"
#include "kvserver/kv_codec.h"
#include "raft/core/check.h"

namespace raftkv::kv {
namespace {

constexpr uint32_t kFormatVersion = 1;
constexpr uint8_t kFlagReplacing = 1;
constexpr char kMetaKey[] = "m";
// Key ranges [begin, end) of the data and session records.
constexpr char kDataBegin[] = "d";
constexpr char kDataEnd[] = "e";
constexpr char kSessionBegin[] = "s";
constexpr char kSessionEnd[] = "t";

// Where write-behind batches are built before the DB ingests them. RocksDB
// ignores files in its directory whose names it does not recognize.
std::string staging_path(const std::string& dir) {
  return dir + "/write-behind.sst.tmp";
}

// As RocksLogStore: after a write or fsync error the disk's contents are
// unknown, and a read error means the state cannot be trusted. Stop; a
// restart recovers from what the disk holds plus the Raft log.
[[noreturn]] void fail_stop(const std::string& dir, const std::string& what,
                            const rocksdb::Status& s) {
  std::fprintf(stderr, "raftkv: FATAL state store error in %s: %s: RocksDB: %s\n", dir.c_str(),
               what.c_str(), s.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}

std::string data_key(std::string_view key) {
  std::string k;
  k.reserve(key.size() + 1);
  k.push_back(kDataBegin[0]);
  k.append(key);
  return k;
}

// data_key() into a reused buffer.
const std::string& data_key(std::string_view key, std::string* buf) {
  buf->assign(1, kDataBegin[0]);
  buf->append(key);
  return *buf;
}

std::string session_key(uint64_t client) {
  std::string k(1, kSessionBegin[0]);
  for (int i = 7; i >= 0; --i)
    k.push_back(static_cast<char>(client >> (8 * i)));
  return k;
}

std::optional<uint64_t> decode_session_key(std::string_view k) {
  if (k.size() != 9 || k[0] != kSessionBegin[0]) return std::nullopt;
  uint64_t c = 0;
  for (size_t i = 1; i < 9; ++i)
    c = (c << 8) | static_cast<uint8_t>(k[i]);
  return c;
}

std::string encode_meta(const KvMeta& m, uint8_t flags) {
  std::string out;
  codec::put_u32(out, kFormatVersion);
  out.push_back(static_cast<char>(flags));
  codec::put_u64(out, m.applied.value);
  codec::put_u64(out, m.log_time_ms);
  codec::put_u64(out, m.next_expiry_ms);
  return out;
}

// Empty error: decoded.
std::string decode_meta(std::string_view in, KvMeta* m, uint8_t* flags) {
  codec::Reader r(in);
  uint32_t version;
  uint64_t applied;
  if (!r.u32(&version)) return "meta record is truncated";
  if (version != kFormatVersion) {
    return fmt::format("unsupported state format version {} (this build reads {})", version,
                       kFormatVersion);
  }
  if (!r.u8(flags) || !r.u64(&applied) || !r.u64(&m->log_time_ms) || !r.u64(&m->next_expiry_ms) ||
      !r.done())
    return "meta record is malformed";
  m->applied = raft::Index(applied);
  return {};
}

Session decode_session_value(const std::string& dir, std::string_view v) {
  Session s;
  codec::Reader r(v);
  if (!codec::read_session(r, &s) || !r.done()) {
    fail_stop(dir, "reading a session record",
              rocksdb::Status::Corruption("malformed session record"));
  }
  return s;
}

// Calls f for every record in [begin, end) seen by `it`.
template <class F>
void scan(const std::string& dir, rocksdb::Iterator* it, const char* begin, const char* end, F f) {
  for (it->Seek(begin); it->Valid() && it->key().compare(end) < 0; it->Next())
    f(it->key().ToStringView(), it->value().ToStringView());
  if (!it->status().ok()) fail_stop(dir, "scanning", it->status());
}

// fsyncs a directory (its entries); empty on success.
std::string sync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return fmt::format("opening {}: {}", dir.string(), std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return fmt::format("syncing {}: {}", dir.string(), std::strerror(err));
  return {};
}

// The writes of the current apply run by RocksDB key, for reads to see
// before commit() stores them: the latest put or erase of each key. Keys and
// values are copied into one arena that is reused from run to run, and an
// open-addressing table of entry numbers indexes them, so once both have
// grown to a run's size a run allocates nothing. (It replaces a
// WriteBatchWithIndex, whose skiplist index cost ~5% of a put's samples.)
class RunOverlay {
 public:
  enum class Found { kAbsent, kValue, kErased };

  void put(std::string_view key, std::string_view value) { set(key, value, false); }
  void erase(std::string_view key) { set(key, {}, true); }

  Found find(std::string_view key, std::string_view* value) const {
    const Entry* e = lookup(key, std::hash<std::string_view>{}(key));
    if (e == nullptr) return Found::kAbsent;
    if (e->erased) return Found::kErased;
    *value = value_of(*e);
    return Found::kValue;
  }

  // Calls f(key, value or nullptr if erased) for the entries in [begin,
  // end), in key order.
  template <class F>
  void for_each_sorted(std::string_view begin, std::string_view end, F f) const {
    std::vector<Ranked> in;
    in.reserve(entries_.size());
    for (const Entry& e : entries_) {
      std::string_view k = key_of(e);
      if (k >= begin && k < end) in.push_back({0, &e});
    }
    sort_by_key(in, 0);
    for (const Ranked& r : in) {
      std::string_view v = value_of(*r.e);
      f(key_of(*r.e), r.e->erased ? nullptr : &v);
    }
  }

  // Calls f(key, value or nullptr if erased) for every entry, in key order.
  template <class F>
  void for_each_sorted(F f) const {
    for_each_sorted(std::string_view(), std::string_view("\xff\xff"), f);
  }

  bool empty() const { return entries_.empty(); }

  // Bytes held, replaced values included: what the overlay costs in memory.
  size_t bytes() const { return arena_.size() + entries_.size() * sizeof(Entry); }

  void clear() {
    if (entries_.empty()) return;
    entries_.clear();
    std::fill(table_.begin(), table_.end(), kEmpty);
    // A run of huge values must not pin its arena for good.
    if (arena_.capacity() > kKeepArenaBytes) std::string().swap(arena_);
    arena_.clear();
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  static constexpr size_t kKeepArenaBytes = size_t{8} << 20;

  struct Entry {
    size_t hash;
    size_t key_at, key_len;
    size_t value_at, value_len;
    bool erased;
  };
  // An entry and the integer rank sort_by_key() gives its key.
  struct Ranked {
    uint64_t rank;
    const Entry* e;
  };

  std::string_view key_of(const Entry& e) const { return {arena_.data() + e.key_at, e.key_len}; }
  std::string_view value_of(const Entry& e) const {
    return {arena_.data() + e.value_at, e.value_len};
  }

  // Invariant: table_.size() is 0 or a power of two, at least twice
  // entries_.size(); each entry's number is in the table exactly once.
  const Entry* lookup(std::string_view key, size_t hash) const {
    if (table_.empty()) return nullptr;
    const size_t mask = table_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      uint32_t n = table_[i];
      if (n == kEmpty) return nullptr;
      const Entry& e = entries_[n];
      if (e.hash == hash && key_of(e) == key) return &e;
    }
  }

  void set(std::string_view key, std::string_view value, bool erased) {
    const size_t hash = std::hash<std::string_view>{}(key);
    Entry* e = const_cast<Entry*>(lookup(key, hash));
    const size_t value_at = arena_.size();
    arena_.append(value);  // a replaced value stays in the arena until clear()
    if (e != nullptr) {
      e->value_at = value_at;
      e->value_len = value.size();
      e->erased = erased;
      return;
    }
    const size_t key_at = arena_.size();
    arena_.append(key);
    entries_.push_back(Entry{hash, key_at, key.size(), value_at, value.size(), erased});
    if (table_.size() < 2 * entries_.size()) {
      rehash(std::max<size_t>(64, table_.size() * 2));
    } else {
      insert(static_cast<uint32_t>(entries_.size() - 1));
    }
  }

  // Sorts by key: an MSD radix sort on 8-byte digits. Keys tend to share
  // long prefixes ("d" and a user prefix like "user0000"), so each pass
  // ranks the keys of a range by the 8 bytes after the prefix they all
  // share, loaded big-endian and zero-padded: most comparisons are one
  // integer compare. A run of equal ranks recurses past those bytes, or
  // compares whole keys when one of them ends within them.
  // Precondition: the keys in r are distinct and share their first `depth`
  // bytes, and each is at least `depth` bytes long.
  void sort_by_key(std::span<Ranked> r, size_t depth) const {
    if (r.size() < 2) return;
    const std::string_view first = key_of(*r.front().e);
    size_t common = first.size();
    for (const Ranked& x : r) {
      const std::string_view k = key_of(*x.e);
      const size_t n = std::min(common, k.size());
      size_t i = depth;
      while (i < n && k[i] == first[i])
        ++i;
      common = i;
    }
    for (Ranked& x : r) {
      const std::string_view k = key_of(*x.e);
      x.rank = 0;
      for (size_t i = common; i < common + 8; ++i)
        x.rank = (x.rank << 8) | (i < k.size() ? static_cast<uint8_t>(k[i]) : 0);
    }
    std::sort(r.begin(), r.end(), [](const Ranked& a, const Ranked& b) { return a.rank < b.rank; });
    for (size_t i = 0; i < r.size();) {
      size_t j = i + 1;
      while (j < r.size() && r[j].rank == r[i].rank)
        ++j;
      std::span<Ranked> tie = r.subspan(i, j - i);
      const bool all_long = std::all_of(
          tie.begin(), tie.end(), [&](const Ranked& x) { return x.e->key_len >= common + 8; });
      if (all_long) {
        sort_by_key(tie, common + 8);
      } else {
        std::sort(tie.begin(), tie.end(),
                  [&](const Ranked& a, const Ranked& b) { return key_of(*a.e) < key_of(*b.e); });
      }
      i = j;
    }
  }

  void insert(uint32_t n) {
    const size_t mask = table_.size() - 1;
    size_t i = entries_[n].hash & mask;
    while (table_[i] != kEmpty)
      i = (i + 1) & mask;
    table_[i] = n;
  }

  void rehash(size_t size) {
    table_.assign(size, kEmpty);
    for (size_t n = 0; n < entries_.size(); ++n)
      insert(static_cast<uint32_t>(n));
  }

  std::string arena_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> table_;
};

// A view pins the state with one RocksDB iterator made when the view is
// taken, not with a RocksDB snapshot: an iterator reads the files and
// memtables that were current when it was made, so it stays at that commit,
// and it registers no snapshot. A registered snapshot made every compaction
// keep the versions it could see, and each release (at every checkpoint)
// had RocksDB rewrite the whole last level only to zero the sequence numbers
// of keys written while it was held: 1.0-1.7 us of compaction CPU per put
// (3 nodes, saturating puts). The price: the pinned table files stay on
// disk until the view goes, as the versions a snapshot kept did.
class RocksView final : public KvView {
 public:
  RocksView(std::string dir, rocksdb::DB* db, KvMeta meta) : dir_(std::move(dir)), meta_(meta) {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // a whole-state scan would evict the working set
    it_.reset(db->NewIterator(ro));
  }
  KvMeta meta() const override { return meta_; }
  void for_each_key(const KeyFn& f) const override {
    std::lock_guard lock(mu_);
    scan(dir_, it_.get(), kDataBegin, kDataEnd,
         [&](std::string_view k, std::string_view v) { f(k.substr(1), v); });
  }
  void for_each_session(const SessionFn& f) const override {
    std::lock_guard lock(mu_);
    scan(dir_, it_.get(), kSessionBegin, kSessionEnd, [&](std::string_view k, std::string_view v) {
      std::optional<uint64_t> c = decode_session_key(k);
      if (!c) {
        fail_stop(dir_, "reading a session key", rocksdb::Status::Corruption("bad session key"));
      }
      f(*c, decode_session_value(dir_, v));
    });
  }

 private:
  std::string dir_;
  KvMeta meta_;
  mutable std::mutex mu_;                  // scans of one view (two snapshot sends) take turns
  std::unique_ptr<rocksdb::Iterator> it_;  // guarded by mu_
};

}  // namespace

struct RocksKvStore::Impl {
  std::string dir;
  RocksKvStoreOptions options;
  rocksdb::Options db_options;  // the DB's, which its table files must match
  rocksdb::DB* db = nullptr;
  // Every write not yet in the DB: the committed runs held back (see
  // "Write-behind" in the header) and the open run. Invariant: a read
  // through `overlay`, then the DB, sees every write made so far, except
  // the session puts still dirty in `sessions` (store_dirty_sessions()).
  RunOverlay overlay;
  std::string key_buf, value_buf;  // reused by writes
  KvMeta meta;                     // including uncommitted changes
  // The meta of the last batch in the DB, which is durable: every batch is
  // (write_sorted), and replace() ends with a synced write.
  KvMeta durable_meta;
  bool run_open = false;   // writes or a meta change since the last commit()
  bool held_back = false;  // committed runs in `overlay`, not yet in the DB
  // Older held-back runs that a background thread is writing to the DB
  // while `written` is valid; empty otherwise. Reads consult it after
  // `overlay`; nothing changes it until the write is done. At most one such
  // write at a time, so the batches reach the DB in commit order.
  RunOverlay writing;
  std::future<KvMeta> written;  // the meta of the batch, once it is in
  // Cache of sessions (uncommitted writes included): one is read for every
  // write, by apply and by the client service. A put marks its entry dirty
  // and lists the client in dirty_sessions; store_dirty_sessions() writes
  // the dirty entries to `overlay` before anything reads sessions through
  // the overlay (scans, views, batch writes), so a client with many writes
  // in a batch costs one overlay record, not one per write. Invariant: a
  // clean entry equals what a read through `overlay` would return; every
  // dirty entry's client is in dirty_sessions. No negative entries, so
  // unknown client ids cannot grow it; expiry erases entries.
  struct CachedSession {
    Session session;
    bool dirty = false;
  };
  IdMap<CachedSession> sessions;
  std::vector<uint64_t> dirty_sessions;
  bool discarded = false;

  ~Impl() {
    if (db == nullptr) return;
    // A clean close keeps what was committed, so a restart replays less.
    if (!run_open) {
      write_held_back();
    } else {
      finish_background_write();
    }
    // Nothing here was promised durable beyond the last sync(); the Raft
    // log replays whatever a failed close loses.
    rocksdb::Status s = db->Close();
    if (!s.ok())
      std::fprintf(stderr, "raftkv: closing %s: %s\n", dir.c_str(), s.ToString().c_str());
    delete db;
  }

  // Writes held-back runs, and the meta record of the last of them, as ONE
  // table file in key order, which the DB then ingests. Any thread; `runs`
  // must not change meanwhile.
  //
  // The meta record is in the same file as the changes it describes, and an
  // ingestion is atomic (one MANIFEST record), so after a crash the store is
  // at some commit, never between two. Durable on return: ingestion links
  // the file into the DB, fsyncs it and the directory, and syncs the
  // MANIFEST record before it returns (RocksDB's ExternalSstFileIngestionJob).
  // A crash while the file is being written leaves only the staging file,
  // which the next batch (or open) overwrites.
  void write_sorted(const RunOverlay& runs, const std::string& meta_record) const {
    const std::string path = staging_path(dir);
    rocksdb::SstFileWriter file(rocksdb::EnvOptions(db_options), db_options);
    check(file.Open(path), "creating a write-behind table file");
    bool meta_added = false;
    auto add_meta = [&] {
      check(file.Put(kMetaKey, meta_record), "writing the meta record");
      meta_added = true;
    };
    runs.for_each_sorted([&](std::string_view k, const std::string_view* v) {
      if (!meta_added && k > kMetaKey) add_meta();
      check(v != nullptr ? file.Put(k, *v) : file.Delete(k), "writing held-back writes");
    });
    if (!meta_added) add_meta();
    check(file.Finish(), "finishing a write-behind table file");
    rocksdb::IngestExternalFileOptions ingest;
    ingest.move_files = true;
    check(db->IngestExternalFile({path}, ingest), "ingesting held-back writes");
  }

  void store_dirty_sessions() {
    for (uint64_t client : dirty_sessions) {
      CachedSession* cached = sessions.find(client);
      if (cached == nullptr || !cached->dirty) continue;  // erased, or stored already
      value_buf.clear();
      codec::put_session(value_buf, cached->session);
      overlay.put(session_key(client), value_buf);
      cached->dirty = false;
    }
    dirty_sessions.clear();
  }

  // Waits for the background write, if any: its runs are in the DB then.
  void finish_background_write() {
    if (!written.valid()) return;
    durable_meta = written.get();
    writing.clear();
  }

  bool background_write_running() const {
    return written.valid() &&
           written.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
  }

  // Writes every held-back run before returning. Only between runs: `meta`
  // is then committed.
  void write_held_back() {
    RAFTKV_CHECK_MSG(!run_open, "writing held-back runs inside an open run");
    finish_background_write();
    if (!held_back) return;
    store_dirty_sessions();
    write_sorted(overlay, encode_meta(meta, 0));
    overlay.clear();
    held_back = false;
    durable_meta = meta;
  }

  // Hands the held-back runs to a background thread, so the Raft thread
  // does not stall for the sort and the write (commit()).
  void write_held_back_in_background() {
    RAFTKV_CHECK(!run_open && held_back);
    finish_background_write();
    store_dirty_sessions();
    std::swap(overlay, writing);  // `overlay` gets the cleared spare
    held_back = false;
    written = std::async(std::launch::async, [this, batch_meta = meta] {
      pthread_setname_np(pthread_self(), "raftkv-state");
      write_sorted(writing, encode_meta(batch_meta, 0));
      return batch_meta;
    });
  }

  void check(const rocksdb::Status& s, const char* what) const {
    if (!s.ok()) fail_stop(dir, what, s);
  }

  std::optional<std::string> read(const std::string& key) {
    std::string_view mine;
    for (const RunOverlay* o : {&overlay, &writing}) {
      switch (o->find(key, &mine)) {
        case RunOverlay::Found::kValue:
          return std::string(mine);
        case RunOverlay::Found::kErased:
          return std::nullopt;
        case RunOverlay::Found::kAbsent:
          break;
      }
    }
    std::string v;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), key, &v);
    if (s.IsNotFound()) return std::nullopt;
    check(s, "reading");
    return v;
  }

  // Calls f(key, value) for the records in [begin, end) in key order,
  // uncommitted writes included: the DB's records merged with the overlay's.
  template <class F>
  void merged_scan(const char* begin, const char* end, F f) {
    finish_background_write();  // rare (diagnostics, expiry): merge one overlay only
    store_dirty_sessions();
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
    it->Seek(begin);
    auto db_has = [&] { return it->Valid() && it->key().compare(end) < 0; };
    overlay.for_each_sorted(begin, end, [&](std::string_view k, const std::string_view* v) {
      for (; db_has() && it->key().ToStringView() < k; it->Next())
        f(it->key().ToStringView(), it->value().ToStringView());
      if (db_has() && it->key().ToStringView() == k) it->Next();  // replaced or erased
      if (v != nullptr) f(k, *v);
    });
    for (; db_has(); it->Next())
      f(it->key().ToStringView(), it->value().ToStringView());
    if (!it->status().ok()) fail_stop(dir, "scanning", it->status());
  }

  // Counts the records in [begin, end), uncommitted writes included.
  size_t count(const char* begin, const char* end) {
    size_t n = 0;
    merged_scan(begin, end, [&](std::string_view, std::string_view) { ++n; });
    return n;
  }

  void write(rocksdb::WriteBatch* b, bool sync, const char* what) const {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    check(db->Write(wo, b), what);
  }
};

RocksKvStore::RocksKvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RocksKvStore::~RocksKvStore() = default;

std::unique_ptr<RocksKvStore> RocksKvStore::open(const std::string& dir,
                                                 const RocksKvStoreOptions& options,
                                                 std::string* error) {
  namespace fs = std::filesystem;
  auto refuse = [&](const std::string& problem) {
    *error = fmt::format("cannot open state store {}: {}", dir, problem);
    return nullptr;
  };
  std::error_code ec;
  bool exists = fs::exists(dir, ec);
  if (ec) return refuse(ec.message());
  if (exists && !fs::is_directory(dir, ec)) return refuse("not a directory");
  bool has_db = exists && fs::exists(fs::path(dir) / "CURRENT", ec);
  if (exists && !has_db && !fs::is_empty(dir, ec)) {
    return refuse("the directory is not empty, but holds no RocksDB store");
  }
  if (ec) return refuse(ec.message());
  if (!exists) {
    if (!fs::create_directories(dir, ec) && ec) return refuse(ec.message());
    // The new directory's entry must survive a crash too: once the log is
    // compacted, the state it names is the only copy of the data.
    std::string why = sync_dir(fs::path(dir).parent_path());
    if (!why.empty()) return refuse(why);
  }

  rocksdb::Options o;
  o.create_if_missing = true;
  o.paranoid_checks = true;
  // Recovery: only replace() writes through the WAL (commits are ingested
  // as table files), and a machine crash may tear those writes anywhere
  // before its final sync. Point-in-time recovery replays up to the first
  // bad record and stops, leaving a prefix of them, which open() then
  // recognizes by the "replacing" flag. (The Raft log's store uses a
  // stricter mode because its synced records are promises; these are not.)
  // One column family keeps the prefix property across memtable flushes.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Every write-behind batch (4 MiB) becomes a level-0 file whose keys span
  // the whole key space, so each level-0 compaction rewrites all of level 1.
  // Waiting for 16 files (RocksDB's default: 4) did that a quarter as
  // often: 3.0-3.5 instead of 9.0-9.4 us of compaction CPU per put, 25-26
  // instead of 32-35 us in all (3 nodes, 20 s of saturating puts); 32 files
  // halve it again (store-bench, 4M puts over 100k keys: 18 compactions and
  // 0.50-0.56 us of compaction CPU per put at 16, 9 and 0.39-0.44 at 32),
  // and 64 files took the store's whole CPU per put from 2.27-2.32 to
  // 2.10-2.12 us (store-bench, 6M puts, three alternated pairs). The stall
  // triggers keep RocksDB's distance above it. A Get then may look into 64
  // level-0 files, so each file carries a bloom filter (10 bits per key, ~1%
  // false positives): at 16 files, gets of keys no longer held back measured
  // 66-72k/s instead of 40-61k/s; at 64 against 32, after 25 s of puts over
  // 100k keys, 81-103k/s against 78-84k/s. The price is disk: up to 64
  // batches (256 MiB) wait in level 0.
  o.level0_file_num_compaction_trigger = 64;
  o.level0_slowdown_writes_trigger = 88;
  o.level0_stop_writes_trigger = 112;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // 8 KiB blocks instead of 4: half the per-block work (index entry, separator
  // key, compression call, checksum, write) in every batch file and every
  // compaction. store-bench --store state (3M puts, 100k keys): 1.74-1.79
  // instead of 1.92-1.93 us per put. 16 KiB saved a little more (1.68-1.73)
  // but a get that misses the block cache decompresses the whole block:
  // 256-client gets of 100k keys just written, 64-67k/s against 81-84k/s
  // with 4 KiB; with 8 KiB 72-84k/s against 77-81k/s.
  table.block_size = size_t{8} << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Compaction reads its input 2 MiB per syscall instead of one 4 KiB block
  // per pread (RocksDB 7.8's default): ~12k fewer syscalls/s per node under
  // saturating puts, where each is costly on a VM.
  o.compaction_readahead_size = size_t{2} << 20;
  // LZ4 rather than RocksDB's default Snappy: every batch is compressed once
  // when written and again by each compaction. store-bench (6M puts, 100k
  // keys): 1.38-1.58 instead of 1.47-1.74 us per put, in two pairs. Files
  // written with Snappy stay readable (each block names its compression).
  o.compression = rocksdb::kLZ4Compression;
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  impl->db_options = o;
  rocksdb::Status s = rocksdb::DB::Open(o, dir, &impl->db);
  if (!s.ok()) return refuse("RocksDB: " + s.ToString());
  fs::remove(staging_path(dir), ec);  // a batch a crash cut short: never ingested
  rocksdb::DB* db = impl->db;

  std::string value;
  s = db->Get(rocksdb::ReadOptions(), kMetaKey, &value);
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
    it->SeekToFirst();
    if (!it->status().ok()) return refuse("RocksDB: " + it->status().ToString());
    if (it->Valid()) return refuse("the store holds records but no meta record");
    it.reset();
    std::string m = encode_meta(KvMeta{}, 0);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, kMetaKey, m);
    if (!s.ok()) return refuse("initializing: RocksDB: " + s.ToString());
    value = m;
  } else if (!s.ok()) {
    return refuse("RocksDB: " + s.ToString());
  }
  uint8_t flags = 0;
  std::string bad = decode_meta(value, &impl->meta, &flags);
  if (!bad.empty()) return refuse(bad);
  if (flags & kFlagReplacing) {
    // A crash interrupted replace(): the contents are a mix. Discard them;
    // the node restores the snapshot again from the log store, which keeps
    // its image until the log is next compacted (after a sync() here).
    rocksdb::WriteBatch b;
    s = b.DeleteRange(kDataBegin, kDataEnd);
    if (s.ok()) s = b.DeleteRange(kSessionBegin, kSessionEnd);
    if (s.ok()) s = b.Put(kMetaKey, encode_meta(KvMeta{}, 0));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (s.ok()) s = db->Write(wo, &b);
    if (!s.ok()) return refuse("discarding an interrupted restore: RocksDB: " + s.ToString());
    impl->meta = KvMeta{};
    impl->discarded = true;
  }
  // What open() finds is durable: ingested batches are synced, and so is
  // the last write of a replace() (and a cut-short one was discarded above).
  impl->durable_meta = impl->meta;
  return std::unique_ptr<RocksKvStore>(new RocksKvStore(std::move(impl)));
}

KvMeta RocksKvStore::meta() const {
  return impl_->meta;
}

std::optional<std::string> RocksKvStore::get(std::string_view key) const {
  return impl_->read(data_key(key, &impl_->key_buf));
}

std::optional<Session> RocksKvStore::session(uint64_t client) const {
  Impl& m = *impl_;
  if (const Impl::CachedSession* cached = m.sessions.find(client)) return cached->session;
  std::optional<std::string> v = m.read(session_key(client));
  if (!v) return std::nullopt;
  Session s = decode_session_value(m.dir, *v);
  m.sessions[client] = Impl::CachedSession{s};
  return s;
}

void RocksKvStore::for_each_session(const SessionFn& f) const {
  Impl& m = *impl_;
  m.merged_scan(kSessionBegin, kSessionEnd, [&](std::string_view k, std::string_view v) {
    std::optional<uint64_t> c = decode_session_key(k);
    if (!c) fail_stop(m.dir, "reading a session key", rocksdb::Status::Corruption("bad key"));
    f(*c, decode_session_value(m.dir, v));
  });
}

size_t RocksKvStore::key_count() const {
  return impl_->count(kDataBegin, kDataEnd);
}
size_t RocksKvStore::session_count() const {
  return impl_->count(kSessionBegin, kSessionEnd);
}

void RocksKvStore::set_meta(const KvMeta& meta) {
  impl_->meta = meta;
  impl_->run_open = true;
}

void RocksKvStore::put(std::string_view key, std::string_view value) {
  Impl& m = *impl_;
  const std::string& k = data_key(key, &m.key_buf);
  m.overlay.put(k, value);
  m.run_open = true;
}

void RocksKvStore::erase(std::string_view key) {
  Impl& m = *impl_;
  const std::string& k = data_key(key, &m.key_buf);
  m.overlay.erase(k);
  m.run_open = true;
}

void RocksKvStore::put_session(uint64_t client, const Session& s) {
  Impl& m = *impl_;
  Impl::CachedSession& cached = m.sessions[client];
  cached.session = s;
  if (!cached.dirty) {
    cached.dirty = true;
    m.dirty_sessions.push_back(client);
  }
  m.run_open = true;
}

void RocksKvStore::erase_session(uint64_t client) {
  Impl& m = *impl_;
  const std::string k = session_key(client);
  m.overlay.erase(k);
  m.run_open = true;
  m.sessions.erase(client);  // a dirty entry goes too: the erase replaces it
}

void RocksKvStore::commit() {
  Impl& m = *impl_;
  if (!m.run_open) return;
  m.run_open = false;
  m.held_back = true;
  if (m.overlay.bytes() < m.options.write_behind_bytes) return;
  if (m.options.write_behind_in_background) {
    m.write_held_back_in_background();
  } else {
    m.write_held_back();
  }
}

std::shared_ptr<const KvView> RocksKvStore::view() const {
  Impl& m = *impl_;
  RAFTKV_CHECK_MSG(!m.run_open, "view() with uncommitted writes");
  m.write_held_back();
  return std::make_shared<RocksView>(m.dir, m.db, m.meta);
}

void RocksKvStore::replace(const KvMeta& meta, const std::function<void(KvSink&)>& fill) {
  Impl& m = *impl_;
  RAFTKV_CHECK_MSG(!m.run_open, "replace() with uncommitted writes");
  // Held-back runs are replaced as well: they never reach the disk.
  m.finish_background_write();
  m.overlay.clear();
  m.held_back = false;
  int writes = 0;
  auto written = [&] {
    ++writes;
    if (m.options.after_replace_write) m.options.after_replace_write(writes);
  };
  // Write 1 clears the old state and marks the meta "replacing". From then
  // until the final write below, a crash leaves the marker, and open()
  // discards the partial contents: the state is then empty at index 0 and
  // the node restores the snapshot again from the log store. A crash before
  // write 1 leaves the old state. Either way the state is that of an index.
  rocksdb::WriteBatch b;
  m.check(b.DeleteRange(kDataBegin, kDataEnd), "batching a range delete");
  m.check(b.DeleteRange(kSessionBegin, kSessionEnd), "batching a range delete");
  m.check(b.Put(kMetaKey, encode_meta(KvMeta{}, kFlagReplacing)), "batching the meta record");
  m.write(&b, false, "clearing the state for a restore");
  written();
  b.Clear();

  struct Sink final : KvSink {
    Impl& m;
    rocksdb::WriteBatch& b;
    std::function<void()> flush;
    Sink(Impl& im, rocksdb::WriteBatch& wb, std::function<void()> f)
        : m(im), b(wb), flush(std::move(f)) {}
    void put(std::string_view k, std::string_view v) override {
      m.check(b.Put(data_key(k), v), "batching a restored key");
      if (b.GetDataSize() >= m.options.replace_batch_bytes) flush();
    }
    void put_session(uint64_t c, const Session& s) override {
      std::string v;
      codec::put_session(v, s);
      m.check(b.Put(session_key(c), v), "batching a restored session");
      if (b.GetDataSize() >= m.options.replace_batch_bytes) flush();
    }
  } sink(m, b, [&] {
    m.write(&b, false, "restoring");
    written();
    b.Clear();
  });
  m.sessions.clear();
  m.dirty_sessions.clear();
  fill(sink);
  m.check(b.Put(kMetaKey, encode_meta(meta, 0)), "batching the meta record");
  // Synced: the batches ingested after this are durable at once, and must
  // never outlive (in a machine crash) the restored state they change.
  m.write(&b, true, "finishing a restore");
  written();
  m.meta = meta;
  m.durable_meta = meta;
}

void RocksKvStore::sync() {
  Impl& m = *impl_;
  RAFTKV_CHECK_MSG(!m.run_open, "sync() with uncommitted writes");
  // Ingesting the held-back runs makes every commit durable (write_sorted);
  // the WAL holds only replace()'s writes, synced when it finished.
  m.write_held_back();
}

std::shared_ptr<const KvView> RocksKvStore::durable_view(raft::Index newer_than) {
  Impl& m = *impl_;
  RAFTKV_CHECK_MSG(!m.run_open, "durable_view() with uncommitted writes");
  // While a batch is being ingested the DB may or may not hold it yet.
  if (m.background_write_running()) return nullptr;
  m.finish_background_write();  // done already: returns at once
  // Between writes the DB holds exactly the batches written so far: the
  // durable state at durable_meta. The view is taken before the next write.
  std::shared_ptr<const KvView> v;
  if (m.durable_meta.applied > newer_than)
    v = std::make_shared<RocksView>(m.dir, m.db, m.durable_meta);
  if (m.held_back) m.write_held_back_in_background();
  return v;
}

const std::string& RocksKvStore::dir() const {
  return impl_->dir;
}

bool RocksKvStore::interrupted_replace_discarded() const {
  return impl_->discarded;
}

void RocksKvStore::compact() {
  Impl& m = *impl_;
  m.write_held_back();
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  m.check(m.db->CompactRange(o, nullptr, nullptr), "compacting");
}

}  // namespace raftkv::kv
