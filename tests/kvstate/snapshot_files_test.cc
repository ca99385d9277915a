// SnapshotFiles: received images are written chunk by chunk and sealed
// durably under their index; outgoing images are written in the background
// and handed out as mapped files.
#include "raft/node/snapshot_files.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "tests/storage/storage_test_util.h"

namespace raftkv::raft {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

SnapshotChunk chunk(uint64_t index, uint64_t offset, std::string data) {
  return SnapshotChunk{SnapshotMeta{Index(index), Term(1), {}}, offset, Bytes(std::move(data))};
}

// Polls outgoing() the way the core does (at heartbeats) until it has the image.
std::optional<Bytes> wait_outgoing(SnapshotFiles& f, Index index,
                                   const std::function<ImageWriter()>& make) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto img = f.outgoing(index, make)) return img;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return std::nullopt;
}

TEST(SnapshotFiles, ReceivedChunksAreSealedUnderTheSnapshotIndex) {
  TempDir tmp;
  SnapshotFiles f(tmp.sub("snap"));
  f.write_chunk(chunk(7, 0, "stale"));
  f.write_chunk(chunk(9, 0, "abcd"));  // a new transfer discards the partial one
  f.write_chunk(chunk(9, 4, "efgh"));
  f.write_chunk(chunk(9, 8, "ij"));
  std::string path = f.seal(Index(9));
  EXPECT_EQ(path, f.installed_path(Index(9)));
  EXPECT_EQ(read_file(path), "abcdefghij");
  EXPECT_EQ(names_in(f.dir()), std::vector<std::string>{"installed-9.img"});
  std::string error;
  std::optional<Bytes> mapped = map_file(path, &error);
  ASSERT_TRUE(mapped) << error;
  EXPECT_EQ(mapped->view(), "abcdefghij");
  EXPECT_EQ(mapped->slice(2, 3).view(), "cde");

  f.remove_installed(Index(8));
  EXPECT_TRUE(fs::exists(path));
  f.remove_installed(Index(9));
  EXPECT_FALSE(fs::exists(path));
  // The mapping outlives the file's name.
  EXPECT_EQ(mapped->view(), "abcdefghij");
}

TEST(SnapshotFiles, AnEmptyImageIsSealedAndMapped) {
  TempDir tmp;
  SnapshotFiles f(tmp.sub("snap"));
  f.write_chunk(chunk(3, 0, ""));
  std::string error;
  std::optional<Bytes> mapped = map_file(f.seal(Index(3)), &error);
  ASSERT_TRUE(mapped) << error;
  EXPECT_TRUE(mapped->empty());
}

TEST(SnapshotFiles, MissingFileIsAnErrorNotACrash) {
  std::string error;
  EXPECT_FALSE(map_file("/nonexistent/raftkv/installed-1.img", &error));
  EXPECT_NE(error.find("/nonexistent/raftkv/installed-1.img"), std::string::npos) << error;
}

TEST(SnapshotFiles, RestartRemovesPartialFilesAndKeepsInstalledImages) {
  TempDir tmp;
  std::string dir = tmp.sub("snap");
  fs::create_directories(dir);
  for (const char* name : {"incoming.tmp", "outgoing-12.tmp", "installed-9.img"})
    std::ofstream(dir + "/" + name) << "x";
  SnapshotFiles f(dir);
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"installed-9.img"});
}

// A writer of `n` bytes of a repeating pattern, with an 8-byte count at the
// front filled in at the end, as KvStateMachine writes its images: with n
// over the file writer's buffer, the overwrite lands on flushed bytes.
ImageWriter pattern_writer(size_t n, std::atomic<int>* started = nullptr) {
  return [n, started](ImageOut& out) {
    if (started) ++*started;
    out.append(std::string(8, '\0'));
    std::string block;
    for (size_t i = 0; i < 4096; ++i)
      block.push_back(static_cast<char>('a' + i % 26));
    for (size_t done = 0; done < n;) {
      size_t k = std::min(block.size(), n - done);
      out.append(std::string_view(block).substr(0, k));
      done += k;
    }
    out.overwrite(0, "COUNT:ok");
  };
}

std::string pattern(size_t n) {
  std::string s = "COUNT:ok";
  for (size_t i = 0; i < n; ++i)
    s.push_back(static_cast<char>('a' + (i % 4096) % 26));
  return s;
}

TEST(SnapshotFiles, OutgoingImageIsWrittenInTheBackgroundThenMapped) {
  TempDir tmp;
  SnapshotFiles f(tmp.sub("snap"));
  std::atomic<int> started{0};
  const size_t n = (size_t{3} << 20) + 123;
  auto make = [&] { return pattern_writer(n, &started); };
  EXPECT_FALSE(f.outgoing(Index(5), make)) << "the first call only starts the write";
  std::optional<Bytes> img = wait_outgoing(f, Index(5), make);
  ASSERT_TRUE(img);
  EXPECT_EQ(started.load(), 1) << "later calls for the same index wait for the same write";
  EXPECT_TRUE(img->view() == pattern(n));
  // The file is unlinked once mapped: nothing is left to clean up.
  EXPECT_TRUE(names_in(f.dir()).empty());
  // Asking again returns the same image without writing it again.
  std::optional<Bytes> again = f.outgoing(Index(5), make);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->view().data(), img->view().data());
  EXPECT_EQ(started.load(), 1);
  // Once nothing views it any more, the mapping is gone (and with it the
  // unlinked file's blocks); a later request writes the image again.
  img.reset();
  again.reset();
  EXPECT_FALSE(f.outgoing(Index(5), make));
  ASSERT_TRUE(wait_outgoing(f, Index(5), make));
  EXPECT_EQ(started.load(), 2);
  // Leadership lost: a kept image is dropped.
  f.forget_outgoing();
  EXPECT_FALSE(f.outgoing(Index(5), make));
  ASSERT_TRUE(wait_outgoing(f, Index(5), make));
  EXPECT_EQ(started.load(), 3);
}

TEST(SnapshotFiles, AWriteForAnOlderIndexIsAbandoned) {
  TempDir tmp;
  SnapshotFiles f(tmp.sub("snap"));
  std::atomic<bool> old_cancelled{false};
  ImageWriter endless = [&](ImageOut& out) {
    try {
      for (;;) {
        out.append("x");
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    } catch (...) {
      old_cancelled = true;
      throw;
    }
  };
  EXPECT_FALSE(f.outgoing(Index(5), [&] { return endless; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto make = [] { return pattern_writer(1000); };
  std::optional<Bytes> img = wait_outgoing(f, Index(8), make);
  ASSERT_TRUE(img);
  EXPECT_TRUE(old_cancelled.load());
  EXPECT_TRUE(img->view() == pattern(1000));
}

TEST(SnapshotFiles, AFailedWriteIsRetried) {
  TempDir tmp;
  SnapshotFiles f(tmp.sub("snap"));
  std::atomic<int> calls{0};
  auto make = [&]() -> ImageWriter {
    return [&](ImageOut& out) {
      if (++calls == 1) throw std::runtime_error("disk full (simulated)");
      pattern_writer(100)(out);
    };
  };
  std::optional<Bytes> img = wait_outgoing(f, Index(4), make);
  ASSERT_TRUE(img);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_TRUE(img->view() == pattern(100));
}

TEST(SnapshotFiles, DestructionStopsAWriteInProgress) {
  TempDir tmp;
  auto started_at = std::chrono::steady_clock::now();
  {
    SnapshotFiles f(tmp.sub("snap"));
    EXPECT_FALSE(f.outgoing(Index(1), [] {
      return [](ImageOut& out) {
        for (;;) {
          out.append("y");
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      };
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started_at, std::chrono::seconds(20));
  EXPECT_TRUE(names_in(tmp.sub("snap")).empty());
}

}  // namespace
}  // namespace raftkv::raft
