// Listener: bind failures as values, client hand-over, and connections that
// never say anything.
#include <array>
#include <optional>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <asio/read.hpp>

#include "schema/client_protocol.h"
#include "schema/convert.h"
#include "tests/transport/transport_harness.h"

namespace raftkv::raft::test {
namespace {

using std::chrono::milliseconds;

TEST(Listener, ReportsAPortInUseAsAnErrorValue) {
  asio::io_context io;
  Listener::OpenResult first = Listener::open(io, {.address = "127.0.0.1:0"});
  ASSERT_TRUE(first.ok()) << first.error;
  const std::string address = fmt::format("127.0.0.1:{}", first.listener->port());
  Listener::OpenResult second = Listener::open(io, {.address = address});
  EXPECT_FALSE(second.ok());
  EXPECT_EQ(second.error, fmt::format("cannot listen on {}: Address already in use", address));
}

TEST(Listener, ReportsABadAddressAsAnErrorValue) {
  asio::io_context io;
  EXPECT_EQ(Listener::open(io, {.address = "7001"}).error, "cannot listen on 7001: want host:port");
  EXPECT_EQ(Listener::open(io, {.address = "127.0.0.1:http"}).error,
            "cannot listen on 127.0.0.1:http: bad port \"http\"");
  EXPECT_EQ(Listener::open(io, {.address = "127.0.0.1:70000"}).error,
            "cannot listen on 127.0.0.1:70000: bad port \"70000\"");
}

TEST(Listener, SplitsHostAndPort) {
  auto v4 = split_host_port("10.0.0.1:7001");
  ASSERT_TRUE(v4.has_value());
  EXPECT_EQ(v4->host, "10.0.0.1");
  EXPECT_EQ(v4->port, "7001");
  auto v6 = split_host_port("[::1]:7001");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "7001");
  auto name = split_host_port("node-2.raft:7001");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->host, "node-2.raft");
  for (std::string_view bad : {"7001", ":7001", "host:", "[::1]7001", "[::1", "[]:1"}) {
    EXPECT_FALSE(split_host_port(bad).has_value()) << bad;
  }
}

TEST(Listener, GetsItsPortBackAfterARestart) {
  asio::io_context io;
  TestCluster cluster(io, 2);
  cluster.start();
  // Established connections leave TIME_WAIT behind on node 2's port.
  cluster.send(1, {make_append(NodeId(1), NodeId(2), 0)});
  ASSERT_TRUE(run_until(io, [&] { return cluster.node(2).received.size() == 1; }));
  cluster.stop_node(2);
  cluster.restart_node(2);  // asserts that open() succeeds
}

TEST(Listener, HandsAClientConnectionOverWithTheRequestInTheDecoder) {
  asio::io_context io;
  TestCluster cluster(io, 1);
  // Replace the plain start() with one that serves clients.
  cluster.start();
  cluster.node(1).listener->stop();
  Listener::OpenResult opened = Listener::open(io, {.address = "127.0.0.1:0"});
  ASSERT_TRUE(opened.ok()) << opened.error;
  std::optional<asio::ip::tcp::socket> client_socket;
  std::optional<wire::FrameDecoder> client_decoder;
  opened.listener->start(*cluster.node(1).transport,
                         ClientHandler{[&](asio::ip::tcp::socket&& s, wire::FrameDecoder&& d) {
                           client_socket.emplace(std::move(s));
                           client_decoder.emplace(std::move(d));
                         }});

  wire::ClientRequest request;
  request.request_id = 77;
  request.client_id = wire::ClientId(5);
  request.seq = 3;
  request.op = wire::Op::kPut;
  request.key = "k";
  request.value = std::string(1000, 'v');
  std::string bytes;
  ASSERT_TRUE(wire::append_client_request_frame(request, &bytes).ok());
  RawPeer raw(io, opened.listener->port());
  raw.write(bytes);
  ASSERT_TRUE(run_until(io, [&] { return client_decoder.has_value(); }));

  auto frame = client_decoder->next();
  ASSERT_TRUE(frame.ok());
  ASSERT_TRUE(frame->has_value());
  auto decoded = wire::decode_client_request((*frame)->payload);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, request);
  EXPECT_EQ(opened.listener->stats().client_connections, 1u);
  // The socket is the client's: what it writes next arrives on it.
  raw.write("ping");
  std::array<char, 4> got{};
  asio::read(*client_socket, asio::buffer(got));
  EXPECT_EQ(std::string_view(got.data(), got.size()), "ping");
  opened.listener->stop();
}

TEST(Listener, ClosesClientConnectionsWhenItServesNoClients) {
  asio::io_context io;
  TestCluster cluster(io, 1);
  cluster.start();
  std::string bytes;
  ASSERT_TRUE(wire::append_client_request_frame(wire::ClientRequest{}, &bytes).ok());
  RawPeer raw(io, cluster.node(1).port);
  raw.write(bytes);
  raw.watch_for_close();
  ASSERT_TRUE(run_until(io, [&] { return raw.closed(); }));
  EXPECT_EQ(cluster.node(1).listener->stats().rejected, 1u);
}

TEST(Listener, ClosesAConnectionThatSendsNoFirstFrameInTime) {
  asio::io_context io;
  TestCluster cluster(io, 1);
  cluster.start();
  cluster.node(1).listener->stop();
  Listener::OpenResult opened =
      Listener::open(io, {.address = "127.0.0.1:0", .first_frame_timeout = milliseconds(100)});
  ASSERT_TRUE(opened.ok()) << opened.error;
  opened.listener->start(*cluster.node(1).transport);
  RawPeer silent(io, opened.listener->port());
  RawPeer half(io, opened.listener->port());
  half.write(handshake_frame(kClusterId, NodeId(2)).substr(0, 10));
  silent.watch_for_close();
  half.watch_for_close();
  ASSERT_TRUE(run_until(io, [&] { return silent.closed() && half.closed(); }));
  EXPECT_EQ(opened.listener->stats().rejected, 2u);
  opened.listener->stop();
}

TEST(Listener, LimitsConnectionsWaitingForTheirFirstFrame) {
  asio::io_context io;
  TestCluster cluster(io, 1);
  cluster.start();
  cluster.node(1).listener->stop();
  Listener::OpenResult opened = Listener::open(io, {.address = "127.0.0.1:0", .max_pending = 2});
  ASSERT_TRUE(opened.ok()) << opened.error;
  opened.listener->start(*cluster.node(1).transport);
  std::vector<std::unique_ptr<RawPeer>> idle;
  for (int i = 0; i < 5; ++i) {
    idle.push_back(std::make_unique<RawPeer>(io, opened.listener->port()));
    idle.back()->watch_for_close();
  }
  ASSERT_TRUE(run_until(io, [&] {
    int closed = 0;
    for (const auto& p : idle)
      closed += p->closed();
    return closed == 3;
  }));
  EXPECT_EQ(opened.listener->stats().accepted, 5u);
  EXPECT_EQ(opened.listener->stats().rejected, 3u);
  opened.listener->stop();
}

}  // namespace
}  // namespace raftkv::raft::test
