// ProposalWaiters: which waiter learns what, for each way a proposal ends.
#include "raft/node/proposal_waiters.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace raftkv::raft {
namespace {

// A waiter is its name here; what it is told is recorded by the test.
using Waiters = ProposalWaiters<std::string>;

// Takes the waiter at `index` for an applied entry of `term`: it must be
// `who`, and learn whether its own entry was the one applied.
void expect_taken(Waiters& w, Index index, Term term, const std::string& who, bool applied) {
  auto t = w.take(index, term);
  ASSERT_TRUE(t) << "no waiter at " << index.value;
  EXPECT_EQ(t->done, who);
  EXPECT_EQ(t->applied, applied);
}

TEST(ProposalWaiters, AnAppliedEntryAnswersItsWaiterByTerm) {
  Waiters w;
  EXPECT_EQ(w.add(Index(1), Term(2), "a"), std::nullopt);
  EXPECT_EQ(w.add(Index(2), Term(2), "b"), std::nullopt);
  expect_taken(w, Index(1), Term(2), "a", true);
  // Another leader's entry (term 3) landed at index 2: b's was not applied.
  expect_taken(w, Index(2), Term(3), "b", false);
  EXPECT_EQ(w.size(), 0u);
}

TEST(ProposalWaiters, EntriesNobodyWaitsForFindNothing) {
  Waiters w;
  EXPECT_EQ(w.take(Index(5), Term(1)), std::nullopt);
  (void)w.add(Index(7), Term(1), "g");
  EXPECT_EQ(w.take(Index(5), Term(1)), std::nullopt);
  EXPECT_EQ(w.take(Index(8), Term(1)), std::nullopt);
  EXPECT_EQ(w.size(), 1u);
}

TEST(ProposalWaiters, ANewProposalAtAnIndexReplacesTheOverwrittenOne) {
  Waiters w;
  (void)w.add(Index(3), Term(1), "old3");
  (void)w.add(Index(4), Term(1), "old4");
  (void)w.add(Index(5), Term(1), "old5");
  // A new leader term: the log was cut back to 3 and our next proposal is 4.
  EXPECT_EQ(w.add(Index(4), Term(2), "new4"), std::optional<std::string>("old4"));
  expect_taken(w, Index(4), Term(2), "new4", true);
  // The waiter at 5 is still there; the entry applied at 5 tells it.
  expect_taken(w, Index(5), Term(2), "old5", false);
}

TEST(ProposalWaiters, AProposalBelowTheOthersIsKeptInIndexOrder) {
  Waiters w;
  (void)w.add(Index(10), Term(1), "ten");
  (void)w.add(Index(12), Term(1), "twelve");
  // After a leader change the log may be shorter than the waiters' indices.
  EXPECT_EQ(w.add(Index(8), Term(2), "eight"), std::nullopt);
  EXPECT_EQ(w.add(Index(11), Term(2), "eleven"), std::nullopt);
  std::vector<std::string> covered;
  w.take_through(Index(11), [&](std::string d) { covered.push_back(d); });
  EXPECT_EQ(covered, (std::vector<std::string>{"eight", "ten", "eleven"}));
  EXPECT_EQ(w.size(), 1u);
  expect_taken(w, Index(12), Term(1), "twelve", true);
}

TEST(ProposalWaiters, ASnapshotTakesEveryWaiterAtOrBelowItAndNoOther) {
  Waiters w;
  for (uint64_t i = 1; i <= 5; ++i)
    (void)w.add(Index(i), Term(1), std::to_string(i));
  std::vector<std::string> covered;
  w.take_through(Index(3), [&](std::string d) {
    covered.push_back(d);
    // A covered waiter may propose again: the new waiter is kept.
    if (d == "1") (void)w.add(Index(6), Term(1), "6");
  });
  EXPECT_EQ(covered, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(w.size(), 3u);
  expect_taken(w, Index(4), Term(1), "4", true);
  expect_taken(w, Index(6), Term(1), "6", true);
}

// Random adds, takes and snapshots at the ends and in the middle, against a
// std::map of index -> (term, name).
TEST(ProposalWaiters, MatchesAnOrderedMapUnderRandomOperations) {
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed);
    Waiters w;
    std::map<uint64_t, std::pair<uint64_t, std::string>> model;
    for (int step = 0; step < 300; ++step) {
      const uint64_t index = 1 + rng() % 40;
      const uint64_t term = 1 + rng() % 3;
      const std::string name = std::to_string(step);
      switch (rng() % 5) {
        case 0:
        case 1: {
          std::optional<std::string> replaced = w.add(Index(index), Term(term), name);
          auto it = model.find(index);
          ASSERT_EQ(replaced.has_value(), it != model.end()) << "seed " << seed;
          if (replaced) {
            ASSERT_EQ(*replaced, it->second.second) << "seed " << seed;
          }
          model[index] = {term, name};
          break;
        }
        case 2:
        case 3: {
          auto t = w.take(Index(index), Term(term));
          auto it = model.find(index);
          ASSERT_EQ(t.has_value(), it != model.end()) << "seed " << seed;
          if (t) {
            ASSERT_EQ(t->done, it->second.second) << "seed " << seed;
            ASSERT_EQ(t->applied, it->second.first == term) << "seed " << seed;
            model.erase(it);
          }
          break;
        }
        case 4: {
          std::vector<std::string> covered, expected;
          w.take_through(Index(index / 4), [&](std::string d) { covered.push_back(d); });
          while (!model.empty() && model.begin()->first <= index / 4) {
            expected.push_back(model.begin()->second.second);
            model.erase(model.begin());
          }
          ASSERT_EQ(covered, expected) << "seed " << seed;
          break;
        }
      }
      ASSERT_EQ(w.size(), model.size()) << "seed " << seed;
    }
  }
}

}  // namespace
}  // namespace raftkv::raft
