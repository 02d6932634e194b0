// The program the kill test (kill_test.cpp) SIGKILLs: a small training run through the library's
// own machinery — Trainer with a checkpoint after every step, resume(), resume_loss_log — so that
// kills land anywhere, including inside checkpoint writes. The run keeps an EMA of the weights
// and uses the per-step options too (gradient clipping, an lr warm-up on top of the per-epoch
// decay), so their state must survive the kills as well.
//
//   kill_trainer train <dir>         train (resuming from <dir>/checkpoint.pt if present) to the
//                                    end; prints "resumed <step>" then "done <step> <digest> ema <digest>"
//   kill_trainer check <checkpoint>  loads a checkpoint; prints "ok <step> <digest> ema <digest>"
//
// <digest> is a 64-bit FNV-1a of every parameter and buffer's bytes (the net's, then the EMA's
// averages and buffers): equal digests mean equal weights bit for bit.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "scoreflow/torch.hpp"
#include "scoreflow/torch/io/loss_log.hpp"
#include "scoreflow/torch/models/unet.hpp"

namespace fs = std::filesystem;
namespace tr = scoreflow::training;
using Net = scoreflow::models::UnconditionalUNet;

namespace {
// 48 images in batches of 16: 3 steps per epoch, 16 epochs with lr decay, so resumes land
// mid-epoch, at epoch ends and across lr changes (a 5-step warm-up first: within an epoch too).
constexpr std::int64_t kImages = 48, kEpochs = 16;

tr::Trainer<Net, tr::Denoising> make_trainer(const fs::path& dir) {
  torch::manual_seed(3);
  tr::TrainOptions o{.epochs = kEpochs, .batch_size = 16, .lr = 1e-3, .lr_decay = 0.9,
                     .lr_schedule = {.warmup_steps = 5}, .clip_grad_norm = 1.0,
                     .ema = tr::EmaOptions{.decay = 0.95}, .seed = 8, .checkpoint_dir = dir, .checkpoint_every = 1};
  return tr::Trainer<Net, tr::Denoising>(Net(scoreflow::models::UNetOptions{.hidden = 4}), tr::Denoising{}, o);
}

tr::DataSource data() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  return tr::tensor_source(torch::rand({kImages, 1, 28, 28}, gen));
}

unsigned long long digest(const torch::OrderedDict<std::string, torch::Tensor>& parameters,
                          const torch::OrderedDict<std::string, torch::Tensor>& buffers) {
  std::uint64_t h = 1469598103934665603ULL;
  auto add = [&](const torch::Tensor& t) {
    const auto c = t.contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    for (std::size_t i = 0; i < c.nbytes(); ++i) h = (h ^ p[i]) * 1099511628211ULL;
  };
  for (const auto& p : parameters) add(p.value());
  for (const auto& b : buffers) add(b.value());
  return h;
}

/// "<step> <digest of the net> ema <digest of the EMA>".
template <class Trainer>
void print_state(const char* word, Trainer& t) {
  std::printf("%s %lld %016llx ema %016llx\n", word, static_cast<long long>(t.state().step),
              digest(t.net()->named_parameters(), t.net()->named_buffers()),
              digest(t.ema().parameters(), t.ema().buffers()));
}
}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc != 3) throw std::invalid_argument("usage: kill_trainer train <dir> | check <checkpoint>");
    torch::set_num_threads(1);  // one thread: the same floating-point sums in every run
    const std::string mode = argv[1];
    if (mode == "check") {
      auto t = make_trainer({});
      t.load_checkpoint(argv[2]);
      print_state("ok", t);
      return 0;
    }
    if (mode != "train") throw std::invalid_argument("unknown mode '" + mode + "'");
    const fs::path dir = argv[2];
    auto t = make_trainer(dir);
    t.resume();
    std::printf("resumed %lld\n", static_cast<long long>(t.state().step));
    std::fflush(stdout);
    auto log = scoreflow::resume_loss_log(dir / "loss.csv", t.state().step);
    t.fit(data(), {.on_loss = [&](std::int64_t step, std::int64_t epoch, double loss) {
      log.write(step, epoch, loss, t.current_lr());
    }});
    print_state("done", t);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kill_trainer: %s\n", e.what());
    return 1;
  }
}
