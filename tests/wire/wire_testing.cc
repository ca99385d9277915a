#include "tests/wire/wire_testing.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace raftkv::wire::test {
namespace {

// A value that is 0 about one time in five and otherwise spans all
// magnitudes, so varint-like or width bugs would show.
uint64_t random_u64(raft::Rng& rng) {
  if (rng.chance(0.2)) return 0;
  const uint64_t bits = 1 + rng.below(64);
  return bits == 64 ? rng.next() : rng.next() & ((uint64_t{1} << bits) - 1);
}

std::vector<uint64_t> voter_ids(const raft::SnapshotMeta& s) {
  std::vector<uint64_t> ids;
  for (raft::NodeId id : s.voters)
    ids.push_back(id.value);
  return ids;
}

}  // namespace

std::string dump(const raft::Message& m) {
  std::string out = fmt::format(
      "{{type={} from={} to={} term={} index={} log_term={} commit={} reject={} "
      "reject_hint={} hint_term={} read_round={} transfer={} snapshot={{index={} term={} "
      "voters={}}} snapshot_offset={} snapshot_data={:?} snapshot_done={} snapshot_ack={} "
      "entries=[",
      static_cast<int>(m.type), m.from, m.to, m.term, m.index, m.log_term, m.commit, m.reject,
      m.reject_hint, m.hint_term, m.read_round, m.transfer, m.snapshot.index, m.snapshot.term,
      voter_ids(m.snapshot), m.snapshot_offset, m.snapshot_data.view(), m.snapshot_done,
      m.snapshot_ack);
  for (const raft::Entry& e : m.entries) {
    out += fmt::format("{{term={} index={} type={} data={:?}}}", e.term, e.index,
                       static_cast<int>(e.type), e.data.view());
  }
  out += "]}";
  return out;
}

std::string dump(const std::vector<raft::Message>& ms) {
  std::string out;
  for (const raft::Message& m : ms)
    out += dump(m) + "\n";
  return out;
}

bool same(const raft::Message& a, const raft::Message& b) {
  return a.type == b.type && a.from == b.from && a.to == b.to && a.term == b.term &&
         a.index == b.index && a.log_term == b.log_term && a.entries == b.entries &&
         a.commit == b.commit && a.reject == b.reject && a.reject_hint == b.reject_hint &&
         a.hint_term == b.hint_term && a.read_round == b.read_round && a.transfer == b.transfer &&
         a.snapshot == b.snapshot && a.snapshot_offset == b.snapshot_offset &&
         a.snapshot_data == b.snapshot_data && a.snapshot_done == b.snapshot_done &&
         a.snapshot_ack == b.snapshot_ack;
}

bool same(const std::vector<raft::Message>& a, const std::vector<raft::Message>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i])) return false;
  }
  return true;
}

raft::Message full_message(raft::MessageType type) {
  raft::Message m;
  m.type = type;
  m.from = raft::NodeId(1);
  m.to = raft::NodeId(2);
  m.term = raft::Term(3);
  m.index = raft::Index(4);
  m.log_term = raft::Term(5);
  m.entries = {
      raft::Entry{raft::Term(6), raft::Index(5), raft::EntryType::kNoop, raft::Bytes()},
      raft::Entry{raft::Term(6), raft::Index(6), raft::EntryType::kNormal,
                  raft::Bytes(std::string_view("put x=1"))},
      raft::Entry{raft::Term(7), raft::Index(7), raft::EntryType::kNormal,
                  raft::Bytes(std::string("\0\xff\x01 binary", 10))},
  };
  m.commit = raft::Index(8);
  m.reject = true;
  m.reject_hint = raft::Index(9);
  m.hint_term = raft::Term(10);
  m.read_round = 11;
  m.transfer = true;
  m.snapshot = raft::SnapshotMeta{raft::Index(12),
                                  raft::Term(13),
                                  {raft::NodeId(1), raft::NodeId(2), raft::NodeId(~uint64_t{0})}};
  m.snapshot_offset = 14;
  m.snapshot_data = raft::Bytes(std::string_view("snapshot chunk"));
  m.snapshot_done = true;
  m.snapshot_ack = true;
  return m;
}

std::string random_bytes(raft::Rng& rng, size_t max_size) {
  std::string s(rng.below(max_size + 1), '\0');
  for (char& c : s)
    c = static_cast<char>(rng.next());
  return s;
}

raft::Message random_message(raft::Rng& rng) {
  raft::Message m;
  m.type = kAllMessageTypes[rng.below(std::size(kAllMessageTypes))];
  m.from = raft::NodeId(random_u64(rng));
  m.to = raft::NodeId(random_u64(rng));
  m.term = raft::Term(random_u64(rng));
  m.index = raft::Index(random_u64(rng));
  m.log_term = raft::Term(random_u64(rng));
  const uint64_t entries = rng.chance(0.5) ? 0 : rng.below(8);
  for (uint64_t i = 0; i < entries; ++i) {
    m.entries.push_back(
        raft::Entry{raft::Term(random_u64(rng)), raft::Index(random_u64(rng)),
                    rng.chance(0.3) ? raft::EntryType::kNoop : raft::EntryType::kNormal,
                    raft::Bytes(random_bytes(rng, 64))});
  }
  m.commit = raft::Index(random_u64(rng));
  m.reject = rng.chance(0.5);
  m.reject_hint = raft::Index(random_u64(rng));
  m.hint_term = raft::Term(random_u64(rng));
  m.read_round = random_u64(rng);
  m.transfer = rng.chance(0.5);
  if (rng.chance(0.5)) {
    m.snapshot.index = raft::Index(random_u64(rng));
    m.snapshot.term = raft::Term(random_u64(rng));
    const uint64_t voters = rng.below(8);
    for (uint64_t i = 0; i < voters; ++i)
      m.snapshot.voters.push_back(raft::NodeId(random_u64(rng)));
  }
  m.snapshot_offset = random_u64(rng);
  if (rng.chance(0.5)) m.snapshot_data = raft::Bytes(random_bytes(rng, 256));
  m.snapshot_done = rng.chance(0.5);
  m.snapshot_ack = rng.chance(0.5);
  return m;
}

ClientRequest random_client_request(raft::Rng& rng) {
  ClientRequest r;
  r.request_id = random_u64(rng);
  r.client_id = ClientId(random_u64(rng));
  r.seq = random_u64(rng);
  r.op = static_cast<Op>(rng.below(5));
  r.key = random_bytes(rng, 32);
  r.value = random_bytes(rng, 128);
  return r;
}

ClientReply random_client_reply(raft::Rng& rng) {
  ClientReply r;
  r.request_id = random_u64(rng);
  r.status = static_cast<ReplyStatus>(rng.below(8));
  if (rng.chance(0.5)) r.value = random_bytes(rng, 128);
  r.leader_hint = raft::NodeId(random_u64(rng));
  if (rng.chance(0.5)) r.leader_address = fmt::format("10.0.0.{}:7000", rng.below(256));
  // FlatBuffers strings may hold any bytes, NUL included.
  if (rng.chance(0.5)) r.message = random_bytes(rng, 40);
  if (rng.chance(0.5)) {
    r.node_status = NodeStatus{raft::NodeId(random_u64(rng)), static_cast<raft::Role>(rng.below(4)),
                               raft::Term(random_u64(rng)),   raft::NodeId(random_u64(rng)),
                               raft::Index(random_u64(rng)),  raft::Index(random_u64(rng))};
  }
  return r;
}

KvCommand random_kv_command(raft::Rng& rng) {
  KvCommand c;
  c.client_id = ClientId(random_u64(rng));
  c.seq = random_u64(rng);
  c.op = static_cast<Op>(rng.below(4));
  c.key = random_bytes(rng, 32);
  c.value = random_bytes(rng, 128);
  c.timestamp_ms = random_u64(rng);
  return c;
}

}  // namespace raftkv::wire::test
