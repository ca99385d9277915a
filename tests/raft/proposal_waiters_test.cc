// ProposalWaiters: which waiter learns what, for each way a proposal ends.
#include "raft/node/proposal_waiters.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace raftkv::raft
