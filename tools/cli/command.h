// The command language of kv-cli: words, quoting, commands and endpoints.
// Pure functions, shared by the one-shot, pipe and shell modes and tested
// without a cluster.
//
// Quoting (pipe and shell modes; one-shot arguments are taken literally):
// words are separated by whitespace (space, tab, CR, VT, FF). A double-quoted
// section may hold whitespace and these escapes: \" \\ \n \t \r \xHH (HH: two
// hex digits, any byte, NUL included). Outside double quotes a backslash is an
// ordinary byte. Quoted and unquoted parts next to each other form one word
// (a"b c"d is `ab cd`); "" is an empty word.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace raftkv::cli {

enum class Op { kGet, kPut, kAppend, kDel, kStatus, kHelp, kExit };

struct Command {
  Op op = Op::kHelp;
  std::string key;
  std::string value;  // put and append only
};

// The default of --endpoints: a local three-node cluster (tools/cluster).
inline constexpr std::string_view kDefaultEndpoints =
    "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

// Splits one line into words. nullopt (and *error) on an unterminated quote
// or a bad escape.
std::optional<std::vector<std::string>> split_words(std::string_view line, std::string* error);

// Reads a command from its words (command names are case-insensitive).
// nullopt (and *error, a one-line reason) on an unknown command or a wrong
// number of arguments.
std::optional<Command> parse_command(std::span<const std::string> words, std::string* error);

// Parses --endpoints: HOST:PORT[,HOST:PORT...] (IPv6 as [ADDR]:PORT; spaces
// around items ignored). nullopt (and *error) when empty or malformed.
std::optional<std::vector<std::string>> parse_endpoints(std::string_view spec, std::string* error);

// The `help` text of the shell and of `kv-cli help` (several lines).
extern const char* const kCommandHelp;
// The answer to `help` in pipe mode, where every command gets one line.
extern const char* const kCommandHelpLine;

}  // namespace raftkv::cli
