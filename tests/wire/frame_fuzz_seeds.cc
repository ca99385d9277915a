// Writes frame_fuzz's seed corpus into the directory given as argv[1]: valid
// streams of every payload kind, wrapped in the input layout of fuzz_input.h.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "raft/core/check.h"
#include "schema/convert.h"
#include "tests/wire/fuzz_input.h"
#include "tests/wire/wire_testing.h"

namespace raftkv::wire::fuzz {
namespace {

void write_seed(const std::filesystem::path& dir, const std::string& name,
                const std::string& stream, uint8_t chunk_seed) {
  std::string input;
  input.push_back(static_cast<char>(chunk_seed));
  input.push_back(static_cast<char>(kFixChecksums));
  input += stream;
  std::ofstream(dir / name, std::ios::binary) << input;
}

int run(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  raft::Rng rng(1);
  std::string mixed;
  for (raft::MessageType type : test::kAllMessageTypes) {
    std::string stream;
    const raft::Message m = test::full_message(type);
    RAFTKV_CHECK(append_peer_frame({&m, 1}, &stream).ok());
    write_seed(dir, fmt::format("peer_{}", static_cast<int>(type)), stream, 1);
    mixed += stream;
  }
  for (int i = 0; i < 5; ++i) {
    std::vector<raft::Message> batch(1 + rng.below(6));
    for (raft::Message& m : batch)
      m = test::random_message(rng);
    std::string stream;
    RAFTKV_CHECK(append_peer_frame(batch, &stream).ok());
    write_seed(dir, fmt::format("peer_batch_{}", i), stream, static_cast<uint8_t>(i));
  }
  {
    std::string stream;
    RAFTKV_CHECK(
        append_handshake_frame(Handshake{kProtocolVersion, 7, raft::NodeId(3)}, &stream).ok());
    write_seed(dir, "handshake", stream, 2);
    mixed += stream;
  }
  for (int i = 0; i < 5; ++i) {
    std::string stream;
    RAFTKV_CHECK(append_client_request_frame(test::random_client_request(rng), &stream).ok());
    write_seed(dir, fmt::format("client_request_{}", i), stream, 3);
    mixed += stream;
  }
  for (int i = 0; i < 5; ++i) {
    std::string stream;
    RAFTKV_CHECK(append_client_reply_frame(test::random_client_reply(rng), &stream).ok());
    write_seed(dir, fmt::format("client_reply_{}", i), stream, 4);
    mixed += stream;
  }
  for (int i = 0; i < 5; ++i) {
    const raft::Bytes payload = encode_kv_command(test::random_kv_command(rng));
    std::string stream;
    RAFTKV_CHECK(
        append_frame(PayloadKind::kKvCommand, payload.view().substr(kPayloadHeaderBytes), &stream)
            .ok());
    write_seed(dir, fmt::format("kv_command_{}", i), stream, 5);
    mixed += stream;
  }
  for (int i = 0; i < 5; ++i) {
    // Frames pad payloads to 8 bytes; a logged write decodes only unpadded,
    // so key and value sizes are picked to need no padding (41 + 16 + v).
    const std::string value(static_cast<size_t>(7 + 8 * i), static_cast<char>('a' + i));
    const raft::Bytes payload = encode_logged_write(ClientId(rng.next()), rng.next(), Op::kPut,
                                                    std::string(16, 'k'), value, rng.next());
    RAFTKV_CHECK(payload.size() % 8 == 0);
    std::string stream;
    RAFTKV_CHECK(
        append_frame(PayloadKind::kLoggedWrite, payload.view().substr(kPayloadHeaderBytes), &stream)
            .ok());
    write_seed(dir, fmt::format("logged_write_{}", i), stream, 7);
    mixed += stream;
  }
  write_seed(dir, "mixed", mixed, 6);
  return 0;
}

}  // namespace
}  // namespace raftkv::wire::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  return raftkv::wire::fuzz::run(argv[1]);
}
