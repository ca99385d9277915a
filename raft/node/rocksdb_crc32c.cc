// Hardware CRC-32C for RocksDB's own checksums (WAL records, checksum
// handoff, block trailers when a table asks for CRC-32C).
//
// Debian builds RocksDB for generic x86-64 without HAVE_SSE42, so its
// crc32c::Extend always takes the table-driven path ("Fast CRC32 supported:
// Not supported on x86" in every LOG). Every byte the log store writes goes
// through it once per node: 4.2% of all server CPU under saturating puts
// (docs/PERFORMANCE.md). The link option --wrap (raft/node/CMakeLists.txt)
// sends RocksDB's calls to Extend here instead, where the CRC32 instruction
// is picked at run time (schema/crc32c.cc). Same function, same results:
// tests/storage/rocksdb_crc32c_test.cc checks it against RocksDB's own on
// 5000 inputs. (That the wrap is in effect is a matter of speed, not of
// results: `objdump -d raftkv-server` shows RocksDB calling the wrapper.)
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "schema/crc32c.h"

// The mangled name of rocksdb::crc32c::Extend(uint32_t, const char*, size_t);
// RocksDB's other objects call it through an undefined reference, which is
// what --wrap redirects (calls from inside RocksDB's crc32c.o would not be).
uint32_t raftkv_wrapped_rocksdb_crc32c_extend(uint32_t crc, const char* data, size_t size) asm(
    "__wrap__ZN7rocksdb6crc32c6ExtendEjPKcm");

uint32_t raftkv_wrapped_rocksdb_crc32c_extend(uint32_t crc, const char* data, size_t size) {
  return raftkv::wire::crc32c_extend(crc, std::string_view(data, size));
}
