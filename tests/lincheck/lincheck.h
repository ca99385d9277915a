// Linearizability checker for raftkv client histories.
//
// A history is a list of completed (or timed-out) client operations on a
// key-value store, each with the interval [call, ret] in which it was in
// flight. check() decides whether there is a total order of the operations
// that (1) respects real time: if a.ret < b.call then a comes before b, and
// (2) is a legal sequential run of the KV model below, starting with every key
// absent. Keys are independent, so each key's sub-history is checked on its
// own.
//
// Model (keys and values are arbitrary byte strings):
//   Get(key)           -> the current value, or nullopt when the key is absent
//   Put(key, value)    -> key := value
//   Append(key, value) -> key := old value (absent counts as "") + value
//   Delete(key)        -> key becomes absent
//
// Timing:
//   * Times are in any monotonic unit; only their order matters.
//   * Ties count as concurrent: if a.ret == b.call, a and b may be ordered
//     either way. Only a strictly earlier return orders two operations.
//   * An operation whose outcome is unknown (the client gave up waiting) may
//     take effect at any single point after its call, or never. Mark it with
//     outcome_unknown = true and/or ret = kUnknownReturn; either one suffices.
//     An unknown Get constrains nothing and is ignored, whatever its output.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::lincheck {

enum class OpKind { kGet, kPut, kAppend, kDelete };

// Return time of an operation whose outcome is unknown (+infinity).
inline constexpr int64_t kUnknownReturn = std::numeric_limits<int64_t>::max();

// One client operation. Every field has a default, so designated initializers
// may name just the relevant ones.
struct Operation {
  int client = 0;  // Diagnostics only.
  OpKind kind = OpKind::kGet;
  std::string key{};
  std::string value{};  // Input of Put and Append; ignored otherwise.
  // Get's observed value (nullopt = absent); ignored otherwise.
  std::optional<std::string> output{};
  int64_t call = 0;  // Invocation time.
  int64_t ret = 0;   // Response time, >= call; kUnknownReturn if the outcome is unknown.
  bool outcome_unknown = false;  // Same effect as ret == kUnknownReturn.
};

enum class Verdict {
  kOk,       // Linearizable.
  kIllegal,  // Not linearizable; key_in_error and explanation say where.
  kUnknown,  // The time (or memory) budget ran out before a decision.
};

struct Result {
  Verdict verdict = Verdict::kOk;
  // For kIllegal: the key whose sub-history is not linearizable.
  // For kUnknown: the key being searched when the budget ran out.
  std::string key_in_error;
  // Human-readable. For kIllegal: why (a read that is impossible on its own,
  // with the operations that prove it, or else the longest linearizable prefix
  // the search found and the value it leaves), then the key's operations sorted
  // by call time, annotated accordingly (at most 400, around the problem).
  std::string explanation;
};

// Checks `history` for linearizability. `budget` bounds the wall-clock time of
// the whole call; when it is exceeded the verdict is kUnknown (so is a search
// that would need over 1 GiB for one key). Keys are checked smallest
// sub-history first, so a cheap violation is found before an expensive key can
// exhaust the budget. Thread-safe: no shared state.
//
// Throws std::invalid_argument if an operation with a known outcome has
// ret < call.
Result check(const std::vector<Operation>& history,
             std::chrono::milliseconds budget = std::chrono::seconds(30));

std::string_view verdict_name(Verdict verdict);  // "Ok", "Illegal", "Unknown".
std::string_view op_kind_name(OpKind kind);      // "Get", "Put", "Append", "Delete".
std::ostream& operator<<(std::ostream& os, Verdict verdict);
std::ostream& operator<<(std::ostream& os, OpKind kind);

}  // namespace raftkv::lincheck
