// End-to-end tests of raftkv as a user runs it: real raftkv-server processes
// driven only through the real kv-cli binary (one-shot commands and pipe
// mode), under process crashes (SIGKILL), freezes (SIGSTOP/SIGCONT) and
// restarts. The history that kv-cli reports in pipe mode is checked for
// linearizability by tests/lincheck; status, exit codes and the error
// contract are checked against `kv-cli --help`.
#include <gtest/gtest.h>
#include <signal.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "lincheck/lincheck.h"
#include "tests/cli/cli_process.h"
#include "tests/process/process_cluster.h"

namespace raftkv::test {
namespace {

using Clock = std::chrono::steady_clock;

// Fast elections, and a small snapshot interval so restarted nodes also
// catch up from snapshots while clients run.
const std::vector<std::string> kServerArgs = {"--tick-ms",         "20", "--election-ticks", "15",
                                              "--heartbeat-ticks", "2",  "--snapshot-every", "300"};

// kv-cli's documented exit codes (kv-cli --help, README).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// The server's documented limits (README: key over 4 KiB, value over 1 MiB).
constexpr size_t kMaxKey = 4 << 10;
constexpr size_t kMaxValue = 1 << 20;

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& s : items)
    out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// Microseconds since the test program started: history timestamps short
// enough to read in lincheck's explanations.
int64_t now_us() {
  static const Clock::time_point start = Clock::now();
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

// A leader that every live node agrees on and that is not `dead` (right
// after a leader dies, the survivors still name it until they time out), or
// 0 after `ms`.
int wait_for_new_leader(const ProcessCluster& c, int dead, int ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < deadline) {
    const int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    const int leader = c.wait_for_leader(std::max(left, 1));
    if (leader != 0 && leader != dead) return leader;
    sleep_ms(50);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// A strict JSON reader, enough for kv-cli's output. Rejects anything that is
// not one complete JSON value (so malformed output fails the tests).

struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;  // kString: the decoded bytes; kNumber: the literal
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;  // in document order

  const Json* field(std::string_view name) const {
    for (const auto& [k, v] : fields)
      if (k == name) return &v;
    return nullptr;
  }
  bool is_string() const { return type == Type::kString; }
  // A number that is a non-negative integer (an index, a term, an id).
  bool is_count() const {
    return type == Type::kNumber && !text.empty() &&
           text.find_first_not_of("0123456789") == std::string::npos;
  }
  uint64_t count() const { return std::stoull(text); }
};

class JsonReader {
 public:
  static std::optional<Json> parse(std::string_view s) {
    JsonReader r(s);
    auto v = r.value(0);
    r.skip_space();
    if (!v || r.pos_ != s.size()) return std::nullopt;
    return v;
  }

 private:
  explicit JsonReader(std::string_view s) : s_(s) {}

  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::optional<Json> value(int depth) {
    if (depth > 32) return std::nullopt;
    skip_space();
    if (pos_ >= s_.size()) return std::nullopt;
    Json v;
    char c = s_[pos_];
    if (c == '{') {
      v.type = Json::Type::kObject;
      ++pos_;
      if (eat('}')) return v;
      do {
        skip_space();
        auto key = string();
        if (!key || v.field(*key) != nullptr || !eat(':')) return std::nullopt;
        auto item = value(depth + 1);
        if (!item) return std::nullopt;
        v.fields.emplace_back(std::move(*key), std::move(*item));
      } while (eat(','));
      return eat('}') ? std::optional<Json>(std::move(v)) : std::nullopt;
    }
    if (c == '[') {
      v.type = Json::Type::kArray;
      ++pos_;
      if (eat(']')) return v;
      do {
        auto item = value(depth + 1);
        if (!item) return std::nullopt;
        v.items.push_back(std::move(*item));
      } while (eat(','));
      return eat(']') ? std::optional<Json>(std::move(v)) : std::nullopt;
    }
    if (c == '"') {
      auto s = string();
      if (!s) return std::nullopt;
      v.type = Json::Type::kString;
      v.text = std::move(*s);
      return v;
    }
    if (literal("null")) return v;
    if (literal("true") || literal("false")) {
      v.type = Json::Type::kBool;
      v.boolean = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';
      return v;
    }
    return number();
  }

  std::optional<Json> number() {
    const size_t start = pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      return pos_ > from;
    };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return std::nullopt;
    }
    if (pos_ < s_.size() && s_[pos_] == '.' && (++pos_, !digits())) return std::nullopt;
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return std::nullopt;
    }
    Json v;
    v.type = Json::Type::kNumber;
    v.text = std::string(s_.substr(start, pos_ - start));
    return v;
  }

  // A string at pos_. \u00XX decodes to the single byte XX: kv-cli writes
  // control bytes and bytes that are not UTF-8 that way (kv-cli --help).
  std::optional<std::string> string() {
    if (pos_ >= s_.size() || s_[pos_] != '"') return std::nullopt;
    ++pos_;
    std::string out;
    while (pos_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) return std::nullopt;  // raw control bytes are not JSON
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= s_.size()) return std::nullopt;
      char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return std::nullopt;
          unsigned cp = 0;
          for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            int d = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
            if (d < 0) return std::nullopt;
            cp = cp * 16 + static_cast<unsigned>(d);
          }
          if (cp < 0x100) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {  // kv-cli never writes these; plain UTF-8
            out += static_cast<char>(0xc0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3f));
          } else {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
          }
          break;
        }
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

TEST(KvCliE2eJson, ReaderAcceptsKvCliShapesAndRejectsMalformedText) {
  auto v = JsonReader::parse(R"({"ok":true,"value":"a\u00ff\u0000\"b\u000a"})");
  ASSERT_TRUE(v);
  ASSERT_NE(v->field("value"), nullptr);
  EXPECT_EQ(v->field("value")->text, std::string("a\xff\0\"b\n", 6));
  EXPECT_TRUE(v->field("ok")->boolean);
  auto arr = JsonReader::parse(R"([{"id":3,"term":-1},{"role":"unreachable"}])");
  ASSERT_TRUE(arr);
  ASSERT_EQ(arr->items.size(), 2u);
  EXPECT_TRUE(arr->items[0].field("id")->is_count());
  EXPECT_FALSE(arr->items[0].field("term")->is_count());
  for (const char* bad : {"", "{", R"({"ok":true} x)", R"({"a":1,"a":2})", "\"raw\nnewline\"",
                          R"({"ok":tru})", "[1,]", "01"})
    EXPECT_FALSE(JsonReader::parse(bad)) << bad;
}

// ---------------------------------------------------------------------------
// 1. Concurrent kv-cli sessions in JSON pipe mode under crashes, freezes and
// restarts; the recorded history must be linearizable.

// What one kv-cli session did. `history` holds every operation that may have
// taken effect; writes that kv-cli reported as definitely not applied are
// left out, so if one of their unique values ever shows up, the history is
// not linearizable.
struct SessionLog {
  std::vector<lincheck::Operation> history;
  int ok = 0;
  int unknown = 0;      // error "timeout": outcome unknown
  int not_applied = 0;  // unavailable, too_large, bad_request
  std::map<std::string, int> errors;
  std::vector<int64_t> ok_calls;      // call times of successful operations
  std::vector<std::string> problems;  // contract violations seen by this session
};

// `timeout_ms`: kv-cli --timeout. Long ones ride out every fault through
// the clerk's retries; short ones end in "timeout" (outcome unknown) and
// "unavailable" (not applied) answers, whose claims the checker then tests.
void run_session(int client, const std::string& endpoints, int timeout_ms, uint32_t seed,
                 const std::atomic<bool>& stop, SessionLog& out) {
  // How long kv-cli may take to answer a line: its own deadline plus room
  // for a busy machine. Past it, kv-cli broke one-line-per-command.
  const int reply_wait_ms = timeout_ms + 30000;
  PipedCli cli({"--endpoints", endpoints, "--timeout", fmt::format("{:.3f}", timeout_ms / 1000.0),
                "--json"});
  std::mt19937 rng(seed);
  for (int n = 0; !stop; ++n) {
    lincheck::Operation op{.client = client, .key = fmt::format("k{}", rng() % 3)};
    std::string line;
    const unsigned pick = rng() % 10;
    if (pick < 4) {
      op.kind = lincheck::OpKind::kGet;
      line = fmt::format("get {}\n", op.key);
    } else if (pick < 6) {
      op.kind = lincheck::OpKind::kPut;
      op.value = fmt::format("p{}.{};", client, n);  // unique per client and op
      line = fmt::format("put {} {}\n", op.key, op.value);
    } else {
      op.kind = lincheck::OpKind::kAppend;
      op.value = fmt::format("a{}.{};", client, n);
      line = fmt::format("append {} {}\n", op.key, op.value);
    }
    op.call = now_us();
    cli.send(line);
    std::optional<std::string> reply = cli.read_line(reply_wait_ms);
    op.ret = now_us();
    if (!reply) {
      out.problems.push_back(
          fmt::format("client {}: no answer to {:?} within {} ms", client, line, reply_wait_ms));
      return;
    }
    auto json = JsonReader::parse(*reply);
    const Json* ok = json ? json->field("ok") : nullptr;
    if (!ok || ok->type != Json::Type::kBool) {
      out.problems.push_back(
          fmt::format("client {}: {:?} -> not a kv-cli answer: {:?}", client, line, *reply));
      return;
    }
    if (ok->boolean) {
      if (op.kind == lincheck::OpKind::kGet) {
        const Json* value = json->field("value");
        if (json->fields.size() != 2 || !value ||
            (value->type != Json::Type::kNull && !value->is_string())) {
          out.problems.push_back(fmt::format("client {}: bad get answer {:?}", client, *reply));
          return;
        }
        if (value->is_string()) op.output = value->text;
      } else if (*reply != R"({"ok":true})") {
        out.problems.push_back(fmt::format("client {}: bad write answer {:?}", client, *reply));
        return;
      }
      ++out.ok;
      out.ok_calls.push_back(op.call);
      out.history.push_back(std::move(op));
      continue;
    }
    const Json* code = json->field("error");
    const Json* message = json->field("message");
    if (json->fields.size() != 3 || !code || !code->is_string() || !message ||
        !message->is_string()) {
      out.problems.push_back(fmt::format("client {}: bad error answer {:?}", client, *reply));
      return;
    }
    ++out.errors[code->text];
    if (code->text == "timeout") {
      // The write may take effect at any time after its call, or never.
      ++out.unknown;
      op.outcome_unknown = true;
      op.ret = lincheck::kUnknownReturn;
      out.history.push_back(std::move(op));
    } else if (code->text == "unavailable" || code->text == "too_large" ||
               code->text == "bad_request") {
      ++out.not_applied;  // the contract: definitely not applied
    } else {
      // "internal" has no documented outcome and "usage" means our line was
      // wrong: neither may happen here.
      out.problems.push_back(fmt::format("client {}: {:?} -> {}", client, line, *reply));
      op.outcome_unknown = true;
      op.ret = lincheck::kUnknownReturn;
      out.history.push_back(std::move(op));
    }
  }
  std::string rest, err;
  int code = cli.wait(&rest, &err);
  if (code != kExitOk || !rest.empty() || !err.empty())
    out.problems.push_back(
        fmt::format("client {}: pipe mode ended with exit {}, stdout {:?}, "
                    "stderr {:?}",
                    client, code, rest, err));
}

std::string describe(const std::map<std::string, int>& counts) {
  std::string out;
  for (const auto& [name, n] : counts)
    out += fmt::format("{}{}={}", out.empty() ? "" : " ", name, n);
  return out.empty() ? "none" : out;
}

// Stops and joins the session threads however the test body is left.
struct Sessions {
  std::atomic<bool> stop{false};
  std::vector<SessionLog> logs;
  std::vector<std::thread> threads;
  ~Sessions() { join(); }
  void join() {
    stop = true;
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
};

TEST(KvCliE2e, PipeSessionsStayLinearizableThroughCrashesFreezesAndRestarts) {
  ProcessCluster c(3, kServerArgs);
  c.start_all();
  int leader = c.wait_for_leader(30000);
  ASSERT_NE(leader, 0) << c.log(1);

  constexpr int kClients = 5;
  const uint32_t seed = std::random_device{}();
  fmt::print("session seed {}\n", seed);
  Sessions s;
  s.logs.resize(kClients);
  for (int i = 0; i < kClients; ++i)
    s.threads.emplace_back(run_session, i, join(c.endpoints(), ","), i < 3 ? 3000 : 500, seed + i,
                           std::cref(s.stop), std::ref(s.logs[i]));

  const auto t0 = Clock::now();
  auto event = [&](const std::string& what) {
    fmt::print("{:6} ms: {}\n",
               std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(),
               what);
  };
  auto current_leader = [&] {
    int l = c.wait_for_leader(30000);
    EXPECT_NE(l, 0) << "no leader agreed on by every live node";
    return l == 0 ? 1 : l;
  };
  sleep_ms(1500);
  // The leader dies with proposals in flight, then recovers from its disk.
  event(fmt::format("SIGKILL leader {}", leader));
  c.kill(leader, SIGKILL);
  sleep_ms(1500);
  event(fmt::format("restart {}", leader));
  c.start(leader);
  sleep_ms(1500);
  // The leader freezes: the others elect a new one, then the old one wakes up
  // still believing it leads; its reads and writes must not break
  // linearizability.
  leader = current_leader();
  event(fmt::format("SIGSTOP leader {}", leader));
  c.signal(leader, SIGSTOP);
  sleep_ms(2000);
  event(fmt::format("SIGCONT {}", leader));
  c.signal(leader, SIGCONT);
  sleep_ms(1500);
  // A follower freezes: its sockets stay open but it answers nothing.
  leader = current_leader();
  const int frozen = leader % 3 + 1;
  event(fmt::format("SIGSTOP follower {} (leader {})", frozen, leader));
  c.signal(frozen, SIGSTOP);
  sleep_ms(2000);
  event(fmt::format("SIGCONT {}", frozen));
  c.signal(frozen, SIGCONT);
  sleep_ms(1500);
  // A follower crashes and restarts at once (possibly catching up by snapshot).
  leader = current_leader();
  const int killed = frozen != leader % 3 + 1 ? leader % 3 + 1 : (leader + 1) % 3 + 1;
  event(fmt::format("SIGKILL and restart follower {} (leader {})", killed, leader));
  c.restart(killed);  // SIGKILL and straight back, as a supervisor would
  ASSERT_NE(c.wait_for_leader_of_all(30000), 0) << "no leader after the faults healed";
  event("healed");
  const int64_t healed = now_us();
  sleep_ms(4000);
  s.join();

  std::vector<lincheck::Operation> history;
  int ok = 0, unknown = 0, not_applied = 0, ok_after_heal = 0;
  std::map<std::string, int> errors;
  for (int i = 0; i < kClients; ++i) {
    const SessionLog& log = s.logs[i];
    for (const std::string& p : log.problems)
      ADD_FAILURE() << p;
    int after = 0;
    for (int64_t t : log.ok_calls)
      after += t > healed;
    // Every session survives the faults: one kv-cli process keeps working.
    EXPECT_GT(after, 0) << "client " << i << " made no progress after the faults healed";
    ok_after_heal += after;
    ok += log.ok;
    unknown += log.unknown;
    not_applied += log.not_applied;
    for (const auto& [code, n] : log.errors)
      errors[code] += n;
    history.insert(history.end(), log.history.begin(), log.history.end());
  }
  fmt::print("history: {} operations ({} ok, {} outcome unknown); {} not applied; errors {}\n",
             history.size(), ok, unknown, not_applied, describe(errors));
  fmt::print("successful operations after the faults healed: {}\n", ok_after_heal);
  EXPECT_GE(ok_after_heal, 20) << "too little progress after the faults healed";
  EXPECT_GE(ok, 100) << "too little progress to prove anything";

  const auto started = Clock::now();
  lincheck::Result r = lincheck::check(history, std::chrono::seconds(30));
  fmt::print("lincheck: {} in {} ms\n", lincheck::verdict_name(r.verdict),
             std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  EXPECT_EQ(r.verdict, lincheck::Verdict::kOk) << "key " << r.key_in_error << ":\n"
                                               << r.explanation << "\nserver logs:\n"
                                               << c.log(1) << c.log(2) << c.log(3);
}

// ---------------------------------------------------------------------------
// 2. status with one node down.

TEST(KvCliE2e, StatusJsonWithOneNodeDownShowsItUnreachableAndOneAgreedLeader) {
  ProcessCluster c(3, kServerArgs);
  c.start_all();
  int leader = c.wait_for_leader(30000);
  ASSERT_NE(leader, 0) << c.log(1);
  const std::string endpoints = join(c.endpoints(), ",");
  CliResult put = run_cli({"--endpoints", endpoints, "--timeout", "20", "put", "k", "v"});
  ASSERT_EQ(put.exit_code, kExitOk) << put.err;

  // The leader dies; the other two elect a new one.
  const int dead = leader;
  c.kill(dead, SIGKILL);
  leader = wait_for_new_leader(c, dead, 30000);
  ASSERT_NE(leader, 0) << "no new leader after the old one died";

  // Every answer must be well formed; the survivors must also settle on one
  // leader (an election may still be finishing, hence the retries).
  bool settled = false;
  std::string last;
  for (auto deadline = Clock::now() + std::chrono::seconds(30);
       !settled && Clock::now() < deadline;) {
    CliResult r = run_cli({"--endpoints", endpoints, "--timeout", "5", "--json", "status"});
    last = r.out;
    ASSERT_EQ(r.exit_code, kExitOk) << r.err;
    ASSERT_EQ(r.err, "");
    ASSERT_EQ(lines_of(r.out).size(), 1u) << r.out;
    auto json = JsonReader::parse(r.out);
    ASSERT_TRUE(json && json->type == Json::Type::kArray) << r.out;
    ASSERT_EQ(json->items.size(), 3u) << r.out;
    std::map<uint64_t, int> leaders_by_term;
    std::vector<const Json*> live;
    for (int id = 1; id <= 3; ++id) {
      const Json& e = json->items[id - 1];
      ASSERT_EQ(e.type, Json::Type::kObject) << r.out;
      ASSERT_TRUE(e.field("endpoint") && e.field("role")) << r.out;
      EXPECT_EQ(e.field("endpoint")->text, c.endpoint(id)) << r.out;
      const std::string& role = e.field("role")->text;
      if (id == dead) {
        EXPECT_EQ(role, "unreachable") << r.out;
        ASSERT_TRUE(e.field("error") && e.field("error")->is_string()) << r.out;
        continue;
      }
      EXPECT_TRUE(role == "leader" || role == "follower" || role == "candidate") << r.out;
      for (const char* f : {"id", "term", "leader", "commit_index", "applied_index"})
        ASSERT_TRUE(e.field(f) && e.field(f)->is_count()) << f << " in " << r.out;
      EXPECT_EQ(e.field("id")->count(), static_cast<uint64_t>(id)) << r.out;
      // A node applies only what it knows to be committed.
      EXPECT_LE(e.field("applied_index")->count(), e.field("commit_index")->count()) << r.out;
      if (role == "leader") ++leaders_by_term[e.field("term")->count()];
      live.push_back(&e);
    }
    for (const auto& [term, n] : leaders_by_term)
      EXPECT_EQ(n, 1) << "two leaders in term " << term << ": " << r.out;
    ASSERT_EQ(live.size(), 2u);
    const Json& a = *live[0];
    const Json& b = *live[1];
    const uint64_t agreed = a.field("leader")->count();
    int leaders = 0;
    for (const Json* e : live)
      leaders += e->field("role")->text == "leader" && e->field("id")->count() == agreed;
    settled = leaders == 1 && agreed == b.field("leader")->count() &&
              a.field("term")->count() == b.field("term")->count() &&
              a.field("role")->text != b.field("role")->text;
    if (!settled) sleep_ms(200);
  }
  EXPECT_TRUE(settled) << "the live nodes never agreed on one leader and term: " << last;

  // The table form: a header and one row per endpoint, exit 0.
  CliResult table = run_cli({"--endpoints", endpoints, "--timeout", "5", "status"});
  EXPECT_EQ(table.exit_code, kExitOk) << table.err;
  std::vector<std::string> rows = lines_of(table.out);
  ASSERT_EQ(rows.size(), 4u) << table.out;
  EXPECT_TRUE(rows[0].starts_with("ENDPOINT")) << table.out;
  EXPECT_TRUE(rows[dead].starts_with(c.endpoint(dead) + " ")) << table.out;
  EXPECT_NE(rows[dead].find("unreachable"), std::string::npos) << table.out;

  // No endpoint answering: exit 1, every entry unreachable.
  CliResult none = run_cli({"--endpoints", c.endpoint(dead), "--timeout", "2", "--json", "status"});
  EXPECT_EQ(none.exit_code, kExitFailure) << none.out << none.err;
  auto json = JsonReader::parse(none.out);
  ASSERT_TRUE(json && json->items.size() == 1) << none.out;
  EXPECT_EQ(json->items[0].field("role")->text, "unreachable") << none.out;
}

// ---------------------------------------------------------------------------
// 3. One-shot commands as a user types them.

class KvCliOneShot : public ::testing::Test {
 protected:
  void SetUp() override {
    c_.start_all();
    ASSERT_NE(c_.wait_for_leader(30000), 0) << c_.log(1);
  }
  std::vector<std::string> cli(std::vector<std::string> rest) const {
    std::vector<std::string> args = {"--endpoints", join(c_.endpoints(), ","), "--timeout", "20"};
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
  }
  // Runs kv-cli and expects exactly this stdout, no stderr, and this exit code.
  void expect_run(const std::vector<std::string>& args, std::string_view out,
                  int exit_code = kExitOk) {
    CliResult r = run_cli(args);
    EXPECT_EQ(r.out, out) << join(args, " ") << "\nstderr: " << r.err;
    EXPECT_EQ(r.err, "") << join(args, " ");
    EXPECT_EQ(r.exit_code, exit_code) << join(args, " ");
  }
  // Runs kv-cli expecting a usage error: exit 2 and one "error: usage:" line.
  void expect_usage(const std::vector<std::string>& args) {
    CliResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, kExitUsage) << join(args, " ") << "\n" << r.out << r.err;
    EXPECT_EQ(r.out, "") << join(args, " ");
    EXPECT_TRUE(r.err.starts_with("error: usage: ")) << join(args, " ") << "\n" << r.err;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  }

  ProcessCluster c_{3, kServerArgs};
};

TEST_F(KvCliOneShot, PutGetAppendDelWithAndWithoutJsonAndDocumentedExitCodes) {
  expect_run(cli({"put", "greeting", "hello world"}), "OK\n");
  expect_run(cli({"get", "greeting"}), "hello world\n");
  expect_run(cli({"append", "greeting", ", again"}), "OK\n");
  expect_run(cli({"--json", "get", "greeting"}),
             "{\"ok\":true,\"value\":\"hello world, again\"}\n");
  expect_run(cli({"--json", "append", "greeting", "!"}), "{\"ok\":true}\n");
  expect_run(cli({"get", "greeting"}), "hello world, again!\n");
  expect_run(cli({"del", "greeting"}), "OK\n");
  expect_run(cli({"get", "greeting"}), "(nil)\n");  // absent: still exit 0
  expect_run(cli({"--json", "get", "greeting"}), "{\"ok\":true,\"value\":null}\n");
  expect_run(cli({"--json", "del", "greeting"}), "{\"ok\":true}\n");  // absent: succeeds
  expect_run(cli({"--json", "put", "greeting", "x"}), "{\"ok\":true}\n");

  // Arguments are bytes: spaces, a leading '-', quotes, an empty value,
  // control and non-UTF-8 bytes (argv cannot hold NUL).
  const std::string binary = "\x01\xfe\xff tab\there \"q\" \xc3\xa9";
  expect_run(cli({"put", "bin", binary}), "OK\n");
  expect_run(cli({"get", "bin"}), binary + "\n");
  CliResult j = run_cli(cli({"--json", "get", "bin"}));
  EXPECT_EQ(j.exit_code, kExitOk);
  EXPECT_EQ(
      j.out,
      "{\"ok\":true,\"value\":\"\\u0001\\u00fe\\u00ff tab\\u0009here \\\"q\\\" \xc3\xa9\"}\n");
  auto parsed = JsonReader::parse(j.out);
  ASSERT_TRUE(parsed) << j.out;
  EXPECT_EQ(parsed->field("value")->text, binary);
  expect_run(cli({"put", "dash", "--json"}), "OK\n");  // after COMMAND, not an option
  expect_run(cli({"get", "dash"}), "--json\n");
  expect_run(cli({"put", "empty", ""}), "OK\n");
  expect_run(cli({"get", "empty"}), "\n");
  expect_run(cli({"--json", "get", "empty"}), "{\"ok\":true,\"value\":\"\"}\n");
  CliResult help = run_cli(cli({"help"}));
  EXPECT_EQ(help.exit_code, kExitOk);
  EXPECT_NE(help.out.find("append KEY VALUE"), std::string::npos) << help.out;

  // Usage errors: exit 2, one line on stderr, nothing sent.
  expect_usage(cli({"--bogus", "get", "k"}));
  expect_usage(cli({"frobnicate", "k"}));
  expect_usage(cli({"get"}));
  expect_usage(cli({"put", "k"}));
  expect_usage(cli({"get", "k", "--json"}));  // options go before the command
  expect_usage({"--endpoints", "nocolon", "get", "k"});
  expect_usage(cli({"--timeout", "0", "get", "k"}));
  expect_usage(cli({"--timeout", "soon", "get", "k"}));
  // With --json a command usage error is a JSON line on stdout, still exit 2.
  CliResult ju = run_cli(cli({"--json", "frobnicate"}));
  EXPECT_EQ(ju.exit_code, kExitUsage);
  auto juj = JsonReader::parse(ju.out);
  ASSERT_TRUE(juj) << ju.out;
  EXPECT_EQ(juj->field("error")->text, "usage") << ju.out;

  // The first endpoint dies: one-shot commands find the leader among the rest.
  c_.kill(1, SIGKILL);
  ASSERT_NE(wait_for_new_leader(c_, 1, 30000), 0);
  expect_run(cli({"put", "after", "crash"}), "OK\n");
  expect_run(cli({"get", "after"}), "crash\n");
  expect_run(cli({"get", "bin"}), binary + "\n");  // written before the crash
  // Only the dead endpoint: a write is unavailable (not applied), exit 1.
  CliResult un = run_cli({"--endpoints", c_.endpoint(1), "--timeout", "1", "put", "k", "v"});
  EXPECT_EQ(un.exit_code, kExitFailure) << un.err;
  EXPECT_EQ(un.out, "");
  EXPECT_TRUE(un.err.starts_with("error: unavailable: ")) << un.err;
  expect_run(cli({"get", "k"}), "(nil)\n");
}

// ---------------------------------------------------------------------------
// 4. Bad input.

TEST_F(KvCliOneShot, OversizedKeysAndValuesAreTooLargeAtTheDocumentedLimits) {
  // A key of exactly 4 KiB is fine; one byte more is too_large.
  const std::string key_at_limit(kMaxKey, 'k');
  expect_run(cli({"put", key_at_limit, "v"}), "OK\n");
  expect_run(cli({"get", key_at_limit}), "v\n");
  CliResult big = run_cli(cli({"put", key_at_limit + "k", "v"}));
  EXPECT_EQ(big.exit_code, kExitFailure);
  EXPECT_EQ(big.out, "");
  EXPECT_TRUE(big.err.starts_with("error: too_large: ")) << big.err;
  CliResult big_json = run_cli(cli({"--json", "get", key_at_limit + "k"}));
  EXPECT_EQ(big_json.exit_code, kExitFailure);
  auto bj = JsonReader::parse(big_json.out);
  ASSERT_TRUE(bj) << big_json.out;
  EXPECT_EQ(bj->field("error")->text, "too_large") << big_json.out;
  EXPECT_FALSE(bj->field("ok")->boolean);

  // Values over argv's comfort go through pipe mode, one session.
  PipedCli p(cli({"--json"}));
  p.send("put v \"" + std::string(kMaxValue, 'x') + "\"\n");
  EXPECT_EQ(p.read_line(), R"({"ok":true})");
  p.send("put v \"" + std::string(kMaxValue + 1, 'y') + "\"\n");
  auto too_large = p.read_line();
  ASSERT_TRUE(too_large);
  auto tl = JsonReader::parse(*too_large);
  ASSERT_TRUE(tl) << *too_large;
  EXPECT_EQ(tl->field("error")->text, "too_large") << *too_large;
  // An append that would grow the value past 1 MiB is refused and changes nothing.
  p.send("append v z\n");
  auto grown = p.read_line();
  ASSERT_TRUE(grown);
  auto gj = JsonReader::parse(*grown);
  ASSERT_TRUE(gj) << *grown;
  EXPECT_EQ(gj->field("error") ? gj->field("error")->text : *grown, "too_large");
  p.send("get v\n");
  auto value = p.read_line();
  ASSERT_TRUE(value);
  auto vj = JsonReader::parse(*value);
  ASSERT_TRUE(vj && vj->field("value")) << value->substr(0, 200);
  EXPECT_EQ(vj->field("value")->text, std::string(kMaxValue, 'x'));
  std::string rest, err;
  EXPECT_EQ(p.wait(&rest, &err), kExitOk);
  EXPECT_EQ(rest, "");
  EXPECT_EQ(err, "");
}

TEST_F(KvCliOneShot, PipeModeAnswersBadLinesWithOneErrorLineAndKeepsGoing) {
  PipedCli p(cli({"--json"}));
  auto expect_usage_line = [&](std::string_view input) {
    p.send(input);
    auto line = p.read_line();
    ASSERT_TRUE(line) << input;
    auto j = JsonReader::parse(*line);
    ASSERT_TRUE(j) << *line;
    EXPECT_FALSE(j->field("ok")->boolean) << *line;
    EXPECT_EQ(j->field("error")->text, "usage") << *line;
  };
  p.send("put k 1\n");
  EXPECT_EQ(p.read_line(), R"({"ok":true})");
  expect_usage_line("frobnicate k\n");
  expect_usage_line("\xff\xfe\x01 \x7f\n");  // bytes that are no command
  expect_usage_line("put k \"unterminated\n");
  expect_usage_line("put k \"bad \\q escape\"\n");
  expect_usage_line("get\n");
  // The session is intact: its writes still apply exactly once, in order.
  p.send("append k 2\nappend k 3\nget k\n");
  EXPECT_EQ(p.read_line(), R"({"ok":true})");
  EXPECT_EQ(p.read_line(), R"({"ok":true})");
  EXPECT_EQ(p.read_line(), R"({"ok":true,"value":"123"})");
  std::string rest, err;
  EXPECT_EQ(p.wait(&rest, &err), kExitOk);
  EXPECT_EQ(rest, "");
  EXPECT_EQ(err, "");
}

// Opens a TCP connection to the client port, sends `bytes`, and tells
// whether the server then closed the connection (EOF or reset) within 10 s.
bool server_closes_after(int port, std::string_view bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool closed = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size())) {
    char buf[64];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }
  ::close(fd);
  return closed;
}

// Raw 0xff garbage is covered by
// ServerProcess.GarbageOnTheClientPortIsRefusedAndTheServerKeepsServing; here
// the bytes look like the start of a frame (kv-cli's protocol: u32 length, u32
// crc32c, payload), so the server must judge the header, not just the bytes.
TEST_F(KvCliOneShot, FrameShapedGarbageOnALeadersClientPortClosesThatConnectionOnly) {
  const int target = c_.wait_for_leader(30000);
  ASSERT_NE(target, 0);
  // A kv-cli session open across the attacks keeps working.
  PipedCli p(cli({"--json"}));
  p.send("put k before\n");
  EXPECT_EQ(p.read_line(), R"({"ok":true})");

  // A declared length of ~4 GiB, far over the frame limit.
  EXPECT_TRUE(server_closes_after(c_.port(target), std::string("\xf0\xff\xff\xff\0\0\0\0", 8)));
  // A plausible length whose checksum does not match the payload.
  std::string bad_crc("\x10\0\0\0\xde\xad\xbe\xef", 8);
  bad_crc += std::string(16, '\x01');
  EXPECT_TRUE(server_closes_after(c_.port(target), bad_crc));

  p.send("append k +after\nget k\n");
  EXPECT_EQ(p.read_line(), R"({"ok":true})");
  EXPECT_EQ(p.read_line(), R"({"ok":true,"value":"before+after"})");
  std::string rest, err;
  EXPECT_EQ(p.wait(&rest, &err), kExitOk);
  EXPECT_EQ(err, "");
  // The attacked node itself still answers kv-cli (whether or not it still
  // leads: a busy machine may have moved leadership meanwhile).
  EXPECT_TRUE(c_.running(target));
  CliResult st =
      run_cli({"--endpoints", c_.endpoint(target), "--timeout", "20", "--json", "status"});
  EXPECT_EQ(st.exit_code, kExitOk) << st.out << st.err;
  auto j = JsonReader::parse(st.out);
  ASSERT_TRUE(j && j->items.size() == 1 && j->items[0].field("id")) << st.out;
  EXPECT_EQ(j->items[0].field("id")->text, std::to_string(target)) << st.out;
}

}  // namespace
}  // namespace raftkv::test
