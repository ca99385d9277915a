// Linearizability checking by search: Wing & Gong's algorithm with Lowe's
// memoization (the approach Porcupine also takes), plus pruning specific to
// the KV model.
//
// 1. The history is split by key. Linearizability is local and operations on
//    different keys commute, so the history is linearizable iff every key's
//    sub-history is. Keys are checked smallest first.
// 2. Per key, every operation contributes a call event and a return event.
//    The events are sorted by time into a doubly linked list; at equal times
//    calls sort before returns, so touching intervals count as concurrent.
//    Unknown-outcome operations return at +infinity: they may be linearized
//    anywhere after their call, and "never" is the same as "last" since no
//    operation after it could observe it.
// 3. Depth-first search. The candidates for the next linearization point are
//    the calls before the first return event still in the list (every
//    operation that must precede them is already linearized). Linearizing a
//    candidate whose model step is legal unlinks its two events; when no
//    candidate works, the last choice is undone and its events relinked
//    (dancing-links style, O(1)). An empty list means a linearization exists.
// 4. Memoization: the rest of the search depends only on the configuration
//    (set of linearized operations, model state), so a configuration seen
//    before, which therefore failed, is not explored again. The set is a
//    bitset with an incrementally maintained Zobrist hash, stored compactly;
//    the state is the id of an interned value.
//
// Pruning, each justified where it is implemented:
//   * a legal Get is never a wrong choice, so no alternative to it is tried;
//   * a Get whose value can no longer be produced kills the configuration;
//   * writes no Get can observe are dropped (unknown outcome) or only placed
//     right before a Put/Delete that hides them ("blind" writes);
//   * a read of a value that every possible producer had overwritten before
//     the read began is refuted up front, without search.
#include "lincheck.h"

#include <algorithm>
#include <deque>
#include <iomanip>
#include <ostream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace raftkv::lincheck {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kClockCheckInterval = 1024;               // Search steps between clock reads.
constexpr size_t kMemoryBudgetBytes = size_t{1} << 30;       // Per key: memo cache + values.
constexpr size_t kPruneScanBudgetBytes = size_t{256} << 20;  // Read bytes x Append lengths.
constexpr size_t kMaxAppendLengths = 64;   // Distinct Append value lengths indexed per key.
constexpr size_t kMaxProducedStates = 16;  // Read states one Append value may produce.
constexpr size_t kMaxChainSteps = 256;     // Per read state, see Search::chain_reaches.
constexpr size_t kMaxOverwriteScan = 64;   // Writes examined per producer by the read refutation.
constexpr size_t kMaxExplainedOps = 400;
constexpr size_t kMaxShownValueBytes = 40;

bool has_unknown_outcome(const Operation& op) {
  return op.outcome_unknown || op.ret == kUnknownReturn;
}

// splitmix64 finalizer: a cheap, well-mixing 64-bit hash.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Interns values so that a model state is a small int: equal ids <=> equal
// values. Id kAbsent stands for the absent key.
class ValueTable {
 public:
  static constexpr int32_t kAbsent = 0;

  int32_t intern(std::string value) {
    if (auto it = index_.find(value); it != index_.end()) return it->second;
    bytes_ += value.capacity() + sizeof(std::string) + 4 * sizeof(void*);
    values_.push_back(std::move(value));
    const auto id = static_cast<int32_t>(values_.size());
    index_.emplace(values_.back(), id);
    return id;
  }

  // The state reached by appending `suffix` to state `id`.
  int32_t append(int32_t id, std::string_view suffix) {
    const std::string_view base = id == kAbsent ? std::string_view() : value(id);
    std::string joined;
    joined.reserve(base.size() + suffix.size());
    joined.append(base).append(suffix);
    return intern(std::move(joined));
  }

  const std::string& value(int32_t id) const { return values_[static_cast<size_t>(id) - 1]; }
  int32_t size() const { return static_cast<int32_t>(values_.size()); }  // Largest id.
  size_t bytes() const { return bytes_; }

 private:
  std::deque<std::string> values_;  // values_[id - 1]. A deque never moves its
                                    // elements, so the views in index_ stay valid.
  std::unordered_map<std::string_view, int32_t> index_;
  size_t bytes_ = 0;
};

// Set of linearized operations, numbered in call order. Besides the bitset it
// tracks full_ (all words below it are all ones) and top_ (all words from it
// on are zero). The search mostly linearizes in call order, so the words in
// between, which alone identify the set, are few even for huge histories.
class OpSet {
 public:
  explicit OpSet(size_t size) : words_((size + 63) / 64, 0), zobrist_(size) {
    for (size_t i = 0; i < size; ++i) {
      zobrist_[i] = mix64(i ^ 0x5bd1e995a5a5a5a5ULL);
    }
  }

  void flip(int32_t op) {
    const auto w = static_cast<size_t>(op) / 64;
    words_[w] ^= uint64_t{1} << (op % 64);
    hash_ ^= zobrist_[op];
    if (words_[w] >> (op % 64) & 1) {
      top_ = std::max(top_, w + 1);
      while (full_ < words_.size() && words_[full_] == ~uint64_t{0}) {
        ++full_;
      }
    } else {
      full_ = std::min(full_, w);
      while (top_ > 0 && words_[top_ - 1] == 0) {
        --top_;
      }
    }
  }

  // Zobrist hash: XOR of a random key per member.
  uint64_t hash() const { return hash_; }
  // Canonical encoding: the set equals another iff (offset, middle) are equal.
  size_t offset() const { return full_; }
  std::span<const uint64_t> middle() const {
    return std::span(words_).subspan(full_, top_ - full_);
  }

 private:
  std::vector<uint64_t> words_;
  std::vector<uint64_t> zobrist_;
  uint64_t hash_ = 0;
  size_t full_ = 0;  // Invariant: full_ <= top_.
  size_t top_ = 0;
};

// Set of visited configurations (set of linearized ops, state): an
// open-addressing hash table over flat arrays.
class ConfigCache {
 public:
  // Inserts the configuration; returns false if it was already present.
  bool insert(const OpSet& set, int32_t state) {
    const uint64_t hash = set.hash() ^ mix64(static_cast<uint64_t>(state) + 0x243f6a8885a308d3ULL);
    const auto middle = set.middle();
    const size_t mask = slots_.size() - 1;
    for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
      const uint32_t index = slots_[slot];
      if (index == kEmpty) break;
      const Entry& e = entries_[index];
      if (e.hash == hash && e.state == state && e.offset == set.offset() &&
          e.length == middle.size() &&
          std::equal(middle.begin(), middle.end(), words_.begin() + e.words)) {
        return false;
      }
    }
    entries_.push_back(Entry{hash, words_.size(), set.offset(), middle.size(), state});
    words_.insert(words_.end(), middle.begin(), middle.end());
    if (2 * entries_.size() > slots_.size()) {
      grow();  // Also places the new entry.
    } else {
      place(static_cast<uint32_t>(entries_.size() - 1));
    }
    return true;
  }

  size_t bytes() const {
    return slots_.capacity() * sizeof(uint32_t) + entries_.capacity() * sizeof(Entry) +
           words_.capacity() * sizeof(uint64_t);
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;

  struct Entry {
    uint64_t hash;
    size_t words;   // Start of the middle words in words_.
    size_t offset;  // OpSet::offset().
    size_t length;  // Number of middle words.
    int32_t state;
  };

  void place(uint32_t index) {
    const size_t mask = slots_.size() - 1;
    size_t slot = entries_[index].hash & mask;
    while (slots_[slot] != kEmpty) {
      slot = (slot + 1) & mask;
    }
    slots_[slot] = index;
  }

  void grow() {
    slots_.assign(slots_.size() * 2, kEmpty);
    for (uint32_t index = 0; index < entries_.size(); ++index) {
      place(index);
    }
  }

  std::vector<uint32_t> slots_ = std::vector<uint32_t>(1024, kEmpty);  // Power-of-two size.
  std::vector<Entry> entries_;
  std::vector<uint64_t> words_;
};

// One operation of a key's sub-history, prepared for the search.
struct SearchOp {
  size_t position = 0;  // Index in the key's call-sorted operation list.
  OpKind kind = OpKind::kGet;
  bool unknown = false;  // Returns at +infinity.
  // A write with a known outcome that no Get can observe (see ObservationIndex).
  // It is linearized only just before a Put/Delete that erases its effect, or
  // alone when nothing else works (see Search::Phase).
  bool blind = false;
  int32_t arg = ValueTable::kAbsent;          // Put: value id. Get: expected state id.
  const std::string* append_value = nullptr;  // Append only.
};

enum class SearchOutcome { kLinearizable, kNotLinearizable, kOutOfTime, kOutOfMemory };

class Search {
 public:
  Search(const std::vector<SearchOp>& ops, const std::vector<int64_t>& calls,
         const std::vector<int64_t>& rets, ValueTable& values, Clock::time_point deadline)
      : ops_(ops), values_(values), deadline_(deadline), linearized_(ops.size()) {
    build_list(calls, rets);
    build_reader_index();
    find_impossible_read();
  }

  SearchOutcome run() {
    if (refutation_.read >= 0) return SearchOutcome::kNotLinearizable;
    int32_t state = ValueTable::kAbsent;
    int32_t cur = nodes_[0].next;
    uint8_t phase = kReads;
    while (nodes_[0].next != 0) {
      if (++steps_ % kClockCheckInterval == 0) {
        if (Clock::now() > deadline_) return SearchOutcome::kOutOfTime;
        if (cache_.bytes() + values_.bytes() > kMemoryBudgetBytes) {
          return SearchOutcome::kOutOfMemory;
        }
      }
      const Node& node = nodes_[cur];
      if (!node.is_call) {
        // `cur` is the first pending return, so every candidate of this phase has been tried.
        if (phase < kUnknownWrites) {
          ++phase;
          cur = nodes_[0].next;
        } else if (phase == kUnknownWrites && has_blind_) {
          phase = kBlindAlone;
          cur = nodes_[0].next;
        } else if (!backtrack(state, cur, phase)) {
          return SearchOutcome::kNotLinearizable;
        }
        continue;
      }
      if (in_phase(ops_[node.op], phase)) {
        const Choice choice = choose(cur, state, phase);
        if (choice == Choice::kTaken) {
          cur = nodes_[0].next;
          phase = kReads;
          continue;
        }
        // A legal Get that leads to a failed configuration, or a failed blind
        // write alone: the current configuration fails (see Frame::last_choice).
        if ((choice == Choice::kSeen && ops_[node.op].kind == OpKind::kGet) ||
            phase == kBlindAlone) {
          if (!backtrack(state, cur, phase)) return SearchOutcome::kNotLinearizable;
          continue;
        }
      }
      cur = node.next;
    }
    note_progress(state);
    return SearchOutcome::kLinearizable;
  }

  // Longest linearizable prefix found, as indices into the ops, in order.
  const std::vector<int32_t>& best_prefix() const { return best_prefix_; }
  int32_t best_state() const { return best_state_; }
  uint64_t steps() const { return steps_; }
  // A read refuted without search (see find_impossible_read); all fields are
  // indices into the ops, or -1.
  struct Refutation {
    int32_t read = -1;      // The Get.
    int32_t producer = -1;  // The latest (kOverwritten) or earliest (kFuture) producer.
    int32_t write = -1;     // kOverwritten: the write that overwrote the value.
    enum Kind { kUnproducible, kOverwritten, kFuture } kind = kUnproducible;
  };
  const Refutation& refutation() const { return refutation_; }

 private:
  static constexpr int32_t kIllegalStep = -1;

  // Candidates are tried in phases, each a scan of the calls before the first
  // pending return:
  //  1. legal Gets (each is the only choice worth trying, see Frame);
  //  2. non-blind writes with a known return;
  //  3. unknown-outcome writes, which may also go anywhere later. In 2. and 3.
  //     a Put or Delete takes along every blind candidate, linearized just
  //     before it. That is never worse than leaving them: their effects are
  //     erased at once, and linearizing a candidate earlier never breaks a
  //     real-time constraint;
  //  4. one blind write alone. Reaching this phase means every completion, if
  //     any, starts with a blind write; then one also starts with any other
  //     blind candidate b: moving b to the front breaks no real-time constraint
  //     (b is a candidate) and changes only states that no Get reads (b and
  //     the write it now precedes are both blind).
  enum Phase : uint8_t { kReads, kKnownWrites, kUnknownWrites, kBlindAlone };
  enum class Choice { kTaken, kIllegal, kSeen };

  // Event list node; node 0 is the sentinel of the circular list.
  struct Node {
    int32_t prev = 0;
    int32_t next = 0;
    int32_t op = -1;
    int32_t match = 0;  // The op's other event node.
    bool is_call = false;
  };

  struct Frame {
    int32_t call_node;    // The op this choice linearized, after any blind ops it took along.
    int32_t prev_state;   // State before the choice.
    uint32_t order_size;  // order_.size() before the choice.
    uint8_t phase;        // Phase of the choice, to resume the scan after it.
    // No alternative at this configuration is worth trying. True for a legal
    // Get: from any completion of the configuration before it, moving the Get
    // to the front gives another (reads do not change the state, and every op
    // that must precede it is linearized already). True for a blind
    // write alone (phase 4): trying one is enough.
    bool last_choice;
  };

  static bool is_write(const SearchOp& op) { return op.kind != OpKind::kGet; }

  static bool in_phase(const SearchOp& op, uint8_t phase) {
    switch (phase) {
      case kReads:
        return op.kind == OpKind::kGet;
      case kKnownWrites:
        return is_write(op) && !op.unknown && !op.blind;
      case kUnknownWrites:
        return is_write(op) && op.unknown;
      default:
        return op.blind;
    }
  }

  // Linearizes the op of call node `cur` next, with the blind candidates it
  // takes along, if the model allows it and the configuration is new.
  Choice choose(int32_t cur, int32_t& state, uint8_t phase) {
    const int32_t op_index = nodes_[cur].op;
    const SearchOp& op = ops_[op_index];
    const int32_t next_state = step(op_index, state);
    if (next_state == kIllegalStep) return Choice::kIllegal;

    along_.clear();
    if (has_blind_ && phase != kBlindAlone &&
        (op.kind == OpKind::kPut || op.kind == OpKind::kDelete)) {
      for (int32_t id = nodes_[0].next; nodes_[id].is_call; id = nodes_[id].next) {
        if (ops_[nodes_[id].op].blind) along_.push_back(id);
      }
    }
    for (int32_t id : along_) {
      mark(nodes_[id].op, -1);
    }
    mark(op_index, -1);
    Choice choice = Choice::kIllegal;
    if (readers_remain_satisfiable(op_index, state, next_state)) {
      choice = cache_.insert(linearized_, next_state) ? Choice::kTaken : Choice::kSeen;
    }
    if (choice != Choice::kTaken) {
      mark(op_index, +1);
      for (int32_t id : along_) {
        mark(nodes_[id].op, +1);
      }
      return choice;
    }
    frames_.push_back({cur, state, static_cast<uint32_t>(order_.size()), phase,
                       op.kind == OpKind::kGet || phase == kBlindAlone});
    for (int32_t id : along_) {
      lift(id);
      order_.push_back(nodes_[id].op);
    }
    lift(cur);
    order_.push_back(op_index);
    state = next_state;
    note_progress(state);
    return Choice::kTaken;
  }

  // Undoes choices until one whose alternatives are still worth trying, and
  // resumes the scan after it; returns false when none is left.
  bool backtrack(int32_t& state, int32_t& cur, uint8_t& phase) {
    while (!frames_.empty()) {
      const Frame frame = frames_.back();
      frames_.pop_back();
      while (order_.size() > frame.order_size) {  // Reverse order of lifting.
        const int32_t op = order_.back();
        order_.pop_back();
        unlift(call_node_[op]);
        mark(op, +1);
      }
      watermark_ = std::min(watermark_, order_.size());
      state = frame.prev_state;
      if (!frame.last_choice) {
        cur = nodes_[frame.call_node].next;
        phase = frame.phase;
        return true;
      }
    }
    return false;
  }

  // Records order_ as the best prefix if it is the longest so far. Only the
  // entries above watermark_ changed since the last record, so the total cost
  // is linear in the number of linearizations.
  void note_progress(int32_t state) {
    if (order_.size() <= best_prefix_.size()) return;
    best_prefix_.resize(watermark_);
    best_prefix_.insert(best_prefix_.end(), order_.begin() + static_cast<ptrdiff_t>(watermark_),
                        order_.end());
    watermark_ = order_.size();
    best_state_ = state;
  }

  // The model: the state after applying op to state, or kIllegalStep.
  int32_t step(int32_t op_index, int32_t state) {
    const SearchOp& op = ops_[op_index];
    switch (op.kind) {
      case OpKind::kGet:
        return state == op.arg ? state : kIllegalStep;
      case OpKind::kPut:
        return op.arg;
      case OpKind::kDelete:
        return ValueTable::kAbsent;
      case OpKind::kAppend: {
        // Memoized so that re-exploring a transition does not rebuild the string.
        const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(state)) << 32) |
                             static_cast<uint32_t>(op_index);
        auto [it, inserted] = append_memo_.try_emplace(key, ValueTable::kAbsent);
        if (inserted) it->second = values_.append(state, *op.append_value);
        return it->second;
      }
    }
    return kIllegalStep;
  }

  // Marks op as linearized (delta -1) or not (+1) in the set and the counters.
  void mark(int32_t op, int delta) {
    linearized_.flip(op);
    if (ops_[op].kind == OpKind::kGet) {
      readers_[ops_[op].arg] += delta;
      return;
    }
    for (size_t k = produced_range_[op].first; k < produced_range_[op].second; ++k) {
      producers_left_[produced_[k]] += delta;
    }
  }

  // Dead-read pruning. A Get expecting state s can only be linearized while the
  // state is s. Once the state has moved on from s (or was never s), some
  // remaining operation must be able to produce s again: a Put of s, a Delete
  // if s is absent, or an Append of x where s = t + x for a state t that some
  // chain of other operations could build (see chain_reaches). If none
  // remains, the Get can never be linearized and the configuration is dead.
  // readers_ and producers_left_ count the not yet linearized such Gets and
  // producers.
  void build_reader_index() {
    const size_t states = static_cast<size_t>(values_.size()) + 1;  // Every Get output is interned.
    readers_.assign(states, 0);
    producers_left_.assign(states, 0);
    unprunable_.assign(states, false);
    for (const SearchOp& op : ops_) {
      if (op.kind == OpKind::kGet) ++readers_[op.arg];
      if (op.kind == OpKind::kPut) put_values_.insert(values_.value(op.arg));
      has_blind_ = has_blind_ || op.blind;
    }

    // Appends grouped by value; group g can produce the read states groups[g].
    std::vector<std::vector<int32_t>> groups;
    for (const SearchOp& op : ops_) {
      if (op.kind != OpKind::kAppend) continue;
      auto [it, inserted] = group_of_.try_emplace(*op.append_value, groups.size());
      if (inserted) {
        groups.emplace_back();
        group_size_.push_back(0);
        append_lengths_.push_back(op.append_value->size());
      }
      ++group_size_[it->second];
    }
    std::sort(append_lengths_.begin(), append_lengths_.end());
    append_lengths_.erase(std::unique(append_lengths_.begin(), append_lengths_.end()),
                          append_lengths_.end());
    for (int32_t s = 1; s < static_cast<int32_t>(states) && !groups.empty(); ++s) {
      if (readers_[s] == 0) continue;
      if (append_lengths_.size() > kMaxAppendLengths) {
        unprunable_[s] = true;  // Too costly to index; never prune on s.
        continue;
      }
      const std::string_view value = values_.value(s);
      for (size_t length : append_lengths_) {
        if (length > value.size()) break;
        auto it = group_of_.find(value.substr(value.size() - length));
        if (it == group_of_.end()) continue;
        const size_t g = it->second;
        // An Append of "" keeps any present state: assume it can produce s.
        bool possible = length == 0 || length == value.size();
        if (!possible) {
          size_t steps = 0;
          --group_size_[g];  // The op producing s is not available to build t.
          possible = chain_reaches(value.substr(0, value.size() - length), steps);
          ++group_size_[g];
        }
        if (possible) {
          groups[g].push_back(s);
          reached_.insert(value);  // Read states are mostly prefixes of later ones.
        }
      }
    }
    for (auto& group : groups) {
      if (group.size() <= kMaxProducedStates) continue;
      // Keeps the per-step cost bounded.
      for (int32_t s : group) {
        unprunable_[s] = true;
      }
      group.clear();
    }

    std::vector<size_t> group_begin(groups.size());
    for (size_t g = 0; g < groups.size(); ++g) {
      group_begin[g] = produced_.size();
      produced_.insert(produced_.end(), groups[g].begin(), groups[g].end());
    }
    produced_range_.resize(ops_.size());
    for (size_t i = 0; i < ops_.size(); ++i) {
      const SearchOp& op = ops_[i];
      int32_t single = -1;
      if (op.kind == OpKind::kPut) single = op.arg;
      if (op.kind == OpKind::kDelete) single = ValueTable::kAbsent;
      if (single >= 0 && readers_[single] > 0) {
        produced_range_[i] = {produced_.size(), produced_.size() + 1};
        produced_.push_back(single);
      } else if (op.kind == OpKind::kAppend) {
        const size_t g = group_of_.at(*op.append_value);
        produced_range_[i] = {group_begin[g], group_begin[g] + groups[g].size()};
      }
      for (size_t k = produced_range_[i].first; k < produced_range_[i].second; ++k) {
        ++producers_left_[produced_[k]];
      }
    }
  }

  // Whether some sequence of distinct operations could leave the key = t
  // (non-empty): a Put of t, or an Append of a suffix y of t (from the counts
  // in group_size_, which this consumes and restores) after a state that
  // reaches t minus y recursively, or after absent if t == y. Ignores timing,
  // so it over-approximates; and it assumes success after kMaxChainSteps, or
  // if t is in reached_. Only "false" is relied on, so reached_ may remember
  // successes found with other counts.
  bool chain_reaches(std::string_view t, size_t& steps) {
    if (put_values_.contains(t) || reached_.contains(t) || ++steps > kMaxChainSteps) return true;
    for (size_t length : append_lengths_) {
      if (length > t.size()) break;
      if (length == 0) continue;  // Appending "" never helps build a present state.
      auto it = group_of_.find(t.substr(t.size() - length));
      if (it == group_of_.end() || group_size_[it->second] == 0) continue;
      if (length == t.size()) return true;
      --group_size_[it->second];
      const bool reaches = chain_reaches(t.substr(0, t.size() - length), steps);
      ++group_size_[it->second];
      if (reaches) {
        reached_.insert(t);
        return true;
      }
    }
    return false;
  }

  // Refutes reads without searching, which catches stale and future reads in
  // histories too concurrent to search exhaustively. For a Get of s:
  //  * overwritten: let p be the possible producer of s that returns last (the
  //    initial state counts as one for absent, returning at -infinity). If a
  //    write w that cannot produce s was called after p returned and returned
  //    before the Get was called, then every producer of s precedes w, which
  //    precedes the Get: whatever produced s last, w moved the state off s
  //    and nothing restored it;
  //  * future: if s is present and every possible producer of s was called
  //    after the Get returned, nothing can have produced s by then.
  void find_impossible_read() {
    std::vector<int32_t> last_producer(readers_.size(), -1);
    std::vector<int32_t> first_producer(readers_.size(), -1);
    std::vector<int32_t> writes;  // Known writes, by call time.
    for (size_t i = 0; i < ops_.size(); ++i) {
      const auto op = static_cast<int32_t>(i);
      for (size_t k = produced_range_[i].first; k < produced_range_[i].second; ++k) {
        int32_t& last = last_producer[produced_[k]];
        if (last < 0 || ret_[op] > ret_[last]) last = op;
        int32_t& first = first_producer[produced_[k]];
        if (first < 0 || call_[op] < call_[first]) first = op;
      }
      if (is_write(ops_[i]) && !ops_[i].unknown) writes.push_back(op);
    }
    std::sort(writes.begin(), writes.end(),
              [&](int32_t a, int32_t b) { return call_[a] < call_[b]; });
    // earliest_return[k]: the write among writes[k..] that returns first.
    std::vector<int32_t> earliest_return(writes.size() + 1, -1);
    for (size_t k = writes.size(); k-- > 0;) {
      const int32_t next = earliest_return[k + 1];
      earliest_return[k] = next >= 0 && ret_[next] <= ret_[writes[k]] ? next : writes[k];
    }
    auto produces = [&](int32_t op, int32_t s) {
      for (size_t k = produced_range_[op].first; k < produced_range_[op].second; ++k) {
        if (produced_[k] == s) return true;
      }
      return false;
    };
    // A write that cannot produce s, called after `after` and returned before `before`.
    auto overwrite = [&](int64_t after, int64_t before, int32_t s) -> int32_t {
      auto first = std::upper_bound(writes.begin(), writes.end(), after,
                                    [&](int64_t t, int32_t op) { return t < call_[op]; });
      const auto k = static_cast<size_t>(first - writes.begin());
      const int32_t w = earliest_return[k];
      if (w < 0 || ret_[w] >= before) return -1;
      if (!produces(w, s)) return w;
      // Rare: the first to return is itself a producer. Look a bit further.
      const size_t end = std::min(writes.size(), k + kMaxOverwriteScan);
      for (size_t j = k; j < end && call_[writes[j]] < before; ++j) {
        if (ret_[writes[j]] < before && !produces(writes[j], s)) return writes[j];
      }
      return -1;
    };

    for (size_t i = 0; i < ops_.size(); ++i) {
      const int32_t s = ops_[i].arg;
      if (ops_[i].kind != OpKind::kGet || unprunable_[s]) continue;
      const auto read = static_cast<int32_t>(i);
      const int32_t p = last_producer[s];
      if (s != ValueTable::kAbsent) {
        if (p < 0) {
          refutation_ = {read, -1, -1, Refutation::kUnproducible};
          return;
        }
        if (call_[first_producer[s]] > ret_[i]) {
          refutation_ = {read, first_producer[s], -1, Refutation::kFuture};
          return;
        }
      }
      const int64_t after = p < 0 ? std::numeric_limits<int64_t>::min() : ret_[p];
      if (after >= call_[i]) continue;
      if (const int32_t w = overwrite(after, call_[i], s); w >= 0) {
        refutation_ = {read, p, w, Refutation::kOverwritten};
        return;
      }
    }
  }

  // After linearizing `op` (state -> next, counters already updated): can every
  // remaining Get whose state op moved away from, or whose last producer op was,
  // still be linearized?
  bool readers_remain_satisfiable(int32_t op, int32_t state, int32_t next) const {
    auto stranded = [&](int32_t s) {
      return s != next && static_cast<size_t>(s) < readers_.size() && readers_[s] > 0 &&
             producers_left_[s] == 0 && !unprunable_[s];
    };
    if (stranded(state)) return false;
    for (size_t k = produced_range_[op].first; k < produced_range_[op].second; ++k) {
      if (stranded(produced_[k])) return false;
    }
    return true;
  }

  void build_list(const std::vector<int64_t>& calls, const std::vector<int64_t>& rets) {
    // (time, is_return, op). Calls sort before returns at equal times: ties are concurrent.
    std::vector<std::tuple<int64_t, bool, int32_t>> events;
    events.reserve(2 * ops_.size());
    call_.resize(ops_.size());
    ret_.resize(ops_.size());
    for (size_t i = 0; i < ops_.size(); ++i) {
      const auto op = static_cast<int32_t>(i);
      call_[i] = calls[ops_[i].position];
      ret_[i] = ops_[i].unknown ? kUnknownReturn : rets[ops_[i].position];
      events.emplace_back(call_[i], false, op);
      events.emplace_back(ret_[i], true, op);
    }
    std::sort(events.begin(), events.end());
    nodes_.assign(events.size() + 1, Node{});
    call_node_.assign(ops_.size(), 0);
    for (size_t i = 0; i < events.size(); ++i) {
      const auto id = static_cast<int32_t>(i + 1);
      Node& node = nodes_[id];
      node.op = std::get<2>(events[i]);
      node.is_call = !std::get<1>(events[i]);
      node.prev = id - 1;
      node.next = static_cast<int32_t>((i + 2) % nodes_.size());
      if (node.is_call) {
        call_node_[node.op] = id;
      } else {
        node.match = call_node_[node.op];
        nodes_[node.match].match = id;
      }
    }
    nodes_[0].next = nodes_.size() > 1 ? 1 : 0;
    nodes_[0].prev = static_cast<int32_t>(nodes_.size() - 1);
  }

  void unlink(int32_t id) {
    nodes_[nodes_[id].prev].next = nodes_[id].next;
    nodes_[nodes_[id].next].prev = nodes_[id].prev;
  }

  // Inverse of unlink; valid while the neighbours are as they were at unlink time.
  void relink(int32_t id) {
    nodes_[nodes_[id].prev].next = id;
    nodes_[nodes_[id].next].prev = id;
  }

  void lift(int32_t call) {
    unlink(call);
    unlink(nodes_[call].match);
  }

  void unlift(int32_t call) {
    relink(nodes_[call].match);
    relink(call);
  }

  const std::vector<SearchOp>& ops_;
  ValueTable& values_;
  Clock::time_point deadline_;
  std::vector<Node> nodes_;
  std::vector<int32_t> call_node_;  // op -> its call node.
  std::vector<int64_t> call_;
  std::vector<int64_t> ret_;  // kUnknownReturn for unknown outcomes.
  OpSet linearized_;
  ConfigCache cache_;
  std::unordered_map<uint64_t, int32_t> append_memo_;  // (state, op) -> state.
  std::vector<Frame> frames_;
  std::vector<int32_t> order_;  // Linearized ops, in order.
  std::vector<int32_t> along_;  // Scratch: blind call nodes taken along by a choice.
  bool has_blind_ = false;
  uint64_t steps_ = 0;
  std::vector<int32_t> best_prefix_;
  int32_t best_state_ = ValueTable::kAbsent;
  size_t watermark_ = 0;  // order_[0, watermark_) matches best_prefix_.
  // Append values indexed for chain_reaches.
  std::unordered_set<std::string_view> put_values_;
  std::unordered_map<std::string_view, size_t> group_of_;  // Append value -> group.
  std::vector<int32_t> group_size_;                        // Group -> number of Appends.
  std::vector<size_t> append_lengths_;                     // Distinct value lengths, sorted.
  std::unordered_set<std::string_view> reached_;           // States chain_reaches accepted.
  // Dead-read pruning, indexed by state id (see build_reader_index).
  std::vector<int32_t> readers_;
  std::vector<int32_t> producers_left_;
  std::vector<bool> unprunable_;
  std::vector<int32_t> produced_;  // Read states each op could produce, in ranges:
  std::vector<std::pair<size_t, size_t>> produced_range_;  // op -> [begin, end) in produced_.
  Refutation refutation_;
};

enum class Ignored { kNo, kUnknownGet, kUnobservableWrite };

// Decides which writes no Get can observe. In a linearization, the states from
// a write until the next Put/Delete would all reveal it (Put v: they start with
// v; Append x: they contain x; Delete, on a key without Appends: they are
// absent), so if no Get output does, no Get sits there: the write's effect is
// invisible, and only its position relative to other writes matters. An
// unknown-outcome write like that is dropped ("never" is always allowed for it,
// and removing it from a linearization changes nothing any Get sees); a known
// one is "blind" (see SearchOp).
class ObservationIndex {
 public:
  ObservationIndex(const std::vector<Operation>& history, const std::vector<size_t>& indices) {
    std::vector<std::string_view> appends;
    for (size_t index : indices) {
      const Operation& op = history[index];
      if (op.kind == OpKind::kAppend) appends.push_back(op.value);
      if (op.kind != OpKind::kGet || has_unknown_outcome(op)) continue;
      if (op.output) {
        reads_.push_back(*op.output);
      } else {
        absent_read_ = true;
      }
    }
    std::sort(reads_.begin(), reads_.end());
    reads_.erase(std::unique(reads_.begin(), reads_.end()), reads_.end());
    find_observed_appends(std::move(appends));
  }

  bool observable(const Operation& op) const {
    switch (op.kind) {
      case OpKind::kGet:
        return false;
      case OpKind::kPut: {
        // Reads starting with op.value sort contiguously from lower_bound(op.value).
        auto it = std::lower_bound(reads_.begin(), reads_.end(), std::string_view(op.value));
        return it != reads_.end() && it->starts_with(op.value);
      }
      case OpKind::kDelete:
        return absent_read_ || has_append_;
      case OpKind::kAppend:
        if (op.value.empty()) return !reads_.empty();
        return all_appends_observable_ || observed_appends_.contains(op.value);
    }
    return true;
  }

 private:
  // Finds the Append values that occur in some read: for each distinct value
  // length, a rolling hash slides over every read and is looked up among the
  // values of that length. Time is linear in the total read size per length.
  void find_observed_appends(std::vector<std::string_view> appends) {
    has_append_ = !appends.empty();
    std::sort(appends.begin(), appends.end(),
              [](std::string_view a, std::string_view b) { return a.size() < b.size(); });
    size_t read_bytes = 0;
    for (std::string_view read : reads_) {
      read_bytes += read.size();
    }
    size_t lengths = 0;
    for (size_t i = 0; i < appends.size(); ++i) {
      lengths += i == 0 || appends[i].size() != appends[i - 1].size();
    }
    if (lengths > kMaxAppendLengths || lengths * read_bytes > kPruneScanBudgetBytes) {
      all_appends_observable_ = true;  // Too costly to prove anything; keep them all.
      return;
    }
    for (size_t begin = 0, end = 0; begin < appends.size(); begin = end) {
      const size_t length = appends[begin].size();
      end = begin;
      std::unordered_map<uint64_t, std::vector<std::string_view>> by_hash;
      for (; end < appends.size() && appends[end].size() == length; ++end) {
        if (length > 0) by_hash[rolling_hash(appends[end])].push_back(appends[end]);
      }
      if (length == 0) continue;
      const uint64_t drop = power(length);  // Weight of the byte leaving the window.
      for (std::string_view read : reads_) {
        if (read.size() < length) continue;
        uint64_t hash = rolling_hash(read.substr(0, length));
        for (size_t pos = 0;; ++pos) {
          if (auto it = by_hash.find(hash); it != by_hash.end()) {
            for (std::string_view value : it->second) {
              if (read.substr(pos, length) == value) observed_appends_.insert(value);
            }
          }
          if (pos + length == read.size()) break;
          hash = hash * kHashBase + static_cast<unsigned char>(read[pos + length]) -
                 drop * static_cast<unsigned char>(read[pos]);
        }
      }
    }
  }

  static constexpr uint64_t kHashBase = 0x100000001b3ULL;

  static uint64_t rolling_hash(std::string_view s) {
    uint64_t hash = 0;
    for (char c : s) {
      hash = hash * kHashBase + static_cast<unsigned char>(c);
    }
    return hash;
  }

  static uint64_t power(size_t exponent) {
    uint64_t result = 1;
    for (size_t i = 0; i < exponent; ++i) {
      result *= kHashBase;
    }
    return result;
  }

  std::vector<std::string_view> reads_;  // Distinct present outputs of known Gets, sorted.
  bool absent_read_ = false;
  bool has_append_ = false;
  bool all_appends_observable_ = false;
  std::unordered_set<std::string_view> observed_appends_;
};

std::string quote(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  const size_t shown = std::min(value.size(), kMaxShownValueBytes);
  for (size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  out += '"';
  if (shown < value.size()) out += "...(" + std::to_string(value.size()) + " bytes)";
  return out;
}

std::string describe(const Operation& op, bool unknown) {
  std::string out(op_kind_name(op.kind));
  switch (op.kind) {
    case OpKind::kGet:
      out += " -> ";
      out += unknown ? "?" : op.output ? quote(*op.output) : "absent";
      break;
    case OpKind::kPut:
    case OpKind::kAppend:
      out += " " + quote(op.value);
      break;
    case OpKind::kDelete:
      break;
  }
  return out;
}

struct KeyReport {
  std::string_view key;
  const std::vector<size_t>& indices;  // Into the history, sorted by call.
  const std::vector<Ignored>& ignored;
  const std::vector<SearchOp>& ops;
  const Search& search;
  const ValueTable& values;
};

std::string explain_illegal(const std::vector<Operation>& history, const KeyReport& report) {
  const size_t n = report.indices.size();
  const Search& search = report.search;
  auto position = [&](int32_t op) { return report.ops[op].position; };
  auto number = [&](int32_t op) { return "#" + std::to_string(report.indices[position(op)]); };

  // First column: the position in the longest linearizable prefix found, or,
  // for a read refuted without search, the role of each operation involved.
  std::vector<std::string> marks(n, "-");
  std::ostringstream out;
  out << "key " << quote(report.key) << " is not linearizable (" << n << " operations, "
      << report.ops.size() << " searched).\n";
  const Search::Refutation& refutation = search.refutation();
  const int32_t read = refutation.read;
  if (read >= 0) {
    const Operation& op = history[report.indices[position(read)]];
    const int32_t producer = refutation.producer;
    const int32_t write = refutation.write;
    out << "Get " << number(read) << " (client " << op.client << ") read "
        << (op.output ? quote(*op.output) : "absent");
    switch (refutation.kind) {
      case Search::Refutation::kUnproducible:
        out << ", which no operation on this key can produce.\n";
        break;
      case Search::Refutation::kFuture:
        out << ", but every operation that could produce that value (the earliest being "
            << number(producer) << ") was called after the Get returned.\n";
        marks[position(producer)] = "made";
        break;
      case Search::Refutation::kOverwritten:
        if (producer < 0) {
          out << ", yet " << number(write) << " overwrote the initial absent state before the "
              << "Get was called, and no operation can make the key absent again.\n";
        } else {
          out << ", yet " << number(write) << " overwrote it: every operation that could "
              << "produce that value (the latest being " << number(producer) << ") returned before "
              << number(write) << " was called, and " << number(write)
              << ", which cannot produce it, returned before the Get was called.\n";
          marks[position(producer)] = "made";
        }
        marks[position(write)] = "over";
        break;
    }
    marks[position(read)] = "READ";
    out << "Operations by call time (READ = the read, made = the producer named above, over = "
           "the overwriting write):\n";
  } else {
    const auto& prefix = search.best_prefix();
    for (size_t i = 0; i < prefix.size(); ++i) {
      marks[position(prefix[i])] = std::to_string(i + 1);
    }
    // The search abandons a prefix as soon as some read can no longer be
    // satisfied after it, so this is the longest prefix not known to be doomed.
    out << "Longest linearizable prefix found: " << prefix.size()
        << " operation(s), leaving the key "
        << (search.best_state() == ValueTable::kAbsent
                ? std::string("absent")
                : "= " + quote(report.values.value(search.best_state())))
        << ".\n(Prefixes after which some read can no longer be satisfied are not extended.)\n"
        << "Operations by call time (lin = position in that prefix, - = not in it):\n";
  }

  // For a long sub-history, show a window around the refuted read, or else the
  // first operation the best prefix could not include.
  size_t begin = 0;
  size_t end = n;
  if (n > kMaxExplainedOps) {
    size_t focus = 0;
    if (read >= 0) {
      focus = position(read);
    } else {
      while (focus < n && (marks[focus] != "-" || report.ignored[focus] != Ignored::kNo)) {
        ++focus;
      }
    }
    begin = focus > kMaxExplainedOps / 4 ? focus - kMaxExplainedOps / 4 : 0;
    end = std::min(n, begin + kMaxExplainedOps);
    begin = end - kMaxExplainedOps;
    out << "(showing operations " << begin + 1 << ".." << end << " of " << n << ")\n";
  }
  out << std::setw(6) << (read >= 0 ? "" : "lin") << std::setw(8) << "op#" << std::setw(8)
      << "client" << std::setw(14) << "call" << std::setw(14) << "ret"
      << "  operation\n";
  for (size_t i = begin; i < end; ++i) {
    const size_t index = report.indices[i];
    const Operation& op = history[index];
    const bool unknown = has_unknown_outcome(op);
    out << std::setw(6) << marks[i] << std::setw(8) << ("#" + std::to_string(index)) << std::setw(8)
        << op.client << std::setw(14) << op.call << std::setw(14)
        << (unknown ? std::string("?") : std::to_string(op.ret)) << "  " << describe(op, unknown);
    if (unknown && op.kind != OpKind::kGet) out << " (outcome unknown)";
    switch (report.ignored[i]) {
      case Ignored::kNo:
        break;
      case Ignored::kUnknownGet:
        out << " [ignored: Get with unknown outcome]";
        break;
      case Ignored::kUnobservableWrite:
        out << " [ignored: unknown-outcome write that no Get observed]";
        break;
    }
    out << "\n";
  }
  return out.str();
}

Result check_key(const std::vector<Operation>& history, std::string_view key,
                 std::vector<size_t> indices, Clock::time_point deadline,
                 std::chrono::milliseconds budget) {
  std::sort(indices.begin(), indices.end(), [&](size_t a, size_t b) {
    return std::pair(history[a].call, a) < std::pair(history[b].call, b);
  });

  ValueTable values;
  ObservationIndex observations(history, indices);
  std::vector<SearchOp> ops;
  std::vector<Ignored> ignored(indices.size(), Ignored::kNo);
  std::vector<int64_t> calls(indices.size());
  std::vector<int64_t> rets(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    const Operation& op = history[indices[i]];
    calls[i] = op.call;
    rets[i] = op.ret;
    const bool unknown = has_unknown_outcome(op);
    const bool observable = observations.observable(op);
    if (unknown && !observable) {
      ignored[i] = op.kind == OpKind::kGet ? Ignored::kUnknownGet : Ignored::kUnobservableWrite;
      continue;
    }
    SearchOp search_op{.position = i,
                       .kind = op.kind,
                       .unknown = unknown,
                       .blind = !unknown && op.kind != OpKind::kGet && !observable};
    if (op.kind == OpKind::kGet) {
      search_op.arg = op.output ? values.intern(*op.output) : ValueTable::kAbsent;
    } else if (op.kind == OpKind::kPut) {
      search_op.arg = values.intern(op.value);
    } else if (op.kind == OpKind::kAppend) {
      search_op.append_value = &op.value;
    }
    ops.push_back(search_op);
  }

  Search search(ops, calls, rets, values, deadline);
  const SearchOutcome outcome = search.run();
  Result result;
  switch (outcome) {
    case SearchOutcome::kLinearizable:
      return result;
    case SearchOutcome::kNotLinearizable:
      result.verdict = Verdict::kIllegal;
      result.key_in_error = std::string(key);
      result.explanation =
          explain_illegal(history, KeyReport{key, indices, ignored, ops, search, values});
      return result;
    case SearchOutcome::kOutOfTime:
    case SearchOutcome::kOutOfMemory: {
      result.verdict = Verdict::kUnknown;
      result.key_in_error = std::string(key);
      std::ostringstream out;
      if (outcome == SearchOutcome::kOutOfTime) {
        out << "time budget of " << budget.count() << " ms exhausted";
      } else {
        out << "memory budget of " << (kMemoryBudgetBytes >> 20) << " MiB exhausted";
      }
      out << " while checking key " << quote(key) << " (" << indices.size() << " operations, "
          << search.steps() << " search steps, longest linearizable prefix "
          << search.best_prefix().size() << " of " << ops.size() << " searched operations)";
      result.explanation = out.str();
      return result;
    }
  }
  return result;
}

}  // namespace

Result check(const std::vector<Operation>& history, std::chrono::milliseconds budget) {
  // Clamp so that now() + budget cannot overflow.
  const auto limit =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24 * 365 * 100));
  const Clock::time_point deadline = Clock::now() + std::min(budget, limit);

  std::unordered_map<std::string_view, std::vector<size_t>> by_key;
  for (size_t i = 0; i < history.size(); ++i) {
    const Operation& op = history[i];
    if (!has_unknown_outcome(op) && op.ret < op.call) {
      throw std::invalid_argument("lincheck: operation #" + std::to_string(i) + " has ret " +
                                  std::to_string(op.ret) + " < call " + std::to_string(op.call));
    }
    by_key[op.key].push_back(i);
  }
  std::vector<std::pair<std::string_view, std::vector<size_t>>> keys(
      std::make_move_iterator(by_key.begin()), std::make_move_iterator(by_key.end()));
  std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.size(), a.first) < std::pair(b.second.size(), b.first);
  });

  for (auto& [key, indices] : keys) {
    Result result = check_key(history, key, std::move(indices), deadline, budget);
    if (result.verdict != Verdict::kOk) return result;
  }
  return Result{};
}

std::string_view verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kOk:
      return "Ok";
    case Verdict::kIllegal:
      return "Illegal";
    case Verdict::kUnknown:
      return "Unknown";
  }
  return "?";
}

std::string_view op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::kGet:
      return "Get";
    case OpKind::kPut:
      return "Put";
    case OpKind::kAppend:
      return "Append";
    case OpKind::kDelete:
      return "Delete";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, Verdict verdict) {
  return os << verdict_name(verdict);
}
std::ostream& operator<<(std::ostream& os, OpKind kind) {
  return os << op_kind_name(kind);
}

}  // namespace raftkv::lincheck
