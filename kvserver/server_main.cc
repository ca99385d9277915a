// raftkv-server: one member of a raftkv cluster.
//
//   raftkv-server --id ID --cluster 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT
//                 --data-dir DIR [--listen HOST:PORT] [options]
//
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when the node
// cannot start (unusable data dir, port in use), 2 on a usage error.
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <asio.hpp>

#include "kvserver/client_service.h"
#include "kvserver/kv_state_machine.h"
#include "kvserver/rocks_kv_store.h"
#include "raft/node/group_commit.h"
#include "raft/node/listener.h"
#include "raft/node/log_line.h"
#include "raft/node/raft_node.h"
#include "raft/node/rocks_log_store.h"
#include "raft/node/transport.h"
#include "raft/node/transport_internal.h"

namespace {

using raftkv::raft::NodeId;

// Parses "1=host:port,2=host:port". Empty on error, with *error set.
std::map<NodeId, std::string> parse_cluster(const std::string& spec, std::string* error) {
  std::map<NodeId, std::string> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    std::string item =
        spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = fmt::format("--cluster: '{}' is not ID=HOST:PORT", item);
      return {};
    }
    uint64_t id = 0;
    try {
      size_t used = 0;
      id = std::stoull(item.substr(0, eq), &used);
      if (used != eq) throw std::invalid_argument("junk");
    } catch (const std::exception&) {
      *error = fmt::format("--cluster: '{}' has a bad node id", item);
      return {};
    }
    std::string addr = item.substr(eq + 1);
    if (id == 0 || !raftkv::raft::split_host_port(addr)) {
      *error = fmt::format("--cluster: '{}' needs a nonzero id and HOST:PORT", item);
      return {};
    }
    if (!out.emplace(NodeId(id), addr).second) {
      *error = fmt::format("--cluster: node {} listed twice", id);
      return {};
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// Keeps freed heap memory for reuse instead of returning it to the kernel.
// The log's memtable (about 40 MiB per compaction interval under load) is
// freed whole after each flush; glibc gave it back to the kernel, and the
// next memtable faulted every page in again. On the VM this is measured on a
// page fault costs about 10 us (docs/PERFORMANCE.md): 0.04 faults and 0.5 us
// of CPU per put. Blocks under 32 MiB now come from the heap, and up to
// 64 MiB free at its top stays mapped. (Setting the thresholds also stops
// glibc from moving them with every large block freed.)
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  CLI::App app{
      "raftkv-server: one member of a raftkv cluster (a replicated, linearizable key-value "
      "store).\nPeers and clients both connect to --listen."};
  uint64_t id = 0;
  std::string cluster_spec, listen, data_dir;
  uint64_t cluster_id = 1;
  // Election timeout 0.5-1 s: a dead leader is replaced in about a second,
  // while five heartbeats (100 ms) fit in the shortest timeout.
  int tick_ms = 50, election_ticks = 10, heartbeat_ticks = 2;
  uint64_t snapshot_every = 100000;
  int request_timeout_ms = 5000;
  app.add_option("--id", id, "this node's id, as listed in --cluster")->required();
  app.add_option("--cluster", cluster_spec,
                 "every member as ID=HOST:PORT,...; the address is the one THIS node dials to "
                 "reach that member (it may be a proxy)")
      ->required();
  app.add_option("--data-dir", data_dir,
                 "where this node keeps its data; missing or empty: a new node; otherwise it "
                 "is recovered")
      ->required();
  app.add_option("--listen", listen,
                 "HOST:PORT to bind for peers and clients (default: this node's --cluster entry)");
  app.add_option("--cluster-id", cluster_id,
                 "cluster identity checked in every peer handshake and stored in the data dir")
      ->capture_default_str();
  app.add_option("--tick-ms", tick_ms, "Raft tick length in milliseconds")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--election-ticks", election_ticks,
                 "election timeout in ticks (randomized in [N, 2N))")
      ->check(CLI::Range(2, 100000))
      ->capture_default_str();
  app.add_option("--heartbeat-ticks", heartbeat_ticks, "leader heartbeat interval in ticks")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--snapshot-every", snapshot_every,
                 "compact the log after this many applied entries (0: never)")
      ->capture_default_str();
  app.add_option("--request-timeout-ms", request_timeout_ms,
                 "a write not applied within this is answered 'timeout' (outcome unknown)")
      ->check(CLI::Range(10, 3600000))
      ->capture_default_str();
  app.set_config("--config", "", "read options from a TOML/INI file (keys are flag names)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "raftkv-server: %s (see --help)\n", e.what());
    return 2;
  }

  std::string error;
  auto members = parse_cluster(cluster_spec, &error);
  if (members.empty()) {
    std::fprintf(stderr, "raftkv-server: %s\n", error.c_str());
    return 2;
  }
  NodeId self(id);
  if (!members.count(self)) {
    std::fprintf(stderr, "raftkv-server: --id %llu is not in --cluster\n",
                 static_cast<unsigned long long>(id));
    return 2;
  }
  if (heartbeat_ticks >= election_ticks) {
    std::fprintf(stderr, "raftkv-server: --heartbeat-ticks must be below --election-ticks\n");
    return 2;
  }
  if (listen.empty()) listen = members.at(self);
  std::vector<NodeId> voters;
  std::map<NodeId, std::string> peers;
  for (auto& [n, addr] : members) {
    voters.push_back(n);
    if (n != self) peers.emplace(n, addr);
  }

  raftkv::raft::RocksLogStoreOptions store_opts;
  store_opts.cluster_id = cluster_id;
  store_opts.node_id = self;
  store_opts.initial_voters = voters;
  auto opened = raftkv::raft::RocksLogStore::open(data_dir, store_opts);
  if (!opened.ok()) {
    std::fprintf(stderr, "raftkv-server: data dir %s: %s\n", data_dir.c_str(),
                 opened.error.c_str());
    return 1;
  }
  auto& store = *opened.store;

  // The KV state: its own RocksDB instance, opened after the log store
  // (which creates and vouches for the data dir). It resumes at the applied
  // index it persisted; RaftNode::start replays the log after it.
  std::string state_dir = data_dir + "/state";
  auto state = raftkv::kv::RocksKvStore::open(state_dir, {}, &error);
  if (!state) {
    std::fprintf(stderr, "raftkv-server: data dir %s: %s\n", data_dir.c_str(), error.c_str());
    return 1;
  }
  if (state->interrupted_replace_discarded()) {
    raftkv::raft::log_line("server", "state: discarded a snapshot restore a crash interrupted");
  }
  raftkv::kv::KvStateMachine kv(std::move(state));

  asio::io_context io(1);
  raftkv::raft::GroupCommitter committer(store);
  raftkv::raft::RaftNode* node_ptr = nullptr;
  raftkv::raft::Transport::Options topts;
  topts.self = self;
  topts.cluster_id = cluster_id;
  topts.peers = peers;
  raftkv::raft::Transport transport(io, topts,
                                    {[&](std::vector<raftkv::raft::Message>&& msgs) {
                                       if (node_ptr) node_ptr->step(std::move(msgs));
                                     },
                                     nullptr});

  raftkv::raft::NodeOptions nopts;
  nopts.id = self;
  nopts.voters = voters;
  nopts.tick_ms = tick_ms;
  nopts.election_ticks = election_ticks;
  nopts.heartbeat_ticks = heartbeat_ticks;
  nopts.snapshot_every = snapshot_every;
  raftkv::raft::RaftNode node(io, nopts, store, committer, kv, transport);
  node_ptr = &node;
  if (!node.start(&error)) {
    std::fprintf(stderr, "raftkv-server: cannot start: %s\n", error.c_str());
    return 1;
  }

  raftkv::kv::ClientServiceOptions copts;
  copts.addresses = members;
  copts.request_timeout = std::chrono::milliseconds(request_timeout_ms);
  raftkv::kv::ClientService service(io, copts, node, kv);

  raftkv::raft::Listener::Options lopts;
  lopts.address = listen;
  auto listener = raftkv::raft::Listener::open(io, lopts);
  if (!listener.ok()) {
    std::fprintf(stderr, "raftkv-server: %s\n", listener.error.c_str());
    return 1;
  }
  listener.listener->start(transport, service.handler());
  raftkv::raft::log_line(
      "server", fmt::format("node {} listening on {} (data dir {})", id, listen, data_dir));

  bool shutting_down = false;
  auto shutdown = [&] {
    listener.listener->stop();
    service.stop();
    node.stop();
    transport.stop();
    io.stop();
  };
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const asio::error_code& ec, int sig) {
    if (ec || shutting_down) return;
    shutting_down = true;
    raftkv::raft::log_line("server", fmt::format("signal {}: shutting down", sig));
    // A leader hands over first so that clients see no election timeout.
    node.hand_off_leadership(2000, [&](bool moved) {
      raftkv::raft::log_line("server", moved ? "leadership handed off" : "shutting down");
      shutdown();
    });
  });
  std::signal(SIGPIPE, SIG_IGN);
  io.run();
  raftkv::raft::log_line("server", fmt::format("node {} stopped; {} fsyncs for {} log entries", id,
                                               node.syncs(), node.entries_persisted()));
  return 0;
}
