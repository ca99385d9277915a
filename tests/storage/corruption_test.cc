// Damaged data directories: every kind of damage is either refused at open
// with a message naming the problem, or (where the damage hit bytes nobody
// reads) the store opens with exactly the data that was written. Never
// silently wrong data.
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "raft/node/rocks_log_store.h"
#include "raft/node/rocks_log_store_internal.h"
#include "raft/node/storage_codec.h"
#include "tests/storage/storage_test_util.h"

namespace raftkv::raft {
namespace {

namespace fs = std::filesystem;
using testing::make_entry;
using testing::must_open;
using testing::TempDir;

// Incompressible data, so the log's SST data blocks hold most of the file.
std::string noise(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

Entry noisy_entry(uint64_t i) {
  return make_entry(i, 1 + i / 100, noise(i, 100));
}

HardState hard_state_after(uint64_t i) {
  return HardState{Term(1 + i / 100), NodeId(1), Index(i - 1)};
}

// The store must hold exactly entries 1..n from noisy_entry and the hard
// state written with entry n.
void expect_intact(RocksLogStore& store, uint64_t n) {
  EXPECT_EQ(store.first_index(), Index(1));
  ASSERT_EQ(store.last_index(), Index(n));
  std::vector<Entry> got = store.entries(Index(1), Index(n + 1), SIZE_MAX);
  ASSERT_EQ(got.size(), n);
  for (uint64_t i = 1; i <= n; ++i) {
    EXPECT_EQ(got[i - 1], noisy_entry(i)) << "entry " << i;
    EXPECT_EQ(store.term(Index(i)), noisy_entry(i).term);
  }
  if (n > 0) {
    EXPECT_EQ(store.hard_state(), hard_state_after(n));
  }
}

// Writes entries 1..n, one write each (entry plus hard state), synced unless
// `sync` is false. Records the WAL's size after each write in `wal_sizes`.
void write_noisy_log(RocksLogStore& store, uint64_t n, std::vector<uint64_t>* wal_sizes = nullptr,
                     bool sync = true) {
  for (uint64_t i = 1; i <= n; ++i) {
    WriteRequest req;
    req.entries = {noisy_entry(i)};
    req.hard_state = hard_state_after(i);
    req.sync = sync;
    store.write(req);
    if (wal_sizes != nullptr) {
      std::vector<fs::path> wals = testing::files_with_extension(store.dir(), ".log");
      ASSERT_EQ(wals.size(), 1u);
      wal_sizes->push_back(fs::file_size(wals.back()));
    }
  }
}

fs::path largest(const std::vector<fs::path>& files) {
  fs::path best;
  for (const fs::path& f : files) {
    if (best.empty() || fs::file_size(f) > fs::file_size(best)) best = f;
  }
  return best;
}

std::string copy_store(const fs::path& from, const fs::path& to) {
  fs::copy(from, to, fs::copy_options::recursive);
  return to.string();
}

bool mentions_corruption(const std::string& error) {
  return error.find("Corruption") != std::string::npos ||
         error.find("checksum") != std::string::npos;
}

TEST(CorruptionTest, FlippedSstBytesAreNeverSilent) {
  TempDir tmp;
  fs::path pristine = tmp.sub("pristine");
  constexpr uint64_t kEntries = 2000;
  {
    auto store = must_open(pristine.string());
    ASSERT_TRUE(store);
    write_noisy_log(*store, kEntries, nullptr, /*sync=*/false);
    rocksdb::DB* db = RocksLogStoreAccess::db(*store);
    for (const char* cf : {kLogColumnFamily, kMetaColumnFamily, kSnapshotColumnFamily}) {
      ASSERT_TRUE(
          db->Flush(rocksdb::FlushOptions(), RocksLogStoreAccess::column_family(*store, cf)).ok());
    }
  }
  fs::path sst = largest(testing::files_with_extension(pristine, ".sst"));
  ASSERT_FALSE(sst.empty());
  uint64_t size = fs::file_size(sst);
  ASSERT_GT(size, 100'000u);

  std::vector<uint64_t> offsets = {0, size - 1, size - 30};
  for (uint64_t k = 0; k < 10; ++k)
    offsets.push_back(size * (2 * k + 1) / 20);
  int refused = 0;
  for (size_t c = 0; c < offsets.size(); ++c) {
    fs::path copy = copy_store(pristine, tmp.sub(fmt::format("case{}", c)));
    testing::flip_byte(copy / sst.filename(), offsets[c]);
    OpenResult r = RocksLogStore::open(copy.string(), {});
    if (!r.ok()) {
      ++refused;
      EXPECT_TRUE(mentions_corruption(r.error)) << r.error;
      std::printf("  sst byte %lu/%lu flipped: refused: %s\n",
                  static_cast<unsigned long>(offsets[c]), static_cast<unsigned long>(size),
                  r.error.c_str());
    } else {
      std::printf("  sst byte %lu/%lu flipped: opened, data verified intact\n",
                  static_cast<unsigned long>(offsets[c]), static_cast<unsigned long>(size));
      expect_intact(*r.store, kEntries);
    }
  }
  // Flips inside the data blocks (the bulk of this file) must be caught.
  EXPECT_GE(refused, 10);
}

TEST(CorruptionTest, FlippedWalBytesRefuseToOpen) {
  TempDir tmp;
  fs::path pristine = tmp.sub("pristine");
  constexpr uint64_t kEntries = 50;
  {
    auto store = must_open(pristine.string());
    ASSERT_TRUE(store);
    write_noisy_log(*store, kEntries);
  }
  fs::path wal = largest(testing::files_with_extension(pristine, ".log"));
  ASSERT_FALSE(wal.empty());
  uint64_t size = fs::file_size(wal);
  int refused = 0;
  for (uint64_t k = 1; k < 10; ++k) {
    uint64_t offset = size * k / 10;
    fs::path copy = copy_store(pristine, tmp.sub(fmt::format("case{}", k)));
    testing::flip_byte(copy / wal.filename(), offset);
    OpenResult r = RocksLogStore::open(copy.string(), {});
    if (!r.ok()) {
      ++refused;
      EXPECT_TRUE(mentions_corruption(r.error)) << r.error;
      std::printf("  wal byte %lu/%lu flipped: refused: %s\n", static_cast<unsigned long>(offset),
                  static_cast<unsigned long>(size), r.error.c_str());
    } else {
      // Only a flip in a block trailer (padding nobody reads) may pass.
      std::printf("  wal byte %lu/%lu flipped: opened, data verified intact\n",
                  static_cast<unsigned long>(offset), static_cast<unsigned long>(size));
      expect_intact(*r.store, kEntries);
    }
  }
  EXPECT_GE(refused, 8);
}

// A crash in the middle of a write leaves a torn record at the WAL's end.
// Every acknowledged write was synced before it was acknowledged, so a torn
// record can only hold a write nobody was told about: the store must open,
// drop it, and keep every write that completed before it.
TEST(CorruptionTest, TornWalTailLosesOnlyTheUnfinishedWrite) {
  TempDir tmp;
  fs::path pristine = tmp.sub("pristine");
  constexpr uint64_t kEntries = 50;
  std::vector<uint64_t> sizes;  // sizes[i - 1]: WAL size once write i was synced
  {
    auto store = must_open(pristine.string());
    ASSERT_TRUE(store);
    write_noisy_log(*store, kEntries, &sizes);
  }
  fs::path wal = largest(testing::files_with_extension(pristine, ".log"));
  ASSERT_EQ(fs::file_size(wal), sizes.back());

  std::vector<uint64_t> cuts = {sizes[49] - 1, sizes[49] - 5, (sizes[48] + sizes[49]) / 2,
                                sizes[48] + 3, sizes[48] + 7, sizes[30] + 1,
                                sizes[25],     sizes[10] + 20};
  for (size_t c = 0; c < cuts.size(); ++c) {
    fs::path copy = copy_store(pristine, tmp.sub(fmt::format("case{}", c)));
    fs::resize_file(copy / wal.filename(), cuts[c]);
    uint64_t survivors = 0;
    while (survivors < sizes.size() && sizes[survivors] <= cuts[c])
      ++survivors;
    SCOPED_TRACE(fmt::format("WAL cut to {} bytes: writes 1..{} complete", cuts[c], survivors));
    OpenResult r = RocksLogStore::open(copy.string(), {});
    ASSERT_TRUE(r.ok()) << r.error;
    expect_intact(*r.store, survivors);

    // The store keeps working after the recovery, and survives another one.
    WriteRequest req;
    req.entries = {noisy_entry(survivors + 1)};
    req.hard_state = hard_state_after(survivors + 1);
    r.store->write(req);
    r.store.reset();
    auto again = must_open(copy.string());
    ASSERT_TRUE(again);
    expect_intact(*again, survivors + 1);
  }
}

// Damage made through RocksDB itself, which RocksDB's checksums cannot see:
// only our own record checksums and the startup scan can.
class LogDamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = must_open(tmp_.sub("db"));
    ASSERT_TRUE(store_);
    // Unsynced is enough: the store is closed cleanly before each check.
    write_noisy_log(*store_, 50, nullptr, /*sync=*/false);
    db_ = RocksLogStoreAccess::db(*store_);
    log_cf_ = RocksLogStoreAccess::column_family(*store_, kLogColumnFamily);
    meta_cf_ = RocksLogStoreAccess::column_family(*store_, kMetaColumnFamily);
  }

  void put(rocksdb::ColumnFamilyHandle* cf, const std::string& key, const std::string& value) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(db_->Put(wo, cf, key, value).ok());
  }
  std::string get(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
    std::string value;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), cf, key, &value).ok());
    return value;
  }

  // Writes entries 51..60 in one write (one shared value) and returns the
  // value and the offset of entry `at`'s record in it.
  std::pair<std::string, size_t> write_shared_value(uint64_t at) {
    WriteRequest req;
    for (uint64_t i = 51; i <= 60; ++i)
      req.entries.push_back(noisy_entry(i));
    store_->write(req);
    std::string value = get(log_cf_, codec::encode_index_key(Index(51)));
    std::string_view rest = value;
    size_t offset = 0;
    for (uint64_t i = 51; i < at; ++i)
      offset += codec::split_entry_record(&rest).value->size();
    return {value, offset};
  }

  // Closes the damaged store and expects open to refuse, naming `problem`.
  void expect_refused(const std::string& problem) {
    std::string dir = store_->dir();
    store_.reset();
    OpenResult r = RocksLogStore::open(dir, {});
    ASSERT_FALSE(r.ok()) << "opened a damaged store; expected: " << problem;
    EXPECT_NE(r.error.find(problem), std::string::npos) << r.error;
    std::printf("  refused: %s\n", r.error.c_str());
  }

  TempDir tmp_;
  std::unique_ptr<RocksLogStore> store_;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* log_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
};

TEST_F(LogDamageTest, BadEntryChecksumRefusesToOpen) {
  std::string key = codec::encode_index_key(Index(42));
  std::string value = get(log_cf_, key);
  value[value.size() / 2] ^= 0x01;
  put(log_cf_, key, value);
  expect_refused("log entry 42: checksum mismatch");
}

TEST_F(LogDamageTest, EntryUnderTheWrongKeyRefusesToOpen) {
  put(log_cf_, codec::encode_index_key(Index(42)), codec::encode_entry(noisy_entry(43)));
  expect_refused("log entry 42: stored index 43 does not match its key");
}

TEST_F(LogDamageTest, IndexGapRefusesToOpen) {
  ASSERT_TRUE(
      db_->Delete(rocksdb::WriteOptions(), log_cf_, codec::encode_index_key(Index(16))).ok());
  expect_refused("log gap: 17 follows 15");
}

TEST_F(LogDamageTest, DecreasingTermRefusesToOpen) {
  Entry e = noisy_entry(30);
  e.term = Term(0);
  put(log_cf_, codec::encode_index_key(Index(30)), codec::encode_entry(e));
  expect_refused("log entry 30: term 0 is below term 1 before it");
}

// Entries written together share one value; damage to any of them, or a
// value cut short, is found, and named by the entry's index.
TEST_F(LogDamageTest, DamageInsideAValueOfSeveralEntriesRefusesToOpen) {
  auto [value, offset] = write_shared_value(55);
  value[offset + 30] ^= 0x04;  // inside entry 55's record
  put(log_cf_, codec::encode_index_key(Index(51)), value);
  expect_refused("log entry 55: checksum mismatch");
}

TEST_F(LogDamageTest, ValueCutShortRefusesToOpen) {
  auto [value, offset] = write_shared_value(54);
  // Inside entry 54's record.
  put(log_cf_, codec::encode_index_key(Index(51)), value.substr(0, offset + 20));
  expect_refused("log entry 54: record truncated");
}

TEST_F(LogDamageTest, CommitBeyondTheLogRefusesToOpen) {
  put(meta_cf_, "hard_state", codec::encode_hard_state(HardState{Term(1), NodeId(1), Index(99)}));
  expect_refused("hard state commit 99 is beyond the last index 50");
}

TEST_F(LogDamageTest, BadHardStateChecksumRefusesToOpen) {
  std::string value = get(meta_cf_, "hard_state");
  value[2] ^= 0x10;
  put(meta_cf_, "hard_state", value);
  expect_refused("meta hard_state: checksum mismatch");
}

TEST_F(LogDamageTest, UnknownFormatVersionRefusesToOpen) {
  put(meta_cf_, "format_version", codec::encode_format_version(7));
  expect_refused("unsupported format version 7 (this build reads 1 and 2)");
}

TEST_F(LogDamageTest, EntryBelowTheSnapshotRefusesToOpen) {
  ASSERT_TRUE(store_->compact(Index(10), Bytes(std::string("img")), Term(1), {}).ok());
  put(log_cf_, codec::encode_index_key(Index(5)), codec::encode_entry(noisy_entry(5)));
  expect_refused("log entry 5 is at or below the snapshot index 10");
}

TEST_F(LogDamageTest, GapAfterTheSnapshotRefusesToOpen) {
  ASSERT_TRUE(store_->compact(Index(10), Bytes(std::string("img")), Term(1), {}).ok());
  ASSERT_TRUE(
      db_->Delete(rocksdb::WriteOptions(), log_cf_, codec::encode_index_key(Index(11))).ok());
  expect_refused("log gap: first entry 12 does not follow snapshot index 10");
}

TEST_F(LogDamageTest, DamagedSnapshotDataRefusesToOpen) {
  ASSERT_TRUE(store_->compact(Index(10), Bytes(std::string("image")), Term(1), {}).ok());
  put(RocksLogStoreAccess::column_family(*store_, kSnapshotColumnFamily), codec::encode_u64_key(0),
      "imagf");
  expect_refused("snapshot data: checksum mismatch");
}

// After open, LogReader has no error path: a read that finds bad bytes
// stops the process rather than hand the core wrong data.
TEST(CorruptionDeathTest, DamagedEntryReadAfterOpenStopsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The death-test child re-runs this test body; it inherits the directory
  // through the environment, so only the parent creates (and removes) it.
  constexpr char kEnv[] = "RAFTKV_STORAGE_DEATH_DIR";
  std::optional<TempDir> owned;
  std::string dir;
  if (const char* inherited = std::getenv(kEnv)) {
    dir = inherited;
  } else {
    owned.emplace();
    dir = owned->sub("db");
    ::setenv(kEnv, dir.c_str(), 1);
  }
  auto damage_then_read = [&] {
    // Written by an earlier process: what this one reads comes from the
    // disk, not from the store's memory of entries it wrote itself.
    write_noisy_log(*must_open(dir), 5);
    auto store = must_open(dir);
    std::string key = codec::encode_index_key(Index(3));
    rocksdb::DB* db = RocksLogStoreAccess::db(*store);
    auto* cf = RocksLogStoreAccess::column_family(*store, kLogColumnFamily);
    std::string value;
    if (!db->Get(rocksdb::ReadOptions(), cf, key, &value).ok()) return;
    value.back() ^= 0x01;
    if (!db->Put(rocksdb::WriteOptions(), cf, key, value).ok()) return;
    // Readers see the store's state as of its last write; one more write
    // makes the damage visible.
    WriteRequest next;
    next.entries = {noisy_entry(6)};
    store->write(next);
    store->entries(Index(1), Index(7), SIZE_MAX);
  };
  EXPECT_DEATH(damage_then_read(), "log entry 3 in .*: checksum mismatch");
  ::unsetenv(kEnv);
}

}  // namespace
}  // namespace raftkv::raft
