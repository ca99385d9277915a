// Simulator self-tests and properties beyond the 6.824 scenarios.
#include <gtest/gtest.h>

#include "tests/sim/cluster.h"

namespace raftkv::sim {
namespace {

SimOptions lab_options(int nodes, uint64_t seed = 1) {
  SimOptions o;
  o.nodes = nodes;
  o.seed = seed;
  o.tick_ms = 10;
  o.raft.heartbeat_ticks = 10;  // 100 ms, as the 6.824 tester expects
  o.raft.election_ticks = 30;   // 300-600 ms
  return o;
}

TEST(Sim, ElectsOneLeaderAndCommits) {
  Cluster c(lab_options(3));
  NodeId l = c.check_one_leader();
  EXPECT_NE(l, raft::kNoNode);
  Index i = c.one("x", 3, false);
  EXPECT_GT(i, Index(0));
}

}  // namespace
}  // namespace raftkv::sim
