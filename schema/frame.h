// The frame codec: how payloads travel over a byte stream (peer and client
// connections alike).
//
//   frame   = [u32 LE length of payload][u32 LE crc32c of payload][payload]
//   payload = [payload header: 8 bytes][body: one FlatBuffer, zero padded]
//   payload header = [u8 version][u8 kind][6 reserved bytes, all zero]
//
// The checksum covers the whole payload, so a corrupted version or kind byte
// is a checksum mismatch, not a misread. The version byte lets a receiver
// refuse a payload it cannot read before touching the body. The two 8-byte
// headers and the padding keep every body 8-byte aligned in the decoder's
// buffer, so FlatBuffers reads its 64-bit fields in place.
//
// A payload is also what a replicated KvCommand is stored as in the log
// (without the frame header: the log has its own checksums).
//
// Decoding never trusts the input: a frame's length is checked against the
// receiver's limit before its bytes are buffered, the checksum before the
// header, the header before the body, and (convert.h) the FlatBuffers
// Verifier before any field is read. Failures are values; see result.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace raftkv::wire {

// The version this build writes and the only one it reads. Bump it for a
// change that FlatBuffers schema evolution cannot absorb (see raft.fbs).
inline constexpr uint8_t kProtocolVersion = 1;

inline constexpr size_t kFrameHeaderBytes = 8;
inline constexpr size_t kPayloadHeaderBytes = 8;

// Default limit on a frame's payload length. Bounds the memory one
// connection can make a receiver allocate; snapshot chunks and append
// batches must stay below it.
inline constexpr size_t kMaxFrameBytes = size_t{64} << 20;
// No decoder may be configured above this: FlatBuffers buffers are limited
// to 2 GiB, and the Verifier aborts beyond that.
inline constexpr size_t kFrameBytesCeiling = size_t{1} << 30;

// What a payload's body is: which FlatBuffers table is its root.
enum class PayloadKind : uint8_t {
  kPeerMessages = 1,   // raft.fbs PeerFrame
  kHandshake = 2,      // raft.fbs Handshake
  kClientRequest = 3,  // kv.fbs ClientRequest
  kClientReply = 4,    // kv.fbs ClientReply
  kKvCommand = 5,      // kv.fbs KvCommand; a log entry's data, not sent in frames
  // A log entry's data, not sent in frames: u64 LE leader timestamp (ms),
  // then a whole kClientRequest payload (header and body), as the client
  // sent it. Written instead of kKvCommand until kLoggedWrite existed.
  kLoggedRequest = 6,
  // A log entry's data, not sent in frames, and written instead of the two
  // above since this kind exists: a client write in a fixed layout, 55 bytes
  // smaller than a kLoggedRequest of a 16-byte key and 256-byte value
  // (convert.h: encode_logged_write). No FlatBuffer, no padding.
  kLoggedWrite = 7,
};
// The highest kind this build knows; a higher one was written by a newer
// release.
inline constexpr PayloadKind kNewestPayloadKind = PayloadKind::kLoggedWrite;

std::string_view to_string(PayloadKind kind);

// Writes the kPayloadHeaderBytes of a payload of `kind` at `out`.
void write_payload_header(PayloadKind kind, char* out);

// Appends `body` as a payload of `kind` (header, body, zero padding to a
// multiple of 8 bytes) to *out.
void append_payload(PayloadKind kind, std::string_view body, std::string* out);

// Appends one frame carrying `body` as a payload of `kind` to *out, so that
// several frames can share one write. Fails, leaving *out unchanged, if the
// payload would exceed max_frame_bytes: the receiver would reject it.
Status append_frame(PayloadKind kind, std::string_view body, std::string* out,
                    size_t max_frame_bytes = kMaxFrameBytes);

// Checks a payload's header (version, kind == expected, reserved bytes) and
// returns its body.
Result<std::string_view> payload_body(std::string_view payload, PayloadKind expected);

// One complete, checksum-verified frame with a valid payload header.
struct Frame {
  PayloadKind kind;
  std::string_view payload;  // header and body; pass to a decode_* of convert.h
};

// FrameDecoder: turns the bytes of one connection, in chunks of any size,
// back into frames. Owned by the connection's reader; not thread-safe.
//
// After any error the decoder stays failed and keeps returning that error:
// the stream has lost sync and the caller closes the connection.
//
//   decoder.feed(bytes);            // or read into prepare(), then commit()
//   while (true) {
//     auto frame = decoder.next();
//     if (!frame.ok()) return close(frame.error());
//     if (!frame->has_value()) break;  // needs more bytes
//     handle((*frame)->payload);
//   }
class FrameDecoder {
 public:
  explicit FrameDecoder(size_t max_frame_bytes = kMaxFrameBytes);

  // Moving hands over buffered bytes and any error (a listener reads the
  // first frame, then passes the decoder on). The moved-from decoder is left
  // empty, as if just constructed.
  FrameDecoder(FrameDecoder&& other) noexcept;
  FrameDecoder& operator=(FrameDecoder&& other) noexcept;

  // Appends bytes received from the stream.
  void feed(std::string_view bytes);

  // Zero-copy alternative to feed(): returns writable space of at least
  // `min_bytes`; receive into it, then commit() the number of bytes written.
  std::span<char> prepare(size_t min_bytes);
  void commit(size_t bytes);

  // The next complete frame, std::nullopt if more bytes are needed, or the
  // error that ended the stream. A frame's payload stays valid until the
  // next call to any non-const member.
  Result<std::optional<Frame>> next();

  // Call at end of stream: fails with kTruncated if a partial frame is
  // buffered, or with the earlier error if the decoder failed.
  Status finish() const;

  bool failed() const { return error_.has_value(); }
  // Bytes received but not yet returned as frames.
  size_t buffered_bytes() const { return end_ - begin_; }

 private:
  Error fail(Error error);
  void make_room(size_t min_bytes);

  size_t max_frame_bytes_;
  std::optional<Error> error_;
  // Invariant: begin_ <= end_ <= capacity_. [begin_, end_) holds received
  // bytes not yet returned; each frame starts at begin_, and begin_ only
  // moves to 0 together with the bytes (compaction keeps frames aligned).
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace raftkv::wire
