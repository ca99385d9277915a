// RocksDB-level access to a RocksLogStore: for the application, which keeps
// its own column families ("kv", "sessions") in the same RocksDB instance,
// and for tests that need to flush or damage the files. This header pulls in
// RocksDB; include it only where RocksDB is used anyway, never from a widely
// included header.
//
// Rule for callers: write only your own column families. The "log", "meta"
// and "snapshot" column families belong to RocksLogStore; a write there
// bypasses its in-memory index and its checks (tests do it on purpose, to
// prove that open() notices).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/db.h>

#include "raft/node/rocks_log_store.h"

namespace raftkv::raft {

inline constexpr char kLogColumnFamily[] = "log";
inline constexpr char kMetaColumnFamily[] = "meta";
inline constexpr char kSnapshotColumnFamily[] = "snapshot";

class RocksLogStoreAccess {
 public:
  // Like RocksLogStore::open(), with RocksDB options of the application's
  // column families (e.g. a merge operator). `extra` takes precedence over
  // options.extra_column_families for the same name; the store's own names
  // are reserved.
  static OpenResult open(const std::string& dir, const RocksLogStoreOptions& options,
                         std::vector<rocksdb::ColumnFamilyDescriptor> extra);

  // Valid until the store is destroyed. Any thread (RocksDB is thread-safe).
  static rocksdb::DB* db(RocksLogStore& store);
  // nullptr when no column family of that name is open.
  static rocksdb::ColumnFamilyHandle* column_family(RocksLogStore& store, std::string_view name);
  // Tests: drops the in-memory copies of recent entries, so that the next
  // reads come from RocksDB.
  static void forget_recent_entries(RocksLogStore& store);
};

}  // namespace raftkv::raft
