// store-bench: the CPU cost per put of each of a node's two stores, driven
// directly, without a cluster, network or client. It replays what one node
// does under a saturating put load: the state store applies runs of puts
// (a value and the client's session each) and commits each run; the log
// store appends the same runs as entries, one synced write per run.
//
// It reports CPU time (user + system, all threads, so RocksDB's flush and
// compaction threads count) per put, which varies far less on a shared
// 2-core VM than the throughput of a whole cluster does.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "kvserver/rocks_kv_store.h"
#include "raft/node/rocks_log_store.h"

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

struct Config {
  std::string store = "state";
  std::string dir;
  uint64_t puts = 1'000'000;
  uint64_t run = 75;
  uint64_t keys = 100'000;
  size_t value_size = 256;
  uint64_t clients = 256;
  uint64_t seed = 1;
};

// Times the puts and then `close`, so that work a store defers (background
// writes, flushes, compactions it waits for) is counted too.
template <class F, class G>
void measure(const Config& c, F put_run, G close) {
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t done = 0; done < c.puts; done += c.run)
    put_run(done, std::min(c.run, c.puts - done));
  close();
  const double cpu = cpu_seconds() - cpu0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print(
      "store={} puts={} run={} cpu_s={:.2f} wall_s={:.2f} cpu_us_per_put={:.2f} "
      "puts_per_s={:.0f}\n",
      c.store, c.puts, c.run, cpu, wall, cpu * 1e6 / double(c.puts), double(c.puts) / wall);
}

int bench_state(const Config& c) {
  std::string error;
  auto store = raftkv::kv::RocksKvStore::open(c.dir, {}, &error);
  if (!store) {
    fmt::print(stderr, "store-bench: {}\n", error);
    return 1;
  }
  std::mt19937_64 rng(c.seed);
  std::string value(c.value_size, 'v');
  raftkv::kv::KvMeta meta;
  measure(
      c,
      [&](uint64_t done, uint64_t n) {
        for (uint64_t i = 0; i < n; ++i) {
          std::string key = fmt::format("{:016}", rng() % c.keys);
          value[0] = char('a' + rng() % 26);
          store->put(key, value);
          raftkv::kv::Session s;
          s.seq = done + i;
          s.last_active_ms = done + i;
          store->put_session(rng() % c.clients, s);
        }
        meta.applied = raftkv::raft::Index{done + n};
        store->set_meta(meta);
        store->commit();
      },
      [&] { store.reset(); });
  return 0;
}

int bench_log(const Config& c) {
  raftkv::raft::RocksLogStoreOptions o;
  o.node_id = raftkv::raft::NodeId{1};
  o.initial_voters = {raftkv::raft::NodeId{1}};
  auto opened = raftkv::raft::RocksLogStore::open(c.dir, o);
  if (!opened.ok()) {
    fmt::print(stderr, "store-bench: {}\n", opened.error);
    return 1;
  }
  auto& store = opened.store;
  std::string payload(c.value_size + 40, 'p');
  measure(
      c,
      [&](uint64_t done, uint64_t n) {
        raftkv::raft::WriteRequest req;
        for (uint64_t i = 1; i <= n; ++i) {
          req.entries.push_back({raftkv::raft::Term{1}, raftkv::raft::Index{done + i},
                                 raftkv::raft::EntryType::kNormal, raftkv::raft::Bytes(payload)});
        }
        store->write(req);
        const uint64_t last = done + n;
        if (last / 100'000 != done / 100'000) {
          raftkv::raft::StoreStatus st = store->compact(raftkv::raft::Index{last}, {},
                                                        raftkv::raft::Term{1}, o.initial_voters);
          if (!st.ok()) fmt::print(stderr, "store-bench: compact: {}\n", st.error);
        }
      },
      [&] { store.reset(); });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  CLI::App app("store-bench: CPU per put of the state store or the log store, driven directly");
  app.add_option("--store", c.store, "state or log")->check(CLI::IsMember({"state", "log"}));
  app.add_option("--dir", c.dir, "data directory: must not exist or be empty; kept afterwards")
      ->required();
  app.add_option("--puts", c.puts, "puts to apply or append")->check(CLI::PositiveNumber);
  app.add_option("--run", c.run, "puts per commit (state) or synced write (log)")
      ->check(CLI::PositiveNumber);
  app.add_option("--keys", c.keys, "key space")->check(CLI::PositiveNumber);
  app.add_option("--value-size", c.value_size, "bytes per value");
  app.add_option("--clients", c.clients, "distinct session ids")->check(CLI::PositiveNumber);
  app.add_option("--seed", c.seed, "random seed");
  CLI11_PARSE(app, argc, argv);
  // Never deletes anything: a mistyped --dir must not cost anyone data.
  std::error_code ec;
  if (std::filesystem::exists(c.dir, ec) && !std::filesystem::is_empty(c.dir, ec)) {
    fmt::print(stderr, "store-bench: --dir {} is not empty; give a new or empty directory\n",
               c.dir);
    return 2;
  }
  return c.store == "state" ? bench_state(c) : bench_log(c);
}
