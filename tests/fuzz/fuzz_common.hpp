#pragma once
// Shared by the libFuzzer targets: the loaders under test take paths, so each input is written to
// one scratch file (in /dev/shm when there is one: a million executions should not touch a disk).
//
// A target passes when every input either loads or throws the loader's documented exception;
// anything else — a crash, a sanitizer report, another exception type — is a finding. With
// SCOREFLOW_FUZZ_WRITE_SEEDS=<dir> a target writes a few valid inputs there and exits: the seed
// corpus, made by the library's own writers.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

namespace sffuzz {

inline std::filesystem::path scratch(const char* target) {
  static const std::filesystem::path path = [&] {
    const std::filesystem::path shm = "/dev/shm";
    const auto dir = std::filesystem::exists(shm) ? shm : std::filesystem::temp_directory_path();
    return dir / ("scoreflow_fuzz_" + std::string(target) + "_" + std::to_string(::getpid()));
  }();
  return path;
}

inline void write_file(const std::filesystem::path& path, const std::uint8_t* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "cannot write the scratch file %s\n", path.c_str());
    std::abort();
  }
}

/// Runs `load`; the documented exception `Expected` is a pass, anything else aborts (a finding).
template <class Expected, class Load>
void expect_only(Load&& load) {
  try {
    load();
  } catch (const Expected&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "undocumented exception %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

/// The seed directory if this run only writes seeds.
inline const char* seed_dir() { return std::getenv("SCOREFLOW_FUZZ_WRITE_SEEDS"); }

}  // namespace sffuzz
