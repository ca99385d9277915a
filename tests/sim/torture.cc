// raft_torture: runs randomized fault schedules over many seeds and prints
// every failing seed with the command that replays it.
//   raft_torture [--seeds N] [--start S] [--seed S] [--verbose]
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "tests/sim/torture_run.h"

namespace {

volatile uint64_t g_current_seed = 0;

void on_abort(int) {
  char buf[96];
  int n =
      std::snprintf(buf, sizeof buf, "\naborted in seed %llu; replay: raft_torture --seed %llu\n",
                    static_cast<unsigned long long>(g_current_seed),
                    static_cast<unsigned long long>(g_current_seed));
  if (n > 0) [[maybe_unused]]
    auto w = write(2, buf, static_cast<size_t>(n));
  std::signal(SIGABRT, SIG_DFL);
  std::abort();
}

void usage() {
  std::puts(
      "usage: raft_torture [--seeds N] [--start S] [--seed S] [--verbose]\n"
      "  --seeds N   run N seeds starting at --start (default 100)\n"
      "  --start S   first seed (default 1)\n"
      "  --seed S    run exactly one seed (replay a failure)\n"
      "  --verbose   print cluster state during the run\n"
      "exit status: 0 if every seed passed, 1 if any failed, 2 on a usage error");
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seeds = 100, start = 1;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> uint64_t {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      char* end = nullptr;
      uint64_t v = std::strtoull(argv[++i], &end, 10);
      if (*end != '\0') {
        std::fprintf(stderr, "raft_torture: %s needs a number\n", a.c_str());
        std::exit(2);
      }
      return v;
    };
    if (a == "--seeds") {
      seeds = value();
    } else if (a == "--start") {
      start = value();
    } else if (a == "--seed") {
      start = value();
      seeds = 1;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "raft_torture: unknown flag %s\n", a.c_str());
      usage();
      return 2;
    }
  }
  std::signal(SIGABRT, on_abort);
  auto t0 = std::chrono::steady_clock::now();
  uint64_t failed = 0, committed = 0, reads = 0, elections = 0;
  for (uint64_t seed = start; seed < start + seeds; ++seed) {
    g_current_seed = seed;
    auto r = raftkv::sim::run_torture_seed(seed, verbose);
    committed += r.committed;
    reads += r.reads;
    elections += r.elections;
    if (!r.ok) {
      ++failed;
      fmt::print("FAIL seed {}: {}\n  settings: {}\n  replay: raft_torture --seed {}\n", seed,
                 r.failure, r.settings, seed);
    } else if (verbose || seeds == 1) {
      fmt::print("ok seed {} ({}) committed={} reads={} elections={} hash={:016x}\n", seed,
                 r.settings, r.committed, r.reads, r.elections, r.trace_hash);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print(
      "raft_torture: {} seeds ({}..{}), {} failed, {:.1f} s; {} entries committed, {} reads "
      "checked, {} elections\n",
      seeds, start, start + seeds - 1, failed, secs, committed, reads, elections);
  return failed ? 1 : 0;
}
