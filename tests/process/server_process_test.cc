// End-to-end tests on real raftkv-server processes: crashes (SIGKILL) at
// arbitrary moments lose no acknowledged write and apply nothing twice; a
// clean shutdown (SIGTERM) hands leadership over; bad flags and unusable data
// dirs fail with a one-line reason.
#include <gtest/gtest.h>
#include <signal.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "client/clerk.h"
#include "tests/process/process_cluster.h"

namespace raftkv::test {
namespace {

// Faster elections than the defaults, so the test spends little time waiting.
const std::vector<std::string> kFastTimers = {"--tick-ms",         "20", "--election-ticks", "15",
                                              "--heartbeat-ticks", "2"};

// Each writer appends unique tokens "<w>.<n>;" to its own key, one at a
// time, and remembers which were acknowledged and which timed out.
struct Writer {
  std::vector<std::string> acked;
  std::vector<std::string> unknown;  // outcome unknown (timeout)
  int definitely_not_applied = 0;
};

void write_loop(const std::vector<std::string>& endpoints, int w, std::atomic<bool>& stop,
                Writer& out) {
  client::Clerk clerk({.endpoints = endpoints, .timeout = std::chrono::milliseconds(3000)});
  for (int n = 0; !stop; ++n) {
    std::string token = fmt::format("{}.{};", w, n);
    client::Status s = clerk.append(fmt::format("key{}", w), token);
    if (s.ok()) {
      out.acked.push_back(token);
    } else if (s.error().outcome_unknown()) {
      out.unknown.push_back(token);
    } else {
      ++out.definitely_not_applied;
    }
  }
}

// Splits "a;b;c;" into tokens.
std::vector<std::string> tokens_of(const std::string& v) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < v.size()) {
    size_t semi = v.find(';', pos);
    out.push_back(v.substr(pos, semi - pos + 1));
    pos = semi + 1;
  }
  return out;
}

TEST(ServerProcess, SigkillOfLeaderAndOfEveryNodeLosesNoAcknowledgedWriteAndAppliesNothingTwice) {
  ProcessCluster c(3, kFastTimers);
  c.start_all();
  int leader = c.wait_for_leader(20000);
  ASSERT_NE(leader, 0) << c.log(1);

  constexpr int kWriters = 4;
  std::atomic<bool> stop{false};
  std::vector<Writer> writers(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w)
    threads.emplace_back(write_loop, c.endpoints(), w, std::ref(stop), std::ref(writers[w]));

  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  c.kill(leader, SIGKILL);  // proposals are in flight right now
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  c.start(leader);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (int i = 1; i <= 3; ++i)
    c.kill(i, SIGKILL);  // everything at once
  c.start_all();
  ASSERT_NE(c.wait_for_leader(20000), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  stop = true;
  for (auto& t : threads)
    t.join();

  client::Clerk reader({.endpoints = c.endpoints(), .timeout = std::chrono::milliseconds(10000)});
  size_t total_acked = 0;
  for (int w = 0; w < kWriters; ++w) {
    auto v = reader.get(fmt::format("key{}", w));
    ASSERT_TRUE(v.ok()) << v.error().message;
    std::vector<std::string> seen = v->has_value() ? tokens_of(**v) : std::vector<std::string>{};
    std::set<std::string> unique(seen.begin(), seen.end());
    EXPECT_EQ(unique.size(), seen.size())
        << "writer " << w << ": a write was applied twice: " << v->value_or("");
    for (const std::string& t : writers[w].acked)
      EXPECT_TRUE(unique.count(t)) << "writer " << w << ": acknowledged " << t << " was lost";
    // Everything present was acked or had an unknown outcome: no phantom writes.
    std::set<std::string> allowed(writers[w].acked.begin(), writers[w].acked.end());
    allowed.insert(writers[w].unknown.begin(), writers[w].unknown.end());
    for (const std::string& t : seen)
      EXPECT_TRUE(allowed.count(t)) << "phantom write " << t;
    total_acked += writers[w].acked.size();
  }
  EXPECT_GT(total_acked, 20u) << "the cluster made too little progress to prove anything";
  fmt::print("acknowledged appends: {}\n", total_acked);
}

TEST(ServerProcess, SigtermOfLeaderHandsLeadershipToAFollowerAndExitsCleanly) {
  ProcessCluster c(3, kFastTimers);
  c.start_all();
  int leader = c.wait_for_leader(20000);
  ASSERT_NE(leader, 0);
  client::Clerk clerk({.endpoints = c.endpoints(), .timeout = std::chrono::milliseconds(5000)});
  ASSERT_TRUE(clerk.put("k", "v").ok());
  c.kill(leader, SIGTERM);
  EXPECT_EQ(c.exit_status(leader), 0) << c.log(leader);
  EXPECT_NE(c.log(leader).find("leadership handed off"), std::string::npos) << c.log(leader);
  ASSERT_TRUE(clerk.put("k2", "v2").ok());
  auto v = clerk.get("k");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or("?"), "v");
}

TEST(ServerProcess, RejectsBadFlagsAndUnusableDataDirsWithAOneLineReason) {
  std::string out;
  EXPECT_EQ(run_server({"--bogus"}, &out), 2) << out;
  EXPECT_NE(out.find("raftkv-server:"), std::string::npos) << out;
  EXPECT_EQ(run_server({"--id", "4", "--cluster", "1=127.0.0.1:1", "--data-dir", "/tmp/x"}, &out),
            2);
  EXPECT_NE(out.find("not in --cluster"), std::string::npos) << out;
  EXPECT_EQ(run_server({"--id", "1", "--cluster", "1=nocolon", "--data-dir", "/tmp/x"}, &out), 2);
  EXPECT_NE(out.find("--cluster"), std::string::npos) << out;
  // A data dir that is a regular file.
  std::string file = "/tmp/raftkv-not-a-dir";
  std::ofstream(file) << "x";
  EXPECT_EQ(run_server({"--id", "1", "--cluster", "1=127.0.0.1:0", "--data-dir", file}, &out), 1);
  EXPECT_NE(out.find("data dir"), std::string::npos) << out;
  std::filesystem::remove(file);
  EXPECT_EQ(run_server({"--help"}, &out), 0);
  for (const char* flag : {"--id", "--cluster", "--data-dir", "--listen", "--config"})
    EXPECT_NE(out.find(flag), std::string::npos) << "--help does not document " << flag;
}

TEST(ServerProcess, GarbageOnTheClientPortIsRefusedAndTheServerKeepsServing) {
  ProcessCluster c(1, kFastTimers);
  c.start(1);
  ASSERT_NE(c.wait_for_leader(20000), 0);
  // Raw garbage: the listener closes that connection and keeps serving.
  std::string out;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(c.endpoint(1).substr(10))));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    std::string junk(4096, '\xff');
    ASSERT_GT(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), 0);
    char buf[16];
    EXPECT_LE(::recv(fd, buf, sizeof buf, 0), 0) << "the server should close the connection";
    ::close(fd);
  }
  client::Clerk clerk({.endpoints = c.endpoints(), .timeout = std::chrono::milliseconds(5000)});
  EXPECT_TRUE(clerk.put("after", "garbage").ok());
  auto big = clerk.put(std::string(5000, 'k'), "v");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, client::Code::kTooLarge);
  EXPECT_TRUE(c.running(1));
}

}  // namespace
}  // namespace raftkv::test
