#include "tests/kvsim/kv_sim.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "schema/convert.h"
#include "schema/frame.h"

namespace raftkv::kvsim {

using wire::ClientReply;
using wire::ClientRequest;
using wire::ReplyStatus;

namespace {

constexpr uint64_t kNoDeadline = std::numeric_limits<uint64_t>::max();

[[noreturn]] void fail(const std::string& what) {
  throw SimFailure(what);
}

std::string encode_request(const ClientRequest& r) {
  std::string out;
  if (auto st = wire::append_client_request_frame(r, &out); !st.ok())
    fail("encoding a client request: " + st.error().message);
  return out;
}

std::string encode_reply(const ClientReply& r) {
  std::string out;
  if (auto st = wire::append_client_reply_frame(r, &out); !st.ok())
    fail("encoding a client reply: " + st.error().message);
  return out;
}

// One whole frame, as a connection's FrameDecoder would see it.
std::string_view one_payload(wire::FrameDecoder& d, const std::string& frame) {
  d.feed(frame);
  auto f = d.next();
  if (!f.ok()) fail("client frame: " + f.error().message);
  if (!f->has_value()) fail("client frame: truncated");
  return (*f)->payload;
}

ClientRequest decode_request(const std::string& frame) {
  wire::FrameDecoder d;
  auto r = wire::decode_client_request(one_payload(d, frame));
  if (!r.ok()) fail("client request: " + r.error().message);
  return std::move(*r);
}

ClientReply decode_reply(const std::string& frame) {
  wire::FrameDecoder d;
  auto r = wire::decode_client_reply(one_payload(d, frame));
  if (!r.ok()) fail("client reply: " + r.error().message);
  return std::move(*r);
}

lincheck::OpKind kind_of(wire::Op op) {
  switch (op) {
    case wire::Op::kGet:
      return lincheck::OpKind::kGet;
    case wire::Op::kPut:
      return lincheck::OpKind::kPut;
    case wire::Op::kAppend:
      return lincheck::OpKind::kAppend;
    case wire::Op::kDelete:
      return lincheck::OpKind::kDelete;
    case wire::Op::kStatus:
      break;
  }
  fail("no lincheck kind for this op");
}

}  // namespace

// --- KvNode -------------------------------------------------------------------------

KvNode::KvNode(KvSim& sim, NodeId id, uint64_t incarnation)
    : sim_(sim), id_(id), incarnation_(incarnation) {
  sim_.live_[id_] = this;
}

KvNode::~KvNode() {
  auto it = sim_.live_.find(id_);
  if (it != sim_.live_.end() && it->second == this) sim_.live_.erase(it);
}

void KvNode::apply(const raft::Entry& e) {
  kv_.apply(e);
  // RaftNode ends an apply run before answering its waiters; here each
  // entry is a run, since its waiter is answered right below.
  kv_.applied_batch_done();
  if (e.type == raft::EntryType::kNormal) {
    // Ground truth for check_outcome_claims(): this write is applied (and so
    // will be on every replica).
    if (auto cmd = wire::decode_log_command(e.data.view()); cmd.ok())
      sim_.applied_writes_.emplace(cmd->client_id.value, cmd->seq);
  }
  // RaftNode::on_write_done: (index, term) names the entry the proposal made.
  if (auto w = waiters_.take(e.index, e.term))
    w->done(w->applied ? Outcome::kApplied : Outcome::kLost, *this);
}

bool KvNode::restore(const raft::Snapshot& snap, std::string* error) {
  if (!kv_.restore(snap, error)) return false;
  if (snap.meta.index > Index(0)) ++sim_.stats_.snapshots_restored;
  // RaftNode: waiters at or below the snapshot are kCovered; the service
  // asks the restored session table.
  waiters_.take_through(snap.meta.index, [&](WriteDone done) { done(Outcome::kCovered, *this); });
  return true;
}

void KvNode::wait_for(Index index, Term term, WriteDone done) {
  // RaftNode::propose: an older waiter at this index belongs to an entry that
  // was overwritten.
  if (auto old = waiters_.add(index, term, std::move(done))) (*old)(Outcome::kLost, *this);
}

// --- SimClerk -------------------------------------------------------------------------

SimClerk::SimClerk(KvSim& sim, int id, uint64_t client_id, std::vector<NodeId> endpoints,
                   ClerkOptions opts)
    : sim_(sim), id_(id), client_id_(client_id), endpoints_(std::move(endpoints)), opts_(opts) {}

void SimClerk::connect_to(const std::vector<NodeId>& servers) {
  for (NodeId s : servers)
    enabled_.insert(s);
}

void SimClerk::disconnect_from(const std::vector<NodeId>& servers) {
  for (NodeId s : servers)
    enabled_.erase(s);
}

void SimClerk::get(const std::string& key, Done done) {
  begin(wire::Op::kGet, key, "", std::move(done));
}
void SimClerk::put(const std::string& key, const std::string& value, Done done) {
  begin(wire::Op::kPut, key, value, std::move(done));
}
void SimClerk::append(const std::string& key, const std::string& value, Done done) {
  begin(wire::Op::kAppend, key, value, std::move(done));
}
void SimClerk::del(const std::string& key, Done done) {
  begin(wire::Op::kDelete, key, "", std::move(done));
}

void SimClerk::begin(wire::Op op, const std::string& key, const std::string& value, Done done) {
  if (op_) fail(fmt::format("clerk {}: an operation is already in progress", id_));
  Op o;
  o.req.op = op;
  o.req.key = key;
  o.is_write = op != wire::Op::kGet;
  if (o.is_write) {
    o.req.client_id = wire::ClientId(client_id_);
    o.req.seq = ++seq_;  // retries of this write reuse it: exactly-once
    o.req.value = value;
  }
  o.done = std::move(done);
  o.call = sim_.now();
  o.deadline = opts_.op_timeout_ms == 0 ? kNoDeadline : o.call + opts_.op_timeout_ms;
  ++sim_.stats_.ops;
  op_ = std::move(o);
  run();
}

void SimClerk::advance() {
  current_ = (current_ + 1) % endpoints_.size();
}

void SimClerk::follow_hint(const ClientReply& r) {
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (r.leader_hint != raft::kNoNode && endpoints_[i] == r.leader_hint && i != current_) {
      current_ = i;
      return;
    }
  }
  advance();
}

void SimClerk::sleep_backoff() {
  Op& o = *op_;
  uint64_t now = sim_.now();
  uint64_t left = o.deadline == kNoDeadline ? o.backoff : o.deadline - now;
  o.phase = Phase::kSleeping;
  o.wake_at = now + std::min(o.backoff, left);
  o.backoff = std::min<uint64_t>(o.backoff * 2, 500);
}

void SimClerk::attempt_failed(bool maybe_applied) {
  Op& o = *op_;
  sim_.trace("clerk {}: attempt at node {} failed (maybe applied: {})", id_, endpoints_[current_],
             maybe_applied);
  if (maybe_applied && o.is_write) o.maybe_applied = true;
  conns_[current_].open = false;
  advance();
  ++o.failures_in_row;
  o.phase = Phase::kReady;
}

void SimClerk::run() {
  while (op_ && op_->phase == Phase::kReady) {
    Op& o = *op_;
    const uint64_t now = sim_.now();
    if (now >= o.deadline) {
      finish(o.maybe_applied ? Code::kTimeout : (o.is_write ? Code::kUnavailable : Code::kTimeout),
             std::nullopt);
      return;
    }
    if (o.failures_in_row >= static_cast<int>(endpoints_.size())) {
      // A full round failed: wait a little before the next one.
      o.failures_in_row = 0;
      sleep_backoff();
      return;
    }
    const NodeId server = endpoints_[current_];
    Conn& c = conns_[current_];
    const uint64_t attempt_deadline = o.deadline == kNoDeadline
                                          ? now + opts_.attempt_ms()
                                          : std::min(o.deadline, now + opts_.attempt_ms());
    KvNode* kn = sim_.node(server);
    if (!c.open) {
      if (!link_enabled(server)) {
        // No route: the connect hangs until the attempt's deadline.
        o.phase = Phase::kConnecting;
        o.ep = current_;
        o.wake_at = attempt_deadline;
        return;
      }
      if (!kn) {  // refused: nothing listens there
        advance();
        ++o.failures_in_row;
        continue;
      }
      c.open = true;
      c.incarnation = kn->incarnation();
    }
    ++o.attempts;
    ++sim_.stats_.attempts;
    if (o.is_write && o.attempts > 1 && sim_.opts_.bug_fresh_seq_per_attempt)
      o.req.seq = ++seq_;  // planted bug
    o.request_id = next_request_++;
    o.req.request_id = o.request_id;
    o.ep = current_;
    o.phase = Phase::kAwaitingReply;
    o.wake_at = attempt_deadline;
    if ((!kn || kn->incarnation() != c.incarnation) && link_enabled(server)) {
      // The server process behind this connection is gone: the request goes
      // into a closed socket and the read sees the connection closed.
      attempt_failed(true);
      continue;
    }
    sim_.trace("clerk {} {} '{}' seq {} attempt {} -> node {}", id_, wire::to_string(o.req.op),
               o.req.key, o.req.seq, o.attempts, server);
    sim_.send(true, id_, server, c.incarnation, o.request_id, encode_request(o.req));
    return;
  }
}

void SimClerk::poll() {
  if (!op_) return;
  Op& o = *op_;
  const uint64_t now = sim_.now();
  switch (o.phase) {
    case Phase::kReady:
      break;
    case Phase::kSleeping:
      if (now < o.wake_at) return;
      o.phase = Phase::kReady;
      break;
    case Phase::kConnecting:
      if (now < o.wake_at) return;
      // Connect timed out: nothing was sent.
      attempt_failed(false);
      break;
    case Phase::kAwaitingReply: {
      const NodeId server = endpoints_[o.ep];
      KvNode* kn = sim_.node(server);
      bool closed = (!kn || kn->incarnation() != conns_[o.ep].incarnation) && link_enabled(server);
      if (!closed && now < o.wake_at) return;
      // The connection closed under us, or no reply in time: the write may
      // have been applied.
      attempt_failed(true);
      break;
    }
  }
  run();
}

void SimClerk::on_reply(NodeId from, const ClientReply& r) {
  if (!op_ || op_->phase != Phase::kAwaitingReply || r.request_id != op_->request_id ||
      endpoints_[op_->ep] != from)
    return;  // a reply to an abandoned request
  Op& o = *op_;
  sim_.trace("clerk {} <- node {}: {} (hint {}) {}", id_, from, wire::to_string(r.status),
             r.leader_hint, r.message);
  switch (r.status) {
    case ReplyStatus::kOk:
    case ReplyStatus::kNotFound:
      finish(Code::kOk, o.is_write ? std::nullopt : r.value);
      return;
    case ReplyStatus::kNotLeader:
      ++sim_.stats_.not_leader_replies;
      follow_hint(r);
      ++o.failures_in_row;
      o.phase = Phase::kReady;
      break;
    case ReplyStatus::kBusy:
      ++sim_.stats_.busy_replies;
      sleep_backoff();
      return;
    case ReplyStatus::kTimeout:
      ++sim_.stats_.timeout_replies;
      if (o.is_write) o.maybe_applied = true;
      o.phase = Phase::kReady;  // the same endpoint again
      break;
    case ReplyStatus::kTooLarge:
      finish(Code::kTooLarge, std::nullopt);
      return;
    case ReplyStatus::kBadRequest:
      finish(Code::kBadRequest, std::nullopt);
      return;
    case ReplyStatus::kInternal:
      finish(Code::kInternal, std::nullopt);
      return;
  }
  run();
}

void SimClerk::on_reset(NodeId from, uint64_t request_id) {
  if (!op_ || op_->phase != Phase::kAwaitingReply || request_id != op_->request_id ||
      endpoints_[op_->ep] != from)
    return;
  // The connection broke with the request in flight: it may have been applied.
  attempt_failed(true);
  run();
}

void SimClerk::finish(Code code, std::optional<std::string> value) {
  Op o = std::move(*op_);
  op_.reset();
  sim_.trace("clerk {} {} '{}' seq {} ends {} after {} attempts", id_, wire::to_string(o.req.op),
             o.req.key, o.req.seq, to_string(code), o.attempts);
  OpResult r;
  r.code = code;
  r.value = std::move(value);
  r.call = o.call;
  r.ret = sim_.now();
  r.attempts = o.attempts;
  switch (code) {
    case Code::kOk:
      ++sim_.stats_.ok;
      break;
    case Code::kTimeout:
      ++sim_.stats_.timeouts;
      break;
    case Code::kUnavailable:
      ++sim_.stats_.unavailable;
      break;
    default:
      break;
  }
  sim_.record(*this, o.req, r);
  if (o.done) o.done(r);
}

// --- KvSim ------------------------------------------------------------------------------

KvSim::KvSim(Options opts) : opts_(std::move(opts)), rng_(opts_.seed * 0x2545F4914F6CDD1DULL + 99) {
  SimOptions co = opts_.cluster;
  co.state_machine = [this](NodeId id) -> std::unique_ptr<raft::StateMachine> {
    return std::make_unique<KvNode>(*this, id, next_incarnation_++);
  };
  cluster_ = std::make_unique<Cluster>(co);
}

KvSim::~KvSim() {
  // The cluster owns the KvNodes, which unregister themselves from live_.
  cluster_.reset();
}

KvNode* KvSim::node(NodeId n) const {
  auto it = live_.find(n);
  return it == live_.end() ? nullptr : it->second;
}

SimClerk& KvSim::make_clerk(const std::vector<NodeId>& to) {
  return make_clerk(to, opts_.clerk);
}

SimClerk& KvSim::make_clerk(const std::vector<NodeId>& to, const ClerkOptions& opts) {
  std::vector<NodeId> ends = cluster_->ids();
  // config.go random_handles: a random permutation.
  for (size_t i = 1; i < ends.size(); ++i)
    std::swap(ends[i], ends[rng_.below(i + 1)]);
  SimClerk& ck = make_clerk_for(ends, opts);
  ck.disconnect_from(ends);
  ck.connect_to(to);
  return ck;
}

SimClerk& KvSim::make_clerk_for(const std::vector<NodeId>& ends, const ClerkOptions& opts) {
  if (ends.empty()) fail("a clerk needs endpoints");
  int id = static_cast<int>(clerks_.size());
  // config.go: client ids start 1000 above the highest server id.
  uint64_t client_id =
      1000 + static_cast<uint64_t>(cluster_->size()) + static_cast<uint64_t>(id) + 1;
  clerks_.push_back(std::unique_ptr<SimClerk>(new SimClerk(*this, id, client_id, ends, opts)));
  clerks_.back()->connect_to(ends);
  return *clerks_.back();
}

bool KvSim::client_link_up(int clerk, NodeId server) const {
  return clerks_.at(static_cast<size_t>(clerk))->link_enabled(server);
}

void KvSim::send(bool to_server, int clerk, NodeId server, uint64_t incarnation,
                 uint64_t request_id, std::string frame) {
  ++stats_.client_msgs;
  const NetworkFaults& f = cluster_->faults();
  if (!client_link_up(clerk, server)) {
    ++stats_.client_msgs_lost;  // no route: silence until the attempt times out
    return;
  }
  uint64_t delay = static_cast<uint64_t>(f.min_delay) +
                   rng_.below(static_cast<uint64_t>(f.max_delay - f.min_delay + 1));
  if (rng_.chance(f.long_delay)) delay = 200 + rng_.below(1800);
  delay = std::max<uint64_t>(delay, 1);  // nothing crosses the network in zero time
  if (rng_.chance(f.drop)) {
    // TCP does not lose a message silently: the connection breaks, and the
    // clerk learns it as labrpc reports a lost RPC (a lost request after a
    // short while, a lost reply when it would have arrived).
    ++stats_.connection_resets;
    uint64_t at = now() + (to_server ? 1 + rng_.below(100) : delay);
    net_.push(Msg{at, ++msg_seq_, Msg::kReset, clerk, server, incarnation, {}, request_id});
    return;
  }
  net_.push(Msg{now() + delay, ++msg_seq_, to_server ? Msg::kRequest : Msg::kReply, clerk, server,
                incarnation, std::move(frame), request_id});
}

void KvSim::run_for(uint64_t ms) {
  const uint64_t end = now() + ms;
  while (now() < end)
    step_ms();
}

void KvSim::step_ms() {
  cluster_->run_for(1);
  deliver_due();
  poll_servers();
  for (size_t i = 0; i < clerks_.size(); ++i)
    clerks_[i]->poll();
}

void KvSim::deliver_due() {
  while (!net_.empty() && net_.top().at <= now()) {
    Msg m = net_.top();
    net_.pop();
    SimClerk& ck = *clerks_.at(static_cast<size_t>(m.clerk));
    if (m.kind == Msg::kReset) {
      ck.on_reset(m.server, m.request_id);
      continue;
    }
    // A message also needs the link up when it arrives.
    if (!client_link_up(m.clerk, m.server)) {
      ++stats_.client_msgs_lost;
      continue;
    }
    if (m.kind == Msg::kRequest) {
      serve(m.server, m.incarnation, m.clerk, decode_request(m.frame));
    } else {
      ck.on_reply(m.server, decode_reply(m.frame));
    }
  }
}

ClientReply KvSim::not_leader(NodeId server, uint64_t request_id, const std::string& message) {
  ClientReply r;
  r.request_id = request_id;
  r.status = ReplyStatus::kNotLeader;
  if (cluster_->alive(server)) r.leader_hint = cluster_->raft(server).leader();
  if (r.leader_hint != raft::kNoNode)
    r.leader_address = fmt::format("node-{}", r.leader_hint.value);
  r.message = message;
  return r;
}

void KvSim::reply(Pending& p, ClientReply r) {
  if (p.replied) return;
  p.replied = true;
  r.request_id = p.request_id;
  send(false, p.clerk, p.server, p.incarnation, p.request_id, encode_reply(r));
}

void KvSim::serve(NodeId server, uint64_t incarnation, int clerk, const ClientRequest& req) {
  KvNode* kn = node(server);
  // The connection's process is gone: the request dies with it.
  if (!kn || kn->incarnation() != incarnation) return;
  auto p = std::make_shared<Pending>();
  p->clerk = clerk;
  p->server = server;
  p->incarnation = incarnation;
  p->request_id = req.request_id;
  p->deadline = now() + opts_.request_timeout_ms;

  if (req.op == wire::Op::kGet && opts_.bug_local_reads) {
    // Planted bug (self-test): whatever this node has applied, leader or not.
    ClientReply r;
    r.value = kn->kv().get(req.key);
    if (!r.value) r.status = ReplyStatus::kNotFound;
    return reply(*p, std::move(r));
  }
  if (req.op == wire::Op::kGet) {
    p->key = req.key;
    p->read_ctx = next_read_ctx_++;
    pending_.push_back(p);
    cluster_->read_index(server, p->read_ctx);
    return;
  }
  if (req.op == wire::Op::kStatus || req.client_id.value == 0 || req.seq == 0) {
    ClientReply r;
    r.status = ReplyStatus::kBadRequest;
    r.message = "writes need a client id and a sequence number";
    return reply(*p, r);
  }
  // A retry of a request that was applied already gets its first reply.
  if (kn->kv().already_applied(req.client_id, req.seq)) {
    ++stats_.dedup_replies;
    ClientReply r;
    if (auto prior = kn->kv().session_reply(req.client_id, req.seq)) r.status = prior->status;
    return reply(*p, r);
  }
  // As the server logs a write, leader-stamped with (virtual) time.
  raft::Bytes bytes =
      wire::encode_logged_write(req.client_id, req.seq, req.op, req.key, req.value, now());
  raft::ProposeResult res = cluster_->propose(server, std::string(bytes.view()));
  switch (res.status) {
    case raft::ProposeResult::Status::kNotLeader:
      return reply(*p, not_leader(server, req.request_id, "not the leader"));
    case raft::ProposeResult::Status::kBusy: {
      ClientReply r;
      r.status = ReplyStatus::kBusy;
      r.message = "the log is behind; back off and retry";
      return reply(*p, r);
    }
    case raft::ProposeResult::Status::kAccepted:
      break;
  }
  pending_.push_back(p);
  kn->wait_for(
      res.index, res.term,
      [this, p, client = req.client_id, seq = req.seq](KvNode::Outcome o, const KvNode& at) {
        if (p->replied) return;
        ClientReply r;
        if (o == KvNode::Outcome::kApplied) {
          if (auto res = at.kv().session_reply(client, seq)) r.status = res->status;
        } else if (o == KvNode::Outcome::kCovered) {
          // ClientService: the restored session table decides; else unknown.
          r.request_id = p->request_id;
          if (at.kv().already_applied(client, seq)) {
            if (auto res = at.kv().session_reply(client, seq)) r.status = res->status;
          } else {
            r.status = ReplyStatus::kTimeout;
            r.message = "a snapshot replaced the log here; the outcome is unknown";
          }
        } else {
          // RaftNode's kLost: ClientService answers NotLeader.
          ++stats_.lost_writes;
          r = not_leader(p->server, p->request_id, "leadership changed before the write committed");
        }
        reply(*p, std::move(r));
      });
}

void KvSim::poll_servers() {
  for (NodeId id : cluster_->ids()) {
    KvNode* kn = node(id);
    if (!kn) continue;  // crashed; a restart clears the core's read results
    for (const raft::ReadState& rs : cluster_->take_read_states(id)) {
      for (auto& p : pending_) {
        if (!p->replied && p->read_ctx == rs.context && p->server == id) {
          p->confirmed = true;
          p->read_index = rs.index;
        }
      }
    }
    for (uint64_t ctx : cluster_->take_failed_reads(id)) {
      for (auto& p : pending_) {
        if (!p->replied && p->read_ctx == ctx && p->server == id) {
          ++stats_.reads_failed;
          reply(*p, not_leader(id, p->request_id, "not the leader"));
        }
      }
    }
  }
  for (auto& p : pending_) {
    if (p->replied) continue;
    KvNode* kn = node(p->server);
    if (!kn || kn->incarnation() != p->incarnation) {
      p->replied = true;  // the process died: no reply, the connection is closed
      continue;
    }
    if (p->read_ctx != 0 && p->confirmed && kn->applied_index() >= p->read_index) {
      // Served from the state of the node that confirmed the read index.
      ++stats_.reads_served;
      ClientReply r;
      r.value = kn->kv().get(p->key);
      if (!r.value) r.status = ReplyStatus::kNotFound;
      reply(*p, std::move(r));
      continue;
    }
    if (now() >= p->deadline) {
      ClientReply r;
      r.status = ReplyStatus::kTimeout;
      r.message =
          "not applied in time; the outcome is unknown: retry with the same sequence number";
      reply(*p, std::move(r));
    }
  }
  std::erase_if(pending_, [](const std::shared_ptr<Pending>& p) { return p->replied; });
}

std::string KvSim::check_outcome_claims() const {
  std::string out;
  for (const WriteClaim& c : claimed_unavailable_) {
    if (applied_writes_.count({c.client, c.seq}))
      out += fmt::format("{} was reported unavailable (definitely not applied) but was applied\n",
                         c.what);
  }
  for (const WriteClaim& c : claimed_ok_) {
    if (!applied_writes_.count({c.client, c.seq}))
      out += fmt::format("{} was reported ok but never applied\n", c.what);
  }
  return out;
}

void KvSim::record(const SimClerk& ck, const ClientRequest& req, const OpResult& r) {
  if (req.op != wire::Op::kGet && (r.code == Code::kOk || r.code == Code::kUnavailable)) {
    WriteClaim c{req.client_id.value, req.seq,
                 fmt::format("clerk {} {} '{}' '{}' (client {}, seq {}, called at {}, ended at {})",
                             ck.id(), wire::to_string(req.op), req.key, req.value,
                             req.client_id.value, req.seq, r.call, r.ret)};
    (r.code == Code::kOk ? claimed_ok_ : claimed_unavailable_).push_back(std::move(c));
  }
  lincheck::Operation op;
  op.client = ck.id();
  op.kind = kind_of(req.op);
  op.key = req.key;
  op.value = req.value;
  op.call = static_cast<int64_t>(r.call);
  op.ret = static_cast<int64_t>(r.ret);
  switch (r.code) {
    case Code::kOk:
      if (req.op == wire::Op::kGet) op.output = r.value;
      break;
    case Code::kTimeout:
    case Code::kInternal:
      // May or may not have taken effect (an unknown Get constrains nothing).
      op.outcome_unknown = true;
      op.ret = lincheck::kUnknownReturn;
      break;
    case Code::kUnavailable:
    case Code::kTooLarge:
    case Code::kBadRequest:
      return;  // definitely not applied: no effect to check
  }
  history_.push_back(std::move(op));
}

size_t KvSim::max_snapshot_bytes() const {
  size_t m = 0;
  for (NodeId id : cluster_->ids())
    m = std::max(m, cluster_->storage(id).stored_snapshot().data.size());
  return m;
}

std::string KvSim::describe() const {
  std::string s = cluster_->describe();
  for (NodeId id : cluster_->ids()) {
    KvNode* kn = node(id);
    if (!kn) continue;
    s += fmt::format("kv {}: incarnation {}, applied {}, {} keys, {} sessions\n", id,
                     kn->incarnation(), kn->applied_index(), kn->kv().key_count(),
                     kn->kv().session_count());
  }
  s += fmt::format("client net: {} messages in flight, {} requests pending at servers\n",
                   net_.size(), pending_.size());
  return s;
}

}  // namespace raftkv::kvsim
