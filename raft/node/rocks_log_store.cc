#include "raft/node/rocks_log_store.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <span>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_manager.h>
#include <rocksdb/write_batch.h>

#include "raft/core/check.h"
#include "raft/node/fail_stop.h"
#include "raft/node/rocks_log_store_internal.h"
#include "raft/node/storage_codec.h"

namespace raftkv::raft {
namespace {

constexpr char kFormatVersionKey[] = "format_version";
constexpr char kIdentityKey[] = "identity";
constexpr char kHardStateKey[] = "hard_state";
constexpr char kSnapshotMetaKey[] = "snapshot_meta";

std::string rocks_error(const rocksdb::Status& s) {
  return "RocksDB: " + s.ToString();
}

void check_batch_op(const rocksdb::Status& s) {
  if (!s.ok()) fail_stop("building a write batch: " + rocks_error(s));
}

// Entries a batch writes as one log value: one request's (ready.h: the
// entries of a Ready arrive, and are written, together).
struct PendingGroup {
  Index first;
  std::span<const Entry> entries;
};

// The log as the requests of one write_group are laid into a batch.
struct Bounds {
  Index snapshot_index;
  Index last_index;
  size_t kept_groups;  // LogState::groups[0, kept_groups) are still stored
  std::vector<PendingGroup> added;
};

std::string encode_group(std::span<const Entry> entries) {
  size_t bytes = 0;
  for (const Entry& e : entries)
    bytes += codec::kEntryRecordOverhead + e.data.size();
  std::string value;
  value.reserve(bytes);  // one allocation, no regrowth copies
  for (const Entry& e : entries)
    codec::append_entry(value, e);
  return value;
}

// LogState: the in-memory index of the durable state, which answers
// first_index(), last_index(), term() and the meta queries without IO.
struct LogState {
  HardState hard_state;
  codec::SnapshotRecord snapshot;
  // Invariant: terms[k] is the term of entry first_index() + k, and the log
  // column family holds exactly the entries [first_index(), last_index()].
  std::deque<Term> terms;
  // The key (first index) of each value in the log column family, in
  // order. Invariant: empty iff terms is; else groups.front() ==
  // first_index(), and each value holds the entries up to the next key
  // (the last, up to last_index()).
  std::deque<Index> groups;

  Index first_index() const { return snapshot.meta.index + 1; }
  Index last_index() const { return snapshot.meta.index + terms.size(); }
  // The key of the value holding entry i, first_index() <= i <= last_index().
  Index group_of(Index i) const { return *(std::upper_bound(groups.begin(), groups.end(), i) - 1); }
  // The last entry of groups[k].
  Index group_end(size_t k) const {
    return k + 1 < groups.size() ? groups[k + 1] - 1 : last_index();
  }
};

// Reads and verifies the snapshot data described by `rec`.
codec::Decoded<std::string> read_snapshot_data(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                               const rocksdb::ReadOptions& ro,
                                               const codec::SnapshotRecord& rec) {
  std::string data;
  data.reserve(rec.data_size);
  uint64_t chunk = 0;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++chunk) {
    std::optional<uint64_t> k = codec::decode_u64_key(it->key().ToStringView());
    if (!k || *k != chunk) {
      return {std::nullopt, fmt::format("chunk {} missing", chunk)};
    }
    data.append(it->value().ToStringView());
    if (data.size() > rec.data_size) break;
  }
  if (!it->status().ok()) return {std::nullopt, rocks_error(it->status())};
  if (data.size() != rec.data_size) {
    return {std::nullopt,
            fmt::format("{}{} bytes stored, but the snapshot meta says {}",
                        data.size() > rec.data_size ? "over " : "", data.size(), rec.data_size)};
  }
  if (codec::crc32c(data) != rec.data_crc) return {std::nullopt, "checksum mismatch"};
  return {std::move(data), {}};
}

}  // namespace

WriteRequest WriteRequest::from_ready(const Ready& rd, Bytes snapshot_image) {
  WriteRequest req;
  if (rd.snapshot) req.snapshot = Snapshot{*rd.snapshot, std::move(snapshot_image)};
  req.entries = rd.entries;
  req.hard_state = rd.hard_state;
  req.sync = rd.must_sync;
  return req;
}

using DbSnapshot = std::shared_ptr<const rocksdb::Snapshot>;

// The newest entries written, kept in memory so that reading them back (the
// core does, for every committed entry once it is durable: apply, and
// appends to followers) needs no RocksDB iterator and no decoding. Entries
// share their payloads (Bytes), so keeping one copies nothing. Invariant:
// the entries are consecutive and equal what the published log holds at
// their indexes.
class RecentEntries {
 public:
  static constexpr size_t kMaxBytes = size_t{8} << 20;

  // After `req` is written; `snapshot_index` is the store's snapshot index
  // after it.
  void written(const WriteRequest& req, Index snapshot_index) {
    if (req.snapshot) clear();
    if (req.entries.empty()) return;
    const Index first = std::max(req.entries.front().index, snapshot_index + 1);
    while (!entries_.empty() && entries_.back().index >= first)
      pop_back();
    if (!entries_.empty() && entries_.back().index + 1 != first) clear();
    for (const Entry& e : req.entries) {
      if (e.index < first) continue;
      bytes_ += e.byte_size();
      entries_.push_back(e);
    }
  }
  // Drops entries below `first_index` and the oldest beyond the budget.
  void trim(Index first_index) {
    while (!entries_.empty() && (entries_.front().index < first_index || bytes_ > kMaxBytes)) {
      bytes_ -= entries_.front().byte_size();
      entries_.pop_front();
    }
  }
  // Entries [lo, hi) up to max_bytes (at least one), as RocksLogStore::
  // entries() returns them; false if they are not all here.
  bool read(Index lo, Index hi, size_t max_bytes, std::vector<Entry>* out) const {
    if (entries_.empty() || lo < entries_.front().index || hi > entries_.back().index + 1) {
      return false;
    }
    size_t bytes = 0;
    for (size_t k = lo - entries_.front().index; k < hi - entries_.front().index; ++k) {
      bytes += entries_[k].byte_size();
      if (!out->empty() && bytes > max_bytes) break;
      out->push_back(entries_[k]);
    }
    return true;
  }
  void clear() {
    entries_.clear();
    bytes_ = 0;
  }

 private:
  void pop_back() {
    bytes_ -= entries_.back().byte_size();
    entries_.pop_back();
  }
  std::deque<Entry> entries_;
  size_t bytes_ = 0;
};

struct RocksLogStore::Impl {
  std::string dir;
  codec::Identity identity;
  rocksdb::DB* db = nullptr;
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> column_families;
  rocksdb::ColumnFamilyHandle* log_cf = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf = nullptr;
  rocksdb::ColumnFamilyHandle* snapshot_cf = nullptr;

  // Serializes writers; held across the RocksDB write. Writers read `state`
  // under write_mu alone (only writers change it) and change it under mu.
  std::mutex write_mu;
  // Guards `state` and `published` for readers.
  mutable std::mutex mu;
  // Invariant: `state` describes exactly what a read through `published`
  // sees in the log, meta and snapshot column families.
  LogState state;
  DbSnapshot published;
  RecentEntries recent;  // guarded by mu, like `state`

  ~Impl() {
    published.reset();
    if (db == nullptr) return;
    for (auto& [name, handle] : column_families)
      db->DestroyColumnFamilyHandle(handle);
    // Everything acknowledged was synced when it was written; a failure
    // here can only lose unsynced writes, which nobody was promised.
    rocksdb::Status s = db->Close();
    if (!s.ok())
      std::fprintf(stderr, "raftkv: closing %s: %s\n", dir.c_str(), s.ToString().c_str());
    delete db;
  }

  DbSnapshot take_db_snapshot() {
    rocksdb::DB* d = db;
    return DbSnapshot(d->GetSnapshot(), [d](const rocksdb::Snapshot* s) { d->ReleaseSnapshot(s); });
  }

  // Adds the snapshot's data and meta to `batch`, replacing the old ones.
  codec::SnapshotRecord put_snapshot(rocksdb::WriteBatch& batch, const SnapshotMeta& meta,
                                     const Bytes& data) {
    codec::SnapshotRecord rec;
    rec.meta = meta;
    rec.data_size = data.size();
    rec.data_crc = codec::crc32c(data.view());
    check_batch_op(batch.DeleteRange(snapshot_cf, codec::encode_u64_key(0),
                                     codec::encode_u64_key(std::numeric_limits<uint64_t>::max())));
    std::string_view rest = data.view();
    for (uint64_t chunk = 0; !rest.empty(); ++chunk) {
      std::string_view piece = rest.substr(0, kSnapshotChunkBytes);
      check_batch_op(batch.Put(snapshot_cf, codec::encode_u64_key(chunk), piece));
      rest.remove_prefix(piece.size());
    }
    check_batch_op(batch.Put(meta_cf, kSnapshotMetaKey, codec::encode_snapshot_record(rec)));
    return rec;
  }

  // Lays one request into `batch`, in the order of the Ready contract
  // (ready.h): snapshot, entries, hard state. Returns the snapshot record
  // when the request installs a snapshot.
  std::optional<codec::SnapshotRecord> add_to_batch(const WriteRequest& req, Bounds& b,
                                                    rocksdb::WriteBatch& batch) {
    std::optional<codec::SnapshotRecord> rec;
    if (req.snapshot) {
      const Snapshot& snap = *req.snapshot;
      RAFTKV_CHECK(snap.meta.index >= b.snapshot_index);
      // The core installs a snapshot only when its log lacks the snapshot's
      // last entry, so the whole log goes (Raft §7); keeping a tail could
      // resurrect entries the core has already overwritten.
      if (b.last_index > b.snapshot_index) {
        check_batch_op(batch.DeleteRange(log_cf, codec::encode_index_key(b.snapshot_index + 1),
                                         codec::encode_index_key(b.last_index + 1)));
      }
      rec = put_snapshot(batch, snap.meta, snap.data);
      b = Bounds{snap.meta.index, snap.meta.index, 0, {}};
    }
    if (!req.entries.empty()) {
      RAFTKV_CHECK(req.entries.front().index.value >= 1);
      RAFTKV_CHECK(req.entries.front().index <= b.last_index + 1);
      size_t skip = 0;
      while (skip < req.entries.size() && req.entries[skip].index <= b.snapshot_index)
        ++skip;
      if (skip < req.entries.size()) {
        Index from = req.entries[skip].index;
        // A conflicting suffix is deleted before the new entries go in
        // (Raft §5.3: "delete the existing entry and all that follow it").
        // Later operations in a batch win over earlier ones, so the Puts
        // below land on top of the range deletion.
        if (from <= b.last_index) {
          cut_groups_before(from, b, batch);
          check_batch_op(batch.DeleteRange(log_cf, codec::encode_index_key(from),
                                           codec::encode_index_key(b.last_index + 1)));
        }
        std::span<const Entry> run(req.entries.begin() + static_cast<std::ptrdiff_t>(skip),
                                   req.entries.end());
        for (size_t k = 0; k < run.size(); ++k)
          RAFTKV_CHECK(run[k].index == from + k);
        // One value for the whole run: a RocksDB key (a memtable insert, and
        // its share of flushes and compactions) per write, not per entry.
        check_batch_op(batch.Put(log_cf, codec::encode_index_key(from), encode_group(run)));
        b.added.push_back(PendingGroup{from, run});
        b.last_index = req.entries.back().index;
      }
    }
    if (req.hard_state) {
      check_batch_op(batch.Put(meta_cf, kHardStateKey, codec::encode_hard_state(*req.hard_state)));
    }
    return rec;
  }

  // Before the entries from `from` on are replaced: drops the groups that
  // start there or later, and rewrites the one that holds `from` with only
  // its entries before `from`. Writers only.
  void cut_groups_before(Index from, Bounds& b, rocksdb::WriteBatch& batch) {
    while (!b.added.empty() && b.added.back().first >= from)
      b.added.pop_back();
    if (!b.added.empty()) {
      PendingGroup& g = b.added.back();
      if (g.first + g.entries.size() > from) {
        g.entries = g.entries.first(from - g.first);
        check_batch_op(
            batch.Put(log_cf, codec::encode_index_key(g.first), encode_group(g.entries)));
      }
      return;
    }
    while (b.kept_groups > 0 && state.groups[b.kept_groups - 1] >= from)
      --b.kept_groups;
    if (b.kept_groups > 0 && state.group_end(b.kept_groups - 1) >= from) {
      put_part_of_group(state.groups[b.kept_groups - 1], state.groups[b.kept_groups - 1], from - 1,
                        batch);
    }
  }

  // Puts the entries [lo, hi] of the stored group that starts at `first`
  // as one value under key lo, copying their records as they are. Writers
  // only: reads the latest write, not the published view.
  void put_part_of_group(Index first, Index lo, Index hi, rocksdb::WriteBatch& batch) {
    std::string value;
    rocksdb::Status s =
        db->Get(rocksdb::ReadOptions(), log_cf, codec::encode_index_key(first), &value);
    if (!s.ok())
      fail_stop(fmt::format("reading log value {} in {}: {}", first, dir, rocks_error(s)));
    std::string part;
    std::string_view rest = value;
    for (Index i = first; i <= hi; ++i) {
      codec::Decoded<std::string_view> record = codec::split_entry_record(&rest);
      if (!record.value) fail_stop(fmt::format("log entry {} in {}: {}", i, dir, record.error));
      if (i >= lo) part.append(*record.value);
    }
    check_batch_op(batch.Put(log_cf, codec::encode_index_key(lo), part));
  }

  // The in-memory twin of add_to_batch; mirrors MemoryStorage.
  static void apply_to_state(const WriteRequest& req,
                             const std::optional<codec::SnapshotRecord>& rec, LogState& s) {
    if (rec) {
      s.snapshot = *rec;
      s.terms.clear();
    }
    if (!req.entries.empty()) {
      size_t skip = 0;
      while (skip < req.entries.size() && req.entries[skip].index <= s.snapshot.meta.index)
        ++skip;
      if (skip < req.entries.size()) {
        s.terms.resize(req.entries[skip].index - s.first_index());
        for (size_t k = skip; k < req.entries.size(); ++k)
          s.terms.push_back(req.entries[k].term);
      }
    }
    if (req.hard_state) s.hard_state = *req.hard_state;
  }

  // Writes `batch`; with `sync`, the WAL is fsynced before this returns.
  void write_batch(rocksdb::WriteBatch& batch, bool sync, const char* what) {
    rocksdb::Status s;
    if (batch.Count() == 0) {
      if (!sync) return;
      s = db->SyncWAL();
    } else {
      rocksdb::WriteOptions wo;
      wo.sync = sync;
      s = db->Write(wo, &batch);
    }
    if (!s.ok()) fail_stop(fmt::format("{} in {}: {}", what, dir, rocks_error(s)));
  }

  // Starts a flush of the log's memtable and of the other column families
  // (the call does not wait). A WAL file goes only once no memtable holds
  // any of its writes; flushing "meta" and "snapshot" too (a few bytes) lets
  // each compaction retire the WAL files before it, one at a time, instead
  // of a burst of them whenever max_total_wal_size forces a flush from
  // inside a write (see open()). A small column family whose previous flush
  // is still pending is skipped: flushing it again would only stack up
  // memtables (RocksDB stops writes at two).
  void start_flush() {
    std::vector<rocksdb::ColumnFamilyHandle*> cfs;
    for (rocksdb::ColumnFamilyHandle* cf : {meta_cf, snapshot_cf}) {
      uint64_t pending = 0;
      if (db->GetIntProperty(cf, rocksdb::DB::Properties::kNumImmutableMemTable, &pending) &&
          pending == 0)
        cfs.push_back(cf);
    }
    // The log last: RocksDB flushes the list in order and stops at the first
    // failure, and a log flush while its previous one is still pending stops
    // writes for a moment, which fails every flush after it with TryAgain.
    // "meta" then kept the WAL files pinned until a later compaction.
    cfs.push_back(log_cf);
    rocksdb::FlushOptions fo;
    fo.wait = false;
    fo.allow_write_stall = true;
    rocksdb::Status s = db->Flush(fo, cfs);
    // TryAgain (writes stopped for a moment) leaves the data in the WAL:
    // nothing is lost, and the next compaction flushes again.
    if (!s.ok() && !s.IsTryAgain())
      fail_stop(fmt::format("flushing the log in {}: {}", dir, rocks_error(s)));
  }

  // Makes the result of the write just done visible to readers.
  template <class Update>
  void publish(Update update) {
    DbSnapshot snap = take_db_snapshot();
    {
      std::lock_guard lock(mu);
      update(state);
      published.swap(snap);
    }
    // The previous RocksDB snapshot is released here, outside `mu`, unless
    // a reader still holds it.
  }
};

RocksLogStore::RocksLogStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RocksLogStore::~RocksLogStore() = default;

OpenResult RocksLogStore::open(const std::string& dir, const RocksLogStoreOptions& options) {
  return RocksLogStoreAccess::open(dir, options, {});
}

OpenResult RocksLogStoreAccess::open(const std::string& dir, const RocksLogStoreOptions& options,
                                     std::vector<rocksdb::ColumnFamilyDescriptor> extra) {
  namespace fs = std::filesystem;
  auto refuse = [&](const std::string& problem) {
    return OpenResult{nullptr, fmt::format("cannot open raft store {}: {}", dir, problem)};
  };

  std::error_code ec;
  bool exists = fs::exists(dir, ec);
  if (ec) return refuse(ec.message());
  if (exists && !fs::is_directory(dir, ec)) return refuse("not a directory");
  bool has_db = exists && fs::exists(fs::path(dir) / "CURRENT", ec);
  if (ec) return refuse(ec.message());
  if (exists && !has_db && !fs::is_empty(dir, ec)) {
    return refuse("the directory is not empty, but holds no RocksDB store");
  }
  if (ec) return refuse(ec.message());
  if (!exists && !fs::create_directories(dir, ec) && ec) return refuse(ec.message());
  const bool fresh = !has_db;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = fresh;
  db_options.create_missing_column_families = true;
  db_options.paranoid_checks = true;
  // WAL recovery: every write that anyone was told about was synced before
  // the telling (see "Durability" on the class). A crash can therefore tear
  // only records written after the last completed sync, and those were
  // never acknowledged, so dropping an incomplete record at the tail is
  // safe. A record that is complete but fails its checksum is different: it
  // may be a synced vote or entry. kTolerateCorruptedTailRecords drops the
  // former and refuses to open on the latter. The default,
  // kPointInTimeRecovery, would silently stop replay at a bad record and
  // discard every synced write after it — a forgotten vote can elect two
  // leaders in one term. kAbsoluteConsistency would refuse every restart
  // after an ordinary crash mid-write. The price of this mode: a crash
  // that leaves non-zero garbage (rather than a short file or zeros) in the
  // tail is also refused, since it cannot be told apart from a damaged
  // synced record; that is the safe side of an ambiguous case, and rare on
  // journaling filesystems. (WAL recycling must stay off: with
  // recycled files this mode reads a bad checksum as the end of the log;
  // RocksDB allows recycling only with kSkipAnyCorruptedRecords, and with
  // it RocksDB 7.8 crashed in a flush within seconds under load.)
  db_options.recycle_log_file_num = 0;
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // As the state store: compaction input in 2 MiB reads, not 4 KiB preads.
  db_options.compaction_readahead_size = size_t{2} << 20;
  // A WAL file goes only once every column family has flushed what it holds
  // of it. "meta" takes a small hard-state write with nearly every batch, so
  // its memtable never fills and held on to every WAL file until RocksDB's
  // default bound (4x the memtable budget, ~2 GiB): disk use and restart
  // replay grew with the write volume. Each compaction now flushes every
  // column family (start_flush()); this bound still holds when nothing
  // compacts: past it RocksDB flushes the column families that pin the
  // oldest file, so the WAL stays near the log's 64 MiB memtable plus this.
  db_options.max_total_wal_size = RocksLogStore::kMaxWalBytes;
  // Obsolete files (WAL files above all, ~30 MB each under load) are
  // deleted in 1 MiB steps at up to kDeleteBytesPerSecond, not at once. On
  // a filesystem mounted with online discard, freeing a whole file makes
  // the journal commit that frees it wait for one large discard, and every
  // fsync on that filesystem (all the nodes' logs) waits behind it: 40-150
  // ms stalls every few seconds under load (docs/PERFORMANCE.md). The
  // rate is far above what a log writes, so the trash ("*.trash", removed
  // again on open) never builds up; its size is therefore not bounded by
  // RocksDB's ratio to the table files, which the log hardly has.
  db_options.sst_file_manager.reset(rocksdb::NewSstFileManager(
      rocksdb::Env::Default(), /*info_log=*/nullptr, /*trash_dir=*/"",
      RocksLogStore::kDeleteBytesPerSecond, /*delete_existing_trash=*/true, /*status=*/nullptr,
      /*max_trash_db_ratio=*/1e9, /*bytes_max_delete_chunk=*/uint64_t{1} << 20));

  std::vector<std::string> existing;
  if (has_db) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, dir, &existing);
    if (!s.ok()) return refuse(rocks_error(s));
  }
  const std::vector<std::string> own = {kLogColumnFamily, kMetaColumnFamily, kSnapshotColumnFamily};
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  auto listed = [&](std::string_view name) {
    for (const auto& d : descriptors) {
      if (d.name == name) return true;
    }
    return false;
  };
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (const std::string& name : own)
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  for (const std::string& name : options.extra_column_families) {
    extra.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  for (auto& d : extra) {
    for (const std::string& name : own) {
      if (d.name == name) return refuse(fmt::format("column family name '{}' is reserved", name));
    }
    if (!listed(d.name)) descriptors.push_back(std::move(d));
  }
  // RocksDB refuses to open unless every existing column family is named.
  for (const std::string& name : existing) {
    if (!listed(name)) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }

  auto impl = std::make_unique<RocksLogStore::Impl>();
  impl->dir = dir;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &handles, &impl->db);
  if (!s.ok()) return refuse(rocks_error(s));
  for (size_t k = 0; k < handles.size(); ++k) {
    impl->column_families[descriptors[k].name] = handles[k];
  }
  impl->log_cf = impl->column_families.at(kLogColumnFamily);
  impl->meta_cf = impl->column_families.at(kMetaColumnFamily);
  impl->snapshot_cf = impl->column_families.at(kSnapshotColumnFamily);
  rocksdb::DB* db = impl->db;

  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  auto cf_empty = [&](rocksdb::ColumnFamilyHandle* cf, bool* empty) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
    it->SeekToFirst();
    *empty = !it->Valid();
    return it->status();
  };
  // Reads a meta record; NotFound is reported as an empty string.
  auto get_meta = [&](const char* key, std::string* value) {
    rocksdb::Status st = db->Get(ro, impl->meta_cf, key, value);
    if (st.IsNotFound()) {
      value->clear();
      return rocksdb::Status::OK();
    }
    return st;
  };

  std::string value;
  s = get_meta(kFormatVersionKey, &value);
  if (!s.ok()) return refuse(rocks_error(s));
  LogState state;
  if (value.empty()) {
    // A new store, or one whose initialization a crash interrupted before
    // the batch below: both have nothing in our column families.
    for (rocksdb::ColumnFamilyHandle* cf : {impl->log_cf, impl->meta_cf, impl->snapshot_cf}) {
      bool empty = false;
      s = cf_empty(cf, &empty);
      if (!s.ok()) return refuse(rocks_error(s));
      if (!empty) return refuse("meta has no format version, but the store is not empty");
    }
    impl->identity = codec::Identity{options.cluster_id, options.node_id};
    state.snapshot.meta.voters = options.initial_voters;
    state.snapshot.data_crc = codec::crc32c({});
    rocksdb::WriteBatch batch;
    check_batch_op(batch.Put(impl->meta_cf, kFormatVersionKey,
                             codec::encode_format_version(RocksLogStore::kFormatVersion)));
    check_batch_op(batch.Put(impl->meta_cf, kIdentityKey, codec::encode_identity(impl->identity)));
    check_batch_op(
        batch.Put(impl->meta_cf, kHardStateKey, codec::encode_hard_state(state.hard_state)));
    check_batch_op(
        batch.Put(impl->meta_cf, kSnapshotMetaKey, codec::encode_snapshot_record(state.snapshot)));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Write(wo, &batch);
    if (!s.ok()) return refuse("initializing: " + rocks_error(s));
  } else {
    codec::Decoded<uint32_t> format = codec::decode_format_version(value);
    if (!format.value) return refuse("meta format_version: " + format.error);
    if (*format.value != RocksLogStore::kFormatVersion &&
        *format.value != RocksLogStore::kOldestFormatVersion) {
      return refuse(fmt::format("unsupported format version {} (this build reads {} and {})",
                                *format.value, RocksLogStore::kOldestFormatVersion,
                                RocksLogStore::kFormatVersion));
    }
    const bool upgrade = *format.value != RocksLogStore::kFormatVersion;
    // A column family that vanished from an initialized store was created
    // empty by this open; the data it held is gone.
    for (const std::string& name : own) {
      if (std::find(existing.begin(), existing.end(), name) == existing.end()) {
        return refuse(fmt::format("column family '{}' is missing", name));
      }
    }

    s = get_meta(kIdentityKey, &value);
    if (!s.ok()) return refuse(rocks_error(s));
    if (value.empty()) return refuse("meta has no identity record");
    codec::Decoded<codec::Identity> id = codec::decode_identity(value);
    if (!id.value) return refuse("meta identity: " + id.error);
    impl->identity = *id.value;
    if (options.cluster_id != 0 && options.cluster_id != id.value->cluster_id) {
      return refuse(
          id.value->cluster_id == 0
              ? fmt::format("data dir records no cluster id, not cluster {}", options.cluster_id)
              : fmt::format("data dir belongs to cluster {}, not cluster {}", id.value->cluster_id,
                            options.cluster_id));
    }
    if (options.node_id != kNoNode && options.node_id != id.value->node_id) {
      return refuse(id.value->node_id == kNoNode
                        ? fmt::format("data dir records no node id, not node {}", options.node_id)
                        : fmt::format("data dir belongs to node {}, not node {}", id.value->node_id,
                                      options.node_id));
    }

    s = get_meta(kHardStateKey, &value);
    if (!s.ok()) return refuse(rocks_error(s));
    if (value.empty()) return refuse("meta has no hard state");
    codec::Decoded<HardState> hs = codec::decode_hard_state(value);
    if (!hs.value) return refuse("meta hard_state: " + hs.error);
    state.hard_state = *hs.value;

    s = get_meta(kSnapshotMetaKey, &value);
    if (!s.ok()) return refuse(rocks_error(s));
    if (value.empty()) return refuse("meta has no snapshot meta");
    codec::Decoded<codec::SnapshotRecord> snap = codec::decode_snapshot_record(value);
    if (!snap.value) return refuse("meta snapshot_meta: " + snap.error);
    state.snapshot = *snap.value;

    // The whole log, once: every checksum, every index against its key, no
    // gaps, terms never decreasing (Log Matching, Raft §5.3, implies a log's
    // terms are non-decreasing).
    const SnapshotMeta& meta = state.snapshot.meta;
    Index expect = meta.index + 1;
    Term prev_term = meta.term;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, impl->log_cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::optional<uint64_t> key = codec::decode_u64_key(it->key().ToStringView());
      if (!key) return refuse(fmt::format("log key of {} bytes is not an index", it->key().size()));
      Index i(*key);
      if (i != expect) {
        if (state.terms.empty() && i <= meta.index) {
          return refuse(
              fmt::format("log entry {} is at or below the snapshot index {}", i, meta.index));
        }
        if (state.terms.empty()) {
          return refuse(fmt::format("log gap: first entry {} does not follow snapshot index {}", i,
                                    meta.index));
        }
        return refuse(fmt::format("log gap: {} follows {}", i, expect - 1));
      }
      std::string_view rest = it->value().ToStringView();
      if (rest.empty()) return refuse(fmt::format("log entry {}: empty value", i));
      state.groups.push_back(i);
      for (; !rest.empty(); ++i) {
        codec::Decoded<Entry> e = codec::decode_next_entry(&rest, i);
        if (!e.value) return refuse(fmt::format("log entry {}: {}", i, e.error));
        if (e.value->term < prev_term) {
          return refuse(fmt::format("log entry {}: term {} is below term {} before it", i,
                                    e.value->term, prev_term));
        }
        prev_term = e.value->term;
        state.terms.push_back(e.value->term);
      }
      expect = i;
    }
    if (!it->status().ok()) return refuse(rocks_error(it->status()));
    it.reset();

    if (state.hard_state.commit > state.last_index()) {
      return refuse(fmt::format("hard state commit {} is beyond the last index {}",
                                state.hard_state.commit, state.last_index()));
    }
    codec::Decoded<std::string> data =
        read_snapshot_data(db, impl->snapshot_cf, ro, state.snapshot);
    if (!data.value) return refuse("snapshot data: " + data.error);
    if (upgrade) {
      // Format 1 (one entry per value) is format 2 with groups of one; the
      // new number makes builds that read only format 1 refuse the store
      // once it holds groups, instead of calling them damaged.
      rocksdb::WriteOptions wo;
      wo.sync = true;
      s = db->Put(wo, impl->meta_cf, kFormatVersionKey,
                  codec::encode_format_version(RocksLogStore::kFormatVersion));
      if (!s.ok()) return refuse("upgrading the format: " + rocks_error(s));
    }
  }

  impl->state = std::move(state);
  impl->published = impl->take_db_snapshot();
  return OpenResult{std::unique_ptr<RocksLogStore>(new RocksLogStore(std::move(impl))), {}};
}

rocksdb::DB* RocksLogStoreAccess::db(RocksLogStore& store) {
  return store.impl_->db;
}

rocksdb::ColumnFamilyHandle* RocksLogStoreAccess::column_family(RocksLogStore& store,
                                                                std::string_view name) {
  auto it = store.impl_->column_families.find(name);
  return it == store.impl_->column_families.end() ? nullptr : it->second;
}

void RocksLogStoreAccess::forget_recent_entries(RocksLogStore& store) {
  std::lock_guard lock(store.impl_->mu);
  store.impl_->recent.clear();
}

HardState RocksLogStore::hard_state() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state.hard_state;
}

SnapshotMeta RocksLogStore::snapshot_meta() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state.snapshot.meta;
}

Index RocksLogStore::first_index() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state.first_index();
}

Index RocksLogStore::last_index() const {
  std::lock_guard lock(impl_->mu);
  return impl_->state.last_index();
}

std::optional<Term> RocksLogStore::term(Index i) const {
  std::lock_guard lock(impl_->mu);
  const LogState& s = impl_->state;
  if (i == s.snapshot.meta.index) return s.snapshot.meta.term;
  if (i < s.snapshot.meta.index || i > s.last_index()) return std::nullopt;
  return s.terms[i - s.first_index()];
}

std::optional<Snapshot> RocksLogStore::snapshot() const {
  codec::SnapshotRecord rec;
  DbSnapshot db_snap;
  {
    std::lock_guard lock(impl_->mu);
    rec = impl_->state.snapshot;
    db_snap = impl_->published;
  }
  rocksdb::ReadOptions ro;
  ro.snapshot = db_snap.get();
  codec::Decoded<std::string> data = read_snapshot_data(impl_->db, impl_->snapshot_cf, ro, rec);
  if (!data.value) {
    fail_stop(fmt::format("reading snapshot {} in {}: {}", rec.meta.index, impl_->dir, data.error));
  }
  return Snapshot{std::move(rec.meta), Bytes(std::move(*data.value))};
}

std::vector<Entry> RocksLogStore::entries(Index lo, Index hi, size_t max_bytes) const {
  std::vector<Entry> out;
  DbSnapshot db_snap;
  Index first;  // the key of the value holding lo
  {
    std::lock_guard lock(impl_->mu);
    const LogState& s = impl_->state;
    RAFTKV_CHECK(s.first_index() <= lo && lo <= hi && hi <= s.last_index() + 1);
    if (lo == hi || impl_->recent.read(lo, hi, max_bytes, &out)) return out;
    first = s.group_of(lo);
    db_snap = impl_->published;
  }
  std::string upper = codec::encode_index_key(hi);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = db_snap.get();
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->log_cf));
  Index i = first;  // the entry the next record holds
  size_t bytes = 0;
  bool limited = false;
  for (it->Seek(codec::encode_index_key(first)); it->Valid() && i < hi && !limited; it->Next()) {
    // Each value starts where the one before ended.
    std::optional<uint64_t> key = codec::decode_u64_key(it->key().ToStringView());
    if (!key || Index(*key) != i) break;
    std::string_view rest = it->value().ToStringView();
    for (; !rest.empty() && i < hi; ++i) {
      if (i < lo) {  // in the first value, before lo: skipped undecoded
        codec::Decoded<std::string_view> skipped = codec::split_entry_record(&rest);
        if (!skipped.value)
          fail_stop(fmt::format("log entry {} in {}: {}", i, impl_->dir, skipped.error));
        continue;
      }
      codec::Decoded<Entry> e = codec::decode_next_entry(&rest, i);
      if (!e.value) fail_stop(fmt::format("log entry {} in {}: {}", i, impl_->dir, e.error));
      bytes += e.value->byte_size();
      if (!out.empty() && bytes > max_bytes) {
        limited = true;
        break;
      }
      out.push_back(std::move(*e.value));
    }
  }
  if (!it->status().ok()) {
    fail_stop(fmt::format("reading log entries from {} in {}: {}", lo, impl_->dir,
                          rocks_error(it->status())));
  }
  if (!limited && i != hi) {
    fail_stop(fmt::format("log entry {} in {} is missing, though the index says [{}, {}) exist", i,
                          impl_->dir, lo, hi));
  }
  return out;
}

void RocksLogStore::write(const WriteRequest& req) {
  const WriteRequest* one = &req;
  write_group(std::span<const WriteRequest* const>(&one, 1));
}

void RocksLogStore::write_group(std::span<const WriteRequest* const> reqs) {
  Impl& m = *impl_;
  std::lock_guard write_lock(m.write_mu);
  Bounds b{m.state.snapshot.meta.index, m.state.last_index(), m.state.groups.size(), {}};
  rocksdb::WriteBatch batch;
  bool sync = false;
  std::vector<std::optional<codec::SnapshotRecord>> records;
  records.reserve(reqs.size());
  for (const WriteRequest* req : reqs) {
    records.push_back(m.add_to_batch(*req, b, batch));
    sync = sync || req->sync;
  }
  // Durability point: with `sync`, the batch is in the fsynced WAL before
  // write_batch returns, and only after that may the caller report it
  // persisted (Raft Figure 2; Thesis §3.8).
  m.write_batch(batch, sync, "write");
  m.publish([&](LogState& s) {
    for (size_t k = 0; k < reqs.size(); ++k) {
      Impl::apply_to_state(*reqs[k], records[k], s);
      m.recent.written(*reqs[k], s.snapshot.meta.index);
    }
    m.recent.trim(s.first_index());
    s.groups.resize(b.kept_groups);
    for (const PendingGroup& g : b.added)
      s.groups.push_back(g.first);
    RAFTKV_CHECK(s.first_index() == b.snapshot_index + 1 && s.last_index() == b.last_index);
    RAFTKV_CHECK(s.groups.empty() == s.terms.empty() &&
                 (s.groups.empty() || s.groups.front() == s.first_index()));
  });
}

StoreStatus RocksLogStore::compact(Index index, Bytes data, Term term, std::vector<NodeId> voters) {
  Impl& m = *impl_;
  std::lock_guard write_lock(m.write_mu);
  const LogState& s = m.state;
  if (index <= s.snapshot.meta.index) {
    return {fmt::format("cannot compact to {}: the log is already compacted to {}", index,
                        s.snapshot.meta.index)};
  }
  if (index > s.last_index()) {
    return {fmt::format("cannot compact to {}: beyond the last index {}", index, s.last_index())};
  }
  Term stored = s.terms[index - s.first_index()];
  if (stored != term) {
    return {fmt::format("cannot compact to {} at term {}: entry {} has term {}", index, term, index,
                        stored)};
  }
  // Snapshot and prefix deletion in one batch: a crash leaves either the old
  // snapshot with the whole log or the new snapshot with the suffix, never a
  // log with a hole in front of it.
  rocksdb::WriteBatch batch;
  check_batch_op(batch.DeleteRange(m.log_cf, codec::encode_index_key(s.first_index()),
                                   codec::encode_index_key(index + 1)));
  // The groups that start at or below `index` go; the last of them may
  // also hold entries after it, which move to a value of their own.
  const size_t dropped = static_cast<size_t>(
      std::upper_bound(s.groups.begin(), s.groups.end(), index) - s.groups.begin());
  const bool split = s.group_end(dropped - 1) > index;
  if (split) m.put_part_of_group(s.groups[dropped - 1], index + 1, s.group_end(dropped - 1), batch);
  SnapshotMeta meta{index, term, std::move(voters)};
  codec::SnapshotRecord rec = m.put_snapshot(batch, meta, data);
  m.write_batch(batch, /*sync=*/true, "compact");
  m.publish([&](LogState& st) {
    size_t drop = index - st.snapshot.meta.index;
    st.terms.erase(st.terms.begin(), st.terms.begin() + static_cast<std::ptrdiff_t>(drop));
    st.groups.erase(st.groups.begin(), st.groups.begin() + static_cast<std::ptrdiff_t>(dropped));
    if (split) st.groups.push_front(index + 1);
    st.snapshot = std::move(rec);
    m.recent.trim(st.first_index());
  });
  // The memtable now holds mostly entries the snapshot covers, and a flush
  // drops what a range deletion covers, so flushing now writes only the
  // entries after `index`. Left to fill its 64 MiB, the memtable spanned two
  // compactions: its flush wrote the newer one's entries to a table file
  // that compaction rewrote and a later compaction deleted, and the memtable
  // grew to twice the memory (every page of which the kernel must fault in).
  m.start_flush();
  return {};
}

uint64_t RocksLogStore::cluster_id() const {
  return impl_->identity.cluster_id;
}
NodeId RocksLogStore::node_id() const {
  return impl_->identity.node_id;
}
const std::string& RocksLogStore::dir() const {
  return impl_->dir;
}

}  // namespace raftkv::raft
