#include "raft/node/listener.h"

#include <charconv>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>

#include "raft/core/check.h"
#include "raft/node/log_line.h"
#include "raft/node/transport.h"
#include "raft/node/transport_internal.h"
#include "schema/convert.h"

namespace raftkv::raft {
namespace {

using asio::ip::tcp;

// After a failed accept (out of file descriptors, say), wait this long
// before the next one instead of spinning on the same error.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

uint32_t load_le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

}  // namespace

// PendingConnection: an accepted connection whose first frame is not yet
// read. Shared with its handlers; `done` once handed over or closed.
struct PendingConnection {
  PendingConnection(asio::io_context& io, tcp::socket&& socket, size_t max_frame_bytes, uint64_t id)
      : socket(std::move(socket)),
        timer(io),
        decoder(max_frame_bytes),
        remote(remote_address(this->socket)),
        id(id) {}

  tcp::socket socket;
  asio::steady_timer timer;  // the first frame's deadline
  wire::FrameDecoder decoder;
  // The first frame's bytes as read, kept to give a client handler a fresh
  // decoder holding the whole request.
  std::string bytes;
  const std::string remote;
  const uint64_t id;
  bool done = false;
};

// Listener::Impl: see listener.h. Runs on the io_context thread only.
class Listener::Impl {
 public:
  Impl(asio::io_context& io, Options options)
      : io_(io), options_(std::move(options)), acceptor_(io), retry_timer_(io) {}

  std::string open();
  void start(Transport& transport, std::function<void(tcp::socket&&, wire::FrameDecoder&&)> client);
  void stop();
  uint16_t port() const { return port_; }
  Stats stats() const { return stats_; }

 private:
  using PendingPtr = std::shared_ptr<PendingConnection>;

  void accept();
  void read_header(const PendingPtr& c);
  void read_payload(const PendingPtr& c, uint32_t length);
  void on_first_frame(const PendingPtr& c);
  void finish(const PendingPtr& c);
  void reject(const PendingPtr& c, std::string_view why);
  void log(std::string_view text) const { log_line(component_, text); }

  asio::io_context& io_;
  const Options options_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  uint16_t port_ = 0;
  std::string component_ = "listener";
  Transport* transport_ = nullptr;
  std::function<void(tcp::socket&&, wire::FrameDecoder&&)> on_client_;
  // Shared with every handler, which checks it before touching the Impl:
  // after stop() the Impl may be gone while its handlers still run.
  std::shared_ptr<bool> stopped_ = std::make_shared<bool>(false);
  std::map<uint64_t, PendingPtr> pending_;
  uint64_t next_id_ = 0;
  Stats stats_;
};

std::string Listener::Impl::open() {
  const auto fail = [&](std::string_view why) {
    return fmt::format("cannot listen on {}: {}", options_.address, why);
  };
  std::optional<HostPort> hp = split_host_port(options_.address);
  if (!hp) return fail("want host:port");
  uint16_t port = 0;
  const char* port_end = hp->port.data() + hp->port.size();
  const auto [end, parse_error] = std::from_chars(hp->port.data(), port_end, port);
  if (parse_error != std::errc() || end != port_end) {
    return fail(fmt::format("bad port \"{}\"", hp->port));
  }
  asio::error_code ec;
  tcp::endpoint endpoint;
  if (asio::ip::address address = asio::ip::make_address(hp->host, ec); !ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    // A host name: resolved once, at startup, so blocking is fine.
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(hp->host, hp->port, tcp::resolver::passive, ec);
    if (ec) return fail(fmt::format("cannot resolve {}: {}", hp->host, ec.message()));
    if (results.empty()) return fail(fmt::format("{} resolves to no address", hp->host));
    endpoint = results.begin()->endpoint();
  }
  if (acceptor_.open(endpoint.protocol(), ec); ec) return fail(ec.message());
  if (acceptor_.set_option(tcp::acceptor::reuse_address(true), ec); ec) return fail(ec.message());
  if (acceptor_.bind(endpoint, ec); ec) return fail(ec.message());
  if (acceptor_.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return fail(ec.message());
  }
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return fail(ec.message());
  return {};
}

void Listener::Impl::start(Transport& transport,
                           std::function<void(tcp::socket&&, wire::FrameDecoder&&)> client) {
  RAFTKV_CHECK(transport_ == nullptr && !*stopped_);
  transport_ = &transport;
  on_client_ = std::move(client);
  component_ = fmt::format("listener/{}", transport.self());
  log(fmt::format("listening on {} (port {})", options_.address, port_));
  accept();
}

void Listener::Impl::accept() {
  acceptor_.async_accept([this, stopped = stopped_](const asio::error_code& ec,
                                                    tcp::socket socket) {
    if (*stopped) return;
    if (ec) {
      log(fmt::format("accept failed: {}; retrying in {} ms", ec.message(),
                      kAcceptRetryDelay.count()));
      retry_timer_.expires_after(kAcceptRetryDelay);
      retry_timer_.async_wait([this, stopped](const asio::error_code& ec) {
        if (*stopped || ec) return;
        accept();
      });
      return;
    }
    ++stats_.accepted;
    auto c = std::make_shared<PendingConnection>(io_, std::move(socket), options_.max_frame_bytes,
                                                 next_id_++);
    if (pending_.size() >= options_.max_pending) {
      // Not added to pending_: reject() only closes and logs.
      reject(c, fmt::format("{} connections already wait for their first frame", pending_.size()));
    } else {
      pending_.emplace(c->id, c);
      c->timer.expires_after(options_.first_frame_timeout);
      c->timer.async_wait([this, c, stopped](const asio::error_code& ec) {
        if (*stopped || c->done || ec) return;
        reject(c, fmt::format("no first frame within {} ms", options_.first_frame_timeout.count()));
      });
      read_header(c);
    }
    accept();
  });
}

void Listener::Impl::read_header(const PendingPtr& c) {
  c->bytes.resize(wire::kFrameHeaderBytes);
  asio::async_read(c->socket, asio::buffer(c->bytes.data(), c->bytes.size()),
                   [this, c, stopped = stopped_](const asio::error_code& ec, size_t) {
                     if (*stopped || c->done) return;
                     if (ec) {
                       reject(c,
                              fmt::format("closed before its first frame: {}",
                                          ec == asio::error::eof ? "end of stream" : ec.message()));
                       return;
                     }
                     c->decoder.feed(c->bytes);
                     auto frame = c->decoder.next();
                     if (!frame.ok()) {
                       reject(c, fmt::format("malformed first frame: {}", frame.error().message));
                       return;
                     }
                     // Only an empty payload could be complete after the header, and the
                     // decoder rejects one (it lacks the payload header); checked anyway,
                     // as this is input from the network.
                     if (frame->has_value()) {
                       reject(c, "empty first frame");
                       return;
                     }
                     read_payload(c, load_le32(c->bytes.data()));
                   });
}

void Listener::Impl::read_payload(const PendingPtr& c, uint32_t length) {
  // The decoder has checked `length` against max_frame_bytes.
  c->bytes.resize(wire::kFrameHeaderBytes + length);
  asio::async_read(c->socket, asio::buffer(c->bytes.data() + wire::kFrameHeaderBytes, length),
                   [this, c, stopped = stopped_](const asio::error_code& ec, size_t) {
                     if (*stopped || c->done) return;
                     if (ec) {
                       reject(c,
                              fmt::format("closed inside its first frame: {}",
                                          ec == asio::error::eof ? "end of stream" : ec.message()));
                       return;
                     }
                     c->decoder.feed(std::string_view(c->bytes).substr(wire::kFrameHeaderBytes));
                     on_first_frame(c);
                   });
}

// The decoder holds exactly one complete frame, not yet returned by next().
void Listener::Impl::on_first_frame(const PendingPtr& c) {
  auto frame = c->decoder.next();
  if (!frame.ok()) {
    reject(c, fmt::format("malformed first frame: {}", frame.error().message));
    return;
  }
  if (!frame->has_value()) {
    reject(c, "incomplete first frame");  // cannot happen: we read its full length
    return;
  }
  const wire::Frame& f = **frame;
  switch (f.kind) {
    case wire::PayloadKind::kHandshake: {
      auto handshake = wire::decode_handshake(f.payload);
      if (!handshake.ok()) {
        reject(c, fmt::format("undecodable handshake: {}", handshake.error().message));
        return;
      }
      finish(c);
      ++stats_.peer_connections;
      // The handshake is consumed; the decoder is empty, since we read
      // exactly one frame.
      TransportAccess::accept_inbound(*transport_, std::move(c->socket), std::move(c->decoder),
                                      *handshake);
      return;
    }
    case wire::PayloadKind::kClientRequest: {
      if (!on_client_) {
        reject(c, "a client connection, but this listener serves no clients");
        return;
      }
      // next() consumed the request from c->decoder; the handler gets a
      // decoder that still holds it, to read it through its own loop.
      wire::FrameDecoder with_request(options_.max_frame_bytes);
      with_request.feed(c->bytes);
      finish(c);
      ++stats_.client_connections;
      on_client_(std::move(c->socket), std::move(with_request));
      return;
    }
    default:
      reject(c, fmt::format("unexpected first frame: {}", wire::to_string(f.kind)));
      return;
  }
}

// The connection leaves our hands (handed over or closed).
void Listener::Impl::finish(const PendingPtr& c) {
  c->done = true;
  c->timer.cancel();
  pending_.erase(c->id);
  std::string().swap(c->bytes);
}

void Listener::Impl::reject(const PendingPtr& c, std::string_view why) {
  ++stats_.rejected;
  log(fmt::format("closed connection from {}: {}", c->remote, why));
  asio::error_code ignored;
  c->socket.close(ignored);
  finish(c);
}

void Listener::Impl::stop() {
  if (*stopped_) return;
  *stopped_ = true;
  asio::error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
  for (auto& [id, c] : pending_) {
    c->done = true;
    c->timer.cancel();
    c->socket.close(ignored);
  }
  pending_.clear();
  if (transport_ != nullptr) log("stopped");
}

Listener::OpenResult Listener::open(asio::io_context& io, Options options) {
  auto impl = std::make_unique<Impl>(io, std::move(options));
  std::string error = impl->open();
  if (!error.empty()) return OpenResult{nullptr, std::move(error)};
  return OpenResult{std::unique_ptr<Listener>(new Listener(std::move(impl))), {}};
}

Listener::Listener(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Listener::~Listener() {
  impl_->stop();
}

void Listener::start(Transport& transport) {
  impl_->start(transport, nullptr);
}
void Listener::start(Transport& transport, ClientHandler on_client) {
  impl_->start(transport, std::move(on_client.on_client));
}
void Listener::stop() {
  impl_->stop();
}
uint16_t Listener::port() const {
  return impl_->port();
}
Listener::Stats Listener::stats() const {
  return impl_->stats();
}

}  // namespace raftkv::raft
