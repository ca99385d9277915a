#include "schema/crc32c.h"

#include <string>

#include <gtest/gtest.h>

#include "raft/core/random.h"

namespace raftkv::wire {
namespace {

// Bit-at-a-time reference: slow and obviously the definition.
uint32_t reference_crc32c(std::string_view data) {
  uint32_t c = ~uint32_t{0};
  for (unsigned char byte : data) {
    c ^= byte;
    for (int bit = 0; bit < 8; ++bit)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78 : c >> 1;
  }
  return ~c;
}

std::string bytes(std::initializer_list<int> values) {
  std::string s;
  for (int v : values)
    s.push_back(static_cast<char>(v));
  return s;
}

TEST(Crc32c, MatchesCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
}

TEST(Crc32c, EmptyInputIsZero) {
  EXPECT_EQ(crc32c(""), 0u);
}

// RFC 3720 (iSCSI) appendix B.4.
TEST(Crc32c, MatchesIscsiVectors) {
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(descending), 0x113FDB5Cu);
  const std::string read_command =
      bytes({0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
             0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
             0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
             0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
  EXPECT_EQ(crc32c(read_command), 0xD9963A56u);
}

// Checks crc32c against the definition for every length in [min_length,
// max_length] at each of the 8 alignments, on random bytes from `seed`.
void expect_reference_at_every_length(uint64_t seed, size_t min_length, size_t max_length) {
  raft::Rng rng(seed);
  std::string buf(max_length + 8, '\0');
  for (char& c : buf)
    c = static_cast<char>(rng.next());
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t length = min_length; length <= max_length; ++length) {
      const std::string_view data(buf.data() + offset, length);
      ASSERT_EQ(crc32c(data), reference_crc32c(data))
          << "offset " << offset << " length " << length;
    }
  }
}

// The 8-byte loop and the byte tail.
TEST(Crc32c, MatchesReferenceAtEveryLengthAndAlignment) {
  expect_reference_at_every_length(1, 0, 300);
}

// Inputs of 768 bytes and more run three strands at once and join them
// (crc32c.cc): every length across several blocks.
TEST(Crc32c, LongInputsMatchReference) {
  expect_reference_at_every_length(3, 700, 2600);
}

TEST(Crc32c, ExtendEqualsChecksumOfConcatenation) {
  raft::Rng rng(2);
  std::string buf(1800, '\0');
  for (char& c : buf)
    c = static_cast<char>(rng.next());
  const uint32_t whole = crc32c(buf);
  for (size_t split = 0; split <= buf.size(); ++split) {
    const std::string_view data(buf);
    ASSERT_EQ(crc32c_extend(crc32c(data.substr(0, split)), data.substr(split)), whole) << split;
  }
}

TEST(Crc32c, DetectsEverySingleBitFlip) {
  std::string data = "a frame payload of moderate length, flipped bit by bit";
  const uint32_t original = crc32c(data);
  for (size_t bit = 0; bit < data.size() * 8; ++bit) {
    data[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_NE(crc32c(data), original) << bit;
    data[bit / 8] ^= static_cast<char>(1 << (bit % 8));
  }
}

}  // namespace
}  // namespace raftkv::wire
