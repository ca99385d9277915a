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
//   * a configuration dies as soon as some pending Get can no longer be
//     satisfied: nothing left can produce its value, or (once no Put/Delete
//     remains) the value no longer extends the current one;
//   * writes no Get can observe are dropped (unknown outcome) or only placed
//     right before a Put/Delete that hides them ("blind" writes);
//   * reads of a value that nothing could have produced by then, or that was
//     overwritten before the read began, are refuted up front, without search.
// Model states are fingerprinted rather than spelled out, so a long run of
// Appends costs linear, not quadratic, memory.
#include "lincheck.h"

#include <algorithm>
#include <iomanip>
#include <iterator>
#include <limits>
#include <ostream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace raftkv::lincheck {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kClockCheckInterval = 1024;               // Search steps between clock reads.
constexpr size_t kMemoryBudgetBytes = size_t{1} << 30;       // Per key: memo cache + values.
constexpr size_t kPruneScanBudgetBytes = size_t{256} << 20;  // Read bytes x Append lengths.
constexpr size_t kMaxAppendLengths = 64;   // Distinct Append value lengths indexed per key.
constexpr size_t kMaxProducedStates = 16;  // Read states one Append value may produce.
constexpr size_t kMaxChainSteps = 64;      // Per read state, see Search::chain_reaches.
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

// Identity of a byte string: its length and two polynomial hashes, modulo
// 2^61 - 1 and modulo 2^64. Distinct strings collide with vanishing
// probability, and fingerprints compose: the fingerprint of a + b follows from
// those of a and b, which lets Append make a new state without building it.
struct Fingerprint {
  uint64_t h1 = 0;
  uint64_t h2 = 0;
  uint64_t length = 0;
  bool operator==(const Fingerprint&) const = default;
};

struct FingerprintHash {
  size_t operator()(const Fingerprint& f) const { return mix64(f.h1 ^ mix64(f.h2 + f.length)); }
};

constexpr uint64_t kMod = (uint64_t{1} << 61) - 1;
constexpr uint64_t kBase1 = 0x1f3d5b79a3c4e1bULL;   // < kMod.
constexpr uint64_t kBase2 = 0x6a09e667f3bcc909ULL;  // Odd.

uint64_t add_mod(uint64_t a, uint64_t b) {
  const uint64_t sum = a + b;  // Both < 2^61: no overflow.
  return sum >= kMod ? sum - kMod : sum;
}

// a * b mod 2^61 - 1 for a, b < 2^61, in 64-bit arithmetic (2^61 = 1 mod kMod).
uint64_t mul_mod(uint64_t a, uint64_t b) {
  const uint64_t a_hi = a >> 32, a_lo = a & 0xffffffffULL;
  const uint64_t b_hi = b >> 32, b_lo = b & 0xffffffffULL;
  const uint64_t lo = a_lo * b_lo;                 // < 2^64
  const uint64_t mid = a_hi * b_lo + a_lo * b_hi;  // < 2^62
  const uint64_t hi = a_hi * b_hi;                 // < 2^58
  // a * b = hi * 2^64 + mid * 2^32 + lo, where 2^64 = 8 and 2^61 = 1 (mod kMod).
  uint64_t r = (hi << 3) + (mid >> 29) + ((mid & ((uint64_t{1} << 29) - 1)) << 32) + (lo >> 61) +
               (lo & kMod);  // < 2^63
  r = (r & kMod) + (r >> 61);
  return r >= kMod ? r - kMod : r;
}

// Fingerprint of head + tail, for a tail of the given fingerprint.
Fingerprint concat(const Fingerprint& head, const Fingerprint& tail) {
  uint64_t power1 = 1;  // kBase1^tail.length mod kMod.
  uint64_t power2 = 1;  // kBase2^tail.length mod 2^64.
  uint64_t base1 = kBase1;
  uint64_t base2 = kBase2;
  for (uint64_t e = tail.length; e > 0; e >>= 1) {
    if (e & 1) {
      power1 = mul_mod(power1, base1);
      power2 *= base2;
    }
    base1 = mul_mod(base1, base1);
    base2 *= base2;
  }
  return {add_mod(mul_mod(head.h1, power1), tail.h1), head.h2 * power2 + tail.h2,
          head.length + tail.length};
}

// Fingerprint of prefix + byte.
Fingerprint extend(const Fingerprint& prefix, char byte) {
  const uint64_t digit = static_cast<unsigned char>(byte) + 1;
  return {add_mod(mul_mod(prefix.h1, kBase1), digit), prefix.h2 * kBase2 + digit,
          prefix.length + 1};
}

Fingerprint fingerprint(std::string_view value) {
  Fingerprint f;
  for (char c : value) {
    f = extend(f, c);
  }
  return f;
}

// Model states, interned as small ints: equal ids <=> equal values (barring a
// fingerprint collision). Append derives the new state's fingerprint from the
// old one instead of building the string: on an append-only key the total size
// of all the states is quadratic. Each state records how it was built, to spell
// it out for diagnostics. Id kAbsent stands for the absent key. Interned
// strings are viewed, not copied: they must outlive the table.
class ValueTable {
 public:
  static constexpr int32_t kAbsent = 0;

  ValueTable() : states_(1) {}

  int32_t intern(std::string_view value, const Fingerprint& value_fingerprint) {
    const int32_t id = find_or_add(value_fingerprint, -1, value);
    State& state = states_[id];
    if (state.parent >= 0) state = State{state.fingerprint, -1, value};  // Keep it spellable.
    return id;
  }
  int32_t intern(std::string_view value) { return intern(value, fingerprint(value)); }

  // The state reached by appending `suffix` to state `id` (absent counts as "").
  int32_t append(int32_t id, std::string_view suffix) {
    // The fingerprint of absent is all zero, like that of "".
    return find_or_add(concat(states_[id].fingerprint, fingerprint(suffix)), id, suffix);
  }

  const Fingerprint& fingerprint_of(int32_t id) const { return states_[id].fingerprint; }

  // The value of a state made by intern().
  std::string_view interned_value(int32_t id) const { return states_[id].text; }

  // The value of any present state.
  std::string spell(int32_t id) const {
    std::vector<std::string_view> pieces;
    for (; id != kAbsent; id = states_[id].parent) {
      pieces.push_back(states_[id].text);
      if (states_[id].parent < 0) break;
    }
    std::string value;
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
      value.append(*it);
    }
    return value;
  }

  int32_t size() const { return static_cast<int32_t>(states_.size()) - 1; }  // Largest id.
  size_t bytes() const {
    return states_.capacity() * sizeof(State) + index_.size() * (sizeof(Fingerprint) + 32);
  }

 private:
  struct State {
    Fingerprint fingerprint;
    int32_t parent = -1;    // -1: text is the whole value. Else text was appended to parent.
    std::string_view text;  // Empty for kAbsent.
  };

  int32_t find_or_add(const Fingerprint& fingerprint, int32_t parent, std::string_view text) {
    const auto [it, inserted] =
        index_.try_emplace(fingerprint, static_cast<int32_t>(states_.size()));
    if (inserted) states_.push_back(State{fingerprint, parent, text});
    return it->second;
  }

  std::vector<State> states_;  // By id; states_[kAbsent] is the absent key.
  std::unordered_map<Fingerprint, int32_t, FingerprintHash> index_;  // Present states only.
};

using FingerprintSet = std::unordered_set<Fingerprint, FingerprintHash>;

// Non-negative counts over 0..n-1 (a Fenwick tree) that can find the first
// positive one in O(log n).
class CountTree {
 public:
  explicit CountTree(size_t size) : tree_(size + 1, 0) {}

  void add(size_t index, int32_t delta) {
    for (size_t i = index + 1; i < tree_.size(); i += i & (~i + 1)) {
      tree_[i] += delta;
    }
  }

  // The smallest index with a positive count, or the size if none.
  size_t first_positive() const {
    size_t step = 1;
    while (step * 2 < tree_.size()) {
      step *= 2;
    }
    size_t index = 0;  // Invariant: the counts below index sum to less than `wanted`.
    int32_t wanted = 1;
    for (; step > 0; step /= 2) {
      if (index + step < tree_.size() && tree_[index + step] < wanted) {
        index += step;
        wanted -= tree_[index];
      }
    }
    return index;
  }

 private:
  std::vector<int32_t> tree_;  // 1-based.
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
  // read_prefixes: the fingerprints of all prefixes of all read values, or null.
  Search(const std::vector<SearchOp>& ops, const std::vector<int64_t>& calls,
         const std::vector<int64_t>& rets, ValueTable& values, const FingerprintSet* read_prefixes,
         Clock::time_point deadline)
      : ops_(ops),
        values_(values),
        read_prefixes_(read_prefixes),
        deadline_(deadline),
        linearized_(ops.size()) {
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
    int32_t write = -1;     // kOverwritten: the write that moved the state off the value.
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
      const int32_t s = ops_[op].arg;
      readers_[s] += delta;
      pending_reads_ += delta;
      if (s != ValueTable::kAbsent) {
        pending_by_length_.add(static_cast<size_t>(read_rank_[s]), delta);
      }
      return;
    }
    if (ops_[op].kind != OpKind::kAppend) resets_left_ += delta;
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
      if (op.kind == OpKind::kPut) put_values_.insert(values_.interned_value(op.arg));
      if (op.kind == OpKind::kPut || op.kind == OpKind::kDelete) ++resets_left_;
      pending_reads_ += op.kind == OpKind::kGet;
      has_blind_ = has_blind_ || op.blind;
    }
    std::vector<int32_t> by_length;
    for (int32_t s = 1; s < static_cast<int32_t>(states); ++s) {
      if (readers_[s] > 0) by_length.push_back(s);
    }
    std::sort(by_length.begin(), by_length.end(), [&](int32_t a, int32_t b) {
      return values_.fingerprint_of(a).length < values_.fingerprint_of(b).length;
    });
    read_rank_.assign(states, -1);
    pending_by_length_ = CountTree(by_length.size());
    for (size_t rank = 0; rank < by_length.size(); ++rank) {
      read_rank_[by_length[rank]] = static_cast<int32_t>(rank);
      read_lengths_.push_back(values_.fingerprint_of(by_length[rank]).length);
      pending_by_length_.add(rank, readers_[by_length[rank]]);
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
      const std::string_view value = values_.interned_value(s);
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
        if (possible) groups[g].push_back(s);
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
  // so it over-approximates; and it assumes success after kMaxChainSteps.
  // (Successes are not memoized: a chain found with other counts may not
  // exist with these, which is exactly how an Append applied twice shows.)
  bool chain_reaches(std::string_view t, size_t& steps) {
    if (put_values_.contains(t) || ++steps > kMaxChainSteps) return true;
    for (size_t length : append_lengths_) {
      if (length > t.size()) break;
      if (length == 0) continue;  // Appending "" never helps build a present state.
      auto it = group_of_.find(t.substr(t.size() - length));
      if (it == group_of_.end() || group_size_[it->second] == 0) continue;
      if (length == t.size()) return true;
      --group_size_[it->second];
      const bool reaches = chain_reaches(t.substr(0, t.size() - length), steps);
      ++group_size_[it->second];
      if (reaches) return true;
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
    // No way back: once no Put or Delete remains, the state only grows by
    // appends, so every pending read must extend the new state.
    if (resets_left_ == 0 && pending_reads_ > 0 && next != state && next != ValueTable::kAbsent) {
      const Fingerprint& reached = values_.fingerprint_of(next);
      const size_t shortest = pending_by_length_.first_positive();
      if (readers_[ValueTable::kAbsent] > 0 ||
          (shortest < read_lengths_.size() && read_lengths_[shortest] < reached.length) ||
          (read_prefixes_ != nullptr && !read_prefixes_->contains(reached))) {
        return false;
      }
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
  const FingerprintSet* read_prefixes_;  // May be null.
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
  // Dead-read pruning, indexed by state id (see build_reader_index).
  std::vector<int32_t> readers_;
  std::vector<int32_t> producers_left_;
  std::vector<bool> unprunable_;
  // No-way-back pruning: unlinearized Puts/Deletes and Gets, and the latter's
  // present values by length (rank into read_lengths_, ascending).
  int32_t resets_left_ = 0;
  int32_t pending_reads_ = 0;
  std::vector<int32_t> read_rank_;  // State id -> rank, for present read states.
  std::vector<uint64_t> read_lengths_;
  CountTree pending_by_length_{0};
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
//
// Reads are often prefixes of later reads (values grow by appends), and a
// prefix reveals nothing its extension does not, so only maximal reads are
// examined: the work is linear in their total size, not in all reads'.
class ObservationIndex {
 public:
  ObservationIndex(const std::vector<Operation>& history, const std::vector<size_t>& indices)
      : output_fingerprints_(indices.size()) {
    std::vector<std::string_view> appends;
    std::unordered_map<Fingerprint, std::string_view, FingerprintHash> reads;  // Distinct.
    for (size_t i = 0; i < indices.size(); ++i) {
      const Operation& op = history[indices[i]];
      if (op.kind == OpKind::kAppend) appends.push_back(op.value);
      if (op.kind != OpKind::kGet || has_unknown_outcome(op)) continue;
      if (op.output) {
        output_fingerprints_[i] = fingerprint(*op.output);
        reads.emplace(output_fingerprints_[i], *op.output);
      } else {
        absent_read_ = true;
      }
    }
    has_append_ = !appends.empty();
    find_maximal_reads(reads);
    find_observed_appends(std::move(appends));
  }

  // Fingerprints of every prefix of every read value, or null if that was too costly.
  const FingerprintSet* read_prefixes() const {
    return prefixes_complete_ ? &read_prefixes_ : nullptr;
  }

  // The fingerprint of the output of indices[i], a Get with a known, present output.
  const Fingerprint& output_fingerprint(size_t i) const { return output_fingerprints_[i]; }

  bool observable(const Operation& op) const {
    switch (op.kind) {
      case OpKind::kGet:
        return false;
      case OpKind::kPut:
        return !prefixes_complete_ || read_prefixes_.contains(fingerprint(op.value));
      case OpKind::kDelete:
        return absent_read_ || has_append_;
      case OpKind::kAppend:
        if (op.value.empty()) return !maximal_reads_.empty();
        return all_appends_observable_ || observed_appends_.contains(op.value);
    }
    return true;
  }

 private:
  // Longest first, a read is maximal unless it is a prefix of one already
  // found; read_prefixes_ collects the fingerprints of all their prefixes.
  void find_maximal_reads(
      const std::unordered_map<Fingerprint, std::string_view, FingerprintHash>& reads) {
    std::vector<std::pair<Fingerprint, std::string_view>> by_length(reads.begin(), reads.end());
    std::sort(by_length.begin(), by_length.end(),
              [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
    size_t budget = kPruneScanBudgetBytes;
    for (const auto& [read_fingerprint, read] : by_length) {
      if (read_prefixes_.contains(read_fingerprint)) continue;
      maximal_reads_.push_back(read);
      if (!prefixes_complete_ || budget < read.size()) {
        prefixes_complete_ = false;  // Too costly: Puts then all count as observable.
        continue;
      }
      budget -= read.size();
      Fingerprint prefix;
      read_prefixes_.insert(prefix);
      for (char c : read) {
        prefix = extend(prefix, c);
        read_prefixes_.insert(prefix);
      }
    }
  }

  // Finds the Append values that occur in some maximal read: for each distinct
  // value length, a rolling hash slides over the reads and is looked up among
  // the values of that length.
  void find_observed_appends(std::vector<std::string_view> appends) {
    std::sort(appends.begin(), appends.end(),
              [](std::string_view a, std::string_view b) { return a.size() < b.size(); });
    size_t read_bytes = 0;
    for (std::string_view read : maximal_reads_) {
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
      std::unordered_map<uint64_t, std::vector<std::string_view>> by_hash;
      for (end = begin; end < appends.size() && appends[end].size() == length; ++end) {
        by_hash[rolling_hash(appends[end])].push_back(appends[end]);
      }
      if (length == 0) continue;
      const uint64_t drop = power(length);  // Weight of the byte leaving the window.
      for (std::string_view read : maximal_reads_) {
        if (read.size() < length) continue;
        uint64_t hash = rolling_hash(read.substr(0, length));
        for (size_t pos = 0;; ++pos) {
          if (auto it = by_hash.find(hash); it != by_hash.end()) {
            for (std::string_view value : it->second) {
              if (read.substr(pos, length) == value) observed_appends_.insert(value);
            }
          }
          if (pos + length == read.size()) break;
          hash = hash * kBase2 + static_cast<unsigned char>(read[pos + length]) -
                 drop * static_cast<unsigned char>(read[pos]);
        }
      }
    }
  }

  // Polynomial hash mod 2^64, cheap to roll; matches are verified.
  static uint64_t rolling_hash(std::string_view s) {
    uint64_t hash = 0;
    for (char c : s) {
      hash = hash * kBase2 + static_cast<unsigned char>(c);
    }
    return hash;
  }

  static uint64_t power(size_t exponent) {
    uint64_t result = 1;
    for (size_t i = 0; i < exponent; ++i) {
      result *= kBase2;
    }
    return result;
  }

  std::vector<Fingerprint> output_fingerprints_;  // By position in `indices`.
  std::vector<std::string_view> maximal_reads_;   // Present outputs of known Gets.
  FingerprintSet read_prefixes_;
  bool prefixes_complete_ = true;  // read_prefixes_ covers all maximal reads.
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
        out << ", which no sequence of this key's operations (each used once) can produce.\n";
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
          out << ", yet " << number(write) << " moved the key off that value for good: every "
              << "operation that could produce that value (the latest being " << number(producer)
              << ") returned before " << number(write) << " was called, and " << number(write)
              << ", which cannot produce it, returned before the Get was called.\n";
          marks[position(producer)] = "made";
        }
        marks[position(write)] = "over";
        break;
    }
    marks[position(read)] = "READ";
    out << "Operations by call time (READ = the read, made = the producer named above, over = "
           "the write named above):\n";
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
                : "= " + quote(report.values.spell(search.best_state())))
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
      search_op.arg = op.output ? values.intern(*op.output, observations.output_fingerprint(i))
                                : ValueTable::kAbsent;
    } else if (op.kind == OpKind::kPut) {
      search_op.arg = values.intern(op.value);
    } else if (op.kind == OpKind::kAppend) {
      search_op.append_value = &op.value;
    }
    ops.push_back(search_op);
  }

  Search search(ops, calls, rets, values, observations.read_prefixes(), deadline);
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
