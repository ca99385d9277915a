// Runs the kv-cli binary as a user would: fork/exec with pipes, or on a
// pseudo-terminal. Every wait has a deadline and is driven by poll(), never
// by a fixed sleep.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::test {

struct CliResult {
  int exit_code = -1;  // 128 + signal when killed; -1 when it had to be killed at the deadline
  std::string out;
  std::string err;
};

// Runs kv-cli with `args`, writes `input` to its stdin and closes it, and
// collects stdout, stderr and the exit code.
CliResult run_cli(const std::vector<std::string>& args, std::string_view input = "",
                  int timeout_ms = 60000);

// kv-cli in pipe mode, fed and read one line at a time.
class PipedCli {
 public:
  explicit PipedCli(const std::vector<std::string>& args);
  ~PipedCli();
  PipedCli(const PipedCli&) = delete;
  PipedCli& operator=(const PipedCli&) = delete;

  void send(std::string_view bytes);
  // The next stdout line without its '\n'; nullopt at end of output or when
  // none is complete within timeout_ms.
  std::optional<std::string> read_line(int timeout_ms = 30000);
  void close_stdin();
  // Waits for the exit; returns the exit code and leaves the remaining
  // stdout in *rest and stderr in *err.
  int wait(std::string* rest, std::string* err, int timeout_ms = 30000);

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string buffer_;
};

// kv-cli on a pseudo-terminal (its stdin, stdout and stderr), as in a
// terminal emulator of 100x24 with TERM=dumb.
class PtyCli {
 public:
  explicit PtyCli(const std::vector<std::string>& args);
  ~PtyCli();
  PtyCli(const PtyCli&) = delete;
  PtyCli& operator=(const PtyCli&) = delete;

  void send(std::string_view keys);
  // Reads until `needle` appears after the previous match; true when found.
  // The cursor moves past the match.
  bool expect(std::string_view needle, int timeout_ms = 30000);
  // Everything the terminal showed so far.
  const std::string& transcript() const { return transcript_; }
  // The text between the previous and the latest match's end.
  const std::string& last_match_text() const { return last_text_; }
  int wait(int timeout_ms = 30000);

 private:
  pid_t pid_ = -1;
  int master_ = -1;
  std::string transcript_;
  size_t cursor_ = 0;
  std::string last_text_;
};

}  // namespace raftkv::test
