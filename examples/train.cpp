// train: trains one of our UNets on an IDX data set (MNIST, Fashion-MNIST or your own), on one
// process or data-parallel on several with torchrun's conventions, and writes what `sample` reads.
//
//   train --model flow_class --data /tmp/sfdata --epochs 10 --batch 64 --lr 1e-2 --out run1
//   torchrun --no_python --nproc_per_node 2 --redirects 1 --tee 1 ./train --model flow_class ... --out run1
//   sample --model flow_class --weights run1/model.pt --hidden 64 --out samples
//
// Outputs in --out (written by rank 0): checkpoint.pt (resumed when present: run the same command
// again after an interruption), model.pt (the weights; the EMA's with --ema), loss.csv (the global
// loss of every step) and summary.json (settings, processes, seconds, images per second).
// --batch is the global batch: with N processes each trains on its share of every batch, and the
// run equals one process's up to float rounding (BatchNorm: per-rank statistics, README).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>

#include "common/cli.hpp"
#include "common/program.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/distributed/process_group.hpp"
#include "scoreflow/torch/io/loss_log.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

namespace {

namespace sf = scoreflow;
namespace sm = scoreflow::models;
namespace tr = scoreflow::training;
namespace fs = std::filesystem;

struct Options {
  std::string model = "flow_class", data, dataset = "mnist", norm = "batch", out = "train_out";
  std::int64_t hidden = 64, epochs = 10, batch = 64, seed = 0, log_every = 50, checkpoint_every = 0;
  std::optional<std::int64_t> max_steps;
  double lr = 1e-2, ema = 0.0, timeout = 60.0;
  bool seed_decay = true;
};

void add_options(CLI::App& app, Options& o) {
  app.add_option("--model", o.model, "flow_class (seed §2.5), flow_time (§2.2) or ddpm_class (v-prediction DDPM)")
      ->check(CLI::IsMember({"flow_class", "flow_time", "ddpm_class"}));
  app.add_option("--data", o.data, "folder with the IDX files (or its mnist/ or fashion-mnist/ subfolder)")->required();
  app.add_option("--dataset", o.dataset, "mnist or fashion")->check(CLI::IsMember({"mnist", "fashion"}));
  app.add_option("--hidden", o.hidden, "UNet width D (seed: 64)")->check(CLI::PositiveNumber);
  app.add_option("--norm", o.norm, "batch (the seed's BatchNorm) or group (GroupNorm, 8 groups)")
      ->check(CLI::IsMember({"batch", "group"}));
  app.add_option("--epochs", o.epochs, "epochs")->check(CLI::PositiveNumber);
  app.add_option("--batch", o.batch, "global batch size (split across processes)")->check(CLI::PositiveNumber);
  app.add_option("--lr", o.lr, "learning rate (seed: 1e-2, decayed tenfold over the run)")->check(CLI::PositiveNumber);
  app.add_flag("!--no-decay", o.seed_decay, "keep the learning rate constant");
  app.add_option("--ema", o.ema, "EMA decay of the weights (0: none); model.pt then holds the EMA")
      ->check(CLI::Range(0.0, 0.999999));
  app.add_option("--seed", o.seed, "initialisation, data order and noise")->check(CLI::NonNegativeNumber);
  app.add_option("--max-steps", o.max_steps, "stop after this many steps (resume later)")->check(CLI::NonNegativeNumber);
  app.add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints (0: epoch ends)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-every", o.log_every, "steps between progress lines")->check(CLI::PositiveNumber);
  app.add_option("--timeout", o.timeout, "seconds a lost or stalled peer process may take before the run fails")
      ->check(CLI::PositiveNumber);
  app.add_option("--out", o.out, "output folder");
}

template <class Net, class Objective>
int train(const Options& o, Net net, Objective objective, const sf::ImageDataset& data,
          const std::shared_ptr<sf::distributed::Communicator>& comm) {
  const fs::path out(o.out);
  if (comm->is_main()) fs::create_directories(out);
  comm->barrier("creating the output folder");
  tr::TrainOptions to{.epochs = o.epochs, .batch_size = o.batch, .lr = o.lr,
                      .lr_decay = o.seed_decay ? std::optional<double>(tr::seed_lr_decay(o.epochs)) : std::nullopt,
                      .seed = static_cast<std::uint64_t>(o.seed), .log_every = o.log_every, .checkpoint_dir = out,
                      .checkpoint_every = o.checkpoint_every, .max_steps = o.max_steps, .communicator = comm};
  if (o.ema > 0) to.ema = tr::EmaOptions{.decay = o.ema};
  tr::Trainer<Net, Objective> trainer(std::move(net), std::move(objective), to);
  trainer.resume();
  std::optional<sf::LossLog> log;
  if (comm->is_main()) log.emplace(sf::resume_loss_log(out / "loss.csv", trainer.state().step));
  const auto start = std::chrono::steady_clock::now();
  const auto first_step = trainer.state().step;
  tr::TrainCallbacks callbacks;
  callbacks.on_loss = [&](std::int64_t step, std::int64_t epoch, double loss) {
    if (log) log->write(step, epoch, loss, trainer.current_lr());
  };
  callbacks.on_progress = [&](const tr::TrainProgress& p) {
    if (!comm->is_main()) return;
    std::fprintf(stderr, "[train] epoch %lld/%lld step %lld%s loss %.4f lr %.3g, %.0f images/s (%d processes)%s\n",
                 static_cast<long long>(p.epoch + 1), static_cast<long long>(p.epochs), static_cast<long long>(p.step),
                 p.total_steps ? ("/" + std::to_string(*p.total_steps)).c_str() : "", p.loss, p.lr,
                 p.images_per_second, comm->size(),
                 p.eta_seconds ? (", ETA " + std::to_string(static_cast<long long>(*p.eta_seconds)) + " s").c_str() : "");
  };
  trainer.fit(tr::tensor_source(data.images, data.labels), callbacks);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!comm->is_main()) return 0;
  if (trainer.has_ema()) trainer.save_ema_weights(out / "model.pt");
  else tr::save_weights(out / "model.pt", *trainer.net());
  const auto steps = trainer.state().step - first_step;
  nlohmann::json j = {{"model", o.model}, {"hidden", o.hidden}, {"norm", o.norm}, {"epochs", o.epochs},
                      {"global_batch", o.batch}, {"lr", o.lr}, {"ema", o.ema}, {"seed", o.seed},
                      {"processes", comm->size()}, {"steps", trainer.state().step}, {"steps_this_run", steps},
                      {"seconds_this_run", seconds},
                      {"images_per_second", seconds > 0 ? static_cast<double>(steps * o.batch) / seconds : 0.0}};
  const std::string text = j.dump(2) + "\n";
  sf::write_file_atomically(out / "summary.json",
                            std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
  std::printf("trained to step %lld on %d processes (%.1f s): %s\n", static_cast<long long>(trainer.state().step),
              comm->size(), seconds, (out / "model.pt").c_str());
  return 0;
}

int run(const Options& o) {
  sf::distributed::GroupOptions g;
  g.timeout = std::chrono::milliseconds(static_cast<long long>(o.timeout * 1000));
  const auto comm = sf::distributed::connect(sf::distributed::launch_environment(), g);
  const auto paths = o.dataset == "mnist" ? sf::mnist_paths(o.data) : sf::fashion_mnist_paths(o.data);
  auto data = sf::load_image_dataset(paths, sf::Split::train);
  torch::manual_seed(static_cast<std::uint64_t>(o.seed));  // the same initial weights on every rank
  sm::UNetOptions u{.in_channels = data.images.size(1), .hidden = o.hidden, .image_size = data.images.size(2)};
  u.norm = examples::normalization_named(o.norm);
  if (o.model == "flow_time") return train(o, sm::TimeConditionalUNet(u), tr::FlowMatching{}, data, comm);
  if (o.model == "flow_class")
    return train(o, sm::ClassConditionalUNet(u), tr::FlowMatching{tr::ClassDropout{}}, data, comm);
  data.images = data.images * 2 - 1;  // our DDPM's images live in [−1, 1] (sample maps them back)
  return train(o, sm::ClassConditionalUNet(u),
               tr::DiffusionObjective{sf::NoiseSchedule::cosine(), tr::ClassDropout{}, sf::Parameterization::velocity},
               data, comm);
}

}  // namespace

int main(int argc, char** argv) {
  return examples::options_program<Options>("train", "scoreflow train: one of our UNets on IDX data, on one process or several (torchrun)", argc, argv,
                                            [](Options& o) { return run(o); });
}
