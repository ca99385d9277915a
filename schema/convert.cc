#include "schema/convert.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include <flatbuffers/flatbuffers.h>
#include <fmt/format.h>

#include "schema/kv_generated.h"
#include "schema/raft_generated.h"

namespace raftkv::wire {
namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using flatbuffers::uoffset_t;
using ByteVector = flatbuffers::Vector<uint8_t>;

// Our deepest buffer is PeerFrame > PeerMessage > Entry; anything deeper is
// hostile and would only cost stack and time.
constexpr uoffset_t kMaxDepth = 8;
// The largest alignment of any scalar in raft.fbs and kv.fbs (ulong).
constexpr size_t kBodyAlignment = 8;

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidValue, std::move(message)};
}

// ---------------------------------------------------------------------------
// Enum mappings. Wire values and core values are mapped case by case, so
// reordering a core enum cannot silently change the protocol. Decoding
// returns nullopt for a value outside the schema's enum.

fb::MessageType to_fb(raft::MessageType t) {
  using T = raft::MessageType;
  switch (t) {
    case T::kPreVote:
      return fb::MessageType::PreVote;
    case T::kPreVoteResponse:
      return fb::MessageType::PreVoteResponse;
    case T::kVote:
      return fb::MessageType::Vote;
    case T::kVoteResponse:
      return fb::MessageType::VoteResponse;
    case T::kAppend:
      return fb::MessageType::Append;
    case T::kAppendResponse:
      return fb::MessageType::AppendResponse;
    case T::kHeartbeat:
      return fb::MessageType::Heartbeat;
    case T::kHeartbeatResponse:
      return fb::MessageType::HeartbeatResponse;
    case T::kSnapshot:
      return fb::MessageType::Snapshot;
    case T::kTimeoutNow:
      return fb::MessageType::TimeoutNow;
  }
  RAFTKV_CHECK_MSG(false, "raft::MessageType without a wire value");
  return fb::MessageType::PreVote;
}

std::optional<raft::MessageType> from_fb(fb::MessageType t) {
  using T = raft::MessageType;
  switch (t) {
    case fb::MessageType::PreVote:
      return T::kPreVote;
    case fb::MessageType::PreVoteResponse:
      return T::kPreVoteResponse;
    case fb::MessageType::Vote:
      return T::kVote;
    case fb::MessageType::VoteResponse:
      return T::kVoteResponse;
    case fb::MessageType::Append:
      return T::kAppend;
    case fb::MessageType::AppendResponse:
      return T::kAppendResponse;
    case fb::MessageType::Heartbeat:
      return T::kHeartbeat;
    case fb::MessageType::HeartbeatResponse:
      return T::kHeartbeatResponse;
    case fb::MessageType::Snapshot:
      return T::kSnapshot;
    case fb::MessageType::TimeoutNow:
      return T::kTimeoutNow;
  }
  return std::nullopt;
}

fb::EntryType to_fb(raft::EntryType t) {
  switch (t) {
    case raft::EntryType::kNormal:
      return fb::EntryType::Normal;
    case raft::EntryType::kNoop:
      return fb::EntryType::Noop;
  }
  RAFTKV_CHECK_MSG(false, "raft::EntryType without a wire value");
  return fb::EntryType::Normal;
}

std::optional<raft::EntryType> from_fb(fb::EntryType t) {
  switch (t) {
    case fb::EntryType::Normal:
      return raft::EntryType::kNormal;
    case fb::EntryType::Noop:
      return raft::EntryType::kNoop;
  }
  return std::nullopt;
}

fb::Op to_fb(Op op) {
  switch (op) {
    case Op::kGet:
      return fb::Op::Get;
    case Op::kPut:
      return fb::Op::Put;
    case Op::kAppend:
      return fb::Op::Append;
    case Op::kDelete:
      return fb::Op::Delete;
    case Op::kStatus:
      return fb::Op::Status;
  }
  RAFTKV_CHECK_MSG(false, "wire::Op without a wire value");
  return fb::Op::Get;
}

std::optional<Op> from_fb(fb::Op op) {
  switch (op) {
    case fb::Op::Get:
      return Op::kGet;
    case fb::Op::Put:
      return Op::kPut;
    case fb::Op::Append:
      return Op::kAppend;
    case fb::Op::Delete:
      return Op::kDelete;
    case fb::Op::Status:
      return Op::kStatus;
  }
  return std::nullopt;
}

fb::ReplyStatus to_fb(ReplyStatus s) {
  switch (s) {
    case ReplyStatus::kOk:
      return fb::ReplyStatus::Ok;
    case ReplyStatus::kNotFound:
      return fb::ReplyStatus::NotFound;
    case ReplyStatus::kNotLeader:
      return fb::ReplyStatus::NotLeader;
    case ReplyStatus::kBusy:
      return fb::ReplyStatus::Busy;
    case ReplyStatus::kTimeout:
      return fb::ReplyStatus::Timeout;
    case ReplyStatus::kBadRequest:
      return fb::ReplyStatus::BadRequest;
    case ReplyStatus::kTooLarge:
      return fb::ReplyStatus::TooLarge;
    case ReplyStatus::kInternal:
      return fb::ReplyStatus::Internal;
  }
  RAFTKV_CHECK_MSG(false, "wire::ReplyStatus without a wire value");
  return fb::ReplyStatus::Internal;
}

std::optional<ReplyStatus> from_fb(fb::ReplyStatus s) {
  switch (s) {
    case fb::ReplyStatus::Ok:
      return ReplyStatus::kOk;
    case fb::ReplyStatus::NotFound:
      return ReplyStatus::kNotFound;
    case fb::ReplyStatus::NotLeader:
      return ReplyStatus::kNotLeader;
    case fb::ReplyStatus::Busy:
      return ReplyStatus::kBusy;
    case fb::ReplyStatus::Timeout:
      return ReplyStatus::kTimeout;
    case fb::ReplyStatus::BadRequest:
      return ReplyStatus::kBadRequest;
    case fb::ReplyStatus::TooLarge:
      return ReplyStatus::kTooLarge;
    case fb::ReplyStatus::Internal:
      return ReplyStatus::kInternal;
  }
  return std::nullopt;
}

fb::Role to_fb(raft::Role r) {
  switch (r) {
    case raft::Role::kFollower:
      return fb::Role::Follower;
    case raft::Role::kPreCandidate:
      return fb::Role::PreCandidate;
    case raft::Role::kCandidate:
      return fb::Role::Candidate;
    case raft::Role::kLeader:
      return fb::Role::Leader;
  }
  RAFTKV_CHECK_MSG(false, "raft::Role without a wire value");
  return fb::Role::Follower;
}

std::optional<raft::Role> from_fb(fb::Role r) {
  switch (r) {
    case fb::Role::Follower:
      return raft::Role::kFollower;
    case fb::Role::PreCandidate:
      return raft::Role::kPreCandidate;
    case fb::Role::Candidate:
      return raft::Role::kCandidate;
    case fb::Role::Leader:
      return raft::Role::kLeader;
  }
  return std::nullopt;
}

template <class E>
unsigned raw(E e) {
  return static_cast<unsigned>(e);
}

// ---------------------------------------------------------------------------
// Encoding helpers.

// An absent vector for empty bytes: costs nothing on the wire and decodes
// back to empty bytes.
Offset<ByteVector> bytes_vector(FlatBufferBuilder& fbb, std::string_view bytes) {
  if (bytes.empty()) return {};
  return fbb.CreateVector(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

Offset<flatbuffers::String> string_or_absent(FlatBufferBuilder& fbb, const std::string& s) {
  if (s.empty()) return {};
  return fbb.CreateString(s);
}

std::string_view finished(const FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

Offset<fb::PeerMessage> build_message(FlatBufferBuilder& fbb, const raft::Message& m,
                                      std::vector<Offset<fb::Entry>>* entry_scratch) {
  // FlatBuffers builds children before parents, so everything a
  // PeerMessage points to is created first.
  Offset<flatbuffers::Vector<Offset<fb::Entry>>> entries;
  if (!m.entries.empty()) {
    entry_scratch->clear();
    for (const raft::Entry& e : m.entries) {
      Offset<ByteVector> data = bytes_vector(fbb, e.data.view());
      fb::EntryBuilder b(fbb);
      b.add_term(e.term.value);
      b.add_index(e.index.value);
      b.add_type(to_fb(e.type));
      b.add_data(data);
      entry_scratch->push_back(b.Finish());
    }
    entries = fbb.CreateVector(*entry_scratch);
  }

  Offset<fb::SnapshotMeta> snapshot;
  if (m.snapshot != raft::SnapshotMeta{}) {
    Offset<flatbuffers::Vector<uint64_t>> voters;
    if (!m.snapshot.voters.empty()) {
      std::vector<uint64_t> ids;
      ids.reserve(m.snapshot.voters.size());
      for (raft::NodeId id : m.snapshot.voters)
        ids.push_back(id.value);
      voters = fbb.CreateVector(ids);
    }
    fb::SnapshotMetaBuilder b(fbb);
    b.add_index(m.snapshot.index.value);
    b.add_term(m.snapshot.term.value);
    b.add_voters(voters);
    snapshot = b.Finish();
  }
  Offset<ByteVector> snapshot_data = bytes_vector(fbb, m.snapshot_data.view());

  fb::PeerMessageBuilder b(fbb);
  b.add_type(to_fb(m.type));
  b.add_from(m.from.value);
  b.add_to(m.to.value);
  b.add_term(m.term.value);
  b.add_index(m.index.value);
  b.add_log_term(m.log_term.value);
  b.add_entries(entries);
  b.add_commit(m.commit.value);
  b.add_reject(m.reject);
  b.add_reject_hint(m.reject_hint.value);
  b.add_hint_term(m.hint_term.value);
  b.add_read_round(m.read_round);
  b.add_transfer(m.transfer);
  b.add_snapshot(snapshot);
  b.add_snapshot_offset(m.snapshot_offset);
  b.add_snapshot_data(snapshot_data);
  b.add_snapshot_done(m.snapshot_done);
  b.add_snapshot_ack(m.snapshot_ack);
  return b.Finish();
}

// ---------------------------------------------------------------------------
// Decoding helpers.

// AlignedBody: a payload body where FlatBuffers may read it in place. The
// frame layout keeps bodies aligned in FrameDecoder's buffer, so the copy is
// taken only for bodies from elsewhere (a log entry in a small buffer, a
// fuzzer's bytes).
class AlignedBody {
 public:
  explicit AlignedBody(std::string_view body) : size_(body.size()) {
    if (reinterpret_cast<uintptr_t>(body.data()) % kBodyAlignment == 0) {
      data_ = reinterpret_cast<const uint8_t*>(body.data());
      return;
    }
    copy_ = std::make_unique_for_overwrite<uint64_t[]>(size_ / sizeof(uint64_t) + 1);
    std::memcpy(copy_.get(), body.data(), size_);
    data_ = reinterpret_cast<const uint8_t*>(copy_.get());
  }

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // The aligned copy, if one was taken; data() stays valid while it lives.
  std::unique_ptr<uint64_t[]> release_copy() { return std::move(copy_); }

 private:
  std::unique_ptr<uint64_t[]> copy_;
  const uint8_t* data_ = nullptr;
  size_t size_;
};

// Runs the Verifier over the whole body, then returns its root table.
// max_tables bounds the work and, with aliasing, the objects decoding creates.
template <class Table>
Result<const Table*> verify_root(const AlignedBody& body, PayloadKind kind, uoffset_t max_tables) {
  flatbuffers::Verifier::Options options;
  options.max_depth = kMaxDepth;
  options.max_tables = max_tables;
  options.check_alignment = true;
  flatbuffers::Verifier verifier(body.data(), body.size(), options);
  if (!verifier.VerifyBuffer<Table>(nullptr)) {
    return Error{ErrorCode::kVerificationFailed,
                 fmt::format("flatbuffer verification failed: {} body of {} bytes", to_string(kind),
                             body.size())};
  }
  return flatbuffers::GetRoot<Table>(body.data());
}

// VerifiedPayload: a payload whose header was checked and whose body passed
// the Verifier; the first step of every decode_*. Owns the aligned body for
// as long as the root is read. Movable: the root points at bytes that do not
// move with it.
template <class Table>
class VerifiedPayload {
 public:
  static Result<VerifiedPayload> open(std::string_view payload, PayloadKind kind,
                                      uoffset_t max_tables) {
    if (payload.size() > kFrameBytesCeiling) {
      return Error{ErrorCode::kFrameTooLarge,
                   fmt::format("frame too large: {} > {}", payload.size(), kFrameBytesCeiling)};
    }
    Result<std::string_view> body = payload_body(payload, kind);
    if (!body.ok()) return body.error();
    VerifiedPayload verified(*body);
    Result<const Table*> root = verify_root<Table>(verified.body_, kind, max_tables);
    if (!root.ok()) return root.error();
    verified.root_ = *root;
    return verified;
  }

  const Table& root() const { return *root_; }
  size_t body_size() const { return body_.size(); }
  // For decoders that return views: root() stays valid while this lives.
  std::unique_ptr<uint64_t[]> release_copy() { return body_.release_copy(); }

 private:
  explicit VerifiedPayload(std::string_view body) : body_(body) {}

  AlignedBody body_;
  const Table* root_ = nullptr;
};

// ByteBudget: how many more bytes decoding one payload may copy out of byte
// and scalar vectors. Without aliasing every vector occupies its own part of
// the body, so the total cannot exceed the body's size; more means several
// offsets point at one vector.
class ByteBudget {
 public:
  explicit ByteBudget(size_t bytes) : total_(bytes), left_(bytes) {}

  Status take(size_t bytes) {
    if (bytes > left_) {
      return invalid(fmt::format(
          "vectors add up to more than the {}-byte body: offsets alias one vector", total_));
    }
    left_ -= bytes;
    return {};
  }

 private:
  size_t total_;
  size_t left_;
};

std::string copy_bytes(const ByteVector& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

std::string_view view_or_empty(const ByteVector* v) {
  if (v == nullptr) return {};
  return {reinterpret_cast<const char*>(v->data()), v->size()};
}

std::string copy_or_empty(const ByteVector* v) {
  return v ? copy_bytes(*v) : std::string();
}

std::string copy_or_empty(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

Result<raft::Bytes> to_bytes(const ByteVector* v, ByteBudget* budget) {
  if (v == nullptr || v->size() == 0) return raft::Bytes();
  if (Status s = budget->take(v->size()); !s.ok()) return s.error();
  return raft::Bytes(view_or_empty(v));
}

Result<raft::Message> decode_message(const fb::PeerMessage& pm, size_t i, ByteBudget* budget) {
  raft::Message m;
  std::optional<raft::MessageType> type = from_fb(pm.type());
  if (!type) return invalid(fmt::format("message {}: type {} out of range", i, raw(pm.type())));
  m.type = *type;
  m.from = raft::NodeId(pm.from());
  m.to = raft::NodeId(pm.to());
  m.term = raft::Term(pm.term());
  m.index = raft::Index(pm.index());
  m.log_term = raft::Term(pm.log_term());
  if (const auto* entries = pm.entries()) {
    m.entries.reserve(entries->size());
    for (uoffset_t j = 0; j < entries->size(); ++j) {
      const fb::Entry& e = *entries->Get(j);
      std::optional<raft::EntryType> entry_type = from_fb(e.type());
      if (!entry_type) {
        return invalid(
            fmt::format("message {} entry {}: type {} out of range", i, j, raw(e.type())));
      }
      Result<raft::Bytes> data = to_bytes(e.data(), budget);
      if (!data.ok()) return data.error();
      m.entries.push_back(
          raft::Entry{raft::Term(e.term()), raft::Index(e.index()), *entry_type, std::move(*data)});
    }
  }
  m.commit = raft::Index(pm.commit());
  m.reject = pm.reject();
  m.reject_hint = raft::Index(pm.reject_hint());
  m.hint_term = raft::Term(pm.hint_term());
  m.read_round = pm.read_round();
  m.transfer = pm.transfer();
  if (const fb::SnapshotMeta* s = pm.snapshot()) {
    m.snapshot.index = raft::Index(s->index());
    m.snapshot.term = raft::Term(s->term());
    if (const auto* voters = s->voters()) {
      if (voters->size() > kMaxVoters) {
        return invalid(fmt::format("message {}: {} voters > {}", i, voters->size(), kMaxVoters));
      }
      // FlatBuffers 2.0.8's Verifier checks a vector's length field, not the
      // alignment of 8-byte elements; reading a misaligned one is undefined
      // behaviour. Honest encoders always align, so such a vector is hostile.
      if (reinterpret_cast<uintptr_t>(voters->Data()) % alignof(uint64_t) != 0) {
        return Error{
            ErrorCode::kVerificationFailed,
            fmt::format("flatbuffer verification failed: message {}: misaligned voters", i)};
      }
      if (Status st = budget->take(voters->size() * sizeof(uint64_t)); !st.ok()) {
        return st.error();
      }
      m.snapshot.voters.reserve(voters->size());
      for (uint64_t id : *voters)
        m.snapshot.voters.push_back(raft::NodeId(id));
    }
  }
  m.snapshot_offset = pm.snapshot_offset();
  Result<raft::Bytes> snapshot_data = to_bytes(pm.snapshot_data(), budget);
  if (!snapshot_data.ok()) return snapshot_data.error();
  m.snapshot_data = std::move(*snapshot_data);
  m.snapshot_done = pm.snapshot_done();
  m.snapshot_ack = pm.snapshot_ack();
  return m;
}

// Every table of a peer frame, for the Verifier's max_tables: the frame, and
// per message itself, its snapshot meta and its entries.
constexpr uoffset_t kMaxPeerFrameTables = 1 + 2 * kMaxMessagesPerFrame + kMaxEntriesPerFrame;

}  // namespace

// ---------------------------------------------------------------------------
// Peer messages.

Status append_peer_frame(std::span<const raft::Message> messages, std::string* out,
                         size_t max_frame_bytes) {
  size_t estimate = 1024;
  for (const raft::Message& m : messages)
    estimate += m.byte_size() + 8 * m.entries.size();
  FlatBufferBuilder fbb(std::min(estimate, kFrameBytesCeiling));
  std::vector<Offset<fb::PeerMessage>> offsets;
  offsets.reserve(messages.size());
  std::vector<Offset<fb::Entry>> entry_scratch;
  for (const raft::Message& m : messages)
    offsets.push_back(build_message(fbb, m, &entry_scratch));
  Offset<flatbuffers::Vector<Offset<fb::PeerMessage>>> vec = fbb.CreateVector(offsets);
  fb::PeerFrameBuilder frame(fbb);
  frame.add_messages(vec);
  fbb.Finish(frame.Finish());
  return append_frame(PayloadKind::kPeerMessages, finished(fbb), out, max_frame_bytes);
}

Result<std::vector<raft::Message>> decode_peer_messages(std::string_view payload) {
  auto verified = VerifiedPayload<fb::PeerFrame>::open(payload, PayloadKind::kPeerMessages,
                                                       kMaxPeerFrameTables);
  if (!verified.ok()) return verified.error();
  std::vector<raft::Message> out;
  const auto* messages = verified->root().messages();
  if (messages == nullptr) return out;
  if (messages->size() > kMaxMessagesPerFrame) {
    return invalid(
        fmt::format("{} messages in one frame > {}", messages->size(), kMaxMessagesPerFrame));
  }
  size_t entries = 0;
  for (const fb::PeerMessage* pm : *messages) {
    if (pm->entries()) entries += pm->entries()->size();
  }
  if (entries > kMaxEntriesPerFrame) {
    return invalid(fmt::format("{} entries in one frame > {}", entries, kMaxEntriesPerFrame));
  }
  ByteBudget budget(verified->body_size());
  out.reserve(messages->size());
  for (uoffset_t i = 0; i < messages->size(); ++i) {
    Result<raft::Message> m = decode_message(*messages->Get(i), i, &budget);
    if (!m.ok()) return m.error();
    out.push_back(std::move(*m));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Handshake.

Status append_handshake_frame(const Handshake& handshake, std::string* out) {
  FlatBufferBuilder fbb(128);
  fb::HandshakeBuilder b(fbb);
  b.add_protocol_version(handshake.protocol_version);
  b.add_cluster_id(handshake.cluster_id);
  b.add_node_id(handshake.node_id.value);
  fbb.Finish(b.Finish());
  return append_frame(PayloadKind::kHandshake, finished(fbb), out);
}

Result<Handshake> decode_handshake(std::string_view payload) {
  auto verified = VerifiedPayload<fb::Handshake>::open(payload, PayloadKind::kHandshake, 1);
  if (!verified.ok()) return verified.error();
  const fb::Handshake& h = verified->root();
  return Handshake{h.protocol_version(), h.cluster_id(), raft::NodeId(h.node_id())};
}

// ---------------------------------------------------------------------------
// Client protocol.

// A request (in the clerk) and a reply (in the server) are the hot path's
// encodes: each thread reuses one builder, so they allocate nothing once it has
// grown. One that grew past kKeepBuilderBytes (a large value) is released
// after use.
constexpr size_t kKeepBuilderBytes = size_t{64} << 10;

template <class Build>
Status append_built_frame(PayloadKind kind, std::string* out, size_t max_frame_bytes, Build build) {
  thread_local FlatBufferBuilder fbb(1024);
  fbb.Clear();
  build(fbb);
  Status st = append_frame(kind, finished(fbb), out, max_frame_bytes);
  if (fbb.GetSize() > kKeepBuilderBytes) fbb.Reset();
  return st;
}

Status append_client_request_frame(const ClientRequest& request, std::string* out,
                                   size_t max_frame_bytes) {
  return append_built_frame(PayloadKind::kClientRequest, out, max_frame_bytes,
                            [&](FlatBufferBuilder& fbb) {
                              Offset<ByteVector> key = bytes_vector(fbb, request.key);
                              Offset<ByteVector> value = bytes_vector(fbb, request.value);
                              fb::ClientRequestBuilder b(fbb);
                              b.add_request_id(request.request_id);
                              b.add_client_id(request.client_id.value);
                              b.add_seq(request.seq);
                              b.add_op(to_fb(request.op));
                              b.add_key(key);
                              b.add_value(value);
                              fbb.Finish(b.Finish());
                            });
}

Result<ClientRequestRef> decode_client_request_ref(std::string_view payload) {
  auto verified = VerifiedPayload<fb::ClientRequest>::open(payload, PayloadKind::kClientRequest, 1);
  if (!verified.ok()) return verified.error();
  const fb::ClientRequest& r = verified->root();
  std::optional<Op> op = from_fb(r.op());
  if (!op) return invalid(fmt::format("client request: op {} out of range", raw(r.op())));
  // Views, not copies: aliased vectors cost nothing here (no ByteBudget).
  return ClientRequestRef{
      r.request_id(),           ClientId(r.client_id()), r.seq(), *op, view_or_empty(r.key()),
      view_or_empty(r.value()), verified->release_copy()};
}

Result<ClientRequest> decode_client_request(std::string_view payload) {
  Result<ClientRequestRef> r = decode_client_request_ref(payload);
  if (!r.ok()) return r.error();
  return ClientRequest{r->request_id, r->client_id,        r->seq,
                       r->op,         std::string(r->key), std::string(r->value)};
}

Status append_client_reply_frame(const ClientReply& reply, std::string* out,
                                 size_t max_frame_bytes) {
  return append_built_frame(
      PayloadKind::kClientReply, out, max_frame_bytes, [&](FlatBufferBuilder& fbb) {
        // Present-but-empty and absent differ here: an empty value of an existing
        // key versus no such key.
        Offset<ByteVector> value;
        if (reply.value) {
          value = fbb.CreateVector(reinterpret_cast<const uint8_t*>(reply.value->data()),
                                   reply.value->size());
        }
        Offset<flatbuffers::String> leader_address = string_or_absent(fbb, reply.leader_address);
        Offset<flatbuffers::String> message = string_or_absent(fbb, reply.message);
        Offset<fb::NodeStatus> node_status;
        if (reply.node_status) {
          const NodeStatus& s = *reply.node_status;
          fb::NodeStatusBuilder b(fbb);
          b.add_node_id(s.node_id.value);
          b.add_role(to_fb(s.role));
          b.add_term(s.term.value);
          b.add_leader(s.leader.value);
          b.add_commit_index(s.commit_index.value);
          b.add_applied_index(s.applied_index.value);
          node_status = b.Finish();
        }
        fb::ClientReplyBuilder b(fbb);
        b.add_request_id(reply.request_id);
        b.add_status(to_fb(reply.status));
        b.add_value(value);
        b.add_leader_hint(reply.leader_hint.value);
        b.add_leader_address(leader_address);
        b.add_message(message);
        b.add_node_status(node_status);
        fbb.Finish(b.Finish());
      });
}

Result<ClientReply> decode_client_reply(std::string_view payload) {
  auto verified = VerifiedPayload<fb::ClientReply>::open(payload, PayloadKind::kClientReply, 2);
  if (!verified.ok()) return verified.error();
  const fb::ClientReply& r = verified->root();
  ClientReply reply;
  reply.request_id = r.request_id();
  std::optional<ReplyStatus> status = from_fb(r.status());
  if (!status) {
    return invalid(fmt::format("client reply: status {} out of range", raw(r.status())));
  }
  reply.status = *status;
  if (r.value()) reply.value = copy_bytes(*r.value());
  reply.leader_hint = raft::NodeId(r.leader_hint());
  reply.leader_address = copy_or_empty(r.leader_address());
  reply.message = copy_or_empty(r.message());
  if (const fb::NodeStatus* s = r.node_status()) {
    std::optional<raft::Role> role = from_fb(s->role());
    if (!role) return invalid(fmt::format("client reply: role {} out of range", raw(s->role())));
    reply.node_status = NodeStatus{raft::NodeId(s->node_id()),     *role,
                                   raft::Term(s->term()),          raft::NodeId(s->leader()),
                                   raft::Index(s->commit_index()), raft::Index(s->applied_index())};
  }
  return reply;
}

// ---------------------------------------------------------------------------
// KvCommand.

raft::Bytes encode_kv_command(const KvCommand& command) {
  FlatBufferBuilder fbb(command.key.size() + command.value.size() + 128);
  Offset<ByteVector> key = bytes_vector(fbb, command.key);
  Offset<ByteVector> value = bytes_vector(fbb, command.value);
  fb::KvCommandBuilder b(fbb);
  b.add_client_id(command.client_id.value);
  b.add_seq(command.seq);
  b.add_op(to_fb(command.op));
  b.add_key(key);
  b.add_value(value);
  b.add_timestamp_ms(command.timestamp_ms);
  fbb.Finish(b.Finish());
  std::string payload;
  payload.reserve(kPayloadHeaderBytes + fbb.GetSize() + 8);
  append_payload(PayloadKind::kKvCommand, finished(fbb), &payload);
  return raft::Bytes(std::move(payload));
}

Result<KvCommand> decode_kv_command(std::string_view payload) {
  auto verified = VerifiedPayload<fb::KvCommand>::open(payload, PayloadKind::kKvCommand, 1);
  if (!verified.ok()) return verified.error();
  const fb::KvCommand& c = verified->root();
  std::optional<Op> op = from_fb(c.op());
  if (!op) return invalid(fmt::format("kv command: op {} out of range", raw(c.op())));
  return KvCommand{ClientId(c.client_id()),  c.seq(),         *op, copy_or_empty(c.key()),
                   copy_or_empty(c.value()), c.timestamp_ms()};
}

// ---------------------------------------------------------------------------
// Log entries of client writes. kLoggedRequest: u64 LE timestamp_ms | a
// kClientRequest payload. kLoggedWrite: the fixed layout of convert.h.

namespace {

constexpr size_t kTimestampBytes = 8;
// Where each fixed field of a kLoggedWrite body starts (layout: convert.h).
constexpr size_t kAtTimestamp = 0, kAtClient = 8, kAtSeq = 16, kAtOp = 24, kAtKeySize = 25,
                 kAtValueSize = 29;
constexpr size_t kLoggedWriteFixedBytes = kAtValueSize + 4;

void store_le(char* p, uint64_t v, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}

uint64_t load_le(const char* p, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i)
    v |= uint64_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return v;
}

bool is_write(Op op) {
  return op == Op::kPut || op == Op::kAppend || op == Op::kDelete;
}

Result<KvCommandRef> decode_logged_request(std::string_view body) {
  if (body.size() < kTimestampBytes) {
    return Error{
        ErrorCode::kTruncated,
        fmt::format("truncated: logged request of {} bytes has no timestamp", body.size())};
  }
  const uint64_t timestamp_ms = load_le(body.data(), kTimestampBytes);
  Result<ClientRequestRef> r = decode_client_request_ref(body.substr(kTimestampBytes));
  if (!r.ok()) {
    return Error{r.error().code, fmt::format("logged request: {}", r.error().message)};
  }
  return KvCommandRef{
      r->client_id, r->seq, r->op, r->key, r->value, timestamp_ms, std::move(r->aligned_copy)};
}

Result<KvCommandRef> decode_logged_write(std::string_view body) {
  if (body.size() < kLoggedWriteFixedBytes) {
    return Error{ErrorCode::kTruncated,
                 fmt::format("truncated: logged write of {} bytes is shorter than its {} fixed "
                             "bytes",
                             body.size(), kLoggedWriteFixedBytes)};
  }
  const char* p = body.data();
  KvCommandRef c;
  c.timestamp_ms = load_le(p + kAtTimestamp, 8);
  c.client_id = ClientId(load_le(p + kAtClient, 8));
  c.seq = load_le(p + kAtSeq, 8);
  const auto raw_op = static_cast<uint8_t>(p[kAtOp]);
  // fb::Op has a fixed underlying type: every byte is a value of it.
  std::optional<Op> op = from_fb(static_cast<fb::Op>(raw_op));
  if (!op || !is_write(*op)) {
    return invalid(fmt::format("logged write: op {} is not a write", raw_op));
  }
  c.op = *op;
  // Both sizes are stored so that a cut or extended entry is refused, not
  // read as a shorter or longer value.
  const uint64_t key_size = load_le(p + kAtKeySize, 4);
  const uint64_t value_size = load_le(p + kAtValueSize, 4);
  const std::string_view rest = body.substr(kLoggedWriteFixedBytes);
  if (key_size + value_size != rest.size()) {
    return Error{
        key_size + value_size > rest.size() ? ErrorCode::kTruncated : ErrorCode::kInvalidValue,
        fmt::format("logged write names a {}-byte key and a {}-byte value, but {} "
                    "bytes follow",
                    key_size, value_size, rest.size())};
  }
  c.key = rest.substr(0, key_size);
  c.value = rest.substr(key_size);
  return c;
}

}  // namespace

raft::Bytes encode_logged_request(std::string_view request_payload, uint64_t timestamp_ms) {
  const size_t size = kPayloadHeaderBytes + kTimestampBytes + request_payload.size();
  return raft::Bytes::filled(size, [&](char* p) {
    write_payload_header(PayloadKind::kLoggedRequest, p);
    store_le(p + kPayloadHeaderBytes, timestamp_ms, kTimestampBytes);
    // Requests are padded to 8 bytes (append_payload), so the request's body
    // stays 8-byte aligned in the entry and decodes in place.
    std::memcpy(p + kPayloadHeaderBytes + kTimestampBytes, request_payload.data(),
                request_payload.size());
  });
}

raft::Bytes encode_logged_write(ClientId client_id, uint64_t seq, Op op, std::string_view key,
                                std::string_view value, uint64_t timestamp_ms) {
  RAFTKV_CHECK_MSG(is_write(op), "encode_logged_write: not a write");
  RAFTKV_CHECK_MSG(key.size() <= UINT32_MAX && value.size() <= UINT32_MAX,
                   "encode_logged_write: key or value over 4 GiB");
  const size_t size = kPayloadHeaderBytes + kLoggedWriteFixedBytes + key.size() + value.size();
  return raft::Bytes::filled(size, [&](char* p) {
    write_payload_header(PayloadKind::kLoggedWrite, p);
    char* f = p + kPayloadHeaderBytes;
    store_le(f + kAtTimestamp, timestamp_ms, 8);
    store_le(f + kAtClient, client_id.value, 8);
    store_le(f + kAtSeq, seq, 8);
    f[kAtOp] = static_cast<char>(to_fb(op));
    store_le(f + kAtKeySize, key.size(), 4);
    store_le(f + kAtValueSize, value.size(), 4);
    char* k = f + kLoggedWriteFixedBytes;
    // memcpy of an empty view's data() (possibly null) is undefined.
    if (!key.empty()) std::memcpy(k, key.data(), key.size());
    if (!value.empty()) std::memcpy(k + key.size(), value.data(), value.size());
  });
}

Result<KvCommandRef> decode_log_command(std::string_view payload) {
  const auto kind = payload.size() >= kPayloadHeaderBytes
                        ? static_cast<PayloadKind>(static_cast<uint8_t>(payload[1]))
                        : PayloadKind::kKvCommand;
  if (kind == PayloadKind::kLoggedWrite || kind == PayloadKind::kLoggedRequest) {
    Result<std::string_view> body = payload_body(payload, kind);
    if (!body.ok()) return body.error();
    return kind == PayloadKind::kLoggedWrite ? decode_logged_write(*body)
                                             : decode_logged_request(*body);
  }
  auto verified = VerifiedPayload<fb::KvCommand>::open(payload, PayloadKind::kKvCommand, 1);
  if (!verified.ok()) return verified.error();
  const fb::KvCommand& c = verified->root();
  std::optional<Op> op = from_fb(c.op());
  if (!op) return invalid(fmt::format("kv command: op {} out of range", raw(c.op())));
  return KvCommandRef{ClientId(c.client_id()),
                      c.seq(),
                      *op,
                      view_or_empty(c.key()),
                      view_or_empty(c.value()),
                      c.timestamp_ms(),
                      verified->release_copy()};
}

}  // namespace raftkv::wire
