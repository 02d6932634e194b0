#pragma once
// Every command-line program fails the same way: one line on stderr ("program: reason") and exit
// status 1 (2 for a bad command line) — never a LibTorch backtrace, an uncaught exception or an
// abort. LibTorch's c10::Error carries a multi-line backtrace in what(); torch_message drops it.
// Also the list syntax their options share ("a,b,c", whole integers).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "scoreflow/torch/torch_message.hpp"

namespace examples {

/// CLI11 reports a bad command line in two lines by default; make it one ("--seed: ... (see --help)").
inline void one_line_parse_errors(CLI::App& app) {
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return scoreflow::detail::torch_message(e) + " (see --help)\n";
  });
}

/// "a,b,,c" → {"a", "b", "", "c"}: every comma-separated item of an option's list, empty ones kept
/// (so the caller rejects them with its own message).
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find(',', start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

/// The whole of `item` as an int, or nothing (empty, not a number, trailing characters, beyond int).
inline std::optional<int> whole_int(const std::string& item) {
  try {
    std::size_t used = 0;
    const int v = std::stoi(item, &used);
    if (used == item.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

/// Prints "program: reason" (one line) and returns the exit status 1.
inline int report_failure(const char* program, const std::exception& e) {
  std::fprintf(stderr, "%s: %s\n", program, scoreflow::detail::torch_message(e).c_str());
  return 1;
}
inline int report_failure(const char* program) {
  std::fprintf(stderr, "%s: failed with an exception that is not a std::exception\n", program);
  return 1;
}

}  // namespace examples
