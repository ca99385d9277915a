#include "tests/transport/transport_harness.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <asio/connect.hpp>
#include <asio/write.hpp>

#include "raft/core/random.h"
#include "schema/convert.h"

namespace raftkv::raft::test {
namespace {

using asio::ip::tcp;

std::string pattern_bytes(uint64_t seed, size_t n) {
  Rng rng(seed);
  std::string s(n, '\0');
  for (char& c : s)
    c = static_cast<char>(rng.next());
  return s;
}

}  // namespace

bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return true;
}

Message make_append(NodeId from, NodeId to, uint64_t seq, size_t data_bytes) {
  Message m;
  m.type = MessageType::kAppend;
  m.from = from;
  m.to = to;
  m.term = Term(7);
  m.index = Index(seq);
  m.log_term = Term(6);
  m.commit = Index(seq / 2);
  m.read_round = seq * 3;
  m.entries.push_back(Entry{Term(7), Index(seq + 1), EntryType::kNormal,
                            Bytes(fmt::format("entry {}:", seq) + pattern_bytes(seq, data_bytes))});
  m.entries.push_back(Entry{Term(7), Index(seq + 2), EntryType::kNoop, Bytes()});
  return m;
}

Message make_snapshot_chunk(NodeId from, NodeId to, uint64_t seq, size_t data_bytes) {
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = from;
  m.to = to;
  m.term = Term(9);
  m.snapshot = SnapshotMeta{Index(1000 + seq), Term(8), {NodeId(1), NodeId(2), NodeId(3)}};
  m.snapshot_offset = seq * data_bytes;
  m.snapshot_data = Bytes(pattern_bytes(~seq, data_bytes));
  m.snapshot_done = seq % 2 == 1;
  return m;
}

bool same_message(const Message& a, const Message& b, std::string* why) {
  const auto differ = [&](std::string_view field) {
    *why = fmt::format("field {} differs", field);
    return false;
  };
  if (a.type != b.type) return differ("type");
  if (a.from != b.from) return differ("from");
  if (a.to != b.to) return differ("to");
  if (a.term != b.term) return differ("term");
  if (a.index != b.index) return differ("index");
  if (a.log_term != b.log_term) return differ("log_term");
  if (a.entries != b.entries) return differ("entries");
  if (a.commit != b.commit) return differ("commit");
  if (a.reject != b.reject) return differ("reject");
  if (a.reject_hint != b.reject_hint) return differ("reject_hint");
  if (a.hint_term != b.hint_term) return differ("hint_term");
  if (a.read_round != b.read_round) return differ("read_round");
  if (a.transfer != b.transfer) return differ("transfer");
  if (a.snapshot != b.snapshot) return differ("snapshot");
  if (a.snapshot_offset != b.snapshot_offset) return differ("snapshot_offset");
  if (!(a.snapshot_data == b.snapshot_data)) return differ("snapshot_data");
  if (a.snapshot_done != b.snapshot_done) return differ("snapshot_done");
  if (a.snapshot_ack != b.snapshot_ack) return differ("snapshot_ack");
  return true;
}

std::string handshake_frame(uint64_t cluster_id, NodeId node) {
  std::string out;
  wire::Status s =
      wire::append_handshake_frame(wire::Handshake{wire::kProtocolVersion, cluster_id, node}, &out);
  EXPECT_TRUE(s.ok());
  return out;
}

std::string peer_frame(const std::vector<Message>& messages) {
  std::string out;
  wire::Status s = wire::append_peer_frame(messages, &out);
  EXPECT_TRUE(s.ok());
  return out;
}

TestCluster::TestCluster(asio::io_context& io, int n) : io_(io) {
  for (int i = 1; i <= n; ++i) {
    auto node = std::make_unique<TestNode>();
    node->id = NodeId(i);
    Listener::OpenResult opened = Listener::open(
        io_, Listener::Options{.address = "127.0.0.1:0", .max_frame_bytes = kTestMaxFrameBytes});
    if (!opened.ok()) ADD_FAILURE() << opened.error;
    node->listener = std::move(opened.listener);
    node->port = node->listener->port();
    nodes_.emplace(node->id, std::move(node));
  }
}

TestCluster::~TestCluster() {
  for (auto& [id, n] : nodes_) {
    if (n->listener) n->listener->stop();
    if (n->transport) n->transport->stop();
  }
}

void TestCluster::start(Tweak tweak) {
  tweak_ = std::move(tweak);
  for (auto& [id, n] : nodes_) {
    create_transport(*n);
    n->listener->start(*n->transport);
  }
}

void TestCluster::create_transport(TestNode& n) {
  Transport::Options options;
  options.self = n.id;
  options.cluster_id = kClusterId;
  for (const auto& [id, other] : nodes_)
    options.peers[id] = fmt::format("127.0.0.1:{}", other->port);
  options.max_frame_bytes = kTestMaxFrameBytes;
  // Quick redials keep the restart tests short; backoff still doubles.
  options.reconnect_min = std::chrono::milliseconds(10);
  options.reconnect_max = std::chrono::milliseconds(200);
  if (tweak_) tweak_(n.id, options);
  TestNode* node = &n;
  Transport::Callbacks callbacks;
  callbacks.on_messages = [node](std::vector<Message>&& messages) {
    for (Message& m : messages)
      node->received.push_back(std::move(m));
    node->received_count = node->received.size();
  };
  callbacks.on_peer_connected = [node](NodeId peer, bool up) {
    node->peer_events.emplace_back(peer, up);
  };
  n.transport = std::make_unique<Transport>(io_, std::move(options), std::move(callbacks));
}

void TestCluster::stop_node(uint64_t id) {
  TestNode& n = node(id);
  n.listener->stop();
  n.transport->stop();
  n.listener.reset();
  n.transport.reset();
}

void TestCluster::restart_node(uint64_t id) {
  TestNode& n = node(id);
  // A new incarnation: it remembers nothing.
  n.received.clear();
  n.received_count = 0;
  n.peer_events.clear();
  Listener::OpenResult opened =
      Listener::open(io_, Listener::Options{.address = fmt::format("127.0.0.1:{}", n.port),
                                            .max_frame_bytes = kTestMaxFrameBytes});
  ASSERT_TRUE(opened.ok()) << opened.error;
  n.listener = std::move(opened.listener);
  create_transport(n);
  n.listener->start(*n.transport);
}

RawPeer::RawPeer(asio::io_context& io, uint16_t port) : socket_(io) {
  // A blocking connect completes in the kernel's backlog; the Listener
  // accepts once the test runs the io_context.
  socket_.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  socket_.set_option(tcp::no_delay(true));
}

void RawPeer::write(std::string_view bytes) {
  asio::write(socket_, asio::buffer(bytes.data(), bytes.size()));
}

void RawPeer::shutdown_send() {
  socket_.shutdown(tcp::socket::shutdown_send);
}

void RawPeer::watch_for_close() {
  socket_.async_read_some(asio::buffer(*buffer_), [this, closed = closed_, buffer = buffer_](
                                                      const asio::error_code& ec, size_t) {
    if (ec) {
      *closed = true;
      return;
    }
    watch_for_close();  // nodes never write to peers; ignore anyway
  });
}

namespace {

// One proxied connection: two sockets and a pump per direction.
struct ForwardedConnection : std::enable_shared_from_this<ForwardedConnection> {
  ForwardedConnection(tcp::socket&& client, asio::io_context& io)
      : client(std::move(client)), server(io) {}

  void pump(tcp::socket& from, tcp::socket& to, std::array<char, 16384>& buffer) {
    from.async_read_some(asio::buffer(buffer), [self = shared_from_this(), &from, &to, &buffer](
                                                   const asio::error_code& ec, size_t n) {
      if (ec) return self->close();
      asio::async_write(to, asio::buffer(buffer.data(), n),
                        [self, &from, &to, &buffer](const asio::error_code& ec, size_t) {
                          if (ec) return self->close();
                          self->pump(from, to, buffer);
                        });
    });
  }

  void close() {
    asio::error_code ignored;
    client.close(ignored);
    server.close(ignored);
  }

  tcp::socket client;
  tcp::socket server;
  std::array<char, 16384> up;
  std::array<char, 16384> down;
};

}  // namespace

TcpForwarder::TcpForwarder(asio::io_context& io, uint16_t target_port)
    : io_(io),
      acceptor_(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
      target_port_(target_port) {
  port_ = acceptor_.local_endpoint().port();
  accept();
}

TcpForwarder::~TcpForwarder() {
  *stopped_ = true;
  asio::error_code ignored;
  acceptor_.close(ignored);
}

void TcpForwarder::accept() {
  acceptor_.async_accept(
      [this, stopped = stopped_](const asio::error_code& ec, tcp::socket socket) {
        if (*stopped || ec) return;
        ++*connections_;
        auto c = std::make_shared<ForwardedConnection>(std::move(socket), io_);
        c->server.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), target_port_),
                                [c](const asio::error_code& ec) {
                                  if (ec) return c->close();
                                  c->pump(c->client, c->server, c->up);
                                  c->pump(c->server, c->client, c->down);
                                });
        accept();
      });
}

}  // namespace raftkv::raft::test
