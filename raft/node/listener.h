// Listener: the node's one listening socket, shared by peers and clients.
// It accepts connections and sorts each by its first frame:
//   - a Handshake: a peer's connection, handed with the handshake to the
//     Transport, which validates the cluster and node id and reads the
//     peer's messages from it;
//   - a ClientRequest: a client's connection, handed with that request
//     still in the decoder to the server's ClientHandler;
//   - anything else, nothing within first_frame_timeout, or a frame that
//     fails to decode: logged and closed.
// The first frame is read exactly (its 8-byte header, then the length the
// header names, after checking it against max_frame_bytes), so the Listener
// never reads bytes that belong to whoever takes the connection over.
//
// Threads: like the Transport, the Listener lives on the thread that runs
// its io_context; every method must be called there (or while no thread runs
// it). The Transport and the ClientHandler are called on that thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "schema/frame.h"

namespace asio {
class io_context;
}  // namespace asio

namespace raftkv::raft {

class Transport;
struct ClientHandler;  // transport_internal.h: its signature involves Asio types

class Listener {
 public:
  struct Options {
    // "host:port" or "[v6-host]:port" to bind. Port 0 picks a free port;
    // port() tells which.
    std::string address;
    // Limit on the first frame, and on every frame read by the decoder that
    // is handed over with the connection.
    size_t max_frame_bytes = wire::kMaxFrameBytes;
    std::chrono::milliseconds first_frame_timeout{5000};
    // Connections still waiting for their first frame; more are closed at
    // once, so a flood of idle connections cannot exhaust memory.
    size_t max_pending = 1024;
  };

  struct Stats {
    uint64_t accepted = 0;            // TCP connections accepted
    uint64_t peer_connections = 0;    // handed to the Transport
    uint64_t client_connections = 0;  // handed to the ClientHandler
    uint64_t rejected = 0;            // closed by the Listener itself
  };

  // A listening Listener, or why there is none: `error` reads like
  // "cannot listen on 127.0.0.1:7001: Address already in use".
  struct OpenResult {
    std::unique_ptr<Listener> listener;
    std::string error;
    bool ok() const { return listener != nullptr; }
  };

  // Binds (with SO_REUSEADDR, so a restarted node gets its port back while
  // old connections linger in TIME_WAIT) and listens. Accepts nothing until
  // start(); the kernel queues connections until then. `io` must outlive the
  // Listener and everything it posted.
  static OpenResult open(asio::io_context& io, Options options);

  // Calls stop().
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Starts accepting. Peer connections go to `transport`, which must stay
  // alive until stop(). The first overload serves no clients: their
  // connections are logged and closed. Call once.
  void start(Transport& transport);
  void start(Transport& transport, ClientHandler on_client);

  // Closes the listening socket and every connection still waiting for its
  // first frame; connections already handed over are not ours to close. The
  // Listener may be destroyed right after. Idempotent.
  void stop();

  // The bound port (the kernel's choice if Options asked for 0).
  uint16_t port() const;
  Stats stats() const;

 private:
  class Impl;
  explicit Listener(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::raft
