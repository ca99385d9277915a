// Helpers shared by the storage tests: temporary directories, entry
// builders, opening a store that must open, and byte surgery on files.
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "raft/node/rocks_log_store.h"

namespace raftkv::raft::testing {

// Polls `done` until it holds or a generous minute passes, for work that
// RocksDB finishes in the background (flushes, purges, deletions). The
// caller asserts on the state afterwards.
template <class Pred>
void wait_until(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// A fresh directory under the system temp dir, removed with its contents
// when the TempDir goes away.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "raftkv-storage-test-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // A path inside the directory that does not exist yet.
  std::string sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline Entry make_entry(uint64_t index, uint64_t term, std::string data = {}) {
  if (data.empty()) data = fmt::format("entry-{}-term-{}", index, term);
  return Entry{Term(term), Index(index), EntryType::kNormal, Bytes(std::move(data))};
}

// Entries [lo, hi] at `term`.
inline std::vector<Entry> make_entries(uint64_t lo, uint64_t hi, uint64_t term) {
  std::vector<Entry> out;
  for (uint64_t i = lo; i <= hi; ++i)
    out.push_back(make_entry(i, term));
  return out;
}

inline WriteRequest append_request(std::vector<Entry> entries) {
  WriteRequest req;
  req.entries = std::move(entries);
  return req;
}

inline std::unique_ptr<RocksLogStore> must_open(const std::string& dir,
                                                const RocksLogStoreOptions& options = {}) {
  OpenResult r = RocksLogStore::open(dir, options);
  EXPECT_TRUE(r.ok()) << r.error;
  return std::move(r.store);
}

inline std::vector<std::filesystem::path> files_with_extension(const std::filesystem::path& dir,
                                                               const std::string& ext) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::error_code gone;  // a file RocksDB deletes meanwhile is skipped
    if (e.is_regular_file(gone) && e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline void flip_byte(const std::filesystem::path& file, uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << file;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  ASSERT_TRUE(f.good()) << file << " offset " << offset;
  c = static_cast<char>(c ^ 0x5A);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
  ASSERT_TRUE(f.good());
}

}  // namespace raftkv::raft::testing
