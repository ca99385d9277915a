// StateMachine: what an application implements to be replicated by a
// RaftNode. All calls come from the node's Raft thread, in log order.
#pragma once

#include <string>

#include "raft/core/message.h"

namespace raftkv::raft {

class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies one committed entry (normal or no-op). Invariant:
  // e.index == applied_index() + 1. Must be deterministic.
  virtual void apply(const Entry& e) = 0;
  // An image of the state at applied_index(), for log compaction.
  virtual Bytes snapshot() const = 0;
  // Replaces the state with a snapshot's image. False (with a reason) if the
  // image cannot be decoded; the node then stops rather than run on bad state.
  virtual bool restore(const Snapshot& snap, std::string* error) = 0;
  virtual Index applied_index() const = 0;
};

}  // namespace raftkv::raft
