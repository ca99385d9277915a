// One test per claim of the Raft paper / thesis, driving single cores by hand:
// every message in and out is explicit.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "raft/core/memory_storage.h"
#include "raft/core/raft.h"

namespace raftkv::raft {
namespace {

std::vector<NodeId> ids(int n) {
  std::vector<NodeId> v;
  for (int i = 1; i <= n; ++i)
    v.push_back(NodeId(i));
  return v;
}

// Pre-vote and check-quorum off: the paper's original algorithm.
Config plain_config() {
  Config c;
  c.pre_vote = false;
  c.check_quorum = false;
  return c;
}

// One core over a MemoryStorage, persisting each Ready synchronously.
struct TestNode {
  MemoryStorage disk;
  std::unique_ptr<Raft> raft;

  explicit TestNode(NodeId id, int n = 3, Config cfg = {}) : disk(ids(n)) {
    cfg.id = id;
    cfg.voters = ids(n);
    raft = std::make_unique<Raft>(cfg, disk);
  }
  // Handles all output; returns every message (immediate ones first).
  std::vector<Message> flush() {
    std::vector<Message> out;
    while (raft->has_ready()) {
      Ready rd = raft->ready();
      out.insert(out.end(), rd.messages.begin(), rd.messages.end());
      disk.persist(rd);
      out.insert(out.end(), rd.persisted_messages.begin(), rd.persisted_messages.end());
      raft->advance(rd);
    }
    return out;
  }
  void elapse(int ticks) {
    for (int i = 0; i < ticks; ++i)
      raft->tick();
  }
};

Message msg(MessageType t, int from, int to, uint64_t term) {
  Message m;
  m.type = t;
  m.from = NodeId(from);
  m.to = NodeId(to);
  m.term = Term(term);
  return m;
}

Entry entry(uint64_t index, uint64_t term, std::string data = "") {
  return Entry{Term(term), Index(index), EntryType::kNormal, Bytes(std::move(data))};
}

const Message* find(const std::vector<Message>& ms, MessageType t, int to = 0) {
  for (const Message& m : ms)
    if (m.type == t && (to == 0 || m.to == NodeId(to))) return &m;
  return nullptr;
}

// Makes node 1 leader of a 3-node cluster at term 1 with node 2 voting for it.
void elect(TestNode& n) {
  n.raft->campaign_now();
  auto out = n.flush();
  for (const Message& m : out) {
    if (m.type == MessageType::kPreVote && m.to == NodeId(2)) {
      Message r = msg(MessageType::kPreVoteResponse, 2, 1, m.term.value);
      n.raft->step(r);
    }
  }
  out = n.flush();
  for (const Message& m : out) {
    if (m.type == MessageType::kVote && m.to == NodeId(2)) {
      n.raft->step(msg(MessageType::kVoteResponse, 2, 1, m.term.value));
    }
  }
  n.flush();
  ASSERT_EQ(n.raft->role(), Role::kLeader);
}

TEST(RaftPaper, Section5_1_StaleTermAppendIsRejectedAndTellsTheSenderOurTerm) {
  TestNode n(NodeId(1));
  n.raft->step(msg(MessageType::kHeartbeat, 2, 1, 5));  // learn term 5 from leader 2
  n.flush();
  Message stale = msg(MessageType::kAppend, 3, 1, 3);
  stale.entries = {entry(1, 3, "x")};
  n.raft->step(stale);
  auto out = n.flush();
  EXPECT_EQ(n.raft->term(), Term(5));
  EXPECT_EQ(n.raft->log().last_index(), Index(0)) << "a stale leader's entries were accepted";
  const Message* r = find(out, MessageType::kAppendResponse, 3);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->term, Term(5));
}

TEST(RaftPaper, Section5_1_HigherTermMakesLeaderStepDown) {
  TestNode n(NodeId(1));
  elect(n);
  n.raft->step(msg(MessageType::kAppendResponse, 2, 1, 9));
  n.flush();
  EXPECT_EQ(n.raft->role(), Role::kFollower);
  EXPECT_EQ(n.raft->term(), Term(9));
}

TEST(RaftPaper, Section5_2_AtMostOneVotePerTermAndItIsDurableBeforeTheReply) {
  TestNode n(NodeId(1), 3, plain_config());
  Message v2 = msg(MessageType::kVote, 2, 1, 1);
  n.raft->step(v2);
  Ready rd = n.raft->ready();
  // Thesis §3.8: the grant waits for the vote to be on disk.
  EXPECT_EQ(find(rd.messages, MessageType::kVoteResponse), nullptr);
  const Message* grant = find(rd.persisted_messages, MessageType::kVoteResponse, 2);
  ASSERT_NE(grant, nullptr);
  EXPECT_FALSE(grant->reject);
  ASSERT_TRUE(rd.hard_state);
  EXPECT_EQ(rd.hard_state->vote, NodeId(2));
  EXPECT_TRUE(rd.must_sync);
  n.disk.set_hard_state(*rd.hard_state);
  n.raft->advance(rd);
  n.raft->step(msg(MessageType::kVote, 3, 1, 1));
  auto out = n.flush();
  const Message* r3 = find(out, MessageType::kVoteResponse, 3);
  ASSERT_NE(r3, nullptr);
  EXPECT_TRUE(r3->reject) << "voted twice in term 1";
}

TEST(RaftPaper, Section5_2_VoteSurvivesRestart) {
  TestNode n(NodeId(1), 3, plain_config());
  n.raft->step(msg(MessageType::kVote, 2, 1, 1));
  n.flush();
  Config cfg = plain_config();
  cfg.id = NodeId(1);
  cfg.voters = ids(3);
  n.raft = std::make_unique<Raft>(cfg, n.disk);  // crash + restart
  EXPECT_EQ(n.raft->vote(), NodeId(2));
  n.raft->step(msg(MessageType::kVote, 3, 1, 1));
  auto out = n.flush();
  ASSERT_NE(find(out, MessageType::kVoteResponse, 3), nullptr);
  EXPECT_TRUE(find(out, MessageType::kVoteResponse, 3)->reject);
}

TEST(RaftPaper, Section5_4_1_VoteDeniedToCandidateWithLessUpToDateLog) {
  TestNode n(NodeId(1), 3, plain_config());
  n.disk.append({entry(1, 1), entry(2, 2)});
  n.disk.set_hard_state({Term(2), kNoNode, Index(0)});
  Config cfg = plain_config();
  cfg.id = NodeId(1);
  cfg.voters = ids(3);
  n.raft = std::make_unique<Raft>(cfg, n.disk);
  struct Case {
    uint64_t last_index, last_term;
    bool granted;
  } cases[] = {{1, 1, false}, {5, 1, false}, {1, 2, false},
               {2, 2, true},  {3, 2, true},  {1, 3, true}};
  uint64_t term = 3;
  for (const Case& c : cases) {
    Message v = msg(MessageType::kVote, 2, 1, term++);  // a fresh term: the vote is free
    v.index = Index(c.last_index);
    v.log_term = Term(c.last_term);
    n.raft->step(v);
    auto out = n.flush();
    const Message* r = find(out, MessageType::kVoteResponse, 2);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(!r->reject, c.granted) << "candidate last=" << c.last_index << "/" << c.last_term;
  }
}

TEST(RaftPaper, Section5_3_FollowerTruncatesConflictingSuffixButNotMatchingEntries) {
  TestNode n(NodeId(1), 3, plain_config());
  Message a = msg(MessageType::kAppend, 2, 1, 1);
  a.entries = {entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")};
  n.raft->step(a);
  n.flush();
  // A delayed duplicate of an earlier, shorter append must not truncate.
  Message dup = msg(MessageType::kAppend, 2, 1, 1);
  dup.entries = {entry(1, 1, "a")};
  n.raft->step(dup);
  n.flush();
  EXPECT_EQ(n.raft->log().last_index(), Index(3));
  // A new leader in term 2 overwrites the uncommitted suffix from index 2.
  Message b = msg(MessageType::kAppend, 3, 1, 2);
  b.index = Index(1);
  b.log_term = Term(1);
  b.entries = {entry(2, 2, "B")};
  n.raft->step(b);
  n.flush();
  EXPECT_EQ(n.raft->log().last_index(), Index(2));
  EXPECT_EQ(n.raft->log().term(Index(2)), Term(2));
  EXPECT_EQ(n.disk.last_index(), Index(2));
}

TEST(RaftPaper, Section5_3_FastBacktrackingSkipsAConflictingTermInOneRoundTrip) {
  // Follower 2 holds a long suffix of term 2 that the leader (term 3) lacks.
  TestNode leader(NodeId(1), 3, plain_config());
  leader.disk.append({entry(1, 1), entry(2, 1)});
  leader.disk.set_hard_state({Term(2), kNoNode, Index(0)});
  Config cfg = plain_config();
  cfg.id = NodeId(1);
  cfg.voters = ids(3);
  leader.raft = std::make_unique<Raft>(cfg, leader.disk);
  leader.raft->campaign_now();
  leader.flush();
  leader.raft->step(msg(MessageType::kVoteResponse, 3, 1, 3));
  auto out = leader.flush();
  ASSERT_EQ(leader.raft->role(), Role::kLeader);
  const Message* app = find(out, MessageType::kAppend, 2);
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->index, Index(2));  // probes right after its last entry
  // Follower has 1/1 then 2..50 at term 2: it rejects prev 2/1, hinting 1/1?
  // No: its entry 2 has term 2 > 1, so its hint is the last index with term <= 1.
  Message rej = msg(MessageType::kAppendResponse, 2, 1, 3);
  rej.reject = true;
  rej.index = Index(2);
  rej.reject_hint = Index(1);
  rej.hint_term = Term(1);
  leader.raft->step(rej);
  out = leader.flush();
  app = find(out, MessageType::kAppend, 2);
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->index, Index(1)) << "next probe must start right after the hint";
  EXPECT_EQ(app->log_term, Term(1));
}

// A follower that is slow, not gone, answers heartbeats the leader sent
// before its probe. Those answers must not each trigger another copy of the
// probe (up to max_msg_bytes each); the probe goes again only once a
// heartbeat sent after it is answered.
TEST(RaftCore, AProbeIsResentOnlyWhenAHeartbeatSentAfterItIsAnswered) {
  TestNode leader(NodeId(1));
  elect(leader);
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(leader.raft->propose(Bytes(fmt::format("cmd{}", i))).status ==
                ProposeResult::Status::kAccepted);
  leader.flush();
  ASSERT_EQ(leader.raft->progress(NodeId(3))->state, ProgressState::kProbe);

  auto heartbeat_response = [](const Message& hb) {
    Message r = msg(MessageType::kHeartbeatResponse, 3, 1, hb.term.value);
    r.index = hb.index;
    return r;
  };
  auto appends_to_3 = [](const std::vector<Message>& out) {
    return std::count_if(out.begin(), out.end(), [](const Message& m) {
      return m.type == MessageType::kAppend && m.to == NodeId(3);
    });
  };
  // Three heartbeat rounds while node 3 is silent.
  std::vector<Message> heartbeats;
  for (int i = 0; i < 3; ++i) {
    leader.elapse(1);
    for (const Message& m : leader.flush())
      if (m.type == MessageType::kHeartbeat && m.to == NodeId(3)) heartbeats.push_back(m);
  }
  ASSERT_EQ(heartbeats.size(), 3u);
  EXPECT_LT(heartbeats[0].index, heartbeats[1].index);

  // Node 3 catches up on them. The first answer (to a heartbeat sent after
  // the first probe) sends the probe again; the other two were also sent
  // before that resend, so they do not.
  int64_t resent = 0;
  for (const Message& hb : heartbeats) {
    leader.raft->step(heartbeat_response(hb));
    resent += appends_to_3(leader.flush());
  }
  EXPECT_EQ(resent, 1);

  // A heartbeat sent after the resend, answered: the probe goes once more.
  leader.elapse(1);
  const std::vector<Message> round4 = leader.flush();
  const Message* hb = find(round4, MessageType::kHeartbeat, 3);
  ASSERT_NE(hb, nullptr);
  leader.raft->step(heartbeat_response(*hb));
  const std::vector<Message> out = leader.flush();
  ASSERT_EQ(appends_to_3(out), 1);
  const Message* app = find(out, MessageType::kAppend, 3);
  EXPECT_EQ(app->entries.size(), 4u);  // the no-op and the three commands
}

TEST(RaftPaper, Section5_4_2_LeaderCommitsPreviousTermEntryOnlyThroughOneOfItsOwnTerm) {
  // Figure 8: the leader of term 3 holds 1/1 and 2/2 (from term 2); a majority
  // acking index 2 must not commit it until an entry of term 3 is replicated.
  TestNode n(NodeId(1), 3, plain_config());
  n.disk.append({entry(1, 1), entry(2, 2)});
  n.disk.set_hard_state({Term(2), kNoNode, Index(1)});
  Config cfg = plain_config();
  cfg.id = NodeId(1);
  cfg.voters = ids(3);
  n.raft = std::make_unique<Raft>(cfg, n.disk);
  n.raft->campaign_now();
  n.flush();
  n.raft->step(msg(MessageType::kVoteResponse, 2, 1, 3));
  n.flush();
  ASSERT_EQ(n.raft->role(), Role::kLeader);
  Message ack = msg(MessageType::kAppendResponse, 2, 1, 3);
  ack.index = Index(2);
  n.raft->step(ack);
  n.flush();
  EXPECT_EQ(n.raft->log().committed(), Index(1)) << "committed a previous-term entry by counting";
  ack.index = Index(3);  // the term-3 no-op
  n.raft->step(ack);
  n.flush();
  EXPECT_EQ(n.raft->log().committed(), Index(3));
}

TEST(RaftThesis, Section10_2_1_LeaderSendsAppendsBeforeItsOwnWriteButCountsItselfOnlyAfter) {
  TestNode n(NodeId(1));
  elect(n);
  // Follower 2 acks the no-op, so its progress leaves probe and streams.
  Message noop_ack = msg(MessageType::kAppendResponse, 2, 1, n.raft->term().value);
  noop_ack.index = n.raft->log().last_index();
  n.raft->step(noop_ack);
  n.flush();
  auto res = n.raft->propose(Bytes(std::string("v")));
  ASSERT_EQ(res.status, ProposeResult::Status::kAccepted);
  Ready rd = n.raft->ready();
  EXPECT_NE(find(rd.messages, MessageType::kAppend, 2), nullptr) << "append waited for our fsync";
  ASSERT_FALSE(rd.entries.empty());
  // Follower 2 acks before our own write is durable: one of two is not a quorum.
  n.raft->step([&] {
    Message a = msg(MessageType::kAppendResponse, 2, 1, n.raft->term().value);
    a.index = res.index;
    return a;
  }());
  EXPECT_LT(n.raft->log().committed(), res.index);
  n.disk.append(rd.entries);
  if (rd.hard_state) n.disk.set_hard_state(*rd.hard_state);
  n.raft->advance(rd);
  EXPECT_EQ(n.raft->log().committed(), res.index);
}

TEST(RaftThesis, Section9_6_PreVoteDoesNotChangeTermOrVote) {
  TestNode n(NodeId(1));
  n.raft->step(msg(MessageType::kPreVote, 2, 1, 7));
  auto out = n.flush();
  EXPECT_EQ(n.raft->term(), Term(0));
  EXPECT_EQ(n.raft->vote(), kNoNode);
  const Message* r = find(out, MessageType::kPreVoteResponse, 2);
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->reject);
  EXPECT_EQ(r->term, Term(7));
}

TEST(RaftThesis, Section9_6_PreCandidateKeepsItsTermWhenItCannotWin) {
  TestNode n(NodeId(1));
  n.raft->campaign_now();
  n.flush();
  EXPECT_EQ(n.raft->role(), Role::kPreCandidate);
  EXPECT_EQ(n.raft->term(), Term(0));
  Message no = msg(MessageType::kPreVoteResponse, 2, 1, 0);
  no.reject = true;
  n.raft->step(no);
  Message no3 = no;
  no3.from = NodeId(3);
  n.raft->step(no3);
  n.flush();
  EXPECT_EQ(n.raft->role(), Role::kFollower);
  EXPECT_EQ(n.raft->term(), Term(0));
}

TEST(RaftThesis, Section4_2_3_FollowerWithLiveLeaderIgnoresVoteRequests) {
  TestNode n(NodeId(1));
  n.raft->step(msg(MessageType::kHeartbeat, 2, 1, 1));
  n.flush();
  Message v = msg(MessageType::kVote, 3, 1, 2);
  n.raft->step(v);
  auto out = n.flush();
  EXPECT_EQ(n.raft->term(), Term(1)) << "a disruptive candidate raised our term";
  EXPECT_EQ(find(out, MessageType::kVoteResponse), nullptr);
  // A transfer campaign is granted despite the lease (Thesis §3.10).
  v.transfer = true;
  n.raft->step(v);
  out = n.flush();
  ASSERT_NE(find(out, MessageType::kVoteResponse, 3), nullptr);
  EXPECT_FALSE(find(out, MessageType::kVoteResponse, 3)->reject);
}

TEST(RaftThesis, Section6_2_LeaderStepsDownWithoutQuorum) {
  TestNode n(NodeId(1));
  elect(n);
  n.elapse(25);  // two election timeouts with no response from anyone
  n.flush();
  EXPECT_EQ(n.raft->role(), Role::kFollower);
}

TEST(RaftThesis, Section6_4_ReadIndexWaitsForThisTermsCommitAndAHeartbeatQuorum) {
  TestNode n(NodeId(1));
  elect(n);
  n.raft->read_index(42);
  auto out = n.flush();
  // The no-op of this term is not committed yet: no round may start.
  EXPECT_EQ(find(out, MessageType::kHeartbeat), nullptr);
  Message ack = msg(MessageType::kAppendResponse, 2, 1, n.raft->term().value);
  ack.index = n.raft->log().last_index();
  n.raft->step(ack);
  Ready rd = n.raft->ready();
  EXPECT_TRUE(rd.read_states.empty());
  const Message* hb = find(rd.messages, MessageType::kHeartbeat, 2);
  ASSERT_NE(hb, nullptr) << "leadership was not confirmed with a heartbeat round";
  EXPECT_GT(hb->read_round, 0u);
  n.raft->advance(rd);
  EXPECT_TRUE(n.raft->ready().read_states.empty());
  Message hr = msg(MessageType::kHeartbeatResponse, 2, 1, n.raft->term().value);
  hr.read_round = hb->read_round;
  n.raft->step(hr);
  rd = n.raft->ready();
  ASSERT_EQ(rd.read_states.size(), 1u);
  EXPECT_EQ(rd.read_states[0].context, 42u);
  EXPECT_EQ(rd.read_states[0].index, n.raft->log().committed());
}

TEST(RaftThesis, Section6_4_ReadOnFollowerOrDeposedLeaderFails) {
  TestNode n(NodeId(1));
  n.raft->read_index(7);
  Ready rd = n.raft->ready();
  ASSERT_EQ(rd.failed_reads.size(), 1u);
  n.raft->advance(rd);
  TestNode l(NodeId(1));
  elect(l);
  l.raft->read_index(8);
  l.flush();
  l.raft->step(msg(MessageType::kHeartbeat, 2, 1, 10));  // deposed
  rd = l.raft->ready();
  EXPECT_EQ(rd.failed_reads, std::vector<uint64_t>{8});
  EXPECT_TRUE(rd.read_states.empty());
}

TEST(RaftThesis, Section3_10_TransferSendsTimeoutNowOnceTargetIsCaughtUp) {
  TestNode n(NodeId(1));
  elect(n);
  ASSERT_TRUE(n.raft->transfer_leadership(NodeId(2)));
  auto out = n.flush();
  EXPECT_EQ(find(out, MessageType::kTimeoutNow), nullptr) << "target is not caught up yet";
  EXPECT_EQ(n.raft->propose(Bytes(std::string("x"))).status, ProposeResult::Status::kBusy);
  Message ack = msg(MessageType::kAppendResponse, 2, 1, n.raft->term().value);
  ack.index = n.raft->log().last_index();
  n.raft->step(ack);
  out = n.flush();
  EXPECT_NE(find(out, MessageType::kTimeoutNow, 2), nullptr);
}

TEST(RaftPaper, Section7_SnapshotArrivesInChunksAndReplacesTheLog) {
  Config cfg;
  cfg.max_snapshot_chunk = 4;
  TestNode f(NodeId(2), 3, cfg);
  std::string image = "0123456789";
  SnapshotMeta meta{Index(20), Term(3), ids(3)};
  for (uint64_t off = 0; off < image.size(); off += 4) {
    Message c = msg(MessageType::kSnapshot, 1, 2, 3);
    c.snapshot = meta;
    c.snapshot_offset = off;
    c.snapshot_data = Bytes(image.substr(off, 4));
    c.snapshot_done = off + 4 >= image.size();
    f.raft->step(c);
    Ready rd = f.raft->ready();
    // The core hands each chunk on and keeps none of it.
    ASSERT_EQ(rd.snapshot_chunks.size(), 1u);
    EXPECT_EQ(rd.snapshot_chunks[0].offset, off);
    EXPECT_EQ(rd.snapshot_chunks[0].data.view().data(), c.snapshot_data.view().data());
    f.disk.persist(rd);
    if (!c.snapshot_done) {
      EXPECT_FALSE(rd.snapshot);
      ASSERT_EQ(rd.persisted_messages.size(), 1u);
      EXPECT_TRUE(rd.persisted_messages[0].snapshot_ack);
      EXPECT_EQ(rd.persisted_messages[0].snapshot_offset, off + 4);
    } else {
      ASSERT_TRUE(rd.snapshot);
      EXPECT_EQ(*rd.snapshot, meta);
      EXPECT_EQ(f.disk.snapshot()->data.view(), image);
      ASSERT_EQ(rd.persisted_messages.size(), 1u);
      EXPECT_EQ(rd.persisted_messages[0].index, Index(20));
    }
    f.raft->advance(rd);
  }
  EXPECT_EQ(f.raft->log().committed(), Index(20));
  EXPECT_EQ(f.raft->log().first_index(), Index(21));
}

TEST(RaftPaper, Section7_OutOfOrderChunkIsNotAppended) {
  TestNode f(NodeId(2));
  SnapshotMeta meta{Index(5), Term(1), ids(3)};
  Message c = msg(MessageType::kSnapshot, 1, 2, 1);
  c.snapshot = meta;
  c.snapshot_offset = 4;  // chunk 0 was lost
  c.snapshot_data = Bytes(std::string("4567"));
  c.snapshot_done = true;
  f.raft->step(c);
  Ready rd = f.raft->ready();
  EXPECT_FALSE(rd.snapshot);
  ASSERT_EQ(rd.persisted_messages.size(), 1u);
  EXPECT_TRUE(rd.persisted_messages[0].snapshot_ack);
  EXPECT_TRUE(rd.persisted_messages[0].reject) << "must ask the leader to start over";
}

TEST(RaftPaper, Section7_DelayedDuplicateOfFirstChunkDoesNotRestartTheTransfer) {
  TestNode f(NodeId(2));
  SnapshotMeta meta{Index(5), Term(1), ids(3)};
  auto chunk = [&](uint64_t off, std::string data, bool done) {
    Message c = msg(MessageType::kSnapshot, 1, 2, 1);
    c.snapshot = meta;
    c.snapshot_offset = off;
    c.snapshot_data = Bytes(std::move(data));
    c.snapshot_done = done;
    f.raft->step(c);
    return f.flush();
  };
  chunk(0, "0123", false);
  chunk(4, "4567", false);
  auto out = chunk(0, "0123", false);  // a late duplicate
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].snapshot_offset, 8u);
  out = chunk(8, "89", true);
  EXPECT_EQ(f.disk.snapshot()->data.view(), "0123456789");
}

TEST(RaftPaper, Section7_LeaderWaitsForASnapshotImageThatIsNotReadyYet) {
  MemoryStorage disk(ids(3));
  disk.append({entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")});
  disk.set_hard_state({Term(1), kNoNode, Index(3)});
  disk.compact(Index(3), Bytes(std::string("image@3")));
  // The image is still being written until `ready`.
  bool ready = false;
  int asked = 0;
  disk.set_image_ready([&] {
    ++asked;
    return ready;
  });
  Config cfg = plain_config();
  cfg.id = NodeId(1);
  cfg.voters = ids(3);
  Raft r(cfg, disk);
  auto flush = [&] {
    std::vector<Message> out;
    while (r.has_ready()) {
      Ready rd = r.ready();
      out.insert(out.end(), rd.messages.begin(), rd.messages.end());
      disk.persist(rd);
      out.insert(out.end(), rd.persisted_messages.begin(), rd.persisted_messages.end());
      r.advance(rd);
    }
    return out;
  };
  r.campaign_now();
  flush();
  r.step(msg(MessageType::kVoteResponse, 2, 1, 2));
  auto out = flush();
  ASSERT_EQ(r.role(), Role::kLeader);
  // Follower 3 has nothing: it rejects the append, and the entries it
  // needs are compacted.
  const Message* append = find(out, MessageType::kAppend, 3);
  ASSERT_NE(append, nullptr);
  Message reject = msg(MessageType::kAppendResponse, 3, 1, 2);
  reject.reject = true;
  reject.index = append->index;
  reject.reject_hint = Index(0);
  r.step(reject);
  out = flush();
  EXPECT_EQ(find(out, MessageType::kSnapshot, 3), nullptr);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(r.progress(NodeId(3))->state, ProgressState::kProbe);
  // Not asked again until the follower answers the next heartbeat.
  r.step(reject);
  flush();
  EXPECT_EQ(asked, 1);
  auto next_heartbeat_answered = [&] {
    r.tick();
    const std::vector<Message> sent = flush();
    const Message* hb = find(sent, MessageType::kHeartbeat, 3);
    EXPECT_NE(hb, nullptr);
    Message answer = msg(MessageType::kHeartbeatResponse, 3, 1, 2);
    answer.index = hb ? hb->index : Index(0);
    r.step(answer);
    return flush();
  };
  out = next_heartbeat_answered();
  EXPECT_EQ(asked, 2);
  EXPECT_EQ(find(out, MessageType::kSnapshot, 3), nullptr);
  // Once the image is written, the next answered heartbeat starts the transfer.
  ready = true;
  out = next_heartbeat_answered();
  const Message* chunk = find(out, MessageType::kSnapshot, 3);
  ASSERT_NE(chunk, nullptr);
  EXPECT_EQ(chunk->snapshot.index, Index(3));
  EXPECT_EQ(chunk->snapshot_data.view(), "image@3");
  EXPECT_TRUE(chunk->snapshot_done);
  EXPECT_EQ(r.progress(NodeId(3))->state, ProgressState::kSnapshot);
}

TEST(RaftCore, SingleNodeCommitsOnlyAfterItsOwnWrite) {
  Config cfg;
  TestNode n(NodeId(1), 1, cfg);
  n.raft->campaign_now();
  n.flush();
  ASSERT_EQ(n.raft->role(), Role::kLeader);
  auto res = n.raft->propose(Bytes(std::string("solo")));
  Ready rd = n.raft->ready();
  EXPECT_TRUE(rd.committed_entries.empty());
  n.disk.append(rd.entries);
  n.raft->advance(rd);
  rd = n.raft->ready();
  ASSERT_FALSE(rd.committed_entries.empty());
  EXPECT_EQ(rd.committed_entries.back().index, res.index);
}

TEST(RaftCore, ProposalsAreRefusedWithBusyWhenTooMuchIsUncommitted) {
  Config cfg;
  cfg.max_uncommitted_bytes = 200;
  TestNode n(NodeId(1), 3, cfg);
  elect(n);
  int accepted = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = n.raft->propose(Bytes(std::string(50, 'x')));
    if (r.status == ProposeResult::Status::kAccepted) ++accepted;
  }
  EXPECT_GE(accepted, 1);
  EXPECT_LT(accepted, 20);
  EXPECT_EQ(n.raft->propose(Bytes(std::string(50, 'x'))).status, ProposeResult::Status::kBusy);
}

TEST(RaftCore, ACommitGoesWithTheNextAppendOrWithinOneTick) {
  TestNode n(NodeId(1));
  elect(n);
  const uint64_t term = n.raft->term().value;
  auto ack = [&](int from, Index index) {
    Message a = msg(MessageType::kAppendResponse, from, 1, term);
    a.index = index;
    n.raft->step(a);
    return n.flush();
  };
  auto appends = [](const std::vector<Message>& ms) {
    return std::count_if(ms.begin(), ms.end(),
                         [](const Message& m) { return m.type == MessageType::kAppend; });
  };
  ack(2, n.raft->log().last_index());
  ack(3, n.raft->log().last_index());
  Index a = n.raft->propose(Bytes(std::string("a"))).index;
  ASSERT_EQ(appends(n.flush()), 2);
  // Follower 2's ack commits `a`, but no append goes out for that alone.
  EXPECT_EQ(appends(ack(2, a)), 0);
  EXPECT_EQ(n.raft->log().committed(), a);
  // The next proposal's appends carry it.
  Index b = n.raft->propose(Bytes(std::string("b"))).index;
  std::vector<Message> out = n.flush();
  ASSERT_EQ(appends(out), 2);
  for (const Message& m : out) {
    if (m.type == MessageType::kAppend) {
      EXPECT_EQ(m.commit, a) << "to " << m.to.value;
    }
  }
  // With nothing more to send, the next tick tells both followers, once.
  ack(2, b);
  EXPECT_EQ(appends(ack(3, b)), 0);
  ASSERT_EQ(n.raft->log().committed(), b);
  n.elapse(1);
  out = n.flush();
  ASSERT_EQ(appends(out), 2);
  for (const Message& m : out) {
    if (m.type != MessageType::kAppend) continue;
    EXPECT_TRUE(m.entries.empty());
    EXPECT_EQ(m.commit, b) << "to " << m.to.value;
  }
  n.elapse(1);
  EXPECT_EQ(appends(n.flush()), 0);
}

TEST(RaftCore, FollowerRedirectsProposalsToTheLeader) {
  TestNode n(NodeId(2));
  n.raft->step(msg(MessageType::kHeartbeat, 1, 2, 1));
  auto r = n.raft->propose(Bytes(std::string("x")));
  EXPECT_EQ(r.status, ProposeResult::Status::kNotLeader);
  EXPECT_EQ(r.leader_hint, NodeId(1));
}

}  // namespace
}  // namespace raftkv::raft
