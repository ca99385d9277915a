#include "tests/process/process_cluster.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "client/clerk.h"

namespace raftkv::test {

namespace {

// Binds `fd` to a loopback port the kernel picks, and returns the port.
int bind_free_port(int fd) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// `n` distinct free ports. Every socket stays bound until all are picked:
// a port is free again once its socket closes, and the kernel handed the
// same one to two nodes of one cluster (both then failed to start).
std::vector<int> free_ports(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    fds.push_back(::socket(AF_INET, SOCK_STREAM, 0));
    ports.push_back(bind_free_port(fds.back()));
  }
  for (int fd : fds)
    ::close(fd);
  return ports;
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log_path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

ProcessCluster::ProcessCluster(int nodes, std::vector<std::string> extra_args)
    : extra_args_(std::move(extra_args)) {
  char tmpl[] = "/tmp/raftkv-proc-XXXXXX";
  dir_ = ::mkdtemp(tmpl);
  ports_.push_back(0);
  for (int port : free_ports(nodes))
    ports_.push_back(port);
  pids_.assign(nodes + 1, 0);
  exit_status_.assign(nodes + 1, -1);
}

ProcessCluster::~ProcessCluster() {
  for (int i = 1; i <= size(); ++i)
    if (pids_[i] > 0) kill(i, SIGKILL);
  if (!std::getenv("RAFTKV_KEEP_TEST_DIRS")) std::filesystem::remove_all(dir_);
}

std::string ProcessCluster::endpoint(int id) const {
  return fmt::format("127.0.0.1:{}", ports_[id]);
}

std::vector<std::string> ProcessCluster::endpoints() const {
  std::vector<std::string> out;
  for (int i = 1; i <= size(); ++i)
    out.push_back(endpoint(i));
  return out;
}

void ProcessCluster::start(int id) {
  std::string cluster;
  for (int i = 1; i <= size(); ++i)
    cluster += fmt::format("{}{}={}", i > 1 ? "," : "", i, endpoint(i));
  std::vector<std::string> args = {RAFTKV_SERVER_PATH,
                                   "--id",
                                   std::to_string(id),
                                   "--cluster",
                                   cluster,
                                   "--data-dir",
                                   fmt::format("{}/n{}", dir_, id)};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pids_[id] = spawn(args, fmt::format("{}/n{}.log", dir_, id));
}

void ProcessCluster::start_all() {
  for (int i = 1; i <= size(); ++i)
    start(i);
}

void ProcessCluster::kill(int id, int sig) {
  if (pids_[id] <= 0) return;
  ::kill(pids_[id], sig);
  int status = 0;
  ::waitpid(pids_[id], &status, 0);
  exit_status_[id] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  pids_[id] = 0;
}

void ProcessCluster::signal(int id, int sig) {
  if (pids_[id] > 0) ::kill(pids_[id], sig);
}

void ProcessCluster::restart(int id) {
  kill(id, SIGKILL);
  start(id);
}

std::string ProcessCluster::log(int id) const {
  std::ifstream in(fmt::format("{}/n{}.log", dir_, id));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int ProcessCluster::wait_for_leader(int ms) const {
  return agreed_leader(ms, /*every_running=*/false);
}

int ProcessCluster::wait_for_leader_of_all(int ms) const {
  return agreed_leader(ms, /*every_running=*/true);
}

int ProcessCluster::agreed_leader(int ms, bool every_running) const {
  int running_nodes = 0;
  for (int i = 1; i <= size(); ++i)
    running_nodes += running(i);
  client::Clerk clerk({.endpoints = endpoints(), .timeout = std::chrono::milliseconds(500)});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    std::map<uint64_t, int> votes;
    int live = 0;
    for (const auto& s : clerk.status()) {
      if (!s.reachable) continue;
      ++live;
      if (s.leader != 0) ++votes[s.leader];
    }
    for (auto& [leader, n] : votes)
      if (n == live && live > size() / 2 && (!every_running || live == running_nodes))
        return static_cast<int>(leader);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

int run_server(const std::vector<std::string>& args, std::string* output, int timeout_ms) {
  char tmpl[] = "/tmp/raftkv-run-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ::close(fd);
  std::vector<std::string> full = {RAFTKV_SERVER_PATH};
  full.insert(full.end(), args.begin(), args.end());
  pid_t pid = spawn(full, tmpl);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::ifstream in(tmpl);
  std::stringstream ss;
  ss << in.rdbuf();
  *output = ss.str();
  std::remove(tmpl);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string bind_loopback(int fd) {
  return fmt::format("127.0.0.1:{}", bind_free_port(fd));
}

std::string dead_endpoint() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  std::string endpoint = bind_loopback(fd);
  ::close(fd);
  return endpoint;
}

SilentServer::SilentServer() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
  endpoint_ = bind_loopback(fd_);
  ::listen(fd_, 64);
}

SilentServer::~SilentServer() {
  ::close(fd_);
}

}  // namespace raftkv::test
