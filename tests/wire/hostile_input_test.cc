// Payloads that pass the frame checks but were crafted to hurt: random
// bodies, truncated bodies, enum values outside the schema, and vectors that
// alias one another to make decoding allocate far more than was received.
// Hand-built with the generated FlatBuffers API, which honest encoders never
// use this way.
#include <cstring>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include "schema/convert.h"
#include "schema/kv_generated.h"
#include "schema/raft_generated.h"
#include "tests/wire/wire_testing.h"

namespace raftkv::wire {
namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

std::string payload_of(PayloadKind kind, std::string_view body) {
  std::string payload;
  append_payload(kind, body, &payload);
  return payload;
}

std::string payload_of(PayloadKind kind, const FlatBufferBuilder& fbb) {
  return payload_of(
      kind, std::string_view(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()));
}

// Runs every decoder over `payload`; none may crash, whatever it holds.
// Returns how many accepted it.
int decode_with_everything(std::string_view payload) {
  return decode_peer_messages(payload).ok() + decode_handshake(payload).ok() +
         decode_client_request(payload).ok() + decode_client_reply(payload).ok() +
         decode_kv_command(payload).ok() + decode_log_command(payload).ok();
}

std::string peer_payload(const std::vector<raft::Message>& messages) {
  std::string stream;
  EXPECT_TRUE(append_peer_frame(messages, &stream).ok());
  return stream.substr(kFrameHeaderBytes);
}

constexpr PayloadKind kAllKinds[] = {PayloadKind::kPeerMessages,  PayloadKind::kHandshake,
                                     PayloadKind::kClientRequest, PayloadKind::kClientReply,
                                     PayloadKind::kKvCommand,     PayloadKind::kLoggedRequest,
                                     PayloadKind::kLoggedWrite};

TEST(HostileInput, VerifierRejectsRandomBodies) {
  for (PayloadKind kind : kAllKinds) {
    for (uint64_t seed = 0; seed < 2000; ++seed) {
      raft::Rng rng(seed);
      const std::string payload = payload_of(kind, test::random_bytes(rng, 200));
      EXPECT_EQ(decode_with_everything(payload), 0) << to_string(kind) << " seed " << seed;
    }
  }
}

TEST(HostileInput, VerificationFailureIsReportedAsSuch) {
  const std::string payload = payload_of(PayloadKind::kPeerMessages, std::string(16, '\xff'));
  Result<std::vector<raft::Message>> out = decode_peer_messages(payload);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kVerificationFailed);
  EXPECT_EQ(out.error().message, "flatbuffer verification failed: peer messages body of 16 bytes");
}

// A cut body either fails verification or, when only padding was cut,
// decodes to exactly the original.
TEST(HostileInput, TruncatedBodyFailsOrDecodesIntact) {
  const std::vector<raft::Message> in = {test::full_message(raft::MessageType::kAppend),
                                         test::full_message(raft::MessageType::kSnapshot)};
  const std::string payload = peer_payload(in);
  int accepted = 0;
  for (size_t cut = 0; cut < payload.size(); ++cut) {
    Result<std::vector<raft::Message>> out = decode_peer_messages(payload.substr(0, cut));
    if (out.ok()) {
      ++accepted;
      EXPECT_TRUE(test::same(in, *out)) << cut;
    }
  }
  EXPECT_LT(accepted, 8);
}

TEST(HostileInput, FlippedBodyBytesNeverCrashADecoder) {
  const std::string payload = peer_payload({test::full_message(raft::MessageType::kAppend),
                                            test::full_message(raft::MessageType::kSnapshot)});
  for (size_t i = kPayloadHeaderBytes; i < payload.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = payload;
      flipped[i] ^= static_cast<char>(1 << bit);
      decode_with_everything(flipped);
    }
  }
}

TEST(HostileInput, RejectsMessageTypeOutOfRange) {
  FlatBufferBuilder fbb;
  fb::PeerMessageBuilder m(fbb);
  m.add_type(static_cast<fb::MessageType>(10));
  std::vector<Offset<fb::PeerMessage>> messages = {m.Finish()};
  fbb.Finish(fb::CreatePeerFrame(fbb, fbb.CreateVector(messages)));
  Result<std::vector<raft::Message>> out =
      decode_peer_messages(payload_of(PayloadKind::kPeerMessages, fbb));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(out.error().message, "message 0: type 10 out of range");
}

TEST(HostileInput, RejectsEntryTypeOutOfRange) {
  FlatBufferBuilder fbb;
  std::vector<Offset<fb::Entry>> entries = {
      fb::CreateEntry(fbb, 1, 1, fb::EntryType::Normal),
      fb::CreateEntry(fbb, 1, 2, static_cast<fb::EntryType>(2))};
  auto entries_vector = fbb.CreateVector(entries);
  fb::PeerMessageBuilder m(fbb);
  m.add_type(fb::MessageType::Append);
  m.add_entries(entries_vector);
  std::vector<Offset<fb::PeerMessage>> messages = {m.Finish()};
  fbb.Finish(fb::CreatePeerFrame(fbb, fbb.CreateVector(messages)));
  Result<std::vector<raft::Message>> out =
      decode_peer_messages(payload_of(PayloadKind::kPeerMessages, fbb));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(out.error().message, "message 0 entry 1: type 2 out of range");
}

TEST(HostileInput, RejectsClientEnumsOutOfRange) {
  {
    FlatBufferBuilder fbb;
    fbb.Finish(fb::CreateClientRequest(fbb, 1, 1, 1, static_cast<fb::Op>(5)));
    Result<ClientRequest> out = decode_client_request(payload_of(PayloadKind::kClientRequest, fbb));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().message, "client request: op 5 out of range");
  }
  {
    FlatBufferBuilder fbb;
    fbb.Finish(fb::CreateClientReply(fbb, 1, static_cast<fb::ReplyStatus>(200)));
    Result<ClientReply> out = decode_client_reply(payload_of(PayloadKind::kClientReply, fbb));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().message, "client reply: status 200 out of range");
  }
  {
    FlatBufferBuilder fbb;
    auto status = fb::CreateNodeStatus(fbb, 1, static_cast<fb::Role>(4));
    fbb.Finish(fb::CreateClientReply(fbb, 1, fb::ReplyStatus::Ok, 0, 0, 0, 0, status));
    Result<ClientReply> out = decode_client_reply(payload_of(PayloadKind::kClientReply, fbb));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().message, "client reply: role 4 out of range");
  }
  {
    FlatBufferBuilder fbb;
    fbb.Finish(fb::CreateKvCommand(fbb, 1, 1, static_cast<fb::Op>(255)));
    Result<KvCommand> out = decode_kv_command(payload_of(PayloadKind::kKvCommand, fbb));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
    EXPECT_EQ(out.error().message, "kv command: op 255 out of range");
  }
}

// 1000 entries pointing at one 10 KiB vector: a 14 KiB body that would
// decode into 10 MiB.
TEST(HostileInput, RejectsAliasedEntryData) {
  FlatBufferBuilder fbb;
  const std::string data(10 << 10, 'x');
  auto shared = fbb.CreateVector(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  std::vector<Offset<fb::Entry>> entries;
  for (int i = 0; i < 1000; ++i) {
    entries.push_back(
        fb::CreateEntry(fbb, 1, static_cast<uint64_t>(i), fb::EntryType::Normal, shared));
  }
  auto entries_vector = fbb.CreateVector(entries);
  fb::PeerMessageBuilder m(fbb);
  m.add_type(fb::MessageType::Append);
  m.add_entries(entries_vector);
  std::vector<Offset<fb::PeerMessage>> messages = {m.Finish()};
  fbb.Finish(fb::CreatePeerFrame(fbb, fbb.CreateVector(messages)));
  const std::string payload = payload_of(PayloadKind::kPeerMessages, fbb);
  ASSERT_LT(payload.size(), 64u << 10);
  Result<std::vector<raft::Message>> out = decode_peer_messages(payload);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_NE(out.error().message.find("alias"), std::string::npos) << out.error().message;
}

// One empty message table referenced 65537 times: each reference would
// decode into a full raft::Message.
TEST(HostileInput, RejectsTooManyMessagesInOneFrame) {
  FlatBufferBuilder fbb;
  auto one = fb::CreatePeerMessage(fbb);
  std::vector<Offset<fb::PeerMessage>> messages(kMaxMessagesPerFrame + 1, one);
  fbb.Finish(fb::CreatePeerFrame(fbb, fbb.CreateVector(messages)));
  Result<std::vector<raft::Message>> out =
      decode_peer_messages(payload_of(PayloadKind::kPeerMessages, fbb));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(out.error().message, "65537 messages in one frame > 65536");
}

TEST(HostileInput, AcceptsTheMaximumNumberOfMessages) {
  std::vector<raft::Message> in(kMaxMessagesPerFrame);
  Result<std::vector<raft::Message>> out = decode_peer_messages(peer_payload(in));
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->size(), kMaxMessagesPerFrame);
}

TEST(HostileInput, RejectsTooManyEntriesInOneFrame) {
  FlatBufferBuilder fbb;
  auto one = fb::CreateEntry(fbb, 1, 1);
  std::vector<Offset<fb::Entry>> entries(kMaxEntriesPerFrame + 1, one);
  auto entries_vector = fbb.CreateVector(entries);
  fb::PeerMessageBuilder m(fbb);
  m.add_entries(entries_vector);
  std::vector<Offset<fb::PeerMessage>> messages = {m.Finish()};
  fbb.Finish(fb::CreatePeerFrame(fbb, fbb.CreateVector(messages)));
  Result<std::vector<raft::Message>> out =
      decode_peer_messages(payload_of(PayloadKind::kPeerMessages, fbb));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(out.error().message, "1048577 entries in one frame > 1048576");
}

// Beyond the Verifier's table budget, verification itself stops early.
TEST(HostileInput, VerifierStopsAtTableBudget) {
  FlatBufferBuilder fbb;
  auto one = fb::CreateEntry(fbb, 1, 1);
  std::vector<Offset<fb::Entry>> entries(2 * kMaxEntriesPerFrame, one);
  auto entries_vector = fbb.CreateVector(entries);
  fb::PeerMessageBuilder m(fbb);
  m.add_entries(entries_vector);
  std::vector<Offset<fb::PeerMessage>> messages = {m.Finish()};
  fbb.Finish(fb::CreatePeerFrame(fbb, fbb.CreateVector(messages)));
  Result<std::vector<raft::Message>> out =
      decode_peer_messages(payload_of(PayloadKind::kPeerMessages, fbb));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kVerificationFailed);
}

TEST(HostileInput, RejectsTooManyVoters) {
  raft::Message m;
  m.type = raft::MessageType::kSnapshot;
  for (uint64_t id = 1; id <= kMaxVoters + 1; ++id)
    m.snapshot.voters.push_back(raft::NodeId(id));
  Result<std::vector<raft::Message>> out = decode_peer_messages(peer_payload({m}));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(out.error().message, "message 0: 1025 voters > 1024");
  m.snapshot.voters.pop_back();
  EXPECT_TRUE(decode_peer_messages(peer_payload({m})).ok());
}

// Many messages sharing one snapshot meta with many voters: the voters
// count against the same byte budget as entry data.
TEST(HostileInput, RejectsAliasedVoters) {
  FlatBufferBuilder fbb;
  std::vector<uint64_t> voters(kMaxVoters, 7);
  auto meta = fb::CreateSnapshotMeta(fbb, 1, 1, fbb.CreateVector(voters));
  std::vector<Offset<fb::PeerMessage>> messages;
  for (int i = 0; i < 100; ++i) {
    fb::PeerMessageBuilder m(fbb);
    m.add_type(fb::MessageType::Snapshot);
    m.add_snapshot(meta);
    messages.push_back(m.Finish());
  }
  fbb.Finish(fb::CreatePeerFrame(fbb, fbb.CreateVector(messages)));
  Result<std::vector<raft::Message>> out =
      decode_peer_messages(payload_of(PayloadKind::kPeerMessages, fbb));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue);
}

// FlatBuffers 2.0.8's Verifier accepts a [ulong] whose elements are only
// 4-byte aligned. Moving the voters offset forward by 4 makes the first id's
// low half (1) the length of a one-element vector at a misaligned address.
TEST(HostileInput, RejectsMisalignedVoterIds) {
  raft::Message m;
  m.type = raft::MessageType::kSnapshot;
  m.snapshot.voters = {raft::NodeId(1), raft::NodeId(2), raft::NodeId(3)};
  std::string payload = peer_payload({m});
  const auto* base = reinterpret_cast<const uint8_t*>(payload.data());
  const auto* frame = flatbuffers::GetRoot<fb::PeerFrame>(base + kPayloadHeaderBytes);
  // Generated tables inherit flatbuffers::Table privately, at offset 0.
  const auto* meta =
      reinterpret_cast<const flatbuffers::Table*>(frame->messages()->Get(0)->snapshot());
  const uint8_t* field = meta->GetAddressOf(fb::SnapshotMeta::VT_VOTERS);
  ASSERT_NE(field, nullptr);
  char* offset = payload.data() + (field - base);
  uint32_t value;
  std::memcpy(&value, offset, sizeof(value));
  value += 4;
  std::memcpy(offset, &value, sizeof(value));
  Result<std::vector<raft::Message>> out = decode_peer_messages(payload);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kVerificationFailed);
  EXPECT_EQ(out.error().message, "flatbuffer verification failed: message 0: misaligned voters");
}

TEST(HostileInput, DecodesPeerPayloadAtAnyAlignment) {
  const std::vector<raft::Message> in = {test::full_message(raft::MessageType::kAppend)};
  const std::string payload = peer_payload(in);
  for (size_t offset = 0; offset < 8; ++offset) {
    std::string buffer(offset, '\0');
    buffer += payload;
    Result<std::vector<raft::Message>> out =
        decode_peer_messages(std::string_view(buffer).substr(offset));
    ASSERT_TRUE(out.ok()) << offset << ": " << out.error().message;
    EXPECT_TRUE(test::same(in, *out));
  }
}

}  // namespace
}  // namespace raftkv::wire
