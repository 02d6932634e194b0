// libFuzzer target: load_checkpoint and load_weights (LibTorch's zip archive reader behind our
// layout and state checks) on arbitrary bytes. Expected outcome: a load or
// scoreflow::training::checkpoint_error.
//
// The loaders are generic over torch::nn::Module, so the model here is the smallest one with what
// our checks walk: parameters, buffers and a nested submodule. Its checkpoint is ~6 KB, so the
// seeds fit under -max_len=65536 whole (a UNet's, ~100 KB, was cut there and never parsed) and
// mutations land on the archive's structure rather than on megabytes of weights.
#include <c10/util/Logging.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include "fuzz_common.hpp"
#include "scoreflow/torch/training/checkpoint.hpp"

namespace {
namespace tr = scoreflow::training;

struct BlockImpl : torch::nn::Module {
  torch::nn::Linear linear = register_module("linear", torch::nn::Linear(3, 2));
  torch::nn::BatchNorm1d norm = register_module("norm", torch::nn::BatchNorm1d(2));
};
TORCH_MODULE(Block);
struct TinyImpl : torch::nn::Module {
  Block block = register_module("block", Block());
  torch::Tensor scale = register_parameter("scale", torch::ones({2}));
};
TORCH_MODULE(Tiny);

struct Subject {
  Tiny net;
  torch::optim::Adam adam{net->parameters()};
  tr::TrainingState state;
  tr::TrainingRng rng{7};
  Subject() {  // one optimizer step, so the Adam state (moments, step count) is in the archive
    const auto y = net->block->norm(net->block->linear(torch::randn({4, 3}))) * net->scale;
    y.square().mean().backward();
    adam.step();
    state.step = 1;
  }
};
Subject& subject() {
  static Subject s;
  return s;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  // Nearly every input makes LibTorch's zip reader throw c10::Error, whose constructor symbolises
  // a C++ backtrace (dladdr over every frame): 82% of each execution, ~150 executions/s. The
  // backtrace is LibTorch's diagnostics, not the code under test, and our messages drop it anyway
  // (torch_message.hpp). std::function<std::string()> is the overload LibTorch 1.13 and 2.x share.
  c10::SetStackTraceFetcher(std::function<std::string()>([] { return std::string(); }));
  if (const char* dir = sffuzz::seed_dir()) {
    std::filesystem::create_directories(dir);
    const std::filesystem::path d = dir;
    auto& s = subject();
    tr::save_checkpoint(d / "checkpoint.pt", *s.net, s.adam, s.state, s.rng);
    tr::save_weights(d / "weights.pt", *s.net);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = sffuzz::scratch("checkpoint");
  sffuzz::write_file(file, data, size);
  auto& s = subject();
  sffuzz::expect_only<tr::checkpoint_error>([&] { tr::load_checkpoint(file, *s.net, s.adam, s.state, s.rng); });
  sffuzz::expect_only<tr::checkpoint_error>([&] { tr::load_weights(file, *s.net); });
  return 0;
}
