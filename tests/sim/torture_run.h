// One randomized fault schedule ("swarm" testing: the seed also picks the
// fault rates and knobs), then a liveness phase. Used by raft_torture and by
// the determinism test.
#pragma once

#include <cstdint>
#include <string>

namespace raftkv::sim {

struct TortureResult {
  bool ok = true;
  std::string failure;   // what broke, with the cluster state
  std::string settings;  // the swarm choices for this seed
  uint64_t trace_hash = 0;
  uint64_t committed = 0;  // proposals that committed
  uint64_t reads = 0;      // ReadIndex results checked
  uint64_t elections = 0;
};

TortureResult run_torture_seed(uint64_t seed, bool verbose);

}  // namespace raftkv::sim
