// Helpers shared by the wire tests, the fuzz target and its seed generator:
// values with every field set, random values from a seed, and comparisons
// that print every field when they fail.
#pragma once

#include <string>
#include <vector>

#include "raft/core/message.h"
#include "raft/core/random.h"
#include "schema/client_protocol.h"
#include "schema/convert.h"

namespace raftkv::wire::test {

// Every field of m, in a stable order; for failure messages.
std::string dump(const raft::Message& m);
std::string dump(const std::vector<raft::Message>& ms);

// Field-by-field equality; raft::Message has no operator==.
bool same(const raft::Message& a, const raft::Message& b);
bool same(const std::vector<raft::Message>& a, const std::vector<raft::Message>& b);

// A message of `type` with every field set to a distinct non-default value.
raft::Message full_message(raft::MessageType type);

std::string random_bytes(raft::Rng& rng, size_t max_size);
// Random type and fields; each field is left at its default now and then, so
// that absent fields are exercised too.
raft::Message random_message(raft::Rng& rng);
ClientRequest random_client_request(raft::Rng& rng);
ClientReply random_client_reply(raft::Rng& rng);
KvCommand random_kv_command(raft::Rng& rng);

inline constexpr raft::MessageType kAllMessageTypes[] = {
    raft::MessageType::kPreVote,   raft::MessageType::kPreVoteResponse,
    raft::MessageType::kVote,      raft::MessageType::kVoteResponse,
    raft::MessageType::kAppend,    raft::MessageType::kAppendResponse,
    raft::MessageType::kHeartbeat, raft::MessageType::kHeartbeatResponse,
    raft::MessageType::kSnapshot,  raft::MessageType::kTimeoutNow,
};
static_assert(std::size(kAllMessageTypes) == raft::kMessageTypeCount);

}  // namespace raftkv::wire::test
