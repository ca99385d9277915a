// Linearizability checking by search: Wing & Gong's algorithm with Lowe's
// memoization (the approach Porcupine also takes).
//
// 1. The history is split by key. Linearizability is local and operations on
//    different keys commute, so the history is linearizable iff every key's
//    sub-history is.
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
//    bitset with an incrementally maintained Zobrist hash; the state is the
//    id of an interned value.
//
// Pruning on top of the textbook algorithm (each is justified where it is done):
//   * greedy reads: a legal Get is never a wrong choice, so no alternative to
//     it is explored;
//   * candidates with a known return are tried before unknown-outcome ones;
//   * unknown-outcome writes that no Get could have observed are dropped.
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
#include <utility>

namespace raftkv::lincheck {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kClockCheckInterval = 1024;          // Search steps between clock reads.
constexpr size_t kMemoryBudgetBytes = size_t{1} << 30;  // Per key: memo cache + values.
constexpr size_t kPruneScanBudgetBytes = size_t{64} << 20;
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
    std::string joined;
    if (id != kAbsent) {
      joined.reserve(value(id).size() + suffix.size());
      joined = value(id);
    }
    joined += suffix;
    return intern(std::move(joined));
  }

  const std::string& value(int32_t id) const { return values_[static_cast<size_t>(id) - 1]; }
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
    for (size_t i = 0; i < size; ++i) zobrist_[i] = mix64(i ^ 0x5bd1e995a5a5a5a5ULL);
  }

  void flip(int32_t op) {
    const auto w = static_cast<size_t>(op) / 64;
    words_[w] ^= uint64_t{1} << (op % 64);
    hash_ ^= zobrist_[op];
    if (words_[w] >> (op % 64) & 1) {
      top_ = std::max(top_, w + 1);
      while (full_ < words_.size() && words_[full_] == ~uint64_t{0}) ++full_;
    } else {
      full_ = std::min(full_, w);
      while (top_ > 0 && words_[top_ - 1] == 0) --top_;
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
    while (slots_[slot] != kEmpty) slot = (slot + 1) & mask;
    slots_[slot] = index;
  }

  void grow() {
    slots_.assign(slots_.size() * 2, kEmpty);
    for (uint32_t index = 0; index < entries_.size(); ++index) place(index);
  }

  std::vector<uint32_t> slots_ = std::vector<uint32_t>(1024, kEmpty);  // Power-of-two size.
  std::vector<Entry> entries_;
  std::vector<uint64_t> words_;
};

// One operation of a key's sub-history, prepared for the search.
struct SearchOp {
  size_t position = 0;  // Index in the key's call-sorted operation list.
  OpKind kind = OpKind::kGet;
  bool unknown = false;                       // Returns at +infinity.
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
  }

  SearchOutcome run() {
    int32_t state = ValueTable::kAbsent;
    int32_t cur = nodes_[0].next;
    uint8_t phase = 0;  // 0: trying known-return candidates; 1: unknown-outcome ones.
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
        if (phase == 0) {
          phase = 1;
          cur = nodes_[0].next;
        } else if (!backtrack(state, cur, phase)) {
          return SearchOutcome::kNotLinearizable;
        }
        continue;
      }
      const SearchOp& op = ops_[node.op];
      if (op.unknown != (phase == 1)) {
        cur = node.next;
        continue;
      }
      const int32_t next_state = step(node.op, state);
      if (next_state == kIllegalStep) {
        cur = node.next;
        continue;
      }
      linearized_.flip(node.op);
      if (cache_.insert(linearized_, next_state)) {
        frames_.push_back({cur, state, phase, op.kind == OpKind::kGet});
        lift(cur);
        state = next_state;
        cur = nodes_[0].next;
        phase = 0;
        note_progress(state);
        continue;
      }
      linearized_.flip(node.op);
      if (op.kind == OpKind::kGet) {
        // The configuration after this legal read already failed, hence so does
        // the current one (see Frame::forced).
        if (!backtrack(state, cur, phase)) return SearchOutcome::kNotLinearizable;
        continue;
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

 private:
  static constexpr int32_t kIllegalStep = -1;

  // Event list node; node 0 is the sentinel of the circular list.
  struct Node {
    int32_t prev = 0;
    int32_t next = 0;
    int32_t op = -1;
    int32_t match = 0;  // Call node: its return node.
    bool is_call = false;
  };

  struct Frame {
    int32_t call_node;   // The operation linearized by this choice.
    int32_t prev_state;  // State before it.
    uint8_t phase;       // Phase in which it was chosen, to resume the scan.
    // A legal Get: if the search fails after it, it fails without it too. Proof:
    // given any completion from the configuration before the Get, moving the Get
    // to its front keeps it legal (reads do not change the state, and every
    // operation that must precede the Get is already linearized).
    bool forced;
  };

  void build_list(const std::vector<int64_t>& calls, const std::vector<int64_t>& rets) {
    // (time, is_return, op). Calls sort before returns at equal times: ties are concurrent.
    std::vector<std::tuple<int64_t, bool, int32_t>> events;
    events.reserve(2 * ops_.size());
    for (size_t i = 0; i < ops_.size(); ++i) {
      const auto op = static_cast<int32_t>(i);
      events.emplace_back(calls[ops_[i].position], false, op);
      events.emplace_back(ops_[i].unknown ? kUnknownReturn : rets[ops_[i].position], true, op);
    }
    std::sort(events.begin(), events.end());
    nodes_.assign(events.size() + 1, Node{});
    std::vector<int32_t> call_node(ops_.size());
    for (size_t i = 0; i < events.size(); ++i) {
      const auto id = static_cast<int32_t>(i + 1);
      Node& node = nodes_[id];
      node.op = std::get<2>(events[i]);
      node.is_call = !std::get<1>(events[i]);
      node.prev = id - 1;
      node.next = static_cast<int32_t>((i + 2) % nodes_.size());
      if (node.is_call) {
        call_node[node.op] = id;
      } else {
        nodes_[call_node[node.op]].match = id;
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

  // Undoes choices until one whose alternatives are still worth trying;
  // returns false when none is left.
  bool backtrack(int32_t& state, int32_t& cur, uint8_t& phase) {
    while (!frames_.empty()) {
      const Frame frame = frames_.back();
      frames_.pop_back();
      watermark_ = std::min(watermark_, frames_.size());
      unlift(frame.call_node);
      linearized_.flip(nodes_[frame.call_node].op);
      state = frame.prev_state;
      if (!frame.forced) {
        cur = nodes_[frame.call_node].next;
        phase = frame.phase;
        return true;
      }
    }
    return false;
  }

  // Records frames_ as the best prefix if it is the longest so far. Only the
  // frames above watermark_ changed since the last record, so the total cost
  // is linear in the number of pushes.
  void note_progress(int32_t state) {
    if (frames_.size() <= best_prefix_.size()) return;
    best_prefix_.resize(watermark_);
    for (size_t i = watermark_; i < frames_.size(); ++i) {
      best_prefix_.push_back(nodes_[frames_[i].call_node].op);
    }
    watermark_ = frames_.size();
    best_state_ = state;
  }

  const std::vector<SearchOp>& ops_;
  ValueTable& values_;
  Clock::time_point deadline_;
  std::vector<Node> nodes_;
  OpSet linearized_;
  ConfigCache cache_;
  std::unordered_map<uint64_t, int32_t> append_memo_;  // (state, op) -> state.
  std::vector<Frame> frames_;
  uint64_t steps_ = 0;
  std::vector<int32_t> best_prefix_;
  int32_t best_state_ = ValueTable::kAbsent;
  size_t watermark_ = 0;  // frames_[0, watermark_) matches best_prefix_.
};

enum class Ignored { kNo, kUnknownGet, kUnobservableWrite };

// Decides which unknown-outcome writes no Get could have observed. Dropping
// such a write is sound: in a linearization that contains it, the states from
// its linearization point until the next Put/Delete would all reveal it (Put v:
// they start with v; Append x: they contain x; Delete without any Append on the
// key: they are absent), so no Get sits there and removing the write changes
// nothing any Get sees. Conversely "never" is always allowed for such a write.
class ObservationIndex {
 public:
  ObservationIndex(const std::vector<Operation>& history, const std::vector<size_t>& indices) {
    for (size_t index : indices) {
      const Operation& op = history[index];
      if (op.kind == OpKind::kAppend) has_append_ = true;
      if (op.kind != OpKind::kGet || has_unknown_outcome(op)) continue;
      if (op.output) {
        reads_.push_back(*op.output);
      } else {
        absent_read_ = true;
      }
    }
    std::sort(reads_.begin(), reads_.end());
    reads_.erase(std::unique(reads_.begin(), reads_.end()), reads_.end());
  }

  bool observable(const Operation& op) {
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
        for (std::string_view read : reads_) {
          if (scan_budget_ < read.size()) return true;  // Too costly to prove; keep it.
          scan_budget_ -= read.size();
          if (read.find(op.value) != std::string_view::npos) return true;
        }
        return false;
    }
    return true;
  }

 private:
  std::vector<std::string_view> reads_;  // Distinct present outputs of known Gets, sorted.
  bool absent_read_ = false;
  bool has_append_ = false;
  size_t scan_budget_ = kPruneScanBudgetBytes;
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
  constexpr size_t kNone = SIZE_MAX;
  std::vector<size_t> lin(n, kNone);  // Position in the best prefix, by call order.
  const auto& prefix = report.search.best_prefix();
  for (size_t i = 0; i < prefix.size(); ++i) lin[report.ops[prefix[i]].position] = i + 1;

  // For a long sub-history, show a window around the first operation the
  // best prefix could not include.
  size_t begin = 0;
  size_t end = n;
  if (n > kMaxExplainedOps) {
    size_t stuck = 0;
    while (stuck < n && (lin[stuck] != kNone || report.ignored[stuck] != Ignored::kNo)) ++stuck;
    begin = stuck > kMaxExplainedOps / 4 ? stuck - kMaxExplainedOps / 4 : 0;
    end = std::min(n, begin + kMaxExplainedOps);
    begin = end - kMaxExplainedOps;
  }

  std::ostringstream out;
  out << "key " << quote(report.key) << " is not linearizable (" << n << " operations, "
      << report.ops.size() << " searched).\n";
  out << "Longest linearizable prefix found: " << prefix.size() << " operations, leaving the key ";
  if (report.search.best_state() == ValueTable::kAbsent) {
    out << "absent";
  } else {
    out << "= " << quote(report.values.value(report.search.best_state()));
  }
  out << ".\nOperations by call time (lin = position in that prefix, - = not in it):\n";
  if (begin > 0 || end < n) {
    out << "(showing operations " << begin + 1 << ".." << end << " of " << n << ")\n";
  }
  out << std::setw(6) << "lin" << std::setw(8) << "op#" << std::setw(8) << "client"
      << std::setw(14) << "call" << std::setw(14) << "ret"
      << "  operation\n";
  for (size_t i = begin; i < end; ++i) {
    const size_t index = report.indices[i];
    const Operation& op = history[index];
    const bool unknown = has_unknown_outcome(op);
    out << std::setw(6) << (lin[i] == kNone ? std::string("-") : std::to_string(lin[i]))
        << std::setw(8) << ("#" + std::to_string(index)) << std::setw(8) << op.client
        << std::setw(14) << op.call << std::setw(14)
        << (unknown ? std::string("?") : std::to_string(op.ret)) << "  "
        << describe(op, unknown);
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
    if (unknown && !observations.observable(op)) {
      ignored[i] = op.kind == OpKind::kGet ? Ignored::kUnknownGet : Ignored::kUnobservableWrite;
      continue;
    }
    SearchOp search_op{.position = i, .kind = op.kind, .unknown = unknown};
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
  const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(
      24 * 365 * 100));
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

std::ostream& operator<<(std::ostream& os, Verdict verdict) { return os << verdict_name(verdict); }
std::ostream& operator<<(std::ostream& os, OpKind kind) { return os << op_kind_name(kind); }

}  // namespace raftkv::lincheck
