// Unit tests for the linearizability checker: hand-built histories for each
// rule of the model, a differential test against a brute-force checker on
// small random histories, and large simulated histories for speed.
#include "lincheck.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace raftkv::lincheck {
namespace {

using History = std::vector<Operation>;
using Millis = std::chrono::duration<double, std::milli>;

Operation get_op(int64_t call, int64_t ret, std::optional<std::string> output,
                 std::string key = "k") {
  return Operation{.kind = OpKind::kGet,
                   .key = std::move(key),
                   .output = std::move(output),
                   .call = call,
                   .ret = ret};
}

Operation put_op(int64_t call, int64_t ret, std::string value, std::string key = "k") {
  return Operation{.kind = OpKind::kPut,
                   .key = std::move(key),
                   .value = std::move(value),
                   .call = call,
                   .ret = ret};
}

Operation append_op(int64_t call, int64_t ret, std::string value, std::string key = "k") {
  return Operation{.kind = OpKind::kAppend,
                   .key = std::move(key),
                   .value = std::move(value),
                   .call = call,
                   .ret = ret};
}

Operation delete_op(int64_t call, int64_t ret, std::string key = "k") {
  return Operation{.kind = OpKind::kDelete, .key = std::move(key), .call = call, .ret = ret};
}

// The client timed out: the operation may have taken effect any time after its call, or never.
Operation unknown(Operation op) {
  op.outcome_unknown = true;
  op.ret = kUnknownReturn;
  return op;
}

std::string format(const History& history) {
  std::ostringstream out;
  for (const Operation& op : history) {
    out << "  c" << op.client << " " << op.kind << " key=" << op.key << " value=" << op.value
        << " output=" << (op.output ? "\"" + *op.output + "\"" : "absent") << " [" << op.call
        << ", " << (op.outcome_unknown ? std::string("?") : std::to_string(op.ret)) << "]\n";
  }
  return out.str();
}

testing::AssertionResult has_verdict(const History& history, Verdict expected) {
  const Result result = check(history);
  if (result.verdict == expected) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "expected " << expected << ", got " << result.verdict
                                     << " (key \"" << result.key_in_error << "\")\n"
                                     << result.explanation << "history:\n"
                                     << format(history);
}

testing::AssertionResult is_ok(const History& history) {
  return has_verdict(history, Verdict::kOk);
}

testing::AssertionResult is_illegal(const History& history) {
  return has_verdict(history, Verdict::kIllegal);
}

// ---------------------------------------------------------------------------
// Basic register semantics.

TEST(LincheckTest, EmptyHistoryIsOk) {
  EXPECT_TRUE(is_ok({}));
}

TEST(LincheckTest, SequentialGoodHistoryIsOk) {
  EXPECT_TRUE(is_ok({
      get_op(0, 1, std::nullopt),
      put_op(2, 3, "1"),
      get_op(4, 5, "1"),
      append_op(6, 7, "2"),
      get_op(8, 9, "12"),
      put_op(10, 11, "3"),
      get_op(12, 13, "3"),
      delete_op(14, 15),
      get_op(16, 17, std::nullopt),
  }));
}

TEST(LincheckTest, ReadOfValueNeverWrittenIsIllegal) {
  EXPECT_TRUE(is_illegal({put_op(0, 1, "1"), get_op(2, 3, "2")}));
  EXPECT_TRUE(is_illegal({get_op(0, 1, "ghost")}));
}

TEST(LincheckTest, ReadOfPresentValueBeforeAnyWriteIsIllegal) {
  EXPECT_TRUE(is_illegal({get_op(0, 1, "1"), put_op(2, 3, "1")}));
}

TEST(LincheckTest, StaleReadAfterCompletedPutIsIllegal) {
  EXPECT_TRUE(is_illegal({put_op(0, 1, "1"), put_op(2, 3, "2"), get_op(4, 5, "1")}));
}

TEST(LincheckTest, ConcurrentGetMaySeeOldOrNewValue) {
  const Operation old_put = put_op(0, 1, "old");
  const Operation new_put = put_op(2, 10, "new");
  EXPECT_TRUE(is_ok({old_put, new_put, get_op(3, 9, "old")}));
  EXPECT_TRUE(is_ok({old_put, new_put, get_op(3, 9, "new")}));
  EXPECT_TRUE(is_ok({old_put, new_put, get_op(5, 15, "new")}));
}

TEST(LincheckTest, ReadsMayNotGoBackInTimeDuringConcurrentPut) {
  // The first read saw "new", so the put took effect before it returned; a read that
  // starts afterwards cannot see "old" even though the put is still in flight.
  EXPECT_TRUE(is_illegal(
      {put_op(0, 1, "old"), put_op(2, 20, "new"), get_op(3, 4, "new"), get_op(5, 6, "old")}));
  // Overlapping reads may see the values in either order.
  EXPECT_TRUE(
      is_ok({put_op(0, 1, "old"), put_op(2, 20, "new"), get_op(3, 6, "new"), get_op(4, 7, "old")}));
}

TEST(LincheckTest, TouchingIntervalsAreConcurrent) {
  // ret == call does not order the two operations.
  EXPECT_TRUE(is_ok({put_op(0, 5, "1"), get_op(5, 6, std::nullopt)}));
  EXPECT_TRUE(is_ok({put_op(0, 5, "1"), get_op(5, 6, "1")}));
  EXPECT_TRUE(is_ok({get_op(0, 5, "1"), put_op(5, 6, "1")}));
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), put_op(1, 5, "2"), get_op(5, 6, "1")}));
  // A strictly later call does.
  EXPECT_TRUE(is_illegal({put_op(0, 5, "1"), get_op(6, 7, std::nullopt)}));
  EXPECT_TRUE(is_illegal({get_op(0, 5, "1"), put_op(6, 7, "1")}));
  EXPECT_TRUE(is_illegal({put_op(0, 1, "1"), put_op(2, 4, "2"), get_op(5, 6, "1")}));
}

TEST(LincheckTest, InstantaneousOperationsAreOrderedByTime) {
  EXPECT_TRUE(is_ok({put_op(1, 1, "1"), get_op(2, 2, "1"), put_op(3, 3, "2"), get_op(4, 4, "2")}));
  EXPECT_TRUE(is_illegal({put_op(1, 1, "1"), put_op(3, 3, "2"), get_op(4, 4, "1")}));
}

// ---------------------------------------------------------------------------
// Append.

TEST(LincheckTest, AppendToAbsentKeyTreatsItAsEmpty) {
  EXPECT_TRUE(is_ok({append_op(0, 1, "a"), get_op(2, 3, "a")}));
  EXPECT_TRUE(is_ok({append_op(0, 1, ""), get_op(2, 3, "")}));
  EXPECT_TRUE(is_illegal({append_op(0, 1, ""), get_op(2, 3, std::nullopt)}));
}

TEST(LincheckTest, ConcurrentAppendsMayBeObservedInEitherOrder) {
  const Operation a = append_op(0, 10, "a");
  const Operation b = append_op(0, 10, "b");
  EXPECT_TRUE(is_ok({a, b, get_op(11, 12, "ab")}));
  EXPECT_TRUE(is_ok({a, b, get_op(11, 12, "ba")}));
}

TEST(LincheckTest, CompletedAppendsMustAllBeVisible) {
  const Operation a = append_op(0, 10, "a");
  const Operation b = append_op(0, 10, "b");
  EXPECT_TRUE(is_illegal({a, b, get_op(11, 12, "a")}));
  EXPECT_TRUE(is_illegal({a, b, get_op(11, 12, "aab")}));
}

TEST(LincheckTest, ReadsMustAgreeOnTheOrderOfConcurrentAppends) {
  const Operation a = append_op(0, 10, "a");
  const Operation b = append_op(0, 10, "b");
  // A read during the appends saw "a" alone, so "a" went first.
  EXPECT_TRUE(is_ok({a, b, get_op(1, 5, "a"), get_op(11, 12, "ab")}));
  EXPECT_TRUE(is_illegal({a, b, get_op(1, 5, "a"), get_op(11, 12, "ba")}));
  // Two reads after both appends completed must agree.
  EXPECT_TRUE(is_illegal({a, b, get_op(11, 12, "ab"), get_op(13, 14, "ba")}));
}

TEST(LincheckTest, AppendAfterDeleteStartsFromEmpty) {
  const History prefix = {put_op(0, 1, "z"), delete_op(2, 3), append_op(4, 5, "a")};
  History good = prefix;
  good.push_back(get_op(6, 7, "a"));
  History bad = prefix;
  bad.push_back(get_op(6, 7, "za"));
  EXPECT_TRUE(is_ok(good));
  EXPECT_TRUE(is_illegal(bad));
}

// ---------------------------------------------------------------------------
// Delete.

TEST(LincheckTest, GetAfterDeleteSeesAbsent) {
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), delete_op(2, 3), get_op(4, 5, std::nullopt)}));
}

TEST(LincheckTest, StaleGetAfterDeleteIsIllegal) {
  EXPECT_TRUE(is_illegal({put_op(0, 1, "1"), delete_op(2, 3), get_op(4, 5, "1")}));
}

TEST(LincheckTest, GetConcurrentWithDeleteMaySeeEitherState) {
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), delete_op(2, 6), get_op(3, 5, "1")}));
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), delete_op(2, 6), get_op(3, 5, std::nullopt)}));
}

// ---------------------------------------------------------------------------
// Unknown outcomes.

TEST(LincheckTest, UnknownPutMayOrMayNotBeVisibleLater) {
  const Operation first = put_op(0, 1, "1");
  const Operation timed_out = unknown(put_op(2, 3, "2"));
  EXPECT_TRUE(is_ok({first, timed_out, get_op(5, 6, "2")}));
  EXPECT_TRUE(is_ok({first, timed_out, get_op(5, 6, "1")}));
  EXPECT_TRUE(is_ok({first, timed_out, get_op(5, 6, "1"), get_op(100, 101, "2")}));
}

TEST(LincheckTest, UnknownPutOnceObservedMustStayVisible) {
  const Operation first = put_op(0, 1, "1");
  const Operation timed_out = unknown(put_op(2, 3, "2"));
  EXPECT_TRUE(is_illegal({first, timed_out, get_op(5, 6, "2"), get_op(7, 8, "1")}));
  // Unless the two reads overlap: then they may be ordered either way.
  EXPECT_TRUE(is_ok({first, timed_out, get_op(5, 10, "2"), get_op(6, 9, "1")}));
}

TEST(LincheckTest, UnknownPutCannotTakeEffectBeforeItsCall) {
  EXPECT_TRUE(is_illegal({get_op(0, 1, "2"), unknown(put_op(5, 6, "2"))}));
}

TEST(LincheckTest, UnknownReturnTimeAloneMarksOutcomeUnknown) {
  Operation timed_out = put_op(2, kUnknownReturn, "2");
  ASSERT_FALSE(timed_out.outcome_unknown);
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), timed_out, get_op(5, 6, "1")}));
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), timed_out, get_op(5, 6, "2")}));
}

TEST(LincheckTest, UnknownGetIsIgnoredWhateverItsOutput) {
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), unknown(get_op(2, 3, "never written"))}));
  Operation flagged = get_op(2, 3, "never written");
  flagged.outcome_unknown = true;  // ret left as a real time: the flag alone decides.
  EXPECT_TRUE(is_ok({put_op(0, 1, "1"), flagged}));
}

TEST(LincheckTest, UnknownAppendWhoseEffectAppearsIsOk) {
  const Operation base = put_op(0, 1, "a");
  const Operation timed_out = unknown(append_op(2, 3, "x"));
  EXPECT_TRUE(is_ok({base, timed_out, get_op(5, 6, "ax")}));
  EXPECT_TRUE(is_ok({base, timed_out, get_op(5, 6, "a")}));
  EXPECT_TRUE(
      is_ok({base, timed_out, get_op(5, 6, "a"), append_op(7, 8, "y"), get_op(9, 10, "axy")}));
}

TEST(LincheckTest, UnknownAppendEffectAppearingTwiceIsIllegal) {
  const Operation base = put_op(0, 1, "a");
  const Operation timed_out = unknown(append_op(2, 3, "x"));
  EXPECT_TRUE(is_illegal({base, timed_out, get_op(5, 6, "axx")}));
  EXPECT_TRUE(is_illegal({unknown(append_op(0, 1, "x")), get_op(5, 6, "xx")}));
}

TEST(LincheckTest, UnknownAppendOnceObservedMustStayVisible) {
  EXPECT_TRUE(is_illegal(
      {put_op(0, 1, "a"), unknown(append_op(2, 3, "x")), get_op(5, 6, "ax"), get_op(7, 8, "a")}));
}

TEST(LincheckTest, UnknownAppendOfEmptyValueMayCreateTheKey) {
  EXPECT_TRUE(is_ok({unknown(append_op(0, 1, "")), get_op(5, 6, "")}));
  EXPECT_TRUE(is_ok({unknown(append_op(0, 1, "")), get_op(5, 6, std::nullopt)}));
}

TEST(LincheckTest, UnknownPutObservedOnlyThroughLaterAppendIsHonoured) {
  const Operation timed_out = unknown(put_op(0, 1, "x"));
  EXPECT_TRUE(is_ok({timed_out, append_op(5, 6, "y"), get_op(7, 8, "xy")}));
  EXPECT_TRUE(is_ok({timed_out, append_op(5, 6, "y"), get_op(7, 8, "y")}));
}

TEST(LincheckTest, UnknownDeleteMayExplainAnAbsentRead) {
  EXPECT_TRUE(is_ok({put_op(0, 1, "a"), unknown(delete_op(2, 3)), get_op(5, 6, std::nullopt)}));
  // Seen through a later append: "b" rather than "ab".
  EXPECT_TRUE(is_ok(
      {put_op(0, 1, "a"), unknown(delete_op(2, 3)), append_op(4, 5, "b"), get_op(6, 7, "b")}));
  EXPECT_TRUE(
      is_illegal({put_op(0, 1, "a"), delete_op(2, 3), append_op(4, 5, "b"), get_op(6, 7, "ab")}));
}

TEST(LincheckTest, ManyUnobservedUnknownWritesAreCheap) {
  // Without care, every subset of the pending unknown writes is a distinct configuration.
  History history;
  int64_t t = 0;
  for (int i = 0; i < 60; ++i, t += 3) {
    history.push_back(unknown(put_op(t, 0, "lost" + std::to_string(i))));
    history.push_back(unknown(append_op(t + 1, 0, "|lost" + std::to_string(i))));
    history.push_back(unknown(delete_op(t + 2, 0)));
  }
  for (int i = 0; i < 1000; ++i) {
    history.push_back(put_op(t, t + 1, std::to_string(i)));
    history.push_back(get_op(t + 2, t + 3, std::to_string(i)));
    t += 4;
  }
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(is_ok(history));
  EXPECT_LT(Millis(std::chrono::steady_clock::now() - start).count(), 2000);
}

// ---------------------------------------------------------------------------
// Keys, binary safety, diagnostics, API edges.

TEST(LincheckTest, KeysAreIndependent) {
  // Would be illegal if both operations were on one key.
  EXPECT_TRUE(is_ok({put_op(0, 1, "1", "a"), get_op(2, 3, std::nullopt, "b")}));
}

TEST(LincheckTest, IllegalKeyIsNamedEvenWhenOtherKeysAreLegal) {
  const History history = {
      put_op(0, 1, "1", "good"), get_op(2, 3, "1", "good"),    put_op(4, 5, "2", "good"),
      put_op(0, 1, "1", "bad"),  put_op(2, 3, "2", "bad"),     get_op(4, 5, "1", "bad"),
      get_op(6, 7, "2", "good"), append_op(8, 9, "x", "good"), get_op(10, 11, "2x", "good"),
  };
  const Result result = check(history);
  EXPECT_EQ(result.verdict, Verdict::kIllegal);
  EXPECT_EQ(result.key_in_error, "bad");
  EXPECT_NE(result.explanation.find("\"bad\""), std::string::npos) << result.explanation;
  EXPECT_EQ(result.explanation.find("\"good\""), std::string::npos) << result.explanation;
}

TEST(LincheckTest, KeysAndValuesAreBinarySafe) {
  const std::string key("k\0y", 3);
  const std::string value("\0\xff\n", 3);
  EXPECT_TRUE(
      is_ok({put_op(0, 1, value, key), get_op(2, 3, value, key), get_op(2, 3, std::nullopt, "k")}));
  const Result result = check({put_op(0, 1, value, key), get_op(2, 3, std::string(1, '\0'), key)});
  EXPECT_EQ(result.verdict, Verdict::kIllegal);
  EXPECT_EQ(result.key_in_error, key);
  EXPECT_NE(result.explanation.find(R"("\x00\xff\x0a")"), std::string::npos) << result.explanation;
}

TEST(LincheckTest, ExplanationListsSubHistoryAndLongestLinearizablePrefix) {
  History history = {append_op(0, 10, "a"), append_op(0, 10, "b"), get_op(1, 5, "a"),
                     get_op(11, 12, "ba")};
  history[1].client = 7;
  const Result result = check(history);
  ASSERT_EQ(result.verdict, Verdict::kIllegal);
  const std::string& text = result.explanation;
  EXPECT_NE(text.find("key \"k\" is not linearizable (4 operations"), std::string::npos) << text;
  // Appending "a" first would leave no way to produce "ba" later, so the
  // search only extends the prefix that starts with "b".
  EXPECT_NE(text.find("Longest linearizable prefix found: 1 operation(s), leaving the key = \"b\""),
            std::string::npos)
      << text;
  // One row per operation, by call time: lin position, op#, client, call, ret, operation.
  EXPECT_NE(text.find("     -      #0       0             0            10  Append \"a\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("     1      #1       7             0            10  Append \"b\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("     -      #2       0             1             5  Get -> \"a\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("     -      #3       0            11            12  Get -> \"ba\""),
            std::string::npos)
      << text;
}

TEST(LincheckTest, StaleReadIsRefutedWithoutSearchAndExplained) {
  // 24 concurrent appends, all observed, come first: every order of them is a
  // distinct state, so refuting the stale read at the end by search would take
  // far longer than the budget.
  History history;
  std::string all;
  for (char c = 'a'; c < 'a' + 24; ++c) {
    history.push_back(append_op(0, 100, std::string(1, c)));
    all += c;
  }
  history.push_back(get_op(101, 102, all));
  history.push_back(put_op(103, 104, "1"));
  history.push_back(put_op(105, 106, "2"));
  history.push_back(get_op(107, 108, "1"));
  const Result result = check(history, std::chrono::seconds(1));
  ASSERT_EQ(result.verdict, Verdict::kIllegal) << result.explanation;
  const std::string& text = result.explanation;
  EXPECT_NE(text.find("Get #27 (client 0) read \"1\", yet #26 moved the key off that value for "
                      "good: every operation that could produce that value (the latest being #25) "
                      "returned before #26 was "
                      "called, and #26, which cannot produce it, returned before the Get was "
                      "called.\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  made     #25"), std::string::npos) << text;
  EXPECT_NE(text.find("  over     #26"), std::string::npos) << text;
  EXPECT_NE(text.find("  READ     #27"), std::string::npos) << text;
}

TEST(LincheckTest, ReadFromTheFutureIsRefutedWithoutSearch) {
  History history;
  for (char c = 'a'; c < 'a' + 24; ++c) {
    history.push_back(append_op(0, 100, std::string(1, c)));
  }
  history.push_back(get_op(1, 2, "zz"));
  history.push_back(put_op(3, 4, "zz"));
  const Result result = check(history, std::chrono::seconds(1));
  ASSERT_EQ(result.verdict, Verdict::kIllegal);
  EXPECT_NE(result.explanation.find("Get #24 (client 0) read \"zz\", but every operation that "
                                    "could produce that value (the earliest being #25) was "
                                    "called after the Get returned."),
            std::string::npos)
      << result.explanation;
}

TEST(LincheckTest, AbsentReadAfterCompletedWriteIsRefutedWithoutSearch) {
  History history = {put_op(0, 1, "1")};
  for (char c = 'a'; c < 'a' + 24; ++c) {
    history.push_back(append_op(2, 100, std::string(1, c)));
  }
  history.push_back(get_op(101, 102, std::nullopt));
  const Result result = check(history, std::chrono::seconds(5));
  ASSERT_EQ(result.verdict, Verdict::kIllegal);
  EXPECT_NE(result.explanation.find("Get #25 (client 0) read absent, yet #0 overwrote the "
                                    "initial absent state before the Get was called, and no "
                                    "operation can make the key absent again.\n"),
            std::string::npos)
      << result.explanation;
}

TEST(LincheckTest, ReturnBeforeCallIsRejected) {
  EXPECT_THROW(check({put_op(5, 4, "1")}), std::invalid_argument);
  // Not for unknown outcomes, whose ret is ignored.
  Operation flagged = put_op(5, 4, "1");
  flagged.outcome_unknown = true;
  EXPECT_TRUE(is_ok({flagged}));
}

TEST(LincheckTest, VerdictAndKindNamesArePrintable) {
  std::ostringstream out;
  out << Verdict::kOk << " " << Verdict::kIllegal << " " << Verdict::kUnknown << " " << OpKind::kGet
      << " " << OpKind::kPut << " " << OpKind::kAppend << " " << OpKind::kDelete;
  EXPECT_EQ(out.str(), "Ok Illegal Unknown Get Put Append Delete");
}

// 16 concurrent appends: every order yields a distinct value, so memoization
// cannot help. An early read saw "a" alone, so "a" went first, but the final
// read ends with "a". Each read on its own is plausible; refuting both together
// takes trying every order of the other 15 appends. (A concurrent Put keeps the
// search from concluding early that values only grow.)
History hard_history(const std::string& key) {
  History history = {put_op(0, 300, "z", key)};
  std::string reversed;
  for (char c = 'a'; c < 'a' + 16; ++c) {
    history.push_back(append_op(0, 100, std::string(1, c), key));
    reversed.insert(reversed.begin(), c);
  }
  history.push_back(get_op(1, 2, "a", key));
  history.push_back(get_op(200, 201, reversed, key));
  return history;
}

TEST(LincheckTest, ExhaustedBudgetReturnsUnknownPromptly) {
  const auto start = std::chrono::steady_clock::now();
  const Result result = check(hard_history("hard"), std::chrono::milliseconds(50));
  const double elapsed = Millis(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(result.verdict, Verdict::kUnknown) << result.explanation;
  EXPECT_EQ(result.key_in_error, "hard");
  EXPECT_NE(result.explanation.find("time budget of 50 ms exhausted"), std::string::npos)
      << result.explanation;
  EXPECT_LT(elapsed, 1000);
}

TEST(LincheckTest, ReadOfUnproducibleValueIsIllegalWithoutSearching) {
  History history;
  for (char c = 'a'; c < 'a' + 16; ++c) {
    history.push_back(append_op(0, 100, std::string(1, c)));
  }
  history.push_back(get_op(200, 201, "abcdefghijklmnop!"));
  const Result result = check(history, std::chrono::milliseconds(50));
  EXPECT_EQ(result.verdict, Verdict::kIllegal);
  EXPECT_NE(result.explanation.find("Get #16 (client 0) read \"abcdefghijklmnop!\", which no "
                                    "sequence of this key's operations (each used once) can "
                                    "produce."),
            std::string::npos)
      << result.explanation;
}

TEST(LincheckTest, AppendAppliedTwiceIsIllegalWithoutSearching) {
  // The typical duplicate-detection bug: a retried append took effect twice.
  History history = {put_op(0, 1, "v")};
  for (char c = 'a'; c < 'a' + 16; ++c) {
    history.push_back(append_op(2, 100, std::string(1, c)));
  }
  history.push_back(get_op(200, 201, "vabcdefghijklmnopp"));
  const Result result = check(history, std::chrono::milliseconds(50));
  EXPECT_EQ(result.verdict, Verdict::kIllegal) << result.explanation;
  EXPECT_NE(result.explanation.find("which no sequence of this key's operations (each used once) "
                                    "can produce"),
            std::string::npos)
      << result.explanation;
}

TEST(LincheckTest, CheapViolationIsFoundBeforeExpensiveKeyExhaustsBudget) {
  History history = hard_history("hard");
  history.push_back(get_op(0, 1, "ghost", "easy"));
  const Result result = check(history, std::chrono::milliseconds(50));
  EXPECT_EQ(result.verdict, Verdict::kIllegal);
  EXPECT_EQ(result.key_in_error, "easy");
}

// ---------------------------------------------------------------------------
// Differential test against an exhaustive reference on small random histories.

// Tries every order consistent with real time; unknown-outcome operations may be
// left out. Written independently of the checker's algorithm.
class BruteForce {
 public:
  explicit BruteForce(const History& history) : history_(history), used_(history.size()) {}

  bool linearizable() {
    bool done = true;
    for (size_t i = 0; i < history_.size(); ++i) {
      done = done && (used_[i] || unknown_outcome(i));
    }
    if (done) return true;
    for (size_t i = 0; i < history_.size(); ++i) {
      if (used_[i] || !may_go_next(i)) continue;
      const Operation& op = history_[i];
      const auto it = store_.find(op.key);
      const std::optional<std::string> before =
          it == store_.end() ? std::nullopt : std::optional(it->second);
      switch (op.kind) {
        case OpKind::kGet:
          if (!unknown_outcome(i) && before != op.output) continue;
          break;
        case OpKind::kPut:
          store_[op.key] = op.value;
          break;
        case OpKind::kAppend:
          store_[op.key] = before.value_or("") + op.value;
          break;
        case OpKind::kDelete:
          store_.erase(op.key);
          break;
      }
      used_[i] = true;
      const bool found = linearizable();
      used_[i] = false;
      if (before) {
        store_[op.key] = *before;
      } else {
        store_.erase(op.key);
      }
      if (found) return true;
    }
    return false;
  }

 private:
  bool unknown_outcome(size_t i) const {
    return history_[i].outcome_unknown || history_[i].ret == kUnknownReturn;
  }

  bool may_go_next(size_t i) const {
    for (size_t j = 0; j < history_.size(); ++j) {
      if (j != i && !used_[j] && !unknown_outcome(j) && history_[j].ret < history_[i].call) {
        return false;
      }
    }
    return true;
  }

  const History& history_;
  std::vector<bool> used_;
  std::map<std::string, std::string> store_;
};

History random_small_history(std::mt19937_64& rng) {
  const std::vector<std::string> values = {"x", "y", "xy", ""};
  const std::vector<std::optional<std::string>> outputs = {std::nullopt, "x",  "y", "xy",
                                                           "yx",         "xx", ""};
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  History history(1 + pick(7));
  for (Operation& op : history) {
    op.client = static_cast<int>(pick(3));
    op.kind = static_cast<OpKind>(pick(4));
    op.key = std::string(1, pick(5) == 0 ? 'b' : 'a');
    op.value =
        op.kind == OpKind::kPut || op.kind == OpKind::kAppend ? values[pick(values.size())] : "";
    if (op.kind == OpKind::kGet) op.output = outputs[pick(outputs.size())];
    op.call = static_cast<int64_t>(pick(10));
    op.ret = op.call + static_cast<int64_t>(pick(6));
    if (pick(6) == 0) op.outcome_unknown = true;
    if (op.outcome_unknown && pick(2) == 0) op.ret = kUnknownReturn;
  }
  // Half the time, make the Get outputs those of a random sequential run, so
  // that linearizable histories are common too.
  if (pick(2) == 0) {
    std::vector<std::pair<int64_t, size_t>> points;
    for (size_t i = 0; i < history.size(); ++i) {
      const Operation& op = history[i];
      const int64_t last = op.ret == kUnknownReturn ? op.call + 8 : op.ret;
      points.emplace_back(op.call + static_cast<int64_t>(pick(last - op.call + 1)), i);
    }
    std::sort(points.begin(), points.end());
    std::map<std::string, std::string> store;
    for (const auto& [when, i] : points) {
      Operation& op = history[i];
      if (op.outcome_unknown && pick(2) == 0) continue;  // Never took effect.
      const auto it = store.find(op.key);
      switch (op.kind) {
        case OpKind::kGet:
          op.output = it == store.end() ? std::nullopt : std::optional(it->second);
          break;
        case OpKind::kPut:
          store[op.key] = op.value;
          break;
        case OpKind::kAppend:
          store[op.key] += op.value;
          break;
        case OpKind::kDelete:
          store.erase(op.key);
          break;
      }
    }
  }
  return history;
}

TEST(LincheckTest, AgreesWithBruteForceOnSmallRandomHistories) {
  std::mt19937_64 rng(20240611);
  int ok = 0;
  int illegal = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    const History history = random_small_history(rng);
    const bool expected = BruteForce(history).linearizable();
    const Result result = check(history);
    ASSERT_NE(result.verdict, Verdict::kUnknown);
    ASSERT_EQ(result.verdict == Verdict::kOk, expected)
        << "iteration " << iteration << ", brute force says "
        << (expected ? "linearizable" : "not linearizable") << "\n"
        << result.explanation << "history:\n"
        << format(history);
    (expected ? ok : illegal)++;
  }
  // Both outcomes must be well represented for the comparison to mean anything.
  EXPECT_GT(ok, 4000);
  EXPECT_GT(illegal, 4000);
}

// ---------------------------------------------------------------------------
// Large simulated histories.

struct SimOptions {
  int ops = 2000;
  int clients = 5;
  int keys = 4;
  double unknown_rate = 0.0;  // Fraction of operations whose client times out.
  int64_t max_latency = 40;   // Bounds the distance from call and ret to the linearization point.
  bool append_only = false;   // Only Gets and Appends, so values grow all the time.
  uint64_t seed = 1;
};

// Runs a real sequential store and builds, around each operation's
// linearization point, an interval [call, ret] for a client that is idle then.
// The result is linearizable by construction.
History simulate(const SimOptions& options) {
  std::mt19937_64 rng(options.seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };

  std::map<std::string, std::string> store;
  std::vector<int64_t> idle_from(options.clients, 0);
  History history;
  int64_t now = 0;
  for (int i = 0; i < options.ops; ++i) {
    now += uniform(1, 5);
    now = std::max(now, *std::min_element(idle_from.begin(), idle_from.end()));
    std::vector<int> idle;
    for (int c = 0; c < options.clients; ++c) {
      if (idle_from[c] <= now) idle.push_back(c);
    }
    const int client = idle[rng() % idle.size()];

    Operation op;
    op.client = client;
    op.key = "key" + std::to_string(uniform(0, options.keys - 1));
    const int64_t roll = uniform(0, 99);
    if (options.append_only) {
      op.kind = roll < 50 ? OpKind::kGet : OpKind::kAppend;
    } else {
      op.kind = roll < 40   ? OpKind::kGet
                : roll < 65 ? OpKind::kPut
                : roll < 92 ? OpKind::kAppend
                            : OpKind::kDelete;
    }
    op.value = op.kind == OpKind::kPut      ? "v" + std::to_string(i)
               : op.kind == OpKind::kAppend ? "<" + std::to_string(i) + ">"
                                            : "";
    op.call = std::max(idle_from[client], now - uniform(0, options.max_latency));
    op.outcome_unknown = chance(options.unknown_rate);
    const bool takes_effect = !op.outcome_unknown || chance(0.5);
    op.ret = op.outcome_unknown ? kUnknownReturn : now + uniform(0, options.max_latency);
    idle_from[client] = (op.outcome_unknown ? now + 3 * options.max_latency : op.ret) + 1;

    const auto it = store.find(op.key);
    switch (op.kind) {
      case OpKind::kGet:
        if (op.outcome_unknown) {
          op.output = "garbage";  // Must be ignored.
        } else if (it != store.end()) {
          op.output = it->second;
        }
        break;
      case OpKind::kPut:
        if (takes_effect) store[op.key] = op.value;
        break;
      case OpKind::kAppend:
        if (takes_effect) store[op.key] += op.value;
        break;
      case OpKind::kDelete:
        if (takes_effect) store.erase(op.key);
        break;
    }
    history.push_back(std::move(op));
  }
  return history;
}

enum class Corruption {
  kNeverWritten,  // A read returns a value no run could produce.
  kAppendTwice,   // A read shows its last append twice, as a lost duplicate check would.
};

// Corrupts the output of a known Get after the middle of the history; returns its index.
size_t corrupt_one_read(History& history, Corruption corruption) {
  for (size_t i = history.size() / 2; i < history.size(); ++i) {
    Operation& op = history[i];
    if (op.kind != OpKind::kGet || op.outcome_unknown) continue;
    if (corruption == Corruption::kNeverWritten) {
      op.output = "\x01never written";
      return i;
    }
    // Append values are "<i>" with a unique i, so a doubled "<i>" has one source.
    if (op.output && op.output->ends_with('>')) {
      op.output->append(op.output->substr(op.output->rfind('<')));
      return i;
    }
  }
  ADD_FAILURE() << "no Get to corrupt";
  return 0;
}

// Checks that a simulated history is Ok and that each corruption of it is
// Illegal, all within limit_ms, and prints the timings.
void check_simulated(const SimOptions& options, const char* label, double limit_ms) {
  const History history = simulate(options);
  auto start = std::chrono::steady_clock::now();
  const Result good = check(history);
  const double good_ms = Millis(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(good.verdict, Verdict::kOk) << good.explanation;
  EXPECT_LT(good_ms, limit_ms);
  std::printf("[  TIMING  ] %s (%d ops, %d clients, %d keys): linearizable %.1f ms", label,
              options.ops, options.clients, options.keys, good_ms);

  for (Corruption corruption : {Corruption::kNeverWritten, Corruption::kAppendTwice}) {
    History bad = history;
    const size_t corrupted = corrupt_one_read(bad, corruption);
    start = std::chrono::steady_clock::now();
    const Result result = check(bad);
    const double bad_ms = Millis(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(result.verdict, Verdict::kIllegal) << result.explanation;
    EXPECT_EQ(result.key_in_error, bad[corrupted].key);
    EXPECT_NE(result.explanation.find("#" + std::to_string(corrupted) + " "), std::string::npos)
        << result.explanation;
    EXPECT_LT(bad_ms, limit_ms);
    std::printf(", %s %.1f ms",
                corruption == Corruption::kNeverWritten ? "never-written read" : "append twice",
                bad_ms);
  }
  std::printf("\n");
}

TEST(LincheckTest, RandomLinearizableHistoryIsOkAndCorruptedReadIsIllegal) {
  check_simulated({.ops = 2000, .clients = 5, .keys = 4, .seed = 1}, "random", 2000);
}

TEST(LincheckTest, RandomHistoryWithTimeoutsIsOkAndCorruptedReadIsIllegal) {
  check_simulated({.ops = 2000, .clients = 5, .keys = 4, .unknown_rate = 0.03, .seed = 2},
                  "random, 3% timeouts", 2000);
}

TEST(LincheckTest, LongSingleKeyHistoryIsFast) {
  check_simulated({.ops = 50000, .clients = 3, .keys = 1, .max_latency = 10, .seed = 3},
                  "one long key", 5000);
}

TEST(LincheckTest, AppendOnlyKeyWithManyClientsIsFast) {
  check_simulated(
      {.ops = 3000, .clients = 10, .keys = 1, .max_latency = 100, .append_only = true, .seed = 4},
      "append-only key", 3000);
}

TEST(LincheckTest, ManySeedsOfSimulatedHistoriesAreOk) {
  for (uint64_t seed = 100; seed < 130; ++seed) {
    const History history = simulate({.ops = 300,
                                      .clients = 4,
                                      .keys = 2,
                                      .unknown_rate = 0.05,
                                      .append_only = seed % 3 == 0,
                                      .seed = seed});
    const Result result = check(history, std::chrono::seconds(10));
    EXPECT_EQ(result.verdict, Verdict::kOk) << "seed " << seed << "\n" << result.explanation;
  }
}

}  // namespace
}  // namespace raftkv::lincheck
