// libFuzzer target for everything that parses bytes from the network or the
// log: FrameDecoder fed in random-sized chunks, then every decode_* on every
// payload. Besides "never crash, never leak, no undefined behaviour" it checks
// that whatever decodes re-encodes to something that decodes the same.
// Input layout: fuzz_input.h. How to build and run: README.md.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "raft/core/check.h"
#include "raft/core/random.h"
#include "schema/convert.h"
#include "schema/crc32c.h"
#include "schema/frame.h"
#include "tests/wire/fuzz_input.h"
#include "tests/wire/wire_testing.h"

namespace raftkv::wire::fuzz {
namespace {

uint32_t load_le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

void fix_checksums(std::string* stream) {
  size_t pos = 0;
  while (stream->size() - pos >= kFrameHeaderBytes) {
    const uint32_t length = load_le32(stream->data() + pos);
    if (length > stream->size() - pos - kFrameHeaderBytes) return;
    const uint32_t crc = crc32c(std::string_view(stream->data() + pos + kFrameHeaderBytes, length));
    for (int i = 0; i < 4; ++i)
      (*stream)[pos + 4 + i] = static_cast<char>(crc >> (8 * i));
    pos += kFrameHeaderBytes + length;
  }
}

std::string only_payload(const std::string& stream) {
  FrameDecoder decoder;
  decoder.feed(stream);
  Result<std::optional<Frame>> frame = decoder.next();
  RAFTKV_CHECK(frame.ok() && frame->has_value());
  return std::string((*frame)->payload);
}

// Decodes the payload every way; what decodes must survive a second trip.
void decode_everything(std::string_view payload) {
  if (auto messages = decode_peer_messages(payload); messages.ok()) {
    std::string stream;
    RAFTKV_CHECK(append_peer_frame(*messages, &stream).ok());
    auto again = decode_peer_messages(only_payload(stream));
    RAFTKV_CHECK(again.ok() && test::same(*messages, *again));
  }
  if (auto handshake = decode_handshake(payload); handshake.ok()) {
    std::string stream;
    RAFTKV_CHECK(append_handshake_frame(*handshake, &stream).ok());
    auto again = decode_handshake(only_payload(stream));
    RAFTKV_CHECK(again.ok() && *again == *handshake);
  }
  if (auto request = decode_client_request(payload); request.ok()) {
    std::string stream;
    RAFTKV_CHECK(append_client_request_frame(*request, &stream).ok());
    auto again = decode_client_request(only_payload(stream));
    RAFTKV_CHECK(again.ok() && *again == *request);
  }
  if (auto reply = decode_client_reply(payload); reply.ok()) {
    std::string stream;
    RAFTKV_CHECK(append_client_reply_frame(*reply, &stream).ok());
    auto again = decode_client_reply(only_payload(stream));
    RAFTKV_CHECK(again.ok() && *again == *reply);
  }
  if (auto command = decode_kv_command(payload); command.ok()) {
    raft::Bytes bytes = encode_kv_command(*command);
    auto again = decode_kv_command(bytes.view());
    RAFTKV_CHECK(again.ok() && *again == *command);
  }
  if (auto logged = decode_log_command(payload);
      logged.ok() && payload[1] == static_cast<char>(PayloadKind::kLoggedRequest)) {
    // A logged request is its timestamp and the request's bytes, nothing else.
    raft::Bytes bytes = encode_logged_request(payload.substr(16), logged->timestamp_ms);
    RAFTKV_CHECK(bytes.view() == payload);
  }
  if (auto logged = decode_log_command(payload);
      logged.ok() && payload[1] == static_cast<char>(PayloadKind::kLoggedWrite)) {
    // A logged write has one encoding: its fields, key and value, nothing else.
    raft::Bytes bytes = encode_logged_write(logged->client_id, logged->seq, logged->op, logged->key,
                                            logged->value, logged->timestamp_ms);
    RAFTKV_CHECK(bytes.view() == payload);
  }
}

// Returns false once the decoder has failed.
bool drain(FrameDecoder* decoder) {
  while (true) {
    Result<std::optional<Frame>> frame = decoder->next();
    if (!frame.ok()) return false;
    if (!frame->has_value()) return true;
    decode_everything((*frame)->payload);
  }
}

}  // namespace
}  // namespace raftkv::wire::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace raftkv::wire;
  if (size < fuzz::kInputHeaderBytes) return 0;
  raftkv::raft::Rng rng(data[0]);
  const uint8_t flags = data[1];
  std::string stream(reinterpret_cast<const char*>(data) + fuzz::kInputHeaderBytes,
                     size - fuzz::kInputHeaderBytes);
  if (flags & fuzz::kFixChecksums) fuzz::fix_checksums(&stream);

  FrameDecoder decoder((flags & fuzz::kSmallLimit) ? 4096 : kMaxFrameBytes);
  size_t pos = 0;
  bool alive = true;
  while (pos < stream.size() && alive) {
    const size_t chunk =
        std::min<size_t>(1 + rng.below(rng.chance(0.5) ? 16 : 512), stream.size() - pos);
    decoder.feed(std::string_view(stream).substr(pos, chunk));
    pos += chunk;
    alive = fuzz::drain(&decoder);
  }
  (void)decoder.finish();

  // The bytes as one payload too, so the decoders see inputs that no frame
  // header constrains.
  if (flags & fuzz::kMisalign) {
    const std::string shifted = " " + stream;
    fuzz::decode_everything(std::string_view(shifted).substr(1));
  } else {
    fuzz::decode_everything(stream);
  }
  return 0;
}
