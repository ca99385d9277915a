// MIT 6.824 Lab 2 (Raft) tests, ported to the deterministic simulator.
//
// Each TEST mirrors one test of 6.824's src/raft/test_test.go and config.go
// (the 2023 version, which also has FollowerFailure, LeaderFailure,
// SnapshotAllCrash and SnapshotInit, and whose snapcommon sends a random
// 5..14 commands per round) and keeps its assertions. Adaptations:
//
//  * Time. time.Sleep(ms) becomes c.run_for(ms) of virtual time;
//    RaftElectionTimeout = 1000 ms as in 6.824. The cluster runs lab_options():
//    10 ms ticks, 100 ms heartbeats, 300-600 ms election timeouts. one() gives
//    up after 10 s and waits 2 s per attempt, checkOneLeader() after 5 s, as in
//    config.go.
//  * Concurrency. Goroutines become Tasks polled by one driver loop at their
//    virtual wake-up times, so "concurrent" clients interleave inside the
//    single-threaded simulation: UnreliableAgree runs four background one()s
//    per iteration next to the main one(); the churn tests run three clients
//    that propose to every live server and poll for the commit with config.go's
//    10/20/50/100/200 ms back-off while the main loop injects faults.
//    ConcurrentStarts makes its five Start()s at one virtual instant.
//  * Randomness. rand.Int() becomes a raft::Rng seeded from the scenario seed,
//    so a seed replays a run exactly (Lab2Meta.SeedReplaysExactly checks this).
//    Every test runs several seeds (5-20, see for_seeds calls). Environment:
//    LAB2_SEEDS=<n> and LAB2_SEED_BASE=<b> choose seeds b..b+n-1;
//    LAB2_VERBOSE=1 prints per-run statistics (2 also per snapshot round);
//    LAB2_DISK_DELAY=<ms> runs every scenario with asynchronous disk writes
//    (6.824's persister is synchronous, so the default is 0).
//  * Network. Reliable = the simulator's default (1-5 ms delays, no loss).
//    Unreliable (labrpc drops 10% of requests and 10% of replies and delays
//    requests by up to 27 ms) = drop 0.1 per message, delay 0-27 ms, and
//    duplicate 0.05 (labrpc does not duplicate; this is stricter). Long
//    reordering = additionally 20% of messages delayed 200-2000 ms (labrpc
//    delays about 2/3 of replies by 200-2200 ms; the simulator delays requests
//    and replies alike).
//  * crash1()/start1() as in config.go: crash1 disconnects and crashes a node
//    (unsynced state is lost, its disk survives); start1 crash1()s and
//    restarts it, still disconnected, and the test then connect()s it.
//    6.824's nCommitted() also counts what a crashed server applied before it
//    crashed; Cluster::n_committed() counts live state machines only. No
//    expectation here needs a crashed server.
//  * No-op entries. The core appends a no-op at the start of each term, so a
//    command's log index is not its ordinal. Where 6.824 asserts
//    "index == k" we assert that the command is the k-th command (kNormal
//    entry) of the log up to that index (command_position(),
//    applied_position()): the same statement once no-ops are skipped.
//    "nCommitted(k) == 0" for a k-th command becomes "no server applied a k-th
//    command" or nCommitted(index returned by Start()) == 0. Count's
//    "starti + i == index" holds as is (no no-op within a term).
//  * RPC counting. 6.824 counts a request and its reply as one RPC:
//    requests_sent(). Bytes: bytes_sent() (every message, replies included).
//  * Snapshots (2D). snapshot_every = 10 (SnapShotInterval) and
//    raft.max_snapshot_chunk = 64 bytes, so InstallSnapshot is chunked. The log
//    size bound is 6.824's: max_log_bytes() < MAXLOGSIZE = 2000 after every
//    round (and, beyond 6.824, at the end of SnapshotAllCrash/SnapshotInit).
//    Install tests also check that whenever the returning victim's log ends
//    before every other server's snapshot (so only a snapshot can help), the
//    leader really sent a multi-chunk snapshot, and that this happened at least
//    once per run.
//  * Stronger than 6.824: InitialElection fails (6.824 only warns) if the term
//    changes without failures; Figure8, Figure8Unreliable and the churn tests
//    end with a full pairwise log-matching check, and churn checks that some
//    client value committed at all. The simulator's safety checkers (election
//    safety, log matching, leader completeness, state machine safety) run
//    after every event.
//  * Failures (assertions, SimFailure, or a RAFTKV_CHECK abort) report the
//    scenario, the seed and c.describe(); the first failing seed stops a test.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tests/sim/cluster.h"

// gtest prints these (internal linkage: a test-local convenience).
namespace raftkv::raft {
[[maybe_unused]] static std::ostream& operator<<(std::ostream& os, Index i) { return os << i.value; }
template <class Tag>
[[maybe_unused]] static std::ostream& operator<<(std::ostream& os, StrongU64<Tag> v) {
  return os << v.value;
}
}  // namespace raftkv::raft

namespace raftkv::sim {
namespace {

using raft::EntryType;
using raft::MessageType;
using raft::ProposeResult;

constexpr uint64_t kElectionTimeout = 1000;  // 6.824's RaftElectionTimeout, ms
constexpr size_t kMaxLogSize = 2000;         // 6.824's MAXLOGSIZE
constexpr int kSnapshotInterval = 10;        // 6.824's SnapShotInterval

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : dflt;
}

SimOptions lab_options(int nodes, uint64_t seed) {
  SimOptions o;
  // 6.824's persister is synchronous; LAB2_DISK_DELAY=<ms> explores slower disks.
  o.max_disk_delay = env_int("LAB2_DISK_DELAY", 0);
  o.nodes = nodes;
  o.seed = seed;
  o.tick_ms = 10;
  o.raft.heartbeat_ticks = 10;  // 100 ms, as the 6.824 tester expects
  o.raft.election_ticks = 30;   // 300-600 ms
  return o;
}

NetworkFaults reliable() { return NetworkFaults{}; }

NetworkFaults unreliable() {
  NetworkFaults f;
  f.drop = 0.1;
  f.duplicate = 0.05;
  f.min_delay = 0;
  f.max_delay = 27;
  return f;
}

NetworkFaults unreliable_long_reordering() {
  NetworkFaults f = unreliable();
  f.long_delay = 0.2;
  return f;
}

SimOptions snapshot_options(int nodes, uint64_t seed) {
  SimOptions o = lab_options(nodes, seed);
  o.snapshot_every = kSnapshotInterval;
  o.raft.max_snapshot_chunk = 64;
  return o;
}

// --- seeds and failure reporting ------------------------------------------------

// A 6.824 t.Fatalf() from inside a scenario.
struct LabFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fatal(fmt::format_string<Args...> f, Args&&... args) {
  throw LabFailure(fmt::format(f, std::forward<Args>(args)...));
}

// One run of a scenario for one seed: its cluster and its random source.
struct LabRun {
  explicit LabRun(const char* name, uint64_t seed) : name(name), seed(seed), rng(seed * 0x9E3779B97F4A7C15ULL + 17) {}

  Cluster& make(const SimOptions& o) {
    cluster = std::make_unique<Cluster>(o);
    return *cluster;
  }
  // rand.Int() % n
  uint64_t below(uint64_t n) { return rng.below(n); }
  // A fresh random command (6.824 uses rand.Int()).
  std::string rand_cmd() { return std::to_string(rng.next() >> 2); }

  const char* name;
  uint64_t seed;
  raft::Rng rng;
  std::unique_ptr<Cluster> cluster;
};

// For RAFTKV_CHECK aborts, which cannot be caught: say which run died.
LabRun* g_current_run = nullptr;

extern "C" void on_abort(int) {
  if (LabRun* r = g_current_run) {
    std::fprintf(stderr, "\n*** abort in %s, seed %llu\n", r->name,
                 static_cast<unsigned long long>(r->seed));
    if (r->cluster) std::fprintf(stderr, "%s\n", r->cluster->describe().c_str());
  }
  std::signal(SIGABRT, SIG_DFL);
  std::raise(SIGABRT);
}

int seeds_for(int dflt) { return env_int("LAB2_SEEDS", dflt); }

// Runs body(run) for `nseeds` seeds, stopping at the first failing seed and
// reporting its seed and the cluster state.
void for_seeds(const char* name, int nseeds, const std::function<void(LabRun&)>& body) {
  static bool installed = [] {
    std::signal(SIGABRT, on_abort);
    return true;
  }();
  (void)installed;
  const uint64_t base = static_cast<uint64_t>(env_int("LAB2_SEED_BASE", 1));
  for (int k = 0; k < nseeds; ++k) {
    uint64_t seed = base + static_cast<uint64_t>(k);
    LabRun run(name, seed);
    g_current_run = &run;
    bool failed_before = ::testing::Test::HasFailure();
    {
      SCOPED_TRACE(fmt::format("{} seed={}", name, seed));
      try {
        body(run);
      } catch (const SimFailure& e) {
        ADD_FAILURE() << "SimFailure: " << e.what();
      } catch (const LabFailure& e) {
        ADD_FAILURE() << "test failure: " << e.what();
      } catch (const std::exception& e) {
        ADD_FAILURE() << "exception: " << e.what();
      }
    }
    g_current_run = nullptr;
    if (env_int("LAB2_VERBOSE", 0) && run.cluster) {
      const Cluster& c = *run.cluster;
      std::fprintf(stderr, "%s seed=%llu: %llu ms virtual, %llu elections, %llu messages, %llu snapshot chunks\n",
                   name, static_cast<unsigned long long>(seed), static_cast<unsigned long long>(c.now()),
                   static_cast<unsigned long long>(c.elections_won()),
                   static_cast<unsigned long long>(c.messages_sent()),
                   static_cast<unsigned long long>(c.messages_sent(MessageType::kSnapshot)));
    }
    if (::testing::Test::HasFailure() && !failed_before) {
      ADD_FAILURE() << name << " failed with seed " << seed << " (rerun with LAB2_SEED_BASE=" << seed
                    << " LAB2_SEEDS=1)\n"
                    << (run.cluster ? run.cluster->describe() : std::string("(no cluster)"));
      return;
    }
  }
}

// --- 6.824 config.go helpers ------------------------------------------------------

// 0-based server i of 6.824 is NodeId(i + 1); (base + k) % servers wraps the same way.
NodeId server(const Cluster& c, uint64_t i) { return NodeId(i % static_cast<uint64_t>(c.size()) + 1); }
NodeId plus(const Cluster& c, NodeId base, int k) { return server(c, base.value - 1 + static_cast<uint64_t>(k)); }

void crash1(Cluster& c, NodeId n) {
  c.disconnect(n);
  c.crash(n);
}

// Restarts n from its disk; it stays disconnected until connect().
void start1(Cluster& c, NodeId n) {
  crash1(c, n);
  c.restart(n);
}

// config.go wait(): waits (with back-off, about 10 s) for n servers to apply
// `index`; nullopt if some server moved past start_term (-1: don't check).
std::optional<std::string> wait_cmd(Cluster& c, Index index, int n, int64_t start_term) {
  uint64_t to = 10;
  for (int iters = 0; iters < 30; ++iters) {
    if (c.n_committed(index) >= n) break;
    c.run_for(to);
    if (to < 1000) to *= 2;
    if (start_term > -1) {
      for (NodeId id : c.ids()) {
        if (c.alive(id) && static_cast<int64_t>(c.raft(id).term().value) > start_term) return std::nullopt;
      }
    }
  }
  std::string cmd;
  int nd = c.n_committed(index, &cmd);
  if (nd < n) fatal("only {} decided for index {}; wanted {}", nd, index, n);
  return cmd;
}

// The ordinal of the command at `index` among the commands (kNormal entries)
// of r's log: what 6.824 calls the command's index.
int command_position(const raft::Raft& r, Index index) {
  const raft::RaftLog& log = r.log();
  if (log.first_index() != Index(1)) fatal("command_position needs an uncompacted log");
  int n = 0;
  for (const raft::Entry& e : log.slice(Index(1), index + 1, SIZE_MAX))
    if (e.type == EntryType::kNormal) ++n;
  return n;
}

// The same, from the state machine of any server that applied `index`.
int applied_position(const Cluster& c, Index index) {
  for (NodeId id : c.ids()) {
    const AppliedLog& a = c.applied(id);
    if (a.last < index || a.snapshot_index > Index(0)) continue;
    return static_cast<int>(std::distance(a.commands.begin(), a.commands.upper_bound(index.value)));
  }
  fatal("no server applied {} from an uncompacted log", index);
}

// The most commands any server has applied.
size_t max_applied_commands(const Cluster& c) {
  size_t m = 0;
  for (NodeId id : c.ids()) m = std::max(m, c.applied(id).commands.size());
  return m;
}

bool accepted(const ProposeResult& r) { return r.status == ProposeResult::Status::kAccepted; }

std::string randstring(LabRun& run, size_t n) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string s(n, ' ');
  for (char& ch : s) ch = kAlphabet[run.below(64)];
  return s;
}

// --- goroutines as tasks --------------------------------------------------------------

// A client polled by drive() whenever virtual time reaches wake_at. Each poll
// does what the goroutine would do at that instant and then sleeps (sets
// wake_at > now) or finishes.
struct Task {
  virtual ~Task() = default;
  virtual void poll(Cluster& c) = 0;
  uint64_t wake_at = 0;
  bool done = false;
};

// Runs the simulation, polling due tasks, until pred() holds (checked after
// every poll round). Fails if nothing is left to wait for or `limit_ms` pass.
void drive(Cluster& c, const std::vector<Task*>& tasks, const std::function<bool()>& pred,
           uint64_t limit_ms = 600000) {
  const uint64_t limit = c.now() + limit_ms;
  for (;;) {
    for (Task* t : tasks)
      if (!t->done && t->wake_at <= c.now()) t->poll(c);
    if (pred()) return;
    uint64_t next = limit;
    for (Task* t : tasks)
      if (!t->done) next = std::min(next, t->wake_at);
    if (c.now() >= limit) fatal("drive: no progress within {} ms", limit_ms);
    if (next <= c.now()) fatal("drive: a task did not sleep");
    c.run_for(next - c.now());
  }
}

// time.Sleep(ms) in the main goroutine while the tasks keep running.
void sleep_with(Cluster& c, const std::vector<Task*>& tasks, uint64_t ms) {
  const uint64_t until = c.now() + ms;
  struct Alarm : Task {
    void poll(Cluster&) override { done = true; }
  } alarm;
  alarm.wake_at = until;
  std::vector<Task*> all = tasks;
  all.push_back(&alarm);
  drive(c, all, [&] { return alarm.done; }, ms + 1);
}

// config.go one(cmd, expected, retry) as a task.
struct OneTask : Task {
  OneTask(Cluster& c, std::string cmd, int expected, bool retry)
      : cmd(std::move(cmd)), expected(expected), retry(retry), t0(c.now()) {
    wake_at = c.now();
  }

  void poll(Cluster& c) override {
    if (waiting) {
      // for time.Since(t1) < 2s { if committed: return; sleep(20ms) }
      std::string got;
      int nd = c.n_committed(index, &got);
      if (nd > 0 && nd >= expected && got == cmd) {
        done = true;
        return;
      }
      wake_at = c.now() + 20;
      if (wake_at - t1 >= 2000) {
        if (!retry) fatal("one({}) failed to reach agreement", cmd);
        waiting = false;  // submit again after the sleep
      }
      return;
    }
    if (c.now() - t0 >= 10000) fatal("one({}) failed to reach agreement", cmd);
    // Try all the servers, maybe one is the leader.
    std::optional<Index> found;
    for (int si = 0; si < c.size() && !found; ++si) {
      starts = (starts + 1) % c.size();
      NodeId id = server(c, static_cast<uint64_t>(starts));
      if (!c.connected(id) || !c.alive(id)) continue;
      auto r = c.propose(id, cmd);
      if (accepted(r)) found = r.index;
    }
    if (found) {
      // Somebody claimed to be the leader; wait a while for agreement.
      index = *found;
      waiting = true;
      t1 = c.now();
      wake_at = c.now() + 20;  // nothing can be applied at the instant of Start()
    } else {
      wake_at = c.now() + 50;
    }
  }

  std::string cmd;
  int expected;
  bool retry;
  uint64_t t0;
  uint64_t t1 = 0;
  int starts = 0;
  bool waiting = false;
  Index index;
};

// ---------------------------------------------------------------------------------------
// 2A: leader election
// ---------------------------------------------------------------------------------------

TEST(Lab2A, InitialElection) {
  for_seeds("Lab2A.InitialElection", seeds_for(5), [](LabRun& run) {
    Cluster& c = run.make(lab_options(3, run.seed));
    // Is a leader elected?
    c.check_one_leader();
    // Let followers learn of the election, then all must agree on the term.
    c.run_for(50);
    Term term1 = c.check_terms();
    ASSERT_GE(term1.value, 1u) << "term should be at least 1";
    // Without failures, leader and term stay (6.824 only warns here).
    c.run_for(2 * kElectionTimeout);
    Term term2 = c.check_terms();
    EXPECT_EQ(term1, term2) << "term changed even though there were no failures";
    // There should still be a leader.
    c.check_one_leader();
  });
}

TEST(Lab2A, ReElection) {
  for_seeds("Lab2A.ReElection", seeds_for(5), [](LabRun& run) {
    Cluster& c = run.make(lab_options(3, run.seed));
    NodeId leader1 = c.check_one_leader();
    // If the leader disconnects, a new one should be elected.
    c.disconnect(leader1);
    c.check_one_leader();
    // The old leader rejoining shouldn't disturb the new leader, and it
    // should become a follower.
    c.connect(leader1);
    NodeId leader2 = c.check_one_leader();
    // Without a quorum no leader should be elected.
    c.disconnect(leader2);
    c.disconnect(plus(c, leader2, 1));
    c.run_for(2 * kElectionTimeout);
    // The one connected server does not think it is the leader.
    c.check_no_leader();
    // A quorum arises: it should elect a leader.
    c.connect(plus(c, leader2, 1));
    c.check_one_leader();
    // Rejoin of the last node shouldn't prevent a leader from existing.
    c.connect(leader2);
    c.check_one_leader();
  });
}

TEST(Lab2A, ManyElections) {
  for_seeds("Lab2A.ManyElections", seeds_for(5), [](LabRun& run) {
    const int servers = 7;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.check_one_leader();
    const int iters = 10;
    for (int ii = 1; ii < iters; ++ii) {
      // Disconnect three nodes (possibly the same one twice).
      NodeId i1 = server(c, run.below(servers));
      NodeId i2 = server(c, run.below(servers));
      NodeId i3 = server(c, run.below(servers));
      c.disconnect(i1);
      c.disconnect(i2);
      c.disconnect(i3);
      // Either the current leader is still alive, or the remaining four
      // elect a new one.
      c.check_one_leader();
      c.connect(i1);
      c.connect(i2);
      c.connect(i3);
    }
    c.check_one_leader();
  });
}

// ---------------------------------------------------------------------------------------
// 2B: log replication
// ---------------------------------------------------------------------------------------

TEST(Lab2B, BasicAgree) {
  for_seeds("Lab2B.BasicAgree", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    const int iters = 3;
    for (int k = 1; k <= iters; ++k) {
      // Nobody has committed a k-th command before Start().
      ASSERT_LT(max_applied_commands(c), static_cast<size_t>(k)) << "some have committed before Start()";
      Index xindex = c.one(std::to_string(k * 100), servers, false);
      EXPECT_EQ(applied_position(c, xindex), k) << "command " << k * 100 << " committed at " << xindex;
    }
  });
}

// Based on counting bytes of RPCs: each command is sent to each peer just once.
TEST(Lab2B, RPCBytes) {
  for_seeds("Lab2B.RPCBytes", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("99", servers, false);
    uint64_t bytes0 = c.bytes_sent();
    const int iters = 10;
    uint64_t sent = 0;
    for (int k = 2; k < iters + 2; ++k) {
      std::string cmd = randstring(run, 5000);
      Index xindex = c.one(cmd, servers, false);
      EXPECT_EQ(applied_position(c, xindex), k) << "got index " << xindex;
      sent += cmd.size();
    }
    uint64_t got = c.bytes_sent() - bytes0;
    uint64_t expected = static_cast<uint64_t>(servers) * sent;
    EXPECT_LE(got, expected + 50000) << "too many RPC bytes";
  });
}

// Progressive failure of followers.
TEST(Lab2B, FollowerFailure) {
  for_seeds("Lab2B.FollowerFailure", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("101", servers, false);
    // Disconnect one follower; the leader and the other follower still agree.
    NodeId leader1 = c.check_one_leader();
    c.disconnect(plus(c, leader1, 1));
    c.one("102", servers - 1, false);
    c.run_for(kElectionTimeout);
    c.one("103", servers - 1, false);
    // Disconnect the remaining follower(s).
    NodeId leader2 = c.check_one_leader();
    c.disconnect(plus(c, leader2, 1));
    c.disconnect(plus(c, leader2, 2));
    // Submit a command.
    ProposeResult r = c.propose(leader2, "104");
    ASSERT_TRUE(accepted(r)) << "leader rejected Start()";
    EXPECT_EQ(command_position(c.raft(leader2), r.index), 4) << "index " << r.index;
    c.run_for(2 * kElectionTimeout);
    // 104 did not commit.
    EXPECT_EQ(c.n_committed(r.index), 0) << "committed but no majority";
  });
}

// Failure of leaders.
TEST(Lab2B, LeaderFailure) {
  for_seeds("Lab2B.LeaderFailure", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("101", servers, false);
    // Disconnect the first leader; the others elect a new one.
    NodeId leader1 = c.check_one_leader();
    c.disconnect(leader1);
    c.one("102", servers - 1, false);
    c.run_for(kElectionTimeout);
    c.one("103", servers - 1, false);
    // Disconnect the new leader.
    NodeId leader2 = c.check_one_leader();
    c.disconnect(leader2);
    // Submit a command to each server.
    for (NodeId id : c.ids()) c.propose(id, "104");
    c.run_for(2 * kElectionTimeout);
    // 104 did not commit: nobody applied a 4th command.
    EXPECT_LT(max_applied_commands(c), 4u) << "committed but no majority";
  });
}

// A follower participates after disconnect and re-connect.
TEST(Lab2B, FailAgree) {
  for_seeds("Lab2B.FailAgree", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("101", servers, false);
    // Disconnect one follower.
    NodeId leader = c.check_one_leader();
    c.disconnect(plus(c, leader, 1));
    // The leader and the remaining follower agree without it.
    c.one("102", servers - 1, false);
    c.one("103", servers - 1, false);
    c.run_for(kElectionTimeout);
    c.one("104", servers - 1, false);
    c.one("105", servers - 1, false);
    // Re-connect: everyone keeps earlier agreements and agrees on new commands.
    c.connect(plus(c, leader, 1));
    c.one("106", servers, true);
    c.run_for(kElectionTimeout);
    c.one("107", servers, true);
  });
}

TEST(Lab2B, FailNoAgree) {
  for_seeds("Lab2B.FailNoAgree", seeds_for(5), [](LabRun& run) {
    const int servers = 5;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("10", servers, false);
    // 3 of 5 followers disconnect.
    NodeId leader = c.check_one_leader();
    c.disconnect(plus(c, leader, 1));
    c.disconnect(plus(c, leader, 2));
    c.disconnect(plus(c, leader, 3));
    ProposeResult r = c.propose(leader, "20");
    ASSERT_TRUE(accepted(r)) << "leader rejected Start()";
    EXPECT_EQ(command_position(c.raft(leader), r.index), 2) << "index " << r.index;
    c.run_for(2 * kElectionTimeout);
    EXPECT_EQ(c.n_committed(r.index), 0) << "committed but no majority";
    // Repair.
    c.connect(plus(c, leader, 1));
    c.connect(plus(c, leader, 2));
    c.connect(plus(c, leader, 3));
    // The disconnected majority may have chosen a leader from among their own
    // ranks, forgetting the second command.
    NodeId leader2 = c.check_one_leader();
    ProposeResult r2 = c.propose(leader2, "30");
    ASSERT_TRUE(accepted(r2)) << "leader2 rejected Start()";
    int pos2 = command_position(c.raft(leader2), r2.index);
    EXPECT_TRUE(pos2 >= 2 && pos2 <= 3) << "unexpected index " << r2.index << " (command " << pos2 << ")";
    c.one("1000", servers, true);
  });
}

TEST(Lab2B, ConcurrentStarts) {
  for_seeds("Lab2B.ConcurrentStarts", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    bool success = false;
    for (int attempt = 0; attempt < 5 && !success; ++attempt) {
      if (attempt > 0) c.run_for(3000);  // give the cluster time to settle
      NodeId leader = c.check_one_leader();
      ProposeResult r0 = c.propose(leader, "1");
      if (!accepted(r0)) continue;  // leader moved on really quickly
      const int iters = 5;
      // Five Start()s at the same virtual instant.
      std::vector<Index> is;
      for (int i = 0; i < iters; ++i) {
        ProposeResult r = c.propose(leader, std::to_string(100 + i));
        if (r.term != r0.term || !accepted(r)) continue;
        is.push_back(r.index);
      }
      bool term_changed = false;
      for (NodeId id : c.ids())
        if (c.raft(id).term() != r0.term) term_changed = true;
      if (term_changed) continue;
      bool failed = false;
      std::vector<std::string> cmds;
      for (Index index : is) {
        auto cmd = wait_cmd(c, index, servers, static_cast<int64_t>(r0.term.value));
        if (!cmd) {
          // Peers moved on to later terms, so not all Start()s must succeed.
          failed = true;
          break;
        }
        cmds.push_back(*cmd);
      }
      if (failed) continue;
      for (int i = 0; i < iters; ++i) {
        std::string x = std::to_string(100 + i);
        EXPECT_NE(std::find(cmds.begin(), cmds.end(), x), cmds.end()) << "cmd " << x << " missing";
      }
      success = true;
    }
    EXPECT_TRUE(success) << "term changed too often";
  });
}

TEST(Lab2B, Rejoin) {
  for_seeds("Lab2B.Rejoin", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("101", servers, true);
    // Leader network failure.
    NodeId leader1 = c.check_one_leader();
    c.disconnect(leader1);
    // The old leader tries to agree on some entries.
    c.propose(leader1, "102");
    c.propose(leader1, "103");
    c.propose(leader1, "104");
    // The new leader commits, also at the index the old leader used.
    c.one("103", 2, true);
    // New leader network failure.
    NodeId leader2 = c.check_one_leader();
    c.disconnect(leader2);
    // Old leader connected again.
    c.connect(leader1);
    c.one("104", 2, true);
    // All together now.
    c.connect(leader2);
    c.one("105", servers, true);
  });
}

TEST(Lab2B, Backup) {
  for_seeds("Lab2B.Backup", seeds_for(5), [](LabRun& run) {
    const int servers = 5;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one(run.rand_cmd(), servers, true);
    // Put the leader and one follower in a partition.
    NodeId leader1 = c.check_one_leader();
    c.disconnect(plus(c, leader1, 2));
    c.disconnect(plus(c, leader1, 3));
    c.disconnect(plus(c, leader1, 4));
    // Lots of commands that won't commit.
    for (int i = 0; i < 50; ++i) c.propose(leader1, run.rand_cmd());
    c.run_for(kElectionTimeout / 2);
    c.disconnect(plus(c, leader1, 0));
    c.disconnect(plus(c, leader1, 1));
    // Allow the other partition to recover.
    c.connect(plus(c, leader1, 2));
    c.connect(plus(c, leader1, 3));
    c.connect(plus(c, leader1, 4));
    // Lots of successful commands to the new group.
    for (int i = 0; i < 50; ++i) c.one(run.rand_cmd(), 3, true);
    // Now another partitioned leader and one follower.
    NodeId leader2 = c.check_one_leader();
    NodeId other = plus(c, leader1, 2);
    if (leader2 == other) other = plus(c, leader2, 1);
    c.disconnect(other);
    // Lots more commands that won't commit.
    for (int i = 0; i < 50; ++i) c.propose(leader2, run.rand_cmd());
    c.run_for(kElectionTimeout / 2);
    // Bring the original leader back to life.
    for (NodeId id : c.ids()) c.disconnect(id);
    c.connect(plus(c, leader1, 0));
    c.connect(plus(c, leader1, 1));
    c.connect(other);
    // Lots of successful commands to the new group.
    for (int i = 0; i < 50; ++i) c.one(run.rand_cmd(), 3, true);
    // Now everyone.
    for (NodeId id : c.ids()) c.connect(id);
    c.one(run.rand_cmd(), servers, true);
  });
}

TEST(Lab2B, Count) {
  for_seeds("Lab2B.Count", seeds_for(5), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    NodeId leader = c.check_one_leader();
    uint64_t total1 = c.requests_sent();
    ASSERT_TRUE(total1 >= 1 && total1 <= 30) << "too many or few RPCs (" << total1 << ") to elect initial leader";
    uint64_t total2 = 0;
    bool success = false;
    for (int attempt = 0; attempt < 5 && !success; ++attempt) {
      if (attempt > 0) c.run_for(3000);  // give the cluster time to settle
      leader = c.check_one_leader();
      total1 = c.requests_sent();
      const int iters = 10;
      ProposeResult r0 = c.propose(leader, "1");
      if (!accepted(r0)) continue;  // leader moved on really quickly
      std::vector<std::string> cmds;
      bool retry = false;
      for (int i = 1; i < iters + 2 && !retry; ++i) {
        std::string x = run.rand_cmd();
        cmds.push_back(x);
        ProposeResult r = c.propose(leader, x);
        if (r.term != r0.term || !accepted(r)) {
          retry = true;  // term changed while starting
          break;
        }
        ASSERT_EQ(r.index, r0.index + static_cast<uint64_t>(i)) << "Start() failed";
      }
      if (retry) continue;
      for (int i = 1; i < iters + 1 && !retry; ++i) {
        auto cmd = wait_cmd(c, r0.index + static_cast<uint64_t>(i), servers, static_cast<int64_t>(r0.term.value));
        if (!cmd) {
          retry = true;  // term changed -- try again
          break;
        }
        ASSERT_EQ(*cmd, cmds[static_cast<size_t>(i - 1)]) << "wrong value committed for index " << r0.index + i;
      }
      if (retry) continue;
      bool term_changed = false;
      for (NodeId id : c.ids())
        if (c.raft(id).term() != r0.term) term_changed = true;
      total2 = c.requests_sent();
      if (term_changed) continue;  // can't expect low RPC counts
      EXPECT_LE(total2 - total1, static_cast<uint64_t>((iters + 1 + 3) * 3))
          << "too many RPCs for " << iters << " entries";
      success = true;
    }
    ASSERT_TRUE(success) << "term changed too often";
    c.run_for(kElectionTimeout);
    uint64_t total3 = c.requests_sent();
    EXPECT_LE(total3 - total2, 3u * 20) << "too many RPCs for 1 second of idleness";
  });
}

// ---------------------------------------------------------------------------------------
// 2C: persistence
// ---------------------------------------------------------------------------------------

TEST(Lab2C, Persist1) {
  for_seeds("Lab2C.Persist1", seeds_for(10), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("11", servers, true);
    // Crash and restart all.
    for (NodeId id : c.ids()) start1(c, id);
    for (NodeId id : c.ids()) {
      c.disconnect(id);
      c.connect(id);
    }
    c.one("12", servers, true);
    NodeId leader1 = c.check_one_leader();
    c.disconnect(leader1);
    start1(c, leader1);
    c.connect(leader1);
    c.one("13", servers, true);
    NodeId leader2 = c.check_one_leader();
    c.disconnect(leader2);
    Index i14 = c.one("14", servers - 1, true);
    start1(c, leader2);
    c.connect(leader2);
    wait_cmd(c, i14, servers, -1);  // wait for leader2 to join before killing i3
    NodeId i3 = plus(c, c.check_one_leader(), 1);
    c.disconnect(i3);
    c.one("15", servers - 1, true);
    start1(c, i3);
    c.connect(i3);
    c.one("16", servers, true);
  });
}

TEST(Lab2C, Persist2) {
  for_seeds("Lab2C.Persist2", seeds_for(10), [](LabRun& run) {
    const int servers = 5;
    Cluster& c = run.make(lab_options(servers, run.seed));
    int index = 1;
    for (int iters = 0; iters < 5; ++iters) {
      c.one(std::to_string(10 + index++), servers, true);
      NodeId leader1 = c.check_one_leader();
      c.disconnect(plus(c, leader1, 1));
      c.disconnect(plus(c, leader1, 2));
      c.one(std::to_string(10 + index++), servers - 2, true);
      c.disconnect(plus(c, leader1, 0));
      c.disconnect(plus(c, leader1, 3));
      c.disconnect(plus(c, leader1, 4));
      start1(c, plus(c, leader1, 1));
      start1(c, plus(c, leader1, 2));
      c.connect(plus(c, leader1, 1));
      c.connect(plus(c, leader1, 2));
      c.run_for(kElectionTimeout);
      start1(c, plus(c, leader1, 3));
      c.connect(plus(c, leader1, 3));
      c.one(std::to_string(10 + index++), servers - 2, true);
      c.connect(plus(c, leader1, 4));
      c.connect(plus(c, leader1, 0));
    }
    c.one("1000", servers, true);
  });
}

// Partitioned leader and one follower crash, leader restarts.
TEST(Lab2C, Persist3) {
  for_seeds("Lab2C.Persist3", seeds_for(10), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one("101", 3, true);
    NodeId leader = c.check_one_leader();
    c.disconnect(plus(c, leader, 2));
    c.one("102", 2, true);
    crash1(c, plus(c, leader, 0));
    crash1(c, plus(c, leader, 1));
    c.connect(plus(c, leader, 2));
    start1(c, plus(c, leader, 0));
    c.connect(plus(c, leader, 0));
    c.one("103", 2, true);
    start1(c, plus(c, leader, 1));
    c.connect(plus(c, leader, 1));
    c.one("104", servers, true);
  });
}

// The scenarios of Figure 8 of the extended Raft paper. Each iteration asks a
// leader, if there is one, to insert a command. That leader crashes quickly
// with high probability (perhaps without committing the command), or after a
// while with low probability (most likely committing it). If too few servers
// are alive to form a majority, perhaps start a new one. A leader in a new
// term may try to finish replicating entries that haven't committed yet.
TEST(Lab2C, Figure8) {
  for_seeds("Lab2C.Figure8", seeds_for(20), [](LabRun& run) {
    const int servers = 5;
    Cluster& c = run.make(lab_options(servers, run.seed));
    c.one(run.rand_cmd(), 1, true);
    int nup = servers;
    for (int iters = 0; iters < 1000; ++iters) {
      std::optional<NodeId> leader;
      for (NodeId id : c.ids()) {
        if (c.alive(id) && accepted(c.propose(id, run.rand_cmd()))) leader = id;
      }
      if (run.below(1000) < 100) {
        c.run_for(run.below(kElectionTimeout / 2));
      } else {
        c.run_for(run.below(13));
      }
      if (leader) {
        crash1(c, *leader);
        --nup;
      }
      if (nup < 3) {
        NodeId s = server(c, run.below(servers));
        if (!c.alive(s)) {
          start1(c, s);
          c.connect(s);
          ++nup;
        }
      }
    }
    for (NodeId id : c.ids()) {
      if (!c.alive(id)) {
        start1(c, id);
        c.connect(id);
      }
    }
    c.one(run.rand_cmd(), servers, true);
    c.check_log_matching_full();
  });
}

TEST(Lab2C, UnreliableAgree) {
  for_seeds("Lab2C.UnreliableAgree", seeds_for(10), [](LabRun& run) {
    const int servers = 5;
    SimOptions o = lab_options(servers, run.seed);
    o.net = unreliable();
    Cluster& c = run.make(o);
    std::vector<std::unique_ptr<OneTask>> background;
    std::vector<Task*> tasks;
    for (int iters = 1; iters < 50; ++iters) {
      for (int j = 0; j < 4; ++j) {
        background.push_back(std::make_unique<OneTask>(c, std::to_string(100 * iters + j), 1, true));
        tasks.push_back(background.back().get());
      }
      OneTask main(c, std::to_string(iters), 1, true);
      std::vector<Task*> all = tasks;
      all.push_back(&main);
      drive(c, all, [&] { return main.done; });
    }
    c.set_faults(reliable());
    // wg.Wait()
    drive(c, tasks, [&] {
      return std::all_of(tasks.begin(), tasks.end(), [](Task* t) { return t->done; });
    });
    c.one("100", servers, true);
  });
}

TEST(Lab2C, Figure8Unreliable) {
  for_seeds("Lab2C.Figure8Unreliable", seeds_for(20), [](LabRun& run) {
    const int servers = 5;
    SimOptions o = lab_options(servers, run.seed);
    o.net = unreliable();
    Cluster& c = run.make(o);
    c.one(run.rand_cmd(), 1, true);
    int nup = servers;
    for (int iters = 0; iters < 1000; ++iters) {
      if (iters == 200) c.set_faults(unreliable_long_reordering());
      std::optional<NodeId> leader;
      for (NodeId id : c.ids()) {
        // Start() on every server, connected or not; a connected one that
        // accepts is the leader.
        if (accepted(c.propose(id, run.rand_cmd())) && c.connected(id)) leader = id;
      }
      if (run.below(1000) < 100) {
        c.run_for(run.below(kElectionTimeout / 2));
      } else {
        c.run_for(run.below(13));
      }
      if (leader && run.below(1000) < kElectionTimeout / 2) {
        c.disconnect(*leader);
        --nup;
      }
      if (nup < 3) {
        NodeId s = server(c, run.below(servers));
        if (!c.connected(s)) {
          c.connect(s);
          ++nup;
        }
      }
    }
    for (NodeId id : c.ids())
      if (!c.connected(id)) c.connect(id);
    c.one(run.rand_cmd(), servers, true);
    c.check_log_matching_full();
  });
}

// A churn client (6.824's cfn): propose a fresh value to every live server;
// if one accepted, poll nCommitted() with back-off and remember the value if
// it committed where that server put it; else nap.
struct ChurnClient : Task {
  ChurnClient(LabRun& run, int me, const bool& stop) : run(run), me(me), stop(stop) {}

  void poll(Cluster& c) override {
    for (;;) {
      if (checking) {
        // for to in {10, 20, 50, 100, 200}: if committed: break; sleep(to)
        if (step == kBackoff.size()) {
          checking = false;  // don't wait forever
        } else {
          std::string got;
          if (c.n_committed(index, &got) > 0) {
            if (got == x) values.push_back(x);
            checking = false;
            continue;  // next value at once
          }
          wake_at = c.now() + kBackoff[step++];
          return;
        }
      }
      if (stop) {
        done = true;
        return;
      }
      x = run.rand_cmd();
      bool ok = false;
      for (NodeId id : c.ids()) {
        // Try them all, maybe one of them is a leader.
        if (!c.alive(id)) continue;
        ProposeResult r = c.propose(id, x);
        if (accepted(r)) {
          ok = true;
          index = r.index;
        }
      }
      if (ok) {
        checking = true;
        step = 0;
        // Loops once more: checks at this instant, then backs off.
      } else {
        wake_at = c.now() + 79 + static_cast<uint64_t>(me) * 17;
        return;
      }
    }
  }

  static constexpr std::array<uint64_t, 5> kBackoff = {10, 20, 50, 100, 200};
  LabRun& run;
  int me;
  const bool& stop;
  std::vector<std::string> values;
  std::string x;
  Index index;
  bool checking = false;
  size_t step = 0;
};

void internal_churn(LabRun& run, bool unreliable_net) {
  const int servers = 5;
  SimOptions o = lab_options(servers, run.seed);
  if (unreliable_net) o.net = unreliable();
  Cluster& c = run.make(o);
  bool stop = false;
  const int ncli = 3;
  std::vector<std::unique_ptr<ChurnClient>> clients;
  std::vector<Task*> tasks;
  for (int i = 0; i < ncli; ++i) {
    clients.push_back(std::make_unique<ChurnClient>(run, i, stop));
    clients.back()->wake_at = c.now();
    tasks.push_back(clients.back().get());
  }
  for (int iters = 0; iters < 20; ++iters) {
    if (run.below(1000) < 200) c.disconnect(server(c, run.below(servers)));
    if (run.below(1000) < 500) {
      NodeId i = server(c, run.below(servers));
      if (!c.alive(i)) start1(c, i);
      c.connect(i);
    }
    if (run.below(1000) < 200) {
      NodeId i = server(c, run.below(servers));
      if (c.alive(i)) crash1(c, i);
    }
    // Often enough that the peers rarely settle between changes, rarely
    // enough that they can often keep up: a bit less than an election timeout.
    sleep_with(c, tasks, kElectionTimeout * 7 / 10);
  }
  sleep_with(c, tasks, kElectionTimeout);
  c.set_faults(reliable());
  for (NodeId id : c.ids()) {
    if (!c.alive(id)) start1(c, id);
    c.connect(id);
  }
  stop = true;
  drive(c, tasks, [&] { return std::all_of(tasks.begin(), tasks.end(), [](Task* t) { return t->done; }); });
  std::vector<std::string> values;
  for (auto& cl : clients) values.insert(values.end(), cl->values.begin(), cl->values.end());
  c.run_for(kElectionTimeout);
  Index last_index = c.one(run.rand_cmd(), servers, true);
  std::set<std::string> really;
  for (Index index(1); index <= last_index; ++index) {
    auto v = wait_cmd(c, index, servers, -1);
    really.insert(*v);
  }
  for (const std::string& v : values) {
    EXPECT_TRUE(really.count(v)) << "didn't find a value: " << v;
  }
  // Not in 6.824, but cheap: the clients did get values committed.
  EXPECT_FALSE(values.empty()) << "no client value committed during churn";
  c.check_log_matching_full();
}

TEST(Lab2C, ReliableChurn) {
  for_seeds("Lab2C.ReliableChurn", seeds_for(5), [](LabRun& run) { internal_churn(run, false); });
}

TEST(Lab2C, UnreliableChurn) {
  for_seeds("Lab2C.UnreliableChurn", seeds_for(10), [](LabRun& run) { internal_churn(run, true); });
}

// ---------------------------------------------------------------------------------------
// 2D: log compaction
// ---------------------------------------------------------------------------------------

void check_log_size(const Cluster& c) {
  if (c.max_log_bytes() >= kMaxLogSize) fatal("Log size too large: {} bytes", c.max_log_bytes());
}

// True if every live server other than `victim` compacted past victim's last
// log entry: only a snapshot can then bring the victim up to date.
bool victim_needs_snapshot(const Cluster& c, NodeId victim) {
  Index victim_last = c.alive(victim) ? c.raft(victim).log().last_index() : c.storage(victim).last_index();
  for (NodeId id : c.ids()) {
    if (id == victim || !c.alive(id)) continue;
    if (c.storage(id).snapshot_meta().index <= victim_last) return false;
  }
  return true;
}

void snapcommon(LabRun& run, bool disconnect, bool reliable_net, bool crash) {
  const int iters = 30;
  const int servers = 3;
  SimOptions o = snapshot_options(servers, run.seed);
  if (!reliable_net) o.net = unreliable();
  Cluster& c = run.make(o);
  c.one(run.rand_cmd(), servers, true);
  NodeId leader1 = c.check_one_leader();
  int installs_needed = 0;
  for (int i = 0; i < iters; ++i) {
    NodeId victim = plus(c, leader1, 1);
    NodeId sender = leader1;
    if (i % 3 == 1) {
      sender = plus(c, leader1, 1);
      victim = leader1;
    }
    if (disconnect) {
      c.disconnect(victim);
      c.one(run.rand_cmd(), servers - 1, true);
    }
    if (crash) {
      crash1(c, victim);
      c.one(run.rand_cmd(), servers - 1, true);
    }
    // Perhaps enough to get a snapshot.
    uint64_t nn = kSnapshotInterval / 2 + run.below(kSnapshotInterval);
    for (uint64_t k = 0; k < nn; ++k) c.propose(sender, run.rand_cmd());
    // Let the appliers catch up with the Start()s.
    if (!disconnect && !crash) {
      // All followers catch up, so no InstallSnapshot is needed in SnapshotBasic.
      c.one(run.rand_cmd(), servers, true);
    } else {
      c.one(run.rand_cmd(), servers - 1, true);
    }
    check_log_size(c);
    if (disconnect || crash) {
      // Reconnect (or restart) a follower that may be behind and need a
      // snapshot to catch up.
      bool needs = victim_needs_snapshot(c, victim);
      uint64_t snaps0 = c.messages_sent(MessageType::kSnapshot);
      if (crash) start1(c, victim);
      c.connect(victim);
      const uint64_t t_connect = c.now();
      c.one(run.rand_cmd(), servers, true);
      if (env_int("LAB2_VERBOSE", 0) >= 2) {
        size_t snap_bytes = 0;
        for (NodeId id : c.ids()) snap_bytes = std::max(snap_bytes, c.storage(id).stored_snapshot().data.size());
        std::fprintf(stderr, "  iter %d: victim %llu needed snapshot=%d, caught up in %llu ms, %llu chunks, image %zu bytes\n",
                     i, static_cast<unsigned long long>(victim.value), needs,
                     static_cast<unsigned long long>(c.now() - t_connect),
                     static_cast<unsigned long long>(c.messages_sent(MessageType::kSnapshot) - snaps0), snap_bytes);
      }
      if (needs) {
        ++installs_needed;
        // The snapshot image is far above the 64-byte chunk size.
        EXPECT_GE(c.messages_sent(MessageType::kSnapshot) - snaps0, 2u)
            << "victim " << victim << " caught up without a chunked InstallSnapshot (iteration " << i << ")";
      }
      leader1 = c.check_one_leader();
    }
  }
  check_log_size(c);
  if (disconnect || crash) {
    EXPECT_GT(installs_needed, 0) << "no iteration needed InstallSnapshot";
    EXPECT_GT(c.messages_sent(MessageType::kSnapshot), 0u) << "no snapshot was ever sent";
  }
}

TEST(Lab2D, SnapshotBasic) {
  for_seeds("Lab2D.SnapshotBasic", seeds_for(5), [](LabRun& run) { snapcommon(run, false, true, false); });
}

TEST(Lab2D, SnapshotInstall) {
  for_seeds("Lab2D.SnapshotInstall", seeds_for(5), [](LabRun& run) { snapcommon(run, true, true, false); });
}

TEST(Lab2D, SnapshotInstallUnreliable) {
  for_seeds("Lab2D.SnapshotInstallUnreliable", seeds_for(5),
            [](LabRun& run) { snapcommon(run, true, false, false); });
}

TEST(Lab2D, SnapshotInstallCrash) {
  for_seeds("Lab2D.SnapshotInstallCrash", seeds_for(5), [](LabRun& run) { snapcommon(run, false, true, true); });
}

TEST(Lab2D, SnapshotInstallUnreliableCrash) {
  for_seeds("Lab2D.SnapshotInstallUnreliableCrash", seeds_for(5),
            [](LabRun& run) { snapcommon(run, false, false, true); });
}

// Do the servers persist their snapshots, and restart using the snapshot
// along with the tail of the log?
TEST(Lab2D, SnapshotAllCrash) {
  for_seeds("Lab2D.SnapshotAllCrash", seeds_for(10), [](LabRun& run) {
    const int servers = 3;
    const int iters = 5;
    Cluster& c = run.make(snapshot_options(servers, run.seed));
    c.one(run.rand_cmd(), servers, true);
    for (int i = 0; i < iters; ++i) {
      // Perhaps enough to get a snapshot.
      uint64_t nn = kSnapshotInterval / 2 + run.below(kSnapshotInterval);
      for (uint64_t k = 0; k < nn; ++k) c.one(run.rand_cmd(), servers, true);
      Index index1 = c.one(run.rand_cmd(), servers, true);
      // Crash all, then revive all.
      for (NodeId id : c.ids()) crash1(c, id);
      for (NodeId id : c.ids()) {
        start1(c, id);
        c.connect(id);
      }
      Index index2 = c.one(run.rand_cmd(), servers, true);
      EXPECT_GE(index2, index1 + 1) << "index decreased";
    }
    check_log_size(c);
  });
}

// Do servers initialize their in-memory copy of the snapshot correctly, so
// that later writes to persistent state don't lose it?
TEST(Lab2D, SnapshotInit) {
  for_seeds("Lab2D.SnapshotInit", seeds_for(10), [](LabRun& run) {
    const int servers = 3;
    Cluster& c = run.make(snapshot_options(servers, run.seed));
    c.one(run.rand_cmd(), servers, true);
    // Enough ops to make a snapshot.
    for (int i = 0; i < kSnapshotInterval + 1; ++i) c.one(run.rand_cmd(), servers, true);
    // Crash all, revive all.
    for (NodeId id : c.ids()) crash1(c, id);
    for (NodeId id : c.ids()) {
      start1(c, id);
      c.connect(id);
    }
    // A single op, to get something written back to persistent storage.
    c.one(run.rand_cmd(), servers, true);
    // Crash all, revive all.
    for (NodeId id : c.ids()) crash1(c, id);
    for (NodeId id : c.ids()) {
      start1(c, id);
      c.connect(id);
    }
    // Another op, to trigger a potential bug.
    c.one(run.rand_cmd(), servers, true);
    check_log_size(c);
  });
}

// Not a 6.824 test: the determinism every test above relies on. One seed of
// a fault-heavy scenario replays to the same event trace.
TEST(Lab2Meta, SeedReplaysExactly) {
  auto trace = [](uint64_t seed) {
    LabRun run("Lab2Meta.SeedReplaysExactly", seed);
    SimOptions o = lab_options(5, seed);
    o.net = unreliable_long_reordering();
    Cluster& c = run.make(o);
    for (int i = 0; i < 200; ++i) {
      for (NodeId id : c.ids()) c.propose(id, run.rand_cmd());
      if (run.below(10) == 0) c.disconnect(server(c, run.below(5)));
      if (run.below(10) == 0) c.connect(server(c, run.below(5)));
      c.run_for(run.below(50));
    }
    return std::make_pair(c.trace_hash(), c.now());
  };
  EXPECT_EQ(trace(7), trace(7));
  EXPECT_NE(trace(7).first, trace(8).first);
}

}  // namespace
}  // namespace raftkv::sim
