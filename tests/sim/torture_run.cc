#include "tests/sim/torture_run.h"

#include <map>

#include <fmt/format.h>

#include "tests/sim/cluster.h"

namespace raftkv::sim {

namespace {

struct Swarm {
  SimOptions opts;
  NetworkFaults faults;
  int safety_ms;
  int action_every_ms;
  uint64_t burst;  // proposals per action: 1..burst
  double p_crash, p_partition, p_heal, p_transfer, p_read;
  // Targeted faults: where the interesting bugs live.
  double p_crash_leader, p_isolate_leader, p_crash_unsynced;
};

Swarm choose(uint64_t seed) {
  raft::Rng r(seed ^ 0x5eed5eed5eedULL);
  Swarm s;
  s.opts.seed = seed;
  s.opts.nodes = r.chance(0.6) ? 3 : 5;
  s.opts.tick_ms = 10;
  s.opts.raft.election_ticks = 10;
  s.opts.raft.heartbeat_ticks = 1 + static_cast<int>(r.below(3));
  s.opts.raft.pre_vote = r.chance(0.8);
  s.opts.raft.check_quorum = r.chance(0.8);
  s.opts.raft.max_inflight_msgs = r.chance(0.3) ? 1 + r.below(3) : 64;
  s.opts.raft.max_msg_bytes = r.chance(0.3) ? 64 + r.below(256) : 1 << 20;
  s.opts.raft.max_snapshot_chunk = 8 + r.below(512);
  s.opts.snapshot_every = r.chance(0.5) ? 3 + r.below(40) : 0;
  s.opts.max_disk_delay = r.chance(0.6) ? static_cast<int>(r.below(30)) : 0;
  s.faults.drop = r.chance(0.7) ? r.below(30) / 100.0 : 0;
  s.faults.duplicate = r.chance(0.5) ? r.below(10) / 100.0 : 0;
  s.faults.min_delay = 0;
  s.faults.max_delay = 1 + static_cast<int>(r.below(30));
  s.faults.long_delay = r.chance(0.3) ? r.below(10) / 100.0 : 0;
  s.safety_ms = 3000 + static_cast<int>(r.below(7000));
  s.action_every_ms = 5 + static_cast<int>(r.below(50));
  s.burst = 1 + r.below(8);
  s.p_crash = r.below(10) / 100.0;
  s.p_partition = r.below(10) / 100.0;
  s.p_heal = 0.05 + r.below(20) / 100.0;
  s.p_transfer = r.below(5) / 100.0;
  s.p_read = r.below(30) / 100.0;
  s.p_crash_leader = r.below(10) / 100.0;
  s.p_isolate_leader = r.below(10) / 100.0;
  s.p_crash_unsynced = r.chance(0.5) ? r.below(30) / 100.0 : 0;
  return s;
}

std::string describe_swarm(const Swarm& s) {
  return fmt::format(
      "nodes={} hb={} prevote={} checkquorum={} inflight={} msgbytes={} chunk={} snapevery={} "
      "diskdelay={} drop={} dup={} maxdelay={} longdelay={} safety={}ms every={}ms crash={} "
      "partition={} heal={} transfer={} read={} crashleader={} isolateleader={} crashunsynced={}",
      s.opts.nodes, s.opts.raft.heartbeat_ticks, s.opts.raft.pre_vote, s.opts.raft.check_quorum,
      s.opts.raft.max_inflight_msgs, s.opts.raft.max_msg_bytes, s.opts.raft.max_snapshot_chunk,
      s.opts.snapshot_every, s.opts.max_disk_delay, s.faults.drop, s.faults.duplicate,
      s.faults.max_delay, s.faults.long_delay, s.safety_ms, s.action_every_ms, s.p_crash,
      s.p_partition, s.p_heal, s.p_transfer, s.p_read, s.p_crash_leader, s.p_isolate_leader,
      s.p_crash_unsynced);
}

}  // namespace

TortureResult run_torture_seed(uint64_t seed, bool verbose) {
  Swarm s = choose(seed);
  TortureResult res;
  res.settings = describe_swarm(s);
  raft::Rng r(seed * 0x9E3779B97F4A7C15ULL + 17);
  Cluster c(s.opts);
  c.set_faults(s.faults);
  const auto ids = c.ids();
  auto pick = [&] { return ids[r.below(ids.size())]; };
  uint64_t next_cmd = 0;
  uint64_t next_read = 0;
  std::map<uint64_t, Index> read_floor;  // context -> index it must reach
  std::map<uint64_t, NodeId> read_node;

  auto check_reads = [&] {
    for (NodeId n : ids) {
      for (const raft::ReadState& rs : c.take_read_states(n)) {
        auto it = read_floor.find(rs.context);
        if (it == read_floor.end()) throw SimFailure(fmt::format("unknown read {}", rs.context));
        // ReadIndex linearizability (Thesis §6.4): the read index covers
        // every write acknowledged before the read began.
        if (rs.index < it->second) {
          throw SimFailure(fmt::format("stale read: ctx {} on node {} got index {} < {}",
                                       rs.context, n, rs.index, it->second));
        }
        read_floor.erase(it);
        ++res.reads;
      }
      for (uint64_t ctx : c.take_failed_reads(n))
        read_floor.erase(ctx);
    }
  };

  try {
    // Safety phase: faults and client load.
    while (c.now() < static_cast<uint64_t>(s.safety_ms)) {
      c.run_for(s.action_every_ms);
      check_reads();
      for (uint64_t k = 1 + r.below(s.burst); k > 0; --k) {
        NodeId n = pick();
        if (c.alive(n)) c.propose(n, fmt::format("c{}", next_cmd++));
      }
      if (r.chance(s.p_read)) {
        NodeId rn = pick();
        if (c.alive(rn)) {
          read_floor[next_read] = c.max_applied_anywhere();
          read_node[next_read] = rn;
          c.read_index(rn, next_read++);
        }
      }
      if (r.chance(s.p_crash)) {
        NodeId v = pick();
        if (c.alive(v)) {
          c.crash(v);
        } else {
          c.restart(v);
        }
      }
      if (auto l = c.any_leader()) {
        if (r.chance(s.p_crash_leader)) {
          c.crash(*l);
        } else if (r.chance(s.p_isolate_leader)) {
          c.disconnect(*l);
        }
      }
      for (NodeId v : ids)
        if (c.alive(v) && c.has_unsynced_writes(v) && r.chance(s.p_crash_unsynced)) c.crash(v);
      for (NodeId v : ids)
        if (!c.alive(v) && r.chance(0.1)) c.restart(v);
      if (r.chance(s.p_partition)) {
        std::vector<std::vector<NodeId>> groups(1 + r.below(3));
        for (NodeId v : ids)
          groups[r.below(groups.size())].push_back(v);
        c.partition(groups);
      }
      if (r.chance(s.p_heal)) c.heal();
      if (r.chance(s.p_transfer)) {
        for (NodeId v : ids) {
          if (c.alive(v) && c.raft(v).role() == raft::Role::kLeader) {
            // Leadership transfer is exercised through the public API.
            const_cast<raft::Raft&>(c.raft(v)).transfer_leadership(pick());
          }
        }
      }
      if (verbose && c.now() % 500 < static_cast<uint64_t>(s.action_every_ms))
        fmt::print("{}", c.describe());
    }
    // Liveness phase: heal everything; a leader must emerge and commit.
    c.heal();
    for (NodeId v : ids)
      if (!c.alive(v)) c.restart(v);
    c.set_faults(NetworkFaults{});
    c.set_max_disk_delay(0);
    std::string probe = fmt::format("liveness-{}", seed);
    bool committed = false;
    uint64_t deadline = c.now() + 10000;
    while (!committed && c.now() < deadline) {
      c.run_for(50);
      for (NodeId v : ids) {
        if (c.raft(v).role() != raft::Role::kLeader) continue;
        auto pr = c.propose(v, probe);
        if (pr.status != raft::ProposeResult::Status::kAccepted) continue;
        committed = c.wait_committed(pr.index, c.size(), 3000);
        std::string got;
        if (committed) c.n_committed(pr.index, &got);
        committed = committed && got == probe;
        break;
      }
    }
    if (!committed) throw SimFailure("liveness: no commit within 10 s after all faults healed");
    check_reads();
    c.check_log_matching_full();
    res.committed = c.max_applied_anywhere().value;
    res.elections = c.elections_won();
    res.trace_hash = c.trace_hash();
  } catch (const SimFailure& e) {
    res.ok = false;
    res.failure = fmt::format("{}\n{}", e.what(), c.describe());
  }
  return res;
}

}  // namespace raftkv::sim
