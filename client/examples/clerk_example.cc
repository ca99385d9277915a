// clerk-example: a program that embeds the raftkv clerk.
//
//   clerk-example HOST:PORT[,HOST:PORT...]
//
// Writes a greeting synchronously, then counts to 100 with asynchronous
// appends kept in flight together, and reads the results back. Build your
// own program the same way: link the CMake target raftkv::client and
// include "client/clerk.h".
#include <cstdio>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "client/clerk.h"

namespace kv = raftkv::client;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT[,HOST:PORT...]\n", argv[0]);
    return 2;
  }
  kv::Options options;
  std::stringstream list(argv[1]);
  for (std::string ep; std::getline(list, ep, ',');)
    options.endpoints.push_back(ep);
  kv::Clerk clerk(options);

  // Synchronous: returns when the cluster has applied the write.
  if (kv::Status s = clerk.put("example/greeting", "hello"); !s.ok()) {
    std::fprintf(stderr, "put failed (%s): %s\n", kv::to_string(s.error().code),
                 s.error().message.c_str());
    // A timeout means the write may or may not have been applied.
    return s.error().outcome_unknown() ? 3 : 1;
  }

  // Asynchronous: 100 appends in flight at once over one connection. Each
  // callback runs on the clerk's I/O thread.
  std::vector<std::future<kv::Status>> appends;
  if (kv::Status s = clerk.del("example/counter"); !s.ok()) return 1;
  for (int i = 0; i < 100; ++i)
    appends.push_back(clerk.append_future("example/counter", "+"));
  int failed = 0;
  for (auto& f : appends)
    failed += f.get().ok() ? 0 : 1;

  auto greeting = clerk.get("example/greeting");
  auto counter = clerk.get("example/counter");
  if (!greeting.ok() || !counter.ok() || !*greeting || !*counter) {
    std::fprintf(stderr, "get failed\n");
    return 1;
  }
  std::printf("greeting=%s appends_ok=%d counter_length=%zu leader=%s\n", greeting->value().c_str(),
              100 - failed, counter->value().size(), clerk.leader_endpoint().c_str());
  return failed == 0 ? 0 : 1;
}
