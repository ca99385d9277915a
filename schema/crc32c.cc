#include "schema/crc32c.h"

#include <array>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace raftkv::wire {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, bit-reversed

// Slicing-by-8 tables. kTables[0] is the classic byte-at-a-time table;
// kTables[k][b] is the CRC of byte b followed by k zero bytes, which lets the
// main loop fold eight input bytes with eight independent lookups.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables make_tables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit)
      c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    t[0][b] = c;
  }
  for (size_t k = 1; k < t.size(); ++k) {
    for (size_t b = 0; b < 256; ++b)
      t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}

constexpr Tables kTables = make_tables();

// Little-endian load, whatever the host order and alignment; compilers turn
// it into one load on x86-64 and arm64.
uint32_t load_le32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

uint32_t crc32c_tables(uint32_t crc, std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint32_t lo = c ^ load_le32(p);
    const uint32_t hi = load_le32(p + 4);
    c = kTables[7][lo & 0xff] ^ kTables[6][(lo >> 8) & 0xff] ^ kTables[5][(lo >> 16) & 0xff] ^
        kTables[4][lo >> 24] ^ kTables[3][hi & 0xff] ^ kTables[2][(hi >> 8) & 0xff] ^
        kTables[1][(hi >> 16) & 0xff] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = kTables[0][(c ^ *p) & 0xff] ^ (c >> 8);
    ++p;
    --n;
  }
  return ~c;
}

// A wrong polynomial or reflection shows up here at compile time: entry 1 of
// the well-known CRC-32C lookup table.
static_assert(kTables[0][1] == 0xF26B8303);

#if defined(__x86_64__)
// Three chains at once. The CRC32 instruction takes 3 cycles but can start
// every cycle, so one dependent chain uses a third of it. Long inputs go in
// blocks of three strands of kStrandBytes: each strand runs on its own
// register (the first from the running CRC, the others from zero), and the
// three are joined by shifting a register over the strands after it.
constexpr size_t kStrandBytes = 256;

// The CRC register after `n` zero bytes, starting from `c` (no inversion).
constexpr uint32_t after_zeros(uint32_t c, size_t n) {
  for (size_t i = 0; i < n; ++i)
    c = kTables[0][c & 0xff] ^ (c >> 8);
  return c;
}

// after_zeros(c, kStrandBytes) is linear in c over GF(2), so it is the XOR
// of one table entry per byte of c: kShift[k][b] = after_zeros(b << 8k),
// built from the images of the 32 single bits.
using ShiftTables = std::array<std::array<uint32_t, 256>, 4>;

constexpr ShiftTables make_shift_tables() {
  std::array<uint32_t, 32> bit_image{};
  for (uint32_t i = 0; i < 32; ++i)
    bit_image[i] = after_zeros(uint32_t{1} << i, kStrandBytes);
  ShiftTables t{};
  for (uint32_t k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      for (uint32_t bit = 0; bit < 8; ++bit) {
        if ((b >> bit) & 1) t[k][b] ^= bit_image[8 * k + bit];
      }
    }
  }
  return t;
}

constexpr ShiftTables kShift = make_shift_tables();

uint32_t shift_over_strand(uint32_t c) {
  return kShift[0][c & 0xff] ^ kShift[1][(c >> 8) & 0xff] ^ kShift[2][(c >> 16) & 0xff] ^
         kShift[3][c >> 24];
}

uint64_t load_u64(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

// SSE4.2 has a CRC32C instruction, several times faster than the tables.
// Chosen at run time, so the build stays generic x86-64.
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, std::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t c = ~crc;
  while (n >= 3 * kStrandBytes) {
    uint64_t c1 = 0;
    uint64_t c2 = 0;
    for (size_t i = 0; i < kStrandBytes; i += 8) {
      c = _mm_crc32_u64(c, load_u64(p + i));
      c1 = _mm_crc32_u64(c1, load_u64(p + kStrandBytes + i));
      c2 = _mm_crc32_u64(c2, load_u64(p + 2 * kStrandBytes + i));
    }
    // Feeding A then B from register c equals after_zeros(c, |B|) XOR
    // (B fed from zero): the register update is linear.
    c = shift_over_strand(shift_over_strand(static_cast<uint32_t>(c)) ^ static_cast<uint32_t>(c1)) ^
        static_cast<uint32_t>(c2);
    p += 3 * kStrandBytes;
    n -= 3 * kStrandBytes;
  }
  while (n >= 8) {
    c = _mm_crc32_u64(c, load_u64(p));
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n)
    c32 = _mm_crc32_u8(c32, static_cast<unsigned char>(*p));
  return ~c32;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

uint32_t crc32c_extend(uint32_t crc, std::string_view data) {
#if defined(__x86_64__)
  if (kHaveSse42) return crc32c_sse42(crc, data);
#endif
  return crc32c_tables(crc, data);
}

uint32_t crc32c(std::string_view data) {
  return crc32c_extend(0, data);
}

}  // namespace raftkv::wire
