// Stable, human-readable dumps of core state and messages, for traces and
// failure reports. The format is part of the trace tests' expected output.
#include <fmt/format.h>

#include "raft/core/raft.h"

namespace raftkv::raft {

const char* to_string(Role r) {
  switch (r) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "?";
}

const char* to_string(MessageType t) {
  switch (t) {
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResponse:
      return "PreVoteResp";
    case MessageType::kVote:
      return "Vote";
    case MessageType::kVoteResponse:
      return "VoteResp";
    case MessageType::kAppend:
      return "App";
    case MessageType::kAppendResponse:
      return "AppResp";
    case MessageType::kHeartbeat:
      return "Heartbeat";
    case MessageType::kHeartbeatResponse:
      return "HeartbeatResp";
    case MessageType::kSnapshot:
      return "Snap";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
  }
  return "?";
}

std::string describe(const Message& m) {
  std::string s = fmt::format("{}->{} {} term={}", m.from, m.to, to_string(m.type), m.term);
  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kVote:
      s += fmt::format(" last={}/{}{}", m.index, m.log_term, m.transfer ? " transfer" : "");
      break;
    case MessageType::kPreVoteResponse:
    case MessageType::kVoteResponse:
      s += m.reject ? " rejected" : " granted";
      break;
    case MessageType::kAppend:
      s += fmt::format(" prev={}/{} commit={} entries=[", m.index, m.log_term, m.commit);
      for (size_t k = 0; k < m.entries.size(); ++k) {
        const Entry& e = m.entries[k];
        s += fmt::format("{}{}/{}", k ? " " : "", e.index, e.term);
      }
      s += "]";
      break;
    case MessageType::kAppendResponse:
      if (m.snapshot_ack) {
        s += fmt::format(" snapshot={}/{} acked={}", m.snapshot.index, m.snapshot.term,
                         m.snapshot_offset);
      } else if (m.reject) {
        s += fmt::format(" reject={} hint={}/{}", m.index, m.reject_hint, m.hint_term);
      } else {
        s += fmt::format(" index={}", m.index);
      }
      break;
    case MessageType::kHeartbeat:
      s += fmt::format(" commit={} heartbeat={} round={}", m.commit, m.index, m.read_round);
      break;
    case MessageType::kHeartbeatResponse:
      s += fmt::format(" heartbeat={} round={}", m.index, m.read_round);
      break;
    case MessageType::kSnapshot:
      s += fmt::format(" snapshot={}/{} offset={} len={}{}", m.snapshot.index, m.snapshot.term,
                       m.snapshot_offset, m.snapshot_data.size(), m.snapshot_done ? " done" : "");
      break;
    case MessageType::kTimeoutNow:
      break;
  }
  return s;
}

std::string Raft::describe() const {
  std::string s =
      fmt::format("node {}: {} term={} vote={} leader={} log=[{}..{}] commit={} applied={}", id_,
                  to_string(role_), term_, vote_, leader_, log_.first_index(), log_.last_index(),
                  log_.committed(), log_.applied());
  static const char* kStates[] = {"probe", "replicate", "snapshot"};
  for (auto& [n, pr] : progress_) {
    if (n == id_) continue;
    s += fmt::format(" [{}: {} match={} next={} inflight={}{}{}", n,
                     kStates[static_cast<int>(pr.state)], pr.match, pr.next, pr.inflights.count(),
                     pr.probe_sent ? " probe_sent" : "", pr.recent_active ? " active" : "");
    if (pr.state == ProgressState::kSnapshot) {
      s += fmt::format(" snap={}/{} size={} acked={} sent={}{}", pr.snapshot.meta.index,
                       pr.snapshot.meta.term, pr.snapshot.data.size(), pr.snapshot_acked,
                       pr.snapshot_sent, pr.snapshot_final_sent ? " final" : "");
    }
    s += "]";
  }
  return s;
}

}  // namespace raftkv::raft
