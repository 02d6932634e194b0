// Seed Part A on a real denoiser: a class-conditioned DDPM trained here on MNIST stands in for
// DeepFloyd IF, and every deliverable (§0 – §1.9) runs through scoreflow::Sampler, written as PNG
// figures with a report page. Defaults are the full model (--full); --quick trains a small one
// for a CPU.
//
//   part_a --data data --out part_a_out [--quick] [--device cpu|cuda] [--seed 42]
#include <optional>

#include <CLI/CLI.hpp>

#include "common/cli.hpp"
#include "common/context.hpp"
#include "common/part_a.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

int main(int argc, char** argv) {
  CLI::App app{"scoreflow: the seed's Part A (sampling loops, SDEdit, inpainting, anagrams, hybrids) on an MNIST DDPM"};
  examples::one_line_parse_errors(app);
  std::string data = "data", out = "part_a_out", device_name = "auto";
  bool quick = false;
  std::uint64_t seed = 42;
  app.add_option("--data", data, "folder with mnist/ (examples/prepare_data.sh writes it)");
  app.add_option("--out", out, "output folder (figures, report.json, index.html)");
  app.add_flag("--quick", quick, "a small model and a short run for a CPU");
  app.add_option("--device", device_name, "cpu, cuda or auto");
  app.add_option("--seed", seed, "the one seed used throughout");
  std::optional<std::int64_t> hidden, epochs, batch, train_limit, eval_per_class;
  std::optional<double> lr;
  std::optional<int> eval_steps;
  app.add_option("--hidden", hidden, "override: UNet hidden dimension D");
  app.add_option("--epochs", epochs, "override: training epochs");
  app.add_option("--batch", batch, "override: batch size");
  app.add_option("--lr", lr, "override: Adam learning rate (decayed tenfold over the run)");
  app.add_option("--train-limit", train_limit, "override: use only the first N training images (0: all)");
  app.add_option("--eval-per-class", eval_per_class, "override: evaluation samples per digit");
  app.add_option("--eval-steps", eval_steps, "override: evaluation grid, spaced(N); 0: strided(990, 30)");
  CLI11_PARSE(app, argc, argv);
  scoreflow::models::set_cpu_threads(at::get_num_threads());  // OMP_NUM_THREADS in LibTorch, one in OpenBLAS
  try {
    auto cfg = quick ? examples::PartAConfig::quick() : examples::PartAConfig::full();
    cfg.seed = seed;
    if (hidden) cfg.hidden = *hidden;
    if (epochs) cfg.epochs = *epochs;
    if (batch) cfg.batch = *batch;
    if (lr) cfg.lr = *lr;
    if (train_limit) cfg.train_limit = *train_limit;
    if (eval_per_class) cfg.eval_per_class = *eval_per_class;
    if (eval_steps) cfg.eval_steps = *eval_steps;
    cfg.device = device_name == "auto" ? scoreflow::training::default_device() : torch::Device(device_name);
    const auto paths = scoreflow::mnist_paths(data);
    const auto train = scoreflow::load_image_dataset(paths, scoreflow::Split::train);
    examples::PartAContext ctx{examples::limited(train, cfg.train_limit),
                               scoreflow::load_image_dataset(paths, scoreflow::Split::test), nullptr,
                               std::filesystem::path(out) / "cache"};
    // Inputs first: bad data fails with one line, before anything is printed or written.
    examples::Progress total("part_a");
    examples::Report report(out);
    {
      examples::Progress p("evaluator classifier (train once, then cached)");
      ctx.classifier = examples::cached_classifier(examples::limited(train, cfg.classifier_limit), ctx.test, ctx.cache, cfg.device, nullptr);
      const double acc = scoreflow::classification_accuracy(ctx.classifier, ctx.test.images, ctx.test.labels);
      report.timing("evaluator classifier (train or load)", p.finish());
      report.note({"A 2", "Evaluator",
                   "CAS (classifier accuracy on generated samples against the class asked for) and Fréchet distance use a "
                   "small CNN trained on " +
                       (cfg.classifier_limit > 0 ? "the first " + std::to_string(cfg.classifier_limit) + " MNIST training images"
                                                 : std::string("the full MNIST training split")) + "; its accuracy on the held-out test split is " +
                       examples::fmt(100 * acc, 4) + "%. Fréchet distances use its 128-d penultimate features: comparable "
                       "within this gallery, not with published FIDs."});
    }
    auto model = examples::part_a_model(cfg, ctx, report);
    examples::part_a_sampling(ctx, model, report);
    examples::part_a_editing(ctx, model, report);
    examples::part_a_illusions(ctx, model, report);
    examples::part_a_evaluation(cfg, ctx, model, report);
    report.timing("part_a total", total.finish());
    report.write_json();
    report.write_html("scoreflow — Part A", "The seed's Part A in C++ with scoreflow, on a class-conditioned MNIST DDPM (seed " +
                                                std::to_string(cfg.seed) + ").");
    std::printf("Part A done: open %s\n", (std::filesystem::path(out) / "index.html").c_str());
  } catch (const std::exception& e) {
    return examples::report_failure("part_a", e);
  } catch (...) {
    return examples::report_failure("part_a");
  }
}
