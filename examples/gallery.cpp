// The main job: every deliverable of the seed (Part A on our own diffusion model, Part B) as one
// HTML gallery, with the raw samples of each generative model as IDX files.
//
//   gallery [--quick | --full | --tiny] [--out gallery] [--data data] [--dataset mnist|fashion]
//
// --quick (default) fits a 2-core CPU; --full uses the seed's configurations (GPU or a long CPU
// run); --tiny is a smoke test for CI. Trained models are cached under <out>/cache; an
// interrupted run picks up where it stopped.
#include <CLI/CLI.hpp>

#include "common/cli.hpp"
#include "common/context.hpp"
#include "common/part_a.hpp"
#include "common/part_b.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

namespace {
examples::PartBConfig tiny_part_b() {
  auto c = examples::PartBConfig::quick();
  c.train_limit = 512;
  c.denoiser_hidden = 8, c.denoiser_epochs = 1, c.denoiser_batch = 64;
  c.flow_hidden = 8, c.flow_epochs = 1, c.time_flow_epochs = 1, c.comparison_epochs = 1;
  c.snapshot_epochs = {1};
  c.sampling.steps = 4;
  c.eval_per_class = 4, c.comparison_per_class = 4, c.sweep_per_class = 4;
  c.solver_sweep = {{examples::Solver::euler, 4}, {examples::Solver::heun, 2}};
  return c;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"scoreflow gallery: the whole seed (Part A and Part B) as one HTML page"};
  examples::one_line_parse_errors(app);
  std::string out = "gallery", data = "data", dataset = "mnist", device_name = "auto", mode = "quick";
  std::uint64_t seed = 42;
  bool quick = false, full = false, tiny = false;
  app.add_flag("--quick", quick, "small models for a 2-core CPU, about 10 minutes (default)");
  app.add_flag("--full", full, "the seed's configurations");
  app.add_flag("--tiny", tiny, "a smoke test for CI (minutes, meaningless quality)");
  app.add_option("--out", out, "output folder");
  app.add_option("--data", data, "folder with mnist/ and fashion-mnist/ (examples/prepare_data.sh)");
  app.add_option("--dataset", dataset, "mnist or fashion")->check(CLI::IsMember({"mnist", "fashion"}));
  app.add_option("--device", device_name, "cpu, cuda or auto");
  app.add_option("--seed", seed, "the one seed used throughout");
  std::string sweep;
  std::int64_t sweep_per_class = 0;
  app.add_option("--solver-sweep", sweep,
                 "Part B §2.7 quality against model calls on the class flow model, e.g. euler:300,heun:10,midpoint:15 "
                 "(default: the mode's own list)");
  app.add_option("--sweep-per-class", sweep_per_class, "samples per digit for each sweep point (default: as the evaluation)")
      ->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  scoreflow::models::set_cpu_threads(at::get_num_threads());  // OMP_NUM_THREADS in LibTorch, one in OpenBLAS
  if (quick + full + tiny > 1) {
    std::fprintf(stderr, "gallery: choose one of --quick, --full, --tiny\n");
    return 2;
  }
  mode = full ? "full" : tiny ? "tiny" : "quick";
  try {
    const torch::Device device = device_name == "auto" ? scoreflow::training::default_device() : torch::Device(device_name);
    auto b = full ? examples::PartBConfig::full() : tiny ? tiny_part_b() : examples::PartBConfig::quick();
    b.seed = seed, b.device = device;
    if (!sweep.empty()) b.solver_sweep = examples::parse_solver_list(sweep);
    if (sweep_per_class > 0) b.sweep_per_class = sweep_per_class;
    auto a = full ? examples::PartAConfig::full() : tiny ? examples::PartAConfig::tiny() : examples::PartAConfig::quick();
    a.seed = seed, a.device = device;

    // Inputs first: bad data fails with one line, before anything is printed or written.
    const auto paths = dataset == "mnist" ? scoreflow::mnist_paths(data) : scoreflow::fashion_mnist_paths(data);
    const auto train = scoreflow::load_image_dataset(paths, scoreflow::Split::train);
    examples::PartBContext ctx{examples::limited(train, b.train_limit), scoreflow::load_image_dataset(paths, scoreflow::Split::test),
                               nullptr, std::filesystem::path(out) / "cache"};
    examples::Progress total("gallery (" + mode + ")");
    examples::Report report(out);
    ctx.classifier = examples::cached_classifier(examples::limited(train, tiny ? 2000 : 0), ctx.test, ctx.cache, device, &report);

    examples::Progress pb("Part B");
    examples::part_b_denoiser(b, ctx, report);
    examples::part_b_flow(b, ctx, report);
    report.timing("Part B total", pb.finish());

    examples::Progress pa("Part A");
    examples::PartBContext actx = ctx;
    actx.train = examples::limited(train, a.train_limit);
    examples::part_a(a, actx, report);
    report.timing("Part A total", pa.finish());

    report.timing("gallery total (" + mode + ")", total.seconds());
    report.write_json();
    report.write_html("scoreflow gallery — the seed, reproduced (" + mode + ")",
                      "Every deliverable of the seed's Part A (on a diffusion model trained here: MNIST digits play the "
                      "prompts, the unconditional mode plays \"a high quality photo\") and Part B, produced by the scoreflow "
                      "examples through one templated sampler. Seed " + std::to_string(seed) + ", dataset " + dataset +
                      ", device " + device.str() + ". Raw samples: samples/*-idx*-ubyte.");
    total.finish();
    std::printf("gallery written: open %s\n", std::filesystem::absolute(std::filesystem::path(out) / "index.html").c_str());
  } catch (const std::exception& e) {
    return examples::report_failure("gallery", e);
  } catch (...) {
    return examples::report_failure("gallery");
  }
}
