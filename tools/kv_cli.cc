// kv-cli: the command-line client of raftkv. One-shot commands from argv, a
// pipe mode (one output line per input line) and an interactive shell, all
// on one Clerk per process (one client session). The contract (formats, exit
// codes) is in --help and in tools/cli/format.h; the command language in
// tools/cli/command.h.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#ifdef KV_CLI_HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

#include "client/clerk.h"
#include "raft/core/check.h"
#include "tools/cli/command.h"
#include "tools/cli/format.h"

namespace raftkv::cli {
namespace {

const char* const kDescription =
    "kv-cli: the command-line client of raftkv, a replicated linearizable key-value store.\n"
    "\n"
    "  kv-cli [OPTIONS] COMMAND [ARGS...]   run one command and exit\n"
    "  kv-cli [OPTIONS]                     stdin a terminal: interactive shell\n"
    "  kv-cli [OPTIONS] < FILE              stdin not a terminal: one command per line\n";

// CLI11's usage line knows nothing of the command that follows the options.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string name) const override {
    return fmt::format(
        "Usage: {} [--endpoints HOST:PORT,...] [--timeout SECONDS] [--json] [COMMAND ARGS...]\n",
        name);
  }
};

const char* const kFooter = R"HELP(Commands:
  get KEY            print KEY's value; (nil) when the key is absent
  put KEY VALUE      set KEY to VALUE
  append KEY VALUE   append VALUE to KEY's value (an absent key counts as empty)
  del KEY            delete KEY (deleting an absent key succeeds)
  status             ask every endpoint for its id, role, term, leader, commit
                     and applied index
  help               list the commands and the quoting rules

Modes:
  One-shot (a COMMAND on the command line): runs it and exits with the codes
    below. Its arguments are taken literally, byte for byte (no quote or
    escape processing). Options go before COMMAND; every word after it is an
    argument, so values may start with '-'.
  Shell (no COMMAND, stdin a terminal): line editing and history; the prompt
    names the leader, "raftkv(127.0.0.1:7001)> " or "raftkv(no leader)> ";
    "exit", "quit" or Ctrl-D leaves; Ctrl-C clears the line being typed
    (when built with readline) and ends kv-cli while a command runs.
  Pipe (no COMMAND, stdin not a terminal): one command per line, exactly one
    output line per command, written and flushed before the next line is
    read. Blank lines are skipped and produce no output; "exit" or "quit"
    ends the input early, also without output. "help" answers with one line
    (with --json: {"ok":true,"help":"TEXT"}).
  Shell and pipe modes use one client session (one client id) throughout.
  Their words are separated by whitespace; "..." quotes a word with spaces,
  and inside quotes \" \\ \n \t \r \xHH (any byte) are escapes. Outside
  quotes a backslash is an ordinary character.

Output (plain):
  get: the value and a newline; (nil) when the key is absent. In one-shot
    mode the value's exact bytes. In shell and pipe modes a value is shown
    as is when it is plain one-line text, and otherwise quoted with the
    escapes above (so the line never breaks and can be pasted back): when it
    is empty, holds a control character or bytes that are not UTF-8, starts
    or ends with a space, starts with '"' or "error:", or is "(nil)".
  put, append, del: OK
  status: an aligned table, one row per endpoint (pipe mode: one line,
    "ENDPOINT id=N role=R term=N leader=N commit=N applied=N" per endpoint,
    "; " between them; an unreachable one as
    "ENDPOINT role=unreachable error="..."").
  Errors: "error: CODE: MESSAGE". One-shot: on stderr. Shell and pipe: on
    stdout, as the command's one line.
Output (--json): one line per command on stdout, errors included:
  get       {"ok":true,"value":"V"}    or {"ok":true,"value":null} if absent
  put, append, del                     {"ok":true}
  failure   {"ok":false,"error":"CODE","message":"..."}
  status    one line: an array with one object per endpoint, in order:
            {"endpoint":"HOST:PORT","id":N,"role":"leader|follower|candidate",
             "term":N,"leader":N,"commit_index":N,"applied_index":N}
            {"endpoint":"HOST:PORT","role":"unreachable","error":"..."}
            (leader 0: none known)
  JSON strings escape " and \ with a backslash and control bytes as \u00XX;
  valid UTF-8 is written as is; each byte that is not part of valid UTF-8 is
  written \u00XX, XX being the byte (80-ff).

Error codes:
  timeout      the deadline passed: a write's outcome is unknown (it may or
               may not have been applied); for get, no answer in time
  unavailable  no leader reachable before the deadline; the write was not
               applied
  too_large    key over 4 KiB or value over 1 MiB; not applied
  bad_request  refused by the server; not applied
  internal     unexpected server error
  usage        unknown command, wrong number of arguments, bad quoting

Exit codes (one-shot):
  0  success, including get of an absent key, and status when at least one
     endpoint answered
  1  unavailable, too_large, bad_request, internal; status when no endpoint
     answered
  2  usage error: unknown option or command, wrong number of arguments, bad
     option value ("error: usage: REASON" on stderr; with --json, a usage
     error in the command is a JSON line on stdout instead)
  3  timeout: outcome unknown
  Shell and pipe modes exit 0 whatever the commands' outcomes; 1 when stdin
  could not be read or stdout could not be written.

Examples:
  kv-cli put greeting "hello world"
  kv-cli --endpoints 10.0.0.1:7001,10.0.0.2:7001 --json get greeting
  kv-cli --timeout 0.5 del greeting; echo "exit code $?"
  printf 'put k "a\\x00b"\nget k\n' | kv-cli --json
  kv-cli status
)HELP";

bool write_output(const Output& o) {
  FILE* f = o.to_stderr ? stderr : stdout;
  bool ok = std::fwrite(o.text.data(), 1, o.text.size(), f) == o.text.size();
  return std::fflush(f) == 0 && ok;
}

int usage_exit(std::string_view reason) {
  std::fprintf(stderr, "error: usage: %.*s\n", static_cast<int>(reason.size()), reason.data());
  return kExitUsage;
}

Output execute(client::Clerk& clerk, const Command& c, Format f) {
  switch (c.op) {
    case Op::kGet:
      return format_get(clerk.get(c.key), f);
    case Op::kPut:
      return format_write(clerk.put(c.key, c.value), f);
    case Op::kAppend:
      return format_write(clerk.append(c.key, c.value), f);
    case Op::kDel:
      return format_write(clerk.del(c.key), f);
    case Op::kStatus:
      return format_status(clerk.status(), f);
    case Op::kHelp:
      return format_help(f);
    case Op::kExit:
      break;
  }
  RAFTKV_CHECK_MSG(false, "exit is handled by the caller");
  return {};
}

// One line of the shell or pipe mode: no output for a blank line; `exit`
// when the line asks to leave.
struct LineResult {
  std::optional<Output> output;
  bool exit = false;
};

LineResult run_line(client::Clerk& clerk, std::string_view line, Format f) {
  std::string error;
  auto words = split_words(line, &error);
  if (!words) return {format_usage(error, f)};
  if (words->empty()) return {};
  auto command = parse_command(*words, &error);
  if (!command) return {format_usage(error, f)};
  if (command->op == Op::kExit) return {.output = std::nullopt, .exit = true};
  return {execute(clerk, *command, f)};
}

int run_one_shot(const client::Options& options, const std::vector<std::string>& words, bool json) {
  const Format f{.json = json, .mode = Mode::kOneShot};
  std::string error;
  auto command = parse_command(words, &error);
  if (!command) {
    for (size_t i = 1; i < words.size(); ++i) {
      if (words[i].starts_with("--endpoints") || words[i].starts_with("--timeout") ||
          words[i] == "--json" || words[i] == "--help") {
        error += "; options go before the command";
        break;
      }
    }
    return write_output(format_usage(error, f)) ? kExitUsage : kExitFailure;
  }
  if (command->op == Op::kExit)
    return write_output(format_usage("exit and quit only end a shell or a pipe", f)) ? kExitUsage
                                                                                     : kExitFailure;
  if (command->op == Op::kHelp) return write_output(format_help(f)) ? kExitOk : kExitFailure;
  client::Clerk clerk(options);
  Output o = execute(clerk, *command, f);
  return write_output(o) ? o.exit_code : kExitFailure;
}

int run_pipe(const client::Options& options, bool json) {
  const Format f{.json = json, .mode = Mode::kPipe};
  client::Clerk clerk(options);
  char* buf = nullptr;
  size_t cap = 0;
  int rc = kExitOk;
  while (true) {
    ssize_t n = ::getline(&buf, &cap, stdin);
    if (n < 0) {
      if (std::ferror(stdin)) {
        std::fprintf(stderr, "kv-cli: cannot read stdin: %s\n", std::strerror(errno));
        rc = kExitFailure;
      }
      break;
    }
    std::string_view line(buf, static_cast<size_t>(n));
    if (line.ends_with('\n')) line.remove_suffix(1);
    LineResult r = run_line(clerk, line, f);
    if (r.exit) break;
    if (r.output && !write_output(*r.output)) {
      rc = kExitFailure;  // stdout is gone: nobody reads the answers
      break;
    }
  }
  std::free(buf);
  return rc;
}

// The endpoint that says it leads (the highest term wins), or "".
std::string find_leader(const std::vector<client::EndpointStatus>& status) {
  std::string leader;
  uint64_t term = 0;
  for (const auto& s : status) {
    if (s.reachable && s.role == "leader" && (leader.empty() || s.term > term)) {
      leader = s.endpoint;
      term = s.term;
    }
  }
  return leader;
}

#ifdef KV_CLI_HAVE_READLINE
volatile sig_atomic_t g_in_readline = 0;

// Ctrl-C abandons the line being typed, as in bash; during a command it ends
// kv-cli (a clerk operation cannot be cancelled).
void on_sigint(int) {
  if (!g_in_readline) ::_exit(130);
  (void)!::write(STDOUT_FILENO, "\n", 1);
  rl_on_new_line();
  rl_replace_line("", 0);
  rl_redisplay();
}

char* command_name_generator(const char* text, int state) {
  static const char* const kNames[] = {"get",  "put",  "append", "del",  "status",
                                       "help", "exit", "quit",   nullptr};
  static size_t next = 0;
  if (state == 0) next = 0;
  while (kNames[next] != nullptr) {
    const char* name = kNames[next++];
    if (std::strncmp(name, text, std::strlen(text)) == 0) return ::strdup(name);
  }
  return nullptr;
}

// Tab completes command names in the first word; never file names.
char** complete(const char* text, int start, int) {
  rl_attempted_completion_over = 1;
  for (int i = 0; i < start; ++i)
    if (rl_line_buffer[i] != ' ' && rl_line_buffer[i] != '\t') return nullptr;
  return rl_completion_matches(text, command_name_generator);
}

void init_line_editing() {
  rl_readline_name = "kv-cli";
  rl_attempted_completion_function = complete;
  rl_catch_signals = 0;
  using_history();
  stifle_history(1000);
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

// nullopt at end of input, with the cursor moved to a fresh line. Readline
// reports a read error as end of input.
std::optional<std::string> read_line(const std::string& prompt, bool* read_error) {
  *read_error = false;
  g_in_readline = 1;
  char* line = ::readline(prompt.c_str());
  g_in_readline = 0;
  if (line == nullptr) {
    // Readline ends the line itself when it had bracketed paste on.
    const char* paste = rl_variable_value("enable-bracketed-paste");
    if (paste == nullptr || std::strcmp(paste, "on") != 0) std::fputs("\n", stdout);
    std::fflush(stdout);
    return std::nullopt;
  }
  std::string out(line);
  std::free(line);
  if (out.find_first_not_of(" \t") != std::string::npos) {
    HIST_ENTRY* last =
        history_length > 0 ? history_get(history_base + history_length - 1) : nullptr;
    if (last == nullptr || out != last->line) add_history(out.c_str());
  }
  return out;
}
#else
// Without readline the terminal's own line discipline edits the line
// (backspace, Ctrl-U); there is no history.
void init_line_editing() {}

// nullopt at end of input, with the cursor moved to a fresh line.
std::optional<std::string> read_line(const std::string& prompt, bool* read_error) {
  *read_error = false;
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);
  char* buf = nullptr;
  size_t cap = 0;
  ssize_t n = ::getline(&buf, &cap, stdin);
  if (n < 0) {
    *read_error = std::ferror(stdin) != 0;
    std::free(buf);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    return std::nullopt;
  }
  std::string out(buf, static_cast<size_t>(n));
  std::free(buf);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}
#endif

int run_shell(const client::Options& options, bool json) {
  const Format f{.json = json, .mode = Mode::kShell};
  client::Clerk clerk(options);
  // Finds the leader for the prompt while the session's clerk knows none;
  // short, so a dead cluster does not make the prompt slow.
  client::Options probe_options = options;
  probe_options.timeout = std::min(options.timeout, std::chrono::milliseconds(1000));
  client::Clerk probe(probe_options);
  init_line_editing();
  std::fputs("kv-cli: \"help\" lists the commands; \"exit\" or Ctrl-D leaves.\n", stdout);
  std::fflush(stdout);
  std::string leader = find_leader(probe.status());
  while (true) {
    bool read_error = false;
    auto line =
        read_line(fmt::format("raftkv({})> ", leader.empty() ? "no leader" : leader), &read_error);
    if (!line) return read_error ? kExitFailure : kExitOk;
    LineResult r = run_line(clerk, *line, f);
    if (r.exit) return kExitOk;
    if (r.output && !write_output(*r.output)) return kExitFailure;
    leader = clerk.leader_endpoint();
    if (leader.empty()) leader = find_leader(probe.status());
  }
}

int run(int argc, char** argv) {
  // A closed stdout shows up as a failed write (exit 1), not as a signal.
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{kDescription, "kv-cli"};
  std::string endpoints_spec(kDefaultEndpoints);
  double timeout_s = 5.0;
  bool json = false;
  app.add_option("--endpoints", endpoints_spec,
                 "cluster members to talk to, HOST:PORT[,HOST:PORT...] (any subset; the "
                 "leader is found from there)")
      ->capture_default_str();
  app.add_option("--timeout", timeout_s,
                 "seconds each command may take, retries included; fractions allowed, above 0 "
                 "and at most 86400")
      ->capture_default_str();
  app.add_flag("--json", json, "print one JSON object (status: one array) per command");
  app.footer(kFooter);
  app.formatter(std::make_shared<HelpFormatter>());
  app.prefix_command();  // everything from the command on is the command's
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return usage_exit(fmt::format("{} (see kv-cli --help)", e.what()));
  }
  std::vector<std::string> words = app.remaining();
  if (!words.empty() && words[0] == "--") {
    words.erase(words.begin());
  } else if (!words.empty() && words[0].size() > 1 && words[0][0] == '-') {
    return usage_exit(fmt::format("unknown option {} (see kv-cli --help)", words[0]));
  }
  if (!std::isfinite(timeout_s) || timeout_s <= 0 || timeout_s > 24 * 3600)
    return usage_exit("--timeout must be a number of seconds above 0 and at most 86400");
  std::string error;
  auto endpoints = parse_endpoints(endpoints_spec, &error);
  if (!endpoints) return usage_exit(error);
  client::Options options;
  options.endpoints = std::move(*endpoints);
  options.timeout = std::chrono::milliseconds(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(timeout_s * 1000))));

  if (!words.empty()) return run_one_shot(options, words, json);
  if (::isatty(STDIN_FILENO)) return run_shell(options, json);
  return run_pipe(options, json);
}

}  // namespace
}  // namespace raftkv::cli

int main(int argc, char** argv) {
  return raftkv::cli::run(argc, argv);
}
