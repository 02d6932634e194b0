#pragma once
// Scratch directories for tests that write files: <tmp>/scoreflow_test_<pid>/<suite>/<name>, fresh
// on every call; the whole per-process root is removed when the test program exits.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace sftest {

inline std::filesystem::path scratch_dir(const std::string& suite, const std::string& name) {
  namespace fs = std::filesystem;
  struct Root {
    fs::path path = fs::temp_directory_path() / ("scoreflow_test_" + std::to_string(::getpid()));
    ~Root() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const Root root;
  auto dir = root.path / suite / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace sftest
