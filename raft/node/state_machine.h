// StateMachine: what an application implements to be replicated by a
// RaftNode. All calls come from the node's Raft thread, in log order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "raft/core/message.h"

namespace raftkv::raft {

// Receives an image as a state machine writes it, piece by piece (to a file,
// so an image may be larger than memory).
class ImageOut {
 public:
  virtual ~ImageOut() = default;
  virtual void append(std::string_view bytes) = 0;
  // Replaces bytes appended earlier, at `offset` (a count known at the end).
  virtual void overwrite(uint64_t offset, std::string_view bytes) = 0;
  virtual uint64_t size() const = 0;
};
using ImageWriter = std::function<void(ImageOut& out)>;

// An ImageOut into memory.
class StringImageOut final : public ImageOut {
 public:
  void append(std::string_view bytes) override { data.append(bytes); }
  void overwrite(uint64_t offset, std::string_view bytes) override {
    data.replace(offset, bytes.size(), bytes);
  }
  uint64_t size() const override { return data.size(); }
  std::string data;
};

class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies one committed entry (normal or no-op). Invariant:
  // e.index == applied_index() + 1. Must be deterministic.
  virtual void apply(const Entry& e) = 0;
  // Ends a run of apply() calls. The node calls it after the entries of one
  // Ready are applied and BEFORE it completes their proposals' waiters or
  // serves reads at their indexes, so a state machine may buffer the run's
  // writes and store them here as one batch.
  virtual void applied_batch_done() {}
  // An image of the state at applied_index(), for log compaction.
  virtual Bytes snapshot() const = 0;
  // Replaces the state with a snapshot's image. False (with a reason) if the
  // image cannot be decoded; the node then stops rather than run on bad state.
  virtual bool restore(const Snapshot& snap, std::string* error) = 0;
  virtual Index applied_index() const = 0;

  // --- State machines that keep their own durable state ---------------------
  // durable() == true: the state survives a restart by itself, and
  // applied_index() right after construction is the index it had persisted
  // (never beyond what the Raft log holds: it applies only committed, hence
  // durable, entries). The node then
  //   - on start, replays only the log after applied_index(), restoring the
  //     log store's snapshot first only if the state is behind it;
  //   - on compaction, calls checkpoint() and stores NO image in the log
  //     store (an empty snapshot image means "the state machine has it");
  //   - sends lagging followers the image pinned_image_writer() writes.
  virtual bool durable() const { return false; }
  // durable() only. Makes the state at applied_index() durable (it survives
  // a machine crash) and pins a consistent, unchanging view of it for
  // pinned_image_writer(), replacing the previous pin. Called at start and
  // after a snapshot is installed. The log may drop entries only once the
  // state that covers them is durable (Raft paper §7, thesis §5.1).
  virtual void checkpoint() {}
  // durable() only. What the node calls before a log compaction: like
  // checkpoint(), but it never waits for the disk. It pins the newest state
  // that is durable already, if that is newer than the pin, starts making
  // the rest durable in the background (so that a later call finds a newer
  // state), and returns pinned_index(). The default syncs: checkpoint().
  virtual Index checkpoint_in_background() {
    checkpoint();
    return pinned_index();
  }
  // The index of the pinned view, and a function that writes its image
  // (restore() accepts it). The function holds the view: what it writes does
  // not change when checkpoint() pins a newer one. It may run on another
  // thread, concurrently with every call here, but must not outlive this
  // state machine.
  virtual Index pinned_index() const { return Index(0); }
  virtual ImageWriter pinned_image_writer() const { return {}; }
};

}  // namespace raftkv::raft
