// Peer messages and the handshake: every field survives encode, frame,
// decode; batches coalesce; what does not fit a frame is refused up front.
#include "schema/convert.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/wire/wire_testing.h"

namespace raftkv::wire {
namespace {

using test::dump;
using test::same;

// Frames and unframes `stream`, which must hold exactly `frames` frames.
std::vector<std::string> unframe(std::string_view stream) {
  FrameDecoder decoder;
  decoder.feed(stream);
  std::vector<std::string> payloads;
  while (true) {
    Result<std::optional<Frame>> frame = decoder.next();
    EXPECT_TRUE(frame.ok()) << frame.error().message;
    if (!frame.ok() || !frame->has_value()) break;
    payloads.emplace_back((*frame)->payload);
  }
  EXPECT_TRUE(decoder.finish().ok());
  return payloads;
}

std::vector<raft::Message> round_trip(const std::vector<raft::Message>& messages) {
  std::string stream;
  Status s = append_peer_frame(messages, &stream);
  EXPECT_TRUE(s.ok()) << s.error().message;
  std::vector<std::string> payloads = unframe(stream);
  EXPECT_EQ(payloads.size(), 1u);
  if (payloads.size() != 1) return {};
  Result<std::vector<raft::Message>> decoded = decode_peer_messages(payloads[0]);
  EXPECT_TRUE(decoded.ok()) << decoded.error().message;
  return decoded.ok() ? std::move(*decoded) : std::vector<raft::Message>{};
}

// Fails when raft::Message gains a field that the wire does not carry yet.
TEST(PeerCodec, CarriesEveryFieldOfMessage) {
  EXPECT_EQ(sizeof(raft::Message), 208u)
      << "raft::Message changed: carry the new field in schema/raft.fbs and schema/convert.cc, "
         "and set it in tests/wire/wire_testing.cc (full_message, random_message, same, dump)";
}

TEST(PeerCodec, RoundTripsEveryMessageTypeWithEveryFieldSet) {
  for (raft::MessageType type : test::kAllMessageTypes) {
    const std::vector<raft::Message> in = {test::full_message(type)};
    const std::vector<raft::Message> out = round_trip(in);
    EXPECT_TRUE(same(in, out)) << "sent\n" << dump(in) << "received\n" << dump(out);
  }
}

TEST(PeerCodec, RoundTripsDefaultMessageOfEveryType) {
  for (raft::MessageType type : test::kAllMessageTypes) {
    raft::Message m;
    m.type = type;
    const std::vector<raft::Message> in = {m};
    const std::vector<raft::Message> out = round_trip(in);
    EXPECT_TRUE(same(in, out)) << "sent\n" << dump(in) << "received\n" << dump(out);
  }
}

TEST(PeerCodec, RoundTripsExtremeValues) {
  raft::Message m = test::full_message(raft::MessageType::kAppend);
  const uint64_t max = ~uint64_t{0};
  m.from = m.to = raft::NodeId(max);
  m.term = m.log_term = m.hint_term = raft::Term(max);
  m.index = m.commit = m.reject_hint = raft::Index(max);
  m.read_round = m.snapshot_offset = max;
  m.entries[0].term = raft::Term(max);
  m.entries[0].index = raft::Index(max);
  const std::vector<raft::Message> in = {m};
  const std::vector<raft::Message> out = round_trip(in);
  EXPECT_TRUE(same(in, out)) << "sent\n" << dump(in) << "received\n" << dump(out);
}

TEST(PeerCodec, RoundTripsRandomBatches) {
  for (uint64_t seed = 0; seed < 500; ++seed) {
    raft::Rng rng(seed);
    std::vector<raft::Message> in(rng.below(20));
    for (raft::Message& m : in)
      m = test::random_message(rng);
    const std::vector<raft::Message> out = round_trip(in);
    ASSERT_TRUE(same(in, out)) << "seed " << seed << "\nsent\n"
                               << dump(in) << "received\n"
                               << dump(out);
  }
}

TEST(PeerCodec, RoundTripsEmptyBatch) {
  EXPECT_TRUE(round_trip({}).empty());
}

TEST(PeerCodec, RoundTripsLargeEntryAndSnapshotChunk) {
  raft::Rng rng(7);
  raft::Message m = test::full_message(raft::MessageType::kSnapshot);
  m.entries[1].data = raft::Bytes(test::random_bytes(rng, 1 << 20));
  m.snapshot_data = raft::Bytes(test::random_bytes(rng, 4 << 20));
  const std::vector<raft::Message> in = {m};
  const std::vector<raft::Message> out = round_trip(in);
  EXPECT_TRUE(same(in, out));
}

TEST(PeerCodec, CoalescedFramesDecodeInOrder) {
  raft::Rng rng(8);
  std::string stream;
  std::vector<std::vector<raft::Message>> batches(10);
  for (auto& batch : batches) {
    batch.resize(1 + rng.below(5));
    for (raft::Message& m : batch)
      m = test::random_message(rng);
    ASSERT_TRUE(append_peer_frame(batch, &stream).ok());
  }
  std::vector<std::string> payloads = unframe(stream);
  ASSERT_EQ(payloads.size(), batches.size());
  for (size_t i = 0; i < batches.size(); ++i) {
    Result<std::vector<raft::Message>> decoded = decode_peer_messages(payloads[i]);
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_TRUE(same(batches[i], *decoded)) << "frame " << i;
  }
}

// Unset fields cost nothing, so the most frequent message stays small: 16
// bytes of headers, five 8-byte fields, and FlatBuffers' offsets and vtable.
TEST(PeerCodec, HeartbeatFrameIsSmall) {
  raft::Message m;
  m.type = raft::MessageType::kHeartbeat;
  m.from = raft::NodeId(1);
  m.to = raft::NodeId(2);
  m.term = raft::Term(5);
  m.commit = raft::Index(1000);
  m.read_round = 3;
  std::string stream;
  ASSERT_TRUE(append_peer_frame({&m, 1}, &stream).ok());
  EXPECT_LE(stream.size(), 128u);
}

TEST(PeerCodec, EncoderRefusesBatchOverFrameLimit) {
  raft::Message m = test::full_message(raft::MessageType::kAppend);
  m.entries[1].data = raft::Bytes(std::string(2000, 'x'));
  std::string out = "queued";
  Status s = append_peer_frame({&m, 1}, &out, 1024);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kFrameTooLarge);
  EXPECT_EQ(out, "queued");
  EXPECT_TRUE(append_peer_frame({&m, 1}, &out, 4096).ok());
}

TEST(PeerCodec, RejectsPayloadOfAnotherKind) {
  std::string stream;
  ASSERT_TRUE(
      append_handshake_frame(Handshake{kProtocolVersion, 1, raft::NodeId(2)}, &stream).ok());
  std::vector<std::string> payloads = unframe(stream);
  ASSERT_EQ(payloads.size(), 1u);
  Result<std::vector<raft::Message>> decoded = decode_peer_messages(payloads[0]);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.error().code, ErrorCode::kBadHeader);
}

TEST(HandshakeCodec, RoundTrips) {
  for (const Handshake& in : {Handshake{}, Handshake{kProtocolVersion, 42, raft::NodeId(3)},
                              Handshake{7, ~uint64_t{0}, raft::NodeId(~uint64_t{0})}}) {
    std::string stream;
    ASSERT_TRUE(append_handshake_frame(in, &stream).ok());
    std::vector<std::string> payloads = unframe(stream);
    ASSERT_EQ(payloads.size(), 1u);
    Result<Handshake> out = decode_handshake(payloads[0]);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(*out, in);
  }
}

TEST(HandshakeCodec, RejectsPayloadOfAnotherKind) {
  raft::Message m;
  std::string stream;
  ASSERT_TRUE(append_peer_frame({&m, 1}, &stream).ok());
  std::vector<std::string> payloads = unframe(stream);
  ASSERT_EQ(payloads.size(), 1u);
  Result<Handshake> out = decode_handshake(payloads[0]);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kBadHeader);
}

}  // namespace
}  // namespace raftkv::wire
