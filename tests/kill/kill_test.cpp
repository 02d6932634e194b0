// Training survives being killed (issue 7). Runs kill_trainer once uninterrupted (the reference),
// then again in a fresh folder, SIGKILLing it again and again — at random moments, and inside
// checkpoint writes — and resuming each time. Requires:
//   (a) after every kill, checkpoint.pt loads (never corrupt or partial) and its step never goes
//       back; the loss log holds steps 1 … m exactly once, m ≥ the checkpoint's step;
//   (b) the final weights and their EMA equal the reference's bit for bit (digest of every byte);
//   (c) the final loss log equals the reference's: every step once, no gap, same values.
//
// Kills inside a checkpoint write are made certain, not left to timing: the driver puts a FIFO
// where the trainer writes its temporary (checkpoint.pt.tmp). The trainer's write then blocks
// after the pipe's 64 KiB buffer (a checkpoint is larger), the driver reads a random number of
// bytes and SIGKILLs it mid-write. Random-time kills that find a regular checkpoint.pt.tmp on
// disk are counted too (natural kills during a write).
//
//   kill_test <kill_trainer> <work dir> [kills = 12] [seed = 1]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "process_control.hpp"
#include "scoreflow/torch/io/loss_log.hpp"

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

[[noreturn]] void fail(const std::string& what) { test_process::fail("kill_test", what); }
using test_process::count;
using test_process::ended;
using test_process::read_text;
using test_process::wait_for;

/// Starts `exe args...` with stdout and stderr appended to files in `log_dir`.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log_dir) {
  return test_process::spawn(argv, log_dir / "stdout.txt", log_dir / "stderr.txt");
}

/// Runs to the end; returns the "done <step> <digest> ema <digest>" line.
std::string run_to_end(const std::string& trainer, const fs::path& dir) {
  const auto pid = spawn({trainer, "train", dir.string()}, dir);
  const int code = wait_for(pid);
  if (code != 0) fail("trainer exited with " + std::to_string(code) + ": " + read_text(dir / "stderr.txt"));
  const auto out = read_text(dir / "stdout.txt");
  const auto at = out.rfind("done ");
  if (at == std::string::npos) fail("no 'done' line in " + out);
  return out.substr(at, out.find('\n', at) - at);
}

/// (a): the checkpoint loads (in a separate process, through the library's loader) at a step ≥
/// `previous`; the loss log holds steps 1 … m exactly once with m ≥ that step. Returns the step.
long long check_after_kill(const std::string& trainer, const fs::path& dir, long long previous) {
  long long step = 0;
  if (fs::exists(dir / "checkpoint.pt")) {
    const fs::path check_dir = dir.parent_path() / "check";
    fs::remove_all(check_dir);
    fs::create_directories(check_dir);
    const int code = wait_for(spawn({trainer, "check", (dir / "checkpoint.pt").string()}, check_dir));
    if (code != 0) fail("checkpoint does not load after a kill: " + read_text(check_dir / "stderr.txt"));
    const auto out = read_text(check_dir / "stdout.txt");
    if (std::sscanf(out.c_str(), "ok %lld", &step) != 1) fail("unexpected check output: " + out);
  }
  if (step < previous) fail("checkpoint went back from step " + std::to_string(previous) + " to " + std::to_string(step));
  if (fs::exists(dir / "loss.csv")) {
    const auto records = scoreflow::read_loss_log(dir / "loss.csv");
    for (std::size_t i = 0; i < records.size(); ++i)
      if (records[i].step != static_cast<std::int64_t>(i) + 1)
        fail("loss log after a kill: record " + std::to_string(i) + " has step " + std::to_string(records[i].step));
    if (static_cast<long long>(records.size()) < step) fail("loss log behind the checkpoint");
  }
  return step;
}

}  // namespace

int run_test(int argc, char** argv) {
  if (argc < 3) fail("usage: kill_test <kill_trainer> <work dir> [kills] [seed]");
  const std::string trainer = fs::absolute(argv[1]).string();
  const fs::path work = argv[2];
  const int kills_wanted = argc > 3 ? std::atoi(argv[3]) : 12;
  std::mt19937_64 rng(argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 1);
  const auto started = clock_type::now();
  fs::remove_all(work);
  const fs::path ref = work / "reference", run = work / "killed";
  fs::create_directories(ref);
  fs::create_directories(run);

  // The reference run, timed: start-up (LibTorch loading) and training.
  const auto t0 = clock_type::now();
  const auto ref_pid = spawn({trainer, "train", ref.string()}, ref);
  while (count(read_text(ref / "stdout.txt"), "resumed ") == 0 && !ended(ref_pid))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const double startup_seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (const int code = wait_for(ref_pid); code != 0) fail("reference run failed: " + read_text(ref / "stderr.txt"));
  const double train_seconds = std::chrono::duration<double>(clock_type::now() - t0).count() - startup_seconds;
  const auto reference = run_to_end(trainer, ref);  // already complete: reports its final line
  std::printf("reference run: %s (start-up %.2f s, training %.2f s)\n", reference.c_str(), startup_seconds,
              train_seconds);
  long long total_steps = 0;
  if (std::sscanf(reference.c_str(), "done %lld", &total_steps) != 1 || total_steps <= 0) fail("bad reference line");
  // The trainer keeps an EMA, and (b) compares it too.
  if (reference.find(" ema ") == std::string::npos) fail("the reference line has no EMA digest: " + reference);

  int kills = 0, in_write_fifo = 0, in_write_natural = 0, completed_early = 0, attempts = 0;
  long long step = 0;
  std::vector<long long> steps_at_kill;
  const fs::path tmp = run / "checkpoint.pt.tmp";
  while (kills < kills_wanted) {
    if (++attempts > 10 * kills_wanted) fail("could not kill the trainer often enough");
    const bool in_write = kills % 3 == 1;  // every third kill inside a checkpoint write
    // Within what is left of the run (a resumed run is shorter), so that few runs finish first.
    const double left = std::max(0.1, 1.0 - static_cast<double>(step) / static_cast<double>(total_steps));
    // Three kills in four are timed from the moment training starts (after LibTorch has loaded
    // and the checkpoint was read: "resumed" printed); the rest from the start of the process.
    const bool from_training = attempts % 4 != 0;
    // On average each kill advances the run by an equal share of what is left, so that the
    // kills spread over the whole run rather than bunching at its end.
    const double share = 2.0 / static_cast<double>(kills_wanted - kills + 1);
    std::uniform_real_distribution<double> delay(
        0.0, (from_training ? 0.0 : startup_seconds) + train_seconds * left * share);
    const auto pid = spawn({trainer, "train", run.string()}, run);
    if (from_training) {
      const auto resumed_before = count(read_text(run / "stdout.txt"), "resumed ");
      while (count(read_text(run / "stdout.txt"), "resumed ") == resumed_before) {
        // A trainer that exits before training failed to resume: that is the bug to report.
        if (const auto code = ended(pid))
          fail("trainer exited with " + std::to_string(*code) + " before training: " + read_text(run / "stderr.txt"));
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(delay(rng)));
    bool killed = false, fifo = false;
    if (in_write) {
      // Only where no temporary is (a stale one from an earlier kill, or one being written now);
      // else this becomes a random-time kill.
      // Fewer bytes than a checkpoint minus the pipe's 64 KiB buffer (checked below), so the
      // trainer is still inside its write when killed.
      const std::size_t want = std::uniform_int_distribution<std::size_t>(1, 16384)(rng);
      const auto r = test_process::kill_inside_write(pid, tmp, want);
      fifo = r != test_process::WriteKill::no_fifo;
      killed = r == test_process::WriteKill::killed;
      if (killed) ++in_write_fifo;
    }
    if (!fifo) {
      const bool writing = fs::exists(tmp);
      if (!ended(pid)) {
        kill(pid, SIGKILL);
        killed = wait_for(pid) == -SIGKILL;
        if (killed && writing && fs::is_regular_file(tmp)) ++in_write_natural;
      }
    }
    if (!killed) {
      // The run finished before its kill: start over (kills count only on the run compared below).
      ++completed_early;
      fs::remove_all(run);
      fs::create_directories(run);
      step = kills = in_write_fifo = in_write_natural = 0;
      steps_at_kill.clear();
      continue;
    }
    ++kills;
    step = check_after_kill(trainer, run, step);
    steps_at_kill.push_back(step);
  }
  const auto final_line = run_to_end(trainer, run);
  std::string resumes;
  {
    std::istringstream out(read_text(run / "stdout.txt"));
    for (std::string line; std::getline(out, line);)
      if (line.starts_with("resumed ")) resumes += line.substr(8) + " ";
  }
  std::printf("kills: %d (%d inside a checkpoint write via FIFO, %d random kills that found a partial temporary), "
              "%d runs finished before their kill\n", kills, in_write_fifo, in_write_natural, completed_early);
  std::printf("checkpoint step after each kill: ");
  for (auto s : steps_at_kill) std::printf("%lld ", s);
  std::printf("\nresumed at steps: %s\nfinal: %s\n", resumes.c_str(), final_line.c_str());

  // (b) bit-for-bit weights and EMA, (c) the same loss log, every step once.
  if (final_line != reference)
    fail("final weights or EMA differ: '" + final_line + "' vs reference '" + reference + "'");
  const auto a = scoreflow::read_loss_log(ref / "loss.csv"), b = scoreflow::read_loss_log(run / "loss.csv");
  if (a.size() != b.size()) fail("loss logs have " + std::to_string(a.size()) + " and " + std::to_string(b.size()) + " records");
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (b[i].step != static_cast<std::int64_t>(i) + 1) fail("loss log: record " + std::to_string(i) + " has step " + std::to_string(b[i].step));
    if (!(a[i] == b[i])) fail("loss log differs from the reference at step " + std::to_string(i + 1));
  }
  if (in_write_fifo == 0) fail("no kill landed inside a checkpoint write");
  // The FIFO kills are mid-write only if a checkpoint outgrows the pipe buffer plus what was read.
  if (fs::file_size(run / "checkpoint.pt") < 65536 + 16384 + 1) fail("checkpoint too small for the FIFO kills");
  std::printf("PASSED: %zu steps, weights and EMA bit-identical, loss log identical (%.1f s)\n", a.size(),
              std::chrono::duration<double>(clock_type::now() - started).count());
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run_test(argc, argv);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}
