// RocksLogStore behaviour: the LogReader answers after each kind of write,
// compaction, identity and recovery across a reopen.
#include "raft/node/rocks_log_store.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "raft/node/rocks_log_store_internal.h"
#include "raft/node/storage_codec.h"
#include "tests/storage/storage_test_util.h"

namespace raftkv::raft {
namespace {

using testing::make_entries;
using testing::make_entry;
using testing::must_open;
using testing::TempDir;

const std::vector<NodeId> kVoters = {NodeId(1), NodeId(2), NodeId(3)};

RocksLogStoreOptions voters_options() {
  RocksLogStoreOptions o;
  o.initial_voters = kVoters;
  return o;
}

TEST(RocksLogStoreTest, NewStoreIsEmptyWithInitialVoters) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"), voters_options());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->first_index(), Index(1));
  EXPECT_EQ(store->last_index(), Index(0));
  EXPECT_EQ(store->term(Index(0)), Term(0));
  EXPECT_EQ(store->term(Index(1)), std::nullopt);
  EXPECT_EQ(store->hard_state(), HardState{});
  EXPECT_EQ(store->snapshot_meta().voters, kVoters);
  EXPECT_TRUE(store->snapshot()->data.empty());
  EXPECT_TRUE(store->entries(Index(1), Index(1), 100).empty());
}

TEST(RocksLogStoreTest, AppendedEntriesReadBackWithTerms) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  std::vector<Entry> written = make_entries(1, 5, 1);
  std::vector<Entry> more = make_entries(6, 10, 2);
  more[2].type = EntryType::kNoop;
  store->write(testing::append_request(written));
  store->write(testing::append_request(more));
  written.insert(written.end(), more.begin(), more.end());

  EXPECT_EQ(store->first_index(), Index(1));
  EXPECT_EQ(store->last_index(), Index(10));
  for (uint64_t i = 1; i <= 10; ++i)
    EXPECT_EQ(store->term(Index(i)), Term(i <= 5 ? 1 : 2));
  EXPECT_EQ(store->term(Index(11)), std::nullopt);
  EXPECT_EQ(store->entries(Index(1), Index(11), SIZE_MAX), written);
  EXPECT_EQ(store->entries(Index(4), Index(7), SIZE_MAX),
            std::vector<Entry>(written.begin() + 3, written.begin() + 6));
}

TEST(RocksLogStoreTest, EntriesStopOnceMaxBytesIsExceededButReturnAtLeastOne) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  store->write(testing::append_request(make_entries(1, 10, 1)));
  size_t one = store->entries(Index(1), Index(2), SIZE_MAX)[0].byte_size();
  EXPECT_EQ(store->entries(Index(1), Index(11), 0).size(), 1u);
  EXPECT_EQ(store->entries(Index(1), Index(11), one).size(), 1u);
  EXPECT_EQ(store->entries(Index(1), Index(11), 3 * one).size(), 3u);
  EXPECT_EQ(store->entries(Index(1), Index(11), 3 * one + 1).size(), 3u);
  EXPECT_EQ(store->entries(Index(3), Index(5), 100 * one).size(), 2u);
}

TEST(RocksLogStoreTest, ConflictingSuffixIsReplaced) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  store->write(testing::append_request(make_entries(1, 10, 1)));
  store->write(testing::append_request(make_entries(6, 8, 2)));

  EXPECT_EQ(store->last_index(), Index(8));
  for (uint64_t i = 1; i <= 8; ++i)
    EXPECT_EQ(store->term(Index(i)), Term(i <= 5 ? 1 : 2));
  EXPECT_EQ(store->term(Index(9)), std::nullopt);
  std::vector<Entry> want = make_entries(1, 5, 1);
  for (const Entry& e : make_entries(6, 8, 2))
    want.push_back(e);
  EXPECT_EQ(store->entries(Index(1), Index(9), SIZE_MAX), want);

  // Entries 9 and 10 of term 1 must not come back after a restart either.
  std::string dir = store->dir();
  store.reset();
  store = must_open(dir);
  EXPECT_EQ(store->last_index(), Index(8));
  EXPECT_EQ(store->entries(Index(1), Index(9), SIZE_MAX), want);
}

TEST(RocksLogStoreTest, SnapshotInstallDropsTheWholeLog) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  store->write(testing::append_request(make_entries(1, 10, 1)));
  WriteRequest req;
  req.snapshot = Snapshot{SnapshotMeta{Index(20), Term(3), {NodeId(4), NodeId(5)}},
                          Bytes(std::string("state machine image"))};
  req.entries = make_entries(21, 22, 3);
  req.hard_state = HardState{Term(3), NodeId(4), Index(20)};
  store->write(req);

  EXPECT_EQ(store->first_index(), Index(21));
  EXPECT_EQ(store->last_index(), Index(22));
  EXPECT_EQ(store->term(Index(20)), Term(3));
  EXPECT_EQ(store->term(Index(10)), std::nullopt);
  EXPECT_EQ(store->snapshot_meta(), req.snapshot->meta);
  EXPECT_EQ(store->snapshot()->data, req.snapshot->data);
  EXPECT_EQ(store->entries(Index(21), Index(23), SIZE_MAX), req.entries);
  EXPECT_EQ(store->hard_state(), *req.hard_state);

  // A snapshot below the log's end still drops the log (Raft §7).
  WriteRequest again;
  again.snapshot = Snapshot{SnapshotMeta{Index(21), Term(3), {NodeId(4)}}, Bytes(std::string("x"))};
  store->write(again);
  EXPECT_EQ(store->first_index(), Index(22));
  EXPECT_EQ(store->last_index(), Index(21));
}

TEST(RocksLogStoreTest, LargeSnapshotIsChunkedAndSurvivesRestart) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  std::string image(RocksLogStore::kSnapshotChunkBytes * 2 + 12345, '\0');
  for (size_t k = 0; k < image.size(); ++k)
    image[k] = static_cast<char>(k * 7 + k / 1000);
  WriteRequest req;
  req.snapshot = Snapshot{SnapshotMeta{Index(5), Term(2), kVoters}, Bytes(image)};
  store->write(req);
  EXPECT_EQ(store->snapshot()->data.view(), image);

  // A smaller snapshot afterwards leaves no stale chunks behind.
  WriteRequest small;
  small.snapshot = Snapshot{SnapshotMeta{Index(6), Term(2), kVoters}, Bytes(std::string("tiny"))};
  store->write(small);
  std::string dir = store->dir();
  store.reset();
  store = must_open(dir);
  EXPECT_EQ(store->snapshot()->data.view(), "tiny");
  EXPECT_EQ(store->snapshot_meta(), small.snapshot->meta);
}

TEST(RocksLogStoreTest, CompactDeletesThePrefixAndMovesFirstIndex) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"), voters_options());
  store->write(testing::append_request(make_entries(1, 10, 1)));
  store->write(testing::append_request(make_entries(11, 12, 2)));
  ASSERT_TRUE(store->compact(Index(7), Bytes(std::string("image@7")), Term(1), kVoters).ok());

  EXPECT_EQ(store->first_index(), Index(8));
  EXPECT_EQ(store->last_index(), Index(12));
  EXPECT_EQ(store->term(Index(7)), Term(1));
  EXPECT_EQ(store->term(Index(6)), std::nullopt);
  EXPECT_EQ(store->snapshot_meta(), (SnapshotMeta{Index(7), Term(1), kVoters}));
  EXPECT_EQ(store->snapshot()->data.view(), "image@7");
  EXPECT_EQ(store->entries(Index(8), Index(13), SIZE_MAX).size(), 5u);

  // The prefix is gone from RocksDB too, not just from the index.
  rocksdb::DB* db = RocksLogStoreAccess::db(*store);
  auto* log_cf = RocksLogStoreAccess::column_family(*store, kLogColumnFamily);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), log_cf));
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(codec::decode_u64_key(it->key().ToStringView()), 8u);
  it.reset();

  std::string dir = store->dir();
  store.reset();
  store = must_open(dir);
  EXPECT_EQ(store->first_index(), Index(8));
  EXPECT_EQ(store->snapshot()->data.view(), "image@7");
}

TEST(RocksLogStoreTest, CompactRefusesWhatItCannotDo) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  store->write(testing::append_request(make_entries(1, 10, 1)));
  StoreStatus beyond = store->compact(Index(11), Bytes(), Term(1), kVoters);
  EXPECT_NE(beyond.error.find("beyond the last index 10"), std::string::npos) << beyond.error;
  StoreStatus wrong_term = store->compact(Index(5), Bytes(), Term(2), kVoters);
  EXPECT_NE(wrong_term.error.find("entry 5 has term 1"), std::string::npos) << wrong_term.error;
  ASSERT_TRUE(store->compact(Index(5), Bytes(), Term(1), kVoters).ok());
  StoreStatus again = store->compact(Index(5), Bytes(), Term(1), kVoters);
  EXPECT_NE(again.error.find("already compacted to 5"), std::string::npos) << again.error;
  EXPECT_EQ(store->first_index(), Index(6));
  EXPECT_EQ(store->last_index(), Index(10));
}

TEST(RocksLogStoreTest, HardStateRoundTrips) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  WriteRequest req;
  req.entries = make_entries(1, 3, 4);
  req.hard_state = HardState{Term(4), NodeId(2), Index(3)};
  store->write(req);
  EXPECT_EQ(store->hard_state(), *req.hard_state);
  WriteRequest vote_only;
  vote_only.hard_state = HardState{Term(5), NodeId(3), Index(3)};
  store->write(vote_only);
  EXPECT_EQ(store->hard_state(), *vote_only.hard_state);
  std::string dir = store->dir();
  store.reset();
  store = must_open(dir);
  EXPECT_EQ(store->hard_state(), *vote_only.hard_state);
}

TEST(RocksLogStoreTest, ReopenRecoversEverything) {
  TempDir tmp;
  std::string dir = tmp.sub("db");
  RocksLogStoreOptions options = voters_options();
  options.cluster_id = 77;
  options.node_id = NodeId(2);
  auto store = must_open(dir, options);
  store->write(testing::append_request(make_entries(1, 30, 1)));
  ASSERT_TRUE(store->compact(Index(10), Bytes(std::string("img")), Term(1), kVoters).ok());
  WriteRequest req;
  req.entries = make_entries(25, 40, 2);
  req.hard_state = HardState{Term(2), NodeId(2), Index(28)};
  store->write(req);
  std::vector<Entry> all = store->entries(store->first_index(), store->last_index() + 1, SIZE_MAX);
  SnapshotMeta meta = store->snapshot_meta();
  store.reset();

  store = must_open(dir, options);
  EXPECT_EQ(store->cluster_id(), 77u);
  EXPECT_EQ(store->node_id(), NodeId(2));
  EXPECT_EQ(store->first_index(), Index(11));
  EXPECT_EQ(store->last_index(), Index(40));
  EXPECT_EQ(store->snapshot_meta(), meta);
  EXPECT_EQ(store->snapshot()->data.view(), "img");
  EXPECT_EQ(store->hard_state(), *req.hard_state);
  EXPECT_EQ(store->entries(Index(11), Index(41), SIZE_MAX), all);
  for (uint64_t i = 10; i <= 40; ++i)
    EXPECT_EQ(store->term(Index(i)), Term(i < 25 ? 1 : 2));
}

TEST(RocksLogStoreTest, AnotherNodesDataDirIsRefused) {
  TempDir tmp;
  std::string dir = tmp.sub("db");
  RocksLogStoreOptions options;
  options.cluster_id = 5;
  options.node_id = NodeId(2);
  must_open(dir, options).reset();

  options.node_id = NodeId(3);
  OpenResult r = RocksLogStore::open(dir, options);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("data dir belongs to node 2, not node 3"), std::string::npos) << r.error;

  options.node_id = NodeId(2);
  options.cluster_id = 6;
  r = RocksLogStore::open(dir, options);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("belongs to cluster 5, not cluster 6"), std::string::npos) << r.error;

  // Not asking is not a mismatch.
  auto store = must_open(dir, RocksLogStoreOptions{});
  ASSERT_TRUE(store);
  EXPECT_EQ(store->node_id(), NodeId(2));
}

TEST(RocksLogStoreTest, NonEmptyDirectoryWithoutAStoreIsRefused) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.sub("db"));
  std::ofstream(tmp.sub("db/stray.txt")) << "not a database";
  OpenResult r = RocksLogStore::open(tmp.sub("db"), {});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("not empty"), std::string::npos) << r.error;
}

TEST(RocksLogStoreTest, EmptyExistingDirectoryBecomesANewStore) {
  TempDir tmp;
  auto store = must_open(tmp.path().string());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->last_index(), Index(0));
}

TEST(RocksLogStoreTest, ApplicationColumnFamiliesAreOpenedAndKept) {
  TempDir tmp;
  std::string dir = tmp.sub("db");
  RocksLogStoreOptions options;
  options.extra_column_families = {"kv", "sessions"};
  auto store = must_open(dir, options);
  rocksdb::DB* db = RocksLogStoreAccess::db(*store);
  rocksdb::ColumnFamilyHandle* kv = RocksLogStoreAccess::column_family(*store, "kv");
  ASSERT_NE(kv, nullptr);
  ASSERT_NE(RocksLogStoreAccess::column_family(*store, "sessions"), nullptr);
  EXPECT_EQ(RocksLogStoreAccess::column_family(*store, "nope"), nullptr);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), kv, "k", "v").ok());
  store.reset();

  // Reopened without naming them: existing column families still open.
  store = must_open(dir);
  kv = RocksLogStoreAccess::column_family(*store, "kv");
  ASSERT_NE(kv, nullptr);
  std::string value;
  ASSERT_TRUE(RocksLogStoreAccess::db(*store)->Get(rocksdb::ReadOptions(), kv, "k", &value).ok());
  EXPECT_EQ(value, "v");

  RocksLogStoreOptions reserved;
  reserved.extra_column_families = {"log"};
  store.reset();
  OpenResult r = RocksLogStore::open(dir, reserved);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error.find("reserved"), std::string::npos) << r.error;
}

TEST(RocksLogStoreTest, WriteGroupEqualsWritingOneByOne) {
  TempDir tmp;
  auto grouped = must_open(tmp.sub("a"));
  auto single = must_open(tmp.sub("b"));
  std::vector<WriteRequest> reqs(4);
  reqs[0].entries = make_entries(1, 10, 1);
  reqs[1].entries = make_entries(6, 8, 2);  // truncates a suffix of reqs[0]
  reqs[1].hard_state = HardState{Term(2), NodeId(1), Index(5)};
  reqs[2].snapshot = Snapshot{SnapshotMeta{Index(7), Term(2), kVoters}, Bytes(std::string("s"))};
  reqs[3].entries = make_entries(8, 9, 3);
  reqs[3].sync = false;
  std::vector<const WriteRequest*> ptrs;
  for (const WriteRequest& r : reqs) {
    ptrs.push_back(&r);
    single->write(r);
  }
  grouped->write_group(ptrs);
  for (RocksLogStore* s : {grouped.get(), single.get()}) {
    EXPECT_EQ(s->first_index(), Index(8));
    EXPECT_EQ(s->last_index(), Index(9));
    EXPECT_EQ(s->entries(Index(8), Index(10), SIZE_MAX), reqs[3].entries);
    EXPECT_EQ(s->hard_state(), *reqs[1].hard_state);
    EXPECT_EQ(s->snapshot()->data.view(), "s");
  }
}

// The entries of one write share a RocksDB value; a write that replaces
// some of them, or a compaction that drops some, cuts the value, whether it
// is stored already or earlier in the same batch. Read back from RocksDB
// (not from the store's copies of recent entries) and after a reopen.
TEST(RocksLogStoreTest, WritesAndCompactionsCutSharedValues) {
  TempDir tmp;
  auto grouped = must_open(tmp.sub("a"));
  auto single = must_open(tmp.sub("b"));
  std::vector<WriteRequest> reqs(4);
  reqs[0].entries = make_entries(1, 10, 1);
  reqs[1].entries = make_entries(11, 12, 1);
  reqs[2].entries = make_entries(6, 8, 2);   // cuts 1..10, drops 11..12
  reqs[3].entries = make_entries(8, 12, 3);  // cuts 6..8, written in the same batch
  grouped->write(reqs[0]);
  std::vector<const WriteRequest*> ptrs = {&reqs[1], &reqs[2], &reqs[3]};
  grouped->write_group(ptrs);
  for (const WriteRequest& r : reqs)
    single->write(r);
  std::vector<Entry> want = make_entries(1, 5, 1);
  for (const Entry& e : make_entries(6, 7, 2))
    want.push_back(e);
  for (const Entry& e : make_entries(8, 12, 3))
    want.push_back(e);
  auto check = [&](RocksLogStore& s, Index first) {
    RocksLogStoreAccess::forget_recent_entries(s);
    ASSERT_EQ(s.first_index(), first);
    EXPECT_EQ(s.last_index(), Index(12));
    std::vector<Entry> tail(want.begin() + static_cast<std::ptrdiff_t>(first.value - 1),
                            want.end());
    EXPECT_EQ(s.entries(first, Index(13), SIZE_MAX), tail);
    for (Index lo = first; lo <= Index(12); ++lo)
      EXPECT_EQ(s.entries(lo, lo + 1, SIZE_MAX), std::vector<Entry>{want[lo.value - 1]})
          << lo.value;
  };
  check(*grouped, Index(1));
  check(*single, Index(1));
  ASSERT_TRUE(grouped->compact(Index(9), Bytes(), Term(3), kVoters).ok());  // inside 8..12
  ASSERT_TRUE(grouped->compact(Index(10), Bytes(), Term(3), kVoters).ok());
  check(*grouped, Index(11));
  std::string dir = grouped->dir();
  grouped.reset();
  grouped = must_open(dir);
  check(*grouped, Index(11));
}

// The node writes its hard state (another column family) with almost every
// batch of entries, so that column family's memtable holds a little of
// every WAL file and is never full enough to flush by itself. Without a
// bound on the WAL, every file stayed until RocksDB's default of 4x the
// total memtable budget (about 2 GiB): disk use and the replay at restart
// grew with the write volume, not with the live log.
TEST(RocksLogStoreTest, WalFilesStayBoundedWhileTheLogIsWrittenAndCompacted) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"), voters_options());
  const std::string payload(64 << 10, 'x');
  const uint64_t kEntriesPerWrite = 16;  // 1 MiB per write
  uint64_t next = 1;
  uintmax_t largest_wal_total = 0;
  for (int w = 0; w < 640; ++w) {  // 640 MiB in all
    WriteRequest req;
    for (uint64_t k = 0; k < kEntriesPerWrite; ++k, ++next)
      req.entries.push_back(make_entry(next, 1, payload));
    req.hard_state = HardState{Term(1), NodeId(1), Index(next - 1)};
    req.sync = false;
    store->write(req);
    // As the node does: compact the log behind the state machine now and then.
    if (w % 32 == 31) {
      ASSERT_TRUE(
          store->compact(Index(next - 1 - kEntriesPerWrite * 8), Bytes(), Term(1), kVoters).ok());
    }
    uintmax_t wal_total = 0;
    for (const auto& f : testing::files_with_extension(store->dir(), ".log")) {
      std::error_code gone;  // RocksDB's background purge may delete it meanwhile
      uintmax_t size = std::filesystem::file_size(f, gone);
      if (!gone) wal_total += size;
    }
    largest_wal_total = std::max(largest_wal_total, wal_total);
  }
  // Past the bound, the files go once the flushes finish; meanwhile the
  // writer can fill at most the log's two memtables (64 MiB each: one
  // flushing, one filling), then RocksDB stalls it. Without the bound this
  // run kept 640 MiB of WAL; with it, 130 MiB at most on this machine.
  EXPECT_LE(largest_wal_total, uintmax_t{RocksLogStore::kMaxWalBytes} + (uintmax_t{128} << 20));
  // Nothing the log still holds was lost with a WAL file.
  std::string dir = store->dir();
  Index first = store->first_index();
  store.reset();
  store = must_open(dir);
  ASSERT_EQ(store->first_index(), first);
  ASSERT_EQ(store->last_index(), Index(next - 1));
  EXPECT_EQ(store->entries(Index(next - 1), Index(next), SIZE_MAX).front().data.view(), payload);
}

// Each compaction flushes "meta" (which takes a hard state with nearly every
// write) along with the log, so the WAL files before it go at once, one
// compaction's worth at a time, instead of piling up until the WAL bound
// forces a flush from inside a write and frees them all in one burst.
TEST(RocksLogStoreTest, EachCompactionRetiresTheWalFilesBeforeIt) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"), voters_options());
  const std::string payload(64 << 10, 'x');
  uint64_t next = 1;
  for (int round = 0; round < 4; ++round) {
    for (int w = 0; w < 16; ++w) {  // 4 MiB per round, far below the WAL bound
      WriteRequest req;
      for (int k = 0; k < 4; ++k, ++next)
        req.entries.push_back(make_entry(next, 1, payload));
      req.hard_state = HardState{Term(1), NodeId(1), Index(next - 1)};
      req.sync = false;
      store->write(req);
    }
    ASSERT_TRUE(store->compact(Index(next - 2), Bytes(), Term(1), kVoters).ok());
  }
  // The flushes and the purge after them run in the background. Left are
  // the live file and at most the one before it (a "meta" flush is skipped
  // while the previous one is still pending); without the "meta" flushes
  // all five files stay, pinned by its hard states.
  auto wal_files = [&] { return testing::files_with_extension(store->dir(), ".log").size(); };
  testing::wait_until([&] { return wal_files() <= 2; });
  EXPECT_LE(wal_files(), 2u);
  std::string dir = store->dir();
  store.reset();
  store = must_open(dir);
  EXPECT_EQ(store->first_index(), Index(next - 1));
  EXPECT_EQ(store->entries(Index(next - 1), Index(next), SIZE_MAX).front().data.view(), payload);
}

// Obsolete files are deleted through RocksDB's trash, a step at a time; a
// crash can leave "*.trash" files behind, and the next open removes them.
TEST(RocksLogStoreTest, TrashLeftByACrashIsRemovedOnOpen) {
  TempDir tmp;
  std::string dir = tmp.sub("db");
  must_open(dir, voters_options()).reset();
  const std::filesystem::path trash = std::filesystem::path(dir) / "000999.log.trash";
  {
    std::ofstream f(trash, std::ios::binary);
    f << std::string(3 << 20, 't');
  }
  auto store = must_open(dir);
  testing::wait_until([&] { return !std::filesystem::exists(trash); });
  EXPECT_FALSE(std::filesystem::exists(trash));
  EXPECT_EQ(store->snapshot_meta().voters, kVoters);
}

// A compaction flushes the log's memtable: the entries it covers are dropped
// by the flush (they sit under the range deletion) instead of filling the
// memtable until a flush writes them to a table file for compaction to
// delete again. Only the kept groups reach a table file.
TEST(RocksLogStoreTest, CompactionFlushesOnlyTheKeptEntries) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"), voters_options());
  const std::string payload(4 << 10, 'x');
  const uint64_t kWrites = 64, kEntriesPerWrite = 16, kKeptWrites = 3;
  uint64_t next = 1;
  for (uint64_t w = 0; w < kWrites; ++w) {
    WriteRequest req;
    for (uint64_t k = 0; k < kEntriesPerWrite; ++k, ++next)
      req.entries.push_back(make_entry(next, 1, payload));
    req.sync = false;
    store->write(req);
  }
  rocksdb::DB* db = RocksLogStoreAccess::db(*store);
  auto* log_cf = RocksLogStoreAccess::column_family(*store, kLogColumnFamily);
  auto property = [&](const std::string& name) {
    uint64_t value = 0;
    EXPECT_TRUE(db->GetIntProperty(log_cf, name, &value)) << name;
    return value;
  };
  ASSERT_EQ(property("rocksdb.num-entries-active-mem-table"), kWrites);

  // Keep the last three writes and one entry of the write before them.
  const Index index(next - 1 - kKeptWrites * kEntriesPerWrite - 1);
  ASSERT_TRUE(store->compact(index, Bytes(), Term(1), kVoters).ok());
  EXPECT_EQ(property("rocksdb.num-entries-active-mem-table"), 0u);
  testing::wait_until([&] { return property("rocksdb.num-immutable-mem-table") == 0; });
  ASSERT_EQ(property("rocksdb.num-immutable-mem-table"), 0u) << "the flush did not finish";

  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  uint64_t values = 0;
  for (const auto& f : files) {
    if (f.column_family_name == kLogColumnFamily) values += f.num_entries - f.num_deletions;
  }
  // The three kept writes, and the kept entry of the split write.
  EXPECT_EQ(values, kKeptWrites + 1);

  std::string dir = store->dir();
  store.reset();
  store = must_open(dir);
  ASSERT_EQ(store->first_index(), index + 1);
  ASSERT_EQ(store->last_index(), Index(next - 1));
  EXPECT_EQ(store->entries(index + 1, Index(next), SIZE_MAX).size(),
            kKeptWrites * kEntriesPerWrite + 1);
}

// Format 1 stored one entry per value: format 2 with groups of one. Such a
// store opens, is marked format 2, and goes on with shared values.
TEST(RocksLogStoreTest, FormatOneStoreOpensAndIsUpgraded) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  for (uint64_t i = 1; i <= 5; ++i)
    store->write(testing::append_request(make_entries(i, i, 1)));
  rocksdb::DB* db = RocksLogStoreAccess::db(*store);
  auto* meta_cf = RocksLogStoreAccess::column_family(*store, kMetaColumnFamily);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  ASSERT_TRUE(db->Put(wo, meta_cf, "format_version", codec::encode_format_version(1)).ok());
  std::string dir = store->dir();
  store.reset();

  store = must_open(dir);
  EXPECT_EQ(store->entries(Index(1), Index(6), SIZE_MAX), make_entries(1, 5, 1));
  db = RocksLogStoreAccess::db(*store);
  meta_cf = RocksLogStoreAccess::column_family(*store, kMetaColumnFamily);
  std::string format;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), meta_cf, "format_version", &format).ok());
  EXPECT_EQ(codec::decode_format_version(format).value, RocksLogStore::kFormatVersion);
  store->write(testing::append_request(make_entries(6, 9, 2)));
  store.reset();
  store = must_open(dir);
  std::vector<Entry> want = make_entries(1, 5, 1);
  for (const Entry& e : make_entries(6, 9, 2))
    want.push_back(e);
  EXPECT_EQ(store->entries(Index(1), Index(10), SIZE_MAX), want);
}

TEST(RocksLogStoreTest, ReadersSeeAConsistentStateWhileAWriterRuns) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  store->write(testing::append_request(make_entries(1, 1, 1)));
  // The reader promises never to ask for anything below `floor` again; the
  // writer compacts only below it, as a node compacts only what the Raft
  // thread no longer reads.
  std::atomic<uint64_t> floor{1};
  std::atomic<bool> done{false};
  std::thread writer([&] {
    // Each round rewrites the last two entries with a higher term and
    // extends the log, so a reader that mixed the index of one write with
    // the bytes of another would see a missing entry or a term that
    // disagrees with the entry's data.
    for (uint64_t round = 2; round < 300; ++round) {
      Index last = store->last_index();
      uint64_t from = std::max<uint64_t>(store->first_index().value, last.value - 1);
      WriteRequest req = testing::append_request(make_entries(from, last.value + 3, round));
      req.sync = false;  // durability is not under test here
      store->write(req);
      if (round % 10 == 0) {
        Index at(std::min(std::max<uint64_t>(store->last_index().value, 5) - 5, floor.load() - 1));
        if (at >= store->first_index()) {
          StoreStatus st = store->compact(at, Bytes(), *store->term(at), {});
          EXPECT_TRUE(st.ok()) << st.error;
        }
      }
    }
    done = true;
  });
  uint64_t reads = 0;
  while (!done) {
    Index last = store->last_index();
    Index lo = std::max(Index(std::max<uint64_t>(last.value, 2) - 2), store->first_index());
    floor = lo.value;
    std::vector<Entry> got = store->entries(lo, last + 1, SIZE_MAX);
    ASSERT_FALSE(got.empty());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].index, lo + k);
      EXPECT_EQ(got[k], make_entry(got[k].index.value, got[k].term.value));
      if (k > 0) {
        EXPECT_LE(got[k - 1].term, got[k].term);
      }
    }
    ++reads;
  }
  writer.join();
  EXPECT_GT(reads, 0u);
}

}  // namespace
}  // namespace raftkv::raft
