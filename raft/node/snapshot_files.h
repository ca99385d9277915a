// SnapshotFiles: snapshot images as files in one directory (by default
// <data-dir>/snapshots), so that a state larger than memory can be sent to a
// lagging follower and received from the leader (Raft §7): neither side holds
// more of an image in memory than the chunks in flight; a mapped file's pages
// are the kernel's to evict.
//
//   outgoing-<index>.tmp   leader: the image of the state machine's pinned
//                          view at <index>, written by a background thread;
//                          unlinked as soon as it is complete and mapped
//   incoming.tmp           follower: the image being received, chunk by chunk
//   installed-<index>.img  follower: a received image, fsynced, kept until
//                          the state machine holds it durably
//
// Durability (Raft §7, thesis §5.1: a node may drop log entries only once a
// durable snapshot covers them): seal() fsyncs a received image and renames
// it BEFORE the log store records the snapshot (and drops the log); for a
// durable() state machine the log store keeps no image, so until the state
// machine has restored it and synced, installed-<index>.img is the only copy
// and RaftNode::start() restores from it after a crash.
//
// Threads: every method is for the Raft thread; the outgoing writer runs on
// a thread of its own, which the destructor stops and joins.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "raft/core/ready.h"
#include "raft/node/state_machine.h"

namespace raftkv::raft {

// Maps a whole file read-only; the mapping lives as long as the returned
// Bytes and its slices. nullopt, with *error set, if that fails.
std::optional<Bytes> map_file(const std::string& path, std::string* error);

class SnapshotFiles {
 public:
  // Creates `dir` if needed and removes what a previous run left behind
  // except installed images (see remove_installed()). Fail-stop if the
  // directory cannot be used.
  explicit SnapshotFiles(std::string dir);
  ~SnapshotFiles();
  SnapshotFiles(const SnapshotFiles&) = delete;
  SnapshotFiles& operator=(const SnapshotFiles&) = delete;

  const std::string& dir() const;

  // --- follower -------------------------------------------------------------
  // Writes a chunk of the incoming image (offset 0 starts a new one). Not
  // synced. Fail-stop on an I/O error, like the log store.
  void write_chunk(const SnapshotChunk& chunk);
  // Makes the incoming image durable as installed-<index>.img: fsync the
  // file, rename it, fsync the directory. Returns its path.
  std::string seal(Index index);
  std::string installed_path(Index index) const;
  // Deletes the installed images at or below `index`.
  void remove_installed(Index up_to);

  // --- leader ---------------------------------------------------------------
  // The image of the pinned view at `index`, once written; until then
  // nullopt, and the first call for an index starts writing it with
  // make_writer() on the background thread (abandoning a write for another
  // index). A failed write is logged and retried at a later call.
  // The image is kept until handed out once; after that it lives as long
  // as something views it (a chunk, a Progress) and is written again if
  // asked for once it is gone.
  std::optional<Bytes> outgoing(Index index, const std::function<ImageWriter()>& make_writer);
  // Stops a write in progress and drops a kept image (leadership lost).
  void forget_outgoing();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace raftkv::raft
