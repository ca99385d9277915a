#include "kvserver/client_service.h"

#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <asio.hpp>

#include "raft/core/check.h"
#include "raft/node/log_line.h"
#include "raft/node/transport_internal.h"
#include "schema/convert.h"

namespace raftkv::kv {

using wire::ClientReply;
using wire::ReplyStatus;

struct ClientService::Impl : std::enable_shared_from_this<ClientService::Impl> {
  Impl(asio::io_context& io_, ClientServiceOptions o, raft::RaftNode& n, KvStateMachine& k)
      : io(io_), opts(std::move(o)), node(n), kv(k) {}

  class Connection;

  asio::io_context& io;
  ClientServiceOptions opts;
  raft::RaftNode& node;
  KvStateMachine& kv;
  // Open connections, and closed ones the RaftNode still owes a callback
  // (the callbacks hold a plain pointer: see Connection).
  std::map<uint64_t, std::shared_ptr<Connection>> connections;
  uint64_t next_connection = 1;
  bool stopped = false;

  ClientReply not_leader(uint64_t request_id, std::string message) const {
    ClientReply r;
    r.request_id = request_id;
    r.status = ReplyStatus::kNotLeader;
    r.leader_hint = node.leader();
    auto it = opts.addresses.find(r.leader_hint);
    if (it != opts.addresses.end()) r.leader_address = it->second;
    r.message = std::move(message);
    return r;
  }
};

// One client connection. Owned by Impl::connections while it is open or the
// RaftNode owes it a callback (in_node_ > 0), and by its pending IO. The
// callbacks given to the RaftNode hold a plain pointer and a Ticket, 16
// trivially copyable bytes that std::function stores without allocating.
// So the RaftNode must not call back after the ClientService is destroyed
// (raftkv-server destroys it after io.run() returns).
class ClientService::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Impl> service, uint64_t id, asio::ip::tcp::socket socket,
             wire::FrameDecoder decoder)
      : service_(std::move(service)),
        id_(id),
        socket_(std::move(socket)),
        decoder_(std::move(decoder)),
        peer_(raft::remote_address(socket_)),
        expiry_(service_->io) {}

  void start() {
    socket_.set_option(asio::ip::tcp::no_delay(true));
    drain_frames();
    read();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    socket_.close(ec);
    expiry_.cancel();
    if (in_node_ == 0) unregister();
  }

  // How the service's teardown drops it; no callback may come after this.
  void forget() {
    close();
    in_node_ = 0;
    unregister();
  }

 private:
  // A request in progress: replies exactly once, whichever of completion or
  // timeout comes first. Slots are recycled; a Ticket names one use of a
  // slot. Invariant: a slot's generation changes whenever it is freed, so a
  // late callback or expiry entry for an answered request finds a newer
  // generation (or a free slot) and does nothing.
  struct Slot {
    uint64_t request_id = 0;
    uint32_t generation = 0;
    bool busy = false;
    std::chrono::steady_clock::time_point deadline;
    // Write: its session identity, to look up its outcome once applied.
    wire::ClientId client;
    uint64_t seq = 0;
    std::string key;  // Get: what to read once ReadIndex confirms
  };
  struct Ticket {
    uint32_t slot;
    uint32_t generation;
  };

  // Tickets in arrival order, in a ring that only grows (no allocation per
  // request once it has grown to the connection's peak).
  class TicketQueue {
   public:
    bool empty() const { return size_ == 0; }
    const Ticket& front() const { return ring_[head_]; }
    void pop_front() {
      head_ = (head_ + 1) & (ring_.size() - 1);
      --size_;
    }
    void push_back(Ticket t) {
      if (size_ == ring_.size()) grow();
      ring_[(head_ + size_) & (ring_.size() - 1)] = t;
      ++size_;
    }

   private:
    void grow() {
      std::vector<Ticket> bigger(ring_.empty() ? 64 : ring_.size() * 2);
      for (size_t i = 0; i < size_; ++i)
        bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
      ring_ = std::move(bigger);
      head_ = 0;
    }
    std::vector<Ticket> ring_;  // Invariant: size is 0 or a power of two
    size_t head_ = 0;
    size_t size_ = 0;
  };

  void read() {
    if (closed_) return;
    auto buf = decoder_.prepare(64 << 10);
    socket_.async_read_some(asio::buffer(buf.data(), buf.size()),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (ec) return self->close();
                              self->decoder_.commit(n);
                              self->drain_frames();
                              self->read();
                            });
  }

  void drain_frames() {
    while (!closed_) {
      auto frame = decoder_.next();
      if (!frame.ok()) {
        raft::log_line("client",
                       fmt::format("closing client {}: {}", peer_, frame.error().message));
        return close();
      }
      if (!frame->has_value()) return;
      const std::string_view payload = (*frame)->payload;
      auto req = wire::decode_client_request_ref(payload);
      if (!req.ok()) {
        raft::log_line("client", fmt::format("closing client {}: bad request: {}", peer_,
                                             req.error().message));
        return close();
      }
      handle(*req);
    }
  }

  // `req` views the frame's payload, valid until the decoder's next call.
  void handle(const wire::ClientRequestRef& req) {
    Impl& s = *service_;
    ClientReply reply;
    reply.request_id = req.request_id;
    if (inflight_ >= s.opts.max_inflight_per_connection) {
      reply.status = ReplyStatus::kBusy;
      reply.message = "too many requests in flight on this connection";
      return send(reply);
    }
    if (req.op == wire::Op::kStatus) {
      raft::NodeStatus st = s.node.status();
      reply.node_status =
          wire::NodeStatus{st.id, st.role, st.term, st.leader, st.commit_index, st.applied_index};
      return send(reply);
    }
    if (req.key.size() > kMaxKeyBytes || req.value.size() > kMaxValueBytes) {
      reply.status = ReplyStatus::kTooLarge;
      reply.message = fmt::format("key is {} bytes, value {} bytes; limits are {} and {}",
                                  req.key.size(), req.value.size(), kMaxKeyBytes, kMaxValueBytes);
      return send(reply);
    }
    if (req.op == wire::Op::kGet) return get(req.request_id, req.key);
    if (req.client_id.value == 0 || req.seq == 0) {
      reply.status = ReplyStatus::kBadRequest;
      reply.message = "writes need a client id and a sequence number";
      return send(reply);
    }
    write(req);
  }

  Ticket begin(uint64_t request_id) {
    uint32_t i;
    if (free_.empty()) {
      i = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    } else {
      i = free_.back();
      free_.pop_back();
    }
    Slot& p = slots_[i];
    RAFTKV_CHECK(!p.busy);
    p.busy = true;
    p.request_id = request_id;
    p.deadline = std::chrono::steady_clock::now() + service_->opts.request_timeout;
    ++inflight_;
    Ticket t{i, p.generation};
    by_deadline_.push_back(t);
    arm_expiry();
    return t;
  }

  // The slot of a request not yet answered, or null.
  Slot* live(Ticket t) {
    Slot& p = slots_[t.slot];
    return p.busy && p.generation == t.generation ? &p : nullptr;
  }

  // One timer per connection, not per request: every request has the same
  // timeout, so arrival order is deadline order and the timer only needs to
  // wait for the oldest request not yet answered.
  void arm_expiry() {
    drop_answered();
    if (expiry_armed_ || closed_ || by_deadline_.empty()) return;
    expiry_armed_ = true;
    expiry_.expires_at(slots_[by_deadline_.front().slot].deadline);
    expiry_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      self->expiry_armed_ = false;
      if (ec || self->closed_) return;
      const auto now = std::chrono::steady_clock::now();
      while (!self->by_deadline_.empty()) {
        Slot* live = self->live(self->by_deadline_.front());
        if (live == nullptr) {
          self->by_deadline_.pop_front();
          continue;
        }
        Slot& p = *live;
        if (p.deadline > now) break;
        ClientReply r;
        r.request_id = p.request_id;
        r.status = ReplyStatus::kTimeout;
        r.message =
            "not applied in time; the outcome is unknown: retry with the same sequence number";
        self->finish(p, r);
      }
      self->arm_expiry();
    });
  }

  void drop_answered() {
    while (!by_deadline_.empty() && live(by_deadline_.front()) == nullptr)
      by_deadline_.pop_front();
  }

  void finish(Slot& p, const ClientReply& r) {
    RAFTKV_CHECK(p.busy);
    p.busy = false;
    ++p.generation;
    free_.push_back(static_cast<uint32_t>(&p - slots_.data()));
    --inflight_;
    drop_answered();
    send(r);
  }

  // Called first by every callback the RaftNode makes. False if the
  // connection is closed; it may be gone when this returns false.
  bool node_answered() {
    RAFTKV_CHECK(in_node_ > 0);
    --in_node_;
    if (!closed_) return true;
    if (in_node_ == 0) unregister();  // may destroy *this: the last act
    return false;
  }

  void unregister() { service_->connections.erase(id_); }

  void get(uint64_t request_id, std::string_view key) {
    Ticket t = begin(request_id);
    slots_[t.slot].key.assign(key);
    ++in_node_;
    auto done = [this, t](bool ok) {
      if (!node_answered()) return;
      Slot* p = live(t);
      if (p == nullptr) return;  // answered by the timeout
      Impl& s = *service_;
      if (!ok) return finish(*p, s.not_leader(p->request_id, "not the leader"));
      ClientReply r;
      r.request_id = p->request_id;
      r.value = s.kv.get(p->key);
      if (!r.value) r.status = ReplyStatus::kNotFound;
      finish(*p, r);
    };
    static_assert(sizeof(done) <= 16 && std::is_trivially_copyable_v<decltype(done)>,
                  "must fit std::function's local buffer");
    service_->node.read(done);
  }

  void write(const wire::ClientRequestRef& req) {
    Impl& s = *service_;
    // A retry of a request that was applied already gets its first reply.
    if (s.kv.already_applied(req.client_id, req.seq)) {
      ClientReply r;
      r.request_id = req.request_id;
      if (auto prior = s.kv.session_reply(req.client_id, req.seq)) r.status = prior->status;
      return send(r);
    }
    // Leader-stamped time: sessions expire by it on every replica alike.
    const auto timestamp_ms =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
    Ticket t = begin(req.request_id);
    slots_[t.slot].client = req.client_id;
    slots_[t.slot].seq = req.seq;
    ++in_node_;
    auto done = [this, t](raft::RaftNode::Outcome o) {
      if (!node_answered()) return;
      Slot* p = live(t);
      if (p == nullptr) return;  // answered by the timeout
      Impl& s = *service_;
      ClientReply r;
      r.request_id = p->request_id;
      switch (o) {
        case raft::RaftNode::Outcome::kApplied:
          if (auto res = s.kv.session_reply(p->client, p->seq)) r.status = res->status;
          break;
        case raft::RaftNode::Outcome::kNotLeader:
          r = s.not_leader(p->request_id, "not the leader");
          break;
        case raft::RaftNode::Outcome::kBusy:
          r.status = ReplyStatus::kBusy;
          r.message = "the log is behind; back off and retry";
          break;
        case raft::RaftNode::Outcome::kCovered:
          // A snapshot covers the entry's index: the restored session table
          // says whether this write is in it. If not, say "unknown" rather
          // than "not applied" (a session may have expired).
          if (s.kv.already_applied(p->client, p->seq)) {
            if (auto res = s.kv.session_reply(p->client, p->seq)) r.status = res->status;
          } else {
            r.status = ReplyStatus::kTimeout;
            r.message = "a snapshot replaced the log here; the outcome is unknown";
          }
          break;
        case raft::RaftNode::Outcome::kLost:
          // Definitely not applied: another leader overwrote the entry.
          r = s.not_leader(p->request_id, "leadership changed before the write committed");
          break;
      }
      finish(*p, r);
    };
    static_assert(sizeof(done) <= 16 && std::is_trivially_copyable_v<decltype(done)>,
                  "must fit std::function's local buffer");
    // Key and value are copied once, into the entry (convert.h).
    s.node.propose(
        wire::encode_logged_write(req.client_id, req.seq, req.op, req.key, req.value, timestamp_ms),
        done);
  }

  void send(const ClientReply& r) {
    if (closed_) return;
    wire::Status st = wire::append_client_reply_frame(r, &outbox_, service_->opts.max_frame_bytes);
    if (!st.ok()) {
      ClientReply small;
      small.request_id = r.request_id;
      small.status = ReplyStatus::kTooLarge;
      small.message = "reply exceeds the frame limit";
      (void)wire::append_client_reply_frame(small, &outbox_);
    }
    schedule_flush();
  }

  // Replies made in one turn of the event loop (all the writes one apply
  // batch completes, say) leave in one send at the end of that turn.
  // Sending the first at once would cost a second syscall for the rest,
  // queued behind it: 0.26 instead of 0.16 sends per put on the leader
  // under 256 clients on 16 connections.
  void schedule_flush() {
    if (flush_scheduled_ || writing_ || closed_) return;
    flush_scheduled_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->flush_scheduled_ = false;
      self->flush();
    });
  }

  void flush() {
    if (writing_ || outbox_.empty() || closed_) return;
    writing_ = true;
    sending_.swap(outbox_);
    outbox_.clear();
    asio::async_write(socket_, asio::buffer(sending_),
                      [self = shared_from_this()](const asio::error_code& ec, size_t) {
                        self->writing_ = false;
                        self->sending_.clear();
                        if (ec) return self->close();
                        self->flush();
                      });
  }

  std::shared_ptr<Impl> service_;
  uint64_t id_;
  asio::ip::tcp::socket socket_;
  wire::FrameDecoder decoder_;
  std::string peer_;
  bool closed_ = false;
  size_t inflight_ = 0;
  bool writing_ = false;
  bool flush_scheduled_ = false;  // a flush() is posted for the end of this turn
  std::string outbox_;            // replies waiting for the write in flight
  std::string sending_;           // the write in flight
  size_t in_node_ = 0;            // callbacks the RaftNode owes this connection
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // indexes of slots not in use
  // Requests in arrival (= deadline) order; answered ones leave from the front.
  TicketQueue by_deadline_;
  asio::steady_timer expiry_;
  bool expiry_armed_ = false;
};

ClientService::ClientService(asio::io_context& io, ClientServiceOptions options,
                             raft::RaftNode& node, KvStateMachine& kv)
    : impl_(std::make_shared<Impl>(io, std::move(options), node, kv)) {}

ClientService::~ClientService() {
  stop();
  // Drops the connections still owed callbacks; see Connection.
  std::vector<std::shared_ptr<Impl::Connection>> left;
  for (auto& [id, c] : impl_->connections)
    left.push_back(c);
  for (auto& c : left)
    c->forget();
}

raft::ClientHandler ClientService::handler() {
  std::weak_ptr<Impl> weak = impl_;
  return raft::ClientHandler{[weak](asio::ip::tcp::socket&& socket, wire::FrameDecoder&& decoder) {
    auto s = weak.lock();
    if (!s || s->stopped) return;
    uint64_t id = s->next_connection++;
    auto c = std::make_shared<Impl::Connection>(s, id, std::move(socket), std::move(decoder));
    s->connections[id] = c;
    c->start();
  }};
}

void ClientService::stop() {
  impl_->stopped = true;
  // Closing one may unregister it: iterate over a copy.
  std::vector<std::shared_ptr<Impl::Connection>> open;
  for (auto& [id, c] : impl_->connections)
    open.push_back(c);
  for (auto& c : open)
    c->close();
}

}  // namespace raftkv::kv
