// libFuzzer target: load_checkpoint and load_weights (LibTorch's zip archive reader behind our
// layout checks) on arbitrary bytes, into a tiny UNet. Expected outcome: a loaded model or
// scoreflow::training::checkpoint_error.
#include "fuzz_common.hpp"
#include "scoreflow/torch/training.hpp"
#include "scoreflow/torch/unet.hpp"

namespace {
namespace tr = scoreflow::training;
using Net = scoreflow::models::UnconditionalUNet;
tr::Trainer<Net, tr::Denoising>& trainer() {
  static tr::Trainer<Net, tr::Denoising> t(Net(scoreflow::models::UNetOptions{.hidden = 2}), tr::Denoising{},
                                           tr::TrainOptions{});
  return t;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  if (const char* dir = sffuzz::seed_dir()) {
    std::filesystem::create_directories(dir);
    const std::filesystem::path d = dir;
    trainer().save_checkpoint(d / "checkpoint.pt");
    tr::save_weights(d / "weights.pt", *trainer().net());
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = sffuzz::scratch("checkpoint");
  sffuzz::write_file(file, data, size);
  sffuzz::expect_only<tr::checkpoint_error>([&] { trainer().load_checkpoint(file); });
  sffuzz::expect_only<tr::checkpoint_error>([&] { tr::load_weights(file, *trainer().net()); });
  return 0;
}
