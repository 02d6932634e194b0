// Seed Part B end to end: the one-step denoiser (§1), time- and class-conditioned flow matching
// (§2), every deliverable as PNG figures with a report page. Defaults are the seed's (--full);
// --quick trains small models for a CPU.
//
//   part_b --data data --out part_b_out [--quick] [--device cpu|cuda] [--seed 42]
#include <CLI/CLI.hpp>

#include "common/cli.hpp"
#include "common/context.hpp"
#include "common/part_b.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

int main(int argc, char** argv) {
  CLI::App app{"scoreflow: the seed's Part B (UNet denoiser, flow matching) in C++"};
  examples::one_line_parse_errors(app);
  std::string data = "data", out = "part_b_out", device_name = "auto";
  bool quick = false;
  std::uint64_t seed = 42;
  app.add_option("--data", data, "folder with mnist/ (examples/prepare_data.sh writes it)");
  app.add_option("--out", out, "output folder (figures, report.json, index.html)");
  app.add_flag("--quick", quick, "small models and short runs for a CPU");
  app.add_option("--device", device_name, "cpu, cuda or auto");
  app.add_option("--seed", seed, "the one seed used throughout");
  CLI11_PARSE(app, argc, argv);
  scoreflow::models::set_cpu_threads(at::get_num_threads());  // OMP_NUM_THREADS in LibTorch, one in OpenBLAS
  try {
    auto cfg = quick ? examples::PartBConfig::quick() : examples::PartBConfig::full();
    cfg.seed = seed;
    cfg.device = device_name == "auto" ? scoreflow::training::default_device() : torch::Device(device_name);
    examples::Report report(out);
    const auto paths = scoreflow::mnist_paths(data);
    const auto train = scoreflow::load_image_dataset(paths, scoreflow::Split::train);
    examples::PartBContext ctx{examples::limited(train, cfg.train_limit),
                               scoreflow::load_image_dataset(paths, scoreflow::Split::test), nullptr,
                               std::filesystem::path(out) / "cache"};
    ctx.classifier = examples::cached_classifier(train, ctx.test, ctx.cache, cfg.device, &report);
    examples::part_b_denoiser(cfg, ctx, report);
    examples::part_b_flow(cfg, ctx, report);
    report.write_json();
    report.write_html("scoreflow — Part B", "The seed's Part B in C++ with scoreflow.");
    std::printf("Part B done: open %s\n", (std::filesystem::path(out) / "index.html").c_str());
  } catch (const std::exception& e) {
    return examples::report_failure("part_b", e);
  } catch (...) {
    return examples::report_failure("part_b");
  }
}
