// ProcessCluster: real raftkv-server processes on loopback, with temporary
// data dirs and per-node logs, for end-to-end tests. Ports are picked free
// by the kernel, so tests never collide.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace raftkv::test {

class ProcessCluster {
 public:
  explicit ProcessCluster(int nodes, std::vector<std::string> extra_args = {});
  ~ProcessCluster();  // SIGKILLs what is left and removes the data dirs

  void start(int id);
  void start_all();
  void kill(int id, int sig);  // and wait for the exit
  // Sends `sig` and returns at once (SIGSTOP, SIGCONT): the node stays
  // running() and a later kill() still reaps it.
  void signal(int id, int sig);
  // SIGKILL, then start again on the same data dir (recovery).
  void restart(int id);
  int port(int id) const { return ports_[id]; }
  int exit_status(int id) const { return exit_status_[id]; }
  bool running(int id) const { return pids_[id] > 0; }
  std::vector<std::string> endpoints() const;
  std::string endpoint(int id) const;
  std::string log(int id) const;
  int size() const { return static_cast<int>(ports_.size()) - 1; }
  // The node that status() reports as leader with all live nodes agreeing,
  // or 0 after `ms`.
  int wait_for_leader(int ms) const;
  // Like wait_for_leader, but every running node must also be reachable
  // (e.g. a restarted node is serving again).
  int wait_for_leader_of_all(int ms) const;

 private:
  int agreed_leader(int ms, bool every_running) const;

  std::string dir_;
  std::vector<int> ports_;  // index 1..n
  std::vector<pid_t> pids_;
  std::vector<int> exit_status_;
  std::vector<std::string> extra_args_;
};

// A loopback endpoint nobody listens on: connections are refused at once.
std::string dead_endpoint();

// Binds a loopback socket to a kernel-chosen port; returns its endpoint.
std::string bind_loopback(int fd);

// A listener that never accepts: the kernel completes connections and takes
// the request bytes, but no reply ever comes (a stuck server).
class SilentServer {
 public:
  SilentServer();
  ~SilentServer();
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  const std::string& endpoint() const { return endpoint_; }

 private:
  int fd_ = -1;
  std::string endpoint_;
};

// Runs the server binary with `args`; returns its exit status and its
// output (stdout and stderr together).
int run_server(const std::vector<std::string>& args, std::string* output, int timeout_ms = 10000);

}  // namespace raftkv::test
