// Client requests and replies, and the KvCommand replicated in the log.
#include "schema/client_protocol.h"

#include <string>

#include <gtest/gtest.h>

#include "schema/convert.h"
#include "tests/wire/wire_testing.h"

namespace raftkv::wire {
namespace {

std::string only_payload(std::string_view stream) {
  FrameDecoder decoder;
  decoder.feed(stream);
  Result<std::optional<Frame>> frame = decoder.next();
  EXPECT_TRUE(frame.ok() && frame->has_value());
  if (!frame.ok() || !frame->has_value()) return {};
  std::string payload((*frame)->payload);
  EXPECT_TRUE(decoder.finish().ok());
  return payload;
}

ClientRequest round_trip(const ClientRequest& request) {
  std::string stream;
  EXPECT_TRUE(append_client_request_frame(request, &stream).ok());
  Result<ClientRequest> out = decode_client_request(only_payload(stream));
  EXPECT_TRUE(out.ok()) << out.error().message;
  return out.ok() ? *out : ClientRequest{};
}

ClientReply round_trip(const ClientReply& reply) {
  std::string stream;
  EXPECT_TRUE(append_client_reply_frame(reply, &stream).ok());
  Result<ClientReply> out = decode_client_reply(only_payload(stream));
  EXPECT_TRUE(out.ok()) << out.error().message;
  return out.ok() ? *out : ClientReply{};
}

KvCommand round_trip(const KvCommand& command) {
  raft::Bytes bytes = encode_kv_command(command);
  Result<KvCommand> out = decode_kv_command(bytes.view());
  EXPECT_TRUE(out.ok()) << out.error().message;
  return out.ok() ? *out : KvCommand{};
}

constexpr Op kAllOps[] = {Op::kGet, Op::kPut, Op::kAppend, Op::kDelete, Op::kStatus};
constexpr ReplyStatus kAllStatuses[] = {ReplyStatus::kOk,        ReplyStatus::kNotFound,
                                        ReplyStatus::kNotLeader, ReplyStatus::kBusy,
                                        ReplyStatus::kTimeout,   ReplyStatus::kBadRequest,
                                        ReplyStatus::kTooLarge,  ReplyStatus::kInternal};
constexpr raft::Role kAllRoles[] = {raft::Role::kFollower, raft::Role::kPreCandidate,
                                    raft::Role::kCandidate, raft::Role::kLeader};

TEST(ClientRequestCodec, RoundTripsEveryOp) {
  for (Op op : kAllOps) {
    const ClientRequest in{9, ClientId(77), 12, op, "key", std::string("v\0al", 4)};
    EXPECT_EQ(round_trip(in), in) << to_string(op);
  }
}

TEST(ClientRequestCodec, RoundTripsRandomRequests) {
  for (uint64_t seed = 0; seed < 500; ++seed) {
    raft::Rng rng(seed);
    const ClientRequest in = test::random_client_request(rng);
    ASSERT_EQ(round_trip(in), in) << "seed " << seed;
  }
}

TEST(ClientRequestCodec, RefusesRequestOverFrameLimit) {
  std::string out;
  const ClientRequest big{1, ClientId(1), 1, Op::kPut, "k", std::string(5000, 'v')};
  Status s = append_client_request_frame(big, &out, 4096);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kFrameTooLarge);
  EXPECT_TRUE(out.empty());
}

TEST(ClientReplyCodec, RoundTripsEveryStatus) {
  for (ReplyStatus status : kAllStatuses) {
    ClientReply in;
    in.request_id = 5;
    in.status = status;
    in.value = "v";
    in.leader_hint = raft::NodeId(3);
    in.leader_address = "10.1.2.3:7001";
    in.message = "detail";
    EXPECT_EQ(round_trip(in), in) << to_string(status);
  }
}

TEST(ClientReplyCodec, DistinguishesEmptyValueFromMissingKey) {
  ClientReply empty_value;
  empty_value.value = "";
  EXPECT_EQ(round_trip(empty_value).value, std::optional<std::string>(""));
  ClientReply no_value;
  no_value.status = ReplyStatus::kNotFound;
  EXPECT_EQ(round_trip(no_value).value, std::nullopt);
}

TEST(ClientReplyCodec, RoundTripsNodeStatusInEveryRole) {
  for (raft::Role role : kAllRoles) {
    ClientReply in;
    in.node_status = NodeStatus{raft::NodeId(1),  role,           raft::Term(4), raft::NodeId(2),
                                raft::Index(100), raft::Index(99)};
    EXPECT_EQ(round_trip(in), in);
  }
}

TEST(ClientReplyCodec, RoundTripsRandomReplies) {
  for (uint64_t seed = 0; seed < 500; ++seed) {
    raft::Rng rng(seed);
    const ClientReply in = test::random_client_reply(rng);
    ASSERT_EQ(round_trip(in), in) << "seed " << seed;
  }
}

TEST(ClientReplyCodec, RejectsRequestPayload) {
  std::string stream;
  ASSERT_TRUE(append_client_request_frame(ClientRequest{}, &stream).ok());
  Result<ClientReply> out = decode_client_reply(only_payload(stream));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kBadHeader);
}

TEST(KvCommandCodec, RoundTripsEveryOp) {
  for (Op op : kAllOps) {
    const KvCommand in{ClientId(4), 17, op, "k", "value", 1'700'000'000'000};
    EXPECT_EQ(round_trip(in), in) << to_string(op);
  }
}

TEST(KvCommandCodec, RoundTripsRandomCommands) {
  for (uint64_t seed = 0; seed < 500; ++seed) {
    raft::Rng rng(seed);
    const KvCommand in = test::random_kv_command(rng);
    ASSERT_EQ(round_trip(in), in) << "seed " << seed;
  }
}

// Stored log entries carry a versioned payload, like frames do.
TEST(KvCommandCodec, IsAVersionedPayload) {
  raft::Bytes bytes = encode_kv_command(KvCommand{});
  ASSERT_GE(bytes.size(), kPayloadHeaderBytes);
  EXPECT_EQ(bytes.size() % 8, 0u);
  EXPECT_EQ(bytes.view()[0], static_cast<char>(kProtocolVersion));
  EXPECT_EQ(bytes.view()[1], static_cast<char>(PayloadKind::kKvCommand));
  std::string future(bytes.view());
  future[0] = static_cast<char>(kProtocolVersion + 1);
  Result<KvCommand> out = decode_kv_command(future);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kUnsupportedVersion);
}

TEST(KvCommandCodec, DecodesFromMisalignedBuffer) {
  const KvCommand in{ClientId(1), 2, Op::kAppend, "key", "value", 3};
  raft::Bytes bytes = encode_kv_command(in);
  for (size_t offset = 0; offset < 8; ++offset) {
    std::string buffer(offset, '\0');
    buffer += bytes.view();
    Result<KvCommand> out = decode_kv_command(std::string_view(buffer).substr(offset));
    ASSERT_TRUE(out.ok()) << offset << ": " << out.error().message;
    EXPECT_EQ(*out, in);
  }
}

TEST(KvCommandCodec, RejectsEmptyAndShortInput) {
  for (std::string_view input : {std::string_view(), std::string_view("\x01\x05", 2)}) {
    Result<KvCommand> out = decode_kv_command(input);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.error().code, ErrorCode::kTruncated);
  }
}

// The log entry of a client write is the request's payload behind a
// timestamp; decode_log_command reads back what the request said.
std::string request_payload(const ClientRequest& request) {
  std::string stream;
  EXPECT_TRUE(append_client_request_frame(request, &stream).ok());
  return only_payload(stream);
}

KvCommand from_ref(const KvCommandRef& r) {
  return KvCommand{r.client_id,          r.seq,         r.op, std::string(r.key),
                   std::string(r.value), r.timestamp_ms};
}

// A logged entry decodes wherever it lies in memory, whatever its alignment.
void expect_decodes_at_every_alignment(const raft::Bytes& bytes, const KvCommand& want) {
  for (size_t offset = 0; offset < 8; ++offset) {
    std::string buffer(offset, '\0');
    buffer += bytes.view();
    Result<KvCommandRef> out = decode_log_command(std::string_view(buffer).substr(offset));
    ASSERT_TRUE(out.ok()) << offset << ": " << out.error().message;
    EXPECT_EQ(from_ref(*out), want) << offset;
  }
}

// The same bytes under the next protocol version are refused as such.
void expect_refused_under_a_newer_version(const raft::Bytes& bytes) {
  std::string future(bytes.view());
  future[0] = static_cast<char>(kProtocolVersion + 1);
  Result<KvCommandRef> out = decode_log_command(future);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, ErrorCode::kUnsupportedVersion);
}

TEST(LoggedRequestCodec, CarriesTheRequestAndTheTimestamp) {
  for (Op op : kAllOps) {
    const ClientRequest req{99, ClientId(4), 17, op, "k", "value"};
    raft::Bytes bytes = encode_logged_request(request_payload(req), 1'700'000'000'000);
    Result<KvCommandRef> out = decode_log_command(bytes.view());
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(from_ref(*out), (KvCommand{ClientId(4), 17, op, "k", "value", 1'700'000'000'000}));
  }
}

TEST(LoggedRequestCodec, RoundTripsRandomRequests) {
  for (uint64_t seed = 0; seed < 500; ++seed) {
    raft::Rng rng(seed);
    const ClientRequest req = test::random_client_request(rng);
    const uint64_t ts = rng.next();
    raft::Bytes bytes = encode_logged_request(request_payload(req), ts);
    Result<KvCommandRef> out = decode_log_command(bytes.view());
    ASSERT_TRUE(out.ok()) << "seed " << seed << ": " << out.error().message;
    ASSERT_EQ(from_ref(*out), (KvCommand{req.client_id, req.seq, req.op, req.key, req.value, ts}))
        << "seed " << seed;
  }
}

// Logs written before kLoggedRequest existed hold KvCommands; they still apply.
TEST(LoggedRequestCodec, LogCommandDecoderReadsKvCommands) {
  const KvCommand in{ClientId(1), 2, Op::kAppend, "key", "value", 3};
  const raft::Bytes bytes = encode_kv_command(in);  // the views point into it
  Result<KvCommandRef> out = decode_log_command(bytes.view());
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(from_ref(*out), in);
}

TEST(LoggedRequestCodec, IsAVersionedPayload) {
  raft::Bytes bytes = encode_logged_request(request_payload(ClientRequest{}), 5);
  EXPECT_EQ(bytes.size() % 8, 0u);
  EXPECT_EQ(bytes.view()[0], static_cast<char>(kProtocolVersion));
  EXPECT_EQ(bytes.view()[1], static_cast<char>(PayloadKind::kLoggedRequest));
  expect_refused_under_a_newer_version(bytes);
}

TEST(LoggedRequestCodec, DecodesFromMisalignedBuffer) {
  const ClientRequest req{1, ClientId(1), 2, Op::kPut, "key", "value"};
  expect_decodes_at_every_alignment(encode_logged_request(request_payload(req), 3),
                                    KvCommand{ClientId(1), 2, Op::kPut, "key", "value", 3});
}

// What the leader checked is checked again on apply: a damaged entry is
// refused (the state machine then skips it), never half-read.
TEST(LoggedRequestCodec, RejectsTruncatedOrDamagedEntries) {
  const ClientRequest req{1, ClientId(1), 2, Op::kPut, "key", "value"};
  const std::string good(encode_logged_request(request_payload(req), 3).view());
  for (size_t cut = 0; cut < good.size(); ++cut) {
    Result<KvCommandRef> out = decode_log_command(std::string_view(good).substr(0, cut));
    if (out.ok()) {
      // Only the zero padding of the inner request may be cut.
      EXPECT_EQ(from_ref(*out), (KvCommand{ClientId(1), 2, Op::kPut, "key", "value", 3})) << cut;
    }
  }
  std::string inner_kind = good;
  inner_kind[16 + 1] = static_cast<char>(PayloadKind::kClientReply);
  EXPECT_EQ(decode_log_command(inner_kind).error().code, ErrorCode::kBadHeader);
  std::string reserved = good;
  reserved[5] = 1;
  EXPECT_EQ(decode_log_command(reserved).error().code, ErrorCode::kBadHeader);
  EXPECT_EQ(decode_log_command(good.substr(0, 12)).error().code, ErrorCode::kTruncated);
}

// The leader logs a client write as a kLoggedWrite: fixed fields, then key
// and value.
constexpr Op kWriteOps[] = {Op::kPut, Op::kAppend, Op::kDelete};

TEST(LoggedWriteCodec, CarriesTheWriteAndTheTimestamp) {
  for (Op op : kWriteOps) {
    raft::Bytes bytes = encode_logged_write(ClientId(4), 17, op, "k", "value", 1'700'000'000'000);
    Result<KvCommandRef> out = decode_log_command(bytes.view());
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(from_ref(*out), (KvCommand{ClientId(4), 17, op, "k", "value", 1'700'000'000'000}));
  }
}

TEST(LoggedWriteCodec, RoundTripsRandomWrites) {
  for (uint64_t seed = 0; seed < 500; ++seed) {
    raft::Rng rng(seed);
    ClientRequest req = test::random_client_request(rng);
    req.op = kWriteOps[rng.below(3)];
    if (seed % 7 == 0) req.key.clear();
    if (seed % 5 == 0) req.value.clear();
    const uint64_t ts = rng.next();
    raft::Bytes bytes = encode_logged_write(req.client_id, req.seq, req.op, req.key, req.value, ts);
    Result<KvCommandRef> out = decode_log_command(bytes.view());
    ASSERT_TRUE(out.ok()) << "seed " << seed << ": " << out.error().message;
    ASSERT_EQ(from_ref(*out), (KvCommand{req.client_id, req.seq, req.op, req.key, req.value, ts}))
        << "seed " << seed;
  }
}

// What it saves: the request's FlatBuffer framing, for a put of kv-bench's
// default sizes (16-byte key, 256-byte value).
TEST(LoggedWriteCodec, IsSmallerThanTheLoggedRequest) {
  const ClientRequest req{1'000'000,
                          ClientId(0x1234'5678'9abc'def0),
                          123'456,
                          Op::kPut,
                          std::string(16, 'k'),
                          std::string(256, 'v')};
  const size_t request = encode_logged_request(request_payload(req), 1'700'000'000'000).size();
  const size_t write =
      encode_logged_write(req.client_id, req.seq, req.op, req.key, req.value, 1'700'000'000'000)
          .size();
  EXPECT_EQ(write, 8u + 33u + 16u + 256u);
  EXPECT_EQ(request - write, 55u) << "request " << request << ", write " << write;
}

TEST(LoggedWriteCodec, IsAVersionedPayload) {
  raft::Bytes bytes = encode_logged_write(ClientId(1), 1, Op::kPut, "", "", 5);
  EXPECT_EQ(bytes.view()[0], static_cast<char>(kProtocolVersion));
  EXPECT_EQ(bytes.view()[1], static_cast<char>(PayloadKind::kLoggedWrite));
  expect_refused_under_a_newer_version(bytes);
}

TEST(LoggedWriteCodec, DecodesFromMisalignedBuffer) {
  expect_decodes_at_every_alignment(
      encode_logged_write(ClientId(1), 2, Op::kPut, "key", "value", 3),
      KvCommand{ClientId(1), 2, Op::kPut, "key", "value", 3});
}

// Every cut and every extension is refused: the sizes of key and value are
// stored, so no damaged entry reads as a shorter or longer value.
TEST(LoggedWriteCodec, RejectsTruncatedExtendedOrDamagedEntries) {
  const std::string good(encode_logged_write(ClientId(1), 2, Op::kPut, "key", "value", 3).view());
  for (size_t cut = 0; cut < good.size(); ++cut) {
    Result<KvCommandRef> out = decode_log_command(std::string_view(good).substr(0, cut));
    ASSERT_FALSE(out.ok()) << cut;
    EXPECT_EQ(out.error().code, ErrorCode::kTruncated) << cut << ": " << out.error().message;
  }
  Result<KvCommandRef> longer = decode_log_command(good + "x");
  ASSERT_FALSE(longer.ok());
  EXPECT_EQ(longer.error().code, ErrorCode::kInvalidValue);
  EXPECT_EQ(longer.error().message,
            "logged write names a 3-byte key and a 5-byte value, but 9 bytes "
            "follow");
  std::string reserved = good;
  reserved[5] = 1;
  EXPECT_EQ(decode_log_command(reserved).error().code, ErrorCode::kBadHeader);
  std::string key_size = good;
  key_size[8 + 25] = 4;  // one byte of the value taken for the key
  EXPECT_FALSE(decode_log_command(key_size).ok());
  std::string huge = good;
  for (size_t i = 0; i < 8; ++i)
    huge[8 + 25 + i] = '\xff';  // sizes near 2^32 must not wrap
  EXPECT_EQ(decode_log_command(huge).error().code, ErrorCode::kTruncated);
}

// Only writes are logged; an entry naming a read, Status or an unknown op
// is refused by every replica alike.
TEST(LoggedWriteCodec, RefusesOpsThatAreNotWrites) {
  for (int op = 0; op < 256; ++op) {
    std::string bytes(encode_logged_write(ClientId(1), 2, Op::kPut, "k", "v", 3).view());
    bytes[8 + 24] = static_cast<char>(op);
    Result<KvCommandRef> out = decode_log_command(bytes);
    const bool write = op == 1 || op == 2 || op == 3;  // kv.fbs: Put, Append, Delete
    EXPECT_EQ(out.ok(), write) << op;
    if (!write) {
      EXPECT_EQ(out.error().code, ErrorCode::kInvalidValue) << op;
    }
  }
}

}  // namespace
}  // namespace raftkv::wire
