// fail_stop: how the node's storage code stops on an I/O error it cannot
// vouch for (see "Fail-stop" on RocksLogStore): after a failed write or
// fsync the disk's contents are unknown, and acknowledging anything could
// lose a vote, an entry or a snapshot. Restart recovers from what the disk
// really holds.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace raftkv::raft {

[[noreturn]] inline void fail_stop(const std::string& what) {
  std::fprintf(stderr,
               "raftkv: FATAL storage error: %s\n"
               "raftkv: stopping: the durable Raft state can no longer be trusted, and "
               "continuing could acknowledge data that is not on disk\n",
               what.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace raftkv::raft
