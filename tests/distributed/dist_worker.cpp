// One rank of the multi-process tests (dist_test.cpp starts them, with torchrun's variables set:
// RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Trains through the library's own machinery —
// Trainer with a communicator from scoreflow::distributed::connect, checkpoints, resume,
// resume_loss_log — one thread per process, so the sums are the same in every run.
//
//   dist_worker train <dir> <norm: group|batch> <global batch> <epochs> [checkpoint_every]
//     trains (resuming from <dir>/checkpoint.pt) to the end; prints "resumed <step>", then
//     "rank <r> weights <digest>" on every rank and, on rank 0, "done <step> <digest>", and writes <dir>/weights.f32 (every parameter, float32, in order)
//     and <dir>/loss.csv (the global loss of every step).
//   dist_worker join
//     only joins the group and leaves, after SF_HOLD_MS milliseconds if set (launch-error cases).
//
// SF_TIMEOUT_MS sets the group's timeout (default 10 000); SF_NO_OVERLAP starts the gradient
// all-reduce after the backward pass instead of during it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "scoreflow/torch.hpp"
#include "scoreflow/torch/distributed/process_group.hpp"
#include "scoreflow/torch/io/loss_log.hpp"
#include "scoreflow/torch/models/unet.hpp"

namespace fs = std::filesystem;
namespace tr = scoreflow::training;
namespace dist = scoreflow::distributed;
using Net = scoreflow::models::UnconditionalUNet;

namespace {
constexpr std::int64_t kImages = 48;

std::shared_ptr<dist::Communicator> join() {
  const char* t = std::getenv("SF_TIMEOUT_MS");
  dist::GroupOptions o;
  o.timeout = std::chrono::milliseconds(t ? std::atoll(t) : 10000);
  return dist::connect(dist::launch_environment(), o);
}

unsigned long long digest(const Net& net) {
  std::uint64_t h = 1469598103934665603ULL;
  auto add = [&](const torch::Tensor& t) {
    const auto c = t.contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    for (std::size_t i = 0; i < c.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ULL;
  };
  for (const auto& p : net->parameters()) add(p);
  for (const auto& b : net->buffers()) add(b);
  return h;
}

int train(const fs::path& dir, const std::string& norm, std::int64_t batch, std::int64_t epochs, std::int64_t every) {
  auto comm = join();
  torch::manual_seed(3);
  scoreflow::models::UNetOptions uo{.hidden = 4};
  if (norm == "group") uo.norm = scoreflow::models::Normalization::group(2);
  tr::TrainOptions o{.epochs = epochs, .batch_size = batch, .lr = 1e-3, .lr_decay = 0.9,
                     .lr_schedule = {.warmup_steps = 3}, .clip_grad_norm = 1.0,
                     .ema = tr::EmaOptions{.decay = 0.95}, .seed = 8, .checkpoint_dir = dir,
                     .checkpoint_every = every, .communicator = comm,
                     .buckets = {.overlap_with_backward = std::getenv("SF_NO_OVERLAP") == nullptr}};
  tr::Trainer<Net, tr::Denoising> t(Net(uo), tr::Denoising{}, o);
  t.resume();
  std::printf("resumed %lld\n", static_cast<long long>(t.state().step));
  std::fflush(stdout);
  std::optional<scoreflow::LossLog> log;
  if (comm->is_main()) log.emplace(scoreflow::resume_loss_log(dir / "loss.csv", t.state().step));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  t.fit(tr::tensor_source(torch::rand({kImages, 1, 28, 28}, gen)),
        {.on_loss = [&](std::int64_t step, std::int64_t epoch, double loss) {
          if (log) log->write(step, epoch, loss, t.current_lr());
        }});
  // Every rank's weights (the optimizer steps must be identical on every rank).
  std::printf("rank %d weights %016llx\n", comm->rank(), digest(t.net()));
  if (comm->is_main()) {
    std::ofstream w(dir / "weights.f32", std::ios::binary);
    for (const auto& p : t.net()->parameters()) {
      const auto c = p.detach().to(torch::kFloat32).contiguous();
      w.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    }
    std::printf("done %lld %016llx\n", static_cast<long long>(t.state().step), digest(t.net()));
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  try {
    torch::set_num_threads(1);
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "join") {
      auto comm = join();
      comm->barrier("the join test's barrier");
      // SF_HOLD_MS: stay in the group a while (so that a late duplicate still finds the store).
      if (const char* hold = std::getenv("SF_HOLD_MS")) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(hold)));
      std::printf("joined rank %d of %d\n", comm->rank(), comm->size());
      return 0;
    }
    if (mode == "train" && (argc == 6 || argc == 7))
      return train(argv[2], argv[3], std::atoll(argv[4]), std::atoll(argv[5]), argc == 7 ? std::atoll(argv[6]) : 0);
    throw std::invalid_argument(
        "usage: dist_worker train <dir> <group|batch> <global batch> <epochs> [checkpoint_every] | join");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_worker: %s\n", e.what());
    return 1;
  }
}
