// RaftNode with a durable state machine (KvStateMachine on RocksKvStore),
// on real storage and real loopback TCP: a restart replays only the log
// after the persisted state; compaction keeps no image in the log store; a
// follower that missed compacted entries catches up from the leader's
// pinned view; start() restores a state left behind by an interrupted
// install and refuses a state that does not fit the log.
#include <chrono>
#include <fstream>
#include <functional>
#include <map>

#include <gtest/gtest.h>
#include <asio.hpp>

#include "kvserver/kv_state_machine.h"
#include "kvserver/rocks_kv_store.h"
#include "raft/node/group_commit.h"
#include "raft/node/listener.h"
#include "raft/node/raft_node.h"
#include "raft/node/rocks_log_store.h"
#include "raft/node/transport.h"
#include "tests/kvstate/kv_state_test_util.h"
#include "tests/storage/storage_test_util.h"

namespace raftkv::kv {
namespace {

namespace fs = std::filesystem;
using raft::Index;
using raft::NodeId;
using raft::RaftNode;
using raft::Term;
using raft::testing::TempDir;

bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Forwards to a KvStateMachine and counts what the node asks of it.
class CountingSm final : public raft::StateMachine {
 public:
  explicit CountingSm(KvStateMachine& kv) : kv_(kv) {}
  void apply(const raft::Entry& e) override {
    ++applies;
    kv_.apply(e);
  }
  void applied_batch_done() override { kv_.applied_batch_done(); }
  raft::Bytes snapshot() const override { return kv_.snapshot(); }
  bool restore(const raft::Snapshot& snap, std::string* error) override {
    ++restores;
    return kv_.restore(snap, error);
  }
  Index applied_index() const override { return kv_.applied_index(); }
  bool durable() const override { return kv_.durable(); }
  void checkpoint() override {
    ++checkpoints;
    kv_.checkpoint();
  }
  Index checkpoint_in_background() override {
    ++checkpoints;
    return kv_.checkpoint_in_background();
  }
  Index pinned_index() const override { return kv_.pinned_index(); }
  raft::ImageWriter pinned_image_writer() const override {
    ++images;
    return kv_.pinned_image_writer();
  }

  uint64_t applies = 0, restores = 0, checkpoints = 0;
  mutable uint64_t images = 0;

 private:
  KvStateMachine& kv_;
};

// One node: its stores, state machine, transport, optional listener, and
// RaftNode. Destroying it abandons everything mid-flight, like a crash of
// the process (minus the unsynced writes a machine crash would lose).
class Node {
 public:
  Node(asio::io_context& io, NodeId id, std::vector<NodeId> voters, std::string dir,
       uint64_t snapshot_every)
      : io_(io),
        id_(id),
        voters_(std::move(voters)),
        dir_(std::move(dir)),
        snapshot_every_(snapshot_every) {}
  ~Node() { shut(); }

  // Port 0: any free port. Returns the port.
  uint16_t listen(uint16_t port) {
    raft::Listener::Options lo;
    lo.address = fmt::format("127.0.0.1:{}", port);
    auto opened = raft::Listener::open(io_, lo);
    EXPECT_TRUE(opened.ok()) << opened.error;
    listener_ = std::move(opened.listener);
    return listener_ ? listener_->port() : 0;
  }

  bool start(const std::map<NodeId, std::string>& peers, std::string* error) {
    raft::RocksLogStoreOptions so;
    so.cluster_id = 1;
    so.node_id = id_;
    so.initial_voters = voters_;
    auto opened = raft::RocksLogStore::open(dir_, so);
    if (!opened.ok()) {
      *error = opened.error;
      return false;
    }
    store = std::move(opened.store);
    auto state = RocksKvStore::open(dir_ + "/state", {}, error);
    if (!state) return false;
    kv = std::make_unique<KvStateMachine>(std::move(state));
    sm = std::make_unique<CountingSm>(*kv);
    committer_ = std::make_unique<raft::GroupCommitter>(
        *store, raft::GroupCommitter::kDefaultMaxPending, pacing);
    raft::Transport::Options to;
    to.self = id_;
    to.cluster_id = 1;
    to.peers = peers;
    transport_ = std::make_unique<raft::Transport>(
        io_, to,
        raft::Transport::Callbacks{[this](std::vector<raft::Message>&& m) {
                                     if (node) node->step(std::move(m));
                                   },
                                   nullptr});
    raft::NodeOptions no;
    no.id = id_;
    no.voters = voters_;
    no.tick_ms = 10;
    no.election_ticks = election_ticks;
    no.heartbeat_ticks = 2;
    no.raft.check_quorum = check_quorum;
    no.snapshot_every = snapshot_every_;
    no.raft.max_snapshot_chunk = 4 << 10;  // several chunks per image
    node = std::make_unique<RaftNode>(io_, no, *store, *committer_, *sm, *transport_);
    if (!node->start(error)) return false;
    if (listener_) listener_->start(*transport_);
    return true;
  }

  void shut() {
    if (node) node->stop();
    if (transport_) transport_->stop();
    if (listener_) listener_->stop();
    node.reset();
    transport_.reset();
    listener_.reset();
    committer_.reset();
    sm.reset();
    kv.reset();
    store.reset();
  }

  raft::GroupCommitter::Stats writes() const { return committer_->stats(); }
  bool running() const { return node != nullptr; }
  bool leads() const { return node && node->status().role == raft::Role::kLeader; }
  Index applied() const { return kv ? kv->applied_index() : Index(0); }
  const std::string& dir() const { return dir_; }

  // For the next start().
  raft::WritePacing pacing;
  int election_ticks = 10;
  bool check_quorum = true;
  std::unique_ptr<raft::RocksLogStore> store;
  std::unique_ptr<KvStateMachine> kv;
  std::unique_ptr<CountingSm> sm;
  std::unique_ptr<RaftNode> node;

 private:
  asio::io_context& io_;
  NodeId id_;
  std::vector<NodeId> voters_;
  std::string dir_;
  uint64_t snapshot_every_;
  std::unique_ptr<raft::GroupCommitter> committer_;
  std::unique_ptr<raft::Transport> transport_;
  std::unique_ptr<raft::Listener> listener_;
};

Node* leader_of(const std::vector<Node*>& nodes) {
  for (Node* n : nodes) {
    if (n->leads()) return n;
  }
  return nullptr;
}

// Puts key{first..last} = value{i} through whichever node leads, retrying
// until each is applied there. Client 1, seq = i (exactly-once on retries).
void put_keys(asio::io_context& io, const std::vector<Node*>& nodes, uint64_t first,
              uint64_t last) {
  for (uint64_t i = first; i <= last; ++i) {
    bool applied = false;
    for (int attempt = 0; !applied && attempt < 50; ++attempt) {
      Node* l = nullptr;
      ASSERT_TRUE(run_until(io, [&] { return (l = leader_of(nodes)) != nullptr; })) << "no leader";
      if (l->kv->already_applied(wire::ClientId(1), i)) break;
      std::optional<RaftNode::Outcome> outcome;
      auto cmd = testing::make_command(1, i, wire::Op::kPut, fmt::format("key{}", i),
                                       fmt::format("value{}", i), 1000 + i);
      l->node->propose(testing::written_entry(i, cmd).data,
                       [&](RaftNode::Outcome o) { outcome = o; });
      ASSERT_TRUE(run_until(io, [&] { return outcome.has_value(); }));
      applied = *outcome == RaftNode::Outcome::kApplied;
    }
  }
}

void expect_keys(const KvStateMachine& kv, uint64_t first, uint64_t last) {
  for (uint64_t i = first; i <= last; ++i)
    ASSERT_EQ(kv.get(fmt::format("key{}", i)), fmt::format("value{}", i)) << "key " << i;
}

TEST(RaftNodeStateTest, RestartReplaysOnlyTheLogAfterTheState) {
  TempDir tmp;
  asio::io_context io;
  std::string error;
  Index applied;
  {
    Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), /*snapshot_every=*/50);
    ASSERT_TRUE(n.start({}, &error)) << error;
    put_keys(io, {&n}, 1, 130);
    applied = n.applied();
    // Compaction follows the state's background write, soon after.
    ASSERT_TRUE(run_until(io, [&] { return n.store->snapshot_meta().index >= Index(100); }));
    // Compaction stored no image: the state holds it.
    raft::Snapshot snap = *n.store->snapshot();
    EXPECT_GE(snap.meta.index, Index(100));
    EXPECT_TRUE(snap.data.empty());
    EXPECT_GE(n.sm->checkpoints, 3u);  // start + two compactions
  }
  Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), 50);
  ASSERT_TRUE(n.start({}, &error)) << error;
  // Nothing restored, nothing replayed: the state was already there.
  EXPECT_EQ(n.sm->restores, 0u);
  EXPECT_EQ(n.applied(), applied);
  expect_keys(*n.kv, 1, 130);
  ASSERT_TRUE(run_until(io, [&] { return n.leads(); }));
  uint64_t applies_at_start = n.sm->applies;
  EXPECT_LE(applies_at_start, 1u);  // at most the new leader's no-op
  put_keys(io, {&n}, 131, 140);
  expect_keys(*n.kv, 1, 140);
}

// The log store's commit index is written unsynced and may be behind the
// state after a crash: the entries in between must not be applied twice.
TEST(RaftNodeStateTest, StateAheadOfTheStoredCommitIndex) {
  TempDir tmp;
  asio::io_context io;
  std::string error;
  Index applied;
  {
    Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), /*snapshot_every=*/0);
    ASSERT_TRUE(n.start({}, &error)) << error;
    put_keys(io, {&n}, 1, 40);
    applied = n.applied();
  }
  {
    auto opened = raft::RocksLogStore::open(tmp.sub("n1"), {});
    ASSERT_TRUE(opened.ok()) << opened.error;
    raft::HardState hs = opened.store->hard_state();
    ASSERT_GT(applied, Index(10));
    hs.commit = Index(10);
    raft::WriteRequest req;
    req.hard_state = hs;
    opened.store->write(req);
  }
  Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), 0);
  ASSERT_TRUE(n.start({}, &error)) << error;
  EXPECT_EQ(n.applied(), applied);
  put_keys(io, {&n}, 41, 45);
  expect_keys(*n.kv, 1, 45);
  EXPECT_LE(n.sm->applies, 5u + 1u);  // the new entries and a no-op, nothing older
}

// A hard state that changes only the commit index is not written by itself
// (one write per entry here, not two); it goes with the next entries.
TEST(RaftNodeStateTest, TheCommitIndexRidesWithTheNextWrite) {
  TempDir tmp;
  asio::io_context io;
  std::string error;
  Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), /*snapshot_every=*/0);
  ASSERT_TRUE(n.start({}, &error)) << error;
  put_keys(io, {&n}, 1, 20);
  const raft::GroupCommitter::Stats w = n.writes();
  EXPECT_GE(w.entries, 20u);
  EXPECT_EQ(w.batches, w.syncs) << "a write without a sync: a commit index written alone";
  EXPECT_GE(n.store->hard_state().commit + 1, n.applied())
      << "the commit index did not ride with the last entry's write";
}

// The data dir a crash during a snapshot install leaves: the log store
// records a snapshot at index 40 (the workload's last entry) with
// `stored_image`, and the state is still at index 10, from before.
void leave_an_interrupted_install(const std::string& dir, const std::vector<raft::Entry>& es,
                                  raft::Bytes stored_image) {
  raft::RocksLogStoreOptions so;
  so.cluster_id = 1;
  so.node_id = NodeId(1);
  so.initial_voters = {NodeId(1)};
  auto opened = raft::RocksLogStore::open(dir, so);
  ASSERT_TRUE(opened.ok()) << opened.error;
  raft::WriteRequest req;
  req.snapshot = raft::Snapshot{{Index(40), Term(1), {NodeId(1)}}, std::move(stored_image)};
  req.hard_state = raft::HardState{Term(1), NodeId(0), Index(40)};
  opened.store->write(req);
  std::string error;
  KvStateMachine sm(RocksKvStore::open(dir + "/state", {}, &error));
  for (uint64_t i = 1; i <= 10; ++i)
    sm.apply(es[i - 1]);
  sm.applied_batch_done();
}

// A crash after the log store installed a snapshot but before the state
// machine had restored it: start() restores it from the log store.
TEST(RaftNodeStateTest, StateBehindAnInstalledSnapshotIsRestored) {
  TempDir tmp;
  testing::WorkloadOptions wo;
  wo.entries = 40;
  auto es = testing::make_workload(61, wo);
  KvStateMachine model;
  testing::apply_each(model, es);
  leave_an_interrupted_install(tmp.sub("n1"), es, model.snapshot());
  asio::io_context io;
  std::string error;
  Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), 0);
  ASSERT_TRUE(n.start({}, &error)) << error;
  EXPECT_EQ(n.sm->restores, 1u);
  EXPECT_EQ(n.applied(), Index(40));
  EXPECT_EQ(n.kv->snapshot(), model.snapshot());
}

// A crash after a follower's log store recorded a snapshot received from
// the leader but before its durable state had restored it: the log store
// holds no image (the state machine was to), the fsynced received image
// does, and start() restores from it, then removes it.
TEST(RaftNodeStateTest, ReceivedImageIsRestoredFromItsFileAfterACrash) {
  TempDir tmp;
  testing::WorkloadOptions wo;
  wo.entries = 40;
  auto es = testing::make_workload(62, wo);
  KvStateMachine model;
  testing::apply_each(model, es);
  leave_an_interrupted_install(tmp.sub("n1"), es, raft::Bytes());
  std::string image_path = tmp.sub("n1") + "/snapshots/installed-40.img";
  fs::create_directories(tmp.sub("n1") + "/snapshots");
  std::ofstream(image_path, std::ios::binary) << model.snapshot().view();
  asio::io_context io;
  std::string error;
  {
    Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), 0);
    ASSERT_TRUE(n.start({}, &error)) << error;
    EXPECT_EQ(n.sm->restores, 1u);
    EXPECT_EQ(n.applied(), Index(40));
    EXPECT_EQ(n.kv->snapshot(), model.snapshot());
    EXPECT_FALSE(fs::exists(image_path)) << "the state holds it durably now";
  }
  // And the restored state is durable: the next start restores nothing.
  Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), 0);
  ASSERT_TRUE(n.start({}, &error)) << error;
  EXPECT_EQ(n.sm->restores, 0u);
  EXPECT_EQ(n.kv->snapshot(), model.snapshot());
}

TEST(RaftNodeStateTest, StateThatDoesNotFitTheLogIsRefused) {
  TempDir tmp;
  asio::io_context io;
  std::string error;
  {
    Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), /*snapshot_every=*/20);
    ASSERT_TRUE(n.start({}, &error)) << error;
    put_keys(io, {&n}, 1, 30);
    ASSERT_TRUE(run_until(io, [&] { return n.store->snapshot_meta().index >= Index(20); }));
  }
  // The state directory of a compacted node is lost.
  fs::rename(tmp.sub("n1") + "/state", tmp.sub("saved-state"));
  {
    Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n1"), 20);
    EXPECT_FALSE(n.start({}, &error));
    EXPECT_NE(error.find("the state directory was lost or damaged"), std::string::npos) << error;
  }
  // A state that is ahead of a (new, empty) log.
  {
    raft::RocksLogStoreOptions so;
    so.cluster_id = 1;
    so.node_id = NodeId(1);
    so.initial_voters = {NodeId(1)};
    ASSERT_TRUE(raft::RocksLogStore::open(tmp.sub("n2"), so).ok());
  }
  fs::rename(tmp.sub("saved-state"), tmp.sub("n2") + "/state");
  Node n(io, NodeId(1), {NodeId(1)}, tmp.sub("n2"), 20);
  EXPECT_FALSE(n.start({}, &error));
  EXPECT_NE(error.find("beyond the log's last index"), std::string::npos) << error;
}

// Three nodes in `tmp`, each listening on a port of its own; none started.
struct ThreeNodes {
  ThreeNodes(asio::io_context& io, TempDir& tmp, uint64_t snapshot_every) {
    const std::vector<NodeId> voters = {NodeId(1), NodeId(2), NodeId(3)};
    for (int i = 1; i <= 3; ++i) {
      nodes.push_back(std::make_unique<Node>(io, NodeId(i), voters, tmp.sub(fmt::format("n{}", i)),
                                             snapshot_every));
      ports.push_back(nodes.back()->listen(0));
      EXPECT_NE(ports.back(), 0);
      addresses[NodeId(i)] = fmt::format("127.0.0.1:{}", ports.back());
    }
  }
  // Everyone's address but node i's.
  std::map<NodeId, std::string> peers_of(int i) const {
    auto peers = addresses;
    peers.erase(NodeId(i));
    return peers;
  }

  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<uint16_t> ports;
  std::map<NodeId, std::string> addresses;
};

// Three nodes. Node 3 starts only after the leader compacted well past the
// start of the log, so it can catch up only by snapshot: the leader's pinned
// view, sent in chunks. Then node 2 restarts from its own state.
TEST(RaftNodeStateTest, LaggingFollowerCatchesUpFromThePinnedView) {
  TempDir tmp;
  asio::io_context io;
  ThreeNodes cluster(io, tmp, /*snapshot_every=*/40);
  std::vector<std::unique_ptr<Node>>& nodes = cluster.nodes;
  auto peers_of = [&](int i) { return cluster.peers_of(i); };
  std::string error;
  for (int i = 1; i <= 2; ++i)
    ASSERT_TRUE(nodes[i - 1]->start(peers_of(i), &error)) << error;
  std::vector<Node*> all = {nodes[0].get(), nodes[1].get(), nodes[2].get()};
  put_keys(io, all, 1, 200);
  Node* l = leader_of(all);
  ASSERT_NE(l, nullptr);
  ASSERT_TRUE(run_until(io, [&] { return l->store->snapshot_meta().index >= Index(120); }));
  raft::Snapshot stored = *l->store->snapshot();
  ASSERT_GE(stored.meta.index, Index(120));
  EXPECT_TRUE(stored.data.empty());

  ASSERT_TRUE(nodes[2]->start(peers_of(3), &error)) << error;
  Node& n3 = *nodes[2];
  ASSERT_TRUE(run_until(io, [&] { return n3.applied() >= l->applied(); }));
  EXPECT_GE(n3.sm->restores, 1u);
  EXPECT_GE(n3.store->snapshot_meta().index, stored.meta.index);
  EXPECT_GE(l->sm->images, 1u);
  expect_keys(*n3.kv, 1, 200);
  // The received image was removed once the state held it; the leader's
  // outgoing image was unlinked as soon as it was mapped.
  auto files_in = [](const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
      names.push_back(e.path().filename().string());
    return names;
  };
  EXPECT_EQ(files_in(tmp.sub("n3") + "/snapshots"), std::vector<std::string>{});
  EXPECT_EQ(files_in(l->dir() + "/snapshots"), std::vector<std::string>{});

  // Node 2 restarts from its own directory while the others go on.
  nodes[1]->shut();
  put_keys(io, all, 201, 260);
  nodes[1]->listen(cluster.ports[1]);
  ASSERT_TRUE(nodes[1]->start(peers_of(2), &error)) << error;
  put_keys(io, all, 261, 280);
  Node* now = nullptr;
  ASSERT_TRUE(run_until(io, [&] {
    now = leader_of(all);
    return now && all[0]->applied() == now->applied() && all[1]->applied() == now->applied() &&
           all[2]->applied() == now->applied();
  }));
  raft::Bytes image = now->kv->snapshot();
  for (Node* n : all) {
    EXPECT_EQ(n->kv->snapshot(), image);
    expect_keys(*n->kv, 1, 280);
  }
}

// WritePacing on a follower: its inline write of a few entries right after a
// large write waits, while its Raft thread goes on reading appends; the
// entries that arrive meanwhile end the wait.
TEST(RaftNodeStateTest, AFollowerHoldsAFewEntriesUntilMoreArrive) {
  TempDir tmp;
  asio::io_context io;
  ThreeNodes cluster(io, tmp, /*snapshot_every=*/0);
  std::vector<std::unique_ptr<Node>>& nodes = cluster.nodes;
  for (int i = 1; i <= 3; ++i) {
    Node& n = *nodes[i - 1];
    if (i == 1) {
      // The leader: never holds, and keeps leading while its followers hold
      // (a held follower answers no heartbeat until it writes).
      n.pacing.window = std::chrono::microseconds(0);
      n.check_quorum = false;
    } else {
      // Followers that never campaign, and whose hold ends only through the
      // entries the test sends.
      n.pacing.window = std::chrono::seconds(60);
      n.election_ticks = 100000;
    }
  }
  std::string error;
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(nodes[i - 1]->start(cluster.peers_of(i), &error)) << error;
  std::vector<Node*> all = {nodes[0].get(), nodes[1].get(), nodes[2].get()};
  Node& l = *nodes[0];
  ASSERT_TRUE(run_until(io, [&] { return l.leads(); }));
  put_keys(io, all, 1, 1);
  // Proposed in one turn of the event loop, so each follower receives them
  // in one append and writes them at once.
  auto propose = [&](uint64_t first, uint64_t last) {
    for (uint64_t i = first; i <= last; ++i) {
      auto cmd = testing::make_command(1, i, wire::Op::kPut, fmt::format("key{}", i),
                                       fmt::format("value{}", i), 1000 + i);
      l.node->propose(testing::written_entry(i, cmd).data, [](RaftNode::Outcome) {});
    }
  };
  auto applied_everywhere = [&](uint64_t key) {
    for (Node* n : all) {
      if (!n->kv->already_applied(wire::ClientId(1), key)) return false;
    }
    return true;
  };
  propose(2, 41);
  ASSERT_TRUE(run_until(io, [&] { return applied_everywhere(41); }));

  // One entry after 40: both followers hold it, so it cannot commit.
  propose(42, 42);
  run_until(
      io, [] { return false; }, std::chrono::milliseconds(500));
  for (Node* n : all)
    EXPECT_FALSE(n->kv->already_applied(wire::ClientId(1), 42)) << "a lone entry was not held";
  EXPECT_TRUE(l.leads());

  // Ten more: company. All go long before the 60 s window ends.
  propose(43, 52);
  ASSERT_TRUE(run_until(io, [&] { return applied_everywhere(52); }));
  for (Node* n : all)
    expect_keys(*n->kv, 1, 52);
}
}  // namespace
}  // namespace raftkv::kv
