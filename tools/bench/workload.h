// kv-bench's keys and random numbers: allocation-free, one instance per
// client, so the hot path takes no lock.
#pragma once

#include <cstddef>
#include <cstdint>

#include "raft/core/random.h"

namespace raftkv::bench {

// The core's splitmix64 generator: small state, fast, good enough to pick
// keys and operations.
using Rng = raft::Rng;

// Client number `client`'s generator. Independent streams: seeding with
// seed + client * (the generator's own increment) would make each client's
// stream the previous one's shifted by one draw (same keys, one step apart).
inline Rng client_rng(uint64_t seed, uint64_t client) {
  return Rng(Rng(seed ^ (client * 0xd1342543de82ef95ULL)).next());
}

// Decimal digits of n (1 for 0).
inline size_t decimal_digits(uint64_t n) {
  size_t d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

// The smallest key size for a key space of `keys` keys (keys >= 1): "k" and
// the digits of the largest index.
inline size_t min_key_size(uint64_t keys) {
  return 1 + decimal_digits(keys - 1);
}

// Writes key number `index` into out[0, size): "k" then the index in decimal,
// zero-padded to fill the size ("k000000000000042" for size 16). Requires
// size >= 1 + decimal_digits(index); all keys of one size are distinct.
inline void format_key(uint64_t index, char* out, size_t size) {
  out[0] = 'k';
  for (size_t i = size; i > 1; --i) {
    out[i - 1] = static_cast<char>('0' + index % 10);
    index /= 10;
  }
}

}  // namespace raftkv::bench
