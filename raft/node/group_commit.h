// GroupCommitter: one storage thread that turns many WriteRequests into few
// fsyncs. Whatever producers submit while a sync is running is merged into
// the next RocksDB WriteBatch and made durable by ONE sync, so the cost of
// an fsync is shared by every request that waited for it (DESIGN.md: "one
// fsync, shared by every request in the batch").
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "raft/node/rocks_log_store.h"

namespace raftkv::raft {

// Pacing. Under load an fsync costs about the same whatever it carries (~1
// ms on the shared virtual disk of docs/PERFORMANCE.md, "A small write waits
// for company"), so a write of a few entries right after a large one waits a
// little for more: the rest of the burst is usually on its way, and the
// fsync it would take delays everything behind it. Waiting only delays a
// write; what is acknowledged or reported, and when relative to the fsync,
// is unchanged.
struct WritePacing {
  // A write of fewer entries than this ...
  size_t small_write = 8;
  // ... right after one of at least this many ...
  size_t large_write = 32;
  // ... waits until this long after that one ended, or until it has company.
  // Zero: never waits.
  std::chrono::microseconds window{800};
};

// GroupCommitter owns the storage thread, the only thread that writes to the
// store through it, and a bounded queue of pending requests.
//
// Threads:
//   - submit(), try_submit() and stats(): any thread (producers).
//   - completion callbacks: the storage thread, in submission order, each
//     exactly once, after its request is written — durably when the request
//     or any request merged with it asked for sync (Thesis §3.8: only then
//     may the node send votes and acks or tell the core "persisted").
//   - the destructor: any thread but the storage thread.
//
// Backpressure: at most `max_pending` requests wait in the queue (plus the
// group being written). submit() blocks while the queue is full, so a slow
// disk slows the producers rather than growing memory without bound;
// try_submit() refuses instead, for callers that must not block. A callback
// runs on the storage thread, so it must not call submit() (it could wait
// forever for the thread it runs on); it may call try_submit().
//
// Failure: a RocksDB write error stops the process inside the store (see
// RocksLogStore, "Fail-stop"), so a callback is never told "done" falsely.
//
// Pacing (WritePacing): the storage thread holds back a small group while
// hold_until() says so; RaftNode holds a follower's inline write the same
// way, on its own thread, which meanwhile reads the appends that join it.
class GroupCommitter {
 public:
  using Done = std::function<void()>;
  using Clock = std::chrono::steady_clock;

  struct Stats {
    uint64_t requests = 0;  // requests written
    uint64_t batches = 0;   // RocksDB write batches (one per group)
    uint64_t syncs = 0;     // WAL fsyncs (groups with at least one sync request)
    uint64_t entries = 0;   // log entries written
    uint64_t held = 0;      // groups the storage thread held back (WritePacing)
  };

  static constexpr size_t kDefaultMaxPending = 4096;

  // `store` must outlive this object.
  explicit GroupCommitter(RocksLogStore& store, size_t max_pending = kDefaultMaxPending,
                          WritePacing pacing = {});
  // Stops taking requests, writes and completes everything already queued,
  // then joins the storage thread.
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues `req`; `done` runs on the storage thread once it is written.
  // Blocks while the queue is full. Returns false, without running `done`,
  // only if the committer is shutting down.
  bool submit(WriteRequest req, Done done);
  // Like submit(), but returns false instead of blocking when the queue is
  // full. On false, `req` and `done` are left untouched for a later retry.
  bool try_submit(WriteRequest&& req, Done&& done);

  // Writes `req` on the calling thread, durably if it asks for sync, and
  // returns true; or returns false at once, writing nothing, if a request
  // is queued or being written (so writes still reach the store in the
  // order they were handed over). For a producer whose next step waits on
  // the write anyway: it saves two thread hand-offs.
  bool write_now(const WriteRequest& req);

  // When a write of `entries` entries (at least one) should go at the
  // latest, if it should wait for more (WritePacing); nullopt: write it now.
  std::optional<Clock::time_point> hold_until(size_t entries) const;

  // Counters so far; syncs / entries is the fsync cost per log entry.
  Stats stats() const;

 private:
  struct Pending {
    WriteRequest req;
    Done done;
  };

  void run();
  std::optional<Clock::time_point> hold_until_locked(size_t entries) const;
  // hold_until() for the queue as a whole (with mu_ held).
  std::optional<Clock::time_point> hold_queue_until_locked() const;
  void count_queued(const WriteRequest& req);  // with mu_ held
  // Writes `reqs` as one batch and counts it in stats_ (takes mu_ after).
  void write_counted(std::span<const WriteRequest* const> reqs);

  RocksLogStore& store_;
  const size_t max_pending_;
  const WritePacing pacing_;

  mutable std::mutex mu_;
  std::condition_variable not_empty_;  // storage thread waits for work
  std::condition_variable not_full_;   // producers wait for room
  // Invariant: queue_.size() <= max_pending_.
  std::deque<Pending> queue_;
  // In queue_: entries, and requests that carry none or a snapshot.
  size_t queued_entries_ = 0;
  size_t queued_without_entries_ = 0;
  // The last write, for pacing.
  size_t last_write_entries_ = 0;
  Clock::time_point last_write_end_;
  bool group_writing_ = false;  // the storage thread holds a group
  bool writing_now_ = false;    // a write_now() is writing
  bool stopping_ = false;
  Stats stats_;

  std::thread thread_;  // last: starts after everything above is ready
};

}  // namespace raftkv::raft
