#include "raft/node/snapshot_files.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "raft/core/check.h"
#include "raft/node/fail_stop.h"
#include "raft/node/log_line.h"

namespace raftkv::raft {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kIncoming = "incoming.tmp";
constexpr size_t kWriteBufferBytes = size_t{1} << 20;
// A failed outgoing write (a full disk, say) is tried again no sooner than this.
constexpr auto kRetryAfterFailure = std::chrono::seconds(1);

std::string errno_text() {
  return std::strerror(errno);
}

// Writes all of [data, data + n) at `offset`; false (errno set) on failure.
bool write_at(int fd, const char* data, size_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

void sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) fail_stop(fmt::format("syncing {}: {}", dir, errno_text()));
  ::close(fd);
}

struct Cancelled {};

// An ImageOut on a file, buffered; append() throws Cancelled once `cancel`
// is set, so a write for a view nobody needs any more stops early.
class FileImageOut final : public ImageOut {
 public:
  FileImageOut(int fd, std::string path, const std::atomic<bool>& cancel)
      : fd_(fd), path_(std::move(path)), cancel_(cancel) {}

  void append(std::string_view bytes) override {
    if (cancel_.load(std::memory_order_relaxed)) throw Cancelled{};
    buf_.append(bytes);
    if (buf_.size() >= kWriteBufferBytes) flush();
  }
  void overwrite(uint64_t offset, std::string_view bytes) override {
    RAFTKV_CHECK(offset + bytes.size() <= size());
    while (!bytes.empty() && offset < flushed_) {
      size_t n = std::min<uint64_t>(bytes.size(), flushed_ - offset);
      if (!write_at(fd_, bytes.data(), n, offset)) throw io_error();
      bytes.remove_prefix(n);
      offset += n;
    }
    if (!bytes.empty()) buf_.replace(offset - flushed_, bytes.size(), bytes);
  }
  uint64_t size() const override { return flushed_ + buf_.size(); }

  void flush() {
    if (!write_at(fd_, buf_.data(), buf_.size(), flushed_)) throw io_error();
    flushed_ += buf_.size();
    buf_.clear();
  }

 private:
  std::runtime_error io_error() const {
    return std::runtime_error(fmt::format("writing {}: {}", path_, errno_text()));
  }
  int fd_;
  std::string path_;
  const std::atomic<bool>& cancel_;
  std::string buf_;
  uint64_t flushed_ = 0;
};

}  // namespace

std::optional<Bytes> map_file(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = fmt::format("opening {}: {}", path, errno_text());
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    *error = fmt::format("reading the size of {}: {}", path, errno_text());
    ::close(fd);
    return std::nullopt;
  }
  size_t len = static_cast<size_t>(st.st_size);
  if (len == 0) {
    ::close(fd);
    return Bytes::viewing(std::make_shared<const char>('\0'), {});  // an owner, as for any file
  }
  void* addr = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int mmap_errno = errno;
  ::close(fd);  // the mapping keeps the file
  if (addr == MAP_FAILED) {
    *error = fmt::format("mapping {}: {}", path, std::strerror(mmap_errno));
    return std::nullopt;
  }
  ::madvise(addr, len, MADV_SEQUENTIAL);
  std::shared_ptr<const void> owner(addr,
                                    [len](const void* p) { ::munmap(const_cast<void*>(p), len); });
  return Bytes::viewing(owner, std::string_view(static_cast<const char*>(addr), len));
}

struct SnapshotFiles::Impl {
  std::string dir;

  // Follower: the open incoming image.
  int incoming_fd = -1;
  uint64_t incoming_size = 0;

  // Leader: the outgoing image. The worker sets `image` or `error` and
  // clears `running` under `mu`; the rest is the Raft thread's.
  std::thread worker;
  std::atomic<bool> cancel{false};
  std::mutex mu;
  bool started = false;
  Index index;
  bool running = false;
  // The written image, held until handed out once, then only watched: its
  // mapping (and the blocks of its unlinked file) go with the last chunk or
  // Progress that views it, not with this cache.
  std::optional<Bytes> image;
  std::weak_ptr<const void> handed_out;
  std::string_view handed_out_view;
  std::chrono::steady_clock::time_point retry_at;

  std::string path(std::string_view name) const { return dir + "/" + std::string(name); }

  void stop_worker() {
    cancel = true;
    if (worker.joinable()) worker.join();
    cancel = false;
  }

  void write_outgoing(Index at, const ImageWriter& write) {
    auto started_at = std::chrono::steady_clock::now();
    std::string tmp = path(fmt::format("outgoing-{}.tmp", at));
    std::optional<Bytes> done;
    std::string error;
    int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) {
      error = fmt::format("creating {}: {}", tmp, errno_text());
    } else {
      try {
        FileImageOut out(fd, tmp, cancel);
        write(out);
        out.flush();
        done = map_file(tmp, &error);
      } catch (const Cancelled&) {
        error = "abandoned";
      } catch (const std::exception& e) {
        error = e.what();
      }
      ::close(fd);
      // Mapped (or failed): the name is no longer needed; the blocks are
      // freed when the last chunk that views them is gone.
      ::unlink(tmp.c_str());
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started_at)
                  .count();
    if (done) {
      log_line("raft", fmt::format("snapshot image at index {} written for followers: {} bytes "
                                   "in {} ms",
                                   at, done->size(), ms));
    } else if (error != "abandoned") {
      log_line("raft", fmt::format("cannot write the snapshot image at index {} for followers: "
                                   "{} (will retry)",
                                   at, error));
    }
    std::lock_guard lock(mu);
    running = false;
    image = std::move(done);
    retry_at = std::chrono::steady_clock::now() + kRetryAfterFailure;
  }
};

SnapshotFiles::SnapshotFiles(std::string dir) : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  std::error_code ec;
  fs::create_directories(impl_->dir, ec);
  if (ec) fail_stop(fmt::format("creating {}: {}", impl_->dir, ec.message()));
  // A partial incoming image is useless after a restart (the core starts
  // every transfer over), and outgoing images are rewritten when needed.
  for (const fs::directory_entry& e : fs::directory_iterator(impl_->dir, ec)) {
    std::string name = e.path().filename().string();
    if (name == kIncoming || (name.starts_with("outgoing-") && name.ends_with(".tmp"))) {
      fs::remove(e.path(), ec);
    }
  }
  if (ec) fail_stop(fmt::format("cleaning {}: {}", impl_->dir, ec.message()));
}

SnapshotFiles::~SnapshotFiles() {
  impl_->stop_worker();
  if (impl_->incoming_fd >= 0) ::close(impl_->incoming_fd);
}

const std::string& SnapshotFiles::dir() const {
  return impl_->dir;
}

void SnapshotFiles::write_chunk(const SnapshotChunk& chunk) {
  Impl& m = *impl_;
  std::string path = m.path(kIncoming);
  if (chunk.offset == 0) {
    if (m.incoming_fd >= 0) ::close(m.incoming_fd);
    m.incoming_fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (m.incoming_fd < 0) fail_stop(fmt::format("creating {}: {}", path, errno_text()));
    m.incoming_size = 0;
  }
  RAFTKV_CHECK_MSG(m.incoming_fd >= 0 && chunk.offset == m.incoming_size,
                   "snapshot chunks must be written in order");
  std::string_view data = chunk.data.view();
  if (!write_at(m.incoming_fd, data.data(), data.size(), chunk.offset)) {
    fail_stop(fmt::format("writing {}: {}", path, errno_text()));
  }
  m.incoming_size += data.size();
}

std::string SnapshotFiles::seal(Index index) {
  Impl& m = *impl_;
  RAFTKV_CHECK_MSG(m.incoming_fd >= 0, "sealing a snapshot image that was never received");
  std::string from = m.path(kIncoming);
  std::string to = installed_path(index);
  if (::fdatasync(m.incoming_fd) != 0) fail_stop(fmt::format("syncing {}: {}", from, errno_text()));
  ::close(m.incoming_fd);
  m.incoming_fd = -1;
  if (::rename(from.c_str(), to.c_str()) != 0) {
    fail_stop(fmt::format("renaming {} to {}: {}", from, to, errno_text()));
  }
  sync_dir(m.dir);
  return to;
}

std::string SnapshotFiles::installed_path(Index index) const {
  return impl_->path(fmt::format("installed-{}.img", index));
}

void SnapshotFiles::remove_installed(Index up_to) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(impl_->dir, ec)) {
    std::string name = e.path().filename().string();
    uint64_t index = 0;
    if (std::sscanf(name.c_str(), "installed-%" SCNu64 ".img", &index) == 1 &&
        index <= up_to.value) {
      fs::remove(e.path(), ec);
    }
  }
  if (ec) log_line("raft", fmt::format("cannot clean {}: {}", impl_->dir, ec.message()));
}

std::optional<Bytes> SnapshotFiles::outgoing(Index index,
                                             const std::function<ImageWriter()>& make_writer) {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.started && m.index == index) {
      if (m.image) {
        Bytes b = std::move(*m.image);
        m.image.reset();
        m.handed_out = b.owner();
        m.handed_out_view = b.view();
        return b;
      }
      if (auto owner = m.handed_out.lock()) return Bytes::viewing(owner, m.handed_out_view);
      // Failed (or handed out and since released): write it again.
      if (m.running || std::chrono::steady_clock::now() < m.retry_at) return std::nullopt;
    }
  }
  m.stop_worker();  // a write for another index, or a failed one, ends here
  ImageWriter write = make_writer();
  RAFTKV_CHECK_MSG(write != nullptr, "a durable state machine must write its pinned image");
  {
    std::lock_guard lock(m.mu);
    m.started = true;
    m.index = index;
    m.running = true;
    m.image.reset();
    m.handed_out.reset();
  }
  log_line("raft",
           fmt::format("writing the snapshot image at index {} for a lagging follower", index));
  m.worker = std::thread([&m, index, write = std::move(write)] {
    pthread_setname_np(pthread_self(), "raftkv-snapshot");
    m.write_outgoing(index, write);
  });
  return std::nullopt;
}

void SnapshotFiles::forget_outgoing() {
  Impl& m = *impl_;
  m.stop_worker();
  std::lock_guard lock(m.mu);
  m.started = false;
  m.image.reset();
  m.handed_out.reset();
}

}  // namespace raftkv::raft
