// The histogram's quantiles against the exact nearest-rank quantiles of the
// same samples: within 1/256 relative error, exact below 256, exact max.
#include "tools/bench/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace raftkv::bench {
namespace {

// Quantiles in parts per million, so the exact rank needs no floating point.
constexpr uint64_t kQuantilesPpm[] = {0,      1,      10000,  250000, 500000,
                                      900000, 990000, 999000, 999900, 1000000};

// The sample of rank max(1, ceil(q * n)) of the sorted samples.
uint64_t exact_quantile(const std::vector<uint64_t>& sorted, uint64_t ppm) {
  uint64_t n = sorted.size();
  uint64_t rank = std::max<uint64_t>(1, (ppm * n + 999999) / 1000000);
  return sorted[rank - 1];
}

// Records `samples` and checks every quantile against the exact one.
void check_against_exact(std::vector<uint64_t> samples) {
  Histogram h;
  for (uint64_t v : samples)
    h.record(v);
  std::sort(samples.begin(), samples.end());
  ASSERT_EQ(h.count(), samples.size());
  EXPECT_EQ(h.min(), samples.front());
  EXPECT_EQ(h.max(), samples.back());
  for (uint64_t ppm : kQuantilesPpm) {
    uint64_t exact = exact_quantile(samples, ppm);
    uint64_t got = h.value_at_quantile(static_cast<double>(ppm) / 1e6);
    double err = std::abs(static_cast<double>(got) - static_cast<double>(exact));
    if (exact < 2 * Histogram::kSubCount) {
      EXPECT_EQ(got, exact) << "ppm " << ppm;
    } else {
      EXPECT_LE(err, static_cast<double>(exact) / 256.0) << "ppm " << ppm << " exact " << exact;
    }
  }
  EXPECT_EQ(h.value_at_quantile(1.0), samples.back());
}

TEST(Histogram, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.value_at_quantile(0.0), 0u);
  EXPECT_EQ(h.value_at_quantile(0.5), 0u);
  EXPECT_EQ(h.value_at_quantile(1.0), 0u);
}

TEST(Histogram, OneSampleIsExact) {
  Histogram h;
  h.record(123457);
  EXPECT_EQ(h.value_at_quantile(0.0), 123457u);
  EXPECT_EQ(h.value_at_quantile(0.5), 123457u);
  EXPECT_EQ(h.value_at_quantile(1.0), 123457u);
  EXPECT_EQ(h.min(), 123457u);
  EXPECT_EQ(h.max(), 123457u);
  EXPECT_DOUBLE_EQ(h.mean(), 123457.0);
}

TEST(Histogram, NearestRankOnOneToThousand) {
  Histogram h;
  for (uint64_t v = 1; v <= 1000; ++v)
    h.record(v);
  // Values up to 255 are exact; above, within 1/256.
  EXPECT_EQ(h.value_at_quantile(0.0), 1u);
  EXPECT_EQ(h.value_at_quantile(0.001), 1u);
  EXPECT_EQ(h.value_at_quantile(0.1), 100u);
  EXPECT_EQ(h.value_at_quantile(0.25), 250u);
  EXPECT_NEAR(static_cast<double>(h.value_at_quantile(0.5)), 500, 500 / 256.0);
  EXPECT_NEAR(static_cast<double>(h.value_at_quantile(0.999)), 999, 999 / 256.0);
  EXPECT_EQ(h.value_at_quantile(1.0), 1000u);
  EXPECT_DOUBLE_EQ(h.mean(), 500.5);
}

TEST(Histogram, SmallValuesAreExact) {
  std::vector<uint64_t> samples;
  for (uint64_t v = 0; v < 256; ++v)
    for (uint64_t k = 0; k <= v % 7; ++k)
      samples.push_back(v);
  check_against_exact(samples);
}

TEST(Histogram, ConstantDistributionIsExact) {
  Histogram h;
  for (int i = 0; i < 1000; ++i)
    h.record(987654);
  for (uint64_t ppm : kQuantilesPpm)
    EXPECT_EQ(h.value_at_quantile(static_cast<double>(ppm) / 1e6), 987654u);
}

TEST(Histogram, UniformMatchesExact) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<uint64_t> d(0, 1'000'000);
  std::vector<uint64_t> samples(200'000);
  for (auto& v : samples)
    v = d(rng);
  check_against_exact(samples);
}

TEST(Histogram, LogNormalLatenciesMatchExact) {
  // Around 2 ms with a long tail: microseconds to seconds.
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(std::log(2000.0), 1.5);
  std::vector<uint64_t> samples(200'000);
  for (auto& v : samples)
    v = static_cast<uint64_t>(d(rng));
  check_against_exact(samples);
}

TEST(Histogram, BimodalMatchesExact) {
  // 99% fast (~500 µs), 1% at a 5 s timeout: p99.9 must land in the slow mode.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> fast(500, 50);
  std::vector<uint64_t> samples;
  for (int i = 0; i < 100'000; ++i)
    samples.push_back(i % 100 == 0 ? 5'000'000 + static_cast<uint64_t>(i % 1000)
                                   : static_cast<uint64_t>(std::max(0.0, fast(rng))));
  check_against_exact(samples);
  Histogram h;
  for (uint64_t v : samples)
    h.record(v);
  EXPECT_GT(h.value_at_quantile(0.999), 4'900'000u);
  EXPECT_LT(h.value_at_quantile(0.98), 1'000u);
}

TEST(Histogram, HundredSecondsWithinError) {
  std::vector<uint64_t> samples = {100'000'000, 99'999'999, 1, 134'217'727, 50'000'001};
  check_against_exact(samples);
}

TEST(Histogram, MaxIsExactEvenBeyondTheTrackableRange) {
  Histogram h;
  h.record(5);
  h.record(Histogram::kMaxTrackable + 12345);
  EXPECT_EQ(h.max(), Histogram::kMaxTrackable + 12345);
  EXPECT_EQ(h.value_at_quantile(1.0), Histogram::kMaxTrackable + 12345);
  EXPECT_EQ(h.value_at_quantile(0.5), 5u);
}

TEST(Histogram, BucketsTileTheRangeWithBoundedWidth) {
  uint64_t next_low = 0;
  for (size_t i = 0; i < Histogram::kBuckets; ++i) {
    uint64_t low = Histogram::bucket_low(i), width = Histogram::bucket_width(i);
    ASSERT_EQ(low, next_low) << "bucket " << i;
    ASSERT_EQ(Histogram::bucket_index(low), i);
    ASSERT_EQ(Histogram::bucket_index(low + width - 1), i);
    if (low >= 2 * Histogram::kSubCount) {
      ASSERT_LE(width * Histogram::kSubCount, low);
    }
    next_low = low + width;
  }
  EXPECT_EQ(next_low, Histogram::kMaxTrackable + 1);
  EXPECT_EQ(Histogram::bucket_index(UINT64_MAX), Histogram::kBuckets - 1);
}

TEST(Histogram, QuantilesAreMonotonic) {
  std::mt19937_64 rng(4);
  std::exponential_distribution<double> d(1.0 / 3000);
  Histogram h;
  for (int i = 0; i < 50'000; ++i)
    h.record(static_cast<uint64_t>(d(rng)));
  uint64_t prev = 0;
  for (int ppm = 0; ppm <= 1'000'000; ppm += 1000) {
    uint64_t v = h.value_at_quantile(ppm / 1e6);
    EXPECT_GE(v, prev);
    prev = v;
  }
}

TEST(Histogram, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(5);
  std::lognormal_distribution<double> d(std::log(10000.0), 1.0);
  Histogram a, b, all;
  for (int i = 0; i < 20'000; ++i) {
    uint64_t v = static_cast<uint64_t>(d(rng));
    (i % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  Histogram empty;
  a.merge(b);
  a.merge(empty);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_DOUBLE_EQ(a.mean(), all.mean());
  for (uint64_t ppm : kQuantilesPpm) {
    double q = static_cast<double>(ppm) / 1e6;
    EXPECT_EQ(a.value_at_quantile(q), all.value_at_quantile(q));
  }
  empty.merge(all);
  EXPECT_EQ(empty.min(), all.min());
  EXPECT_EQ(empty.value_at_quantile(0.5), all.value_at_quantile(0.5));
}

TEST(Histogram, ResetEmpties) {
  Histogram h;
  h.record(42);
  h.record(4242);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.value_at_quantile(0.5), 0u);
  h.record(7);
  EXPECT_EQ(h.min(), 7u);
  EXPECT_EQ(h.value_at_quantile(0.5), 7u);
}

}  // namespace
}  // namespace raftkv::bench
