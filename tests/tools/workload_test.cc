// kv-bench's key format and random numbers.
#include "tools/bench/workload.h"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace raftkv::bench {
namespace {

std::string key(uint64_t index, size_t size) {
  std::string k(size, '?');
  format_key(index, k.data(), k.size());
  return k;
}

TEST(Workload, KeysAreZeroPaddedToTheSize) {
  EXPECT_EQ(key(42, 16), "k000000000000042");
  EXPECT_EQ(key(0, 16), "k000000000000000");
  EXPECT_EQ(key(99999, 6), "k99999");
  EXPECT_EQ(key(7, 2), "k7");
}

TEST(Workload, MinKeySizeFitsTheLargestIndex) {
  EXPECT_EQ(min_key_size(1), 2u);
  EXPECT_EQ(min_key_size(10), 2u);
  EXPECT_EQ(min_key_size(11), 3u);
  EXPECT_EQ(min_key_size(100000), 6u);
  EXPECT_EQ(min_key_size(100001), 7u);
  EXPECT_EQ(min_key_size(UINT64_MAX), 21u);
}

TEST(Workload, KeysOfOneSizeAreDistinct) {
  std::set<std::string> seen;
  for (uint64_t i = 0; i < 1000; ++i)
    EXPECT_TRUE(seen.insert(key(i, min_key_size(1000))).second);
}

TEST(Workload, BelowStaysInRangeAndCoversIt) {
  Rng rng(7);
  std::vector<int> hits(10);
  for (int i = 0; i < 10000; ++i) {
    uint64_t v = rng.below(10);
    ASSERT_LT(v, 10u);
    ++hits[v];
  }
  for (int h : hits)
    EXPECT_GT(h, 800);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(rng.below(1), 0u);
  int heads = 0;
  for (int i = 0; i < 1000; ++i) heads += rng.chance(0.5) ? 1 : 0;
  EXPECT_GT(heads, 400);
  EXPECT_LT(heads, 600);
}

// Each closed-loop client draws its own keys: no client repeats another's
// sequence (shifted or not), so a put benchmark writes as many distinct
// keys as it says.
TEST(Workload, ClientsDrawIndependentKeys) {
  std::set<uint64_t> seen;
  const uint64_t clients = 64, draws = 100;
  for (uint64_t c = 0; c < clients; ++c) {
    Rng rng = client_rng(42, c);
    for (uint64_t k = 0; k < draws; ++k)
      seen.insert(rng.below(uint64_t{1} << 40));
  }
  EXPECT_EQ(seen.size(), clients * draws);
}

}  // namespace
}  // namespace raftkv::bench
