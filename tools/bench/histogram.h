// A log-linear latency histogram in the manner of HdrHistogram, for
// kv-bench. Values are unsigned integers (kv-bench records microseconds).
//
// Buckets: values below 2 * kSubCount (256) have a bucket each (exact); above
// that, every power-of-two range [2^k, 2^(k+1)) is split into kSubCount (128)
// equal buckets of width 2^(k-7). So a bucket's width is at most 1/128 of its
// lowest value, and a value is reported as the middle of its bucket: a
// reported quantile is within 1/256 (0.4%) of the exact sample of that rank.
// Values above kMaxTrackable (2^37 - 1, about 38 hours in microseconds) are
// counted in the top bucket. count, min, max and the sum are kept exactly.
//
// Recording is O(1) and allocation-free. Not thread-safe: one thread records
// (kv-bench: the clerk's I/O thread); others read only after synchronizing
// with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace raftkv::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSubCount = uint64_t{1} << kSubBits;
  static constexpr int kMaxBits = 37;
  static constexpr uint64_t kMaxTrackable = (uint64_t{1} << kMaxBits) - 1;
  // Buckets [0, 2 * kSubCount) have width 1; then kSubCount per power of two.
  static constexpr size_t kBuckets = (kMaxBits - kSubBits + 1) * kSubCount;

  Histogram();

  void record(uint64_t value);
  // Adds every sample of `other` (as if each had been recorded here).
  void merge(const Histogram& other);
  void reset();

  uint64_t count() const { return count_; }
  // 0 when empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const;

  // The value of nearest rank for quantile q in [0, 1]: the sample of rank
  // max(1, ceil(q * count)) in ascending order, approximated as above and
  // clamped to [min, max]; rank 1 is the exact min and rank count the exact
  // max. 0 when empty.
  uint64_t value_at_quantile(double q) const;

  // Bucket geometry, exposed for tests: bucket_index(v) is the bucket of v
  // (v <= kMaxTrackable); a bucket holds [bucket_low(i), bucket_low(i) +
  // bucket_width(i)).
  static size_t bucket_index(uint64_t value);
  static uint64_t bucket_low(size_t index);
  static uint64_t bucket_width(size_t index);

 private:
  std::vector<uint64_t> counts_;  // kBuckets entries
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;  // UINT64_MAX while empty
  uint64_t max_ = 0;
  uint64_t sum_ = 0;  // wraps only after ~1.8e19 µs in total
};

}  // namespace raftkv::bench
