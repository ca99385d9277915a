#include "kvserver/client_service.h"

#include <deque>

#include <fmt/format.h>
#include <asio.hpp>

#include "raft/node/log_line.h"
#include "raft/node/transport_internal.h"
#include "schema/convert.h"

namespace raftkv::kv {

using wire::ClientReply;
using wire::ClientRequest;
using wire::ReplyStatus;

struct ClientService::Impl : std::enable_shared_from_this<ClientService::Impl> {
  Impl(asio::io_context& io_, ClientServiceOptions o, raft::RaftNode& n, KvStateMachine& k)
      : io(io_), opts(std::move(o)), node(n), kv(k) {}

  class Connection;

  asio::io_context& io;
  ClientServiceOptions opts;
  raft::RaftNode& node;
  KvStateMachine& kv;
  std::map<uint64_t, std::weak_ptr<Connection>> connections;
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

// One client connection. Owned by shared_ptrs held by its pending IO and by
// the callbacks of its requests still in progress.
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
    service_->connections.erase(id_);
  }

 private:
  // A request in progress: replies exactly once, whichever of completion or
  // timeout comes first.
  struct Pending {
    uint64_t request_id;
    bool replied = false;
    std::chrono::steady_clock::time_point deadline;
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
      auto req = wire::decode_client_request((*frame)->payload);
      if (!req.ok()) {
        raft::log_line("client", fmt::format("closing client {}: bad request: {}", peer_,
                                             req.error().message));
        return close();
      }
      handle(std::move(*req));
    }
  }

  void handle(ClientRequest req) {
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
    if (req.op == wire::Op::kGet) return get(std::move(req));
    if (req.client_id.value == 0 || req.seq == 0) {
      reply.status = ReplyStatus::kBadRequest;
      reply.message = "writes need a client id and a sequence number";
      return send(reply);
    }
    write(std::move(req));
  }

  std::shared_ptr<Pending> begin(uint64_t request_id) {
    auto p = std::make_shared<Pending>();
    p->request_id = request_id;
    p->deadline = std::chrono::steady_clock::now() + service_->opts.request_timeout;
    ++inflight_;
    by_deadline_.push_back(p);
    arm_expiry();
    return p;
  }

  // One timer per connection, not per request: every request has the same
  // timeout, so arrival order is deadline order and the timer only needs to
  // wait for the oldest request not yet answered.
  void arm_expiry() {
    drop_answered();
    if (expiry_armed_ || closed_ || by_deadline_.empty()) return;
    expiry_armed_ = true;
    expiry_.expires_at(by_deadline_.front()->deadline);
    expiry_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      self->expiry_armed_ = false;
      if (ec || self->closed_) return;
      const auto now = std::chrono::steady_clock::now();
      while (!self->by_deadline_.empty() && self->by_deadline_.front()->deadline <= now) {
        std::shared_ptr<Pending> p = std::move(self->by_deadline_.front());
        self->by_deadline_.pop_front();
        ClientReply r;
        r.request_id = p->request_id;
        r.status = ReplyStatus::kTimeout;
        r.message =
            "not applied in time; the outcome is unknown: retry with the same sequence number";
        self->finish(*p, r);
      }
      self->arm_expiry();
    });
  }

  void drop_answered() {
    while (!by_deadline_.empty() && by_deadline_.front()->replied)
      by_deadline_.pop_front();
  }

  void finish(Pending& p, const ClientReply& r) {
    if (p.replied) return;
    p.replied = true;
    --inflight_;
    drop_answered();
    send(r);
  }

  void get(ClientRequest req) {
    auto p = begin(req.request_id);
    service_->node.read([self = shared_from_this(), p, key = std::move(req.key)](bool ok) {
      Impl& s = *self->service_;
      if (!ok) return self->finish(*p, s.not_leader(p->request_id, "not the leader"));
      ClientReply r;
      r.request_id = p->request_id;
      r.value = s.kv.get(key);
      if (!r.value) r.status = ReplyStatus::kNotFound;
      self->finish(*p, r);
    });
  }

  void write(ClientRequest req) {
    Impl& s = *service_;
    // A retry of a request that was applied already gets its first reply.
    if (s.kv.already_applied(req.client_id, req.seq)) {
      ClientReply r;
      r.request_id = req.request_id;
      if (auto prior = s.kv.session_reply(req.client_id, req.seq)) r.status = prior->status;
      return send(r);
    }
    wire::KvCommand cmd;
    cmd.client_id = req.client_id;
    cmd.seq = req.seq;
    cmd.op = req.op;
    cmd.key = std::move(req.key);
    cmd.value = std::move(req.value);
    // Leader-stamped time: sessions expire by it on every replica alike.
    cmd.timestamp_ms =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
    auto p = begin(req.request_id);
    s.node.propose(
        wire::encode_kv_command(cmd), [self = shared_from_this(), p, client = cmd.client_id,
                                       seq = cmd.seq](raft::RaftNode::Outcome o) {
          Impl& s = *self->service_;
          ClientReply r;
          r.request_id = p->request_id;
          switch (o) {
            case raft::RaftNode::Outcome::kApplied:
              if (auto res = s.kv.session_reply(client, seq)) r.status = res->status;
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
              if (s.kv.already_applied(client, seq)) {
                if (auto res = s.kv.session_reply(client, seq)) r.status = res->status;
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
          self->finish(*p, r);
        });
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
    flush();
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
  std::string outbox_;   // replies waiting for the write in flight
  std::string sending_;  // the write in flight
  // Requests in arrival (= deadline) order; answered ones leave from the front.
  std::deque<std::shared_ptr<Pending>> by_deadline_;
  asio::steady_timer expiry_;
  bool expiry_armed_ = false;
};

ClientService::ClientService(asio::io_context& io, ClientServiceOptions options,
                             raft::RaftNode& node, KvStateMachine& kv)
    : impl_(std::make_shared<Impl>(io, std::move(options), node, kv)) {}

ClientService::~ClientService() {
  stop();
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
  auto connections = std::move(impl_->connections);
  impl_->connections.clear();
  for (auto& [id, weak] : connections)
    if (auto c = weak.lock()) c->close();
}

}  // namespace raftkv::kv
