#pragma once
// Loss curves as PNG, drawn by gnuplot (an external program, so no plotting library is linked).
//
// The script goes to a private temporary file and gnuplot is started directly (posix_spawn, no
// shell), so titles and paths need no shell quoting; inside the script they are gnuplot
// single-quoted strings. The PNG is drawn to `<png>.tmp` and renamed when gnuplot succeeds, so a
// failed plot never replaces a good one. POSIX only (Linux, macOS).
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scoreflow/errors.hpp"
#include "scoreflow/torch/io/atomic_file.hpp"
#include "scoreflow/torch/io/io_error.hpp"
#include "scoreflow/torch/io/loss_log.hpp"

extern char** environ;

namespace scoreflow {

struct PlotOptions {
  std::string title = "Training loss";
  std::string xlabel = "step";
  std::string ylabel = "loss";
  bool log_y = true;
  int width = 900;   ///< pixels
  int height = 540;
  /// Also draw a (debiased) exponential moving average with this decay per record (0: none).
  double ema = 0.9;
  std::string gnuplot = "gnuplot";  ///< program name (searched on PATH) or path
};

/// The absolute path of `program` (a name looked up on PATH, or a path), empty if it is not an
/// executable file.
inline std::filesystem::path find_executable(const std::string& program) {
  const auto executable = [](const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  if (program.empty()) return {};
  if (program.find('/') != std::string::npos) return executable(program) ? std::filesystem::absolute(program) : std::filesystem::path{};
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
    if (executable(candidate)) return candidate;
  }
  return {};
}

inline bool gnuplot_available(const std::string& program = "gnuplot") { return !find_executable(program).empty(); }

namespace detail {
/// A gnuplot single-quoted string: only ' needs escaping (as ''); newlines become spaces.
inline std::string gnuplot_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += "''";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out + "'";
}

/// A new, empty, private file from a mkstemp template (removed by the destructor).
class TempFile {
 public:
  explicit TempFile(const std::string& suffix) {
    auto pattern = (std::filesystem::temp_directory_path() / ("scoreflow_XXXXXX" + suffix)).string();
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    const int fd = ::mkstemps(name.data(), static_cast<int>(suffix.size()));
    if (fd < 0) throw io_error(concat("cannot create a temporary file '", pattern, "': ", std::strerror(errno)));
    ::close(fd);
    path_ = name.data();
  }
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Runs `program args...` with stdout and stderr going to `log`; returns the exit status
/// (-1 if it could not start or did not exit normally).
inline int run_program(const std::filesystem::path& program, const std::vector<std::string>& args,
                       const std::filesystem::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<std::string> storage{program.string()};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int started = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (started != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace detail

namespace detail {
inline void check_plot_options(const PlotOptions& options) {
  detail::require(options.width >= 16 && options.height >= 16, "PlotOptions width×height",
                  detail::concat(options.width, "×", options.height), "must be at least 16×16");
  detail::require(options.ema >= 0.0 && options.ema < 1.0, "PlotOptions ema", options.ema, "must be in [0, 1)");
}

/// Runs gnuplot on the terminal/title/axes preamble followed by `body`, drawing `png` atomically.
inline void run_gnuplot(const std::filesystem::path& png, const PlotOptions& options, const std::string& body) {
  const auto program = find_executable(options.gnuplot);
  if (program.empty())
    detail::throw_io(png, "cannot plot: gnuplot executable '", options.gnuplot,
                     "' not found (install gnuplot, e.g. the Debian package gnuplot-nox)");
  write_atomically(png, [&](const std::filesystem::path& tmp) {
    detail::TempFile script(".gp"), log(".log");
    {
      std::ofstream gp(script.path());
      const auto size = detail::concat(options.width, ",", options.height);
      // pngcairo draws antialiased curves; plain png (libgd) is the fallback some builds have.
      gp << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) { set terminal pngcairo size " << size
         << " } else { set terminal png size " << size << " }\n"
         << "set output " << detail::gnuplot_quote(tmp.string()) << "\n"
         << "set title " << detail::gnuplot_quote(options.title) << " noenhanced\n"
         << "set xlabel " << detail::gnuplot_quote(options.xlabel) << " noenhanced\n"
         << "set ylabel " << detail::gnuplot_quote(options.ylabel) << " noenhanced\n"
         << (options.log_y ? "set logscale y\n" : "") << "set grid\n"
         << body;
      if (!gp) detail::throw_io(script.path(), "cannot write the gnuplot script");
    }
    const int status = detail::run_program(program, {script.path().string()}, log.path());
    std::error_code ec;
    if (status != 0 || !std::filesystem::is_regular_file(tmp, ec) || std::filesystem::file_size(tmp, ec) == 0) {
      std::ifstream in(log.path());
      const std::string messages((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      detail::throw_io(png, "gnuplot (", program.string(), ") failed with status ", status, ": ", messages);
    }
  });
}
}  // namespace detail

/// Draws the loss log `csv` (see loss_log.hpp: step,epoch,loss,lr) as a PNG curve of loss over
/// step, log-scaled in y by default. Throws io_error naming the file when the log is missing or
/// empty, when gnuplot cannot be found (install gnuplot, e.g. Debian's gnuplot-nox), or when
/// gnuplot fails (its messages are included).
inline void plot_loss_curve(const std::filesystem::path& csv, const std::filesystem::path& png,
                            const PlotOptions& options = {}) {
  detail::check_plot_options(options);
  if (read_loss_log(csv).empty()) detail::throw_io(csv, "no loss records to plot yet");
  std::ostringstream gp;
  gp << "set datafile separator ','\nset key top right\n";
  const auto data = detail::gnuplot_quote(csv.string());
  gp << "plot " << data << " skip 1 using 1:3 with lines lc rgb '#9ecae1' title 'loss'";
  if (options.ema > 0.0) {
    // Debiased running EMA of column 3 (as TensorBoard's smoothing: no pull towards the
    // first value); NaN/inf losses are skipped.
    gp << ", \\\n  e = 0, n = 0, a = " << options.ema << ", " << data
       << " skip 1 using 1:(($3 == $3 && abs($3) < 1e308) ? (e = a*e + (1-a)*$3, n = n + 1, e/(1 - a**n))"
       << " : (n > 0 ? e/(1 - a**n) : NaN))"
       << " with lines lw 2 lc rgb '#08519c' title 'EMA " << options.ema << "'";
  }
  gp << "\n";
  detail::run_gnuplot(png, options, gp.str());
}

/// One named curve of a line plot.
struct PlotSeries {
  std::string name;
  std::vector<double> x, y;
};

/// Several named curves (points joined by lines) in one PNG, e.g. quality against model calls
/// for every solver; `log_x` for a log-scaled x axis. Non-finite points are skipped.
inline void plot_series(const std::filesystem::path& png, const std::vector<PlotSeries>& series,
                        const PlotOptions& options, bool log_x = false) {
  detail::check_plot_options(options);
  detail::require(!series.empty(), "plot_series series", 0, "must not be empty");
  std::ostringstream gp;
  gp.precision(17);
  gp << (log_x ? "set logscale x\n" : "") << "set key outside right top\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    if (s.x.size() != s.y.size())
      throw invalid_option(detail::concat("plot_series: series '", s.name, "' has ", s.x.size(), " x and ", s.y.size(),
                                          " y values"));
    gp << "$d" << k << " << EOD\n";
    for (std::size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) gp << s.x[i] << " " << s.y[i] << "\n";
    gp << "EOD\n";
  }
  gp << "plot ";
  for (std::size_t k = 0; k < series.size(); ++k)
    gp << (k ? ", \\\n  " : "") << "$d" << k << " using 1:2 with linespoints lw 2 title "
       << detail::gnuplot_quote(series[k].name) << " noenhanced";
  gp << "\n";
  detail::run_gnuplot(png, options, gp.str());
}

/// One panel of plot_panels: its y axis and curves.
struct PlotPanel {
  std::string ylabel;
  bool log_y = false;
  std::vector<PlotSeries> series;
};

/// Panels side by side in one PNG over a shared x quantity (options.xlabel), under one title
/// (options.title); options.log_y is ignored, each panel says its own.
inline void plot_panels(const std::filesystem::path& png, const std::vector<PlotPanel>& panels, const PlotOptions& options) {
  detail::check_plot_options(options);
  detail::require(!panels.empty(), "plot_panels panels", 0, "must not be empty");
  std::ostringstream gp;
  gp.precision(17);
  for (std::size_t p = 0; p < panels.size(); ++p)
    for (std::size_t k = 0; k < panels[p].series.size(); ++k) {
      const auto& s = panels[p].series[k];
      if (s.x.size() != s.y.size())
        throw invalid_option(detail::concat("plot_panels: series '", s.name, "' has ", s.x.size(), " x and ", s.y.size(),
                                            " y values"));
      gp << "$p" << p << "s" << k << " << EOD\n";
      for (std::size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) gp << s.x[i] << " " << s.y[i] << "\n";
      gp << "EOD\n";
    }
  gp << "unset title\nset key top left font ',9'\nset multiplot layout 1," << panels.size() << " title "
     << detail::gnuplot_quote(options.title) << " noenhanced\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    detail::require(!panels[p].series.empty(), "plot_panels panel series", p, "must not be empty");
    gp << "unset logscale y\n" << (panels[p].log_y ? "set logscale y\n" : "") << "set ylabel "
       << detail::gnuplot_quote(panels[p].ylabel) << " noenhanced\nplot ";
    for (std::size_t k = 0; k < panels[p].series.size(); ++k)
      gp << (k ? ", \\\n  " : "") << "$p" << p << "s" << k << " using 1:2 with linespoints lw 2 title "
         << detail::gnuplot_quote(panels[p].series[k].name) << " noenhanced";
    gp << "\n";
  }
  gp << "unset multiplot\n";
  detail::run_gnuplot(png, options, gp.str());
}

}  // namespace scoreflow
