// Helpers for the KV state tests: a seeded command workload, applying it in
// runs, and copying a live RocksDB directory as a crash would leave it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kvserver/kv_state_machine.h"
#include "raft/core/check.h"
#include "raft/core/message.h"
#include "schema/convert.h"

namespace raftkv::kv::testing {

inline raft::Entry command_entry(uint64_t index, const wire::KvCommand& c) {
  return raft::Entry{raft::Term(1), raft::Index(index), raft::EntryType::kNormal,
                     wire::encode_kv_command(c)};
}

// The same command as older leaders logged a client's write: the request's
// payload behind the timestamp (PayloadKind::kLoggedRequest).
inline raft::Entry logged_entry(uint64_t index, const wire::KvCommand& c, uint64_t request_id) {
  wire::ClientRequest req{request_id, c.client_id, c.seq, c.op, c.key, c.value};
  std::string stream;
  RAFTKV_CHECK(wire::append_client_request_frame(req, &stream).ok());
  return raft::Entry{raft::Term(1), raft::Index(index), raft::EntryType::kNormal,
                     wire::encode_logged_request(
                         std::string_view(stream).substr(wire::kFrameHeaderBytes), c.timestamp_ms)};
}

// The same command as the leader logs a client's write now
// (PayloadKind::kLoggedWrite).
inline raft::Entry written_entry(uint64_t index, const wire::KvCommand& c) {
  return raft::Entry{
      raft::Term(1), raft::Index(index), raft::EntryType::kNormal,
      wire::encode_logged_write(c.client_id, c.seq, c.op, c.key, c.value, c.timestamp_ms)};
}

// Applies one entry as its own run, as the simulator's nodes do (they
// answer each waiter right after its entry).
inline void apply_one(KvStateMachine& sm, const raft::Entry& e) {
  sm.apply(e);
  sm.applied_batch_done();
}
inline void apply_each(KvStateMachine& sm, const std::vector<raft::Entry>& es) {
  for (const raft::Entry& e : es)
    apply_one(sm, e);
}

inline wire::KvCommand make_command(uint64_t client, uint64_t seq, wire::Op op, std::string key,
                                    std::string value, uint64_t ts) {
  wire::KvCommand c;
  c.client_id = wire::ClientId(client);
  c.seq = seq;
  c.op = op;
  c.key = std::move(key);
  c.value = std::move(value);
  c.timestamp_ms = ts;
  return c;
}

struct WorkloadOptions {
  size_t entries = 1000;
  size_t keys = 24;
  // Writes a value of kMaxValueBytes once, so appends to it are refused.
  bool huge_value = false;
};

// Entries 1..n: puts, appends and deletes from clients 0..5 (0: no
// session), retries of earlier seqs, no-ops, undecodable entries, and log
// time that sometimes jumps past the session TTL. Deterministic per seed.
inline std::vector<raft::Entry> make_workload(uint64_t seed, const WorkloadOptions& o) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> seqs(6, 0);
  uint64_t ts = 1'000'000;
  std::vector<raft::Entry> out;
  for (uint64_t i = 1; i <= o.entries; ++i) {
    uint64_t r = rng() % 100;
    if (r < 3) {
      out.push_back(raft::Entry{raft::Term(1), raft::Index(i), raft::EntryType::kNoop, {}});
      continue;
    }
    if (r < 5) {
      out.push_back(raft::Entry{raft::Term(1), raft::Index(i), raft::EntryType::kNormal,
                                raft::Bytes(std::string("\x07not a command"))});
      continue;
    }
    ts += rng() % 2000;
    if (rng() % 300 == 0) ts += 2 * kSessionTtlMs;  // every session expires
    uint64_t client = rng() % 6;
    uint64_t seq;
    if (client != 0 && seqs[client] > 0 && rng() % 8 == 0) {
      seq = seqs[client] - rng() % std::min<uint64_t>(seqs[client], 2);  // a retry
    } else {
      seq = client == 0 ? 0 : ++seqs[client];
    }
    uint64_t k = rng() % o.keys;
    // Some keys hold a NUL and a 0xff byte.
    std::string key =
        k % 7 == 3 ? std::string("bin\0\xff", 5) + std::to_string(k) : fmt::format("key{}", k);
    std::string value(rng() % 40, '\0');
    for (char& ch : value)
      ch = static_cast<char>('a' + rng() % 26);
    wire::Op op = wire::Op::kPut;
    uint64_t what = rng() % 10;
    if (what >= 4) op = wire::Op::kAppend;
    if (what >= 8) op = wire::Op::kDelete;
    if (o.huge_value && i == o.entries / 3) {
      op = wire::Op::kPut;
      key = "huge";
      value.assign(kMaxValueBytes, 'h');
    }
    if (o.huge_value && i > o.entries / 3 && rng() % 50 == 0) {
      op = wire::Op::kAppend;
      key = "huge";
    }
    out.push_back(command_entry(i, make_command(client, seq, op, key, value, ts)));
  }
  return out;
}

// Copies a RocksDB directory that is open and idle (no write in progress):
// the files exactly as a killed process would leave them.
inline void copy_dir(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  for (const auto& e : std::filesystem::directory_iterator(from)) {
    if (e.is_regular_file()) {
      std::filesystem::copy_file(e.path(), to / e.path().filename(),
                                 std::filesystem::copy_options::overwrite_existing);
    }
  }
}

// copy_dir while RocksDB may be flushing or compacting in the background:
// retried until no file appeared, vanished or changed size during the copy,
// so that the copy is a state the directory really was in.
inline void copy_dir_settled(const std::filesystem::path& from, const std::filesystem::path& to) {
  auto listing = [&] {
    std::map<std::string, uintmax_t> files;
    for (const auto& e : std::filesystem::directory_iterator(from)) {
      if (e.is_regular_file()) files[e.path().filename().string()] = e.file_size();
    }
    return files;
  };
  for (;;) {
    try {
      auto before = listing();
      std::filesystem::remove_all(to);
      copy_dir(from, to);
      if (listing() == before) return;
    } catch (const std::filesystem::filesystem_error&) {
      // a file vanished while being listed or copied: again
    }
  }
}

}  // namespace raftkv::kv::testing
