// The byte formats RocksLogStore keeps on disk: log keys, entry records and
// the small records in the meta column family. Each record starts with a
// format version byte and ends with a CRC32C of everything before it, so a
// flipped bit or a torn value is detected by us even where RocksDB's own
// block checksums would not see it (e.g. a value rewritten by a bug).
//
//   log key        8 bytes: the index of the value's first entry,
//                  big-endian (so RocksDB's bytewise order is index order)
//   log value      the records of one or more consecutive entries (those
//                  written together), back to back
//   entry          [u8 version=1][u8 type][u64 term][u64 index][u32 n][n bytes data][u32 crc32c]
//   format version [u8 version=1][u32 format][u32 crc32c]
//   identity       [u8 version=1][u64 cluster_id][u64 node_id][u32 crc32c]
//   hard state     [u8 version=1][u64 term][u64 vote][u64 commit][u32 crc32c]
//   snapshot meta  [u8 version=1][u64 index][u64 term][u32 n][n x u64 voter]
//                  [u64 data_size][u32 data_crc32c][u32 crc32c]
//   snapshot chunk key: 8 bytes, the chunk number, big-endian
//
// Integers in values are little-endian. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "raft/core/message.h"

namespace raftkv::raft::codec {

// CRC32C (Castagnoli), the checksum of iSCSI, ext4 and RocksDB. `crc` is
// the value returned for the preceding bytes, so a long input can be
// checksummed in pieces: crc32c(b, crc32c(a)) == crc32c(a + b).
uint32_t crc32c(std::string_view data, uint32_t crc = 0);

inline constexpr uint8_t kRecordVersion = 1;

// Big-endian u64 keys, used for log indexes and snapshot chunk numbers.
std::string encode_u64_key(uint64_t v);
std::optional<uint64_t> decode_u64_key(std::string_view key);
inline std::string encode_index_key(Index i) {
  return encode_u64_key(i.value);
}

// Decoded<T>: a decoded value, or what was wrong with the bytes.
template <class T>
struct Decoded {
  std::optional<T> value;
  std::string error;  // set when !value
};

// Bytes of an entry record besides the entry's data.
inline constexpr size_t kEntryRecordOverhead = 1 + 1 + 8 + 8 + 4 + 4;
// Appends e's record to `out` (a log value); the caller sizes `out`
// (kEntryRecordOverhead + data size per entry).
void append_entry(std::string& out, const Entry& e);
std::string encode_entry(const Entry& e);
// Splits the first entry record off the front of `*rest` (a log value),
// by its length field alone: decode_entry checks it.
Decoded<std::string_view> split_entry_record(std::string_view* rest);
// Checks length, version, type and checksum. Does not check the index
// against the key: the caller knows the key.
Decoded<Entry> decode_entry(std::string_view bytes);
// Splits the next record off `*rest` (a log value) and decodes it, which
// must give entry `index`: decode_entry's checks plus the stored index.
Decoded<Entry> decode_next_entry(std::string_view* rest, Index index);

std::string encode_format_version(uint32_t format);
Decoded<uint32_t> decode_format_version(std::string_view bytes);

struct Identity {
  uint64_t cluster_id = 0;  // 0: not set
  NodeId node_id;           // kNoNode: not set
};
std::string encode_identity(const Identity& id);
Decoded<Identity> decode_identity(std::string_view bytes);

std::string encode_hard_state(const HardState& hs);
Decoded<HardState> decode_hard_state(std::string_view bytes);

// The snapshot meta record also carries the size and CRC32C of the
// snapshot data, so the chunks can be verified when they are read back.
struct SnapshotRecord {
  SnapshotMeta meta;
  uint64_t data_size = 0;
  uint32_t data_crc = 0;
};
std::string encode_snapshot_record(const SnapshotRecord& r);
Decoded<SnapshotRecord> decode_snapshot_record(std::string_view bytes);

}  // namespace raftkv::raft::codec
