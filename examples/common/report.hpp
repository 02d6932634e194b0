#pragma once
// A report of one run: figures (PNG files) filed under the seed's section numbers, each with a
// caption saying what was run and the numbers measured beside it, plus text answers. Written as
// report.json (machine-readable, merged by the gallery) and index.html (self-contained page).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "scoreflow/torch/io/atomic_file.hpp"

namespace examples {

struct Figure {
  std::string section;  ///< "B 1.2.1", "A 1.8", ...
  std::string title;
  std::string image;    ///< path relative to the report directory
  std::string caption;  ///< what was run: model, steps, γ, seed
  std::vector<std::pair<std::string, std::string>> numbers{};  ///< measured values shown beside it
};

struct Note {
  std::string section;
  std::string title;
  std::string text;
};

class Report {
 public:
  explicit Report(std::filesystem::path dir) : dir_(std::move(dir)) { std::filesystem::create_directories(dir_); }

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path path(const std::string& relative) const {
    auto p = dir_ / relative;
    std::filesystem::create_directories(p.parent_path());
    return p;
  }

  void add(Figure f) {
    if (!f.numbers.empty()) {  // measured numbers also go to the log as they appear
      std::string line = "[scoreflow] " + f.section + " " + f.title + ":";
      for (const auto& [k, v] : f.numbers) line += " " + k + " = " + v + ";";
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    figures_.push_back(std::move(f));
  }
  void note(Note n) { notes_.push_back(std::move(n)); }
  void timing(const std::string& stage, double seconds) { timings_.emplace_back(stage, seconds); }
  void section_title(const std::string& section, const std::string& title) { section_titles_[section] = title; }

  nlohmann::json to_json() const {
    nlohmann::json j;
    j["section_titles"] = section_titles_;
    for (const auto& f : figures_)
      j["figures"].push_back({{"section", f.section}, {"title", f.title}, {"image", f.image}, {"caption", f.caption},
                              {"numbers", f.numbers}});
    for (const auto& n : notes_) j["notes"].push_back({{"section", n.section}, {"title", n.title}, {"text", n.text}});
    for (const auto& [stage, s] : timings_) j["timings"].push_back({{"stage", stage}, {"seconds", s}});
    return j;
  }

  void merge(const nlohmann::json& j, const std::string& prefix = "") {
    if (j.contains("section_titles"))
      for (auto& [k, v] : j["section_titles"].items()) section_titles_[k] = v.get<std::string>();
    if (j.contains("figures"))
      for (const auto& f : j["figures"]) {
        Figure fig{f["section"], f["title"], prefix + f["image"].get<std::string>(), f["caption"]};
        for (const auto& n : f["numbers"]) fig.numbers.emplace_back(n[0].get<std::string>(), n[1].get<std::string>());
        figures_.push_back(std::move(fig));
      }
    if (j.contains("notes"))
      for (const auto& n : j["notes"]) notes_.push_back({n["section"], n["title"], n["text"]});
    if (j.contains("timings"))
      for (const auto& t : j["timings"]) timings_.emplace_back(t["stage"], t["seconds"]);
  }

  void write_json(const std::string& name = "report.json") const { write_text(dir_ / name, to_json().dump(2)); }

  /// The page: sections in seed order, each with its figures and notes; timings at the end.
  void write_html(const std::string& title, const std::string& intro, const std::string& name = "index.html") const {
    std::vector<std::string> sections;
    for (const auto& f : figures_) add_unique(sections, f.section);
    for (const auto& n : notes_) add_unique(sections, n.section);
    std::sort(sections.begin(), sections.end(), section_less);
    std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape(title) +
                       "</title>\n<style>" + kStyle + "</style></head><body>\n<h1>" + escape(title) + "</h1>\n<p>" +
                       escape(intro) + "</p>\n<nav>";
    for (const auto& s : sections) html += "<a href=\"#" + anchor(s) + "\">" + escape(s) + "</a> ";
    html += "</nav>\n";
    for (const auto& s : sections) {
      const auto t = section_titles_.find(s);
      html += "<section id=\"" + anchor(s) + "\"><h2>" + escape(s) + (t != section_titles_.end() ? " — " + escape(t->second) : "") +
              "</h2>\n";
      for (const auto& n : notes_)
        if (n.section == s) html += "<div class=\"note\"><h3>" + escape(n.title) + "</h3><p>" + escape(n.text) + "</p></div>\n";
      for (const auto& f : figures_) {
        if (f.section != s) continue;
        html += "<figure><img src=\"" + escape(f.image) + "\" alt=\"" + escape(f.title) + "\"><figcaption><b>" +
                escape(f.title) + "</b><br>" + escape(f.caption);
        if (!f.numbers.empty()) {
          html += "<table>";
          for (const auto& [k, v] : f.numbers) html += "<tr><td>" + escape(k) + "</td><td>" + escape(v) + "</td></tr>";
          html += "</table>";
        }
        html += "</figcaption></figure>\n";
      }
      html += "</section>\n";
    }
    if (!timings_.empty()) {
      html += "<section id=\"timings\"><h2>Timings</h2><table>";
      for (const auto& [stage, sec] : timings_) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.1f s", sec);
        html += "<tr><td>" + escape(stage) + "</td><td>" + buf + "</td></tr>";
      }
      html += "</table></section>\n";
    }
    html += "</body></html>\n";
    write_text(dir_ / name, html);
  }

 private:
  static constexpr const char* kStyle =
      "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em;background:#fafafa}"
      "figure{display:inline-block;vertical-align:top;margin:0.5em;padding:0.5em;background:#fff;border:1px solid #ddd;max-width:560px}"
      "figure img{max-width:540px;image-rendering:pixelated}figcaption{font-size:0.85em}"
      "table{border-collapse:collapse;margin-top:0.3em}td{border:1px solid #ccc;padding:2px 6px;font-size:0.85em}"
      ".note{background:#fff;border-left:4px solid #48a;padding:0.3em 1em;margin:0.5em 0}nav a{margin-right:0.6em}";

  static void add_unique(std::vector<std::string>& v, const std::string& s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
  }
  /// "A 1.7.2" < "A 1.10" < "B 1.2": part letter, then numeric components.
  static bool section_less(const std::string& a, const std::string& b) {
    auto key = [](const std::string& s) {
      std::vector<long> k{s.empty() ? 0 : static_cast<long>(s[0])};
      long cur = -1;
      for (char c : s.substr(std::min<std::size_t>(s.size(), 1))) {
        if (c >= '0' && c <= '9') cur = (cur < 0 ? 0 : cur * 10) + (c - '0');
        else if (cur >= 0) k.push_back(cur), cur = -1;
      }
      if (cur >= 0) k.push_back(cur);
      return k;
    };
    return key(a) < key(b);
  }
  static std::string anchor(std::string s) {
    for (auto& c : s)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
    return "s" + s;
  }
  static std::string escape(const std::string& s) {
    std::string out;
    for (char c : s) {
      switch (c) {
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '"': out += "&quot;"; break;
        default: out += c;
      }
    }
    return out;
  }
  static void write_text(const std::filesystem::path& p, const std::string& text) {
    scoreflow::write_file_atomically(p, std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
  }

  std::filesystem::path dir_;
  std::vector<Figure> figures_;
  std::vector<Note> notes_;
  std::vector<std::pair<std::string, double>> timings_;
  std::map<std::string, std::string> section_titles_;
};

/// "what runs now" lines with rate and ETA, on stderr.
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), start_(clock::now()) {
    std::fprintf(stderr, "[scoreflow] %s ...\n", what_.c_str());
  }
  void update(double done, double total, const char* unit) const {
    const double s = seconds();
    const double rate = done / std::max(s, 1e-9);
    const double eta = rate > 0 ? (total - done) / rate : 0;
    std::fprintf(stderr, "\r[scoreflow] %s: %.0f/%.0f %s, %.1f %s/s, ETA %.0f s   ", what_.c_str(), done, total, unit, rate, unit, eta);
    if (done >= total) std::fprintf(stderr, "\n");
  }
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }
  double finish() const {
    const double s = seconds();
    std::fprintf(stderr, "[scoreflow] %s done in %.1f s\n", what_.c_str(), s);
    return s;
  }

 private:
  using clock = std::chrono::steady_clock;
  std::string what_;
  clock::time_point start_;
};

}  // namespace examples
