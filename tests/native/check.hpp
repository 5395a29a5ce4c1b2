// The native test program's checking helpers, in the plain style of llm.c's test_gpt2.c: a check prints
// file:line, the case it belongs to and how far off it was, counts the failure and carries on, so one run shows
// every disagreement; main returns non-zero if any check failed. No assert(): NDEBUG would remove it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace rnnfast_test {

using Vec = std::vector<double>;

struct Stats {
  int64_t checks = 0, failures = 0;
  double worst_ratio = 0.0;  // the largest error / tolerance of any passing comparison
  std::string worst_what;
  bool verbose = false;
};

inline Stats& stats() {
  static Stats s;
  return s;
}

// What is being tested right now ("lstm f32 T=5 B=3 ... training forward"), printed with every failure.
inline std::vector<std::string>& context() {
  static std::vector<std::string> c;
  return c;
}

struct Scope {
  explicit Scope(std::string what) { context().push_back(std::move(what)); }
  ~Scope() { context().pop_back(); }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
};

inline std::string where() {
  std::string s;
  for (const std::string& c : context()) s += (s.empty() ? "" : ", ") + c;
  return s;
}

template <class... Args>
std::string format(const char* fmt, Args... args) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, fmt, args...);
  return buffer;
}
inline std::string format(const char* text) { return text; }

inline bool record(bool ok, const char* file, int line, const std::string& what, const std::string& detail) {
  Stats& s = stats();
  ++s.checks;
  if (!ok) {
    ++s.failures;
    std::printf("FAIL %s:%d [%s] %s: %s\n", file, line, where().c_str(), what.c_str(), detail.c_str());
    std::fflush(stdout);
  }
  return ok;
}

// The largest |got - want| over max |want| (NaN counts as infinitely far), and where it is.
struct Error {
  double relative = 0.0, scale = 0.0;
  size_t at = 0;
};

template <class S>
Error relative_error(const S* got, const Vec& want) {
  Error e;
  double worst = 0.0;
  for (size_t k = 0; k < want.size(); ++k) {
    e.scale = std::max(e.scale, std::abs(want[k]));
    double d = std::abs(static_cast<double>(got[k]) - want[k]);
    if (std::isnan(d)) d = std::numeric_limits<double>::infinity();
    if (d > worst || (k == 0)) worst = d, e.at = k;
  }
  e.relative = worst / std::max(e.scale, 1e-30);
  return e;
}

// got (n values of any type) against a double reference, as max |error| / max |reference| <= tolerance.
template <class S>
bool check_close(const char* file, int line, const std::string& what, const S* got, const Vec& want, double tolerance) {
  const Error e = relative_error(got, want);
  const bool ok = e.relative <= tolerance;
  Stats& s = stats();
  if (ok && tolerance > 0 && e.relative / tolerance > s.worst_ratio) {
    s.worst_ratio = e.relative / tolerance;
    s.worst_what = where() + ": " + what;
  }
  if (s.verbose)
    std::printf("  %-60s %-10s max error / max |ref| = %.2e (tolerance %.0e)\n", where().c_str(), what.c_str(),
                e.relative, tolerance);
  return record(ok, file, line, what,
                format("max |error| / max |reference| = %.3g > tolerance %.1g (worst at index %zu: got %.9g, "
                       "want %.9g; max |reference| %.3g)",
                       e.relative, tolerance, e.at, want.empty() ? 0.0 : static_cast<double>(got[e.at]),
                       want.empty() ? 0.0 : want[e.at], e.scale));
}

// Two results that must be the same bit for bit (NaN payloads aside).
template <class S>
bool check_identical(const char* file, int line, const std::string& what, const S* got, const S* want, size_t n) {
  for (size_t k = 0; k < n; ++k)
    if (std::memcmp(&got[k], &want[k], sizeof(S)) != 0 && !(std::isnan(got[k]) && std::isnan(want[k])))
      return record(false, file, line, what,
                    format("differs at index %zu of %zu: %.9g vs %.9g", k, n, static_cast<double>(got[k]),
                           static_cast<double>(want[k])));
  return record(true, file, line, what, "");
}

#define CHECK(cond, ...) \
  rnnfast_test::record(static_cast<bool>(cond), __FILE__, __LINE__, #cond, rnnfast_test::format(__VA_ARGS__))
#define CHECK_CLOSE(what, got, want, tolerance) \
  rnnfast_test::check_close(__FILE__, __LINE__, what, got, want, tolerance)
#define CHECK_IDENTICAL(what, got, want, n) rnnfast_test::check_identical(__FILE__, __LINE__, what, got, want, n)

// Uniform values in [-bound, bound] from a fixed-seed generator, already rounded to S (so the double reference
// sees exactly the values the kernel sees).
template <class S>
std::vector<S> uniform(std::mt19937& rng, size_t n, double bound) {
  std::uniform_real_distribution<double> dist(-bound, bound);
  std::vector<S> v(n);
  for (S& e : v) e = static_cast<S>(dist(rng));
  return v;
}

template <class S>
Vec to_double(const std::vector<S>& v) {
  return Vec(v.begin(), v.end());
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace rnnfast_test
