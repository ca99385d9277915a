// kv-cli's command language and output formats, byte for byte: these are the
// contract users' scripts parse.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "client/clerk.h"
#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace raftkv::cli {
namespace {

using Words = std::vector<std::string>;
using client::Code;
using client::EndpointStatus;
using client::Error;
using GetResult = client::Result<std::optional<std::string>>;

constexpr Format kJson{.json = true, .mode = Mode::kOneShot};
constexpr Format kPlain{.json = false, .mode = Mode::kOneShot};
constexpr Format kPipePlain{.json = false, .mode = Mode::kPipe};
constexpr Format kPipeJson{.json = true, .mode = Mode::kPipe};
constexpr Format kShellPlain{.json = false, .mode = Mode::kShell};

Words split(std::string_view line) {
  std::string error;
  auto w = split_words(line, &error);
  EXPECT_TRUE(w.has_value()) << line << ": " << error;
  return w.value_or(Words{});
}

std::string split_error(std::string_view line) {
  std::string error;
  auto w = split_words(line, &error);
  EXPECT_FALSE(w.has_value()) << line;
  return error;
}

TEST(SplitWords, SeparatesOnWhitespaceAndKeepsBackslashesOutsideQuotes) {
  EXPECT_EQ(split("  put \t k  v\r"), (Words{"put", "k", "v"}));
  EXPECT_EQ(split("put path C:\\tmp\\n"), (Words{"put", "path", "C:\\tmp\\n"}));
  EXPECT_EQ(split(""), Words{});
  EXPECT_EQ(split(" \t \r"), Words{});
}

TEST(SplitWords, DoubleQuotesHoldWhitespaceAndEveryDocumentedEscape) {
  EXPECT_EQ(split("put k \"hello world\""), (Words{"put", "k", "hello world"}));
  EXPECT_EQ(split(R"("a\"b\\c\nd\te\rf")"), (Words{"a\"b\\c\nd\te\rf"}));
  EXPECT_EQ(split(R"("\x00\xfF\x41")"), (Words{std::string("\x00\xff"
                                                           "A",
                                                           3)}));
  EXPECT_EQ(split(R"(put k "")"), (Words{"put", "k", ""}));
  EXPECT_EQ(split(R"(a"b c"d e)"), (Words{"ab cd", "e"}));
  EXPECT_EQ(split("\"tab\there\""), (Words{"tab\there"}));
}

TEST(SplitWords, RejectsUnterminatedQuotesAndUnknownOrShortEscapes) {
  EXPECT_NE(split_error("put k \"abc").find("unterminated quote"), std::string::npos);
  EXPECT_NE(split_error("put k \"abc\\").find("unterminated quote"), std::string::npos);
  EXPECT_NE(split_error(R"(put k "\q")").find("unknown escape \\q"), std::string::npos);
  EXPECT_NE(split_error(R"(put k "\x4")").find("two hex digits"), std::string::npos);
  EXPECT_NE(split_error(R"(put k "\xZZ")").find("two hex digits"), std::string::npos);
  EXPECT_NE(split_error(R"(put k "\x)").find("two hex digits"), std::string::npos);
}

TEST(ParseCommand, AcceptsEveryCommandWithItsArityInAnyCase) {
  std::string error;
  auto c = parse_command(Words{"PUT", "k", "v w"}, &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->op, Op::kPut);
  EXPECT_EQ(c->key, "k");
  EXPECT_EQ(c->value, "v w");
  EXPECT_EQ(parse_command(Words{"get", "k"}, &error)->op, Op::kGet);
  EXPECT_EQ(parse_command(Words{"append", "k", ""}, &error)->op, Op::kAppend);
  EXPECT_EQ(parse_command(Words{"Del", "k"}, &error)->op, Op::kDel);
  EXPECT_EQ(parse_command(Words{"status"}, &error)->op, Op::kStatus);
  EXPECT_EQ(parse_command(Words{"help"}, &error)->op, Op::kHelp);
  EXPECT_EQ(parse_command(Words{"exit"}, &error)->op, Op::kExit);
  EXPECT_EQ(parse_command(Words{"quit"}, &error)->op, Op::kExit);
  EXPECT_EQ(parse_command(Words{"get", ""}, &error)->key, "");
}

TEST(ParseCommand, RejectsUnknownCommandsAndWrongArityWithAOneLineReason) {
  std::string error;
  EXPECT_FALSE(parse_command(Words{"frob", "k"}, &error));
  EXPECT_EQ(error, "unknown command \"frob\" (commands: get, put, append, del, status, help)");
  EXPECT_FALSE(parse_command(Words{"get"}, &error));
  EXPECT_EQ(error, "get takes 1 argument (get KEY), got 0");
  EXPECT_FALSE(parse_command(Words{"put", "k"}, &error));
  EXPECT_EQ(error, "put takes 2 arguments (put KEY VALUE), got 1");
  EXPECT_FALSE(parse_command(Words{"status", "x"}, &error));
  EXPECT_EQ(error, "status takes 0 arguments (status), got 1");
  EXPECT_FALSE(parse_command(Words{std::string("g\nx")}, &error));
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_FALSE(parse_command(Words{}, &error));
}

TEST(ParseEndpoints, AcceptsHostPortListsAndRejectsMalformedItems) {
  std::string error;
  auto e = parse_endpoints("127.0.0.1:7001, localhost:7002 ,[::1]:7003", &error);
  ASSERT_TRUE(e) << error;
  EXPECT_EQ(*e, (Words{"127.0.0.1:7001", "localhost:7002", "[::1]:7003"}));
  EXPECT_EQ(*parse_endpoints(kDefaultEndpoints, &error),
            (Words{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}));
  for (const char* bad :
       {"", "a:1,", "nocolon", ":7001", "h:0", "h:65536", "h:7x", "::1:7001", "h:", "a:1,,b:2"}) {
    EXPECT_FALSE(parse_endpoints(bad, &error)) << bad;
    EXPECT_NE(error.find("--endpoints"), std::string::npos) << error;
  }
}

TEST(JsonString, EscapesQuotesBackslashesAndEveryControlByteAsU00XX) {
  EXPECT_EQ(json_string("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_string(std::string("\n\t\r\x01\x1f\x7f\0", 7)),
            R"("\u000a\u0009\u000d\u0001\u001f\u007f\u0000")");
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("/ <tag> '"), R"("/ <tag> '")");
}

TEST(JsonString, KeepsValidUtf8AndWritesEveryOtherByteAsU00XXOfTheByte) {
  EXPECT_EQ(json_string("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(json_string("\xff"), R"("\u00ff")");
  EXPECT_EQ(json_string("\xc3"), R"("\u00c3")");  // truncated
  EXPECT_EQ(json_string("\xc3"
                        "A"),
            R"("\u00c3A")");                                                    // bad continuation
  EXPECT_EQ(json_string("\xc0\xaf"), R"("\u00c0\u00af")");                      // overlong
  EXPECT_EQ(json_string("\xed\xa0\x80"), R"("\u00ed\u00a0\u0080")");            // surrogate
  EXPECT_EQ(json_string("\xf4\x90\x80\x80"), R"("\u00f4\u0090\u0080\u0080")");  // > U+10FFFF
  EXPECT_EQ(json_string("\xe2\x82"), R"("\u00e2\u0082")");
}

TEST(QuoteValue, UsesTheInputSyntaxAndReadsBackToTheSameBytes) {
  EXPECT_EQ(quote_value(std::string("a\"b\\c\nd\te\rf\0\x7f\xff", 14)),
            R"("a\"b\\c\nd\te\rf\x00\x7f\xff")");
  EXPECT_EQ(quote_value("h\xc3\xa9"), "\"h\xc3\xa9\"");
  EXPECT_EQ(quote_value("\xc2\x85"), R"("\xc2\x85")");  // U+0085, a C1 control

  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  for (int round = 0; round < 2000; ++round) {
    std::string value(rng() % 12, '\0');
    for (char& c : value)
      c = static_cast<char>(rng() % 4 == 0 ? "\"\\ \n\xc3\xa9"[rng() % 6] : rng());
    std::string error;
    auto words = split_words("put k " + quote_value(value), &error);
    ASSERT_TRUE(words) << "seed " << seed << ": " << error;
    ASSERT_EQ(*words, (Words{"put", "k", value})) << "seed " << seed;
    std::string shown = display_value(value);
    EXPECT_EQ(shown.find('\n'), std::string::npos) << "seed " << seed;
    if (shown.front() != '"') {
      EXPECT_EQ(shown, value) << "seed " << seed;
    }
  }
}

TEST(DisplayValue, ShowsPlainTextAsIsAndQuotesAnythingAmbiguous) {
  EXPECT_EQ(display_value("hello world"), "hello world");
  EXPECT_EQ(display_value("h\xc3\xa9llo"), "h\xc3\xa9llo");
  EXPECT_EQ(display_value("a\\b"), "a\\b");
  EXPECT_EQ(display_value("say \"hi\""), "say \"hi\"");
  EXPECT_EQ(display_value(""), R"("")");
  EXPECT_EQ(display_value("(nil)"), R"x("(nil)")x");
  EXPECT_EQ(display_value("error: x"), R"("error: x")");
  EXPECT_EQ(display_value("\"q\""), R"("\"q\"")");
  EXPECT_EQ(display_value(" lead"), R"(" lead")");
  EXPECT_EQ(display_value("trail "), R"("trail ")");
  EXPECT_EQ(display_value("two\nlines"), R"("two\nlines")");
  EXPECT_EQ(display_value("\xff"), R"("\xff")");
}

TEST(FormatGet, PrintsTheValueNilOrJsonAndExitsZero) {
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>("v")), kJson).text,
            "{\"ok\":true,\"value\":\"v\"}\n");
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>()), kJson).text,
            "{\"ok\":true,\"value\":null}\n");
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>()), kPlain).text, "(nil)\n");
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>()), kPipePlain).text, "(nil)\n");
  // One-shot: the exact bytes. Pipe and shell: one line, quoted when needed.
  std::string binary("a\nb\0\xff", 5);
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>(binary)), kPlain).text, binary + "\n");
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>(binary)), kPipePlain).text,
            "\"a\\nb\\x00\\xff\"\n");
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>(binary)), kShellPlain).text,
            "\"a\\nb\\x00\\xff\"\n");
  EXPECT_EQ(format_get(GetResult(std::optional<std::string>(binary)), kPipeJson).text,
            "{\"ok\":true,\"value\":\"a\\u000ab\\u0000\\u00ff\"}\n");
  auto o = format_get(GetResult(std::optional<std::string>("v")), kPlain);
  EXPECT_EQ(o.exit_code, kExitOk);
  EXPECT_FALSE(o.to_stderr);
}

TEST(FormatErrors, MapEachCodeToItsNameAndExitCodeOnOneLine) {
  struct Case {
    Code code;
    const char* name;
    int exit_code;
  };
  for (Case c : {Case{Code::kTimeout, "timeout", 3}, Case{Code::kUnavailable, "unavailable", 1},
                 Case{Code::kTooLarge, "too_large", 1}, Case{Code::kBadRequest, "bad_request", 1},
                 Case{Code::kInternal, "internal", 1}}) {
    Error e{c.code, "went \"wrong\"\nbadly"};
    Output plain = format_write(client::Status(e), kPlain);
    EXPECT_EQ(plain.text, fmt::format("error: {}: went \"wrong\"\\nbadly\n", c.name));
    EXPECT_TRUE(plain.to_stderr);
    EXPECT_EQ(plain.exit_code, c.exit_code);
    Output pipe = format_get(GetResult(e), kPipePlain);
    EXPECT_EQ(pipe.text, plain.text);
    EXPECT_FALSE(pipe.to_stderr) << "pipe mode answers every command on stdout";
    Output json = format_write(client::Status(e), kJson);
    EXPECT_EQ(json.text, fmt::format("{{\"ok\":false,\"error\":\"{}\",\"message\":"
                                     "\"went \\\"wrong\\\"\\u000abadly\"}}\n",
                                     c.name));
    EXPECT_FALSE(json.to_stderr);
    EXPECT_EQ(json.exit_code, c.exit_code);
  }
  EXPECT_EQ(format_write(client::Status(), kPlain).text, "OK\n");
  EXPECT_EQ(format_write(client::Status(), kJson).text, "{\"ok\":true}\n");
  Output usage = format_usage("get takes 1 argument", kPipeJson);
  EXPECT_EQ(usage.text,
            "{\"ok\":false,\"error\":\"usage\",\"message\":\"get takes 1 argument\"}\n");
  EXPECT_EQ(usage.exit_code, kExitUsage);
  EXPECT_EQ(format_usage("x", kPlain).text, "error: usage: x\n");
}

std::vector<EndpointStatus> sample_status() {
  EndpointStatus leader;
  leader.endpoint = "127.0.0.1:7001";
  leader.reachable = true;
  leader.id = 1;
  leader.role = "leader";
  leader.term = 3;
  leader.leader = 1;
  leader.commit_index = 10;
  leader.applied_index = 9;
  EndpointStatus pre = leader;
  pre.endpoint = "127.0.0.1:7002";
  pre.id = 2;
  pre.role = "pre-candidate";
  pre.term = 4;
  pre.leader = 0;
  pre.commit_index = 8;
  pre.applied_index = 8;
  EndpointStatus dead;
  dead.endpoint = "127.0.0.1:7003";
  dead.error = "127.0.0.1:7003: Connection refused";
  return {leader, pre, dead};
}

TEST(FormatStatus, JsonIsOneArrayLineWithPreCandidateShownAsCandidate) {
  Output o = format_status(sample_status(), kJson);
  EXPECT_EQ(o.text, R"([{"endpoint":"127.0.0.1:7001","id":1,"role":"leader","term":3,"leader":1,)"
                    R"("commit_index":10,"applied_index":9},)"
                    R"({"endpoint":"127.0.0.1:7002","id":2,"role":"candidate","term":4,"leader":0,)"
                    R"("commit_index":8,"applied_index":8},)"
                    R"({"endpoint":"127.0.0.1:7003","role":"unreachable",)"
                    R"("error":"127.0.0.1:7003: Connection refused"}])"
                    "\n");
  EXPECT_EQ(o.exit_code, kExitOk);
  EXPECT_EQ(format_status(sample_status(), kPipeJson).text, o.text);
}

TEST(FormatStatus, PlainIsAnAlignedTableAndOneLineInPipeMode) {
  EXPECT_EQ(format_status(sample_status(), kPlain).text,
            "ENDPOINT        ID  ROLE         TERM  LEADER  COMMIT  APPLIED  ERROR\n"
            "127.0.0.1:7001  1   leader       3     1       10      9\n"
            "127.0.0.1:7002  2   candidate    4     -       8       8\n"
            "127.0.0.1:7003  -   unreachable  -     -       -       -        "
            "127.0.0.1:7003: Connection refused\n");
  EXPECT_EQ(format_status(sample_status(), kPipePlain).text,
            "127.0.0.1:7001 id=1 role=leader term=3 leader=1 commit=10 applied=9; "
            "127.0.0.1:7002 id=2 role=candidate term=4 leader=0 commit=8 applied=8; "
            "127.0.0.1:7003 role=unreachable error=\"127.0.0.1:7003: Connection refused\"\n");
  auto reachable = sample_status();
  reachable.pop_back();
  EXPECT_EQ(format_status(reachable, kShellPlain).text,
            "ENDPOINT        ID  ROLE       TERM  LEADER  COMMIT  APPLIED\n"
            "127.0.0.1:7001  1   leader     3     1       10      9\n"
            "127.0.0.1:7002  2   candidate  4     -       8       8\n");
}

TEST(FormatStatus, ExitsOneWhenNoEndpointAnswered) {
  auto all_dead = sample_status();
  all_dead.erase(all_dead.begin(), all_dead.begin() + 2);
  EXPECT_EQ(format_status(all_dead, kJson).exit_code, kExitFailure);
  EXPECT_EQ(format_status(all_dead, kJson).text,
            R"([{"endpoint":"127.0.0.1:7003","role":"unreachable",)"
            R"("error":"127.0.0.1:7003: Connection refused"}])"
            "\n");
}

TEST(FormatHelp, IsTheFullTextOneLineInPlainPipeModeAndOneJsonObjectWithJson) {
  EXPECT_EQ(format_help(kPlain).text, kCommandHelp);
  EXPECT_EQ(format_help(kShellPlain).text, kCommandHelp);
  EXPECT_EQ(format_help(kPipePlain).text, std::string(kCommandHelpLine) + "\n");
  EXPECT_EQ(std::string(kCommandHelpLine).find('\n'), std::string::npos);
  for (Format f : {kJson, kPipeJson}) {
    std::string json = format_help(f).text;
    EXPECT_EQ(json, "{\"ok\":true,\"help\":" + json_string(kCommandHelp) + "}\n");
    EXPECT_TRUE(json.starts_with(R"({"ok":true,"help":"Commands:\u000a  get KEY)")) << json;
    EXPECT_EQ(json.find('\n'), json.size() - 1);
  }
}

}  // namespace
}  // namespace raftkv::cli
