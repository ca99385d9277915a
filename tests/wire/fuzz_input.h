// The layout of a frame_fuzz input, shared by the target and the seed
// generator:
//
//   [u8 chunk seed][u8 flags][stream bytes]
//
// The chunk seed picks the sizes of the pieces the stream is fed in. Flag
// kFixChecksums makes the target rewrite each frame's crc32c before feeding
// it; without that, almost every mutation of a payload would stop at the
// checksum and the decoders behind it would never see the mutated bytes.
// Flag kSmallLimit decodes with a 4 KiB frame limit instead of the default.
// Flag kMisalign hands the decoders the whole stream as one payload at an
// odd address, exercising the copy that realigns bodies.
#pragma once

#include <cstddef>
#include <cstdint>

namespace raftkv::wire::fuzz {

inline constexpr uint8_t kFixChecksums = 1;
inline constexpr uint8_t kSmallLimit = 2;
inline constexpr uint8_t kMisalign = 4;
inline constexpr size_t kInputHeaderBytes = 2;

}  // namespace raftkv::wire::fuzz
