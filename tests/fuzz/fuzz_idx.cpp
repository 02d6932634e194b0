// libFuzzer target: read_idx / read_idx_images / read_idx_labels on arbitrary bytes (raw or gzip,
// chosen by the file's content). Expected outcome: a tensor or scoreflow::io_error.
#include "fuzz_common.hpp"
#include "scoreflow/torch/data/idx.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = sffuzz::seed_dir()) {
    std::filesystem::create_directories(dir);
    const std::filesystem::path d = dir;
    scoreflow::write_idx(d / "images", torch::randint(0, 256, {2, 4, 4}, torch::kByte));
    scoreflow::write_idx(d / "images.gz", torch::randint(0, 256, {2, 1, 3, 3}, torch::kByte));
    scoreflow::write_idx(d / "labels", torch::tensor({1, 2, 3}, torch::kByte));
    scoreflow::write_idx(d / "floats", torch::rand({2, 2, 2}));
    scoreflow::write_idx(d / "int16.gz", torch::tensor({-1, 7}, torch::kShort));
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = sffuzz::scratch("idx");
  sffuzz::write_file(file, data, size);
  // A 1 MiB payload limit: a header may claim more, and must then be refused, not allocated.
  sffuzz::expect_only<scoreflow::io_error>([&] { scoreflow::read_idx(file, 1 << 20); });
  sffuzz::expect_only<scoreflow::io_error>([&] { scoreflow::read_idx_images(file, 1 << 20); });
  if (size < (1 << 20)) sffuzz::expect_only<scoreflow::io_error>([&] { scoreflow::read_idx_labels(file); });
  return 0;
}
