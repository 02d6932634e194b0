#pragma once
// Every command-line program fails the same way: one line on stderr ("program: reason") and exit
// status 1 (2 for a bad command line) — never a LibTorch backtrace, an uncaught exception or an
// abort. LibTorch's c10::Error carries a multi-line backtrace in what(); torch_message drops it.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "scoreflow/torch/torch_message.hpp"

namespace examples {

/// CLI11 reports a bad command line in two lines by default; make it one ("--seed: ... (see --help)").
inline void one_line_parse_errors(CLI::App& app) {
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return scoreflow::detail::torch_message(e) + " (see --help)\n";
  });
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
