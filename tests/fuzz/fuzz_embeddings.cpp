// libFuzzer target: PromptEmbeddings::load on arbitrary bytes. Expected outcome: embeddings or
// scoreflow::io_error.
#include "fuzz_common.hpp"
#include "scoreflow/torch/interop/prompt_embeddings.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = sffuzz::seed_dir()) {
    std::filesystem::create_directories(dir);
    scoreflow::PromptEmbeddings e;
    e.add("", torch::zeros({77, 2}));
    e.add("a rocket", torch::rand({1, 77, 2}));
    e.save(std::filesystem::path(dir) / "two.sfemb");
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto file = sffuzz::scratch("embeddings");
  sffuzz::write_file(file, data, size);
  sffuzz::expect_only<scoreflow::io_error>([&] { scoreflow::PromptEmbeddings::load(file); });
  return 0;
}
