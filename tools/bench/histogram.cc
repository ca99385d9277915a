#include "tools/bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace raftkv::bench {

Histogram::Histogram() : counts_(kBuckets, 0) {}

// With shift = max(0, msb(v) - kSubBits), v >> shift lies in [kSubCount,
// 2 * kSubCount) (or below kSubCount when shift is 0), and the buckets of one
// shift follow those of the previous one without a gap.
size_t Histogram::bucket_index(uint64_t value) {
  value = std::min(value, kMaxTrackable);
  int msb = std::bit_width(value) - 1;  // -1 for 0
  int shift = std::max(0, msb - kSubBits);
  return static_cast<size_t>(shift) * kSubCount + (value >> shift);
}

uint64_t Histogram::bucket_low(size_t index) {
  int shift = index < 2 * kSubCount ? 0 : static_cast<int>(index / kSubCount) - 1;
  return (index - static_cast<size_t>(shift) * kSubCount) << shift;
}

uint64_t Histogram::bucket_width(size_t index) {
  int shift = index < 2 * kSubCount ? 0 : static_cast<int>(index / kSubCount) - 1;
  return uint64_t{1} << shift;
}

void Histogram::record(uint64_t value) {
  ++counts_[bucket_index(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += value;
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < kBuckets; ++i)
    counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
}

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
}

uint64_t Histogram::value_at_quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The relative nudge keeps a product such as 0.999 * 1000 that rounds up to
  // 999.0000000000001 at rank 999.
  double r = q * static_cast<double>(count_) * (1 - 1e-12);
  uint64_t rank = std::clamp<uint64_t>(static_cast<uint64_t>(std::ceil(r)), 1, count_);
  if (rank == count_) return max_;  // the extremes are kept exactly
  if (rank == 1) return min_;
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      uint64_t mid = bucket_low(i) + bucket_width(i) / 2;
      return std::clamp(mid, min(), max_);
    }
  }
  return max_;  // unreachable: the counts add up to count_
}

}  // namespace raftkv::bench
