// Multi-process tests on loopback (issue 17), each bounded in time. Starts dist_worker ranks with
// torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR = 127.0.0.1, MASTER_PORT):
//
//   dist_test equivalence <dist_worker> <work dir>
//     2 ranks × half the batch against 1 rank × the batch, a fixed number of steps: without batch
//     statistics (GroupNorm UNet) the weights agree to float rounding and the loss curves too,
//     also for a batch that splits unevenly (15 = 8 + 7, and a last batch of 3 = 2 + 1);
//     every rank ends with the same weights bit for bit; overlapping the all-reduce with the
//     backward pass or not gives the same bits; with the
//     seed's BatchNorm UNet (per-rank batch statistics, DDP's default) the loss curves agree
//     within a stated tolerance and the weight difference is printed.
//   dist_test faults <dist_worker> <work dir> [kills = 5] [seed = 1]
//     SIGKILLs one of two ranks at random moments, one kill in three inside rank 0's checkpoint
//     write: the survivor must exit within the group's timeout (+ slack), with an error naming the
//     lost rank; both restarted resume from the last checkpoint; the final weights equal an
//     uninterrupted 2-rank run's bit for bit, and the loss logs are equal.
//   dist_test launch <dist_worker> <work dir>
//     a rank out of range, a WORLD_SIZE that differs between ranks, two processes with one RANK,
//     an unreachable master, MASTER_ADDR unset: each a clear error within the timeout; and a
//     peer stalled mid-run (SIGSTOP): the other rank exits on its timeout, naming it.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "process_control.hpp"
#include "scoreflow/torch/io/loss_log.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using test_process::count;
using test_process::read_text;

namespace {

constexpr int kTimeoutMs = 10000;  // the group's timeout (SF_TIMEOUT_MS)

[[noreturn]] void fail(const std::string& what) { test_process::fail("dist_test", what); }

int next_port() {
  static int port = 20000 + static_cast<int>((getpid() * 13) % 20000);
  return ++port;
}

struct Rank {
  pid_t pid;
  fs::path out, err;
};

using Env = std::vector<std::pair<std::string, std::string>>;

/// Starts `world` ranks of `argv` on a fresh port (extra variables in `env`; a rank's own
/// RANK/WORLD_SIZE may be overridden through `per_rank`).
std::vector<Rank> launch(const std::vector<std::string>& argv, const fs::path& dir, int world, const Env& env = {},
                         const std::vector<Env>& per_rank = {}) {
  fs::create_directories(dir);
  const int port = next_port();
  std::vector<Rank> ranks;
  const int n = per_rank.empty() ? world : static_cast<int>(per_rank.size());
  for (int r = 0; r < n; ++r) {
    Env e{{"RANK", std::to_string(r)}, {"WORLD_SIZE", std::to_string(world)}, {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)}, {"SF_TIMEOUT_MS", std::to_string(kTimeoutMs)},
          {"OMP_NUM_THREADS", "1"}};
    if (world == 1 && per_rank.empty()) e.clear(), e.push_back({"OMP_NUM_THREADS", "1"});
    e.insert(e.end(), env.begin(), env.end());
    if (!per_rank.empty()) e.insert(e.end(), per_rank[static_cast<std::size_t>(r)].begin(), per_rank[static_cast<std::size_t>(r)].end());
    const fs::path out = dir / ("rank" + std::to_string(r) + ".out"), err = dir / ("rank" + std::to_string(r) + ".err");
    ranks.push_back({test_process::spawn(argv, out, err, e), out, err});
  }
  return ranks;
}

/// Waits for every rank (at most `limit` each); their exit codes. Kills and fails on a hang.
std::vector<int> finish(const std::vector<Rank>& ranks, std::chrono::duration<double> limit, const std::string& what) {
  std::vector<int> codes;
  for (const auto& r : ranks) {
    const auto code = test_process::wait_within(r.pid, limit);
    if (!code) {
      for (const auto& k : ranks) kill(k.pid, SIGKILL);
      fail(what + ": a rank still runs after " + std::to_string(limit.count()) + " s (a hang): " + read_text(r.err));
    }
    codes.push_back(*code);
  }
  return codes;
}

std::vector<float> read_floats(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<float> v((fs::file_size(p)) / sizeof(float));
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

struct TrainRun {
  std::vector<float> weights;
  std::vector<scoreflow::LossRecord> losses;
  std::string done;
};

TrainRun train(const std::string& worker, const fs::path& dir, int world, const std::string& norm, int batch,
               int epochs, const Env& env = {}) {
  fs::remove_all(dir);
  const auto ranks = launch({worker, "train", dir.string(), norm, std::to_string(batch), std::to_string(epochs)}, dir,
                            world, env);
  const auto codes = finish(ranks, 120s, "training in " + dir.string());
  for (std::size_t r = 0; r < codes.size(); ++r)
    if (codes[r] != 0) fail("rank " + std::to_string(r) + " of " + dir.string() + " exited " + std::to_string(codes[r]) + ": " + read_text(ranks[r].err));
  const auto out = read_text(ranks[0].out);
  if (world > 1) {  // the optimizer steps were identical on every rank: the same weights, bit for bit
    auto weights_of = [&](int r) {
      const auto text = read_text(ranks[static_cast<std::size_t>(r)].out);
      const auto w = text.rfind(" weights ");
      return w == std::string::npos ? std::string("none") : text.substr(w + 9, 16);
    };
    for (int r = 1; r < world; ++r)
      if (weights_of(r) != weights_of(0))
        fail(dir.string() + ": rank " + std::to_string(r) + " ended with other weights than rank 0 (" + weights_of(r) +
             " vs " + weights_of(0) + ")");
  }
  const auto at = out.rfind("done ");
  return {read_floats(dir / "weights.f32"), scoreflow::read_loss_log(dir / "loss.csv"),
          at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at)};
}

/// max |a − b| over the weights and max |Δ loss| / loss over the steps.
std::pair<double, double> difference(const TrainRun& a, const TrainRun& b) {
  if (a.weights.size() != b.weights.size() || a.losses.size() != b.losses.size() || a.losses.empty())
    fail("runs of different sizes");
  double w = 0, l = 0;
  for (std::size_t i = 0; i < a.weights.size(); ++i) w = std::max(w, std::fabs(double(a.weights[i]) - b.weights[i]));
  for (std::size_t i = 0; i < a.losses.size(); ++i)
    l = std::max(l, std::fabs(a.losses[i].loss - b.losses[i].loss) / std::fabs(a.losses[i].loss));
  return {w, l};
}

int equivalence(const std::string& worker, const fs::path& work) {
  // 48 images: batches 15, 15, 15, 3 per epoch; 2 epochs = 8 steps with warm-up, clipping, EMA.
  const auto one = train(worker, work / "group-1x15", 1, "group", 15, 2);
  const auto two = train(worker, work / "group-2x15", 2, "group", 15, 2);
  const auto two_late = train(worker, work / "group-2x15-no-overlap", 2, "group", 15, 2, {{"SF_NO_OVERLAP", "1"}});
  const auto [w, l] = difference(one, two);
  std::printf("GroupNorm UNet, 8 steps: 1 process x 15 vs 2 processes x (8 | 7): max |dw| = %.3g, max rel. dloss = %.3g\n",
              w, l);
  // Float rounding only: summation order of the batch mean and of the all-reduce (≈1e-7
  // relative per operation, amplified by Adam's normalisation of small gradients over 8 steps).
  if (!(w <= 1e-5) || !(l <= 1e-5)) fail("2 processes differ from 1 beyond float rounding");
  if (two.done != two_late.done) fail("overlapping the all-reduce changed the weights: " + two.done + " vs " + two_late.done);
  std::printf("overlapped and after-backward all-reduce: the same bits (%s)\n", two.done.c_str());

  const auto bn_one = train(worker, work / "batch-1x16", 1, "batch", 16, 2);
  const auto bn_two = train(worker, work / "batch-2x16", 2, "batch", 16, 2);
  const auto [bw, bl] = difference(bn_one, bn_two);
  std::printf("BatchNorm UNet (per-rank batch statistics), 6 steps: 1 x 16 vs 2 x 8: max |dw| = %.3g, max rel. dloss = %.3g\n",
              bw, bl);
  // Per-rank statistics over 8 images instead of 16 change the normalisation, so the runs differ
  // by more than rounding; the loss curves must still agree closely.
  if (!(bl <= 0.05)) fail("BatchNorm loss curves of 1 and 2 processes disagree by more than 5 %");
  std::printf("PASSED\n");
  return 0;
}

int faults(const std::string& worker, const fs::path& work, int kills_wanted, unsigned seed) {
  std::mt19937_64 rng(seed);
  const auto started = clock_type::now();
  // 48 images in global batches of 16: 3 steps per epoch, 8 epochs = 24 steps, a checkpoint every step.
  const std::vector<std::string> args_tail{"batch", "16", "8", "1"};
  auto argv = [&](const fs::path& dir) {
    std::vector<std::string> a{worker, "train", dir.string()};
    a.insert(a.end(), args_tail.begin(), args_tail.end());
    return a;
  };
  const fs::path ref = work / "reference", run = work / "killed";
  fs::remove_all(work);
  const auto t0 = clock_type::now();
  const auto ref_ranks = launch(argv(ref), ref, 2);
  while (count(read_text(ref / "rank0.out"), "resumed ") == 0 || count(read_text(ref / "rank1.out"), "resumed ") == 0) {
    if (clock_type::now() - t0 > 60s) fail("the reference run did not start: " + read_text(ref_ranks[0].err));
    std::this_thread::sleep_for(2ms);
  }
  const auto t_train = clock_type::now();
  const auto ref_codes = finish(ref_ranks, 120s, "reference run");
  if (ref_codes[0] != 0 || ref_codes[1] != 0) fail("reference run failed: " + read_text(ref_ranks[0].err) + read_text(ref_ranks[1].err));
  const double ref_seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  const double train_seconds = std::chrono::duration<double>(clock_type::now() - t_train).count();
  const auto ref_out = read_text(ref_ranks[0].out);
  const auto reference = ref_out.substr(ref_out.rfind("done "), ref_out.find('\n', ref_out.rfind("done ")) - ref_out.rfind("done "));
  std::printf("reference 2-rank run: %s (%.1f s, training %.2f s)\n", reference.c_str(), ref_seconds, train_seconds);

  int kills = 0, in_write = 0, attempts = 0, random_kills = 0;
  std::vector<std::string> notes;
  const fs::path tmp = run / "checkpoint.pt.tmp";
  while (kills < kills_wanted) {
    if (++attempts > 6 * kills_wanted) fail("could not kill a rank often enough");
    const std::size_t before0 = count(read_text(run / "rank0.out"), "resumed "), before1 = count(read_text(run / "rank1.out"), "resumed ");
    const auto ranks = launch(argv(run), run, 2);
    while (count(read_text(run / "rank0.out"), "resumed ") == before0 || count(read_text(run / "rank1.out"), "resumed ") == before1) {
      for (const auto& r : ranks)
        if (test_process::ended(r.pid)) fail("a rank exited before training: " + read_text(r.err));
      std::this_thread::sleep_for(2ms);
    }
    const bool write_kill = kills % 3 == 1;
    // Inside a write: rank 0 (the writer). Else each rank in turn, at a random moment.
    const int victim = write_kill ? 0 : random_kills % 2 == 0 ? 1 : 0;
    // On average each kill advances the run by an equal share of what is left (as kill_test).
    // Within what is left of the run (a resumed run is shorter), so that few runs finish first.
    const double done = fs::exists(run / "loss.csv") ? double(scoreflow::read_loss_log(run / "loss.csv").size()) : 0.0;
    const double left = std::max(0.1, 1.0 - done / 24.0);
    std::uniform_real_distribution<double> delay(0.0, train_seconds * left * 2.0 / (kills_wanted - kills + 1));
    std::this_thread::sleep_for(std::chrono::duration<double>(delay(rng)));
    bool killed = false;
    if (write_kill) {
      const auto r = test_process::kill_inside_write(ranks[0].pid, tmp, std::uniform_int_distribution<std::size_t>(1, 16384)(rng));
      killed = r == test_process::WriteKill::killed;
      if (r == test_process::WriteKill::no_fifo) {  // a stale temporary: kill now instead
        kill(ranks[0].pid, SIGKILL);
        killed = test_process::wait_for(ranks[0].pid) == -SIGKILL;
      }
      if (killed && r == test_process::WriteKill::killed) ++in_write;
    } else if (!test_process::wait_within(ranks[static_cast<std::size_t>(victim)].pid, 0s)) {
      kill(ranks[static_cast<std::size_t>(victim)].pid, SIGKILL);
      killed = test_process::wait_for(ranks[static_cast<std::size_t>(victim)].pid) == -SIGKILL;
    }
    const auto killed_at = clock_type::now();  // the victim is reaped here, killed or ended by itself
    const int survivor = 1 - victim;
    const auto code = test_process::wait_within(ranks[static_cast<std::size_t>(survivor)].pid, std::chrono::milliseconds(kTimeoutMs) + 5s);
    if (!code) {
      kill(ranks[static_cast<std::size_t>(survivor)].pid, SIGKILL);
      fail("rank " + std::to_string(survivor) + " still runs " + std::to_string(kTimeoutMs / 1000 + 5) +
           " s after rank " + std::to_string(victim) + " was killed (a hang)");
    }
    const double exit_seconds = std::chrono::duration<double>(clock_type::now() - killed_at).count();
    if (!killed || *code == 0) {
      // The run finished before the kill: start over (only kills of the compared run count).
      fs::remove_all(run);
      kills = in_write = random_kills = 0;
      notes.clear();
      continue;
    }
    const std::string err = read_text(ranks[static_cast<std::size_t>(survivor)].err);
    const std::string last = err.substr(err.rfind("dist_worker: ") == std::string::npos ? 0 : err.rfind("dist_worker: "));
    if (last.find("lost rank " + std::to_string(victim)) == std::string::npos)
      fail("the survivor's error does not name the lost rank " + std::to_string(victim) + ": " + last);
    ++kills;
    if (!write_kill) ++random_kills;
    char note[160];
    const auto records = fs::exists(run / "loss.csv") ? scoreflow::read_loss_log(run / "loss.csv").size() : 0;
    std::snprintf(note, sizeof note, "rank %d killed%s after %zu logged steps; rank %d exited %d after %.2f s", victim,
                  write_kill && killed ? " inside its checkpoint write" : "", records, survivor, *code, exit_seconds);
    notes.emplace_back(note);
    if (kills == 1) std::printf("survivor's error: %s", last.c_str());
  }
  const auto ranks = launch(argv(run), run, 2);
  const auto codes = finish(ranks, 120s, "the final resumed run");
  if (codes[0] != 0 || codes[1] != 0) fail("the final resumed run failed: " + read_text(ranks[0].err) + read_text(ranks[1].err));
  const auto out = read_text(run / "rank0.out");
  const auto final_line = out.substr(out.rfind("done "), out.find('\n', out.rfind("done ")) - out.rfind("done "));
  for (const auto& n : notes) std::printf("  %s\n", n.c_str());
  std::printf("final: %s\n", final_line.c_str());
  if (final_line != reference) fail("final weights differ from the uninterrupted run: '" + final_line + "' vs '" + reference + "'");
  const auto a = scoreflow::read_loss_log(ref / "loss.csv"), b = scoreflow::read_loss_log(run / "loss.csv");
  if (a.size() != b.size()) fail("loss logs have " + std::to_string(a.size()) + " and " + std::to_string(b.size()) + " records");
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) fail("loss log differs from the reference at step " + std::to_string(i + 1));
  if (in_write == 0) fail("no kill landed inside a checkpoint write");
  // The FIFO kills are mid-write only if a checkpoint outgrows the pipe buffer plus what was read.
  if (fs::file_size(run / "checkpoint.pt") < 65536 + 16384 + 1) fail("checkpoint too small for the FIFO kills");
  std::printf("PASSED: %d kills (%d inside a checkpoint write), weights bit-identical, loss log identical (%.1f s)\n",
              kills, in_write, std::chrono::duration<double>(clock_type::now() - started).count());
  return 0;
}

/// One launch that must fail, every process within the timeout (+ slack): process `who` exits
/// non-zero with `expect` on its stderr, and so does every other process unless `others_may_join`
/// (a duplicated rank: the first of the two and rank 0 form the group and finish).
void expect_error(const std::string& worker, const fs::path& dir, const std::string& name, int world,
                  const std::vector<Env>& per_rank, std::size_t who, const std::string& expect,
                  bool others_may_join = false) {
  const auto t0 = clock_type::now();
  // A 3 s timeout: the cases that wait for it (an unreachable master) end sooner.
  const auto ranks = launch({worker, "join"}, dir / name, world, {{"SF_TIMEOUT_MS", "3000"}}, per_rank);
  const auto codes = finish(ranks, 3s + 10s, name);
  const double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::size_t failing = who;
  if (others_may_join)  // whichever of the duplicates came second
    for (std::size_t r = 0; r < codes.size(); ++r)
      if (codes[r] != 0) failing = r;
  const std::string err = read_text(ranks[failing].err);
  for (std::size_t r = 0; r < codes.size(); ++r)
    if (codes[r] == 0 && (!others_may_join || r == failing))
      fail(name + ": process " + std::to_string(r) + " succeeded");
  if (codes[failing] == 0 || err.find(expect) == std::string::npos)
    fail(name + ": expected '" + expect + "' in: " + err);
  std::printf("ok   %-22s %.1f s: %s", name.c_str(), seconds, err.c_str());
}

int launch_errors(const std::string& worker, const fs::path& work) {
  fs::remove_all(work);
  // Sanity: a correct launch joins.
  const auto ok = launch({worker, "join"}, work / "correct", 2);
  const auto codes = finish(ok, 60s, "correct launch");
  if (codes[0] != 0 || codes[1] != 0) fail("a correct 2-rank launch failed: " + read_text(ok[0].err) + read_text(ok[1].err));
  std::printf("ok   %-22s joined\n", "correct launch");
  expect_error(worker, work, "rank out of range", 2, {{{"RANK", "2"}}}, 0, "RANK = 2: must lie in [0, 1]");
  expect_error(worker, work, "WORLD_SIZE differs", 2, {{}, {{"WORLD_SIZE", "3"}}}, 0,
               "rank 1 was started with WORLD_SIZE = 3");
  expect_error(worker, work, "two with one RANK", 2,
               {{{"SF_HOLD_MS", "2000"}}, {{"RANK", "1"}, {"SF_HOLD_MS", "2000"}}, {{"RANK", "1"}, {"SF_HOLD_MS", "2000"}}}, 1,
               "two processes were started with RANK = 1", true);
  expect_error(worker, work, "unreachable master", 2, {{{"RANK", "1"}}}, 0, "cannot reach the rendezvous store");
  expect_error(worker, work, "MASTER_ADDR unset", 2, {{{"MASTER_ADDR", ""}}}, 0, "MASTER_ADDR is not set");

  // A stalled peer (SIGSTOP: alive, silent): the other rank's next collective times out, and it
  // exits with an error that says so, within its 3 s timeout (+ slack), instead of hanging.
  const fs::path stall = work / "stalled peer";
  const auto ranks = launch({worker, "train", stall.string(), "group", "16", "400"}, stall, 2, {{"SF_TIMEOUT_MS", "3000"}});
  const auto t0 = clock_type::now();
  while (count(read_text(ranks[0].out), "resumed ") == 0 || count(read_text(ranks[1].out), "resumed ") == 0) {
    if (clock_type::now() - t0 > 60s) fail("stalled peer: the ranks did not start");
    std::this_thread::sleep_for(2ms);
  }
  std::this_thread::sleep_for(200ms);
  kill(ranks[1].pid, SIGSTOP);
  const auto stopped_at = clock_type::now();
  const auto code = test_process::wait_within(ranks[0].pid, 3s + 10s);
  const double seconds = std::chrono::duration<double>(clock_type::now() - stopped_at).count();
  kill(ranks[1].pid, SIGKILL);
  test_process::wait_for(ranks[1].pid);
  if (!code) {
    kill(ranks[0].pid, SIGKILL);
    fail("stalled peer: rank 0 still runs 13 s after rank 1 stopped (a hang)");
  }
  const std::string err = read_text(ranks[0].err);
  if (*code == 0 || err.find("stalled past the timeout of 3 s") == std::string::npos)
    fail("stalled peer: rank 0 exited " + std::to_string(*code) + " with: " + err);
  std::printf("ok   %-22s %.1f s: %s", "stalled peer", seconds, err.substr(err.rfind("dist_worker: ")).c_str());
  std::printf("PASSED\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) fail("usage: dist_test equivalence|faults|launch <dist_worker> <work dir> [kills] [seed]");
  const std::string mode = argv[1], worker = fs::absolute(argv[2]).string();
  const fs::path work = fs::absolute(argv[3]);
  if (mode == "equivalence") return equivalence(worker, work);
  if (mode == "faults") return faults(worker, work, argc > 4 ? std::atoi(argv[4]) : 5, argc > 5 ? static_cast<unsigned>(std::atoi(argv[5])) : 1);
  if (mode == "launch") return launch_errors(worker, work);
  fail("unknown mode '" + mode + "'");
}
