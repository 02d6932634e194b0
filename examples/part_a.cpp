// Seed Part A on a real denoiser: a class-conditioned DDPM trained here on MNIST stands in for
// DeepFloyd IF, and every deliverable (§0 – §1.9) runs through scoreflow::Sampler, written as PNG
// figures with a report page. Defaults are the full model (--full); --quick trains a small one
// for a CPU.
//
//   part_a --data data --out part_a_out [--quick] [--device cpu|cuda] [--seed 42]
#include <optional>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/part_a.hpp"
#include "common/program.hpp"

namespace {
/// --quick and the overrides of PartAConfig's fields (unset: the mode's value).
struct PartAOptions {
  examples::CommonOptions common{.out = "part_a_out"};
  bool quick = false;
  std::optional<std::int64_t> hidden, epochs, batch, train_limit, eval_per_class;
  std::optional<double> lr;
  std::optional<int> eval_steps;
};

void add_options(CLI::App& app, PartAOptions& o) {
  app.add_option("--data", o.common.data, "folder with mnist/ (examples/prepare_data.sh writes it)");
  app.add_option("--out", o.common.out, "output folder (figures, report.json, index.html)");
  app.add_flag("--quick", o.quick, "a small model and a short run for a CPU");
  examples::add_device_and_seed(app, o.common);
  app.add_option("--hidden", o.hidden, "override: UNet hidden dimension D");
  app.add_option("--epochs", o.epochs, "override: training epochs");
  app.add_option("--batch", o.batch, "override: batch size");
  app.add_option("--lr", o.lr, "override: Adam learning rate (decayed tenfold over the run)");
  app.add_option("--train-limit", o.train_limit, "override: use only the first N training images (0: all)");
  app.add_option("--eval-per-class", o.eval_per_class, "override: evaluation samples per digit");
  app.add_option("--eval-steps", o.eval_steps, "override: evaluation grid, spaced(N); 0: strided(990, 30)");
}

examples::PartAConfig config(const PartAOptions& o) {
  auto cfg = o.quick ? examples::PartAConfig::quick() : examples::PartAConfig::full();
  cfg.seed = o.common.seed;
  cfg.hidden = o.hidden.value_or(cfg.hidden);
  cfg.epochs = o.epochs.value_or(cfg.epochs);
  cfg.batch = o.batch.value_or(cfg.batch);
  cfg.lr = o.lr.value_or(cfg.lr);
  cfg.train_limit = o.train_limit.value_or(cfg.train_limit);
  cfg.eval_per_class = o.eval_per_class.value_or(cfg.eval_per_class);
  cfg.eval_steps = o.eval_steps.value_or(cfg.eval_steps);
  cfg.device = examples::device(o.common);
  return cfg;
}

int run(const PartAOptions& o) {
  const auto cfg = config(o);
  // Inputs first: bad data fails with one line, before anything is printed or written.
  const auto in = examples::load_inputs(scoreflow::mnist_paths(o.common.data));
  auto ctx = examples::make_context(in, cfg.train_limit, o.common.out);
  examples::Progress total("part_a");
  examples::Report report(o.common.out);
  examples::part_a_evaluator(cfg, ctx, in.train, report);
  examples::part_a(cfg, ctx, report);
  report.timing("part_a total", total.finish());
  examples::write_pages(report, "scoreflow — Part A",
                        "The seed's Part A in C++ with scoreflow, on a class-conditioned MNIST DDPM (seed " + std::to_string(cfg.seed) + ").");
  std::printf("Part A done: open %s\n", (std::filesystem::path(o.common.out) / "index.html").c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  return examples::options_program<PartAOptions>(
      "part_a", "scoreflow: the seed's Part A (sampling loops, SDEdit, inpainting, anagrams, hybrids) on an MNIST DDPM", argc, argv, run);
}
