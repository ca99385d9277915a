// Transport over real loopback sockets: delivery, coalescing, frame
// splitting, bounded queues, reconnection after a restart, proxies, and
// stopping with operations in flight.
#include <algorithm>
#include <cstdio>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include "tests/transport/transport_harness.h"

namespace raftkv::raft::test {
namespace {

using std::chrono::milliseconds;

// Expects `received` to be exactly `sent`, in order, field by field.
void expect_same_messages(const std::vector<Message>& received, const std::vector<Message>& sent) {
  ASSERT_EQ(received.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    std::string why;
    ASSERT_TRUE(same_message(received[i], sent[i], &why)) << "message " << i << ": " << why;
  }
}

TEST(Transport, DeliversMessagesInOrderWithEntriesAndSnapshotIntact) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();

  std::vector<Message> sent;
  for (uint64_t i = 0; i < 50; ++i)
    sent.push_back(make_append(NodeId(1), NodeId(2), i, i * 37));
  // Snapshot chunks of a few hundred KiB: many TCP segments per frame.
  for (uint64_t i = 0; i < 3; ++i)
    sent.push_back(make_snapshot_chunk(NodeId(1), NodeId(2), i, 300 << 10));
  for (uint64_t i = 50; i < 60; ++i)
    sent.push_back(make_append(NodeId(1), NodeId(2), i));
  // Three send() calls, as a driver would make them across ready() rounds.
  cluster.send(1, std::vector<Message>(sent.begin(), sent.begin() + 20));
  cluster.send(1, std::vector<Message>(sent.begin() + 20, sent.begin() + 52));
  cluster.send(1, std::vector<Message>(sent.begin() + 52, sent.end()));

  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() >= sent.size(); }));
  expect_same_messages(cluster.node(2).received, sent);
  const Transport::Stats s1 = cluster.node(1).transport->stats();
  const Transport::Stats s2 = cluster.node(2).transport->stats();
  EXPECT_EQ(s1.messages_sent, sent.size());
  EXPECT_EQ(s2.messages_received, sent.size());
  EXPECT_EQ(s1.frames_sent, s2.frames_received);
  EXPECT_EQ(s1.connects, 1u);
  EXPECT_EQ(s1.dropped_messages, 0u);
  EXPECT_TRUE(cluster.node(1).transport->connected(NodeId(2)));
  ASSERT_EQ(cluster.node(1).peer_events.size(), 1u);
  EXPECT_EQ(cluster.node(1).peer_events[0], std::make_pair(NodeId(2), true));
}

TEST(Transport, EveryNodeReachesEveryOtherInBothDirections) {
  asio::io_context io;
  TestCluster cluster(io, 3);
  cluster.start();
  std::map<NodeId, std::vector<Message>> expected;  // by receiver
  for (uint64_t from = 1; from <= 3; ++from) {
    std::vector<Message> batch;
    for (uint64_t to = 1; to <= 3; ++to) {
      if (to == from) continue;
      for (uint64_t i = 0; i < 10; ++i) {
        batch.push_back(make_append(NodeId(from), NodeId(to), from * 100 + i));
        expected[NodeId(to)].push_back(batch.back());
      }
    }
    cluster.send(from, std::move(batch));
  }
  ASSERT_TRUE(run_until(io, [&] {
    return cluster.node(1).received.size() == 20 && cluster.node(2).received.size() == 20 &&
           cluster.node(3).received.size() == 20;
  }));
  for (uint64_t id = 1; id <= 3; ++id) {
    // Per-sender order is guaranteed; senders interleave arbitrarily.
    for (uint64_t from = 1; from <= 3; ++from) {
      std::vector<Message> got, want;
      for (const Message& m : cluster.node(id).received)
        if (m.from == NodeId(from)) got.push_back(m);
      for (const Message& m : expected[NodeId(id)])
        if (m.from == NodeId(from)) want.push_back(m);
      expect_same_messages(got, want);
    }
  }
}

TEST(Transport, CoalescesABurstIntoFewFrames) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  // Connect first, so that the burst meets an established connection.
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 0)});
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 1; }));
  const Transport::Stats before = cluster.node(1).transport->stats();

  // 1000 send() calls of one message each; the event loop turns every 100
  // calls, so writes complete in between and pick up what accumulated.
  constexpr uint64_t kMessages = 1000;
  std::vector<Message> sent;
  for (uint64_t i = 1; i <= kMessages; ++i) {
    sent.push_back(make_append(NodeId(1), NodeId(2), i));
    cluster.send(1, {sent.back()});
    if (i % 100 == 0) {
      io.restart();
      io.poll();
    }
  }
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == kMessages + 1; }));
  const Transport::Stats after = cluster.node(1).transport->stats();
  const uint64_t frames = after.frames_sent - before.frames_sent;
  const uint64_t messages = after.messages_sent - before.messages_sent;
  std::printf("coalescing: %llu messages in %llu send() calls went out as %llu frames\n",
              static_cast<unsigned long long>(messages), static_cast<unsigned long long>(kMessages),
              static_cast<unsigned long long>(frames));
  RecordProperty("coalesced_frames", static_cast<int>(frames));
  EXPECT_EQ(messages, kMessages);
  EXPECT_LT(frames, kMessages / 10);
  expect_same_messages(
      std::vector<Message>(cluster.node(2).received.begin() + 1, cluster.node(2).received.end()),
      sent);
}

TEST(Transport, SplitsABatchLargerThanOneFrame) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  std::vector<Message> sent;
  // About 4 MiB in one send(): at least four 1 MiB frames.
  for (uint64_t i = 0; i < 64; ++i)
    sent.push_back(make_append(NodeId(1), NodeId(2), i, 64 << 10));
  cluster.send(1, std::vector<Message>(sent));
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == sent.size(); }));
  expect_same_messages(cluster.node(2).received, sent);
  const Transport::Stats s = cluster.node(1).transport->stats();
  EXPECT_GE(s.frames_sent, 4u);
  EXPECT_LE(s.frames_sent, 16u);
  EXPECT_EQ(s.dropped_messages, 0u);
}

TEST(Transport, DropsAMessageTooLargeForAnyFrameAndSendsTheRest) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  std::vector<Message> batch = {make_append(NodeId(1), NodeId(2), 1),
                                make_snapshot_chunk(NodeId(1), NodeId(2), 2, kTestMaxFrameBytes),
                                make_append(NodeId(1), NodeId(2), 3)};
  cluster.send(1, std::vector<Message>(batch));
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 2; }));
  expect_same_messages(cluster.node(2).received, {batch[0], batch[2]});
  EXPECT_EQ(cluster.node(1).transport->stats().dropped_messages, 1u);
}

TEST(Transport, DropsMessagesForUnknownNodesAndForItself) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  cluster.send(1, {make_append(NodeId(1), NodeId(9), 1), make_append(NodeId(1), NodeId(1), 2),
                   make_append(NodeId(1), NodeId(2), 3)});
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 1; }));
  EXPECT_EQ(cluster.node(1).transport->stats().dropped_messages, 2u);
}

TEST(Transport, BoundsTheQueueForAnUnreachablePeer) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  // Nobody listens on node 2's port once its listener is closed.
  cluster.start([](NodeId, Transport::Options& o) { o.max_queued_bytes = 64 << 10; });
  cluster.stop_node(2);
  uint64_t sent = 0;
  for (uint64_t i = 0; i < 1000; ++i, ++sent)
    cluster.send(1, {make_append(NodeId(1), NodeId(2), i, 1000)});
  const Transport::Stats s = cluster.node(1).transport->stats();
  // ~1.1 KB per message: about 60 fit in 64 KiB; the rest are dropped at once.
  EXPECT_GT(s.dropped_messages, 900u);
  EXPECT_LT(s.dropped_messages, sent);
  // The failed attempt drops the queue too; nothing is ever sent.
  ASSERT_TRUE(
      run_until(io, [&] { return cluster.node(1).transport->stats().dropped_messages == sent; }));
  EXPECT_EQ(cluster.node(1).transport->stats().messages_sent, 0u);
}

TEST(Transport, ReconnectsAfterPeerRestartAndDeliveryResumes) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 0)});
  cluster.send(2, {make_append(NodeId(2), NodeId(1), 0)});
  ASSERT_TRUE(run_until(io, [&] {
    return cluster.node(2).received.size() == 1 && cluster.node(1).received.size() == 1;
  }));

  cluster.stop_node(2);
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(1).transport->stats().disconnects == 1; }));
  EXPECT_FALSE(cluster.node(1).transport->connected(NodeId(2)));
  // Node 1 keeps redialling the closed port, backing off: 10, 20, 40 ms...
  ASSERT_TRUE(
      run_until(io, [&] { return cluster.node(1).transport->stats().connect_failures >= 3; }));
  cluster.restart_node(2);
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(1).transport->stats().connects == 2; }));
  std::vector<Message> sent;
  for (uint64_t i = 1; i <= 100; ++i)
    sent.push_back(make_append(NodeId(1), NodeId(2), i));
  cluster.send(1, std::vector<Message>(sent));
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == sent.size(); }));
  expect_same_messages(cluster.node(2).received, sent);

  // The restarted node dials node 1 afresh; node 1 replaces the dead inbound.
  cluster.send(2, {make_append(NodeId(2), NodeId(1), 1)});
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(1).received.size() == 2; }));
  const auto& events = cluster.node(1).peer_events;
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1], std::make_pair(NodeId(2), false));
  EXPECT_EQ(events[2], std::make_pair(NodeId(2), true));
}

TEST(Transport, WorksThroughAProxyBecauseIdentityComesFromTheHandshake) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  TcpForwarder proxy(io, cluster.node(2).port);
  ASSERT_NE(proxy.port(), cluster.node(2).port);
  cluster.start([&](NodeId self, Transport::Options& o) {
    if (self == NodeId(1)) o.peers[NodeId(2)] = fmt::format("127.0.0.1:{}", proxy.port());
  });
  std::vector<Message> sent;
  for (uint64_t i = 0; i < 20; ++i)
    sent.push_back(make_append(NodeId(1), NodeId(2), i, 5000));
  cluster.send(1, std::vector<Message>(sent));
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == sent.size(); }));
  expect_same_messages(cluster.node(2).received, sent);
  EXPECT_EQ(proxy.connections(), 1u);
  EXPECT_EQ(cluster.node(2).transport->stats().inbound_accepted, 1u);
}

TEST(Transport, ResolvesHostNames) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start([&](NodeId self, Transport::Options& o) {
    if (self == NodeId(1)) o.peers[NodeId(2)] = fmt::format("localhost:{}", cluster.node(2).port);
  });
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 1)});
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 1; }));
}

TEST(Transport, StopIsSafeWithOperationsInFlight) {
  asio::io_context io;
  TestCluster cluster(io, 3);
  cluster.start();
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 0)});
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 1; }));
  // Node 1: a large write in flight to node 2, a connect in progress to node 3.
  std::vector<Message> big;
  for (uint64_t i = 0; i < 16; ++i)
    big.push_back(make_snapshot_chunk(NodeId(1), NodeId(2), i, 512 << 10));
  cluster.send(1, std::move(big));
  cluster.send(1, {make_append(NodeId(1), NodeId(3), 0)});
  io.restart();
  io.poll_one();
  cluster.stop_node(1);
  // The io_context still holds node 1's handlers; running them must not
  // touch the destroyed Transport (ASan checks).
  io.restart();
  io.run_for(milliseconds(50));
  cluster.send(2, {make_append(NodeId(2), NodeId(3), 0)});
  ASSERT_TRUE(run_until(io, [&] {
    const auto& got = cluster.node(3).received;
    return std::any_of(got.begin(), got.end(),
                       [](const Message& m) { return m.from == NodeId(2); });
  }));
}

TEST(Transport, StopFromACallbackIsSafe) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  Transport* receiver = nullptr;
  size_t batches = 0;
  // Replace node 2's transport with one whose callback stops it.
  cluster.node(2).listener->stop();
  cluster.node(2).transport.reset();
  Transport::Options options;
  options.self = NodeId(2);
  options.cluster_id = kClusterId;
  options.peers[NodeId(1)] = fmt::format("127.0.0.1:{}", cluster.node(1).port);
  options.max_frame_bytes = kTestMaxFrameBytes;
  Transport::Callbacks callbacks;
  callbacks.on_messages = [&](std::vector<Message>&&) {
    ++batches;
    receiver->stop();
  };
  auto stoppable = std::make_unique<Transport>(io, options, callbacks);
  receiver = stoppable.get();
  Listener::OpenResult opened =
      Listener::open(io, {.address = fmt::format("127.0.0.1:{}", cluster.node(2).port),
                          .max_frame_bytes = kTestMaxFrameBytes});
  ASSERT_TRUE(opened.ok()) << opened.error;
  opened.listener->start(*stoppable);

  cluster.send(1, {make_append(NodeId(1), NodeId(2), 1)});
  ASSERT_TRUE(run_until(io, [&] { return batches == 1; }));
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 2)});
  io.restart();
  io.run_for(milliseconds(100));
  EXPECT_EQ(batches, 1u);
  opened.listener->stop();
}

// The threading contract: a Transport driven from its own io_context thread,
// other threads only posting work to it (what TSan checks here).
TEST(Transport, RunsOnTheIoContextThreadWhileOthersPost) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  auto guard = asio::make_work_guard(io);
  std::thread loop([&] { io.run(); });
  constexpr uint64_t kMessages = 200;
  for (uint64_t i = 0; i < kMessages; ++i) {
    asio::post(io, [&cluster, i] { cluster.send(1, {make_append(NodeId(1), NodeId(2), i)}); });
  }
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (cluster.node(2).received_count < kMessages &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(1));  // polling a condition, with a deadline
  }
  // Stop on the loop thread, then let the loop end.
  asio::post(io, [&] {
    cluster.node(1).transport->stop();
    cluster.node(2).transport->stop();
    cluster.node(1).listener->stop();
    cluster.node(2).listener->stop();
  });
  guard.reset();  // run() returns once the stopped objects' handlers have run
  loop.join();
  ASSERT_EQ(cluster.node(2).received_count, kMessages);
  for (uint64_t i = 0; i < kMessages; ++i)
    EXPECT_EQ(cluster.node(2).received[i].index, Index(i));
}

}  // namespace
}  // namespace raftkv::raft::test
