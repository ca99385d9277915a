#include "tests/cli/cli_process.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace raftkv::test {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms < 0 ? 0 : static_cast<int>(ms);
}

// argv and envp built before fork(), so the child only calls exec.
struct ExecArgs {
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;

  ExecArgs(const std::vector<std::string>& user_args, std::string_view term) {
    args.push_back(KV_CLI_PATH);
    args.insert(args.end(), user_args.begin(), user_args.end());
    for (char** e = environ; *e != nullptr; ++e)
      if (std::strncmp(*e, "TERM=", 5) != 0) env.emplace_back(*e);
    if (!term.empty()) env.push_back("TERM=" + std::string(term));
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

// Waits for pid until the deadline, then kills it. -1 when it had to be killed.
int reap(pid_t pid, Clock::time_point deadline) {
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return -1;
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

pid_t spawn_with_pipes(const std::vector<std::string>& user_args, int* in, int* out, int* err) {
  int pin[2], pout[2], perr[2];
  if (::pipe2(pin, O_CLOEXEC) != 0 || ::pipe2(pout, O_CLOEXEC) != 0 ||
      ::pipe2(perr, O_CLOEXEC) != 0)
    std::abort();
  ExecArgs ea(user_args, "");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pin[0], 0);
    ::dup2(pout[1], 1);
    ::dup2(perr[1], 2);
    ::execve(ea.argv[0], ea.argv.data(), ea.envp.data());
    ::_exit(127);
  }
  ::close(pin[0]);
  ::close(pout[1]);
  ::close(perr[1]);
  *in = pin[1];
  *out = pout[0];
  *err = perr[0];
  return pid;
}

// Appends what fd has now; false at end of file.
bool read_some(int fd, std::string* into) {
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into->append(buf, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;  // 0: end of file; EIO: a pty whose other side is closed
  }
}

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the reader is gone; the test sees it in the output
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

CliResult run_cli(const std::vector<std::string>& args, std::string_view input, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int in = -1, out = -1, err = -1;
  pid_t pid = spawn_with_pipes(args, &in, &out, &err);
  ::fcntl(in, F_SETFL, O_NONBLOCK);
  CliResult r;
  if (input.empty()) {
    ::close(in);
    in = -1;
  }
  while (out >= 0 || err >= 0) {
    pollfd p[3] = {{out, POLLIN, 0}, {err, POLLIN, 0}, {in, POLLOUT, 0}};
    int rc = ::poll(p, 3, remaining_ms(deadline));
    if (rc == 0) break;
    if (rc < 0) continue;
    if (p[0].revents && !read_some(out, &r.out)) {
      ::close(out);
      out = -1;
    }
    if (p[1].revents && !read_some(err, &r.err)) {
      ::close(err);
      err = -1;
    }
    if (p[2].revents) {
      ssize_t n = ::write(in, input.data(), input.size());
      if (n > 0) input.remove_prefix(static_cast<size_t>(n));
      if (n < 0 && errno != EAGAIN && errno != EINTR) input = {};
      if (input.empty()) {
        ::close(in);
        in = -1;
      }
    }
  }
  for (int fd : {in, out, err})
    if (fd >= 0) ::close(fd);
  r.exit_code = reap(pid, deadline);
  return r;
}

PipedCli::PipedCli(const std::vector<std::string>& args) {
  pid_ = spawn_with_pipes(args, &in_, &out_, &err_);
}

PipedCli::~PipedCli() {
  for (int fd : {in_, out_, err_})
    if (fd >= 0) ::close(fd);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void PipedCli::send(std::string_view bytes) {
  write_all(in_, bytes);
}

std::optional<std::string> PipedCli::read_line(int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (out_ < 0) return std::nullopt;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return std::nullopt;
    if (!read_some(out_, &buffer_)) {
      ::close(out_);
      out_ = -1;
    }
  }
}

void PipedCli::close_stdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

int PipedCli::wait(std::string* rest, std::string* err, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  close_stdin();
  while (out_ >= 0 || err_ >= 0) {
    pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    int rc = ::poll(p, 2, remaining_ms(deadline));
    if (rc == 0) break;
    if (rc < 0) continue;
    if (p[0].revents && !read_some(out_, &buffer_)) {
      ::close(out_);
      out_ = -1;
    }
    if (p[1].revents && !read_some(err_, err)) {
      ::close(err_);
      err_ = -1;
    }
  }
  *rest = std::move(buffer_);
  buffer_.clear();
  int code = reap(pid_, deadline);
  pid_ = -1;
  return code;
}

PtyCli::PtyCli(const std::vector<std::string>& args) {
  ExecArgs ea(args, "dumb");
  winsize ws{};
  ws.ws_row = 24;
  ws.ws_col = 100;
  pid_ = ::forkpty(&master_, nullptr, nullptr, &ws);
  if (pid_ < 0) std::abort();
  if (pid_ == 0) {
    ::execve(ea.argv[0], ea.argv.data(), ea.envp.data());
    ::_exit(127);
  }
}

PtyCli::~PtyCli() {
  if (master_ >= 0) ::close(master_);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void PtyCli::send(std::string_view keys) {
  write_all(master_, keys);
}

bool PtyCli::expect(std::string_view needle, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t at = transcript_.find(needle, cursor_);
    if (at != std::string::npos) {
      last_text_ = transcript_.substr(cursor_, at + needle.size() - cursor_);
      cursor_ = at + needle.size();
      return true;
    }
    if (master_ < 0) return false;
    pollfd p{master_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) return false;
    if (!read_some(master_, &transcript_)) {
      ::close(master_);
      master_ = -1;
    }
  }
}

int PtyCli::wait(int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // Drain the terminal so the child never blocks on a full pty buffer.
  while (master_ >= 0) {
    pollfd p{master_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) break;
    if (!read_some(master_, &transcript_)) {
      ::close(master_);
      master_ = -1;
    }
  }
  int code = reap(pid_, deadline);
  pid_ = -1;
  return code;
}

}  // namespace raftkv::test
