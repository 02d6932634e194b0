// Data-parallel training throughput (issue 17): the seed's class-conditioned flow UNet (§2.5,
// D = 64, global batch 64) trained through Trainer with a communicator, 2 processes × 1 thread
// against 1 process × 2 threads, in one run on one machine. Each benchmark starts its processes
// (this program again, with torchrun's variables and --worker) on loopback; rank 0 times the
// steps after a warm-up and reports them back.
//
//   BM_TrainDistributed/procs:1/threads:2/D:64/batch:64            one process, the plain trainer
//   BM_TrainDistributed/procs:2/threads:1/D:64/batch:64            Gloo, all-reduce overlapped with backward
//   BM_TrainDistributed/procs:2/threads:1/D:64/batch:64/no_overlap all-reduce after the backward pass
// Counters: items_per_second (images of the global batch per second), step_ms, comm_ms_per_step
// (rank 0's time blocked in collectives per step: the gradient buckets' waits, the loss
// all-reduce, the BatchNorm broadcast), allreduce_MB_per_step (gradient bytes all-reduced per
// step), and the conv peak of this machine (bench_conv_peak's figure) for scaling.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "scoreflow/torch/distributed/process_group.hpp"
#include "scoreflow/torch/models/unet.hpp"
#include "scoreflow/torch/training/train_loop.hpp"

namespace sm = scoreflow::models;
namespace tr = scoreflow::training;
namespace dist = scoreflow::distributed;

namespace {

constexpr int kWarmup = 3, kSteps = 15;

/// Forwards to a communicator and adds up the time spent blocked in it.
class TimedCommunicator final : public dist::Communicator {
 public:
  explicit TimedCommunicator(std::shared_ptr<dist::Communicator> inner) : inner_(std::move(inner)) {}
  [[nodiscard]] int rank() const override { return inner_->rank(); }
  [[nodiscard]] int size() const override { return inner_->size(); }
  void all_reduce_sum(std::vector<torch::Tensor>& t, std::string_view what) override {
    timed([&] { inner_->all_reduce_sum(t, what); });
  }
  std::unique_ptr<dist::PendingCollective> all_reduce_sum_async(torch::Tensor t, std::string_view what) override {
    struct Timed final : dist::PendingCollective {
      TimedCommunicator* owner;
      std::unique_ptr<dist::PendingCollective> inner;
      void wait() override {
        owner->timed([&] { inner->wait(); });
      }
    };
    auto p = std::make_unique<Timed>();
    p->owner = this;
    p->inner = inner_->all_reduce_sum_async(std::move(t), what);
    return p;
  }
  void broadcast(std::vector<torch::Tensor>& t, int root, std::string_view what) override {
    timed([&] { inner_->broadcast(t, root, what); });
  }
  std::vector<torch::Tensor> all_gather(const torch::Tensor& t, std::string_view what) override {
    std::vector<torch::Tensor> out;
    timed([&] { out = inner_->all_gather(t, what); });
    return out;
  }
  void barrier(std::string_view what) override {
    timed([&] { inner_->barrier(what); });
  }
  double seconds = 0;

 private:
  template <class Fn>
  void timed(Fn&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::shared_ptr<dist::Communicator> inner_;
};

/// One rank: trains kWarmup + kSteps steps; rank 0 writes "<seconds> <comm seconds> <elements>" to `result`.
int worker(const std::string& result, std::int64_t hidden, std::int64_t batch, int threads, bool overlap) {
  sm::set_cpu_threads(threads);
  auto comm = std::make_shared<TimedCommunicator>(dist::connect(dist::launch_environment()));
  torch::manual_seed(0);
  sm::ClassConditionalUNet net(sm::UNetOptions{.hidden = hidden});
  tr::TrainOptions o{.epochs = 1, .batch_size = batch, .lr = 1e-3, .seed = 0, .communicator = comm,
                     .buckets = {.overlap_with_backward = overlap}};
  tr::Trainer trainer(net, tr::FlowMatching<tr::ClassDropout>{tr::ClassDropout{0.1}}, o);
  torch::manual_seed(1);
  const scoreflow::Batch b{torch::rand({batch, 1, 28, 28}), torch::randint(0, 10, {batch}, torch::kLong)};
  for (int i = 0; i < kWarmup; ++i) trainer.train_step(b);
  comm->barrier("start");
  comm->seconds = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kSteps; ++i) benchmark::DoNotOptimize(trainer.train_step(b));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (comm->is_main()) {
    std::ofstream out(result);
    out << seconds << " " << comm->seconds << " "
        << (trainer.gradient_buckets() ? trainer.gradient_buckets()->elements() : 0) << "\n";
  }
  return 0;
}

void train_distributed(benchmark::State& state, int procs, int threads, std::int64_t hidden, std::int64_t batch,
                       bool overlap) {
  bench::set_threads();
  const double peak = bench::conv_peak_gflops().wall;  // before the workers start: the machine idle
  const std::string result = "/tmp/bench_train_distributed." + std::to_string(getpid());
  static int port = 21000 + static_cast<int>(getpid() % 20000);
  double seconds = 0, comm_seconds = 0, elements = 0;
  for (auto _ : state) {
    ++port;
    std::vector<pid_t> pids;
    for (int r = 0; r < procs; ++r) {
      const pid_t pid = fork();
      if (pid == 0) {
        if (procs > 1) {
          setenv("RANK", std::to_string(r).c_str(), 1);
          setenv("WORLD_SIZE", std::to_string(procs).c_str(), 1);
          setenv("MASTER_ADDR", "127.0.0.1", 1);
          setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        }
        setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
        const std::string h = std::to_string(hidden), bs = std::to_string(batch), th = std::to_string(threads);
        execl("/proc/self/exe", "bench_train_distributed", "--worker", result.c_str(), h.c_str(), bs.c_str(),
              th.c_str(), overlap ? "1" : "0", static_cast<char*>(nullptr));
        _exit(127);
      }
      pids.push_back(pid);
    }
    bool ok = true;
    for (pid_t pid : pids) {
      int status = 0;
      waitpid(pid, &status, 0);
      ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    std::ifstream in(result);
    if (!ok || !(in >> seconds >> comm_seconds >> elements)) {
      state.SkipWithError("a worker process failed");
      return;
    }
    state.SetIterationTime(seconds / kSteps);
  }
  std::remove(result.c_str());
  state.counters["items_per_second"] = static_cast<double>(batch * kSteps) / seconds;
  state.counters["step_ms"] = 1e3 * seconds / kSteps;
  state.counters["comm_ms_per_step"] = 1e3 * comm_seconds / kSteps;
  state.counters["allreduce_MB_per_step"] = elements * 4.0 / 1e6;
  state.counters["conv_peak_GFLOPs"] = peak;
}

int register_all() {
  const std::int64_t hidden = 64, batch = 64;
  const std::string tail = "/D:" + std::to_string(hidden) + "/batch:" + std::to_string(batch);
  auto add = [&](const std::string& name, int procs, int threads, bool overlap) {
    benchmark::RegisterBenchmark(("BM_TrainDistributed/" + name + tail + (overlap || procs == 1 ? "" : "/no_overlap")).c_str(),
                                 train_distributed, procs, threads, hidden, batch, overlap)
        ->UseManualTime()
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond);
  };
  add("procs:1/threads:2", 1, 2, true);
  add("procs:2/threads:1", 2, 1, true);
  add("procs:2/threads:1", 2, 1, false);
  return 0;
}
const int registered = register_all();

}  // namespace

int main(int argc, char** argv) {
  if (argc == 7 && std::string(argv[1]) == "--worker") {
    try {
      return worker(argv[2], std::atoll(argv[3]), std::atoll(argv[4]), std::atoi(argv[5]), std::string(argv[6]) == "1");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_train_distributed worker: %s\n", e.what());
      return 1;
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
