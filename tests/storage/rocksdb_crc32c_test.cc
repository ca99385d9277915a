// RocksDB's CRC-32C calls are redirected to raftkv's (raft/node/
// rocksdb_crc32c.cc). A different answer would make every WAL this build
// writes unreadable to a stock RocksDB, and every stock WAL unreadable here,
// so the wrapper must agree with RocksDB's own function bit for bit.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

#include <gtest/gtest.h>

// RocksDB's original (--wrap names it __real_...), and the name RocksDB's
// objects now call. Neither is in RocksDB's installed headers.
uint32_t rocksdb_own_crc32c_extend(uint32_t crc, const char* data,
                                   size_t size) asm("__real__ZN7rocksdb6crc32c6ExtendEjPKcm");
uint32_t rocksdb_called_crc32c_extend(uint32_t crc, const char* data,
                                      size_t size) asm("_ZN7rocksdb6crc32c6ExtendEjPKcm");

namespace {

TEST(RocksDbCrc32cTest, BothGiveTheCheckValue) {
  EXPECT_EQ(rocksdb_own_crc32c_extend(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(rocksdb_called_crc32c_extend(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(rocksdb_called_crc32c_extend(0, "", 0), 0u);
}

TEST(RocksDbCrc32cTest, AgreesWithRocksDbOnRandomInputs) {
  std::mt19937_64 rng(20261205);
  std::string buf(9000, '\0');
  for (char& c : buf)
    c = static_cast<char>(rng());
  for (int k = 0; k < 5000; ++k) {
    // Every length up to 64 (the tails), then longer ones, at odd offsets
    // (RocksDB's slice-by-8 path handles alignment itself), from a random
    // running checksum (Extend continues one).
    const size_t size = k < 65 ? static_cast<size_t>(k) : rng() % 8192;
    const size_t offset = rng() % (buf.size() - size + 1);
    const auto crc = static_cast<uint32_t>(rng());
    ASSERT_EQ(rocksdb_called_crc32c_extend(crc, buf.data() + offset, size),
              rocksdb_own_crc32c_extend(crc, buf.data() + offset, size))
        << "size " << size << " offset " << offset << " crc " << crc;
  }
}

}  // namespace
