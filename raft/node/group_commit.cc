#include "raft/node/group_commit.h"

#include <pthread.h>

#include <vector>

#include "raft/core/check.h"

namespace raftkv::raft {

GroupCommitter::GroupCommitter(RocksLogStore& store, size_t max_pending, WritePacing pacing)
    : store_(store), max_pending_(max_pending), pacing_(pacing), thread_([this] { run(); }) {
  RAFTKV_CHECK(max_pending_ > 0);
}

GroupCommitter::~GroupCommitter() {
  RAFTKV_CHECK(std::this_thread::get_id() != thread_.get_id());
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  thread_.join();
}

bool GroupCommitter::submit(WriteRequest req, Done done) {
  RAFTKV_CHECK(std::this_thread::get_id() != thread_.get_id());
  {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return stopping_ || queue_.size() < max_pending_; });
    if (stopping_) return false;
    count_queued(req);
    queue_.push_back(Pending{std::move(req), std::move(done)});
  }
  not_empty_.notify_one();
  return true;
}

bool GroupCommitter::try_submit(WriteRequest&& req, Done&& done) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= max_pending_) return false;
    count_queued(req);
    queue_.push_back(Pending{std::move(req), std::move(done)});
  }
  not_empty_.notify_one();
  return true;
}

bool GroupCommitter::write_now(const WriteRequest& req) {
  RAFTKV_CHECK(std::this_thread::get_id() != thread_.get_id());
  {
    std::lock_guard lock(mu_);
    if (stopping_ || group_writing_ || writing_now_ || !queue_.empty()) return false;
    writing_now_ = true;
  }
  const WriteRequest* one[] = {&req};
  write_counted(one);
  {
    std::lock_guard lock(mu_);
    writing_now_ = false;
  }
  not_empty_.notify_one();  // a request queued meanwhile may go now
  return true;
}

void GroupCommitter::write_counted(std::span<const WriteRequest* const> reqs) {
  bool sync = false;
  uint64_t entries = 0;
  for (const WriteRequest* r : reqs) {
    sync = sync || r->sync;
    entries += r->entries.size();
  }
  // One batch, one sync for all of them; returns once durable.
  store_.write_group(reqs);
  std::lock_guard lock(mu_);
  last_write_entries_ = entries;
  last_write_end_ = Clock::now();
  stats_.requests += reqs.size();
  stats_.batches += 1;
  stats_.syncs += sync ? 1 : 0;
  stats_.entries += entries;
}

std::optional<GroupCommitter::Clock::time_point> GroupCommitter::hold_until(size_t entries) const {
  std::lock_guard lock(mu_);
  return hold_until_locked(entries);
}

std::optional<GroupCommitter::Clock::time_point> GroupCommitter::hold_until_locked(
    size_t entries) const {
  if (entries == 0 || entries >= pacing_.small_write || last_write_entries_ < pacing_.large_write) {
    return std::nullopt;
  }
  const Clock::time_point until = last_write_end_ + pacing_.window;
  if (Clock::now() >= until) return std::nullopt;
  return until;
}

std::optional<GroupCommitter::Clock::time_point> GroupCommitter::hold_queue_until_locked() const {
  // Only entries wait; a snapshot or a hard state alone (a vote) goes now.
  if (stopping_ || queued_without_entries_ > 0) return std::nullopt;
  return hold_until_locked(queued_entries_);
}

void GroupCommitter::count_queued(const WriteRequest& req) {
  queued_entries_ += req.entries.size();
  if (req.entries.empty() || req.snapshot) ++queued_without_entries_;
}

GroupCommitter::Stats GroupCommitter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void GroupCommitter::run() {
  pthread_setname_np(pthread_self(), "raftkv-storage");  // for top -H, perf, gdb
  std::deque<Pending> group;
  std::vector<const WriteRequest*> reqs;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      // Never beside a write_now(): the store takes one writer at a time
      // anyway, and the queue holds only what was handed over after it.
      not_empty_.wait(lock, [&] { return !writing_now_ && (stopping_ || !queue_.empty()); });
      // Drain the queue even when stopping: every accepted request is
      // written and completed before the destructor returns.
      if (queue_.empty()) return;
      if (std::optional<Clock::time_point> until = hold_queue_until_locked()) {
        ++stats_.held;
        // Producers notify not_empty_ with every request; write_now() declines
        // meanwhile, since the queue is not empty (so the deadline stays).
        not_empty_.wait_until(lock, *until, [&] { return !hold_queue_until_locked(); });
      }
      // Everything that arrived while the previous group was syncing.
      group.swap(queue_);
      queued_entries_ = 0;
      queued_without_entries_ = 0;
      group_writing_ = true;
    }
    not_full_.notify_all();

    reqs.clear();
    for (const Pending& p : group)
      reqs.push_back(&p.req);
    write_counted(reqs);
    for (Pending& p : group) {
      if (p.done) p.done();
    }
    group.clear();
    {
      std::lock_guard lock(mu_);
      group_writing_ = false;
    }
  }
}

}  // namespace raftkv::raft
