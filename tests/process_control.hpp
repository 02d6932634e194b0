#pragma once
// Child processes for the tests that start, kill and restart programs (kill/kill_test.cpp,
// distributed/dist_test.cpp): fork + exec with extra environment variables and the output
// appended to files, waiting with or without a deadline, and failing the test with a message.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace test_process {

namespace fs = std::filesystem;

[[noreturn]] inline void fail(const char* test, const std::string& what) {
  std::fprintf(stderr, "%s: FAILED: %s\n", test, what.c_str());
  std::exit(1);
}

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::size_t count(const std::string& text, const std::string& word) {
  std::size_t n = 0;
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

/// Starts `argv` with `env` added to the environment, stdout and stderr appended to `out`, `err`.
inline pid_t spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err,
                   const std::vector<std::pair<std::string, std::string>>& env = {}) {
  const pid_t pid = fork();
  if (pid < 0) fail("spawn", "fork failed");
  if (pid == 0) {
    const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(o, 1);
    dup2(e, 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

/// Waits for `pid`; returns its exit code, or −signal.
inline int wait_for(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) fail("wait_for", "waitpid failed");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/// The process's exit code if it has ended (reaping it), else nothing.
inline std::optional<int> ended(pid_t pid) {
  int status = 0;
  const pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r != pid) fail("ended", "waitpid failed");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/// Waits at most `limit`; nothing if the process is still running then (it is left running).
inline std::optional<int> wait_within(pid_t pid, std::chrono::duration<double> limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (auto code = ended(pid)) return code;
    if (std::chrono::steady_clock::now() > until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

enum class WriteKill {
  no_fifo,      ///< something is already at the temporary's path: no FIFO made
  killed,       ///< SIGKILLed inside its write
  ended_first,  ///< the process ended before writing enough (reaped)
};

/// Kills `pid` inside a file write, for certain rather than by timing: puts a FIFO where it
/// writes its temporary (`tmp`), reads `want` bytes of the write, then SIGKILLs it. The writer
/// blocks once the pipe's 64 KiB buffer is full, so `want` plus 64 KiB below the file's size
/// means it is still inside the write. The FIFO is removed after.
inline WriteKill kill_inside_write(pid_t pid, const fs::path& tmp, std::size_t want) {
  if (mkfifo(tmp.c_str(), 0644) != 0) return WriteKill::no_fifo;
  const int fd = open(tmp.c_str(), O_RDONLY | O_NONBLOCK);
  std::size_t got = 0;
  char buffer[4096];
  WriteKill result = WriteKill::ended_first;
  while (!ended(pid)) {
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, 50);
    if (ready > 0 && !(p.revents & POLLIN)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (ready > 0 && (p.revents & POLLIN)) {
      const auto n = read(fd, buffer, std::min(sizeof buffer, want - got));
      if (n > 0) got += static_cast<std::size_t>(n);
      if (got >= want) {
        kill(pid, SIGKILL);
        result = wait_for(pid) == -SIGKILL ? WriteKill::killed : WriteKill::ended_first;
        break;
      }
    }
  }
  close(fd);
  fs::remove(tmp);
  return result;
}

}  // namespace test_process
