#include "raft/node/storage_codec.h"

#include <gtest/gtest.h>

namespace raftkv::raft::codec {
namespace {

TEST(Crc32cTest, MatchesPublishedCheckValues) {
  // The standard check value, and the iSCSI test vectors (RFC 3720 B.4).
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int k = 0; k < 32; ++k)
    ascending.push_back(static_cast<char>(k));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(Crc32cTest, ExtendsAcrossPieces) {
  std::string s = "the quick brown fox jumps over the lazy dog, twice over";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(crc32c(std::string_view(s).substr(cut), crc32c(std::string_view(s).substr(0, cut))),
              crc32c(s));
  }
}

TEST(StorageCodecTest, IndexKeysSortAsNumbers) {
  EXPECT_LT(encode_u64_key(255), encode_u64_key(256));
  EXPECT_LT(encode_u64_key(1), encode_u64_key(uint64_t{1} << 40));
  EXPECT_EQ(decode_u64_key(encode_u64_key(0x0102030405060708)), 0x0102030405060708u);
  EXPECT_FALSE(decode_u64_key("short"));
}

TEST(StorageCodecTest, EntryRoundTrips) {
  Entry e{Term(7), Index(42), EntryType::kNoop, Bytes(std::string("payload\0bytes", 13))};
  Decoded<Entry> d = decode_entry(encode_entry(e));
  ASSERT_TRUE(d.value) << d.error;
  EXPECT_EQ(*d.value, e);
}

TEST(StorageCodecTest, EveryFlippedBitOrTruncationIsDetected) {
  std::string good =
      encode_entry(Entry{Term(3), Index(9), EntryType::kNormal, Bytes(std::string("abc"))});
  for (size_t byte = 0; byte < good.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      EXPECT_FALSE(decode_entry(bad).value) << "byte " << byte << " bit " << bit;
    }
  }
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_FALSE(decode_entry(good.substr(0, len)).value) << "length " << len;
  }
  EXPECT_EQ(decode_entry(good.substr(0, good.size() - 1)).error, "checksum mismatch");
}

TEST(StorageCodecTest, ALogValueSplitsIntoItsEntries) {
  std::vector<Entry> written = {
      Entry{Term(2), Index(5), EntryType::kNormal, Bytes(std::string("five"))},
      Entry{Term(2), Index(6), EntryType::kNoop, Bytes()},
      Entry{Term(3), Index(7), EntryType::kNormal, Bytes(std::string(300, 'x'))}};
  std::string value;
  for (const Entry& e : written)
    append_entry(value, e);
  EXPECT_EQ(value.substr(0, encode_entry(written[0]).size()), encode_entry(written[0]));
  std::string_view rest = value;
  for (const Entry& e : written) {
    Decoded<std::string_view> record = split_entry_record(&rest);
    ASSERT_TRUE(record.value) << record.error;
    EXPECT_EQ(record.value->size(), kEntryRecordOverhead + e.data.size());
    Decoded<Entry> d = decode_entry(*record.value);
    ASSERT_TRUE(d.value) << d.error;
    EXPECT_EQ(*d.value, e);
  }
  EXPECT_TRUE(rest.empty());
  // A value cut anywhere inside a record: that record is "truncated".
  for (size_t len = 1; len < value.size(); ++len) {
    std::string_view cut = std::string_view(value).substr(0, len);
    bool refused = false;
    while (!cut.empty() && !refused) {
      Decoded<std::string_view> record = split_entry_record(&cut);
      refused = !record.value;
      if (refused) {
        EXPECT_EQ(record.error, "record truncated") << "length " << len;
      }
    }
    const bool on_boundary =
        len == encode_entry(written[0]).size() ||
        len == encode_entry(written[0]).size() + encode_entry(written[1]).size();
    EXPECT_EQ(refused, !on_boundary) << "length " << len;
  }
}

TEST(StorageCodecTest, MetaRecordsRoundTrip) {
  HardState hs{Term(5), NodeId(2), Index(17)};
  EXPECT_EQ(*decode_hard_state(encode_hard_state(hs)).value, hs);
  SnapshotRecord rec{SnapshotMeta{Index(10), Term(4), {NodeId(1), NodeId(2), NodeId(3)}}, 1234,
                     0xdeadbeef};
  Decoded<SnapshotRecord> d = decode_snapshot_record(encode_snapshot_record(rec));
  ASSERT_TRUE(d.value) << d.error;
  EXPECT_EQ(d.value->meta, rec.meta);
  EXPECT_EQ(d.value->data_size, 1234u);
  EXPECT_EQ(d.value->data_crc, 0xdeadbeefu);
  Decoded<Identity> id = decode_identity(encode_identity(Identity{99, NodeId(3)}));
  ASSERT_TRUE(id.value);
  EXPECT_EQ(id.value->cluster_id, 99u);
  EXPECT_EQ(id.value->node_id, NodeId(3));
  EXPECT_EQ(*decode_format_version(encode_format_version(1)).value, 1u);
  std::string bad = encode_hard_state(hs);
  bad[3] ^= 1;
  EXPECT_EQ(decode_hard_state(bad).error, "checksum mismatch");
}

}  // namespace
}  // namespace raftkv::raft::codec
