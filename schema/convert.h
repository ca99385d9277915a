// Conversion between the plain C++ values raftkv works with and their
// payloads (frame.h): raft::Message batches and the handshake for peers,
// requests and replies for clients, and the KvCommand stored in log entries.
//
// Encoders append a whole frame to a caller's buffer, so a transport can
// coalesce several frames into one write. Decoders take a payload (as
// FrameDecoder returns it, header included) and run the FlatBuffers Verifier
// before reading any field; then they reject what verifies but cannot be
// meant: enum values out of range, counts over the limits below, and byte
// vectors that add up to more than the payload (a FlatBuffer may point many
// offsets at one vector; decoding each copy would multiply memory).
//
// Byte fields (entry data, snapshot chunks, keys, values) are copied exactly
// once, out of the receive buffer into the decoded value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "raft/core/message.h"
#include "schema/client_protocol.h"
#include "schema/frame.h"
#include "schema/result.h"

namespace raftkv::wire {

// Limits on what one peer frame may decode into. Far above what Raft's flow
// control produces; they bound what a hostile frame can make us allocate.
inline constexpr size_t kMaxMessagesPerFrame = size_t{1} << 16;
inline constexpr size_t kMaxEntriesPerFrame = size_t{1} << 20;
inline constexpr size_t kMaxVoters = 1024;

// The first frame on a peer connection, in both directions.
struct Handshake {
  uint32_t protocol_version = kProtocolVersion;
  uint64_t cluster_id = 0;  // a node refuses a peer from another cluster
  raft::NodeId node_id;     // who is speaking; never inferred from the address

  bool operator==(const Handshake&) const = default;
};

// Appends one frame carrying `messages` (possibly for several recipients;
// each Message names its own `to`). Fails, leaving *out unchanged, if the
// frame would exceed max_frame_bytes: split the batch.
Status append_peer_frame(std::span<const raft::Message> messages, std::string* out,
                         size_t max_frame_bytes = kMaxFrameBytes);
Result<std::vector<raft::Message>> decode_peer_messages(std::string_view payload);

Status append_handshake_frame(const Handshake& handshake, std::string* out);
Result<Handshake> decode_handshake(std::string_view payload);

Status append_client_request_frame(const ClientRequest& request, std::string* out,
                                   size_t max_frame_bytes = kMaxFrameBytes);
Result<ClientRequest> decode_client_request(std::string_view payload);

// A ClientRequest decoded without copying key and value. Invariant: they
// view the payload given to the decoder, or `aligned_copy` when that payload
// was not 8-byte aligned; valid while both live.
struct ClientRequestRef {
  uint64_t request_id = 0;
  ClientId client_id;
  uint64_t seq = 0;
  Op op = Op::kGet;
  std::string_view key;
  std::string_view value;
  std::unique_ptr<uint64_t[]> aligned_copy;
};
Result<ClientRequestRef> decode_client_request_ref(std::string_view payload);

Status append_client_reply_frame(const ClientReply& reply, std::string* out,
                                 size_t max_frame_bytes = kMaxFrameBytes);
Result<ClientReply> decode_client_reply(std::string_view payload);

// A KvCommand's payload, an entry's data. Servers log kLoggedWrite entries
// now, but logs written before hold KvCommands (and kLoggedRequests) and stay
// readable: decode_log_command reads all three. The encoders of the older
// two remain so that tests can write such logs.
raft::Bytes encode_kv_command(const KvCommand& command);
Result<KvCommand> decode_kv_command(std::string_view payload);

// A client write as older servers logged it (PayloadKind::kLoggedRequest):
// the timestamp and the request's whole payload. `request_payload` must be a
// decoded write request.
raft::Bytes encode_logged_request(std::string_view request_payload, uint64_t timestamp_ms);

// A client write as the leader logs it (PayloadKind::kLoggedWrite):
//   payload header (8 bytes, frame.h) | u64 LE timestamp_ms | u64 LE client_id
//   | u64 LE seq | u8 op (kv.fbs numbering) | u32 LE key size
//   | u32 LE value size | key | value
// and nothing after. Key and value are copied once, as the request
// itself would be; the fixed fields replace the request's FlatBuffer
// framing. `op` must be a write (Put, Append or Delete).
raft::Bytes encode_logged_write(ClientId client_id, uint64_t seq, Op op, std::string_view key,
                                std::string_view value, uint64_t timestamp_ms);

// A log entry's command, without copying key and value (same lifetime rule
// as ClientRequestRef). Reads every form a log may hold (kKvCommand,
// kLoggedRequest, kLoggedWrite) and verifies each fully; the request_id of a
// logged request is dropped. A kLoggedWrite must name a write op.
struct KvCommandRef {
  ClientId client_id;
  uint64_t seq = 0;
  Op op = Op::kPut;
  std::string_view key;
  std::string_view value;
  uint64_t timestamp_ms = 0;
  std::unique_ptr<uint64_t[]> aligned_copy;
};
Result<KvCommandRef> decode_log_command(std::string_view payload);

}  // namespace raftkv::wire
