#pragma once
// The one setup of the example programs (gallery, part_a, part_b): the command line, the CPU
// threads, the device, the data, and the pages written at the end. Every failure is one line on
// stderr and a non-zero exit status, never a backtrace (cli.hpp; tests/cli/check_cli_errors.sh).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>

#include "common/cli.hpp"
#include "common/context.hpp"
#include "common/report.hpp"
#include "scoreflow/torch.hpp"
#include "scoreflow/torch/models/cpu_threads.hpp"

namespace examples {

/// The options all three programs take (each registers --data and --out with its own help).
struct CommonOptions {
  std::string data = "data", out, device = "auto";
  std::uint64_t seed = 42;
};
inline void add_device_and_seed(CLI::App& app, CommonOptions& o) {
  app.add_option("--device", o.device, "cpu, cuda or auto");
  app.add_option("--seed", o.seed, "the one seed used throughout");
}
inline torch::Device device(const CommonOptions& o) {
  return o.device == "auto" ? scoreflow::training::default_device() : torch::Device(o.device);
}

/// `--norm` of train and sample, by name: batch (the seed's BatchNorm) or group (GroupNorm, 8
/// groups). One function for both, so that sample builds the net train wrote.
inline scoreflow::models::Normalization normalization_named(const std::string& norm) {
  if (norm == "batch") return scoreflow::models::Normalization::batch();
  if (norm == "group") return scoreflow::models::Normalization::group(8);
  throw scoreflow::invalid_option("--norm " + norm + ": must be batch or group");
}

/// Parses the command line (a bad one: one line and CLI11's exit status), sets the CPU threads,
/// then runs `body()`; an exception from it becomes "program: reason" and exit status 1.
template <class Body>
int run_program(const char* program, CLI::App& app, int argc, char** argv, Body&& body) {
  one_line_parse_errors(app);
  CLI11_PARSE(app, argc, argv);
  scoreflow::models::set_cpu_threads(at::get_num_threads());  // OMP_NUM_THREADS in LibTorch, one in OpenBLAS
  try {
    return body();
  } catch (const std::exception& e) {
    return report_failure(program, e);
  } catch (...) {
    return report_failure(program);
  }
}

/// main() of a program whose options are one struct: `add_options(app, options)` (found by
/// argument-dependent lookup beside the struct) declares them, `run(options)` does the work.
template <class Options, class Run>
int options_program(const char* program, const char* description, int argc, char** argv, Run&& run) {
  CLI::App app{description};
  Options options;
  add_options(app, options);
  return run_program(program, app, argc, argv, [&] { return run(options); });
}

/// Both splits of a data set, read in full; bad files throw here with one line.
struct Inputs {
  scoreflow::ImageDataset train, test;
};
inline Inputs load_inputs(const scoreflow::DatasetPaths& paths) {
  auto train = scoreflow::load_image_dataset(paths, scoreflow::Split::train);
  return {std::move(train), scoreflow::load_image_dataset(paths, scoreflow::Split::test)};
}
/// A part's context: the first `train_limit` training images (0: all), models cached in <out>/cache.
inline Context make_context(const Inputs& in, std::int64_t train_limit, const std::string& out) {
  return {limited(in.train, train_limit), in.test, nullptr, std::filesystem::path(out) / "cache"};
}

/// report.json and index.html.
inline void write_pages(const Report& report, const std::string& title, const std::string& intro) {
  report.write_json();
  report.write_html(title, intro);
}

}  // namespace examples
