// raftkv client library ("clerk"). Link the CMake target raftkv::client.
//
//   raftkv::client::Clerk clerk({.endpoints = {"127.0.0.1:7001", "127.0.0.1:7002"}});
//   if (auto s = clerk.put("k", "v"); !s.ok()) { ... s.error().message ... }
//   auto v = clerk.get("k");   // v.ok(); *v is std::optional<std::string>
//
// Every operation is linearizable. Writes are exactly-once: the clerk has a
// random client id and numbers its writes; a retry (after a timeout, a dead
// node or a leader change) reuses the same number, so the cluster applies it
// at most once. The clerk follows the leader from the servers' redirect
// hints and retries with backoff until the operation's deadline.
//
// Errors tell "definitely not applied" (kUnavailable, kTooLarge,
// kBadRequest) from "outcome unknown" (kTimeout: the write may or may not
// have been applied).
//
// Asynchronous forms (async_get, async_put, ...) return at once and call
// their callback when the operation finishes; one clerk keeps any number of
// operations in flight, pipelined over `Options::connections` connections to
// the leader. Each write in flight holds its own session (client id, seq), so
// retries stay exactly-once however the cluster reorders them.
//
// Thread-safe: every method may be called from any thread. Callbacks run on
// the clerk's I/O thread: they must not block, and must not call the
// synchronous methods (those return kBadRequest there); they may start new
// asynchronous operations. The destructor waits for the I/O thread; callbacks
// of operations still in flight then receive kTimeout (outcome unknown) or,
// for reads, kUnavailable.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace raftkv::client {

enum class Code : uint8_t {
  kOk,
  kTimeout,      // deadline passed; a write's outcome is unknown
  kUnavailable,  // no leader reachable before the deadline; definitely not applied
  kTooLarge,     // key or value over the server's limit; not applied
  kBadRequest,   // rejected by the server; not applied
  kInternal,     // unexpected server error
};

const char* to_string(Code c);

struct Error {
  Code code = Code::kInternal;
  std::string message;
  // True when a write may have been applied (only kTimeout).
  bool outcome_unknown() const { return code == Code::kTimeout; }
};

class Status {
 public:
  Status() = default;
  Status(Error e) : error_(std::move(e)) {}
  bool ok() const { return !error_; }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

template <class T>
class Result {
 public:
  Result(T v) : v_(std::move(v)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  const T& value() const { return std::get<0>(v_); }
  const T& operator*() const { return value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Options {
  std::vector<std::string> endpoints;       // "host:port" of any members
  std::chrono::milliseconds timeout{5000};  // per operation, retries included
  uint64_t client_id = 0;                   // 0: a random id (of the first session)
  size_t connections = 1;                   // TCP connections to the leader, used round-robin
};

// One member's view of itself, as `status` reports it.
struct EndpointStatus {
  std::string endpoint;
  bool reachable = false;
  std::string error;  // when unreachable
  uint64_t id = 0;
  std::string role;  // leader | follower | candidate | pre-candidate
  uint64_t term = 0;
  uint64_t leader = 0;
  uint64_t commit_index = 0;
  uint64_t applied_index = 0;
};

class Clerk {
 public:
  explicit Clerk(Options options);
  ~Clerk();
  Clerk(const Clerk&) = delete;
  Clerk& operator=(const Clerk&) = delete;

  // The value, or nullopt when the key is absent.
  Result<std::optional<std::string>> get(std::string_view key);
  Status put(std::string_view key, std::string_view value);
  Status append(std::string_view key, std::string_view value);
  // Deleting an absent key succeeds.
  Status del(std::string_view key);
  // Asks every endpoint about itself (no retries; each bounded by the timeout).
  std::vector<EndpointStatus> status();

  using GetCallback = std::function<void(Result<std::optional<std::string>>)>;
  using WriteCallback = std::function<void(Status)>;
  void async_get(std::string_view key, GetCallback done);
  void async_put(std::string_view key, std::string_view value, WriteCallback done);
  void async_append(std::string_view key, std::string_view value, WriteCallback done);
  void async_del(std::string_view key, WriteCallback done);

  // Future forms of the above.
  std::future<Result<std::optional<std::string>>> get_future(std::string_view key);
  std::future<Status> put_future(std::string_view key, std::string_view value);
  std::future<Status> append_future(std::string_view key, std::string_view value);
  std::future<Status> del_future(std::string_view key);

  // The client id of the first session (the one sequential writes use).
  uint64_t client_id() const;
  // The endpoint believed to lead, if any ("" otherwise).
  std::string leader_endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::client
