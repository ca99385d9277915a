// How kv-cli writes results: JSON lines, plain text, the status table, and
// the exit codes. Pure functions over the clerk's result types, so every
// byte of the contract is unit-tested.
//
// Escaping:
// - JSON strings: `"` and `\` are backslash-escaped; bytes 0x00-0x1f and 0x7f
//   are written \u00XX; valid UTF-8 is written as is; every byte that is not
//   part of a valid UTF-8 sequence is written \u00XX with XX its value
//   (80-ff). So in the JSON text, \u0080-\u00ff always stand for one raw byte,
//   and a value with no valid non-ASCII characters is recovered exactly by
//   encoding the parsed string as Latin-1.
// - Quoted form (pipe and shell modes, plain output): the quoting syntax of the
//   command language, so a shown value can be pasted back into a command:
//   "..." with \" \\ \n \t \r, \xHH for other control bytes and for bytes not
//   part of valid UTF-8; valid UTF-8 as is.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/clerk.h"

namespace raftkv::cli {

// Documented in --help; scripts depend on them.
inline constexpr int kExitOk = 0;       // success, including get of an absent key
inline constexpr int kExitFailure = 1;  // unavailable, too_large, bad_request, internal
inline constexpr int kExitUsage = 2;    // unknown flag or command, wrong arity
inline constexpr int kExitTimeout = 3;  // timeout: a write's outcome is unknown

// One-shot: one command from argv. Pipe: commands from a non-terminal stdin,
// exactly one output line each. Shell: the interactive shell.
enum class Mode { kOneShot, kPipe, kShell };

struct Format {
  bool json = false;
  Mode mode = Mode::kOneShot;
};

// What one command prints, and where.
struct Output {
  std::string text;         // whole lines, each ending in '\n'
  bool to_stderr = false;   // only plain-text errors in one-shot mode
  int exit_code = kExitOk;  // the process's exit code in one-shot mode
};

std::string json_string(std::string_view bytes);
std::string quote_value(std::string_view bytes);
// A value as the pipe and shell modes show it: as is when it is non-empty
// printable UTF-8 text (no control characters) that neither starts nor ends
// with a space, does not start with `"` or `error:` and is not `(nil)`;
// otherwise quote_value(bytes). Never holds a newline, and reading it back is
// unambiguous.
std::string display_value(std::string_view bytes);

// The clerk's "pre-candidate" is shown as "candidate".
std::string_view output_role(std::string_view clerk_role);
int exit_code_for(client::Code code);

Output format_get(const client::Result<std::optional<std::string>>& result, Format f);
Output format_write(const client::Status& status, Format f);
// Exit code 0 when at least one endpoint answered, 1 when none did.
Output format_status(const std::vector<client::EndpointStatus>& status, Format f);
// A command-language error (unknown command, arity, quoting): code "usage".
Output format_usage(std::string_view message, Format f);
// The `help` command: the full text; plain pipe mode: one line; --json:
// {"ok":true,"help":"FULL TEXT"}.
Output format_help(Format f);

}  // namespace raftkv::cli
