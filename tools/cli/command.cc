#include "tools/cli/command.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace raftkv::cli {

const char* const kCommandHelp =
    "Commands:\n"
    "  get KEY           print KEY's value; (nil) when the key is absent\n"
    "  put KEY VALUE     set KEY to VALUE\n"
    "  append KEY VALUE  append VALUE to KEY's value (an absent key counts as empty)\n"
    "  del KEY           delete KEY (deleting an absent key succeeds)\n"
    "  status            every endpoint's id, role, term, leader, commit and applied index\n"
    "  help              this text\n"
    "  exit, quit        leave (as does Ctrl-D)\n"
    "Words are separated by spaces or tabs. Double quotes make one word of text with\n"
    "spaces; inside them these escapes stand for a byte: \\\" \\\\ \\n \\t \\r \\xHH\n"
    "(two hex digits, any byte). Outside quotes a backslash is an ordinary character.\n"
    "  put greeting \"hello world\"      put bin \"\\x00\\xff\\n\"      put path C:\\tmp\n"
    "Values that are not plain one-line text are shown quoted the same way, so\n"
    "they can be pasted back into a command.\n";

const char* const kCommandHelpLine =
    "commands: get KEY | put KEY VALUE | append KEY VALUE | del KEY | status | help | exit; "
    "quote with \"...\" (escapes \\\" \\\\ \\n \\t \\r \\xHH)";

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

struct CommandSpec {
  std::string_view name;
  Op op;
  size_t args;
  std::string_view synopsis;
};

constexpr std::array<CommandSpec, 8> kCommands = {{
    {"get", Op::kGet, 1, "get KEY"},
    {"put", Op::kPut, 2, "put KEY VALUE"},
    {"append", Op::kAppend, 2, "append KEY VALUE"},
    {"del", Op::kDel, 1, "del KEY"},
    {"status", Op::kStatus, 0, "status"},
    {"help", Op::kHelp, 0, "help"},
    {"exit", Op::kExit, 0, "exit"},
    {"quit", Op::kExit, 0, "quit"},
}};

// A word shown inside an error message: control bytes escaped, cut short.
std::string shown(std::string_view word) {
  std::string out;
  for (unsigned char c : word.substr(0, 40)) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (word.size() > 40) out += "...";
  return out;
}

}  // namespace

std::optional<std::vector<std::string>> split_words(std::string_view line, std::string* error) {
  std::vector<std::string> words;
  size_t i = 0;
  while (true) {
    while (i < line.size() && is_space(line[i]))
      ++i;
    if (i == line.size()) return words;
    std::string word;
    while (i < line.size() && !is_space(line[i])) {
      if (line[i] != '"') {
        word += line[i++];
        continue;
      }
      const size_t open = i++;
      while (true) {
        if (i == line.size()) {
          *error = fmt::format("unterminated quote (opened at column {})", open + 1);
          return std::nullopt;
        }
        char c = line[i++];
        if (c == '"') break;
        if (c != '\\') {
          word += c;
          continue;
        }
        if (i == line.size()) continue;  // reported as unterminated above
        char e = line[i++];
        switch (e) {
          case '"':
          case '\\':
            word += e;
            break;
          case 'n':
            word += '\n';
            break;
          case 't':
            word += '\t';
            break;
          case 'r':
            word += '\r';
            break;
          case 'x': {
            int hi = i < line.size() ? hex_digit(line[i]) : -1;
            int lo = i + 1 < line.size() ? hex_digit(line[i + 1]) : -1;
            if (hi < 0 || lo < 0) {
              *error = fmt::format("\\x needs two hex digits (column {})", i - 1);
              return std::nullopt;
            }
            word += static_cast<char>(hi * 16 + lo);
            i += 2;
            break;
          }
          default:
            *error = fmt::format("unknown escape \\{} (column {}); use \\\" \\\\ \\n \\t \\r \\xHH",
                                 shown(std::string_view(&e, 1)), i - 1);
            return std::nullopt;
        }
      }
    }
    words.push_back(std::move(word));
  }
}

std::optional<Command> parse_command(std::span<const std::string> words, std::string* error) {
  if (words.empty()) {
    *error = "no command";
    return std::nullopt;
  }
  const std::string name = lower(words[0]);
  auto spec = std::find_if(kCommands.begin(), kCommands.end(),
                           [&](const CommandSpec& s) { return s.name == name; });
  if (spec == kCommands.end()) {
    *error = fmt::format("unknown command \"{}\" (commands: get, put, append, del, status, help)",
                         shown(words[0]));
    return std::nullopt;
  }
  const size_t got = words.size() - 1;
  if (got != spec->args) {
    *error = fmt::format("{} takes {} argument{} ({}), got {}", spec->name, spec->args,
                         spec->args == 1 ? "" : "s", spec->synopsis, got);
    return std::nullopt;
  }
  Command c;
  c.op = spec->op;
  if (spec->args >= 1) c.key = words[1];
  if (spec->args >= 2) c.value = words[2];
  return c;
}

std::optional<std::vector<std::string>> parse_endpoints(std::string_view spec, std::string* error) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    size_t comma = spec.find(',', pos);
    std::string_view item =
        spec.substr(pos, comma == std::string_view::npos ? spec.npos : comma - pos);
    while (!item.empty() && is_space(item.front()))
      item.remove_prefix(1);
    while (!item.empty() && is_space(item.back()))
      item.remove_suffix(1);
    if (item.empty()) {
      *error = "--endpoints has an empty item; expected HOST:PORT[,HOST:PORT...]";
      return std::nullopt;
    }
    size_t colon = item.rfind(':');
    std::string_view host = colon == item.npos ? "" : item.substr(0, colon);
    std::string_view port = colon == item.npos ? "" : item.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    bool port_ok = !port.empty() && ec == std::errc() && end == port.data() + port.size() &&
                   value >= 1 && value <= 65535;
    bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    bool host_ok = !host.empty() && (host.find(':') == host.npos || bracketed);
    if (!port_ok || !host_ok) {
      *error = fmt::format(
          "--endpoints item \"{}\" is not HOST:PORT (port 1-65535; IPv6 as [ADDR]:PORT)",
          shown(item));
      return std::nullopt;
    }
    out.emplace_back(item);
    if (comma == std::string_view::npos) return out;
    pos = comma + 1;
  }
}

}  // namespace raftkv::cli
