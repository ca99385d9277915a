// kv-bench: a closed-loop load generator on the clerk's asynchronous API, in
// the model of etcd's `benchmark`. One Clerk (one I/O thread, --conns
// connections to the leader) carries --clients closed loops: each client has
// exactly one operation in flight and issues the next one from the completion
// callback of the previous one, on the clerk's I/O thread. Latencies go to a
// log-linear histogram that only that thread records into; the main thread
// sleeps, switches phases (warmup, measure, stop), prints progress from
// atomic counters, and reads the histogram once every client has finished.
// The contract (flags, output, exit codes) is in --help.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "client/clerk.h"
#include "tools/bench/histogram.h"
#include "tools/bench/workload.h"
#include "tools/cli/command.h"

namespace raftkv::bench {
namespace {

using Clock = std::chrono::steady_clock;
using client::Code;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

// client::Code values, kOk first; errors are the others.
constexpr size_t kCodes = static_cast<size_t>(Code::kInternal) + 1;
constexpr std::array<Code, kCodes - 1> kErrorCodes = {
    Code::kTimeout, Code::kUnavailable, Code::kTooLarge, Code::kBadRequest, Code::kInternal};

const char* const kDescription =
    "kv-bench: a closed-loop load generator for raftkv, on the clerk's asynchronous API.\n"
    "\n"
    "Each of --clients clients keeps exactly one operation in flight and issues the next one\n"
    "as soon as the previous one completes. All clients share one clerk, which pipelines\n"
    "their operations over --conns TCP connections to the leader.\n";

class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string name) const override {
    return fmt::format(
        "Usage: {} [--endpoints HOST:PORT,...] [--clients N] [--conns M]\n"
        "                [--duration S | --total N] [--warmup S] [--op put|get|append|mix]\n"
        "                [--read-ratio R] [--keys K] [--key-size B] [--value-size B]\n"
        "                [--preload] [--timeout S] [--json]\n",
        name);
  }
};

const char* const kFooter = R"HELP(Workload:
  Keys are drawn uniformly from a key space of --keys keys. Key number I is
  "k" followed by I in decimal, zero-padded to exactly --key-size bytes
  (key 42 of size 16 is k000000000000042); --key-size must leave room for
  the digits of K-1. Every write carries the same --value-size bytes, a
  random alphanumeric payload chosen at start. put and append pick a random
  key each time (append makes values grow: a long run can reach the server's
  1 MiB limit and fail with too_large); get reads a random key, present or
  not; mix is get with probability --read-ratio, otherwise put.
  --preload first puts every key 0..K-1 once with the same clients (not
  timed, not counted), so that get finds values.

What is measured:
  --warmup S runs the workload for S seconds first; operations started
  during the warmup are not counted. The measurement then runs for
  --duration seconds, or until --total operations have been started (default:
  --duration 10). Counted are the operations started during the measurement;
  those still in flight when it ends are waited for and counted.
  ops          operations that succeeded (get of an absent key succeeds)
  seconds      from the start of the measurement to the completion of the
               last counted operation
  ops/s        ops / seconds
  latency      of successful operations, from the call to its callback,
               retries included; a log-linear histogram with microsecond
               resolution, percentiles within 0.4% (max exact)
  errors       failed operations by code: timeout (deadline passed; a write's
               outcome is unknown), unavailable (no leader reached),
               too_large, bad_request, internal

Output:
  Plain: a summary on stdout. While running, a progress line on stderr,
  rewritten every second, when stderr is a terminal.
  --json: exactly one JSON object on stdout, at the end:
    {"op":"put","clients":N,"conns":N,"keys":N,"key_size":N,"value_size":N,
     "read_ratio":R,"warmup":S,"duration":S|null,"total":N|null,
     "ops":N,"seconds":S,"ops_per_sec":R,"p50_ms":R,"p90_ms":R,"p99_ms":R,
     "p999_ms":R,"max_ms":R,"min_ms":R,"mean_ms":R,"errors":N,
     "errors_by_kind":{"timeout":N,"unavailable":N,"too_large":N,
                       "bad_request":N,"internal":N},
     "interrupted":false}
    (latency fields are null when ops is 0; with --preload also
     "preload":{"keys":N,"ops":N,"seconds":S,"errors":N,
                "errors_by_kind":{...}}).

Exit codes:
  0    the run completed and at least one operation succeeded (failed
       operations are reported, not fatal)
  1    no endpoint could be reached (message on stderr, no report), no
       operation succeeded, or no preload put succeeded
  2    usage error: unknown option, bad value ("error: usage: REASON" on
       stderr)
  130  interrupted (SIGINT/SIGTERM): the run stops early and still reports
       what it measured; a second signal ends kv-bench at once

Examples:
  kv-bench --clients 256 --conns 16 --duration 10 --op put
  kv-bench --endpoints 10.0.0.1:7001,10.0.0.2:7001 --op get --preload --keys 10000
  kv-bench --op mix --read-ratio 0.9 --total 100000 --warmup 2 --json
)HELP";

enum class Workload { kPut, kGet, kAppend, kMix };

struct Config {
  std::vector<std::string> endpoints;
  std::string op_name = "put";
  Workload op = Workload::kPut;
  uint64_t clients = 1;
  uint64_t conns = 1;
  std::optional<double> duration_s;  // exactly one of duration_s and total
  std::optional<uint64_t> total;
  double warmup_s = 0;
  uint64_t keys = 100000;
  uint64_t key_size = 16;
  uint64_t value_size = 256;
  double read_ratio = 0.5;
  bool preload = false;
  double timeout_s = 5;
  bool json = false;
};

volatile sig_atomic_t g_interrupted = 0;

void on_signal(int) {
  g_interrupted = 1;
}

// The first SIGINT or SIGTERM asks for an early report; the handler resets
// itself, so a second one ends the process.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

constexpr int kWarmup = 0;
constexpr int kMeasure = 1;
constexpr int kStop = 2;

// One run of closed loops over a shared clerk: the benchmark itself, or the
// preload (every key put once, in order). Counters are atomics written on
// the clerk's I/O thread (relaxed; the progress line tolerates staleness);
// the histogram and last_completion_ are plain, written only on that
// thread, and read by the main thread only after wait() saw every client
// finish (the acq_rel countdown in finish() and the mutex order them).
class Runner {
 public:
  Runner(client::Clerk& clerk, const Config& cfg, std::string_view value, bool preload,
         uint64_t seed)
      : clerk_(clerk), cfg_(cfg), value_(value), preload_(preload) {
    clients_.resize(cfg.clients);  // never resized again: callbacks hold Client*
    for (size_t i = 0; i < clients_.size(); ++i) {
      clients_[i].runner = this;
      clients_[i].rng = client_rng(seed, i);
      clients_[i].key.assign(cfg.key_size, 'k');
    }
    active_.store(clients_.size());
    if (preload_) {
      tickets_.store(static_cast<int64_t>(cfg.keys));
    } else if (cfg.total) {
      tickets_.store(static_cast<int64_t>(*cfg.total));
    }
  }

  // Issues every client's first operation; counting starts at once unless
  // `warmup`, in which case it starts at begin_measurement().
  void start(bool warmup) {
    if (warmup) {
      phase_.store(kWarmup, std::memory_order_release);
    } else {
      begin_measurement();
    }
    for (Client& c : clients_)
      issue(c);
  }

  void begin_measurement() {
    measure_start_ = Clock::now();  // published by the release store below
    phase_.store(kMeasure, std::memory_order_release);
  }

  // No client starts another operation; those in flight still complete.
  void stop() { phase_.store(kStop, std::memory_order_release); }

  // Blocks until every client has finished or `until`; true when finished.
  bool wait_finished(Clock::time_point until) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, until, [this] { return finished_; });
  }

  int phase() const { return phase_.load(std::memory_order_relaxed); }
  uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  uint64_t count(Code c) const {
    return counts_[static_cast<size_t>(c)].load(std::memory_order_relaxed);
  }
  uint64_t errors() const {
    uint64_t n = 0;
    for (Code c : kErrorCodes)
      n += count(c);
    return n;
  }

  // Valid once wait_finished() returned true.
  const Histogram& histogram() const { return histogram_; }
  double seconds() const {
    if (last_completion_ < measure_start_) return 0;
    return std::chrono::duration<double>(last_completion_ - measure_start_).count();
  }

 private:
  struct Client {
    Runner* runner = nullptr;
    Rng rng{0};
    std::string key;  // key_size bytes, rewritten in place for each operation
    Clock::time_point start;
    bool measured = false;  // started during the measurement
  };

  // Starts c's next operation, or finishes c when the run is over.
  void issue(Client& c) {
    int phase = phase_.load(std::memory_order_acquire);
    if (phase == kStop) return finish();
    c.measured = phase == kMeasure;
    uint64_t index;
    Workload op = cfg_.op;
    if (preload_) {
      int64_t ticket = tickets_.fetch_sub(1, std::memory_order_relaxed);
      if (ticket <= 0) return finish();
      index = cfg_.keys - static_cast<uint64_t>(ticket);  // keys 0, 1, ... in order
      op = Workload::kPut;
    } else {
      if (c.measured && cfg_.total && tickets_.fetch_sub(1, std::memory_order_relaxed) <= 0)
        return finish();
      index = c.rng.below(cfg_.keys);
      if (op == Workload::kMix)
        op = c.rng.chance(cfg_.read_ratio) ? Workload::kGet : Workload::kPut;
    }
    format_key(index, c.key.data(), c.key.size());
    // Each callback captures one pointer: std::function keeps it inline.
    Client* cp = &c;
    c.start = Clock::now();
    switch (op) {
      case Workload::kGet:
        clerk_.async_get(c.key, [cp](client::Result<std::optional<std::string>> r) {
          cp->runner->complete(*cp, r.ok() ? Code::kOk : r.error().code);
        });
        break;
      case Workload::kPut:
        clerk_.async_put(c.key, value_, [cp](client::Status s) {
          cp->runner->complete(*cp, s.ok() ? Code::kOk : s.error().code);
        });
        break;
      case Workload::kAppend:
        clerk_.async_append(c.key, value_, [cp](client::Status s) {
          cp->runner->complete(*cp, s.ok() ? Code::kOk : s.error().code);
        });
        break;
      case Workload::kMix:
        break;  // resolved to kGet or kPut above
    }
  }

  // On the clerk's I/O thread.
  void complete(Client& c, Code code) {
    Clock::time_point now = Clock::now();
    completed_.fetch_add(1, std::memory_order_relaxed);
    if (c.measured) {
      if (code == Code::kOk) {
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.start).count();
        histogram_.record(static_cast<uint64_t>(std::max<int64_t>(0, ns) + 500) / 1000);
      }
      size_t i = std::min(static_cast<size_t>(code), kCodes - 1);
      counts_[i].fetch_add(1, std::memory_order_relaxed);
      last_completion_ = std::max(last_completion_, now);
    }
    issue(c);
  }

  void finish() {
    if (active_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }

  client::Clerk& clerk_;
  const Config& cfg_;
  const std::string_view value_;
  const bool preload_;
  std::vector<Client> clients_;

  std::atomic<int> phase_{kWarmup};
  Clock::time_point measure_start_;     // written before phase_ becomes kMeasure
  std::atomic<int64_t> tickets_{0};     // operations left to start (--total, preload)
  std::atomic<uint64_t> completed_{0};  // every completion, for the progress line
  std::array<std::atomic<uint64_t>, kCodes> counts_{};  // measured, by Code
  std::atomic<size_t> active_{0};                       // clients not finished

  Histogram histogram_;                // I/O thread only while running
  Clock::time_point last_completion_;  // I/O thread only while running

  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;  // under mu_: every client has finished
};

// The progress line on stderr, rewritten in place once a second; only when
// stderr is a terminal.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}

  void update(std::string_view text) {
    if (!enabled_) return;
    size_t pad = last_width_ > text.size() ? last_width_ - text.size() : 0;
    std::fprintf(stderr, "\r%.*s%*s", static_cast<int>(text.size()), text.data(),
                 static_cast<int>(pad), "");
    std::fflush(stderr);
    last_width_ = text.size();
  }

  void clear() {
    if (!enabled_ || last_width_ == 0) return;
    std::fprintf(stderr, "\r%*s\r", static_cast<int>(last_width_), "");
    std::fflush(stderr);
    last_width_ = 0;
  }

 private:
  bool enabled_;
  size_t last_width_ = 0;
};

enum class WaitEnd { kFinished, kDeadline, kInterrupted };

// Watches one Runner from the main thread: waits for it, and feeds the
// progress line once a second from its atomic counters.
class Monitor {
 public:
  // `preload_keys` > 0: the runner is the preload of that many keys.
  Monitor(Runner& runner, Progress& progress, const Config& cfg, uint64_t preload_keys)
      : runner_(runner), progress_(progress), cfg_(cfg), preload_keys_(preload_keys) {}

  // Until the runner finishes, `deadline` passes or a signal arrives (polled
  // every 100 ms).
  WaitEnd wait(Clock::time_point deadline) {
    while (true) {
      Clock::time_point now = Clock::now();
      if (g_interrupted) return WaitEnd::kInterrupted;
      if (now >= deadline) return WaitEnd::kDeadline;
      if (now - last_tick_ >= std::chrono::seconds(1)) tick(now);
      auto step = std::min(
          {deadline, last_tick_ + std::chrono::seconds(1), now + std::chrono::milliseconds(100)});
      if (runner_.wait_finished(step)) return WaitEnd::kFinished;
    }
  }

  // Stops the runner and waits for its operations in flight. A signal now
  // ends the process (the handler has reset itself).
  void drain() {
    runner_.stop();
    while (wait(Clock::time_point::max()) != WaitEnd::kFinished)
      g_interrupted = 0;
  }

 private:
  void tick(Clock::time_point now) {
    uint64_t completed = runner_.completed();
    double dt = std::chrono::duration<double>(now - last_tick_).count();
    double rate = static_cast<double>(completed - last_completed_) / dt;
    long elapsed = std::lround(std::chrono::duration<double>(now - start_).count());
    std::string line;
    if (preload_keys_ > 0) {
      line = fmt::format("kv-bench: preload {}s, {}/{} keys, {:.0f} ops/s, {} errors", elapsed,
                         completed, preload_keys_, rate, runner_.errors());
    } else {
      line = fmt::format("kv-bench: {} {}s, {} ops done, {:.0f} ops/s, {} errors",
                         runner_.phase() == kWarmup ? "warmup" : "running", elapsed, completed,
                         rate, runner_.errors());
      if (cfg_.total) line += fmt::format(" (--total {})", *cfg_.total);
    }
    progress_.update(line);
    last_tick_ = now;
    last_completed_ = completed;
  }

  Runner& runner_;
  Progress& progress_;
  const Config& cfg_;
  const uint64_t preload_keys_;
  const Clock::time_point start_ = Clock::now();
  Clock::time_point last_tick_ = start_;
  uint64_t last_completed_ = 0;
};

int usage_exit(std::string_view reason) {
  std::fprintf(stderr, "error: usage: %.*s\n", static_cast<int>(reason.size()), reason.data());
  return kExitUsage;
}

// A random alphanumeric payload of `size` bytes.
std::string make_value(size_t size, uint64_t seed) {
  static constexpr std::string_view kChars =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  Rng rng(seed);
  std::string v(size, ' ');
  for (char& ch : v)
    ch = kChars[rng.below(kChars.size())];
  return v;
}

std::string ms(uint64_t micros) {
  return fmt::format("{:.3f}", static_cast<double>(micros) / 1e3);
}

// What a finished Runner measured.
struct Summary {
  uint64_t ops = 0;                        // succeeded
  std::array<uint64_t, kCodes> by_code{};  // [kOk] == ops
  uint64_t errors = 0;
  double seconds = 0;

  static Summary of(const Runner& r) {
    Summary s;
    for (size_t i = 0; i < kCodes; ++i)
      s.by_code[i] = r.count(static_cast<Code>(i));
    s.ops = s.by_code[static_cast<size_t>(Code::kOk)];
    s.errors = r.errors();
    s.seconds = r.seconds();
    return s;
  }
  uint64_t count(Code c) const { return by_code[static_cast<size_t>(c)]; }
  double rate() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0.0; }
};

// "timeout":N,"unavailable":N,...
std::string errors_json(const Summary& s) {
  std::string out;
  for (size_t i = 0; i < kErrorCodes.size(); ++i)
    out += fmt::format("{}\"{}\":{}", i == 0 ? "" : ",", client::to_string(kErrorCodes[i]),
                       s.count(kErrorCodes[i]));
  return out;
}

// "N (timeout N, unavailable N, ...)"
std::string errors_text(const Summary& s) {
  std::string out = fmt::format("{} (", s.errors);
  for (size_t i = 0; i < kErrorCodes.size(); ++i)
    out += fmt::format("{}{} {}", i == 0 ? "" : ", ", client::to_string(kErrorCodes[i]),
                       s.count(kErrorCodes[i]));
  return out + ")";
}

std::string json_report(const Config& cfg, const Summary& s, const Histogram& h,
                        const std::optional<Summary>& pre, bool interrupted) {
  std::string out = fmt::format(
      "{{\"op\":\"{}\",\"clients\":{},\"conns\":{},\"keys\":{},\"key_size\":{},\"value_size\":{},"
      "\"read_ratio\":{},\"warmup\":{},\"duration\":{},\"total\":{},",
      cfg.op_name, cfg.clients, cfg.conns, cfg.keys, cfg.key_size, cfg.value_size, cfg.read_ratio,
      cfg.warmup_s, cfg.duration_s ? fmt::format("{}", *cfg.duration_s) : "null",
      cfg.total ? fmt::format("{}", *cfg.total) : "null");
  out += fmt::format("\"ops\":{},\"seconds\":{:.3f},\"ops_per_sec\":{:.1f},", s.ops, s.seconds,
                     s.rate());
  auto latency = [&](std::string_view name, uint64_t micros) {
    out += fmt::format("\"{}\":{},", name, s.ops > 0 ? ms(micros) : "null");
  };
  latency("p50_ms", h.value_at_quantile(0.5));
  latency("p90_ms", h.value_at_quantile(0.9));
  latency("p99_ms", h.value_at_quantile(0.99));
  latency("p999_ms", h.value_at_quantile(0.999));
  latency("max_ms", h.max());
  latency("min_ms", h.min());
  out += fmt::format("\"mean_ms\":{},", s.ops > 0 ? fmt::format("{:.3f}", h.mean() / 1e3) : "null");
  out += fmt::format("\"errors\":{},\"errors_by_kind\":{{{}}},", s.errors, errors_json(s));
  if (pre) {
    out += fmt::format(
        "\"preload\":{{\"keys\":{},\"ops\":{},\"seconds\":{:.3f},\"errors\":{},"
        "\"errors_by_kind\":{{{}}}}},",
        cfg.keys, pre->ops, pre->seconds, pre->errors, errors_json(*pre));
  }
  out += fmt::format("\"interrupted\":{}}}\n", interrupted);
  return out;
}

std::string text_report(const Config& cfg, const Summary& s, const Histogram& h,
                        const std::optional<Summary>& pre, bool interrupted) {
  std::string op = cfg.op_name;
  if (cfg.op == Workload::kMix) op += fmt::format(" (read ratio {})", cfg.read_ratio);
  std::string out =
      fmt::format("kv-bench: op {}, clients {}, conns {}, keys {} of {} B, values of {} B{}{}\n",
                  op, cfg.clients, cfg.conns, cfg.keys, cfg.key_size, cfg.value_size,
                  cfg.warmup_s > 0 ? fmt::format(", warmup {} s", cfg.warmup_s) : "",
                  interrupted ? " (interrupted)" : "");
  if (pre) {
    out += fmt::format("preload:    {} of {} keys in {:.3f} s = {:.1f} ops/s, errors {}\n",
                       pre->ops, cfg.keys, pre->seconds, pre->rate(), errors_text(*pre));
  }
  out += fmt::format("ops:        {} in {:.3f} s = {:.1f} ops/s\n", s.ops, s.seconds, s.rate());
  if (s.ops > 0) {
    out += fmt::format(
        "latency ms: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (min {}, mean {:.3f})\n",
        ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.9)), ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)), ms(h.max()), ms(h.min()), h.mean() / 1e3);
  } else {
    out += "latency ms: none (no operation succeeded)\n";
  }
  out += fmt::format("errors:     {}\n", errors_text(s));
  return out;
}

// Parses the command line into *cfg; an exit code when kv-bench should stop
// (--help, usage error).
std::optional<int> parse_args(int argc, char** argv, Config* cfg) {
  CLI::App app{kDescription, "kv-bench"};
  std::string endpoints_spec(cli::kDefaultEndpoints);
  int64_t clients = 1, conns = 1, keys = 100000, key_size = 16, value_size = 256, total = 0;
  double duration = 10;
  app.add_option("--endpoints", endpoints_spec,
                 "cluster members, HOST:PORT[,HOST:PORT...] (any subset; the leader is found "
                 "from there)")
      ->capture_default_str();
  app.add_option("--clients", clients,
                 "closed-loop clients, each with one operation in flight (1 to 1000000)")
      ->capture_default_str();
  app.add_option("--conns", conns, "TCP connections of the one clerk to the leader (1 to 1024)")
      ->capture_default_str();
  auto* duration_opt =
      app.add_option("--duration", duration,
                     "seconds to measure (fractions allowed); the default when --total is not "
                     "given")
          ->default_str("10");
  auto* total_opt =
      app.add_option("--total", total, "measure this many operations instead of a duration");
  app.add_option("--warmup", cfg->warmup_s, "seconds of load before the measurement; not counted")
      ->capture_default_str();
  app.add_option("--op", cfg->op_name, "workload: put, get, append or mix (get and put)")
      ->capture_default_str();
  app.add_option("--read-ratio", cfg->read_ratio,
                 "share of gets in --op mix, 0 to 1 (ignored by the other workloads)")
      ->capture_default_str();
  app.add_option("--keys", keys, "size of the key space")->capture_default_str();
  app.add_option("--key-size", key_size, "bytes per key (\"k\" and the zero-padded key number)")
      ->capture_default_str();
  app.add_option("--value-size", value_size, "bytes per written value")->capture_default_str();
  app.add_flag("--preload", cfg->preload,
               "put every key of the key space once before the run (not timed)");
  app.add_option("--timeout", cfg->timeout_s,
                 "seconds each operation may take, retries included (above 0, at most 86400)")
      ->capture_default_str();
  app.add_flag("--json", cfg->json, "print the report as one JSON object");
  app.footer(kFooter);
  app.formatter(std::make_shared<HelpFormatter>());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return usage_exit(fmt::format("{} (see kv-bench --help)", e.what()));
  }

  std::string error;
  auto endpoints = cli::parse_endpoints(endpoints_spec, &error);
  if (!endpoints) return usage_exit(error);
  cfg->endpoints = std::move(*endpoints);
  if (cfg->op_name == "put") {
    cfg->op = Workload::kPut;
  } else if (cfg->op_name == "get") {
    cfg->op = Workload::kGet;
  } else if (cfg->op_name == "append") {
    cfg->op = Workload::kAppend;
  } else if (cfg->op_name == "mix") {
    cfg->op = Workload::kMix;
  } else {
    return usage_exit(
        fmt::format("--op must be put, get, append or mix, not \"{}\"", cfg->op_name));
  }
  if (clients < 1 || clients > 1'000'000)
    return usage_exit("--clients must be between 1 and 1000000");
  if (conns < 1 || conns > 1024) return usage_exit("--conns must be between 1 and 1024");
  if (duration_opt->count() > 0 && total_opt->count() > 0)
    return usage_exit("give --duration or --total, not both");
  constexpr double kMaxSeconds = 1e7;
  if (total_opt->count() > 0) {
    if (total < 1) return usage_exit("--total must be at least 1");
    cfg->total = static_cast<uint64_t>(total);
  } else {
    if (!std::isfinite(duration) || duration <= 0 || duration > kMaxSeconds)
      return usage_exit("--duration must be a number of seconds above 0 and at most 10000000");
    cfg->duration_s = duration;
  }
  if (!std::isfinite(cfg->warmup_s) || cfg->warmup_s < 0 || cfg->warmup_s > kMaxSeconds)
    return usage_exit("--warmup must be a number of seconds from 0 to 10000000");
  if (!(cfg->read_ratio >= 0 && cfg->read_ratio <= 1))
    return usage_exit("--read-ratio must be between 0 and 1");
  if (keys < 1) return usage_exit("--keys must be at least 1");
  cfg->keys = static_cast<uint64_t>(keys);
  if (key_size < static_cast<int64_t>(min_key_size(cfg->keys)) || key_size > (1 << 20))
    return usage_exit(
        fmt::format("--key-size must be between {} (\"k\" and the digits of key {}) and 1048576",
                    min_key_size(cfg->keys), cfg->keys - 1));
  cfg->key_size = static_cast<uint64_t>(key_size);
  if (value_size < 0 || value_size > (64 << 20))
    return usage_exit("--value-size must be between 0 and 67108864");
  cfg->value_size = static_cast<uint64_t>(value_size);
  if (!std::isfinite(cfg->timeout_s) || cfg->timeout_s <= 0 || cfg->timeout_s > 24 * 3600)
    return usage_exit("--timeout must be a number of seconds above 0 and at most 86400");
  cfg->clients = static_cast<uint64_t>(clients);
  cfg->conns = static_cast<uint64_t>(conns);
  return std::nullopt;
}

int run(int argc, char** argv) {
  Config cfg;
  if (auto rc = parse_args(argc, argv, &cfg)) return *rc;
  install_signal_handlers();

  std::random_device rd;
  const uint64_t seed = (uint64_t{rd()} << 32) ^ rd();
  const std::string value = make_value(cfg.value_size, seed);
  client::Options options;
  options.endpoints = cfg.endpoints;
  options.timeout = std::chrono::milliseconds(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(cfg.timeout_s * 1000))));
  options.connections = cfg.conns;
  // The clerk's I/O thread inherits a mask blocking SIGINT and SIGTERM, so
  // they reach the main thread, which polls the flag the handler sets.
  sigset_t stop_signals, old_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  client::Clerk clerk(options);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);

  // Fail fast, with the reasons, when no member answers at all.
  {
    auto status = clerk.status();
    bool any = std::any_of(status.begin(), status.end(), [](auto& s) { return s.reachable; });
    if (!any) {
      std::string reasons;
      for (const auto& s : status)
        reasons += fmt::format(
            "{}{}", reasons.empty() ? "" : "; ",
            s.error.starts_with(s.endpoint) ? s.error : fmt::format("{}: {}", s.endpoint, s.error));
      std::fprintf(stderr, "kv-bench: cannot reach the cluster: %s\n", reasons.c_str());
      return kExitFailure;
    }
  }

  Progress progress(::isatty(STDERR_FILENO) == 1);
  std::optional<Summary> preload;
  if (cfg.preload) {
    Runner pre(clerk, cfg, value, /*preload=*/true, seed + 1);
    Monitor monitor(pre, progress, cfg, cfg.keys);
    pre.start(/*warmup=*/false);
    WaitEnd end = monitor.wait(Clock::time_point::max());
    monitor.drain();
    progress.clear();
    preload = Summary::of(pre);
    if (end == WaitEnd::kInterrupted) {
      std::fprintf(stderr, "kv-bench: interrupted during the preload\n");
      return kExitInterrupted;
    }
    if (preload->ops == 0) {
      std::fprintf(stderr, "kv-bench: preload failed: no put succeeded; errors %s\n",
                   errors_text(*preload).c_str());
      return kExitFailure;
    }
  }

  auto after = [](double seconds) {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };
  Runner r(clerk, cfg, value, /*preload=*/false, seed + 2);
  Monitor monitor(r, progress, cfg, 0);
  bool interrupted = false;
  r.start(/*warmup=*/cfg.warmup_s > 0);
  if (cfg.warmup_s > 0) {
    interrupted = monitor.wait(after(cfg.warmup_s)) == WaitEnd::kInterrupted;
    if (!interrupted) r.begin_measurement();
  }
  if (!interrupted) {
    auto until = cfg.duration_s ? after(*cfg.duration_s) : Clock::time_point::max();
    interrupted = monitor.wait(until) == WaitEnd::kInterrupted;
  }
  monitor.drain();
  progress.clear();

  const Summary summary = Summary::of(r);
  std::string report = cfg.json ? json_report(cfg, summary, r.histogram(), preload, interrupted)
                                : text_report(cfg, summary, r.histogram(), preload, interrupted);
  bool written = std::fwrite(report.data(), 1, report.size(), stdout) == report.size();
  if (std::fflush(stdout) != 0 || !written) return kExitFailure;
  if (interrupted) return kExitInterrupted;
  if (summary.ops == 0) {
    std::fprintf(stderr, "kv-bench: no operation succeeded; errors %s\n",
                 errors_text(summary).c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace
}  // namespace raftkv::bench

int main(int argc, char** argv) {
  return raftkv::bench::run(argc, argv);
}
