// log_line: one line per noteworthy event of the node's IO layer (a peer
// connected or lost, a handshake refused, a malformed frame), on stderr:
//
//   2026-11-27T21:00:00.123Z transport/1: connected to peer 2 at 10.0.0.2:7001
//
// The time is UTC wall-clock time with milliseconds; it is for people reading
// logs and never feeds a decision (the Raft core has no clock). Callable from
// any thread: the line is formatted first and written with ONE fwrite, which
// stdio serialises per FILE, so lines from several threads never interleave.
#pragma once

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace raftkv::raft {

inline void log_line(std::string_view component, std::string_view text) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const auto since_epoch =
      duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(since_epoch / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  const std::string line = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {}: {}\n",
                                       utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                       utc.tm_min, utc.tm_sec, since_epoch % 1000, component, text);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace raftkv::raft
