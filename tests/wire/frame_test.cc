#include "schema/frame.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "raft/core/random.h"
#include "schema/crc32c.h"

namespace raftkv::wire {
namespace {

struct Decoded {
  std::vector<std::pair<PayloadKind, std::string>> frames;
  std::optional<Error> error;
};

// Takes every complete frame out of the decoder, copying payloads (they are
// only valid until the decoder is used again).
void drain(FrameDecoder* decoder, Decoded* out) {
  while (true) {
    Result<std::optional<Frame>> frame = decoder->next();
    if (!frame.ok()) {
      out->error = frame.error();
      return;
    }
    if (!frame->has_value()) return;
    out->frames.emplace_back((*frame)->kind, std::string((*frame)->payload));
  }
}

Decoded decode_all(std::string_view stream, size_t max_frame_bytes = kMaxFrameBytes) {
  FrameDecoder decoder(max_frame_bytes);
  decoder.feed(stream);
  Decoded out;
  drain(&decoder, &out);
  return out;
}

std::string payload_of(PayloadKind kind, std::string_view body) {
  std::string payload;
  append_payload(kind, body, &payload);
  return payload;
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i)
    s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A frame around any payload bytes, with a correct checksum: lets a test get
// past the checksum to the checks behind it.
std::string raw_frame(std::string_view payload) {
  return le32(static_cast<uint32_t>(payload.size())) + le32(crc32c(payload)) + std::string(payload);
}

std::string random_string(raft::Rng& rng, size_t size) {
  std::string s(size, '\0');
  for (char& c : s)
    c = static_cast<char>(rng.next());
  return s;
}

// Frames of assorted kinds and body sizes (including 0 and odd sizes), and
// the payloads the decoder must return for them.
struct Stream {
  std::string bytes;
  std::vector<std::pair<PayloadKind, std::string>> frames;
};

Stream make_stream(uint64_t seed, int frames, size_t max_body) {
  raft::Rng rng(seed);
  Stream s;
  for (int i = 0; i < frames; ++i) {
    const auto kind = static_cast<PayloadKind>(1 + rng.below(5));
    const std::string body = random_string(rng, rng.below(max_body + 1));
    EXPECT_TRUE(append_frame(kind, body, &s.bytes).ok());
    s.frames.emplace_back(kind, payload_of(kind, body));
  }
  return s;
}

TEST(FrameCodec, RoundTripsOneFrame) {
  std::string stream;
  ASSERT_TRUE(append_frame(PayloadKind::kHandshake, "hello", &stream).ok());
  EXPECT_EQ(stream.size(), kFrameHeaderBytes + 16);
  Decoded d = decode_all(stream);
  ASSERT_FALSE(d.error) << d.error->message;
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(d.frames[0].first, PayloadKind::kHandshake);
  Result<std::string_view> body = payload_body(d.frames[0].second, PayloadKind::kHandshake);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(body->substr(0, 5), "hello");
  EXPECT_EQ(body->substr(5), std::string(3, '\0'));  // padding to a multiple of 8
}

TEST(FrameCodec, PayloadHeaderCarriesVersionAndKind) {
  const std::string payload = payload_of(PayloadKind::kClientReply, "x");
  ASSERT_EQ(payload.size(), 16u);
  EXPECT_EQ(payload[0], static_cast<char>(kProtocolVersion));
  EXPECT_EQ(payload[1], static_cast<char>(PayloadKind::kClientReply));
  EXPECT_EQ(payload.substr(2, 6), std::string(6, '\0'));
}

TEST(FrameCodec, DecodesManyCoalescedFramesFromOneChunk) {
  const Stream s = make_stream(1, 200, 100);
  Decoded d = decode_all(s.bytes);
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.frames, s.frames);
}

TEST(FrameCodec, DecodesFramesSplitAtEveryByteBoundary) {
  const Stream s = make_stream(2, 4, 40);
  for (size_t split = 0; split <= s.bytes.size(); ++split) {
    FrameDecoder decoder;
    Decoded d;
    decoder.feed(std::string_view(s.bytes).substr(0, split));
    drain(&decoder, &d);
    decoder.feed(std::string_view(s.bytes).substr(split));
    drain(&decoder, &d);
    ASSERT_FALSE(d.error) << "split " << split << ": " << d.error->message;
    ASSERT_EQ(d.frames, s.frames) << "split " << split;
    EXPECT_TRUE(decoder.finish().ok());
  }
}

TEST(FrameCodec, DecodesStreamFedOneByteAtATime) {
  const Stream s = make_stream(3, 20, 60);
  FrameDecoder decoder;
  Decoded d;
  for (char c : s.bytes) {
    decoder.feed(std::string_view(&c, 1));
    drain(&decoder, &d);
  }
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.frames, s.frames);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(FrameCodec, DecodesRandomChunksReceivedThroughPrepareAndCommit) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const Stream s = make_stream(100 + seed, 30, 3000);
    raft::Rng rng(seed);
    FrameDecoder decoder;
    Decoded d;
    size_t pos = 0;
    while (pos < s.bytes.size()) {
      const size_t want = 1 + rng.below(4096);
      std::span<char> space = decoder.prepare(want);
      ASSERT_GE(space.size(), want);
      const size_t n = std::min({want, space.size(), s.bytes.size() - pos});
      std::memcpy(space.data(), s.bytes.data() + pos, n);
      decoder.commit(n);
      pos += n;
      drain(&decoder, &d);
    }
    ASSERT_FALSE(d.error) << "seed " << seed << ": " << d.error->message;
    ASSERT_EQ(d.frames, s.frames) << "seed " << seed;
    EXPECT_TRUE(decoder.finish().ok());
  }
}

// FlatBuffers reads 64-bit fields in place; aligned bodies spare a copy.
TEST(FrameCodec, KeepsEveryPayloadEightByteAligned) {
  const Stream s = make_stream(4, 50, 33);
  raft::Rng rng(4);
  FrameDecoder decoder;
  size_t pos = 0;
  int frames = 0;
  while (pos < s.bytes.size()) {
    const size_t n = std::min<size_t>(1 + rng.below(100), s.bytes.size() - pos);
    decoder.feed(std::string_view(s.bytes).substr(pos, n));
    pos += n;
    while (true) {
      Result<std::optional<Frame>> frame = decoder.next();
      ASSERT_TRUE(frame.ok());
      if (!frame->has_value()) break;
      EXPECT_EQ(reinterpret_cast<uintptr_t>((*frame)->payload.data()) % 8, 0u);
      ++frames;
    }
  }
  EXPECT_EQ(frames, 50);
}

TEST(FrameCodec, DecodesLargeFrameArrivingInSmallReads) {
  raft::Rng rng(5);
  const std::string body = random_string(rng, 10 << 20);
  std::string stream;
  ASSERT_TRUE(append_frame(PayloadKind::kPeerMessages, body, &stream).ok());
  ASSERT_TRUE(append_frame(PayloadKind::kHandshake, "after", &stream).ok());
  FrameDecoder decoder;
  Decoded d;
  for (size_t pos = 0; pos < stream.size(); pos += 65536) {
    decoder.feed(std::string_view(stream).substr(pos, 65536));
    drain(&decoder, &d);
  }
  ASSERT_FALSE(d.error) << d.error->message;
  ASSERT_EQ(d.frames.size(), 2u);
  EXPECT_EQ(d.frames[0].second, payload_of(PayloadKind::kPeerMessages, body));
  EXPECT_EQ(d.frames[1].second, payload_of(PayloadKind::kHandshake, "after"));
}

TEST(FrameCodec, RejectsOversizeFrameFromItsHeaderAlone) {
  FrameDecoder decoder(1024);
  decoder.feed(le32(1025) + le32(0));  // no payload bytes follow, none are awaited
  Result<std::optional<Frame>> frame = decoder.next();
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.error().code, ErrorCode::kFrameTooLarge);
  EXPECT_EQ(frame.error().message, "frame too large: 1025 > 1024");
}

TEST(FrameCodec, RejectsHugeLengthWithDefaultLimit) {
  Decoded d = decode_all(le32(0xFFFFFFFF) + le32(0));
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->code, ErrorCode::kFrameTooLarge);
  EXPECT_EQ(d.error->message, fmt::format("frame too large: 4294967295 > {}", kMaxFrameBytes));
}

TEST(FrameCodec, AcceptsFrameOfExactlyTheLimit) {
  std::string stream;
  ASSERT_TRUE(append_frame(PayloadKind::kClientRequest, std::string(1016, 'x'), &stream).ok());
  Decoded d = decode_all(stream, 1024);
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.frames.size(), 1u);
}

TEST(FrameCodec, EncoderRefusesFrameTheReceiverWouldReject) {
  std::string out = "earlier frames";
  Status s = append_frame(PayloadKind::kClientRequest, std::string(1017, 'x'), &out, 1024);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kFrameTooLarge);
  EXPECT_EQ(s.error().message, "frame too large: 1032 > 1024");
  EXPECT_EQ(out, "earlier frames");
}

TEST(FrameCodec, RejectsAnyCorruptedByte) {
  std::string stream;
  ASSERT_TRUE(append_frame(PayloadKind::kClientReply, "some reply body", &stream).ok());
  // Byte 0..3 is the length: corrupting it is caught as a size or checksum
  // problem, or leaves the decoder waiting for bytes that never come.
  for (size_t i = 0; i < stream.size(); ++i) {
    std::string corrupt = stream;
    corrupt[i] ^= 0x20;
    FrameDecoder decoder;
    decoder.feed(corrupt);
    Decoded d;
    drain(&decoder, &d);
    EXPECT_TRUE(d.frames.empty()) << "byte " << i;
    if (i >= 4) {
      ASSERT_TRUE(d.error) << "byte " << i;
      EXPECT_EQ(d.error->code, ErrorCode::kChecksumMismatch) << "byte " << i;
    } else {
      EXPECT_TRUE(d.error || !decoder.finish().ok()) << "byte " << i;
    }
  }
}

TEST(FrameCodec, ChecksumMismatchMessageNamesBothChecksums) {
  std::string stream;
  ASSERT_TRUE(append_frame(PayloadKind::kHandshake, "abc", &stream).ok());
  const std::string payload = stream.substr(kFrameHeaderBytes);
  stream.replace(4, 4, le32(0x12345678));
  Decoded d = decode_all(stream);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->message,
            fmt::format("checksum mismatch: frame header says 0x12345678, payload has {:#010x}",
                        crc32c(payload)));
}

TEST(FrameCodec, ReportsTruncationAtEveryCutWhenTheStreamEnds) {
  std::string stream;
  ASSERT_TRUE(append_frame(PayloadKind::kClientRequest, "request body", &stream).ok());
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    FrameDecoder decoder;
    decoder.feed(std::string_view(stream).substr(0, cut));
    Decoded d;
    drain(&decoder, &d);
    EXPECT_FALSE(d.error);
    EXPECT_TRUE(d.frames.empty());
    Status end = decoder.finish();
    ASSERT_FALSE(end.ok()) << cut;
    EXPECT_EQ(end.error().code, ErrorCode::kTruncated);
    EXPECT_EQ(end.error().message,
              fmt::format("truncated: stream ended {} bytes into a frame", cut));
  }
}

TEST(FrameCodec, FinishSucceedsBetweenFrames) {
  FrameDecoder decoder;
  EXPECT_TRUE(decoder.finish().ok());
  std::string stream;
  ASSERT_TRUE(append_frame(PayloadKind::kHandshake, "x", &stream).ok());
  decoder.feed(stream);
  Decoded d;
  drain(&decoder, &d);
  EXPECT_EQ(d.frames.size(), 1u);
  EXPECT_TRUE(decoder.finish().ok());
}

TEST(FrameCodec, NeverReturnsAFrameFromGarbage) {
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    raft::Rng rng(seed);
    const std::string garbage = random_string(rng, 1 + rng.below(300));
    FrameDecoder decoder(4096);
    decoder.feed(garbage);
    Decoded d;
    drain(&decoder, &d);
    EXPECT_TRUE(d.frames.empty()) << "seed " << seed;
    EXPECT_TRUE(d.error || !decoder.finish().ok()) << "seed " << seed;
  }
}

TEST(FrameCodec, DeliversGoodFramesBeforeGarbage) {
  Stream s = make_stream(6, 3, 20);
  s.bytes += le32(12) + le32(0) + "not a payload";
  Decoded d = decode_all(s.bytes);
  EXPECT_EQ(d.frames, s.frames);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->code, ErrorCode::kChecksumMismatch);
}

TEST(FrameCodec, RejectsUnsupportedVersion) {
  std::string payload = payload_of(PayloadKind::kPeerMessages, "body");
  payload[0] = 2;
  Decoded d = decode_all(raw_frame(payload));
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->code, ErrorCode::kUnsupportedVersion);
  EXPECT_EQ(d.error->message, "unsupported version 2 (this node speaks 1)");
}

TEST(FrameCodec, RejectsUnknownPayloadKind) {
  for (int kind : {0, 8, 255}) {
    std::string payload = payload_of(PayloadKind::kPeerMessages, "body");
    payload[1] = static_cast<char>(kind);
    Decoded d = decode_all(raw_frame(payload));
    ASSERT_TRUE(d.error);
    EXPECT_EQ(d.error->code, ErrorCode::kBadHeader);
    EXPECT_EQ(d.error->message, fmt::format("unknown payload kind {}", kind));
  }
}

TEST(FrameCodec, RejectsNonzeroReservedHeaderBytes) {
  for (size_t i = 2; i < kPayloadHeaderBytes; ++i) {
    std::string payload = payload_of(PayloadKind::kHandshake, "body");
    payload[i] = 1;
    Decoded d = decode_all(raw_frame(payload));
    ASSERT_TRUE(d.error) << i;
    EXPECT_EQ(d.error->code, ErrorCode::kBadHeader) << i;
  }
}

TEST(FrameCodec, RejectsPayloadShorterThanItsHeader) {
  for (size_t n = 0; n < kPayloadHeaderBytes; ++n) {
    Decoded d = decode_all(raw_frame(std::string(n, '\x01')));
    ASSERT_TRUE(d.error) << n;
    EXPECT_EQ(d.error->code, ErrorCode::kTruncated) << n;
  }
}

TEST(FrameCodec, StaysFailedAfterAnError) {
  std::string bad = raw_frame(std::string(4, '\0'));
  std::string good;
  ASSERT_TRUE(append_frame(PayloadKind::kHandshake, "fine", &good).ok());
  FrameDecoder decoder;
  decoder.feed(bad);
  Result<std::optional<Frame>> first = decoder.next();
  ASSERT_FALSE(first.ok());
  EXPECT_TRUE(decoder.failed());
  decoder.feed(good);
  for (int i = 0; i < 3; ++i) {
    Result<std::optional<Frame>> again = decoder.next();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().message, first.error().message);
  }
  Status end = decoder.finish();
  ASSERT_FALSE(end.ok());
  EXPECT_EQ(end.error().message, first.error().message);
}

// A listener reads the first frame, then hands the decoder, with whatever
// bytes of later frames arrived in the same read, to the connection's owner.
TEST(FrameCodec, MovedDecoderContinuesWhereTheOriginalStopped) {
  const Stream s = make_stream(7, 3, 30);
  const size_t cut = s.bytes.size() - 5;
  FrameDecoder first;
  first.feed(std::string_view(s.bytes).substr(0, cut));
  Result<std::optional<Frame>> frame = first.next();
  ASSERT_TRUE(frame.ok() && frame->has_value());
  Decoded d;
  d.frames.emplace_back((*frame)->kind, std::string((*frame)->payload));

  FrameDecoder second(std::move(first));
  EXPECT_EQ(first.buffered_bytes(), 0u);  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_TRUE(first.finish().ok());
  drain(&second, &d);
  second.feed(std::string_view(s.bytes).substr(cut));
  drain(&second, &d);
  ASSERT_FALSE(d.error) << d.error->message;
  EXPECT_EQ(d.frames, s.frames);

  FrameDecoder third;
  third = std::move(second);
  EXPECT_TRUE(third.finish().ok());
  third.feed(s.bytes);
  Decoded again;
  drain(&third, &again);
  EXPECT_EQ(again.frames, s.frames);
}

TEST(FrameCodec, MovedDecoderKeepsItsError) {
  FrameDecoder failed;
  failed.feed(raw_frame(std::string(3, '\0')));
  ASSERT_FALSE(failed.next().ok());
  FrameDecoder moved(std::move(failed));
  EXPECT_TRUE(moved.failed());
  EXPECT_FALSE(moved.finish().ok());
}

TEST(FrameCodec, PayloadBodyChecksTheExpectedKind) {
  const std::string payload = payload_of(PayloadKind::kClientRequest, "b");
  EXPECT_TRUE(payload_body(payload, PayloadKind::kClientRequest).ok());
  Result<std::string_view> body = payload_body(payload, PayloadKind::kClientReply);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().code, ErrorCode::kBadHeader);
  EXPECT_EQ(body.error().message, "expected a client reply payload, got a client request payload");
}

}  // namespace
}  // namespace raftkv::wire
