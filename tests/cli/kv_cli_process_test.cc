// kv-cli as users run it: the real binary, fork/exec'd with pipes or on a
// pseudo-terminal, against real raftkv-server processes. Checks the exact
// output lines and exit codes of the contract in `kv-cli --help`.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tests/cli/cli_process.h"
#include "tests/process/process_cluster.h"

namespace raftkv::test {
namespace {

using Lines = std::vector<std::string>;

Lines lines_of(const std::string& text) {
  Lines out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& s : items)
    out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

// Whether `text` is exactly `pattern`, where in the pattern `#` stands for
// one or more digits, `@` for one of the roles a reachable member reports,
// and `$` for one or more characters other than '"'. (No std::regex: g++ 12
// warns inside <regex> under ASan, and the build uses -Werror.)
bool fits(std::string_view text, std::string_view pattern) {
  size_t t = 0;
  for (char p : pattern) {
    if (p == '#' || p == '$') {
      size_t start = t;
      while (t < text.size() &&
             (p == '#' ? std::isdigit(static_cast<unsigned char>(text[t])) : text[t] != '"'))
        ++t;
      if (t == start) return false;
    } else if (p == '@') {
      bool any = false;
      for (std::string_view role : {"leader", "follower", "candidate"}) {
        if (text.substr(t).starts_with(role)) {
          t += role.size();
          any = true;
          break;
        }
      }
      if (!any) return false;
    } else {
      if (t >= text.size() || text[t] != p) return false;
      ++t;
    }
  }
  return t == text.size();
}

// The leader named by the last prompt in `text`, or "" when there is none.
std::string last_prompt(const std::string& text) {
  size_t end = text.rfind(")> ");
  size_t start = end == std::string::npos ? end : text.rfind("raftkv(", end);
  if (start == std::string::npos) return "";
  start += std::string_view("raftkv(").size();
  return text.substr(start, end - start);
}

// ---------------------------------------------------------------------------
// Without a cluster: usage errors, help, and what an unreachable cluster does.

TEST(KvCliUsage, UnknownOptionsCommandsAndWrongArityExitTwoWithOneLineOnStderr) {
  struct Case {
    std::vector<std::string> args;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {{"--bogus"}, "--bogus"},
      {{"--bogus", "get", "k"}, "unknown option --bogus"},
      {{"-x", "get", "k"}, "unknown option -x"},
      {{"frobnicate", "k"}, "unknown command \"frobnicate\""},
      {{"get"}, "get takes 1 argument (get KEY), got 0"},
      {{"get", "a", "b"}, "get takes 1 argument (get KEY), got 2"},
      {{"put", "k"}, "put takes 2 arguments (put KEY VALUE), got 1"},
      {{"get", "k", "--json"}, "options go before the command"},
      {{"exit"}, "only end a shell or a pipe"},
      {{"--timeout", "abc", "get", "k"}, "--timeout"},
      {{"--timeout", "0", "get", "k"}, "--timeout must be"},
      {{"--timeout", "-1", "get", "k"}, "--timeout must be"},
      {{"--timeout"}, "--timeout"},
      {{"--endpoints", "nocolon", "get", "k"}, "--endpoints item \"nocolon\""},
      {{"--endpoints", "", "get", "k"}, "--endpoints has an empty item"},
  };
  for (const Case& c : cases) {
    CliResult r = run_cli(c.args);
    SCOPED_TRACE(join(c.args, " "));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(r.err.starts_with("error: usage: ")) << r.err;
    EXPECT_NE(r.err.find(c.reason), std::string::npos) << r.err;
    EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  }
}

TEST(KvCliUsage, WithJsonACommandUsageErrorIsAJsonLineOnStdout) {
  CliResult r = run_cli({"--json", "put", "k"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "{\"ok\":false,\"error\":\"usage\",\"message\":\"put takes 2 arguments (put KEY "
            "VALUE), got 1\"}\n");
  EXPECT_EQ(r.err, "");
}

TEST(KvCliUsage, HelpDocumentsCommandsFormatsExitCodesAndDefaults) {
  CliResult r = run_cli({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* needle :
       {"--endpoints", "--timeout", "--json", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
        "get KEY", "put KEY VALUE", "append KEY VALUE", "del KEY", "status", "(nil)", "Exit codes",
        "3  timeout", "2  usage error", "Blank lines are skipped", "\\xHH",
        R"({"ok":false,"error":"CODE","message":"..."})", "\"role\":\"unreachable\"",
        "Examples:"}) {
    EXPECT_NE(r.out.find(needle), std::string::npos) << "--help lacks " << needle;
  }
  CliResult help = run_cli({"help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("put KEY VALUE"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("\\xHH"), std::string::npos) << help.out;
}

TEST(KvCliUsage, WithNoMemberReachableAWriteIsUnavailableAndAReadTimesOut) {
  const std::string eps = dead_endpoint() + "," + dead_endpoint();
  auto start = std::chrono::steady_clock::now();
  CliResult put = run_cli({"--endpoints", eps, "--timeout", "0.5", "put", "k", "v"});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(put.exit_code, 1);
  EXPECT_EQ(put.out, "");
  EXPECT_TRUE(put.err.starts_with("error: unavailable: ")) << put.err;
  EXPECT_EQ(lines_of(put.err).size(), 1u) << put.err;
  // The fractional --timeout is what bounds the attempt.
  EXPECT_GE(elapsed, std::chrono::milliseconds(450));
  EXPECT_LT(elapsed, std::chrono::seconds(15));

  CliResult get = run_cli({"--endpoints", eps, "--timeout", "0.5", "get", "k"});
  EXPECT_EQ(get.exit_code, 3);
  EXPECT_TRUE(get.err.starts_with("error: timeout: ")) << get.err;

  CliResult json = run_cli({"--endpoints", eps, "--timeout", "0.5", "--json", "del", "k"});
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_TRUE(json.out.starts_with(R"({"ok":false,"error":"unavailable","message":")")) << json.out;
  EXPECT_EQ(json.err, "");

  CliResult status = run_cli({"--endpoints", eps, "--timeout", "0.5", "--json", "status"});
  EXPECT_EQ(status.exit_code, 1) << "no endpoint answered";
  EXPECT_EQ(lines_of(status.out).size(), 1u) << status.out;
}

TEST(KvCliUsage, AWriteThatReachedAServerButGotNoAnswerHasAnUnknownOutcomeAndExitsThree) {
  SilentServer silent;
  CliResult r = run_cli({"--endpoints", silent.endpoint(), "--timeout", "0.5", "put", "k", "v"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_TRUE(r.err.starts_with("error: timeout: ")) << r.err;
  EXPECT_NE(r.err.find("may or may not have been applied"), std::string::npos) << r.err;
  CliResult json =
      run_cli({"--endpoints", silent.endpoint(), "--timeout", "0.5", "--json", "append", "k", "v"});
  EXPECT_EQ(json.exit_code, 3);
  EXPECT_TRUE(json.out.starts_with(R"({"ok":false,"error":"timeout","message":")")) << json.out;
}

TEST(KvCliUsage, ShellWithoutALeaderSaysSoInThePromptAndQuits) {
  PtyCli sh({"--endpoints", dead_endpoint(), "--timeout", "0.5"});
  ASSERT_TRUE(sh.expect("raftkv(no leader)> ")) << sh.transcript();
  sh.send("get k\r");
  ASSERT_TRUE(sh.expect("error: timeout: ")) << sh.transcript();
  ASSERT_TRUE(sh.expect("raftkv(no leader)> ")) << sh.transcript();
  sh.send("quit\r");
  EXPECT_EQ(sh.wait(), 0) << sh.transcript();
}

// ---------------------------------------------------------------------------
// Against a 3-node cluster of real servers, shared by the tests below (each
// uses its own keys).

class KvCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new ProcessCluster(3);
    cluster_->start_all();
    leader_ = cluster_->wait_for_leader(60000);
    run_id_ = fmt::format("{:08x}", std::random_device{}());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(leader_, 0) << "no leader elected:\n" << cluster_->log(1); }

  static std::string endpoints() { return join(cluster_->endpoints(), ","); }
  // A key of this test, fresh in every run.
  static std::string key(std::string_view name) {
    return fmt::format("{}-{}-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                       name, run_id_);
  }
  // The flags every command here uses, then `rest`. A generous timeout: the
  // machine may be busy.
  static std::vector<std::string> cli(std::vector<std::string> rest) {
    std::vector<std::string> args = {"--endpoints", endpoints(), "--timeout", "20"};
    args.insert(args.end(), rest.begin(), rest.end());
    return args;
  }

  static ProcessCluster* cluster_;
  static int leader_;
  static std::string run_id_;
};

ProcessCluster* KvCli::cluster_ = nullptr;
int KvCli::leader_ = 0;
std::string KvCli::run_id_;

void expect_run(const std::vector<std::string>& args, std::string_view out, int exit_code = 0) {
  CliResult r = run_cli(args);
  EXPECT_EQ(r.out, out) << join(args, " ") << "\nstderr: " << r.err;
  EXPECT_EQ(r.err, "") << join(args, " ");
  EXPECT_EQ(r.exit_code, exit_code) << join(args, " ");
}

TEST_F(KvCli, OneShotPutGetAppendDelPrintExactLinesAndExitZero) {
  const std::string k = key("k");
  expect_run(cli({"put", k, "v"}), "OK\n");
  expect_run(cli({"get", k}), "v\n");
  // Arguments after the command are literal: a leading '-' is no option.
  expect_run(cli({"append", k, "-more"}), "OK\n");
  expect_run(cli({"get", k}), "v-more\n");
  expect_run(cli({"del", k}), "OK\n");
  expect_run(cli({"get", k}), "(nil)\n");
  expect_run(cli({"del", k}), "OK\n");  // deleting an absent key succeeds
  // No quote or escape processing in one-shot mode.
  const std::string literal = R"(a "b" \x41 c)";
  expect_run(cli({"put", key("literal"), literal}), "OK\n");
  expect_run(cli({"get", key("literal")}), literal + "\n");
  // Options may end with "--".
  expect_run(cli({"--", "get", key("literal")}), literal + "\n");
}

TEST_F(KvCli, OneShotJsonPrintsOneObjectPerCommand) {
  const std::string k = key("k");
  expect_run(cli({"--json", "put", k, "say \"hi\""}), "{\"ok\":true}\n");
  expect_run(cli({"--json", "append", k, "!"}), "{\"ok\":true}\n");
  expect_run(cli({"--json", "get", k}), "{\"ok\":true,\"value\":\"say \\\"hi\\\"!\"}\n");
  expect_run(cli({"--json", "del", k}), "{\"ok\":true}\n");
  expect_run(cli({"--json", "get", k}), "{\"ok\":true,\"value\":null}\n");
}

TEST_F(KvCli, PipeModeAnswersEachCommandWithOneFlushedLineInOrder) {
  const std::string k = key("k");
  PipedCli p(cli({"--json"}));
  // Each answer is read before the next command is written: the line must
  // have been flushed on its own.
  p.send("put " + k + " a\n");
  ASSERT_EQ(p.read_line(), R"({"ok":true})");
  p.send("\n   \t\n");  // blank lines: no output
  p.send("append " + k + " \"b c\"\n");
  ASSERT_EQ(p.read_line(), R"({"ok":true})");
  p.send("get " + k + "\n");
  ASSERT_EQ(p.read_line(), R"({"ok":true,"value":"ab c"})");
  p.send("frobnicate\n");
  ASSERT_EQ(p.read_line(), R"({"ok":false,"error":"usage","message":"unknown command )"
                           R"x(\"frobnicate\" (commands: get, put, append, del, status, help)"})x");
  p.send("get " + k + " extra\n");
  ASSERT_EQ(p.read_line(), R"({"ok":false,"error":"usage","message":"get takes 1 argument )"
                           R"((get KEY), got 2"})");
  p.send("put " + k + " \"open\n");
  auto unterminated = p.read_line();
  ASSERT_TRUE(unterminated);
  EXPECT_TRUE(
      unterminated->starts_with(R"({"ok":false,"error":"usage","message":"unterminated quote)"))
      << *unterminated;
  p.send("status\n");
  auto status = p.read_line();
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->starts_with("[{\"endpoint\":") && status->ends_with("}]")) << *status;
  p.send("help\n");
  auto help = p.read_line();
  ASSERT_TRUE(help);
  EXPECT_TRUE(help->starts_with(R"({"ok":true,"help":"Commands:\u000a)")) << *help;
  p.send("del " + k + "\n");
  ASSERT_EQ(p.read_line(), R"({"ok":true})");
  p.send("get " + k);  // the last line needs no newline
  std::string rest, err;
  EXPECT_EQ(p.wait(&rest, &err), 0);
  EXPECT_EQ(rest, "{\"ok\":true,\"value\":null}\n");
  EXPECT_EQ(err, "");
}

TEST_F(KvCli, PipeModePlainAnswersEveryCommandOnStdoutAndStopsAtExit) {
  const std::string k = key("k");
  std::string input = fmt::format(
      "put {0} x\n\nget {0}\nbogus\nappend {0}\nget {0}\ndel {0}\nget {0}\nstatus\nhelp\n"
      "exit\nput {0} after-exit\n",
      k);
  CliResult r = run_cli(cli({}), input);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "");
  Lines lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 9u) << r.out;
  EXPECT_EQ(lines[0], "OK");
  EXPECT_EQ(lines[1], "x");
  EXPECT_EQ(lines[2],
            "error: usage: unknown command \"bogus\" (commands: get, put, append, del, status, "
            "help)");
  EXPECT_EQ(lines[3], "error: usage: append takes 2 arguments (append KEY VALUE), got 1");
  EXPECT_EQ(lines[4], "x");
  EXPECT_EQ(lines[5], "OK");
  EXPECT_EQ(lines[6], "(nil)");
  EXPECT_TRUE(lines[7].starts_with(cluster_->endpoint(1) + " id=1 role=")) << lines[7];
  EXPECT_NE(lines[7].find("; " + cluster_->endpoint(3) + " id=3 role="), std::string::npos)
      << lines[7];
  EXPECT_TRUE(lines[8].starts_with("commands: get KEY | put KEY VALUE")) << lines[8];
  expect_run(cli({"get", k}), "(nil)\n");  // nothing after exit ran
}

TEST_F(KvCli, StatusJsonListsEveryEndpointInOrderAndMarksTheUnreachableOne) {
  const std::string dead = dead_endpoint();
  CliResult r =
      run_cli({"--endpoints", endpoints() + "," + dead, "--timeout", "20", "--json", "status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  ASSERT_EQ(lines_of(r.out).size(), 1u) << r.out;
  std::string pattern = "[";
  for (int id = 1; id <= 3; ++id) {
    pattern +=
        fmt::format(R"({{"endpoint":"{}","id":{},"role":"@","term":#,"leader":#,"commit_index":#,)"
                    R"("applied_index":#}},)",
                    cluster_->endpoint(id), id);
  }
  pattern += fmt::format(R"({{"endpoint":"{}","role":"unreachable","error":"$"}}])", dead);
  pattern += "\n";
  EXPECT_TRUE(fits(r.out, pattern)) << r.out << "\ndoes not fit\n" << pattern;
}

TEST_F(KvCli, StatusTableHasAHeaderAndOneAlignedRowPerEndpoint) {
  const std::string dead = dead_endpoint();
  CliResult r = run_cli({"--endpoints", endpoints() + "," + dead, "--timeout", "20", "status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Lines lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("ENDPOINT ")) << r.out;
  EXPECT_TRUE(lines[0].ends_with("APPLIED  ERROR")) << r.out;
  const size_t role_column = lines[0].find("ROLE");
  for (int id = 1; id <= 3; ++id) {
    EXPECT_TRUE(lines[id].starts_with(cluster_->endpoint(id) + " ")) << r.out;
    std::string role =
        lines[id].substr(role_column, lines[id].find(' ', role_column) - role_column);
    EXPECT_TRUE(role == "leader" || role == "follower" || role == "candidate") << r.out;
  }
  EXPECT_TRUE(lines[4].starts_with(dead + " ")) << r.out;
  EXPECT_EQ(lines[4].substr(role_column, 11), "unreachable") << r.out;
}

TEST_F(KvCli, BinaryValuesRoundTripThroughHexEscapes) {
  const std::string k = key("bin");
  const std::string bytes("\x00\x01\xff\"\\\n\xc3\xa9 end", 12);
  CliResult put = run_cli(cli({"--json"}), "put " + k + R"( "\x00\x01\xff\"\\\n\xc3\xa9 end")" +
                                               "\n" + "get " + k + "\n");
  EXPECT_EQ(put.exit_code, 0);
  EXPECT_EQ(put.out,
            "{\"ok\":true}\n"
            "{\"ok\":true,\"value\":\"\\u0000\\u0001\\u00ff\\\"\\\\\\u000a\xc3\xa9 end\"}\n");
  // One-shot get prints the exact bytes.
  expect_run(cli({"get", k}), bytes + "\n");
  // Pipe mode shows the value quoted; that line, pasted into a put, stores
  // the same bytes again.
  CliResult shown = run_cli(cli({}), "get " + k + "\n");
  EXPECT_EQ(shown.out, R"("\x00\x01\xff\"\\\né end")"
                       "\n");
  const std::string k2 = key("copy");
  CliResult copy = run_cli(cli({}), "put " + k2 + " " + lines_of(shown.out).at(0) + "\n");
  EXPECT_EQ(copy.out, "OK\n");
  expect_run(cli({"get", k2}), bytes + "\n");
}

TEST_F(KvCli, OversizedKeyOrValueIsTooLargeAndExitsOne) {
  const std::string big_key(5000, 'k');
  CliResult r = run_cli(cli({"put", big_key, "v"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(r.err.starts_with("error: too_large: ")) << r.err;
  CliResult json = run_cli(cli({"--json", "get", big_key}));
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_TRUE(json.out.starts_with(R"({"ok":false,"error":"too_large","message":")")) << json.out;

  // A value over 1 MiB only fits through stdin; the session goes on after it.
  const std::string k = key("k");
  CliResult pipe = run_cli(cli({"--json"}), "put " + k + " \"" + std::string((1 << 20) + 1, 'x') +
                                                "\"\nget " + k + "\n");
  EXPECT_EQ(pipe.exit_code, 0);
  Lines lines = lines_of(pipe.out);
  ASSERT_EQ(lines.size(), 2u) << pipe.out.substr(0, 500);
  EXPECT_TRUE(lines[0].starts_with(R"({"ok":false,"error":"too_large","message":")")) << lines[0];
  EXPECT_EQ(lines[1], R"({"ok":true,"value":null})");
}

TEST_F(KvCli, InteractiveShellShowsTheLeaderInThePromptAndAnswersPutGetHelp) {
  const int leader_before = cluster_->wait_for_leader(60000);
  const std::string k = "greeting-" + run_id_;  // short: the line fits the terminal
  PtyCli sh(cli({}));
  ASSERT_TRUE(sh.expect(")> ")) << sh.transcript();
  std::string shown = last_prompt(sh.last_match_text());
  // The prompt names the leader (allowing for a leadership change meanwhile).
  if (shown != cluster_->endpoint(leader_before)) {
    EXPECT_EQ(shown, cluster_->endpoint(cluster_->wait_for_leader(60000))) << sh.transcript();
  }
  // Like a person: type a line once the prompt is there, then read the answer.
  bool prompted = true;
  auto ask = [&](std::string_view keys, std::string_view answer) {
    if (!prompted && !sh.expect(")> ")) return false;
    sh.send(keys);
    prompted = false;
    return sh.expect(answer);
  };

  ASSERT_TRUE(ask("put " + k + " \"hello world\"\r", "\nOK\r\n")) << sh.transcript();
  ASSERT_TRUE(sh.expect(")> ")) << sh.transcript();
  prompted = true;
  std::string after_put = last_prompt(sh.last_match_text());
  EXPECT_TRUE(after_put == cluster_->endpoint(1) || after_put == cluster_->endpoint(2) ||
              after_put == cluster_->endpoint(3))
      << sh.transcript();
  ASSERT_TRUE(ask("get " + k + "\r", "\nhello world\r\n")) << sh.transcript();
  ASSERT_TRUE(ask("get " + k + "-absent\r", "\n(nil)\r\n")) << sh.transcript();
#ifdef KV_CLI_HAVE_READLINE
  // Ctrl-P twice: the history brings back the first get.
  ASSERT_TRUE(ask("\x10\x10\r", "\nhello world\r\n")) << sh.transcript();
#endif
  ASSERT_TRUE(ask("help\r", "put KEY VALUE")) << sh.transcript();
  ASSERT_TRUE(sh.expect("\\xHH")) << sh.transcript();
  ASSERT_TRUE(ask("bogus\r", "error: usage: unknown command")) << sh.transcript();
  ASSERT_TRUE(sh.expect(")> ")) << sh.transcript();
  sh.send("\x04");  // Ctrl-D at an empty line
  EXPECT_EQ(sh.wait(), 0) << sh.transcript();
}

}  // namespace
}  // namespace raftkv::test
