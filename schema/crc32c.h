// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
// iSCSI, ext4 and RocksDB. It protects every frame's payload against
// corruption that TCP's 16-bit checksum lets through.
#pragma once

#include <cstdint>
#include <string_view>

namespace raftkv::wire {

// Checksum of `data`. crc32c("123456789") == 0xE3069283.
uint32_t crc32c(std::string_view data);

// Continues a checksum: crc32c_extend(crc32c(a), b) == crc32c(a + b).
uint32_t crc32c_extend(uint32_t crc, std::string_view data);

}  // namespace raftkv::wire
