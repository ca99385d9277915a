#include "client/clerk.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "raft/core/raft.h"
#include "schema/convert.h"

namespace raftkv::client {

using Clock = std::chrono::steady_clock;
using wire::ClientReply;
using wire::ClientRequest;
using wire::ReplyStatus;

const char* to_string(Code c) {
  switch (c) {
    case Code::kOk:
      return "ok";
    case Code::kTimeout:
      return "timeout";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kTooLarge:
      return "too_large";
    case Code::kBadRequest:
      return "bad_request";
    case Code::kInternal:
      return "internal";
  }
  return "internal";
}

namespace {

int remaining_ms(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1 << 30));
}

// A blocking-with-deadline connection to one endpoint.
class Connection {
 public:
  ~Connection() { close(); }
  bool open() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    decoder_ = wire::FrameDecoder();
  }

  bool connect(const std::string& endpoint, Clock::time_point deadline, std::string* error) {
    close();
    size_t colon = endpoint.rfind(':');
    if (colon == std::string::npos) {
      *error = fmt::format("{}: not HOST:PORT", endpoint);
      return false;
    }
    std::string host = endpoint.substr(0, colon), port = endpoint.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      *error = fmt::format("{}: {}", endpoint, gai_strerror(rc));
      return false;
    }
    for (addrinfo* ai = res; ai && fd_ < 0; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        rc = ::poll(&p, 1, remaining_ms(deadline)) == 1 ? 0 : -1;
        int so = 0;
        socklen_t len = sizeof so;
        if (rc == 0 && (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len) != 0 || so != 0)) {
          errno = so ? so : ETIMEDOUT;
          rc = -1;
        } else if (rc != 0) {
          errno = ETIMEDOUT;
        }
      }
      if (rc != 0) {
        *error = fmt::format("{}: {}", endpoint, std::strerror(errno));
        ::close(fd);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
    }
    ::freeaddrinfo(res);
    return fd_ >= 0;
  }

  bool send_all(std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) != 1) return false;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    return true;
  }

  // The reply to request_id; replies to abandoned earlier requests are skipped.
  std::optional<ClientReply> receive(uint64_t request_id, Clock::time_point deadline,
                                     std::string* error) {
    while (true) {
      auto frame = decoder_.next();
      if (!frame.ok()) {
        *error = frame.error().message;
        return std::nullopt;
      }
      if (frame->has_value()) {
        auto reply = wire::decode_client_reply((*frame)->payload);
        if (!reply.ok()) {
          *error = reply.error().message;
          return std::nullopt;
        }
        if (reply->request_id == request_id) return std::move(*reply);
        continue;
      }
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, remaining_ms(deadline));
      if (rc == 0) {
        *error = "no reply before the deadline";
        return std::nullopt;
      }
      if (rc < 0 && errno == EINTR) continue;
      auto buf = decoder_.prepare(64 << 10);
      ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n > 0) {
        decoder_.commit(static_cast<size_t>(n));
      } else if (n == 0) {
        *error = "connection closed by the server";
        return std::nullopt;
      } else if (errno != EAGAIN && errno != EINTR) {
        *error = std::strerror(errno);
        return std::nullopt;
      }
    }
  }

 private:
  int fd_ = -1;
  wire::FrameDecoder decoder_;
};

}  // namespace

struct Clerk::Impl {
  Options opts;
  std::mutex mu;
  uint64_t client_id = 0;
  uint64_t seq = 0;
  uint64_t next_request = 1;
  size_t current = 0;  // endpoint believed to lead (or to try next)
  bool leader_known = false;
  std::map<size_t, Connection> conns;

  // Sends req until a definitive reply or the deadline.
  Result<ClientReply> call(ClientRequest req) {
    const bool is_write = req.op != wire::Op::kGet && req.op != wire::Op::kStatus;
    const auto deadline = Clock::now() + opts.timeout;
    const auto attempt_budget = std::max(std::chrono::milliseconds(1000), opts.timeout / 3);
    bool maybe_applied = false;
    std::string last_error = "no endpoint tried";
    int failures_in_row = 0;
    auto backoff = std::chrono::milliseconds(20);
    while (Clock::now() < deadline) {
      if (failures_in_row >= static_cast<int>(opts.endpoints.size())) {
        // A full round failed: wait a little before the next one.
        std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - Clock::now()));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
        failures_in_row = 0;
      }
      size_t ep = current;
      Connection& c = conns[ep];
      auto attempt_deadline = std::min(deadline, Clock::now() + attempt_budget);
      if (!c.open() && !c.connect(opts.endpoints[ep], attempt_deadline, &last_error)) {
        advance();
        ++failures_in_row;
        continue;
      }
      req.request_id = next_request++;
      std::string frame;
      if (auto st = wire::append_client_request_frame(req, &frame); !st.ok())
        return Error{Code::kTooLarge, st.error().message};
      if (!c.send_all(frame, attempt_deadline)) {
        last_error = fmt::format("{}: send failed", opts.endpoints[ep]);
        c.close();
        // A partial frame is discarded by the server: not applied.
        advance();
        ++failures_in_row;
        continue;
      }
      std::string err;
      auto reply = c.receive(req.request_id, attempt_deadline, &err);
      if (!reply) {
        last_error = fmt::format("{}: {}", opts.endpoints[ep], err);
        c.close();
        if (is_write) maybe_applied = true;
        advance();
        ++failures_in_row;
        continue;
      }
      switch (reply->status) {
        case ReplyStatus::kOk:
        case ReplyStatus::kNotFound:
          leader_known = true;
          return std::move(*reply);
        case ReplyStatus::kNotLeader:
          last_error = fmt::format("{}: not the leader", opts.endpoints[ep]);
          follow_hint(*reply);
          ++failures_in_row;
          continue;
        case ReplyStatus::kBusy:
          last_error = fmt::format("{}: busy", opts.endpoints[ep]);
          std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - Clock::now()));
          backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
          continue;
        case ReplyStatus::kTimeout:
          last_error = fmt::format("{}: {}", opts.endpoints[ep], reply->message);
          if (is_write) maybe_applied = true;
          continue;
        case ReplyStatus::kTooLarge:
          return Error{Code::kTooLarge, reply->message};
        case ReplyStatus::kBadRequest:
          return Error{Code::kBadRequest, reply->message};
        case ReplyStatus::kInternal:
          return Error{Code::kInternal, reply->message};
      }
    }
    if (maybe_applied) {
      return Error{Code::kTimeout,
                   fmt::format("deadline passed; the write may or may not have been applied "
                               "(last: {})",
                               last_error)};
    }
    return Error{is_write ? Code::kUnavailable : Code::kTimeout,
                 fmt::format("no leader reached before the deadline (last: {})", last_error)};
  }

  Status write(wire::Op op, std::string_view key, std::string_view value) {
    ClientRequest req;
    req.op = op;
    req.client_id = wire::ClientId(client_id);
    req.seq = ++seq;  // retries of this write reuse it: exactly-once
    req.key = key;
    req.value = value;
    auto r = call(std::move(req));
    if (!r.ok()) return r.error();
    return Status();
  }

  void advance() {
    leader_known = false;
    current = (current + 1) % opts.endpoints.size();
  }

  void follow_hint(const ClientReply& r) {
    for (size_t i = 0; i < opts.endpoints.size(); ++i) {
      if (!r.leader_address.empty() && opts.endpoints[i] == r.leader_address && i != current) {
        current = i;
        return;
      }
    }
    advance();
  }
};

Clerk::Clerk(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(options);
  if (impl_->opts.endpoints.empty()) impl_->opts.endpoints.push_back("127.0.0.1:7001");
  impl_->client_id = impl_->opts.client_id;
  if (impl_->client_id == 0) {
    std::random_device rd;
    while (impl_->client_id == 0)
      impl_->client_id = (uint64_t{rd()} << 32) ^ rd();
  }
}

Clerk::~Clerk() = default;

uint64_t Clerk::client_id() const {
  return impl_->client_id;
}

std::string Clerk::leader_endpoint() const {
  std::lock_guard lock(impl_->mu);
  return impl_->leader_known ? impl_->opts.endpoints[impl_->current] : "";
}

Result<std::optional<std::string>> Clerk::get(std::string_view key) {
  std::lock_guard lock(impl_->mu);
  ClientRequest req;
  req.op = wire::Op::kGet;
  req.key = key;
  auto r = impl_->call(std::move(req));
  if (!r.ok()) return r.error();
  return r->value;
}

Status Clerk::put(std::string_view key, std::string_view value) {
  std::lock_guard lock(impl_->mu);
  return impl_->write(wire::Op::kPut, key, value);
}

Status Clerk::append(std::string_view key, std::string_view value) {
  std::lock_guard lock(impl_->mu);
  return impl_->write(wire::Op::kAppend, key, value);
}

Status Clerk::del(std::string_view key) {
  std::lock_guard lock(impl_->mu);
  return impl_->write(wire::Op::kDelete, key, "");
}

std::vector<EndpointStatus> Clerk::status() {
  std::lock_guard lock(impl_->mu);
  std::vector<EndpointStatus> out;
  for (const std::string& ep : impl_->opts.endpoints) {
    EndpointStatus s;
    s.endpoint = ep;
    Connection c;
    auto deadline = Clock::now() + impl_->opts.timeout;
    ClientRequest req;
    req.op = wire::Op::kStatus;
    req.request_id = impl_->next_request++;
    std::string frame;
    (void)wire::append_client_request_frame(req, &frame);
    std::string err;
    if (!c.connect(ep, deadline, &err)) {
      s.error = err;
    } else if (!c.send_all(frame, deadline)) {
      s.error = "send failed";
    } else if (auto r = c.receive(req.request_id, deadline, &err); !r || !r->node_status) {
      s.error = r ? "no status in reply" : err;
    } else {
      const wire::NodeStatus& ns = *r->node_status;
      s.reachable = true;
      s.id = ns.node_id.value;
      s.role = raft::to_string(ns.role);
      s.term = ns.term.value;
      s.leader = ns.leader.value;
      s.commit_index = ns.commit_index.value;
      s.applied_index = ns.applied_index.value;
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace raftkv::client
