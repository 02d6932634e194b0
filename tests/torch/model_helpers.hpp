#pragma once
// Helpers shared by the model, adapter and training tests.
#include <vector>

#include <torch/torch.h>

namespace sftest {

/// One intra-op thread while alive (the fixture of the model tests): the nets are tiny (D ≤ 8), and
/// on a busy 2-core machine a second OpenMP thread mostly spins (measured: 1.3 s → 9.7 s for the
/// small cases). The previous setting comes back afterwards.
struct SingleThread {
  int previous = torch::get_num_threads();
  SingleThread() { torch::set_num_threads(1); }
  ~SingleThread() { torch::set_num_threads(previous); }
  SingleThread(const SingleThread&) = delete;
  SingleThread& operator=(const SingleThread&) = delete;
};

/// Sets every BatchNorm's running statistics to the batch statistics of one training-mode pass
/// (cumulative averaging over a single batch) and leaves the net in eval mode. A fresh BatchNorm
/// (mean 0, var 1) barely normalises in eval mode, which would shrink the decoder's signal and
/// hide what conditioning does.
template <class Net, class... Args>
void calibrate_batchnorm(Net& net, const Args&... args) {
  std::vector<torch::nn::BatchNorm2dImpl*> norms;
  for (const auto& m : net->modules(/*include_self=*/false))
    if (auto* bn = m->template as<torch::nn::BatchNorm2d>()) norms.push_back(bn);
  for (auto* bn : norms) {
    bn->reset_running_stats();
    bn->options.momentum(c10::nullopt);
  }
  {
    torch::NoGradGuard g;
    net->train();
    net->forward(args...);
  }
  for (auto* bn : norms) bn->options.momentum(0.1);
  net->eval();
}

}  // namespace sftest
