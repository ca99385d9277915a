#include "raft/core/memory_storage.h"

#include "raft/core/check.h"

namespace raftkv::raft {

MemoryStorage::MemoryStorage(std::vector<NodeId> voters) {
  snapshot_.meta.voters = std::move(voters);
}

std::optional<Term> MemoryStorage::term(Index i) const {
  if (i == snapshot_.meta.index) return snapshot_.meta.term;
  if (i < snapshot_.meta.index || i > last_index()) return std::nullopt;
  return entries_[i - first_index()].term;
}

std::vector<Entry> MemoryStorage::entries(Index lo, Index hi, size_t max_bytes) const {
  RAFTKV_CHECK(first_index() <= lo && lo <= hi && hi <= last_index() + 1);
  std::vector<Entry> out;
  size_t bytes = 0;
  for (Index i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - first_index()];
    bytes += e.byte_size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

void MemoryStorage::append(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  Index first = entries.front().index;
  RAFTKV_CHECK(first <= last_index() + 1);
  // Entries at or below the snapshot are already covered by it.
  size_t skip = 0;
  while (skip < entries.size() && entries[skip].index <= snapshot_.meta.index)
    ++skip;
  if (skip == entries.size()) return;
  Index from = entries[skip].index;
  entries_.resize(from - first_index());
  for (size_t k = skip; k < entries.size(); ++k) {
    RAFTKV_CHECK(entries[k].index == last_index() + 1);
    entries_.push_back(entries[k]);
  }
}

void MemoryStorage::persist(const Ready& rd) {
  for (const SnapshotChunk& c : rd.snapshot_chunks)
    write_snapshot_chunk(c);
  if (rd.snapshot) install_snapshot(*rd.snapshot);
  append(rd.entries);
  if (rd.hard_state) set_hard_state(*rd.hard_state);
}

void MemoryStorage::write_snapshot_chunk(const SnapshotChunk& chunk) {
  if (chunk.offset == 0) incoming_.clear();
  RAFTKV_CHECK_MSG(chunk.offset == incoming_.size(), "snapshot chunks must arrive in order");
  incoming_.append(chunk.data.view());
}

void MemoryStorage::install_snapshot(const SnapshotMeta& meta) {
  RAFTKV_CHECK(meta.index >= snapshot_.meta.index);
  // The core only installs a snapshot whose last entry its log lacks, so the
  // whole log is discarded (Raft §7); keeping a tail here could resurrect
  // entries the core has already overwritten.
  snapshot_ = Snapshot{meta, Bytes(std::move(incoming_))};
  incoming_.clear();
  entries_.clear();
}

void MemoryStorage::compact(Index index, Bytes data) {
  RAFTKV_CHECK(index > snapshot_.meta.index && index <= last_index());
  Term t = *term(index);
  size_t drop = index - snapshot_.meta.index;
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(drop));
  snapshot_.meta.index = index;
  snapshot_.meta.term = t;
  snapshot_.data = std::move(data);
}

size_t MemoryStorage::log_bytes() const {
  size_t n = 0;
  for (const Entry& e : entries_)
    n += e.byte_size();
  return n;
}

}  // namespace raftkv::raft
