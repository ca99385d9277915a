// The KV state machine on its two backends: RocksKvStore must hold exactly
// what the in-memory store holds after the same entries (same images, same
// replies), keep it across a restart, recover a consistent prefix after a
// crash, and install, refuse or recover snapshot images.
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "kvserver/kv_codec.h"
#include "kvserver/rocks_kv_store.h"
#include "schema/frame.h"
#include "tests/kvstate/kv_state_test_util.h"
#include "tests/storage/storage_test_util.h"

namespace raftkv::kv {
namespace {

namespace fs = std::filesystem;
using raft::Index;
using raft::testing::TempDir;
using testing::make_workload;

testing::WorkloadOptions workload(size_t entries, size_t keys = 24, bool huge_value = false) {
  testing::WorkloadOptions o;
  o.entries = entries;
  o.keys = keys;
  o.huge_value = huge_value;
  return o;
}

std::unique_ptr<RocksKvStore> open_store(const std::string& dir,
                                         const RocksKvStoreOptions& options = {}) {
  std::string error;
  auto store = RocksKvStore::open(dir, options, &error);
  EXPECT_TRUE(store) << error;
  return store;
}

// Options under which every commit() writes its runs as one table file
// before it returns.
RocksKvStoreOptions writing_every_commit() {
  RocksKvStoreOptions o;
  o.write_behind_bytes = 0;
  o.write_behind_in_background = false;
  return o;
}

std::unique_ptr<KvStateMachine> open_sm(const std::string& dir,
                                        const RocksKvStoreOptions& options = {}) {
  auto store = open_store(dir, options);
  if (!store) return nullptr;
  return std::make_unique<KvStateMachine>(std::move(store));
}

// Applies es[from-1 .. to-1] in runs of 1..max_run entries, each closed by
// applied_batch_done() as RaftNode does.
void apply_runs(KvStateMachine& sm, const std::vector<raft::Entry>& es, uint64_t from, uint64_t to,
                std::mt19937_64& rng, uint64_t max_run = 16) {
  uint64_t i = from;
  while (i <= to) {
    uint64_t end = std::min(to, i + rng() % max_run);
    for (; i <= end; ++i)
      sm.apply(es[i - 1]);
    sm.applied_batch_done();
  }
}

std::optional<wire::KvCommand> decode(const raft::Entry& e) {
  if (e.type != raft::EntryType::kNormal) return std::nullopt;
  auto c = wire::decode_kv_command(e.data.view());
  if (!c.ok()) return std::nullopt;
  return *c;
}

// An image at every index of the workload, from the in-memory backend.
std::vector<raft::Bytes> model_images(const std::vector<raft::Entry>& es) {
  KvStateMachine model;
  std::vector<raft::Bytes> images{model.snapshot()};
  for (const raft::Entry& e : es) {
    testing::apply_one(model, e);
    images.push_back(model.snapshot());
  }
  return images;
}

// Same entries, same state and same replies, whatever the run lengths. A
// run's waiters are answered after the run (RaftNode), yet must read what
// they would have read right after their own entry.
TEST(KvStateTest, RocksBackendMatchesMemory) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE(fmt::format("seed {}", seed));
    TempDir tmp;
    auto es = make_workload(seed, workload(1500, 24, true));
    KvStateMachine model;
    auto sm = open_sm(tmp.sub("state"));
    ASSERT_TRUE(sm);
    std::mt19937_64 rng(seed);
    // The reply of each (client, seq) when it was first applied.
    std::map<std::pair<uint64_t, uint64_t>, ApplyResult> first_reply;
    uint64_t i = 1;
    while (i <= es.size()) {
      uint64_t end = std::min<uint64_t>(es.size(), i + rng() % 16);
      std::vector<std::pair<size_t, std::optional<ApplyResult>>> replies;
      bool long_gap = false;
      uint64_t last_ts = 0;
      for (uint64_t k = i; k <= end; ++k) {
        testing::apply_one(model, es[k - 1]);
        sm->apply(es[k - 1]);
        if (auto c = decode(es[k - 1])) {
          if (last_ts != 0 && c->timestamp_ms > last_ts + kSessionTtlMs) long_gap = true;
          last_ts = c->timestamp_ms;
          auto r = model.session_reply(c->client_id, c->seq);
          if (r) first_reply.emplace(std::pair(c->client_id.value, c->seq), *r);
          replies.emplace_back(k, r);
        }
      }
      sm->applied_batch_done();
      // (Expiry inside a run can drop a session its own waiters would have
      // read; a run spans milliseconds, the TTL an hour.)
      if (!long_gap) {
        for (auto& [k, want] : replies) {
          auto c = decode(es[k - 1]);
          auto got = sm->session_reply(c->client_id, c->seq);
          if (want || !got) {
            EXPECT_EQ(got, want) << "entry " << k;
          } else {
            // A duplicate of an older seq whose first application was in
            // this run: the table kept that first reply for its waiter.
            auto it = first_reply.find(std::pair(c->client_id.value, c->seq));
            ASSERT_NE(it, first_reply.end()) << "entry " << k;
            EXPECT_EQ(*got, it->second) << "entry " << k;
          }
        }
      }
      ASSERT_EQ(sm->applied_index(), model.applied_index());
      i = end + 1;
    }
    EXPECT_EQ(sm->snapshot(), model.snapshot());
    EXPECT_EQ(sm->key_count(), model.key_count());
    EXPECT_EQ(sm->session_count(), model.session_count());
    EXPECT_EQ(sm->get("huge"), model.get("huge"));
  }
}

// A write logged in either of the forms leaders have written for client
// writes (kLoggedRequest, kLoggedWrite) applies exactly as the same write
// logged as a KvCommand, which the oldest logs hold; a damaged one is skipped
// like any undecodable entry, by every replica alike.
TEST(KvStateTest, LoggedWritesApplyLikeKvCommands) {
  TempDir tmp;
  auto es = make_workload(7, workload(1500));
  KvStateMachine model;
  auto sm = open_sm(tmp.sub("state"));
  ASSERT_TRUE(sm);
  std::mt19937_64 rng(7);
  uint64_t requests = 0, writes = 0, damaged = 0;
  for (const raft::Entry& e : es) {
    raft::Entry same = e;
    if (auto c = decode(e); c && rng() % 4 != 0) {
      const bool as_request = rng() % 2 == 0;
      same = as_request ? testing::logged_entry(e.index.value, *c, rng())
                        : testing::written_entry(e.index.value, *c);
      ++(as_request ? requests : writes);
      if (rng() % 50 == 0) {
        // The request inside names another payload kind, or the write names
        // a read.
        std::string bad(same.data.view());
        if (as_request) {
          bad[wire::kPayloadHeaderBytes + 8 + 1] =
              static_cast<char>(wire::PayloadKind::kClientReply);
        } else {
          bad[wire::kPayloadHeaderBytes + 24] = 0;  // kv.fbs Op.Get
        }
        same.data = raft::Bytes(std::move(bad));
        testing::apply_one(model, raft::Entry{e.term, e.index, e.type, raft::Bytes()});
        testing::apply_one(*sm, same);
        ++damaged;
        continue;
      }
    }
    testing::apply_one(model, e);
    testing::apply_one(*sm, same);
    if (auto c = decode(e)) {
      ASSERT_EQ(sm->session_reply(c->client_id, c->seq), model.session_reply(c->client_id, c->seq))
          << "entry " << e.index.value;
    }
  }
  EXPECT_GT(requests, 500u);
  EXPECT_GT(writes, 500u);
  EXPECT_GT(damaged, 0u);
  EXPECT_EQ(sm->snapshot(), model.snapshot());
}

// Reads see every write made so far, committed or not (kv_store.h): random
// runs of puts, overwrites and erases of keys and sessions, with every read
// compared against the in-memory store after each write.
// Held back (the default, and a 2 KiB batch written by the background
// thread or in place) or written by every commit: reads see every write.
class RocksStoreReads : public ::testing::TestWithParam<std::pair<size_t, bool>> {};
INSTANTIATE_TEST_SUITE_P(WriteBehind, RocksStoreReads,
                         ::testing::Values(std::pair<size_t, bool>{size_t{4} << 20, true},
                                           std::pair<size_t, bool>{2048, true},
                                           std::pair<size_t, bool>{2048, false},
                                           std::pair<size_t, bool>{0, false}));

TEST_P(RocksStoreReads, SeeUncommittedAndHeldBackWrites) {
  TempDir tmp;
  RocksKvStoreOptions options;
  options.write_behind_bytes = GetParam().first;
  options.write_behind_in_background = GetParam().second;
  auto rocks = open_store(tmp.sub("state"), options);
  ASSERT_TRUE(rocks);
  auto mem = make_memory_kv_store();
  std::mt19937_64 rng(11);
  auto sessions_of = [](const KvStore& st) {
    std::vector<std::pair<uint64_t, Session>> out;
    st.for_each_session([&](uint64_t c, const Session& s) { out.emplace_back(c, s); });
    return out;
  };
  for (int run = 0; run < 60; ++run) {
    const int writes = static_cast<int>(rng() % 40);
    for (int w = 0; w < writes; ++w) {
      std::string key = fmt::format("k{}", rng() % 30);
      uint64_t client = 1 + rng() % 12;
      switch (rng() % 4) {
        case 0:
        case 1: {
          std::string value(rng() % 300, static_cast<char>('a' + rng() % 26));
          rocks->put(key, value);
          mem->put(key, value);
          break;
        }
        case 2:
          rocks->erase(key);
          mem->erase(key);
          break;
        case 3:
          if (rng() % 3 == 0) {
            rocks->erase_session(client);
            mem->erase_session(client);
          } else {
            Session s{rng() % 100, ApplyResult{wire::ReplyStatus::kOk, std::nullopt}, rng() % 9};
            rocks->put_session(client, s);
            mem->put_session(client, s);
          }
          break;
      }
      ASSERT_EQ(rocks->get(key), mem->get(key)) << run << "/" << w;
      ASSERT_EQ(rocks->session(client), mem->session(client)) << run << "/" << w;
    }
    ASSERT_EQ(rocks->key_count(), mem->key_count()) << run;
    ASSERT_EQ(rocks->session_count(), mem->session_count()) << run;
    ASSERT_EQ(sessions_of(*rocks), sessions_of(*mem)) << run;
    rocks->commit();
    mem->commit();
    for (int k = 0; k < 30; ++k)
      ASSERT_EQ(rocks->get(fmt::format("k{}", k)), mem->get(fmt::format("k{}", k))) << run;
  }
  // What was committed is what a reopened store holds (a clean close
  // writes the held-back runs).
  rocks.reset();
  rocks = open_store(tmp.sub("state"), options);
  ASSERT_TRUE(rocks);
  EXPECT_EQ(rocks->key_count(), mem->key_count());
  EXPECT_EQ(sessions_of(*rocks), sessions_of(*mem));
}

TEST(KvStateTest, RestartKeepsDataAndSessions) {
  TempDir tmp;
  auto es = make_workload(7, workload(800));
  KvStateMachine model;
  testing::apply_each(model, es);
  std::mt19937_64 rng(7);
  {
    auto sm = open_sm(tmp.sub("state"));
    ASSERT_TRUE(sm);
    apply_runs(*sm, es, 1, es.size(), rng);
  }  // closed cleanly, nothing synced explicitly
  auto sm = open_sm(tmp.sub("state"));
  ASSERT_TRUE(sm);
  EXPECT_TRUE(sm->durable());
  EXPECT_EQ(sm->applied_index(), Index(es.size()));
  EXPECT_EQ(sm->snapshot(), model.snapshot());
  // Sessions came back too: a retry of each client's latest write is
  // recognized and answered from the table.
  for (uint64_t c = 1; c <= 5; ++c) {
    for (uint64_t seq = 1; seq < 1000; ++seq) {
      bool applied = model.already_applied(wire::ClientId(c), seq);
      EXPECT_EQ(sm->already_applied(wire::ClientId(c), seq), applied);
      EXPECT_EQ(sm->session_reply(wire::ClientId(c), seq),
                model.session_reply(wire::ClientId(c), seq));
      if (!applied) break;
    }
  }
  // And it goes on from there.
  auto more = make_workload(8, workload(50));
  for (auto& e : more)
    e.index = e.index + es.size();
  testing::apply_each(model, more);
  apply_runs(*sm, more, 1, more.size(), rng);
  EXPECT_EQ(sm->snapshot(), model.snapshot());
}

// A crash (kill -9) after any commit leaves the files as they are: copied
// here after every commit. The state that opens must be exactly the state
// after some commit (never a mix, never ahead of what had been applied),
// later crashes must never recover an earlier commit than earlier ones did,
// and replaying the log after it must reach the final state. Every other
// copy also holds a half-written staging file, as a crash while a batch
// file is being built leaves one. Commits reach the disk only as ingested
// table files, which RocksDB fsyncs (with the directory and the MANIFEST)
// before the ingestion returns, so a machine crash loses nothing more than
// kill -9 does. Copies are taken with the batches written in place: a copy
// taken while a background write runs is not a state any crash leaves.
// Returns how many different states the copies recovered.
size_t check_crash_recovers_a_prefix(const RocksKvStoreOptions& options) {
  EXPECT_FALSE(options.write_behind_in_background);
  const bool every_commit = options.write_behind_bytes == 0;
  TempDir tmp;
  auto es = make_workload(11, workload(600));
  std::vector<raft::Bytes> images = model_images(es);
  fs::path live = tmp.sub("live");
  auto sm = open_sm(live.string(), options);
  EXPECT_TRUE(sm);
  if (!sm) return 0;
  std::set<uint64_t> ends = {0};                      // the applied index after each commit
  std::vector<std::pair<fs::path, uint64_t>> copies;  // and the index applied when taken
  std::mt19937_64 rng(11);
  uint64_t i = 1;
  while (i <= es.size()) {
    uint64_t end = std::min<uint64_t>(es.size(), i + rng() % 24);
    for (; i <= end; ++i)
      sm->apply(es[i - 1]);
    sm->applied_batch_done();
    ends.insert(end);
    fs::path copy = tmp.sub(fmt::format("crash{}", end));
    testing::copy_dir_settled(live, copy);
    if (copies.size() % 2 == 1) {
      std::ofstream(copy / "write-behind.sst.tmp", std::ios::binary) << "a table file cut short";
    }
    copies.emplace_back(copy, end);
  }
  sm.reset();

  uint64_t recovered = 0;  // by the previous copy
  std::set<uint64_t> states;
  for (const auto& [copy, applied] : copies) {
    SCOPED_TRACE(fmt::format("crash after applying {}", applied));
    auto again = open_sm(copy.string(), options);
    EXPECT_TRUE(again);
    if (!again) continue;
    const uint64_t got = again->applied_index().value;
    EXPECT_TRUE(ends.count(got)) << got;
    EXPECT_LE(got, applied);
    if (every_commit) {
      EXPECT_EQ(got, applied);
    }
    EXPECT_GE(got, recovered);
    recovered = got;
    states.insert(got);
    EXPECT_EQ(again->snapshot(), images[got]);
    EXPECT_FALSE(fs::exists(copy / "write-behind.sst.tmp"));
    // The node replays the log from there.
    apply_runs(*again, es, got + 1, es.size(), rng);
    EXPECT_EQ(again->snapshot(), images.back());
  }
  return states.size();
}

TEST(KvStateTest, CrashRecoversAPrefixOfCommits) {
  EXPECT_GT(check_crash_recovers_a_prefix(writing_every_commit()), 30u);
}

TEST(KvStateTest, CrashWithWriteBehindRecoversAPrefixOfCommits) {
  // Small enough that a few commits go out together several times.
  RocksKvStoreOptions write_behind;
  write_behind.write_behind_bytes = 4 << 10;
  write_behind.write_behind_in_background = false;
  size_t states = check_crash_recovers_a_prefix(write_behind);
  EXPECT_GE(states, 3u);
  EXPECT_LT(states, 30u);
}

TEST(KvStateTest, RestoreReplacesTheWholeState) {
  TempDir tmp;
  auto es = make_workload(21, workload(400));
  KvStateMachine leader;
  testing::apply_each(leader, es);
  raft::Snapshot snap{{Index(es.size()), raft::Term(1), {}}, leader.snapshot()};

  RocksKvStoreOptions small_batches;
  small_batches.replace_batch_bytes = 512;
  auto sm = open_sm(tmp.sub("state"), small_batches);
  ASSERT_TRUE(sm);
  // Old contents that the image does not have must go.
  auto old = make_workload(22, workload(100, 300));
  std::mt19937_64 rng(21);
  apply_runs(*sm, old, 1, old.size(), rng);
  std::string error;
  ASSERT_TRUE(sm->restore(snap, &error)) << error;
  EXPECT_EQ(sm->applied_index(), snap.meta.index);
  EXPECT_EQ(sm->snapshot(), snap.data);
  EXPECT_EQ(sm->key_count(), leader.key_count());
  EXPECT_EQ(sm->pinned_index(), snap.meta.index);

  // Both go on alike, and the result survives a restart.
  auto more = make_workload(23, workload(100));
  for (auto& e : more)
    e.index = e.index + es.size();
  testing::apply_each(leader, more);
  apply_runs(*sm, more, 1, more.size(), rng);
  sm.reset();
  sm = open_sm(tmp.sub("state"));
  ASSERT_TRUE(sm);
  EXPECT_EQ(sm->snapshot(), leader.snapshot());

  // An empty image at index 0 resets.
  ASSERT_TRUE(sm->restore(raft::Snapshot{}, &error)) << error;
  EXPECT_EQ(sm->applied_index(), Index(0));
  EXPECT_EQ(sm->key_count(), 0u);
  EXPECT_EQ(sm->snapshot(), KvStateMachine().snapshot());
}

// A crash during restore: the directory as it is after each write of the
// restore. Until the last write it must open EMPTY at index 0 (the node then
// restores again from the log store), never as a mix of old and new.
TEST(KvStateTest, InterruptedRestoreOpensEmpty) {
  TempDir tmp;
  auto es = make_workload(31, workload(300, 200));
  KvStateMachine leader;
  testing::apply_each(leader, es);
  raft::Snapshot snap{{Index(es.size()), raft::Term(1), {}}, leader.snapshot()};

  fs::path live = tmp.sub("live");
  std::vector<fs::path> crashes;
  RocksKvStoreOptions opts;
  opts.replace_batch_bytes = 256;
  opts.after_replace_write = [&](int write) {
    fs::path copy = tmp.sub(fmt::format("crash{}", write));
    testing::copy_dir(live, copy);
    crashes.push_back(copy);
  };
  auto sm = open_sm(live.string(), opts);
  ASSERT_TRUE(sm);
  auto old = make_workload(32, workload(60));
  std::mt19937_64 rng(31);
  apply_runs(*sm, old, 1, old.size(), rng);
  std::string error;
  ASSERT_TRUE(sm->restore(snap, &error)) << error;
  ASSERT_GE(crashes.size(), 4u) << "the image should take several batches";

  for (size_t k = 0; k < crashes.size(); ++k) {
    SCOPED_TRACE(fmt::format("crash after restore write {} of {}", k + 1, crashes.size()));
    std::string err;
    auto store = RocksKvStore::open(crashes[k].string(), {}, &err);
    ASSERT_TRUE(store) << err;
    bool last = k + 1 == crashes.size();
    EXPECT_EQ(store->interrupted_replace_discarded(), !last);
    KvStateMachine again(std::move(store));
    if (last) {
      EXPECT_EQ(again.snapshot(), snap.data);
    } else {
      EXPECT_EQ(again.applied_index(), Index(0));
      EXPECT_EQ(again.key_count(), 0u);
      EXPECT_EQ(again.session_count(), 0u);
      // The node's next step: restore from the log store's copy.
      ASSERT_TRUE(again.restore(snap, &err)) << err;
      EXPECT_EQ(again.snapshot(), snap.data);
    }
  }
}

TEST(KvStateTest, BadImagesAreRefusedAndChangeNothing) {
  TempDir tmp;
  auto es = make_workload(41, workload(200));
  KvStateMachine leader;
  testing::apply_each(leader, es);
  const Index at(es.size());
  std::string good(leader.snapshot().view());

  auto sm = open_sm(tmp.sub("state"));
  ASSERT_TRUE(sm);
  auto mine = make_workload(42, workload(50));
  std::mt19937_64 rng(41);
  apply_runs(*sm, mine, 1, mine.size(), rng);
  const raft::Bytes before = sm->snapshot();

  auto refused = [&](const std::string& image, Index index, const std::string& why) {
    std::string error;
    EXPECT_FALSE(
        sm->restore(raft::Snapshot{{index, raft::Term(1), {}}, raft::Bytes(image)}, &error));
    EXPECT_NE(error.find(why), std::string::npos) << "error: " << error;
    EXPECT_EQ(sm->snapshot(), before);
    EXPECT_EQ(sm->applied_index(), Index(mine.size()));
  };
  refused("RKV2" + good.substr(4), at, "unknown KV image version 'RKV2' (this build reads RKV1)");
  refused(std::string("RKV\x01", 4) + good.substr(4), at, "unknown KV image version 'RKV\\x01'");
  refused("hello, world", at, "not a raftkv KV image");
  refused("", at, "not a raftkv KV image");
  refused(good, at + 1, "image is at index");
  refused(good + "x", at, "1 trailing bytes");
  for (size_t cut : {size_t{5}, size_t{20}, size_t{36}, good.size() / 2, good.size() - 1}) {
    SCOPED_TRACE(fmt::format("truncated to {} of {} bytes", cut, good.size()));
    std::string error;
    EXPECT_FALSE(sm->restore(
        raft::Snapshot{{at, raft::Term(1), {}}, raft::Bytes(good.substr(0, cut))}, &error));
    EXPECT_NE(error.find("snapshot at index"), std::string::npos) << error;
    EXPECT_EQ(sm->snapshot(), before);
  }
  // The intact image still installs.
  std::string error;
  ASSERT_TRUE(sm->restore(raft::Snapshot{{at, raft::Term(1), {}}, raft::Bytes(good)}, &error))
      << error;
  EXPECT_EQ(sm->snapshot(), leader.snapshot());
}

// The RKV1 layout byte by byte, as an older build wrote it.
TEST(KvStateTest, DecodesHandWrittenRkv1) {
  std::string img = "RKV1";
  codec::put_u64(img, 9);     // applied
  codec::put_u64(img, 5000);  // log time
  codec::put_u64(img, 65000);
  codec::put_u64(img, 2);
  codec::put_bytes(img, "a");
  codec::put_bytes(img, "alpha");
  codec::put_bytes(img, "b");
  codec::put_bytes(img, "");
  codec::put_u64(img, 1);
  codec::put_u64(img, 77);  // client
  codec::put_u64(img, 3);   // seq
  codec::put_u64(img, 4900);
  img.push_back(static_cast<char>(wire::ReplyStatus::kNotFound));
  img.push_back(0);
  codec::put_bytes(img, "");
  TempDir tmp;
  for (int backend = 0; backend < 2; ++backend) {
    SCOPED_TRACE(backend ? "rocks" : "memory");
    auto sm = backend ? open_sm(tmp.sub("state")) : std::make_unique<KvStateMachine>();
    ASSERT_TRUE(sm);
    std::string error;
    ASSERT_TRUE(
        sm->restore(raft::Snapshot{{Index(9), raft::Term(2), {}}, raft::Bytes(img)}, &error))
        << error;
    EXPECT_EQ(sm->get("a"), "alpha");
    EXPECT_EQ(sm->get("b"), "");
    EXPECT_EQ(sm->get("c"), std::nullopt);
    EXPECT_TRUE(sm->already_applied(wire::ClientId(77), 3));
    EXPECT_EQ(sm->session_reply(wire::ClientId(77), 3)->status, wire::ReplyStatus::kNotFound);
    EXPECT_EQ(std::string(sm->snapshot().view()), img);  // re-encodes identically
  }
}

// What an ImageWriter writes, in memory.
raft::Bytes written(const raft::ImageWriter& write) {
  raft::StringImageOut out;
  write(out);
  return raft::Bytes(std::move(out.data));
}

TEST(KvStateTest, PinnedViewStaysAtItsIndex) {
  TempDir tmp;
  auto es = make_workload(51, workload(300));
  auto sm = open_sm(tmp.sub("state"));
  ASSERT_TRUE(sm);
  std::mt19937_64 rng(51);
  apply_runs(*sm, es, 1, 150, rng);
  sm->checkpoint();
  const raft::Bytes at150 = sm->snapshot();
  EXPECT_EQ(sm->pinned_index(), Index(150));
  apply_runs(*sm, es, 151, 300, rng);
  EXPECT_EQ(sm->pinned_index(), Index(150));
  raft::ImageWriter writer150 = sm->pinned_image_writer();
  EXPECT_EQ(written(writer150), at150);
  EXPECT_NE(sm->snapshot(), at150);
  sm->checkpoint();
  EXPECT_EQ(sm->pinned_index(), Index(300));
  EXPECT_EQ(written(sm->pinned_image_writer()), sm->snapshot());
  // A writer taken before the re-pin still writes the view it was given.
  EXPECT_EQ(written(writer150), at150);
}

// Polls checkpoint_in_background() (which never waits) until the pin
// reaches `want`; false after 30 s.
bool pin_reaches(KvStateMachine& sm, Index want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (sm.checkpoint_in_background() < want) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// checkpoint_in_background() pins only state already on disk: commits held
// back in memory are written in the background first, and the pin follows
// once they are in. What it pinned survives a crash.
TEST(KvStateTest, CheckpointInBackgroundPinsOnlyDurableState) {
  TempDir tmp;
  auto es = make_workload(52, workload(300));
  std::vector<raft::Bytes> images = model_images(es);
  // The default write-behind budget (4 MiB) holds this whole workload back.
  auto sm = open_sm(tmp.sub("state"));
  ASSERT_TRUE(sm);
  std::mt19937_64 rng(52);
  apply_runs(*sm, es, 1, 150, rng);
  // Nothing applied is on disk yet: no pin, but the write has started.
  EXPECT_EQ(sm->checkpoint_in_background(), Index(0));
  ASSERT_TRUE(pin_reaches(*sm, Index(150)));
  EXPECT_EQ(sm->pinned_index(), Index(150));
  raft::ImageWriter writer150 = sm->pinned_image_writer();
  EXPECT_EQ(written(writer150), images[150]);

  apply_runs(*sm, es, 151, 300, rng);
  // The disk holds 150 until the write this call starts is done.
  EXPECT_EQ(sm->checkpoint_in_background(), Index(150));
  ASSERT_TRUE(pin_reaches(*sm, Index(300)));
  EXPECT_EQ(sm->pinned_index(), Index(300));
  EXPECT_EQ(written(sm->pinned_image_writer()), images[300]);
  EXPECT_EQ(written(writer150), images[150]);

  // A crash now (a copy of the directory) keeps the pinned state.
  testing::copy_dir_settled(tmp.sub("state"), tmp.sub("crash"));
  auto again = open_sm(tmp.sub("crash"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->applied_index(), Index(300));
  EXPECT_EQ(again->snapshot(), images[300]);
}

// A view reads the commit it was taken at even after every key was
// overwritten or erased, each commit became a table file, and the whole
// store was compacted (which may drop any version the view did not pin).
TEST(KvStateTest, ViewSurvivesOverwritesAndCompaction) {
  TempDir tmp;
  auto store = open_store(tmp.sub("state"), writing_every_commit());
  ASSERT_TRUE(store);
  auto contents = [](const KvView& v) {
    std::vector<std::pair<std::string, std::string>> out;
    v.for_each_key([&](std::string_view k, std::string_view val) { out.emplace_back(k, val); });
    v.for_each_session([&](uint64_t c, const Session& s) {
      out.emplace_back(fmt::format("session {}", c), fmt::format("{}", s.seq));
    });
    return out;
  };
  for (int k = 0; k < 200; ++k)
    store->put(fmt::format("key{:03}", k), fmt::format("old{}", k));
  store->put_session(7, Session{3, {}, 0});
  store->set_meta(KvMeta{Index(10), 0});
  store->commit();
  auto view = store->view();
  const auto before = contents(*view);
  ASSERT_EQ(before.size(), 201u);
  for (int round = 0; round < 40; ++round) {  // 40 level-0 files: compactions run
    for (int k = 0; k < 200; ++k) {
      if (k % 7 == round % 7) {
        store->erase(fmt::format("key{:03}", k));
      } else {
        store->put(fmt::format("key{:03}", k), fmt::format("new{}.{}", round, k));
      }
    }
    store->put_session(7, Session{uint64_t(4 + round), {}, 0});
    store->set_meta(KvMeta{Index(11 + round), 0});
    store->commit();
  }
  store->compact();
  EXPECT_EQ(contents(*view), before);
  EXPECT_EQ(view->meta().applied, Index(10));
  // The store itself is at the last round, which erased the keys k % 7 == 4.
  EXPECT_EQ(store->get("key004"), std::nullopt);
  EXPECT_EQ(store->get("key001"), "new39.1");
  EXPECT_EQ(store->meta().applied, Index(50));
}

// A held-back batch is written as one table file, whose keys must go in
// strictly increasing byte order. Keys that share long prefixes, are
// prefixes of one another, end in zero bytes or differ only past their
// first 8 distinct bytes must all come back exactly, in order, beside
// what an earlier batch holds.
TEST(KvStateTest, HeldBackBatchesKeepByteOrderForAnyKeys) {
  TempDir tmp;
  auto store = open_store(tmp.sub("state"), writing_every_commit());
  ASSERT_TRUE(store);
  std::mt19937_64 rng(7);
  std::map<std::string, std::string> model;
  const std::string prefix(20, 'p');
  for (int batch = 0; batch < 6; ++batch) {
    std::vector<std::string> keys = {"",
                                     std::string(1, '\0'),
                                     "a",
                                     std::string("a\0", 2),
                                     std::string("a\0\0", 3),
                                     "a\x01",
                                     "\xff",
                                     prefix,
                                     prefix + std::string(9, '\0')};
    for (int i = 0; i < 300; ++i) {
      std::string k = prefix + fmt::format("{:016}", rng() % 500);
      if (i % 3 == 0) k.resize(prefix.size() + rng() % 17);  // prefixes of each other
      if (i % 5 == 0) k += std::string(rng() % 3, '\0');
      if (i % 7 == 0) k = std::string(1 + rng() % 12, static_cast<char>(rng() % 3));
      keys.push_back(std::move(k));
    }
    for (const std::string& k : keys) {
      if (rng() % 4 == 0 && model.count(k)) {
        store->erase(k);
        model.erase(k);
      } else {
        const std::string v = fmt::format("b{}", batch);
        store->put(k, v);
        model[k] = v;
      }
    }
    store->set_meta(KvMeta{Index(uint64_t(batch) + 1), 0});
    store->commit();
  }
  std::vector<std::pair<std::string, std::string>> got;
  store->view()->for_each_key(
      [&](std::string_view k, std::string_view v) { got.emplace_back(k, v); });
  const std::vector<std::pair<std::string, std::string>> want(model.begin(), model.end());
  EXPECT_EQ(got, want);
  for (const auto& [k, v] : model)
    EXPECT_EQ(store->get(k), v);
}

// Sessions reach the overlay only when something reads them through it
// (a scan, a view, a batch write). Puts, erases and puts again of one
// client, across runs and batch writes, must read the same through every
// path and survive a reopen as the last write left them.
TEST(KvStateTest, SessionWritesAgreeOnEveryReadPath) {
  TempDir tmp;
  for (bool background : {false, true}) {
    SCOPED_TRACE(background ? "background writes" : "synchronous writes");
    RocksKvStoreOptions options;
    options.write_behind_bytes = 256;  // a batch write every few commits
    options.write_behind_in_background = background;
    const std::string dir = tmp.sub(background ? "bg" : "sync");
    std::map<uint64_t, uint64_t> model;  // client -> seq
    std::mt19937_64 rng(11);
    uint64_t index = 0;
    auto sessions_of = [](const RocksKvStore& store) {
      std::map<uint64_t, uint64_t> out;
      store.for_each_session([&](uint64_t c, const Session& s) { out[c] = s.seq; });
      return out;
    };
    {
      auto store = open_store(dir, options);
      ASSERT_TRUE(store);
      for (int run = 0; run < 300; ++run) {
        for (int op = 0; op < 4; ++op) {
          const uint64_t client = 1 + rng() % 6;
          if (rng() % 4 == 0) {
            store->erase_session(client);
            model.erase(client);
          } else {
            const uint64_t seq = ++index;
            store->put_session(client, Session{seq, {}, 0});
            model[client] = seq;
          }
          const auto got = store->session(client);
          ASSERT_EQ(got.has_value(), model.count(client) == 1) << "run " << run;
          if (got) {
            EXPECT_EQ(got->seq, model[client]);
          }
        }
        store->set_meta(KvMeta{Index(uint64_t(run) + 1), 0});
        store->commit();
        if (run % 7 == 0) {
          ASSERT_EQ(sessions_of(*store), model) << "run " << run;
          ASSERT_EQ(store->session_count(), model.size());
        }
        if (run % 50 == 0) {
          std::map<uint64_t, uint64_t> in_view;
          store->view()->for_each_session(
              [&](uint64_t c, const Session& s) { in_view[c] = s.seq; });
          ASSERT_EQ(in_view, model) << "run " << run;
        }
      }
      store->sync();
    }
    auto reopened = open_store(dir, options);
    ASSERT_TRUE(reopened);
    EXPECT_EQ(sessions_of(*reopened), model);
    for (uint64_t client = 1; client <= 6; ++client) {
      const auto got = reopened->session(client);
      ASSERT_EQ(got.has_value(), model.count(client) == 1) << "client " << client;
      if (got) {
        EXPECT_EQ(got->seq, model[client]);
      }
    }
  }
}

// Two writes of one client in one run (a client with writes in flight): the
// first one's waiter, answered after the run, still finds its own reply.
TEST(KvStateTest, WaitersOfOneRunFindTheirReplies) {
  TempDir tmp;
  for (int backend = 0; backend < 2; ++backend) {
    SCOPED_TRACE(backend ? "rocks" : "memory");
    auto sm = backend ? open_sm(tmp.sub("state")) : std::make_unique<KvStateMachine>();
    ASSERT_TRUE(sm);
    using testing::command_entry;
    using testing::make_command;
    sm->apply(command_entry(1, make_command(9, 1, wire::Op::kPut, "x", "1", 100)));
    sm->applied_batch_done();
    // One run: a duplicate of seq 1, then seq 2 (delete of a missing key),
    // then seq 3.
    sm->apply(command_entry(2, make_command(9, 1, wire::Op::kPut, "x", "1", 101)));
    sm->apply(command_entry(3, make_command(9, 2, wire::Op::kDelete, "nope", "", 102)));
    sm->apply(command_entry(4, make_command(9, 3, wire::Op::kAppend, "x", "2", 103)));
    sm->applied_batch_done();
    EXPECT_EQ(sm->session_reply(wire::ClientId(9), 1)->status, wire::ReplyStatus::kOk);
    EXPECT_EQ(sm->session_reply(wire::ClientId(9), 2)->status, wire::ReplyStatus::kNotFound);
    EXPECT_EQ(sm->session_reply(wire::ClientId(9), 3)->status, wire::ReplyStatus::kOk);
    EXPECT_EQ(sm->get("x"), "12");
    // The next run forgets them: only the latest reply is kept.
    sm->apply(command_entry(5, make_command(8, 1, wire::Op::kPut, "y", "1", 104)));
    sm->applied_batch_done();
    EXPECT_EQ(sm->session_reply(wire::ClientId(9), 2), std::nullopt);
    EXPECT_TRUE(sm->already_applied(wire::ClientId(9), 2));
  }
}

// An entry of a newer release stops the node instead of being skipped
// (replicas that can read it apply it); a damaged entry of a known version
// and kind is skipped, by every replica alike.
TEST(KvStateDeathTest, AnEntryOfANewerReleaseStopsTheNode) {
  auto entry = [](uint8_t version, uint8_t kind) {
    std::string payload(8, '\0');
    payload[0] = static_cast<char>(version);
    payload[1] = static_cast<char>(kind);
    payload += "not a flatbuffer";
    return raft::Entry{raft::Term(1), Index(1), raft::EntryType::kNormal,
                       raft::Bytes(std::move(payload))};
  };
  const auto logged = static_cast<uint8_t>(wire::kNewestPayloadKind);
  EXPECT_DEATH(KvStateMachine().apply(entry(wire::kProtocolVersion, logged + 1)),
               "written by a newer raftkv release");
  EXPECT_DEATH(KvStateMachine().apply(entry(wire::kProtocolVersion + 1, logged)),
               "written by a newer raftkv release");
  KvStateMachine sm;
  sm.apply(entry(wire::kProtocolVersion, logged));
  sm.applied_batch_done();
  EXPECT_EQ(sm.applied_index(), Index(1));
  EXPECT_EQ(sm.key_count(), 0u);
}

TEST(KvStateTest, OpenRefusesForeignDirectories) {
  TempDir tmp;
  fs::create_directories(tmp.sub("junk"));
  { std::ofstream(tmp.sub("junk") + "/file") << "x"; }
  std::string error;
  EXPECT_EQ(RocksKvStore::open(tmp.sub("junk"), {}, &error), nullptr);
  EXPECT_NE(error.find("holds no RocksDB store"), std::string::npos) << error;
  { std::ofstream(tmp.sub("file")) << "x"; }
  EXPECT_EQ(RocksKvStore::open(tmp.sub("file"), {}, &error), nullptr);
  EXPECT_NE(error.find("not a directory"), std::string::npos) << error;
}

}  // namespace
}  // namespace raftkv::kv
