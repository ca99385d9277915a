// Differential test: random sequences of writes, snapshot installs,
// compactions and restarts applied to both RocksLogStore and the reference
// MemoryStorage; every LogReader answer must agree after every step.
//
// Replay one failing seed with RAFTKV_STORAGE_SEED=<seed> (and optionally
// RAFTKV_STORAGE_STEPS=<n>).
#include <cstdlib>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "raft/core/memory_storage.h"
#include "raft/core/random.h"
#include "raft/node/rocks_log_store.h"
#include "raft/node/rocks_log_store_internal.h"
#include "tests/storage/storage_test_util.h"

namespace raftkv::raft {
namespace {

using testing::TempDir;

class DifferentialRun {
 public:
  DifferentialRun(uint64_t seed, const std::string& dir)
      : rng_(seed), dir_(dir), mem_(random_voters()) {
    RocksLogStoreOptions options;
    options.initial_voters = mem_.snapshot_meta().voters;
    store_ = testing::must_open(dir_, options);
  }

  // Runs `steps` random operations, comparing after each. Returns the step
  // that first disagreed, or -1.
  int run(int steps) {
    if (!store_) return 0;
    for (int step = 0; step < steps; ++step) {
      last_op_ = do_random_op();
      if (!store_ || !compare()) return step;
    }
    return -1;
  }

  const std::string& last_op() const { return last_op_; }

 private:
  std::vector<NodeId> random_voters() {
    std::vector<NodeId> v;
    for (uint64_t n = 1; n <= 5; ++n) {
      if (rng_.chance(0.6)) v.push_back(NodeId(n));
    }
    if (v.empty()) v.push_back(NodeId(1 + rng_.below(5)));
    return v;
  }

  Bytes random_bytes(size_t max) {
    size_t n = rng_.below(max + 1);
    std::string s(n, '\0');
    for (char& c : s)
      c = static_cast<char>(rng_.next());
    return Bytes(std::move(s));
  }

  Bytes random_payload() {
    if (rng_.chance(0.05)) return Bytes();
    return random_bytes(rng_.chance(0.8) ? 40 : 3000);
  }

  Term term_at(Index i) const { return *mem_.term(i); }

  // Entries shaped like a Raft append: they start at most one past the end,
  // never rewrite at or below the commit index with a shorter log, and
  // their terms never decrease. Some start at or below the snapshot, which
  // both stores must skip.
  std::vector<Entry> random_entries() {
    Index snap = mem_.snapshot_meta().index;
    Index last = mem_.last_index();
    Index commit = mem_.hard_state().commit;
    Index from;
    uint64_t r = rng_.below(10);
    if (r < 6) {
      from = last + 1;
    } else if (r < 9) {
      Index lo = std::max(commit, snap) + 1;
      from = lo + rng_.below(last + 2 - lo);
    } else {
      from =
          Index(std::max<uint64_t>(1, snap.value - std::min<uint64_t>(snap.value, rng_.below(3))));
    }
    uint64_t count = 1 + rng_.below(5);
    if (from <= commit) count = std::max<uint64_t>(count, commit - from + 1);
    uint64_t term = term_at(std::max(from - 1, snap)).value + (rng_.chance(0.3) ? 1 : 0);
    std::vector<Entry> out;
    for (uint64_t k = 0; k < count; ++k) {
      if (rng_.chance(0.1)) ++term;
      out.push_back(Entry{Term(term), from + k,
                          rng_.chance(0.1) ? EntryType::kNoop : EntryType::kNormal,
                          random_payload()});
    }
    return out;
  }

  HardState random_hard_state() {
    HardState hs = mem_.hard_state();
    hs.term = Term(std::max(hs.term, term_at(mem_.last_index())).value + rng_.below(2));
    hs.vote = NodeId(rng_.below(4));
    hs.commit = hs.commit + rng_.below(mem_.last_index() - hs.commit + 1);
    return hs;
  }

  Snapshot random_snapshot() {
    Index lo = std::max(mem_.snapshot_meta().index, mem_.hard_state().commit);
    Index index = lo + rng_.below(mem_.last_index() + 6 - lo);
    Term term(std::max(term_at(mem_.last_index()), mem_.snapshot_meta().term).value +
              rng_.below(2));
    Bytes data = rng_.chance(0.02) ? random_bytes(RocksLogStore::kSnapshotChunkBytes * 2)
                                   : random_bytes(3000);
    return Snapshot{SnapshotMeta{index, term, random_voters()}, data};
  }

  // Builds one request against the model and applies it there.
  WriteRequest random_request(std::string& what) {
    WriteRequest req;
    req.sync = rng_.chance(0.1);  // speed; reopen is a clean close
    if (rng_.chance(0.1)) {
      req.snapshot = random_snapshot();
      mem_.write_snapshot_chunk({req.snapshot->meta, 0, req.snapshot->data});
      mem_.install_snapshot(req.snapshot->meta);
      what += fmt::format("snapshot@{} ", req.snapshot->meta.index);
    }
    if (rng_.chance(0.85)) {
      req.entries = random_entries();
      mem_.append(req.entries);
      what += fmt::format("entries[{}..{}] ", req.entries.front().index, req.entries.back().index);
    }
    if (rng_.chance(0.4)) {
      req.hard_state = random_hard_state();
      mem_.set_hard_state(*req.hard_state);
      what += fmt::format("hs(commit {}) ", req.hard_state->commit);
    }
    return req;
  }

  std::string do_random_op() {
    uint64_t r = rng_.below(100);
    std::string what;
    if (r < 60) {
      store_->write(random_request(what));
      return "write " + what;
    }
    if (r < 75) {
      std::vector<WriteRequest> reqs(2 + rng_.below(3));
      std::vector<const WriteRequest*> ptrs;
      for (WriteRequest& req : reqs) {
        req = random_request(what);
        ptrs.push_back(&req);
        what += "| ";
      }
      store_->write_group(ptrs);
      return "group " + what;
    }
    if (r < 88) {
      Index snap = mem_.snapshot_meta().index;
      Index last = mem_.last_index();
      if (last == snap || rng_.chance(0.1)) {
        StoreStatus st = store_->compact(last + 1, Bytes(), Term(0), {});
        EXPECT_FALSE(st.ok());
        return fmt::format("compact refused beyond {}", last);
      }
      Index index = snap + 1 + rng_.below(last - snap);
      Bytes data = random_bytes(2000);
      Term term = term_at(index);
      StoreStatus st = store_->compact(index, data, term, mem_.snapshot_meta().voters);
      EXPECT_TRUE(st.ok()) << st.error;
      mem_.compact(index, data);
      return fmt::format("compact to {}", index);
    }
    if (r < 94) {
      store_.reset();
      store_ = testing::must_open(dir_);
      return "reopen";
    }
    WriteRequest empty;
    empty.sync = rng_.chance(0.5);
    store_->write(empty);
    return "empty write";
  }

  bool compare() {
    const LogReader& a = *store_;
    const LogReader& b = mem_;
    EXPECT_EQ(a.hard_state(), b.hard_state());
    EXPECT_EQ(a.snapshot_meta(), b.snapshot_meta());
    EXPECT_EQ(a.first_index(), b.first_index());
    EXPECT_EQ(a.last_index(), b.last_index());
    if (::testing::Test::HasFailure()) return false;
    Snapshot sa = *a.snapshot();
    Snapshot sb = *b.snapshot();
    EXPECT_EQ(sa.meta, sb.meta);
    EXPECT_TRUE(sa.data == sb.data) << "snapshot data differs";
    Index snap = b.snapshot_meta().index;
    for (Index i(snap.value - std::min<uint64_t>(snap.value, 2)); i <= b.last_index() + 2; ++i) {
      EXPECT_EQ(a.term(i), b.term(i)) << "term(" << i.value << ")";
    }
    // Reads come from the store's copies of recent entries when it has
    // them; sometimes from RocksDB only.
    if (rng_.chance(0.5)) RocksLogStoreAccess::forget_recent_entries(*store_);
    Index first = b.first_index();
    Index end = b.last_index() + 1;
    EXPECT_EQ(a.entries(first, end, SIZE_MAX), b.entries(first, end, SIZE_MAX));
    for (int k = 0; k < 3; ++k) {
      Index lo = first + rng_.below(end - first + 1);
      Index hi = lo + rng_.below(end - lo + 1);
      size_t max_bytes = rng_.chance(0.3) ? 0 : rng_.chance(0.5) ? rng_.below(3000) : SIZE_MAX;
      EXPECT_EQ(a.entries(lo, hi, max_bytes), b.entries(lo, hi, max_bytes))
          << "entries(" << lo.value << ", " << hi.value << ", " << max_bytes << ")";
    }
    return !::testing::Test::HasFailure();
  }

  Rng rng_;
  std::string dir_;
  MemoryStorage mem_;
  std::unique_ptr<RocksLogStore> store_;
  std::string last_op_;
};

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::strtoull(v, nullptr, 10);
}

TEST(DifferentialTest, RocksLogStoreAnswersLikeMemoryStorage) {
  std::vector<uint64_t> seeds;
  if (std::getenv("RAFTKV_STORAGE_SEED") != nullptr) {
    seeds.push_back(env_or("RAFTKV_STORAGE_SEED", 0));
  } else {
    for (uint64_t s = 1; s <= 10; ++s)
      seeds.push_back(s * 7919);
  }
  int steps = static_cast<int>(env_or("RAFTKV_STORAGE_STEPS", 150));
  for (uint64_t seed : seeds) {
    TempDir tmp;
    DifferentialRun run(seed, tmp.sub("db"));
    int failed_at = run.run(steps);
    ASSERT_EQ(failed_at, -1) << "differential test failed: --seed=" << seed
                             << " (RAFTKV_STORAGE_SEED=" << seed << ") at step " << failed_at
                             << " after: " << run.last_op();
  }
}

}  // namespace
}  // namespace raftkv::raft
