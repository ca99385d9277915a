#include "tools/cli/format.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include <fmt/format.h>

#include "tools/cli/command.h"

namespace raftkv::cli {

namespace {

// The length of the valid UTF-8 sequence that starts at s[i] (1 for ASCII),
// or 0 when s[i] does not start one (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF). *code_point is set when valid.
size_t utf8_sequence(std::string_view s, size_t i, uint32_t* code_point) {
  auto byte = [&](size_t k) -> unsigned { return static_cast<unsigned char>(s[k]); };
  unsigned b0 = byte(i);
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  size_t len = 0;
  unsigned lo = 0x80, hi = 0xbf;  // bounds of the second byte
  uint32_t cp = 0;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    cp = b0 & 0x0f;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    unsigned b = byte(i + k);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  *code_point = cp;
  return len;
}

bool is_control(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

// Escapes in the command language's quoting syntax (without the quotes):
// control characters and bytes outside valid UTF-8 become \n \t \r or \xHH.
// `quotes`: also escape `"` and `\`, so the result reads back exactly.
void append_escaped(std::string* out, std::string_view bytes, bool quotes) {
  size_t i = 0;
  while (i < bytes.size()) {
    uint32_t cp = 0;
    size_t len = utf8_sequence(bytes, i, &cp);
    if (len == 0 || is_control(cp)) {
      // An invalid byte, or every byte of a control character.
      size_t n = std::max<size_t>(len, 1);
      for (size_t k = i; k < i + n; ++k) {
        unsigned char c = static_cast<unsigned char>(bytes[k]);
        if (c == '\n') {
          *out += "\\n";
        } else if (c == '\t') {
          *out += "\\t";
        } else if (c == '\r') {
          *out += "\\r";
        } else {
          *out += fmt::format("\\x{:02x}", c);
        }
      }
      i += n;
      continue;
    }
    if (quotes && (bytes[i] == '"' || bytes[i] == '\\')) *out += '\\';
    out->append(bytes.substr(i, len));
    i += len;
  }
}

// A message on one line: control bytes escaped.
std::string one_line(std::string_view message) {
  std::string out;
  append_escaped(&out, message, /*quotes=*/false);
  return out;
}

Output error_output(std::string_view code, std::string_view message, int exit_code, Format f) {
  Output o;
  o.exit_code = exit_code;
  if (f.json) {
    o.text = fmt::format("{{\"ok\":false,\"error\":{},\"message\":{}}}\n", json_string(code),
                         json_string(message));
  } else {
    o.text = fmt::format("error: {}: {}\n", code, one_line(message));
    o.to_stderr = f.mode == Mode::kOneShot;
  }
  return o;
}

std::string status_json(const std::vector<client::EndpointStatus>& status) {
  std::string out = "[";
  for (const client::EndpointStatus& s : status) {
    if (out.size() > 1) out += ',';
    if (!s.reachable) {
      out += fmt::format(R"({{"endpoint":{},"role":"unreachable","error":{}}})",
                         json_string(s.endpoint), json_string(s.error));
      continue;
    }
    out += fmt::format(
        R"({{"endpoint":{},"id":{},"role":{},"term":{},"leader":{},"commit_index":{},"applied_index":{}}})",
        json_string(s.endpoint), s.id, json_string(output_role(s.role)), s.term, s.leader,
        s.commit_index, s.applied_index);
  }
  return out + "]";
}

// One line for pipe mode: "; " between endpoints.
std::string status_line(const std::vector<client::EndpointStatus>& status) {
  std::string out;
  for (const client::EndpointStatus& s : status) {
    if (!out.empty()) out += "; ";
    if (!s.reachable) {
      out +=
          fmt::format("{} role=unreachable error={}", one_line(s.endpoint), quote_value(s.error));
      continue;
    }
    out +=
        fmt::format("{} id={} role={} term={} leader={} commit={} applied={}", one_line(s.endpoint),
                    s.id, output_role(s.role), s.term, s.leader, s.commit_index, s.applied_index);
  }
  return out;
}

// Left-aligned columns two spaces apart; no trailing blanks.
std::string status_table(const std::vector<client::EndpointStatus>& status) {
  const bool any_unreachable =
      std::any_of(status.begin(), status.end(), [](const auto& s) { return !s.reachable; });
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED"});
  if (any_unreachable) rows[0].push_back("ERROR");
  for (const client::EndpointStatus& s : status) {
    if (!s.reachable) {
      rows.push_back(
          {one_line(s.endpoint), "-", "unreachable", "-", "-", "-", "-", one_line(s.error)});
      continue;
    }
    rows.push_back({one_line(s.endpoint), std::to_string(s.id), std::string(output_role(s.role)),
                    std::to_string(s.term), s.leader == 0 ? "-" : std::to_string(s.leader),
                    std::to_string(s.commit_index), std::to_string(s.applied_index)});
  }
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t c = 0; c < row.size(); ++c)
      width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string json_string(std::string_view bytes) {
  std::string out = "\"";
  size_t i = 0;
  while (i < bytes.size()) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04x}", c);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t len = utf8_sequence(bytes, i, &cp);
    if (len == 0) {
      out += fmt::format("\\u{:04x}", c);  // a raw byte, not a character
      ++i;
      continue;
    }
    out.append(bytes.substr(i, len));
    i += len;
  }
  return out + "\"";
}

std::string quote_value(std::string_view bytes) {
  std::string out = "\"";
  append_escaped(&out, bytes, /*quotes=*/true);
  return out + "\"";
}

std::string display_value(std::string_view bytes) {
  bool plain = !bytes.empty() && bytes.front() != '"' && bytes.front() != ' ' &&
               bytes.back() != ' ' && bytes != "(nil)" && !bytes.starts_with("error:");
  for (size_t i = 0; plain && i < bytes.size();) {
    uint32_t cp = 0;
    size_t len = utf8_sequence(bytes, i, &cp);
    plain = len > 0 && !is_control(cp);
    i += std::max<size_t>(len, 1);
  }
  return plain ? std::string(bytes) : quote_value(bytes);
}

std::string_view output_role(std::string_view clerk_role) {
  return clerk_role == "pre-candidate" ? "candidate" : clerk_role;
}

int exit_code_for(client::Code code) {
  switch (code) {
    case client::Code::kOk:
      return kExitOk;
    case client::Code::kTimeout:
      return kExitTimeout;
    case client::Code::kUnavailable:
    case client::Code::kTooLarge:
    case client::Code::kBadRequest:
    case client::Code::kInternal:
      return kExitFailure;
  }
  return kExitFailure;
}

Output format_get(const client::Result<std::optional<std::string>>& result, Format f) {
  if (!result.ok()) {
    const client::Error& e = result.error();
    return error_output(client::to_string(e.code), e.message, exit_code_for(e.code), f);
  }
  const std::optional<std::string>& value = *result;
  Output o;
  if (f.json) {
    o.text = fmt::format("{{\"ok\":true,\"value\":{}}}\n", value ? json_string(*value) : "null");
  } else if (!value) {
    o.text = "(nil)\n";
  } else if (f.mode == Mode::kOneShot) {
    o.text = *value + "\n";  // the exact bytes, for $(kv-cli get k)
  } else {
    o.text = display_value(*value) + "\n";
  }
  return o;
}

Output format_write(const client::Status& status, Format f) {
  if (!status.ok()) {
    const client::Error& e = status.error();
    return error_output(client::to_string(e.code), e.message, exit_code_for(e.code), f);
  }
  return Output{.text = f.json ? "{\"ok\":true}\n" : "OK\n"};
}

Output format_status(const std::vector<client::EndpointStatus>& status, Format f) {
  Output o;
  const bool any = std::any_of(status.begin(), status.end(), [](auto& s) { return s.reachable; });
  o.exit_code = any ? kExitOk : kExitFailure;
  if (f.json) {
    o.text = status_json(status) + "\n";
  } else if (f.mode == Mode::kPipe) {
    o.text = status_line(status) + "\n";
  } else {
    o.text = status_table(status);
  }
  return o;
}

Output format_usage(std::string_view message, Format f) {
  return error_output("usage", message, kExitUsage, f);
}

Output format_help(Format f) {
  if (f.json)
    return Output{.text = fmt::format("{{\"ok\":true,\"help\":{}}}\n", json_string(kCommandHelp))};
  if (f.mode == Mode::kPipe) return Output{.text = std::string(kCommandHelpLine) + "\n"};
  return Output{.text = kCommandHelp};
}

}  // namespace raftkv::cli
