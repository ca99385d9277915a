#include "raft/node/storage_codec.h"

#include "schema/crc32c.h"

#include <cstdio>
#include <cstdlib>
#include <limits>

#include <fmt/format.h>

namespace raftkv::raft::codec {
namespace {

void put_u8(std::string& out, uint8_t v) {
  out.push_back(static_cast<char>(v));
}

// Little-endian, whatever the host order; one append per field (a
// push_back per byte was 5% of the storage thread under load).
template <class Uint>
void put_le(std::string& out, Uint v) {
  char bytes[sizeof(Uint)];
  for (size_t k = 0; k < sizeof(Uint); ++k)
    bytes[k] = static_cast<char>((v >> (8 * k)) & 0xFF);
  out.append(bytes, sizeof(Uint));
}

void put_u32(std::string& out, uint32_t v) {
  put_le(out, v);
}

void put_u64(std::string& out, uint64_t v) {
  put_le(out, v);
}

// Appends the CRC32C of everything written so far.
std::string seal(std::string body) {
  put_u32(body, crc32c(body));
  return body;
}

// Reads little-endian fields from a record body; once a read runs past the
// end every later read fails too, so callers check ok() once at the end.
class FieldReader {
 public:
  explicit FieldReader(std::string_view body) : rest_(body) {}

  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  std::string_view bytes(uint64_t n) {
    if (!ok_ || n > rest_.size()) {
      ok_ = false;
      return {};
    }
    std::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return out;
  }
  bool ok() const { return ok_; }
  size_t remaining() const { return rest_.size(); }

 private:
  uint64_t take(size_t n) {
    if (!ok_ || rest_.size() < n) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k)
      v |= uint64_t{static_cast<uint8_t>(rest_[k])} << (8 * k);
    rest_.remove_prefix(n);
    return v;
  }

  std::string_view rest_;
  bool ok_ = true;
};

// Checks the trailing checksum and the version byte; returns the fields
// between them, or the reason the record is unusable.
Decoded<std::string_view> unseal(std::string_view bytes) {
  if (bytes.size() < 1 + 4) {
    return {std::nullopt, fmt::format("record of {} bytes is too short", bytes.size())};
  }
  std::string_view body = bytes.substr(0, bytes.size() - 4);
  FieldReader crc_reader(bytes.substr(bytes.size() - 4));
  uint32_t stored = crc_reader.u32();
  if (crc32c(body) != stored) return {std::nullopt, "checksum mismatch"};
  // The version is checked after the checksum: a bad version byte under a
  // good checksum was written by a newer (or broken) program, not the disk.
  if (static_cast<uint8_t>(body[0]) != kRecordVersion) {
    return {std::nullopt, fmt::format("unknown record version {}", static_cast<uint8_t>(body[0]))};
  }
  return {body.substr(1), {}};
}

template <class T>
Decoded<T> trailing_bytes_error(const FieldReader& r) {
  if (!r.ok()) return {std::nullopt, "record truncated"};
  return {std::nullopt, fmt::format("{} unexpected trailing bytes", r.remaining())};
}

}  // namespace

uint32_t crc32c(std::string_view data, uint32_t crc) {
  // One CRC32C implementation for the whole project: schema/crc32c.
  return wire::crc32c_extend(crc, data);
}

std::string encode_u64_key(uint64_t v) {
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k)
    out[7 - k] = static_cast<char>((v >> (8 * k)) & 0xFF);
  return out;
}

std::optional<uint64_t> decode_u64_key(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (char c : key)
    v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

void append_entry(std::string& out, const Entry& e) {
  const size_t start = out.size();
  std::string_view data = e.data.view();
  put_u8(out, kRecordVersion);
  put_u8(out, static_cast<uint8_t>(e.type));
  put_u64(out, e.term.value);
  put_u64(out, e.index.value);
  // Entries are bounded far below 4 GiB by the proposal size limit; a larger
  // one would be a bug upstream, and truncating its length silently would
  // corrupt the log, so refuse loudly.
  if (data.size() > std::numeric_limits<uint32_t>::max()) {
    std::fprintf(stderr, "raftkv: entry %lu of %zu bytes exceeds the 4 GiB record limit\n",
                 static_cast<unsigned long>(e.index.value), data.size());
    std::abort();
  }
  put_u32(out, static_cast<uint32_t>(data.size()));
  out.append(data);
  put_u32(out, crc32c(std::string_view(out).substr(start)));
}

std::string encode_entry(const Entry& e) {
  std::string out;
  out.reserve(kEntryRecordOverhead + e.data.size());
  append_entry(out, e);
  return out;
}

Decoded<std::string_view> split_entry_record(std::string_view* rest) {
  // The data length sits after version, type, term and index.
  constexpr size_t kLengthAt = 1 + 1 + 8 + 8;
  if (rest->size() < kLengthAt + 4) return {std::nullopt, "record truncated"};
  FieldReader r(rest->substr(kLengthAt, 4));
  const uint64_t size = kEntryRecordOverhead + uint64_t{r.u32()};
  if (size > rest->size()) return {std::nullopt, "record truncated"};
  std::string_view record = rest->substr(0, size);
  rest->remove_prefix(size);
  return {record, {}};
}

Decoded<Entry> decode_entry(std::string_view bytes) {
  Decoded<std::string_view> body = unseal(bytes);
  if (!body.value) return {std::nullopt, body.error};
  FieldReader r(*body.value);
  uint8_t type = r.u8();
  Entry e;
  e.term = Term(r.u64());
  e.index = Index(r.u64());
  uint32_t n = r.u32();
  std::string_view data = r.bytes(n);
  if (!r.ok() || r.remaining() != 0) return trailing_bytes_error<Entry>(r);
  if (type > static_cast<uint8_t>(EntryType::kNoop)) {
    return {std::nullopt, fmt::format("unknown entry type {}", type)};
  }
  e.type = static_cast<EntryType>(type);
  e.data = Bytes(data);
  return {std::move(e), {}};
}

Decoded<Entry> decode_next_entry(std::string_view* rest, Index index) {
  Decoded<std::string_view> record = split_entry_record(rest);
  if (!record.value) return {std::nullopt, record.error};
  Decoded<Entry> e = decode_entry(*record.value);
  if (e.value && e.value->index != index) {
    return {std::nullopt, fmt::format("stored index {} does not match its key", e.value->index)};
  }
  return e;
}

std::string encode_format_version(uint32_t format) {
  std::string out;
  put_u8(out, kRecordVersion);
  put_u32(out, format);
  return seal(std::move(out));
}

Decoded<uint32_t> decode_format_version(std::string_view bytes) {
  Decoded<std::string_view> body = unseal(bytes);
  if (!body.value) return {std::nullopt, body.error};
  FieldReader r(*body.value);
  uint32_t format = r.u32();
  if (!r.ok() || r.remaining() != 0) return trailing_bytes_error<uint32_t>(r);
  return {format, {}};
}

std::string encode_identity(const Identity& id) {
  std::string out;
  put_u8(out, kRecordVersion);
  put_u64(out, id.cluster_id);
  put_u64(out, id.node_id.value);
  return seal(std::move(out));
}

Decoded<Identity> decode_identity(std::string_view bytes) {
  Decoded<std::string_view> body = unseal(bytes);
  if (!body.value) return {std::nullopt, body.error};
  FieldReader r(*body.value);
  Identity id;
  id.cluster_id = r.u64();
  id.node_id = NodeId(r.u64());
  if (!r.ok() || r.remaining() != 0) return trailing_bytes_error<Identity>(r);
  return {id, {}};
}

std::string encode_hard_state(const HardState& hs) {
  std::string out;
  put_u8(out, kRecordVersion);
  put_u64(out, hs.term.value);
  put_u64(out, hs.vote.value);
  put_u64(out, hs.commit.value);
  return seal(std::move(out));
}

Decoded<HardState> decode_hard_state(std::string_view bytes) {
  Decoded<std::string_view> body = unseal(bytes);
  if (!body.value) return {std::nullopt, body.error};
  FieldReader r(*body.value);
  HardState hs;
  hs.term = Term(r.u64());
  hs.vote = NodeId(r.u64());
  hs.commit = Index(r.u64());
  if (!r.ok() || r.remaining() != 0) return trailing_bytes_error<HardState>(r);
  return {hs, {}};
}

std::string encode_snapshot_record(const SnapshotRecord& rec) {
  std::string out;
  put_u8(out, kRecordVersion);
  put_u64(out, rec.meta.index.value);
  put_u64(out, rec.meta.term.value);
  put_u32(out, static_cast<uint32_t>(rec.meta.voters.size()));
  for (NodeId v : rec.meta.voters)
    put_u64(out, v.value);
  put_u64(out, rec.data_size);
  put_u32(out, rec.data_crc);
  return seal(std::move(out));
}

Decoded<SnapshotRecord> decode_snapshot_record(std::string_view bytes) {
  Decoded<std::string_view> body = unseal(bytes);
  if (!body.value) return {std::nullopt, body.error};
  FieldReader r(*body.value);
  SnapshotRecord rec;
  rec.meta.index = Index(r.u64());
  rec.meta.term = Term(r.u64());
  uint32_t voters = r.u32();
  // Each voter takes 8 bytes; checking first keeps a corrupt count from
  // reserving gigabytes.
  if (!r.ok() || uint64_t{voters} * 8 > r.remaining()) return {std::nullopt, "record truncated"};
  rec.meta.voters.reserve(voters);
  for (uint32_t k = 0; k < voters; ++k)
    rec.meta.voters.push_back(NodeId(r.u64()));
  rec.data_size = r.u64();
  rec.data_crc = r.u32();
  if (!r.ok() || r.remaining() != 0) return trailing_bytes_error<SnapshotRecord>(r);
  return {std::move(rec), {}};
}

}  // namespace raftkv::raft::codec
