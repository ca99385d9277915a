// The clerk runs one I/O thread (an Asio io_context). Every operation is a
// Call owned by `calls` (a list in deadline order) from start to completion;
// at any moment a Call is in exactly one place: queued on a connection that
// is connecting, in flight on an open connection (keyed by request id),
// waiting in `delayed` for a backoff, or nowhere while being re-dispatched.
#include "client/clerk.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <list>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <asio.hpp>

#include "raft/core/raft.h"
#include "raft/node/transport_internal.h"
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

constexpr auto kMinBackoff = std::chrono::milliseconds(20);
// Short enough that a client sees a new leader soon after its election.
constexpr auto kMaxBackoff = std::chrono::milliseconds(200);
constexpr auto kSweepEvery = std::chrono::milliseconds(10);

uint64_t random_id() {
  static std::mutex mu;
  static std::random_device rd;
  std::lock_guard lock(mu);
  uint64_t id = 0;
  while (id == 0)
    id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

}  // namespace

struct Clerk::Impl {
  class Conn;
  struct Call;
  // Completion of a call: an error, or the server's reply.
  using Done = std::function<void(const Error* error, ClientReply& reply)>;
  // A list, not a multimap: a call is created in its node (one allocation),
  // moves between lists by splicing, and since every deadline is its start
  // plus the same timeout, the sorted place of a new call is at the back.
  using Calls = std::list<Call>;

  struct Call {
    Clock::time_point deadline;
    ClientRequest req;  // request_id is set per attempt
    bool is_write = false;
    Done done;
    Calls::iterator self;        // itself, in `calls`
    int session = -1;            // writes: index into `sessions`
    bool maybe_applied = false;  // an attempt may have reached the log
    std::string last_error = "no endpoint tried";
    enum class Where : uint8_t { kNowhere, kQueued, kInFlight, kDelayed } where = Where::kNowhere;
    std::shared_ptr<Conn> conn;    // kQueued / kInFlight
    std::shared_ptr<Conn> pinned;  // status: this endpoint only, no retries
  };

  struct Session {
    uint64_t client_id;
    uint64_t seq = 0;
  };

  // One TCP connection to one endpoint. Handlers hold a shared_ptr and check
  // `generation`, so a reply or error from a closed socket is ignored.
  class Conn : public std::enable_shared_from_this<Conn> {
   public:
    Conn(Impl& impl, size_t endpoint)
        : endpoint(endpoint),
          impl_(impl),
          socket_(impl.io),
          resolver_(impl.io),
          connect_timer_(impl.io) {}

    enum class State : uint8_t { kClosed, kConnecting, kOpen };
    const size_t endpoint;
    State state = State::kClosed;
    std::unordered_map<uint64_t, Call*> in_flight;  // by request id
    std::vector<Call*> queued;                      // while connecting
    Clock::time_point last_heard;  // last reply, or when in_flight became non-empty

    void connect() {
      state = State::kConnecting;
      ++generation_;
      decoder_ = wire::FrameDecoder();
      std::optional<raft::HostPort> hp = raft::split_host_port(name());
      if (!hp) return fail(fmt::format("{}: not HOST:PORT", name()));
      connect_timer_.expires_after(impl_.attempt_budget);
      connect_timer_.async_wait([self = shared_from_this(), g = generation_](asio::error_code ec) {
        if (!ec && self->generation_ == g && self->state == State::kConnecting)
          self->fail(fmt::format("{}: connect timed out", self->name()));
      });
      resolver_.async_resolve(
          hp->host, hp->port,
          [self = shared_from_this(), g = generation_](
              const asio::error_code& ec, asio::ip::tcp::resolver::results_type results) {
            if (self->generation_ != g) return;
            if (ec) return self->fail(fmt::format("{}: {}", self->name(), ec.message()));
            asio::async_connect(
                self->socket_, results,
                [self, g](const asio::error_code& ec2, const asio::ip::tcp::endpoint&) {
                  if (self->generation_ != g) return;
                  if (ec2) return self->fail(fmt::format("{}: {}", self->name(), ec2.message()));
                  self->opened();
                });
          });
    }

    // Sends call's request as a new attempt. Precondition: state == kOpen.
    void send(Call* call) {
      call->req.request_id = impl_.next_request++;
      if (auto st = wire::append_client_request_frame(call->req, &outbox_); !st.ok()) {
        Error e{Code::kTooLarge, st.error().message};
        return impl_.finish(call, &e);
      }
      if (in_flight.empty()) last_heard = Clock::now();
      in_flight[call->req.request_id] = call;
      call->where = Call::Where::kInFlight;
      call->conn = shared_from_this();
      schedule_flush();
    }

    // Requests sent in one turn of the I/O thread leave in one send at its
    // end, not the first alone and the rest after it.
    void schedule_flush() {
      if (flush_scheduled_ || writing_ || state != State::kOpen) return;
      flush_scheduled_ = true;
      asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->flush_scheduled_ = false;
        self->flush();  // a no-op if the connection closed meanwhile
      });
    }

    // Closes the connection; its calls go back to the clerk for a retry.
    void fail(std::string error) {
      close();
      std::vector<Call*> moved = std::move(queued);
      queued.clear();
      std::vector<Call*> sent;
      for (auto& [id, call] : in_flight)
        sent.push_back(call);
      in_flight.clear();
      impl_.connection_failed(*this, error, moved, sent);
    }

    void close() {
      ++generation_;
      state = State::kClosed;
      asio::error_code ignored;
      socket_.close(ignored);
      connect_timer_.cancel();
      writing_ = false;
      outbox_.clear();
      sending_.clear();
    }

    std::string name() const { return impl_.opts.endpoints[endpoint]; }

   private:
    void opened() {
      state = State::kOpen;
      connect_timer_.cancel();
      asio::error_code ignored;
      socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
      std::vector<Call*> waiting = std::move(queued);
      queued.clear();
      for (Call* c : waiting)
        send(c);
      read();
    }

    void read() {
      auto buf = decoder_.prepare(64 << 10);
      socket_.async_read_some(
          asio::buffer(buf.data(), buf.size()),
          [self = shared_from_this(), g = generation_](const asio::error_code& ec, size_t n) {
            if (self->generation_ != g) return;
            if (ec) return self->fail(fmt::format("{}: {}", self->name(), ec.message()));
            self->decoder_.commit(n);
            self->last_heard = Clock::now();
            self->drain(g);
          });
    }

    void drain(uint64_t g) {
      SharedSlot shared(impl_);  // the calls the replies' callbacks start
      while (generation_ == g) {
        auto frame = decoder_.next();
        if (!frame.ok()) return fail(fmt::format("{}: {}", name(), frame.error().message));
        if (!frame->has_value()) return read();
        auto reply = wire::decode_client_reply((*frame)->payload);
        if (!reply.ok()) return fail(fmt::format("{}: {}", name(), reply.error().message));
        auto it = in_flight.find(reply->request_id);
        if (it == in_flight.end()) continue;  // an attempt abandoned at its deadline
        Call* call = it->second;
        in_flight.erase(it);
        call->where = Call::Where::kNowhere;
        call->conn.reset();
        impl_.handle_reply(*this, call, *reply);
      }
    }

    void flush() {
      if (writing_ || outbox_.empty() || state != State::kOpen) return;
      writing_ = true;
      sending_.swap(outbox_);
      outbox_.clear();
      asio::async_write(
          socket_, asio::buffer(sending_),
          [self = shared_from_this(), g = generation_](const asio::error_code& ec, size_t) {
            if (self->generation_ != g) return;
            self->writing_ = false;
            self->sending_.clear();
            if (ec) return self->fail(fmt::format("{}: {}", self->name(), ec.message()));
            self->flush();
          });
    }

    Impl& impl_;
    asio::ip::tcp::socket socket_;
    asio::ip::tcp::resolver resolver_;
    asio::steady_timer connect_timer_;
    uint64_t generation_ = 0;
    wire::FrameDecoder decoder_;
    bool writing_ = false;
    bool flush_scheduled_ = false;  // a flush() is posted for the end of this turn
    std::string outbox_;            // frames waiting for the write in flight
    std::string sending_;           // the write in flight
  };

  explicit Impl(Options o)
      : opts(std::move(o)),
        first_client_id(opts.client_id != 0 ? opts.client_id : random_id()),
        attempt_budget(std::max(std::chrono::milliseconds(1000), opts.timeout / 3)),
        work(asio::make_work_guard(io)),
        retry_timer(io),
        sweep_timer(io) {
    if (opts.endpoints.empty()) opts.endpoints.push_back("127.0.0.1:7001");
    if (opts.connections == 0) opts.connections = 1;
    sessions.push_back(Session{first_client_id});
    for (size_t i = 0; i < opts.connections; ++i)
      conns.push_back(std::make_shared<Conn>(*this, 0));
    thread = std::thread([this] {
      pthread_setname_np(pthread_self(), "raftkv-clerk");  // for top -H, perf, gdb
      io.run();
    });
    io_thread = thread.get_id();
  }

  ~Impl() {
    asio::post(io, [this] { shut_down(); });
    thread.join();
  }

  bool on_io_thread() const { return std::this_thread::get_id() == io_thread; }

  // ---- Submission (any thread) -------------------------------------------

  // A new call, alone in `one`. Its deadline is now plus the one timeout
  // every call has, which start() relies on to place it.
  Call& new_call(Calls& one) const {
    Call& call = one.emplace_back();
    call.deadline = Clock::now() + opts.timeout;
    return call;
  }

  void submit(ClientRequest req, Done done) {
    Calls one;
    Call& call = new_call(one);
    call.is_write = req.op != wire::Op::kGet && req.op != wire::Op::kStatus;
    call.req = std::move(req);
    call.done = std::move(done);
    if (on_io_thread()) return start(one);
    bool post;
    {
      std::lock_guard lock(submit_mu);
      submitted.splice(submitted.end(), one);
      post = !submit_posted;
      submit_posted = true;
    }
    if (post) asio::post(io, [this] { drain_submitted(); });
  }

  void drain_submitted() {
    Calls batch;
    {
      std::lock_guard lock(submit_mu);
      batch.swap(submitted);
      submit_posted = false;
    }
    SharedSlot shared(*this);
    while (!batch.empty()) {
      Calls one;
      one.splice(one.end(), batch, batch.begin());
      start(one);
    }
  }

  // The calls started while one is alive share a connection (up to
  // kCallsPerSlot of them), so they leave in one send rather than one per
  // connection: a closed-loop caller starts as many calls as one reply
  // batch completed (from the callbacks, on the I/O thread) or submits them
  // together (from other threads), and round-robin would scatter them over
  // all the slots. An inner scope joins the outer one.
  class SharedSlot {
   public:
    explicit SharedSlot(Impl& impl) : impl_(impl), outer_(!impl.batch_slot) {
      if (!outer_) return;
      impl_.batch_slot = impl_.next_conn++ % impl_.conns.size();
      impl_.batch_calls = 0;
    }
    ~SharedSlot() {
      if (outer_) impl_.batch_slot.reset();
    }
    SharedSlot(const SharedSlot&) = delete;
    SharedSlot& operator=(const SharedSlot&) = delete;

   private:
    Impl& impl_;
    const bool outer_;
  };

  // ---- The I/O thread ------------------------------------------------------

  // Moves the one call in `one` to its place in `calls`: the back, but for
  // calls submitted by other threads a moment apart.
  void start(Calls& one) {
    auto pos = calls.end();
    while (pos != calls.begin() && std::prev(pos)->deadline > one.front().deadline)
      --pos;
    Calls::iterator self = one.begin();
    calls.splice(pos, one, self);
    Call* call = &*self;
    call->self = self;
    if (stopped) {
      Error e{Code::kUnavailable, "the clerk is shutting down"};
      return finish(call, &e);
    }
    if (call->is_write) {
      // Each write in flight holds a session of its own: a session never has
      // two writes outstanding, so the server's "latest seq" rule is exact.
      if (free_sessions.empty()) {
        free_sessions.push_back(static_cast<int>(sessions.size()));
        sessions.push_back(Session{random_id()});
      }
      call->session = free_sessions.back();
      free_sessions.pop_back();
      Session& s = sessions[call->session];
      call->req.client_id = wire::ClientId(s.client_id);
      call->req.seq = ++s.seq;  // retries of this write reuse it: exactly-once
    }
    arm_sweep();
    dispatch(call);
  }

  void dispatch(Call* call) {
    std::shared_ptr<Conn> c = call->pinned;
    std::vector<Call*> displaced_queued, displaced_sent;
    if (!c) {
      if (batch_slot && ++batch_calls > kCallsPerSlot) {
        batch_slot = next_conn++ % conns.size();
        batch_calls = 1;
      }
      c = conns[batch_slot ? *batch_slot : next_conn++ % conns.size()];
      if (c->endpoint != current) {
        // The leader moved: reopen this slot to the endpoint believed to lead.
        // The old connection's calls are retried (same session and seq).
        c->close();
        displaced_queued = std::move(c->queued);
        c->queued.clear();
        for (auto& [id, in] : c->in_flight)
          displaced_sent.push_back(in);
        c->in_flight.clear();
        auto fresh = std::make_shared<Conn>(*this, current);
        std::replace(conns.begin(), conns.end(), c, fresh);
        c = fresh;
      }
    }
    if (c->state == Conn::State::kOpen) {
      c->send(call);
    } else {
      call->where = Call::Where::kQueued;
      call->conn = c;
      c->queued.push_back(call);
      if (c->state == Conn::State::kClosed) c->connect();
    }
    for (Call* d : displaced_queued)
      detach_and_retry(d, false);
    for (Call* d : displaced_sent)
      detach_and_retry(d, true);
  }

  void detach_and_retry(Call* call, bool was_sent) {
    call->conn.reset();
    call->where = Call::Where::kNowhere;
    if (was_sent && call->is_write) call->maybe_applied = true;
    retry(call);
  }

  void connection_failed(Conn& c, const std::string& error, const std::vector<Call*>& queued,
                         const std::vector<Call*>& sent) {
    if (stopped) return;  // shut_down() finishes every call
    for (Call* call : queued) {
      call->last_error = error;
      call->where = Call::Where::kNowhere;
      call->conn.reset();
    }
    for (Call* call : sent) {
      call->last_error = error;
      call->where = Call::Where::kNowhere;
      call->conn.reset();
      if (call->is_write) call->maybe_applied = true;  // it may have reached the leader
    }
    if (c.endpoint == current && !is_pinned(c)) {
      ++failures_in_row;
      advance();
    }
    for (Call* call : queued)
      after_failure(call, error);
    for (Call* call : sent)
      after_failure(call, error);
  }

  void after_failure(Call* call, const std::string& error) {
    if (call->pinned) {
      Error e{Code::kUnavailable, error};
      return finish(call, &e);
    }
    retry(call);
  }

  void handle_reply(Conn& c, Call* call, ClientReply& reply) {
    if (call->pinned) return finish(call, nullptr, &reply);
    switch (reply.status) {
      case ReplyStatus::kOk:
      case ReplyStatus::kNotFound:
        failures_in_row = 0;
        backoff = kMinBackoff;
        leader.store(static_cast<int>(c.endpoint), std::memory_order_relaxed);
        return finish(call, nullptr, &reply);
      case ReplyStatus::kNotLeader:
        // Definitely not applied by this attempt (earlier ones may have been).
        call->last_error = fmt::format("{}: not the leader", c.name());
        if (c.endpoint == current) {
          ++failures_in_row;
          follow_hint(reply);
        }
        return retry(call);
      case ReplyStatus::kBusy:
        call->last_error = fmt::format("{}: busy", c.name());
        return delay(call);
      case ReplyStatus::kTimeout:
        call->last_error = fmt::format("{}: {}", c.name(), reply.message);
        if (call->is_write) call->maybe_applied = true;
        return retry(call);
      case ReplyStatus::kTooLarge: {
        Error e{Code::kTooLarge, reply.message};
        return finish(call, &e);
      }
      case ReplyStatus::kBadRequest: {
        Error e{Code::kBadRequest, reply.message};
        return finish(call, &e);
      }
      case ReplyStatus::kInternal: {
        Error e{Code::kInternal, reply.message};
        return finish(call, &e);
      }
    }
    Error e{Code::kInternal, "unknown reply status"};
    finish(call, &e);
  }

  void retry(Call* call) {
    // After a full round of failures, wait before the next round.
    if (failures_in_row >= static_cast<int>(opts.endpoints.size())) return delay(call);
    dispatch(call);
  }

  void delay(Call* call) {
    call->where = Call::Where::kDelayed;
    delayed.push_back(call);
    if (retry_armed) return;
    retry_armed = true;
    retry_timer.expires_after(backoff);
    retry_timer.async_wait([this](asio::error_code ec) {
      retry_armed = false;
      if (ec || stopped) return;
      failures_in_row = 0;
      backoff = std::min(backoff * 2, std::chrono::duration_cast<Clock::duration>(kMaxBackoff));
      std::deque<Call*> ready;
      ready.swap(delayed);
      for (Call* c : ready) {
        c->where = Call::Where::kNowhere;
        dispatch(c);
      }
    });
  }

  void advance() {
    leader.store(-1, std::memory_order_relaxed);
    current = (current + 1) % opts.endpoints.size();
  }

  void follow_hint(const ClientReply& r) {
    if (!r.leader_address.empty()) {
      for (size_t i = 0; i < opts.endpoints.size(); ++i) {
        if (opts.endpoints[i] == r.leader_address && i != current) {
          leader.store(-1, std::memory_order_relaxed);
          current = i;
          return;
        }
      }
    }
    advance();
  }

  // Completes a call exactly once: with `error`, or with `reply`.
  void finish(Call* call, const Error* error, ClientReply* reply = nullptr) {
    Calls dying;  // keeps the call alive through its callback
    dying.splice(dying.end(), calls, call->self);
    if (call->session >= 0) free_sessions.push_back(call->session);
    if (call->pinned) {
      call->pinned->close();
      call->pinned.reset();
    }
    ClientReply empty;
    call->done(error, reply ? *reply : empty);
  }

  // Deadlines, and connections whose server stopped answering.
  void arm_sweep() {
    if (sweep_armed || stopped) return;
    sweep_armed = true;
    sweep_timer.expires_after(kSweepEvery);
    sweep_timer.async_wait([this](asio::error_code ec) {
      sweep_armed = false;
      if (ec || stopped) return;
      sweep();
      if (!calls.empty()) arm_sweep();
    });
  }

  void sweep() {
    const auto now = Clock::now();
    while (!calls.empty() && calls.front().deadline <= now)
      expire(&calls.front());
    // A server that holds requests without a word for an attempt's budget is
    // presumed stuck (e.g. stopped or partitioned with the socket open).
    auto stuck = [&](const std::shared_ptr<Conn>& c) {
      return c->state == Conn::State::kOpen && !c->in_flight.empty() &&
             now - c->last_heard > attempt_budget;
    };
    for (size_t i = 0; i < conns.size(); ++i) {
      std::shared_ptr<Conn> c = conns[i];
      if (stuck(c))
        c->fail(fmt::format(
            "{}: no reply for {} ms", c->name(),
            std::chrono::duration_cast<std::chrono::milliseconds>(attempt_budget).count()));
    }
  }

  void expire(Call* call) {
    switch (call->where) {
      case Call::Where::kInFlight:
        call->conn->in_flight.erase(call->req.request_id);
        if (call->is_write) call->maybe_applied = true;
        break;
      case Call::Where::kQueued: {
        auto& q = call->conn->queued;
        q.erase(std::remove(q.begin(), q.end(), call), q.end());
        break;
      }
      case Call::Where::kDelayed:
        delayed.erase(std::remove(delayed.begin(), delayed.end(), call), delayed.end());
        break;
      case Call::Where::kNowhere:
        break;
    }
    call->conn.reset();
    Error e = deadline_error(*call);
    finish(call, &e);
  }

  Error deadline_error(const Call& call) const {
    if (call.pinned) return Error{Code::kTimeout, "no reply before the deadline"};
    if (call.maybe_applied) {
      return Error{Code::kTimeout,
                   fmt::format("deadline passed; the write may or may not have been applied "
                               "(last: {})",
                               call.last_error)};
    }
    return Error{call.is_write ? Code::kUnavailable : Code::kTimeout,
                 fmt::format("no leader reached before the deadline (last: {})", call.last_error)};
  }

  void shut_down() {
    stopped = true;
    retry_timer.cancel();
    sweep_timer.cancel();
    for (auto& c : conns) {
      c->close();
      c->queued.clear();  // every call is finished below
      c->in_flight.clear();
    }
    while (!calls.empty()) {
      Call* call = &calls.front();
      if (call->where == Call::Where::kInFlight && call->is_write) call->maybe_applied = true;
      call->conn.reset();
      Error e = deadline_error(*call);
      e.message = "the clerk was destroyed; " + e.message;
      finish(call, &e);
    }
    work.reset();
  }

  bool is_pinned(const Conn& c) const {
    return std::none_of(conns.begin(), conns.end(), [&](auto& p) { return p.get() == &c; });
  }
  Options opts;
  const uint64_t first_client_id;
  const Clock::duration attempt_budget;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::thread thread;
  std::thread::id io_thread;

  std::mutex submit_mu;
  Calls submitted;
  bool submit_posted = false;

  // Owned by the I/O thread from here on.
  Calls calls;
  std::vector<Session> sessions;
  std::vector<int> free_sessions{0};
  std::vector<std::shared_ptr<Conn>> conns;
  size_t next_conn = 0;
  // While a SharedSlot is alive: the slot its calls go to, and how many
  // went there.
  static constexpr size_t kCallsPerSlot = 64;
  std::optional<size_t> batch_slot;
  size_t batch_calls = 0;
  size_t current = 0;           // endpoint believed to lead (or to try next)
  std::atomic<int> leader{-1};  // endpoint that last answered as leader; -1 unknown
  uint64_t next_request = 1;
  int failures_in_row = 0;
  Clock::duration backoff = kMinBackoff;
  std::deque<Call*> delayed;
  asio::steady_timer retry_timer;
  bool retry_armed = false;
  asio::steady_timer sweep_timer;
  bool sweep_armed = false;
  bool stopped = false;
};

// ---- Public API --------------------------------------------------------------

namespace {

ClientRequest make_request(wire::Op op, std::string_view key, std::string_view value = {}) {
  ClientRequest req;
  req.op = op;
  req.key = key;
  req.value = value;
  return req;
}

Error reentrancy_error() {
  return Error{Code::kBadRequest,
               "a synchronous clerk call from a clerk callback would deadlock; use async_*"};
}

}  // namespace

Clerk::Clerk(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Clerk::~Clerk() = default;

uint64_t Clerk::client_id() const {
  return impl_->first_client_id;
}

std::string Clerk::leader_endpoint() const {
  int i = impl_->leader.load(std::memory_order_relaxed);
  return i < 0 ? "" : impl_->opts.endpoints[static_cast<size_t>(i)];
}

void Clerk::async_get(std::string_view key, GetCallback done) {
  impl_->submit(make_request(wire::Op::kGet, key),
                [done = std::move(done)](const Error* e, ClientReply& r) {
                  if (e) return done(*e);
                  done(std::move(r.value));
                });
}

void Clerk::async_put(std::string_view key, std::string_view value, WriteCallback done) {
  impl_->submit(
      make_request(wire::Op::kPut, key, value),
      [done = std::move(done)](const Error* e, ClientReply&) { done(e ? Status(*e) : Status()); });
}

void Clerk::async_append(std::string_view key, std::string_view value, WriteCallback done) {
  impl_->submit(
      make_request(wire::Op::kAppend, key, value),
      [done = std::move(done)](const Error* e, ClientReply&) { done(e ? Status(*e) : Status()); });
}

void Clerk::async_del(std::string_view key, WriteCallback done) {
  impl_->submit(
      make_request(wire::Op::kDelete, key),
      [done = std::move(done)](const Error* e, ClientReply&) { done(e ? Status(*e) : Status()); });
}

std::future<Result<std::optional<std::string>>> Clerk::get_future(std::string_view key) {
  auto p = std::make_shared<std::promise<Result<std::optional<std::string>>>>();
  auto f = p->get_future();
  async_get(key, [p](Result<std::optional<std::string>> r) { p->set_value(std::move(r)); });
  return f;
}

std::future<Status> Clerk::put_future(std::string_view key, std::string_view value) {
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  async_put(key, value, [p](Status s) { p->set_value(std::move(s)); });
  return f;
}

std::future<Status> Clerk::append_future(std::string_view key, std::string_view value) {
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  async_append(key, value, [p](Status s) { p->set_value(std::move(s)); });
  return f;
}

std::future<Status> Clerk::del_future(std::string_view key) {
  auto p = std::make_shared<std::promise<Status>>();
  auto f = p->get_future();
  async_del(key, [p](Status s) { p->set_value(std::move(s)); });
  return f;
}

Result<std::optional<std::string>> Clerk::get(std::string_view key) {
  if (impl_->on_io_thread()) return reentrancy_error();
  return get_future(key).get();
}

Status Clerk::put(std::string_view key, std::string_view value) {
  if (impl_->on_io_thread()) return reentrancy_error();
  return put_future(key, value).get();
}

Status Clerk::append(std::string_view key, std::string_view value) {
  if (impl_->on_io_thread()) return reentrancy_error();
  return append_future(key, value).get();
}

Status Clerk::del(std::string_view key) {
  if (impl_->on_io_thread()) return reentrancy_error();
  return del_future(key).get();
}

std::vector<EndpointStatus> Clerk::status() {
  std::vector<EndpointStatus> out(impl_->opts.endpoints.size());
  if (impl_->on_io_thread()) {
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].endpoint = impl_->opts.endpoints[i];
      out[i].error = reentrancy_error().message;
    }
    return out;
  }
  std::vector<std::future<void>> waits;
  for (size_t i = 0; i < out.size(); ++i) {
    EndpointStatus& s = out[i];
    s.endpoint = impl_->opts.endpoints[i];
    auto p = std::make_shared<std::promise<void>>();
    waits.push_back(p->get_future());
    asio::post(impl_->io, [impl = impl_.get(), i, &s, p] {
      Impl::Calls one;
      Impl::Call* call = &impl->new_call(one);
      call->req = make_request(wire::Op::kStatus, "");
      call->pinned = std::make_shared<Impl::Conn>(*impl, i);
      call->done = [&s, p](const Error* e, ClientReply& r) {
        if (e) {
          s.error = e->message;
        } else if (!r.node_status) {
          s.error = "no status in the reply";
        } else {
          const wire::NodeStatus& ns = *r.node_status;
          s.reachable = true;
          s.id = ns.node_id.value;
          s.role = raft::to_string(ns.role);
          s.term = ns.term.value;
          s.leader = ns.leader.value;
          s.commit_index = ns.commit_index.value;
          s.applied_index = ns.applied_index.value;
        }
        p->set_value();
      };
      impl->start(one);
    });
  }
  for (auto& w : waits)
    w.wait();
  return out;
}

}  // namespace raftkv::client
