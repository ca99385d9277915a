// ProposalWaiters: the callers waiting for their proposals, by log index.
// RaftNode keeps one; the KV simulator (tests/kvsim) keeps one per node in
// place of RaftNode, so the simulation runs this very code.
//
// A proposal is identified by the (index, term) its entry got from the
// leader (Raft §5.3: an index and a term name one entry in every log). When
// the entry at that index is applied, the waiter learns whether it was its
// own entry (same term) or another leader's that overwrote it.
#pragma once

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>

#include "raft/core/types.h"

namespace raftkv::raft {

template <class Done>
class ProposalWaiters {
 public:
  // Waits for the entry (index, term). Returns the waiter this one replaces
  // at `index`, if any: its entry was overwritten, so it was not applied.
  std::optional<Done> add(Index index, Term term, Done done) {
    auto it = from(index);
    if (it != waiters_.end() && it->index == index) {
      return std::exchange(*it, Waiter{index, term, std::move(done)}).done;
    }
    waiters_.insert(it, Waiter{index, term, std::move(done)});  // at the back, in practice
    return std::nullopt;
  }

  struct Taken {
    Done done;
    bool applied;  // the applied entry is the waiter's own (same term)
  };
  // The entry (index, term) was applied: removes and returns the waiter at
  // `index`, if any.
  std::optional<Taken> take(Index index, Term term) {
    auto it = from(index);
    if (it == waiters_.end() || it->index != index) return std::nullopt;
    Taken t{std::move(it->done), it->term == term};
    waiters_.erase(it);  // the front, in practice: O(1)
    return t;
  }

  // A snapshot through `index` was installed: removes the waiters at or
  // below it and calls f(done) for each, in index order. f may add().
  template <class F>
  void take_through(Index index, F f) {
    while (!waiters_.empty() && waiters_.front().index <= index) {
      Done done = std::move(waiters_.front().done);
      waiters_.pop_front();
      f(std::move(done));
    }
  }

  size_t size() const { return waiters_.size(); }

 private:
  struct Waiter {
    Index index;
    Term term;
    Done done;
  };
  // The first waiter at or after `index`. Proposals add at the back and
  // applies take from the front, so both ends are checked before a binary
  // search (a deque's iterator arithmetic made that search 2.9% of a
  // leader's Raft thread under saturating puts).
  auto from(Index index) {
    if (waiters_.empty() || waiters_.back().index < index) return waiters_.end();
    if (waiters_.front().index >= index) return waiters_.begin();
    return std::lower_bound(waiters_.begin(), waiters_.end(), index,
                            [](const Waiter& w, Index i) { return w.index < i; });
  }

  // Invariant: sorted by index, at most one waiter per index. A deque:
  // proposals arrive at the back and are applied from the front, and the
  // deque allocates one 512-byte block per ten waiters where a map
  // allocates (and rebalances) a node per waiter.
  std::deque<Waiter> waiters_;
};

}  // namespace raftkv::raft
