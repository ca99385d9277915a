#include "schema/frame.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "schema/crc32c.h"

namespace raftkv::wire {
namespace {

// A fresh buffer's size; a read of a typical batch fits without growing.
constexpr size_t kInitialCapacity = 64 << 10;
// An idle decoder gives back a buffer larger than this, so that one large
// snapshot chunk does not pin its memory for the life of the connection.
constexpr size_t kRetainedCapacity = 1 << 20;

constexpr size_t kPayloadAlignment = 8;

uint32_t load_le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

void store_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}

bool is_known_kind(uint8_t kind) {
  return kind >= static_cast<uint8_t>(PayloadKind::kPeerMessages) &&
         kind <= static_cast<uint8_t>(kNewestPayloadKind);
}

// Checks version, kind and reserved bytes of a payload's header.
Result<PayloadKind> check_payload_header(std::string_view payload) {
  if (payload.size() < kPayloadHeaderBytes) {
    return Error{ErrorCode::kTruncated,
                 fmt::format("truncated: payload of {} bytes is shorter than its {}-byte header",
                             payload.size(), kPayloadHeaderBytes)};
  }
  const auto version = static_cast<uint8_t>(payload[0]);
  if (version != kProtocolVersion) {
    return Error{
        ErrorCode::kUnsupportedVersion,
        fmt::format("unsupported version {} (this node speaks {})", version, kProtocolVersion)};
  }
  const auto kind = static_cast<uint8_t>(payload[1]);
  if (!is_known_kind(kind)) {
    return Error{ErrorCode::kBadHeader, fmt::format("unknown payload kind {}", kind)};
  }
  for (size_t i = 2; i < kPayloadHeaderBytes; ++i) {
    if (payload[i] != 0) {
      return Error{ErrorCode::kBadHeader,
                   fmt::format("reserved payload header byte {} is {}, not 0", i,
                               static_cast<uint8_t>(payload[i]))};
    }
  }
  return static_cast<PayloadKind>(kind);
}

size_t padded_payload_size(std::string_view body) {
  const size_t n = kPayloadHeaderBytes + body.size();
  return (n + kPayloadAlignment - 1) / kPayloadAlignment * kPayloadAlignment;
}

}  // namespace

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kFrameTooLarge:
      return "frame too large";
    case ErrorCode::kChecksumMismatch:
      return "checksum mismatch";
    case ErrorCode::kTruncated:
      return "truncated";
    case ErrorCode::kUnsupportedVersion:
      return "unsupported version";
    case ErrorCode::kBadHeader:
      return "bad payload header";
    case ErrorCode::kVerificationFailed:
      return "flatbuffer verification failed";
    case ErrorCode::kInvalidValue:
      return "invalid value";
  }
  return "unknown error";
}

std::string_view to_string(PayloadKind kind) {
  switch (kind) {
    case PayloadKind::kPeerMessages:
      return "peer messages";
    case PayloadKind::kHandshake:
      return "handshake";
    case PayloadKind::kClientRequest:
      return "client request";
    case PayloadKind::kClientReply:
      return "client reply";
    case PayloadKind::kKvCommand:
      return "kv command";
    case PayloadKind::kLoggedWrite:
      return "logged write";
    case PayloadKind::kLoggedRequest:
      return "logged request";
  }
  return "unknown payload kind";
}

void write_payload_header(PayloadKind kind, char* out) {
  out[0] = static_cast<char>(kProtocolVersion);
  out[1] = static_cast<char>(kind);
  std::memset(out + 2, 0, kPayloadHeaderBytes - 2);
}

void append_payload(PayloadKind kind, std::string_view body, std::string* out) {
  const size_t size = padded_payload_size(body);
  const size_t start = out->size();
  out->resize(start + size);  // zero-fills the padding
  char* p = out->data() + start;
  write_payload_header(kind, p);
  if (!body.empty()) std::memcpy(p + kPayloadHeaderBytes, body.data(), body.size());
}

Status append_frame(PayloadKind kind, std::string_view body, std::string* out,
                    size_t max_frame_bytes) {
  const size_t size = padded_payload_size(body);
  const size_t limit = std::min(max_frame_bytes, kFrameBytesCeiling);
  if (size > limit) {
    return Error{ErrorCode::kFrameTooLarge, fmt::format("frame too large: {} > {}", size, limit)};
  }
  const size_t start = out->size();
  out->resize(start + kFrameHeaderBytes);
  append_payload(kind, body, out);
  char* header = out->data() + start;
  store_le32(header, static_cast<uint32_t>(size));
  store_le32(header + 4, crc32c(std::string_view(header + kFrameHeaderBytes, size)));
  return {};
}

Result<std::string_view> payload_body(std::string_view payload, PayloadKind expected) {
  Result<PayloadKind> kind = check_payload_header(payload);
  if (!kind.ok()) return kind.error();
  if (*kind != expected) {
    return Error{ErrorCode::kBadHeader, fmt::format("expected a {} payload, got a {} payload",
                                                    to_string(expected), to_string(*kind))};
  }
  return payload.substr(kPayloadHeaderBytes);
}

FrameDecoder::FrameDecoder(size_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {
  RAFTKV_CHECK(max_frame_bytes >= kPayloadHeaderBytes && max_frame_bytes <= kFrameBytesCeiling);
}

FrameDecoder::FrameDecoder(FrameDecoder&& other) noexcept
    : max_frame_bytes_(other.max_frame_bytes_),
      error_(std::exchange(other.error_, std::nullopt)),
      buf_(std::move(other.buf_)),
      capacity_(std::exchange(other.capacity_, 0)),
      begin_(std::exchange(other.begin_, 0)),
      end_(std::exchange(other.end_, 0)) {}

FrameDecoder& FrameDecoder::operator=(FrameDecoder&& other) noexcept {
  if (this != &other) {
    max_frame_bytes_ = other.max_frame_bytes_;
    error_ = std::exchange(other.error_, std::nullopt);
    buf_ = std::move(other.buf_);
    capacity_ = std::exchange(other.capacity_, 0);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
  }
  return *this;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  std::span<char> space = prepare(bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

std::span<char> FrameDecoder::prepare(size_t min_bytes) {
  make_room(min_bytes);
  return {buf_.get() + end_, capacity_ - end_};
}

void FrameDecoder::commit(size_t bytes) {
  RAFTKV_CHECK(bytes <= capacity_ - end_);
  end_ += bytes;
}

void FrameDecoder::make_room(size_t min_bytes) {
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (capacity_ > kRetainedCapacity && min_bytes <= kRetainedCapacity) {
      buf_.reset();
      capacity_ = 0;
    }
  }
  if (capacity_ - end_ >= min_bytes) return;
  const size_t live = end_ - begin_;
  if (live + min_bytes <= capacity_) {
    std::memmove(buf_.get(), buf_.get() + begin_, live);
  } else {
    const size_t capacity = std::max({live + min_bytes, 2 * capacity_, kInitialCapacity});
    // operator new[] aligns to __STDCPP_DEFAULT_NEW_ALIGNMENT__ (16 on the
    // platforms we build for), so a frame at offset 0 has an aligned body.
    auto buf = std::make_unique_for_overwrite<char[]>(capacity);
    if (live > 0) std::memcpy(buf.get(), buf_.get() + begin_, live);
    buf_ = std::move(buf);
    capacity_ = capacity;
  }
  begin_ = 0;
  end_ = live;
}

Error FrameDecoder::fail(Error error) {
  error_ = error;
  return error;
}

Result<std::optional<Frame>> FrameDecoder::next() {
  if (error_) return *error_;
  const size_t available = end_ - begin_;
  if (available < kFrameHeaderBytes) return std::optional<Frame>();
  const char* header = buf_.get() + begin_;
  const uint32_t length = load_le32(header);
  // Checked before waiting for the payload: a hostile length must not make
  // us buffer gigabytes first.
  if (length > max_frame_bytes_) {
    return fail({ErrorCode::kFrameTooLarge,
                 fmt::format("frame too large: {} > {}", length, max_frame_bytes_)});
  }
  if (available - kFrameHeaderBytes < length) return std::optional<Frame>();

  const std::string_view payload(header + kFrameHeaderBytes, length);
  const uint32_t expected_crc = load_le32(header + 4);
  const uint32_t actual_crc = crc32c(payload);
  if (actual_crc != expected_crc) {
    return fail({ErrorCode::kChecksumMismatch,
                 fmt::format("checksum mismatch: frame header says {:#010x}, payload has {:#010x}",
                             expected_crc, actual_crc)});
  }
  Result<PayloadKind> kind = check_payload_header(payload);
  if (!kind.ok()) return fail(kind.error());
  begin_ += kFrameHeaderBytes + length;
  return std::optional<Frame>(Frame{*kind, payload});
}

Status FrameDecoder::finish() const {
  if (error_) return *error_;
  if (begin_ != end_) {
    return Error{ErrorCode::kTruncated,
                 fmt::format("truncated: stream ended {} bytes into a frame", end_ - begin_)};
  }
  return {};
}

}  // namespace raftkv::wire
