// Cluster-level behaviours on the deterministic simulator.
#include <gtest/gtest.h>

#include "tests/sim/cluster.h"
#include "tests/sim/torture_run.h"

namespace raftkv::sim {
namespace {

SimOptions options(int nodes, uint64_t seed) {
  SimOptions o;
  o.nodes = nodes;
  o.seed = seed;
  o.raft.heartbeat_ticks = 2;
  o.raft.election_ticks = 10;
  return o;
}

TEST(Determinism, SameSeedReplaysTheSameRun) {
  for (uint64_t seed : {3u, 17u, 101u, 4242u}) {
    TortureResult a = run_torture_seed(seed, false);
    TortureResult b = run_torture_seed(seed, false);
    ASSERT_TRUE(a.ok) << "seed " << seed << ": " << a.failure;
    EXPECT_EQ(a.trace_hash, b.trace_hash) << "seed " << seed << " did not replay exactly";
    EXPECT_EQ(a.committed, b.committed) << "seed " << seed;
  }
  EXPECT_NE(run_torture_seed(3, false).trace_hash, run_torture_seed(4, false).trace_hash);
}

TEST(Torture, FiftySeedsPassInProcess) {
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    TortureResult r = run_torture_seed(seed, false);
    EXPECT_TRUE(r.ok) << "seed " << seed << " (replay: raft_torture --seed " << seed
                      << "): " << r.failure << "\nsettings: " << r.settings;
  }
}

TEST(PreVote, PartitionedNodeDoesNotInflateTermsOrDisruptTheLeaderOnReturn) {
  Cluster c(options(3, 7));
  NodeId leader = c.check_one_leader();
  c.run_for(500);  // everyone learns the leader's term
  Term before = c.raft(leader).term();
  NodeId loner = NodeId(leader.value % 3 + 1);
  ASSERT_EQ(c.raft(loner).term(), before);
  c.disconnect(loner);
  c.run_for(5000);  // many election timeouts alone
  EXPECT_EQ(c.raft(loner).term(), before) << "pre-vote should keep the term";
  c.connect(loner);
  c.run_for(2000);
  EXPECT_EQ(c.check_one_leader(), leader);
  EXPECT_EQ(c.raft(leader).term(), before) << "the returning node disrupted the leader";
}

TEST(CheckQuorum, IsolatedLeaderStepsDownAndMajorityElectsANewOne) {
  Cluster c(options(5, 11));
  NodeId old = c.check_one_leader();
  c.disconnect(old);
  c.run_for(1000);
  EXPECT_NE(c.raft(old).role(), raft::Role::kLeader) << "leader kept leading without a quorum";
  NodeId fresh = c.check_one_leader();
  EXPECT_NE(fresh, old);
  c.connect(old);
  c.one("after", 5, true);
}

TEST(LeadershipTransfer, TargetBecomesLeaderWithoutAnElectionTimeoutAndNothingIsLost) {
  Cluster c(options(3, 5));
  NodeId leader = c.check_one_leader();
  Index i = c.one("before", 3, false);
  NodeId target = NodeId(leader.value % 3 + 1);
  const_cast<raft::Raft&>(c.raft(leader)).transfer_leadership(target);
  // Well under one election timeout (100-200 ms here).
  bool moved = c.run_until([&] { return c.raft(target).role() == raft::Role::kLeader; }, 60);
  EXPECT_TRUE(moved) << c.describe();
  c.run_for(200);
  EXPECT_EQ(c.check_one_leader(), target);
  std::string got;
  EXPECT_EQ(c.n_committed(i, &got), 3);
  EXPECT_EQ(got, "before");
  c.one("after", 3, false);
}

TEST(ReadIndex, ReadsAreServedOnlyByAConfirmedLeaderAndCoverAcknowledgedWrites) {
  Cluster c(options(3, 9));
  NodeId leader = c.check_one_leader();
  Index w = c.one("w1", 3, false);
  c.read_index(leader, 1);
  c.run_for(100);
  auto rs = c.take_read_states(leader);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_GE(rs[0].index, w);
  // A leader cut off from everyone cannot confirm leadership.
  c.disconnect(leader);
  c.read_index(leader, 2);
  c.run_for(3000);
  EXPECT_TRUE(c.take_read_states(leader).empty()) << "isolated leader served a read";
  auto failed = c.take_failed_reads(leader);
  EXPECT_EQ(failed, std::vector<uint64_t>{2}) << "the read should fail when the leader steps down";
  // Followers never serve reads from their own state.
  NodeId follower = NodeId(leader.value % 3 + 1);
  c.connect(leader);
  c.run_for(1000);
  NodeId now_leader = c.check_one_leader();
  if (follower == now_leader) follower = NodeId(now_leader.value % 3 + 1);
  c.read_index(follower, 3);
  c.run_for(10);
  EXPECT_EQ(c.take_failed_reads(follower), std::vector<uint64_t>{3});
}

TEST(ReadIndex, ConcurrentReadsShareOneHeartbeatRound) {
  Cluster c(options(3, 13));
  NodeId leader = c.check_one_leader();
  c.one("w", 3, false);
  c.run_for(100);
  uint64_t hb_before = c.messages_sent(raft::MessageType::kHeartbeat);
  for (uint64_t ctx = 1; ctx <= 100; ++ctx)
    c.read_index(leader, ctx);
  c.run_for(5);  // less than a heartbeat interval
  uint64_t hb_after = c.messages_sent(raft::MessageType::kHeartbeat);
  EXPECT_EQ(c.take_read_states(leader).size(), 100u);
  EXPECT_LE(hb_after - hb_before, 2u) << "100 reads should need one round to 2 followers";
}

TEST(Liveness, AfterEveryFaultHealsALeaderCommitsWithinBoundedTime) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Cluster c(options(5, seed));
    NetworkFaults f;
    f.drop = 0.3;
    f.duplicate = 0.1;
    f.min_delay = 0;
    f.max_delay = 40;
    f.long_delay = 0.05;
    c.set_faults(f);
    for (int round = 0; round < 10; ++round) {
      c.partition({{NodeId(1), NodeId(2)}, {NodeId(3), NodeId(4), NodeId(5)}});
      c.propose(NodeId(round % 5 + 1), "x");
      c.run_for(300);
      c.heal();
      c.crash(NodeId(round % 5 + 1));
      c.run_for(200);
      c.restart(NodeId(round % 5 + 1));
    }
    c.heal();
    c.set_faults({});
    // Bounded: 6.824 allows 10 s for agreement after healing.
    EXPECT_NO_THROW(c.one(fmt::format("live-{}", seed), 5, true, 10000)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace raftkv::sim
