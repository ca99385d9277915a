// Bytes no honest Transport sends, written by a raw socket into node 2's
// listening port: frames split byte by byte, and malformed input of every
// kind. Each bad connection must be closed, with the good frames before the
// fault delivered, while node 1's connection to node 2 and the Listener keep
// working.
#include <gtest/gtest.h>

#include "schema/client_protocol.h"
#include "schema/convert.h"
#include "schema/frame.h"
#include "tests/transport/transport_harness.h"

namespace raftkv::raft::test {
namespace {

// Messages node 3 may legitimately send node 2.
std::vector<Message> from_3_to_2(uint64_t first, uint64_t n) {
  std::vector<Message> out;
  for (uint64_t i = first; i < first + n; ++i)
    out.push_back(make_append(NodeId(3), NodeId(2), i, 100));
  return out;
}

TEST(HostilePeer, ReassemblesFramesSplitAcrossReads) {
  asio::io_context io;
  TestCluster cluster(io, 3);
  cluster.start();
  const std::vector<Message> first = from_3_to_2(0, 5);
  const std::vector<Message> second = from_3_to_2(5, 5);
  const std::string bytes =
      handshake_frame(kClusterId, NodeId(3)) + peer_frame(first) + peer_frame(second);

  RawPeer raw(io, cluster.node(2).port);
  // One byte per write, with the event loop turning in between, so that the
  // Listener and the Transport see the stream in 1-byte reads.
  for (char c : bytes) {
    raw.write(std::string_view(&c, 1));
    io.restart();
    io.poll();
  }
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 10; }));
  std::vector<Message> sent = first;
  sent.insert(sent.end(), second.begin(), second.end());
  for (size_t i = 0; i < sent.size(); ++i) {
    std::string why;
    EXPECT_TRUE(same_message(cluster.node(2).received[i], sent[i], &why)) << i << ": " << why;
  }
  EXPECT_EQ(cluster.node(2).transport->stats().frames_received, 2u);
  EXPECT_EQ(cluster.node(2).listener->stats().peer_connections, 1u);
}

// A peer that reconnects before its old connection is seen to end: the new
// connection replaces the old one, which is closed, and both deliver what
// they carried. (Closing the replaced one once read a freed map entry.)
TEST(HostilePeer, ASecondConnectionFromTheSamePeerReplacesTheFirst) {
  asio::io_context io;
  TestCluster cluster(io, 3);
  cluster.start();
  const uint64_t accepted = cluster.node(2).transport->stats().inbound_accepted;
  RawPeer first(io, cluster.node(2).port);
  first.watch_for_close();
  first.write(handshake_frame(kClusterId, NodeId(3)) + peer_frame(from_3_to_2(0, 1)));
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 1; }));
  RawPeer second(io, cluster.node(2).port);
  second.write(handshake_frame(kClusterId, NodeId(3)) + peer_frame(from_3_to_2(1, 1)));
  ASSERT_TRUE(
      run_until(io, [&] { return cluster.node(2).received.size() == 2 && first.closed(); }));
  EXPECT_EQ(cluster.node(2).transport->stats().inbound_accepted, accepted + 2);
  EXPECT_EQ(cluster.node(2).transport->stats().inbound_errors, 0u);
}

// Which part of node 2 closes the connection, and so which counter moves.
enum class ClosedBy { kListener, kRefusedHandshake, kTransportError };

struct HostileCase {
  std::string name;
  std::function<std::string()> bytes;
  ClosedBy closed_by;
  size_t delivered = 0;     // good messages before the fault
  bool half_close = false;  // then close our sending side
};

std::string corrupt_byte(std::string frame, size_t at) {
  frame[at] = static_cast<char>(frame[at] ^ 0x5a);
  return frame;
}

std::string frame_header(uint32_t length, uint32_t crc) {
  std::string h(8, '\0');
  for (int i = 0; i < 4; ++i) {
    h[i] = static_cast<char>(length >> (8 * i));
    h[4 + i] = static_cast<char>(crc >> (8 * i));
  }
  return h;
}

std::string raw_frame(wire::PayloadKind kind, std::string_view body) {
  std::string out;
  EXPECT_TRUE(wire::append_frame(kind, body, &out).ok());
  return out;
}

std::string hello() {
  return handshake_frame(kClusterId, NodeId(3));
}
std::string good() {
  return peer_frame(from_3_to_2(0, 3));
}

std::vector<HostileCase> hostile_cases() {
  return {
      {"BadChecksum", [] { return hello() + good() + corrupt_byte(good(), 20); },
       ClosedBy::kTransportError, 3},
      {"OversizeLength",
       [] { return hello() + good() + frame_header(kTestMaxFrameBytes + 1, 0) + "xxxxxxxx"; },
       ClosedBy::kTransportError, 3},
      {"UndecodableBody",
       [] { return hello() + raw_frame(wire::PayloadKind::kPeerMessages, "not a flatbuffer"); },
       ClosedBy::kTransportError},
      {"ClientRequestOnPeerConnection",
       [] {
         std::string request;
         EXPECT_TRUE(wire::append_client_request_frame(wire::ClientRequest{}, &request).ok());
         return hello() + request;
       },
       ClosedBy::kTransportError},
      {"FromDiffersFromHandshake",
       [] { return hello() + good() + peer_frame({make_append(NodeId(1), NodeId(2), 9)}); },
       ClosedBy::kTransportError, 3},
      {"ToIsNotThisNode",
       [] { return hello() + peer_frame({make_append(NodeId(3), NodeId(1), 9)}); },
       ClosedBy::kTransportError},
      {"TruncatedFrame", [] { return hello() + good().substr(0, 30); }, ClosedBy::kTransportError,
       0, true},
      {"HandshakeFromAnotherCluster",
       [] { return handshake_frame(kClusterId + 1, NodeId(3)) + good(); },
       ClosedBy::kRefusedHandshake},
      {"HandshakeFromUnknownNode", [] { return handshake_frame(kClusterId, NodeId(9)) + good(); },
       ClosedBy::kRefusedHandshake},
      {"HandshakeWithOurOwnId", [] { return handshake_frame(kClusterId, NodeId(2)) + good(); },
       ClosedBy::kRefusedHandshake},
      {"GarbageInsteadOfAFrame",
       [] { return std::string("GET / HTTP/1.1\r\nHost: raftkv\r\n\r\n"); }, ClosedBy::kListener},
      {"OversizeFirstFrame", [] { return frame_header(kTestMaxFrameBytes + 1, 0) + "xxxx"; },
       ClosedBy::kListener},
      {"BadChecksumInHandshake", [] { return corrupt_byte(hello(), 12); }, ClosedBy::kListener},
      {"PeerMessagesBeforeHandshake", [] { return good(); }, ClosedBy::kListener},
      {"ClientReplyAsFirstFrame",
       [] { return raw_frame(wire::PayloadKind::kClientReply, "whatever"); }, ClosedBy::kListener},
      {"HandshakeWithAGarbageBody",
       [] { return raw_frame(wire::PayloadKind::kHandshake, "not a flatbuffer"); },
       ClosedBy::kListener},
      {"TruncatedFirstFrame", [] { return hello().substr(0, 20); }, ClosedBy::kListener, 0, true},
  };
}

class HostilePeerTest : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostilePeerTest, ClosesTheConnectionAndKeepsServingOthers) {
  const HostileCase& c = GetParam();
  asio::io_context io;
  TestCluster cluster(io, 3);
  cluster.start();
  TestNode& n2 = cluster.node(2);
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 0)});
  ASSERT_TRUE(run_until(io, [&] { return n2.received.size() == 1; }));
  const Listener::Stats listener_before = n2.listener->stats();
  const Transport::Stats transport_before = n2.transport->stats();

  RawPeer raw(io, n2.port);
  raw.write(c.bytes());
  if (c.half_close) raw.shutdown_send();
  raw.watch_for_close();
  ASSERT_TRUE(run_until(io, [&] { return raw.closed(); })) << "node 2 kept the connection open";

  const Listener::Stats listener_after = n2.listener->stats();
  const Transport::Stats transport_after = n2.transport->stats();
  EXPECT_EQ(listener_after.rejected - listener_before.rejected,
            c.closed_by == ClosedBy::kListener ? 1u : 0u);
  EXPECT_EQ(transport_after.inbound_refused - transport_before.inbound_refused,
            c.closed_by == ClosedBy::kRefusedHandshake ? 1u : 0u);
  EXPECT_EQ(transport_after.inbound_errors - transport_before.inbound_errors,
            c.closed_by == ClosedBy::kTransportError ? 1u : 0u);
  EXPECT_EQ(n2.received.size(), 1 + c.delivered);

  // Node 1's own connection is untouched and still delivers.
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 1)});
  ASSERT_TRUE(run_until(io, [&] { return n2.received.size() == 2 + c.delivered; }));
  EXPECT_EQ(n2.received.back().from, NodeId(1));
  EXPECT_EQ(cluster.node(1).transport->stats().disconnects, 0u);

  // The Listener still accepts, and an honest node 3 gets through.
  cluster.send(3, {make_append(NodeId(3), NodeId(2), 7)});
  ASSERT_TRUE(run_until(io, [&] { return n2.received.size() == 3 + c.delivered; }));
  EXPECT_EQ(n2.received.back().from, NodeId(3));
}

INSTANTIATE_TEST_SUITE_P(Cases, HostilePeerTest, ::testing::ValuesIn(hostile_cases()),
                         [](const ::testing::TestParamInfo<HostileCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace raftkv::raft::test
