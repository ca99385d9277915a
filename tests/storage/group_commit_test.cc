#include "raft/node/group_commit.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/storage/storage_test_util.h"

namespace raftkv::raft {
namespace {

using testing::make_entry;
using testing::must_open;
using testing::TempDir;

std::string producer_data(int producer, int seq) {
  return fmt::format("p{}:{}", producer, seq);
}

TEST(GroupCommitTest, ConcurrentProducersShareFsyncs) {
  constexpr int kProducers = 8;
  constexpr int kPerProducer = 200;
  constexpr int kTotal = kProducers * kPerProducer;
  TempDir tmp;
  std::string dir = tmp.sub("db");
  auto store = must_open(dir);
  ASSERT_TRUE(store);

  // completed[p]: the seqs of producer p in the order their callbacks ran.
  // Only the storage thread appends; the main thread reads after the join
  // in ~GroupCommitter.
  std::vector<std::vector<int>> completed(kProducers);
  std::atomic<int> calls{0};
  std::promise<void> all_done;
  GroupCommitter::Stats stats;
  {
    GroupCommitter committer(*store);
    // Raft assigns indexes in order, so taking the next index and queueing
    // the request happen together; everything else runs concurrently with
    // the storage thread's fsyncs.
    std::mutex order_mu;
    uint64_t next_index = 1;
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int seq = 0; seq < kPerProducer; ++seq) {
          std::lock_guard lock(order_mu);
          WriteRequest req;
          req.entries = {make_entry(next_index, 1, producer_data(p, seq))};
          req.hard_state = HardState{Term(1), NodeId(1), Index(next_index - 1)};
          ++next_index;
          bool accepted = committer.submit(std::move(req), [&, p, seq] {
            completed[p].push_back(seq);
            if (calls.fetch_add(1) + 1 == kTotal) all_done.set_value();
          });
          ASSERT_TRUE(accepted);
        }
      });
    }
    for (std::thread& t : producers)
      t.join();
    all_done.get_future().wait();
    stats = committer.stats();
  }
  EXPECT_EQ(calls.load(), kTotal);
  for (int p = 0; p < kProducers; ++p) {
    ASSERT_EQ(completed[p].size(), static_cast<size_t>(kPerProducer)) << "producer " << p;
    for (int seq = 0; seq < kPerProducer; ++seq)
      EXPECT_EQ(completed[p][seq], seq);
  }

  EXPECT_EQ(stats.requests, static_cast<uint64_t>(kTotal));
  EXPECT_EQ(stats.entries, static_cast<uint64_t>(kTotal));
  std::printf(
      "group commit, %d producers: %lu requests, %lu batches, %lu syncs: %.3f syncs per "
      "request, %.3f fsyncs per entry\n",
      kProducers, static_cast<unsigned long>(stats.requests),
      static_cast<unsigned long>(stats.batches), static_cast<unsigned long>(stats.syncs),
      static_cast<double>(stats.syncs) / static_cast<double>(stats.requests),
      static_cast<double>(stats.syncs) / static_cast<double>(stats.entries));
  ::testing::Test::RecordProperty("syncs", static_cast<int>(stats.syncs));
  ::testing::Test::RecordProperty("requests", static_cast<int>(stats.requests));
  EXPECT_LT(stats.syncs, stats.requests);

  store.reset();
  store = must_open(dir);
  ASSERT_EQ(store->last_index(), Index(kTotal));
  std::vector<Entry> all = store->entries(Index(1), Index(kTotal + 1), SIZE_MAX);
  ASSERT_EQ(all.size(), static_cast<size_t>(kTotal));
  std::vector<int> next_seq(kProducers, 0);
  for (const Entry& e : all) {
    // Each producer's entries appear in its own order.
    int p = 0, seq = 0;
    ASSERT_EQ(std::sscanf(std::string(e.data.view()).c_str(), "p%d:%d", &p, &seq), 2);
    EXPECT_EQ(seq, next_seq[p]++);
  }
  EXPECT_EQ(store->hard_state().commit, Index(kTotal - 1));
}

// Clients that each wait for their own write before sending the next, as
// Raft clients waiting for a commit do: every fsync is shared by the
// requests of the clients that arrived while the previous one ran.
TEST(GroupCommitTest, WaitingClientsShareFsyncs) {
  constexpr int kClients = 16;
  constexpr int kPerClient = 40;
  TempDir tmp;
  std::string dir = tmp.sub("db");
  auto store = must_open(dir);
  ASSERT_TRUE(store);
  GroupCommitter::Stats stats;
  {
    GroupCommitter committer(*store);
    std::mutex order_mu;
    uint64_t next_index = 1;
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        for (int seq = 0; seq < kPerClient; ++seq) {
          std::promise<void> durable;
          {
            std::lock_guard lock(order_mu);
            WriteRequest req;
            req.entries = {make_entry(next_index++, 1, producer_data(c, seq))};
            bool accepted = committer.submit(std::move(req), [&] { durable.set_value(); });
            ASSERT_TRUE(accepted);
          }
          durable.get_future().wait();
        }
      });
    }
    for (std::thread& t : clients)
      t.join();
    stats = committer.stats();
  }
  EXPECT_EQ(stats.requests, static_cast<uint64_t>(kClients * kPerClient));
  std::printf(
      "group commit, %d waiting clients: %lu requests, %lu syncs: %.3f syncs per request "
      "(%.1f requests per fsync)\n",
      kClients, static_cast<unsigned long>(stats.requests), static_cast<unsigned long>(stats.syncs),
      static_cast<double>(stats.syncs) / static_cast<double>(stats.requests),
      static_cast<double>(stats.requests) / static_cast<double>(stats.syncs));
  EXPECT_LT(stats.syncs, stats.requests);
  store.reset();
  store = must_open(dir);
  EXPECT_EQ(store->last_index(), Index(kClients * kPerClient));
}

TEST(GroupCommitTest, CountersCoverEveryRequestOnceDrained) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  constexpr int kRequests = 300;
  std::promise<void> all_done;
  std::atomic<int> calls{0};
  GroupCommitter committer(*store);
  for (int i = 1; i <= kRequests; ++i) {
    WriteRequest req;
    req.entries = {make_entry(i, 1)};
    req.sync = (i % 3 != 0);
    ASSERT_TRUE(committer.submit(std::move(req), [&] {
      if (calls.fetch_add(1) + 1 == kRequests) all_done.set_value();
    }));
  }
  all_done.get_future().wait();
  GroupCommitter::Stats s = committer.stats();
  EXPECT_EQ(s.requests, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(s.entries, static_cast<uint64_t>(kRequests));
  EXPECT_LE(s.syncs, s.batches);
  EXPECT_GE(s.syncs, 1u);
  std::printf("single producer: %lu requests, %lu batches, %lu syncs (%.3f syncs per request)\n",
              static_cast<unsigned long>(s.requests), static_cast<unsigned long>(s.batches),
              static_cast<unsigned long>(s.syncs), static_cast<double>(s.syncs) / s.requests);
  EXPECT_EQ(store->last_index(), Index(kRequests));
}

TEST(GroupCommitTest, CallbacksRunInSubmissionOrder) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  std::vector<int> order;  // storage thread only, until the join
  {
    GroupCommitter committer(*store);
    for (int i = 1; i <= 100; ++i) {
      ASSERT_TRUE(committer.submit(testing::append_request({make_entry(i, 1)}),
                                   [&order, i] { order.push_back(i); }));
    }
  }
  ASSERT_EQ(order.size(), 100u);
  for (int i = 1; i <= 100; ++i)
    EXPECT_EQ(order[i - 1], i);
  EXPECT_EQ(store->last_index(), Index(100));
}

TEST(GroupCommitTest, TrySubmitRefusesWhenTheQueueIsFull) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  std::promise<void> started, gate;
  std::shared_future<void> gate_open = gate.get_future().share();
  std::atomic<int> calls{0};
  {
    GroupCommitter committer(*store, /*max_pending=*/2);
    // The first callback holds the storage thread, so the queue fills.
    ASSERT_TRUE(committer.submit(testing::append_request({make_entry(1, 1)}), [&] {
      started.set_value();
      gate_open.wait();
      calls.fetch_add(1);
    }));
    started.get_future().wait();
    for (uint64_t i = 2; i <= 3; ++i) {
      WriteRequest req = testing::append_request({make_entry(i, 1)});
      GroupCommitter::Done done = [&] { calls.fetch_add(1); };
      ASSERT_TRUE(committer.try_submit(std::move(req), std::move(done)));
    }
    WriteRequest refused = testing::append_request({make_entry(4, 1)});
    GroupCommitter::Done refused_done = [&] { calls.fetch_add(100); };
    EXPECT_FALSE(committer.try_submit(std::move(refused), std::move(refused_done)));
    // A refusal leaves the request with the caller, for a retry.
    ASSERT_EQ(refused.entries.size(), 1u);
    EXPECT_EQ(refused.entries[0].index, Index(4));
    EXPECT_TRUE(static_cast<bool>(refused_done));
    gate.set_value();
  }
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(store->last_index(), Index(3));
}

TEST(GroupCommitTest, BlockedProducerResumesWhenRoomFrees) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  std::atomic<int> calls{0};
  {
    GroupCommitter committer(*store, /*max_pending=*/1);
    // With room for one request, each submit waits for the previous group;
    // none is lost or reordered.
    for (uint64_t i = 1; i <= 50; ++i) {
      ASSERT_TRUE(committer.submit(testing::append_request({make_entry(i, 1)}),
                                   [&] { calls.fetch_add(1); }));
    }
  }
  EXPECT_EQ(calls.load(), 50);
  EXPECT_EQ(store->last_index(), Index(50));
}

TEST(GroupCommitTest, WriteNowWritesOnTheCallerOnlyWhenNothingIsQueuedOrWriting) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  std::promise<void> started, gate;
  std::shared_future<void> gate_open = gate.get_future().share();
  std::vector<int> done;  // storage thread only, until the join
  {
    GroupCommitter committer(*store);
    ASSERT_TRUE(committer.write_now(testing::append_request({make_entry(1, 1)})));
    // Written (and synced) before it returned.
    EXPECT_EQ(store->last_index(), Index(1));
    // While the storage thread holds a group, write_now() must not overtake it.
    ASSERT_TRUE(committer.submit(testing::append_request({make_entry(2, 1)}), [&] {
      done.push_back(2);
      started.set_value();
      gate_open.wait();
    }));
    started.get_future().wait();
    EXPECT_FALSE(committer.write_now(testing::append_request({make_entry(3, 1)})));
    // Nor a queued request.
    ASSERT_TRUE(
        committer.submit(testing::append_request({make_entry(3, 1)}), [&] { done.push_back(3); }));
    EXPECT_FALSE(committer.write_now(testing::append_request({make_entry(4, 1)})));
    EXPECT_EQ(store->last_index(), Index(2));
    gate.set_value();
  }
  EXPECT_EQ(done, (std::vector<int>{2, 3}));
  EXPECT_EQ(store->last_index(), Index(3));
}

TEST(GroupCommitTest, WriteNowAndSubmitInterleavedKeepTheLogInOrder) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  constexpr uint64_t kWrites = 400;
  std::atomic<uint64_t> completed{0};
  uint64_t inline_writes = 0;
  GroupCommitter::Stats stats;
  {
    GroupCommitter committer(*store);
    for (uint64_t i = 1; i <= kWrites; ++i) {
      WriteRequest req = testing::append_request({make_entry(i, 1)});
      // As RaftNode does: inline only when nothing handed over is pending.
      if (completed.load() == i - 1 - inline_writes && i % 3 != 0 && committer.write_now(req)) {
        ++inline_writes;
        continue;
      }
      ASSERT_TRUE(committer.submit(std::move(req), [&] { completed.fetch_add(1); }));
    }
    while (completed.load() + inline_writes < kWrites)
      std::this_thread::yield();
    stats = committer.stats();
  }
  EXPECT_GT(inline_writes, 0u);
  EXPECT_EQ(stats.requests, kWrites);
  EXPECT_EQ(stats.entries, kWrites);
  ASSERT_EQ(store->last_index(), Index(kWrites));
  std::vector<Entry> all = store->entries(Index(1), Index(kWrites + 1), SIZE_MAX);
  ASSERT_EQ(all.size(), kWrites);
  for (uint64_t i = 1; i <= kWrites; ++i)
    EXPECT_EQ(all[i - 1].index, Index(i));
}

// Pacing with a long window: a hold ends only through what the test does.
WritePacing long_hold() {
  WritePacing p;
  p.window = std::chrono::seconds(30);
  return p;
}

// A committer with long_hold(), right after a write of entries 1-40.
std::unique_ptr<GroupCommitter> committer_after_a_large_write(RocksLogStore& store) {
  auto committer =
      std::make_unique<GroupCommitter>(store, GroupCommitter::kDefaultMaxPending, long_hold());
  EXPECT_TRUE(committer->write_now(testing::append_request(testing::make_entries(1, 40, 1))));
  return committer;
}

// Runs `submit` and returns a future that is ready once its request is done.
std::future<void> submit_and_watch(GroupCommitter& committer, WriteRequest req) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  EXPECT_TRUE(committer.submit(std::move(req), [done] { done->set_value(); }));
  return f;
}

TEST(GroupCommitTest, OnlyAFewEntriesRightAfterALargeWriteAreHeld) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  const WritePacing pacing = long_hold();
  GroupCommitter committer(*store, GroupCommitter::kDefaultMaxPending, pacing);
  // Nothing written yet, and after a small write: nothing waits.
  EXPECT_FALSE(committer.hold_until(1));
  ASSERT_TRUE(committer.write_now(testing::append_request(testing::make_entries(1, 1, 1))));
  EXPECT_FALSE(committer.hold_until(1));
  // After a large one: fewer than small_write entries wait, within the window.
  const auto before = GroupCommitter::Clock::now();
  ASSERT_TRUE(committer.write_now(testing::append_request(testing::make_entries(2, 41, 1))));
  const std::optional<GroupCommitter::Clock::time_point> until = committer.hold_until(1);
  ASSERT_TRUE(until);
  EXPECT_GT(*until, before);
  EXPECT_LE(*until, GroupCommitter::Clock::now() + pacing.window);
  EXPECT_TRUE(committer.hold_until(pacing.small_write - 1));
  EXPECT_FALSE(committer.hold_until(pacing.small_write));
  EXPECT_FALSE(committer.hold_until(0));
  // A write of small_write entries goes at once, held or not by anything.
  std::future<void> enough =
      submit_and_watch(committer, testing::append_request(testing::make_entries(42, 49, 1)));
  ASSERT_EQ(enough.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "a write of small_write entries was held";
  EXPECT_EQ(committer.stats().held, 0u);
}

TEST(GroupCommitTest, AHeldWriteGoesWhenTheWindowEnds) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  WritePacing pacing;
  pacing.window = std::chrono::seconds(5);
  GroupCommitter committer(*store, GroupCommitter::kDefaultMaxPending, pacing);
  ASSERT_TRUE(committer.write_now(testing::append_request(testing::make_entries(1, 40, 1))));
  const auto large_written = GroupCommitter::Clock::now();
  std::future<void> lone =
      submit_and_watch(committer, testing::append_request(testing::make_entries(41, 41, 1)));
  ASSERT_EQ(lone.wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(committer.stats().held, 1u);
  // It went at the end of the window (timers never fire early; the margin
  // covers the moments between the large write's end and `large_written`).
  EXPECT_GE(GroupCommitter::Clock::now() - large_written, pacing.window / 2);
  EXPECT_EQ(store->last_index(), Index(41));
}

// A lone entry submitted right after a write of 40, held by long_hold().
class GroupCommitHoldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = must_open(tmp_.sub("db"));
    ASSERT_TRUE(store_);
    committer_ = committer_after_a_large_write(*store_);
    batches_before_ = committer_->stats().batches;
    lone_ =
        submit_and_watch(*committer_, testing::append_request(testing::make_entries(41, 41, 1)));
    // The window is 30 s: the lone entry is still waiting after 300 ms,
    // however slow the machine.
    ASSERT_EQ(lone_.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
    EXPECT_EQ(committer_->stats().held, 1u);
    EXPECT_EQ(store_->last_index(), Index(40));
  }

  TempDir tmp_;
  std::unique_ptr<RocksLogStore> store_;
  std::unique_ptr<GroupCommitter> committer_;
  uint64_t batches_before_ = 0;
  std::future<void> lone_;
};

TEST_F(GroupCommitHoldTest, AHeldWriteGoesWithTheEntriesThatJoinIt) {
  // Company: ten more entries end the hold long before the window does.
  std::future<void> company =
      submit_and_watch(*committer_, testing::append_request(testing::make_entries(42, 51, 1)));
  ASSERT_EQ(lone_.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_EQ(company.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(committer_->stats().batches, batches_before_ + 1) << "not written as one group";
  EXPECT_EQ(store_->last_index(), Index(51));
}

TEST_F(GroupCommitHoldTest, AVoteIsNeverHeld) {
  // A hard state alone (a vote for a new term) ends the hold: it must not
  // wait, and the entry before it goes with it.
  WriteRequest vote;
  vote.hard_state = HardState{Term(2), NodeId(2), Index(0)};
  std::future<void> voted = submit_and_watch(*committer_, std::move(vote));
  ASSERT_EQ(voted.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  ASSERT_EQ(lone_.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(store_->hard_state().term, Term(2));
  EXPECT_EQ(store_->last_index(), Index(41));
}

TEST(GroupCommitTest, DestroyingTheCommitterEndsAHold) {
  TempDir tmp;
  auto store = must_open(tmp.sub("db"));
  ASSERT_TRUE(store);
  std::atomic<bool> written{false};
  const auto start = GroupCommitter::Clock::now();
  {
    std::unique_ptr<GroupCommitter> committer = committer_after_a_large_write(*store);
    ASSERT_TRUE(committer->submit(testing::append_request(testing::make_entries(41, 41, 1)),
                                  [&] { written = true; }));
  }
  EXPECT_TRUE(written.load());
  EXPECT_EQ(store->last_index(), Index(41));
  EXPECT_LT(GroupCommitter::Clock::now() - start, std::chrono::seconds(25))
      << "the destructor waited out the window";
}

}  // namespace
}  // namespace raftkv::raft
