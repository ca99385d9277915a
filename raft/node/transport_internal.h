// The Asio-facing seams of the peer transport, kept out of transport.h and
// listener.h so that their users do not compile Asio: the hand-over of an
// accepted connection from the Listener to the Transport (peers) or to the
// server's client service (clients), and the "host:port" parsing both share.
//
// Include this only where Asio is wanted: listener.cc, transport.cc, the
// server wiring that supplies a ClientHandler, and tests.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <asio/ip/tcp.hpp>

#include "raft/node/transport.h"
#include "schema/convert.h"
#include "schema/frame.h"

namespace raftkv::raft {

// ClientHandler: takes over a connection whose first frame was a
// ClientRequest. The decoder still holds that frame, not yet returned by
// next(), so the handler reads every request, the first one included,
// through the same loop. Runs on the io_context thread; the socket belongs
// to the same io_context.
struct ClientHandler {
  std::function<void(asio::ip::tcp::socket&& socket, wire::FrameDecoder&& decoder)> on_client;
};

struct TransportAccess {
  // Takes over an inbound peer connection whose first frame, already read
  // and decoded by the Listener, was `handshake`. `decoder` holds whatever
  // the Listener read after the handshake. A handshake from another cluster,
  // another protocol version, our own node id or a node not in
  // Options::peers is refused: the connection is closed and the refusal
  // logged. Call on the io_context thread.
  static void accept_inbound(Transport& transport, asio::ip::tcp::socket&& socket,
                             wire::FrameDecoder&& decoder, const wire::Handshake& handshake);
};

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::string port;
};

// Splits "host:port" or "[v6-host]:port". nullopt if either part is empty or
// the brackets do not match.
inline std::optional<HostPort> split_host_port(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (address.starts_with('[')) {
    const size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return std::nullopt;
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty() || port.empty()) return std::nullopt;
  return HostPort{std::string(host), std::string(port)};
}

// "a.b.c.d:port" of a socket's remote end, for log lines; "?" once closed.
inline std::string remote_address(const asio::ip::tcp::socket& socket) {
  asio::error_code ec;
  const asio::ip::tcp::endpoint remote = socket.remote_endpoint(ec);
  if (ec) return "?";
  if (remote.address().is_v6()) {
    return "[" + remote.address().to_string() + "]:" + std::to_string(remote.port());
  }
  return remote.address().to_string() + ":" + std::to_string(remote.port());
}

}  // namespace raftkv::raft
