// Native benchmark of rnnfast's sequence kernels (rnnfast/sequence.hpp): forward in training and inference mode,
// BPTT backward and batch-1 per-token stepping, for RNN / LSTM / GRU over a grid of shapes.
//
// Every kernel is first checked against a plain-loop double-precision reference (tests/native/reference.hpp, shared
// with the native tests) on a slice of its shape (same I and H, small T and B), and the reference's own backward is
// checked against central differences, so a wrong kernel stops the run instead of being timed. The yardstick of the
// "% peak" column is rnnfast's SGEMM on an input-projection shape, timed right before and right after each row: a
// shared host's speed drifts (this project's machine read 151-303 GFLOP/s on that SGEMM within one run), and a rate
// taken once per cell misstated the rows timed after it.
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnnfast/build_info.hpp"
#include "rnnfast/cells.hpp"
#include "rnnfast/gemm.hpp"
#include "rnnfast/parallel.hpp"
#include "rnnfast/sequence.hpp"
// Relative to this file: the reference is shared with the native tests and is not part of the installed headers.
#include "../tests/native/reference.hpp"

#ifndef RNNFAST_ISA
#define RNNFAST_ISA "unknown"
#endif

namespace {

using rnnfast::Cell;
using Clock = std::chrono::steady_clock;
using Vec = std::vector<double>;

// float32 kernel against the double reference, as max |error| over max |reference| of each tensor: sums of up to
// a few thousand float products stay near 1e-6, while any indexing or gate mistake is far above 1e-4.
constexpr double kCheckTolerance = 1e-4;
// The double reference's analytic backward against central differences of its own forward.
constexpr double kSelfTestTolerance = 1e-6;
// The check slice: T and B small enough for plain loops, I and H (and so the thread split of units) as timed.
constexpr int64_t kCheckSteps = 5, kCheckBatch = 4, kCheckGenerationSteps = 8;

struct Shape {
  int64_t T, B, I, H;
};

struct Options {
  int threads = 0;  // 0: rnnfast's default (OMP_NUM_THREADS or the usable cores)
  int reps = 0;     // 0: 10, or 3 with --quick
  bool quick = false;
  std::vector<Cell> cells{Cell::LSTM, Cell::GRU, Cell::RNN_TANH};
  std::vector<Shape> shapes;
  std::string json;
};

const char* cell_name(Cell cell) {
  switch (cell) {
    case Cell::RNN_TANH:
      return "rnn_tanh";
    case Cell::RNN_RELU:
      return "rnn_relu";
    case Cell::LSTM:
      return "lstm";
    case Cell::GRU:
      return "gru";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << "(T=" << s.T << ", B=" << s.B << ", I=" << s.I << ", H=" << s.H << ")";
  return o.str();
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "rnnfast_bench: %s (see --help)\n", message.c_str());
  std::exit(2);
}

void print_help() {
  std::printf(
      "usage: rnnfast_bench [--threads N] [--reps N] [--quick] [--cells lstm,gru,rnn_tanh]\n"
      "                     [--shape T,B,I,H]... [--json FILE]\n"
      "  --threads N   threads for the kernels and for the GEMM peak (default: OMP_NUM_THREADS or all cores)\n"
      "  --reps N      timed repetitions per kernel; the median is reported (default 10, --quick 3)\n"
      "  --quick       small grid, fewer repetitions: a smoke run that still checks every kernel\n"
      "  --cells LIST  comma-separated cells among lstm, gru, rnn_tanh (alias rnn), rnn_relu\n"
      "  --shape S     T,B,I,H; repeat to replace the default grid\n"
      "  --json FILE   also write the results as JSON\n");
}

int64_t parse_int(const std::string& text, const std::string& flag, int64_t minimum) {
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < minimum)
    usage_error(flag + ": got '" + text + "', expected an integer >= " + std::to_string(minimum));
  return v;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, sep)) parts.push_back(part);
  return parts;
}

Options parse_args(int argc, char** argv) {
  Options opt;
  bool cells_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + ": missing value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      print_help();
      std::exit(0);
    } else if (arg == "--threads") {
      opt.threads = static_cast<int>(parse_int(value(), arg, 1));
    } else if (arg == "--reps") {
      opt.reps = static_cast<int>(parse_int(value(), arg, 1));
    } else if (arg == "--quick") {
      opt.quick = true;
    } else if (arg == "--json") {
      opt.json = value();
    } else if (arg == "--cells") {
      const std::string list = value();
      if (!cells_given) opt.cells.clear();
      cells_given = true;
      for (const std::string& name : split(list, ',')) {
        try {
          opt.cells.push_back(rnnfast::cell_from_name(name == "rnn" ? "rnn_tanh" : name));
        } catch (const std::invalid_argument& e) {
          usage_error(std::string("--cells: ") + e.what());
        }
      }
    } else if (arg == "--shape") {
      const std::string text = value();
      const std::vector<std::string> parts = split(text, ',');
      if (parts.size() != 4) usage_error("--shape: got '" + text + "', expected T,B,I,H");
      opt.shapes.push_back({parse_int(parts[0], "--shape T", 1), parse_int(parts[1], "--shape B", 1),
                            parse_int(parts[2], "--shape I", 1), parse_int(parts[3], "--shape H", 1)});
    } else {
      usage_error("unknown argument '" + arg + "'");
    }
  }
  if (opt.cells.empty()) usage_error("--cells: got an empty list");
  if (opt.reps == 0) opt.reps = opt.quick ? 3 : 10;
  if (opt.shapes.empty()) {
    if (opt.quick)
      opt.shapes = {{35, 20, 200, 200}, {100, 1, 256, 256}};
    else
      opt.shapes = {
          {35, 20, 200, 200}, {35, 20, 650, 650}, {100, 64, 512, 512}, {35, 64, 1024, 1024}, {100, 1, 256, 256}};
  }
  return opt;
}

// ----- problems ----------------------------------------------------------------------------------------------

// One layer's parameters and inputs, initialised like PyTorch (weights uniform in +-1/sqrt(H)).
struct Problem {
  Cell cell;
  int64_t T, B, I, H, G;
  std::vector<float> W_ih, W_hh, b_ih, b_hh;  // (G*H, I), (G*H, H), (G*H), (G*H)
  std::vector<float> x;                       // (T, B, I)
  std::vector<float> h0, c0;                  // (B, H)
  std::vector<float> dy;                      // (T, B, H) gradient reaching y
  std::vector<float> dhT, dcT;                // (B, H) gradients reaching the final state

  rnnfast::LayerParams<float> params() const {
    return {cell, I, H, W_ih.data(), W_hh.data(), b_ih.data(), b_hh.data()};
  }
  rnnfast::SeqShape seq() const { return {T, B, nullptr, false}; }
};

std::vector<float> uniform(std::mt19937& rng, int64_t n, float bound) {
  std::uniform_real_distribution<float> dist(-bound, bound);
  std::vector<float> v(n);
  for (float& e : v) e = dist(rng);
  return v;
}

Problem make_problem(Cell cell, const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p{};
  p.cell = cell;
  p.T = s.T, p.B = s.B, p.I = s.I, p.H = s.H, p.G = rnnfast::num_gates(cell);
  const int64_t GH = p.G * s.H;
  const float w = 1.0f / std::sqrt(static_cast<float>(s.H));
  p.W_ih = uniform(rng, GH * s.I, w);
  p.W_hh = uniform(rng, GH * s.H, w);
  p.b_ih = uniform(rng, GH, w);
  p.b_hh = uniform(rng, GH, w);
  p.x = uniform(rng, s.T * s.B * s.I, 1.0f);
  p.h0 = uniform(rng, s.B * s.H, 0.5f);
  p.c0 = uniform(rng, s.B * s.H, 0.5f);
  p.dy = uniform(rng, s.T * s.B * s.H, 1.0f);
  p.dhT = uniform(rng, s.B * s.H, 1.0f);
  p.dcT = uniform(rng, s.B * s.H, 1.0f);
  return p;
}

// ----- the kernels under test ----------------------------------------------------------------------------------

// Outputs and gradients of one layer, allocated once so that the timed calls measure only the kernels.
struct Buffers {
  std::vector<float> y, hT, cT, workspace;        // (T, B, H), (B, H), (B, H), workspace_size
  std::vector<float> dx, dh0, dc0;                // (T, B, I), (B, H), (B, H)
  std::vector<float> dW_ih, dW_hh, db_ih, db_hh;  // like the parameters
  explicit Buffers(const Problem& p)
      : y(p.T * p.B * p.H),
        hT(p.B * p.H),
        cT(p.B * p.H),
        workspace(rnnfast::workspace_size(p.cell, p.T, p.B, p.H)),
        dx(p.T * p.B * p.I),
        dh0(p.B * p.H),
        dc0(p.B * p.H),
        dW_ih(p.W_ih.size()),
        dW_hh(p.W_hh.size()),
        db_ih(p.b_ih.size()),
        db_hh(p.b_hh.size()) {}

  void zero_grads() {
    for (auto* g : {&dW_ih, &dW_hh, &db_ih, &db_hh}) std::fill(g->begin(), g->end(), 0.0f);
  }
};

void kernel_forward(const Problem& p, Buffers& b, bool training) {
  rnnfast::sequence_forward<float>(p.params(), p.seq(), p.x.data(), p.h0.data(), p.c0.data(), b.y.data(), p.H,
                                   b.hT.data(), b.cT.data(), training ? b.workspace.data() : nullptr);
}

// Needs b.workspace from a training-mode kernel_forward of the same problem.
void kernel_backward(const Problem& p, Buffers& b) {
  const rnnfast::LayerGrads<float> grads{b.dW_ih.data(), b.dW_hh.data(), b.db_ih.data(), b.db_hh.data()};
  rnnfast::sequence_backward<float>(p.params(), p.seq(), p.x.data(), b.workspace.data(), p.dy.data(), p.H, p.dhT.data(),
                                    p.dcT.data(), b.dx.data(), false, b.dh0.data(), b.dc0.data(), grads);
}

// Batch-1 generation from the sequence kernel: one T=1 inference call per token, the state carried over.
struct StepState {
  std::vector<float> h, c, h_next, c_next;  // (H) each
  explicit StepState(int64_t H) : h(H), c(H), h_next(H), c_next(H) {}
};

void kernel_steps(const Problem& p, StepState& s, float* y) {  // p.B == 1; y: (T, H)
  const rnnfast::SeqShape one_step{1, 1, nullptr, false};
  std::copy(p.h0.begin(), p.h0.end(), s.h.begin());
  std::copy(p.c0.begin(), p.c0.end(), s.c.begin());
  for (int64_t t = 0; t < p.T; ++t) {
    rnnfast::sequence_forward<float>(p.params(), one_step, p.x.data() + t * p.I, s.h.data(), s.c.data(), y + t * p.H,
                                     p.H, s.h_next.data(), s.c_next.data(), nullptr);
    std::swap(s.h, s.h_next);
    std::swap(s.c, s.c_next);
  }
}

// ----- the double-precision reference ------------------------------------------------------------------------

// The reference itself (PyTorch's equations in plain loops, double precision) lives in tests/native/reference.hpp,
// shared with the native test program.
namespace ref = rnnfast_reference;
using ref::max_abs;

Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

ref::Layer to_reference(const Problem& p) {
  ref::Layer L;
  L.cell = p.cell;
  L.T = p.T, L.B = p.B, L.I = p.I, L.H = p.H, L.G = p.G;
  L.W_ih = to_double(p.W_ih), L.W_hh = to_double(p.W_hh), L.b_ih = to_double(p.b_ih), L.b_hh = to_double(p.b_hh);
  L.x = to_double(p.x), L.h0 = to_double(p.h0), L.c0 = to_double(p.c0);
  return L;
}

// The reference's backward is itself code that can be wrong: check it against central differences on a tiny
// layer of each cell before it is used to judge any kernel.
void self_test_reference() {
  for (Cell cell : {Cell::RNN_TANH, Cell::RNN_RELU, Cell::LSTM, Cell::GRU}) {
    const Problem p = make_problem(cell, {3, 2, 3, 4}, 7);
    for (const ref::GradientError& e :
         ref::gradient_errors(to_reference(p), to_double(p.dy), to_double(p.dhT), to_double(p.dcT))) {
      if (e.relative <= kSelfTestTolerance) continue;
      std::fprintf(stderr,
                   "REFERENCE SELF-TEST FAILED: %s d%s differs from central differences by %.3g (relative), "
                   "tolerance %.1g; the reference backward is wrong, no kernel can be judged\n",
                   cell_name(cell), e.tensor, e.relative, kSelfTestTolerance);
      std::exit(1);
    }
  }
}

// ----- checks --------------------------------------------------------------------------------------------------

// The worst tensor of one check, as max |kernel - reference| / max |reference|.
struct Check {
  double worst = 0.0;
  std::string worst_tensor;

  void compare(const char* tensor, const float* got, const Vec& want) {
    double err = 0.0;
    for (size_t k = 0; k < want.size(); ++k) {
      const double e = std::abs(static_cast<double>(got[k]) - want[k]);
      err = std::max(err, std::isnan(e) ? INFINITY : e);
    }
    const double rel = err / std::max(max_abs(want), 1e-12);
    if (worst_tensor.empty() || rel > worst) {
      worst = rel;
      worst_tensor = tensor;
    }
  }

  void require(Cell cell, const Shape& timed, const char* mode, const Shape& checked, double tolerance) const {
    if (worst <= tolerance) return;
    std::fprintf(stderr,
                 "CHECK FAILED: %s %s on %s: %s differs from the reference by %.3g (max abs error / max abs "
                 "value; tolerance %.1g), checked on %s; not timing a wrong kernel\n",
                 cell_name(cell), mode, shape_str(timed).c_str(), worst_tensor.c_str(), worst, tolerance,
                 shape_str(checked).c_str());
    std::exit(1);
  }
};

struct CheckResults {
  double fwd_train, fwd_infer, bwd, gen;
};

CheckResults check_kernels(Cell cell, const Shape& timed, uint32_t seed) {
  const Shape slice{std::min(timed.T, kCheckSteps), std::min(timed.B, kCheckBatch), timed.I, timed.H};
  const Problem p = make_problem(cell, slice, seed);
  const ref::Layer L = to_reference(p);
  ref::Tape tape;
  const ref::Out want = ref::forward(L, &tape);
  const bool lstm = cell == Cell::LSTM;
  CheckResults out{};

  for (const bool training : {true, false}) {
    Buffers b(p);
    kernel_forward(p, b, training);
    Check c;
    c.compare("y", b.y.data(), want.y);
    c.compare("h_T", b.hT.data(), want.hT);
    if (lstm) c.compare("c_T", b.cT.data(), want.cT);
    c.require(cell, timed, training ? "fwd_train" : "fwd_infer", slice, kCheckTolerance);
    (training ? out.fwd_train : out.fwd_infer) = c.worst;
  }

  {
    Buffers b(p);
    kernel_forward(p, b, true);
    b.zero_grads();
    kernel_backward(p, b);
    const ref::Grads d = ref::backward(L, tape, to_double(p.dy), to_double(p.dhT), to_double(p.dcT));
    Check c;
    c.compare("dx", b.dx.data(), d.x);
    c.compare("dh0", b.dh0.data(), d.h0);
    if (lstm) c.compare("dc0", b.dc0.data(), d.c0);
    c.compare("dW_ih", b.dW_ih.data(), d.W_ih);
    c.compare("dW_hh", b.dW_hh.data(), d.W_hh);
    c.compare("db_ih", b.db_ih.data(), d.b_ih);
    c.compare("db_hh", b.db_hh.data(), d.b_hh);
    c.require(cell, timed, "bwd", slice, kCheckTolerance);
    out.bwd = c.worst;
  }

  {
    const Shape gen_slice{std::min(timed.T, kCheckGenerationSteps), 1, timed.I, timed.H};
    const Problem g = make_problem(cell, gen_slice, seed + 1);
    const ref::Out gref = ref::forward(to_reference(g), nullptr);
    StepState s(g.H);
    std::vector<float> y(g.T * g.H);
    kernel_steps(g, s, y.data());
    Check c;
    c.compare("y", y.data(), gref.y);
    c.compare("h_T", s.h.data(), gref.hT);
    if (lstm) c.compare("c_T", s.c.data(), gref.cT);
    c.require(cell, timed, "gen_step", gen_slice, kCheckTolerance);
    out.gen = c.worst;
  }
  return out;
}

// ----- timing --------------------------------------------------------------------------------------------------

struct Timing {
  double median_ms, min_ms;
};

// `prepare` runs before each repetition outside the timed region (e.g. zeroing accumulated gradients).
template <class Run, class Prepare>
Timing time_reps(int warmup, int reps, Run&& run, Prepare&& prepare) {
  for (int i = 0; i < warmup; ++i) {
    prepare();
    run();
  }
  std::vector<double> ms(reps);
  for (int i = 0; i < reps; ++i) {
    prepare();
    const auto start = Clock::now();
    run();
    ms[i] = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }
  std::sort(ms.begin(), ms.end());
  const double median = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
  return {median, ms.front()};
}

template <class Run>
Timing time_reps(int warmup, int reps, Run&& run) {
  return time_reps(warmup, reps, run, [] {});
}

struct GemmShape {
  int64_t M, N, K;
};

struct GemmRate {
  GemmShape shape;
  double gflops;  // best of the repetitions
};

// The peak is the better of Eigen's GEMM and rnnfast's own packed GEMM on the same operands.
GemmRate measure_gemm(const GemmShape& g, int reps, bool packed) {
  const int64_t M = g.M, N = g.N, K = g.K;
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const RowMat A = RowMat::Random(M, K), B = RowMat::Random(K, N);
  RowMat C(M, N);
  const rnnfast::gemm::View a{A.data(), K, false}, b{B.data(), N, false};
  const Timing t = time_reps(1, reps, [&] {
    if (packed)
      rnnfast::gemm::sgemm(M, N, K, a, b, 0.0f, C.data(), N);
    else
      C.noalias() = A * B;
  });
  return {g, 2.0 * M * N * K / (t.min_ms * 1e6)};
}

// The yardstick SGEMM with its operands allocated once, so that each run times only the product.
class Yardstick {
 public:
  explicit Yardstick(const GemmShape& g)
      : g_(g), A_(RowMat::Random(g.M, g.K)), B_(RowMat::Random(g.K, g.N)), C_(g.M, g.N) {}
  const GemmShape& shape() const { return g_; }
  double gflops() {
    const auto start = Clock::now();
    rnnfast::gemm::sgemm(g_.M, g_.N, g_.K, {A_.data(), g_.K, false}, {B_.data(), g_.N, false}, 0.0f, C_.data(), g_.N);
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    return 2.0 * g_.M * g_.N * g_.K / (s * 1e9);
  }

 private:
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  GemmShape g_;
  RowMat A_, B_, C_;
};

// A kernel timed between two runs of the yardstick (best of 3 each, before its warm-up and after its last
// repetition): `sgemm_gflops` is their mean, the host's speed while the kernel ran as nearly as it can be had without
// disturbing it (a yardstick before every repetition evicts the kernel's operands and slowed even small kernels
// several times over).
struct TimedRow {
  Timing time;
  double sgemm_gflops;
};

template <class Run, class Prepare>
TimedRow time_bracketed(Yardstick& yardstick, int warmup, int reps, Run&& run, Prepare&& prepare) {
  auto sgemm_best_of_3 = [&] { return std::max({yardstick.gflops(), yardstick.gflops(), yardstick.gflops()}); };
  const double before = sgemm_best_of_3();
  const Timing time = time_reps(warmup, reps, run, prepare);
  return {time, 0.5 * (before + sgemm_best_of_3())};
}

template <class Run>
TimedRow time_bracketed(Yardstick& yardstick, int warmup, int reps, Run&& run) {
  return time_bracketed(yardstick, warmup, reps, run, [] {});
}

// Memory read bandwidth, every thread summing its own share of `mib` MiB: the ceiling of batch-1 generation,
// which reads every weight of the model once per token. 16 MiB (a 2x512 LSTM's weights) stays in the shared L3
// cache of large server CPUs; 256 MiB comes from DRAM.
double measure_read_gbps(int64_t mib, int reps) {
  const int64_t n = (mib << 20) / int64_t(sizeof(float));
  std::vector<float> data(n, 1.0f);
  double sink = 0;
  const Timing t = time_reps(1, reps, [&] {
    double total = 0;
#pragma omp parallel num_threads(rnnfast::max_threads()) reduction(+ : total)
    {
      const int64_t per = (n + rnnfast::team_size() - 1) / rnnfast::team_size();
      const int64_t lo = std::min(n, per * rnnfast::thread_id()), hi = std::min(n, lo + per);
      constexpr int kLanes = 64;  // independent partial sums, so the adds keep up with the loads
      float acc[kLanes] = {};
      for (int64_t i = lo; i + kLanes <= hi; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += data[i + l];
      for (int l = 0; l < kLanes; ++l) total += acc[l];
    }
    sink += total;
  });
  if (sink < 0) std::printf("%g", sink);  // keeps the reads from being optimised away
  return n * sizeof(float) / (t.min_ms * 1e6);
}

// ----- results -------------------------------------------------------------------------------------------------

struct Row {
  Cell cell;
  Shape shape;  // B is 1 and T the number of tokens for gen_step
  std::string mode;
  double gflop;  // per timed unit: one call, or one token for gen_step
  Timing time;   // per timed unit
  double check_error;
  double sgemm_gflops;  // the yardstick around this row (see time_bracketed)
  double gflops() const { return gflop / (time.median_ms * 1e-3); }
  double pct_peak() const { return 100.0 * gflops() / sgemm_gflops; }
};

// GEMM work only (2*M*N*K per GEMM); the pointwise gate math is not counted.
double forward_gflop(int G, const Shape& s) { return 2.0 * s.T * s.B * G * s.H * double(s.I + s.H) * 1e-9; }

const char* kFlopFormula =
    "GEMM flops only, 2*M*N*K each, G = gates (lstm 4, gru 3, rnn 1); pointwise gate math not counted.\n"
    "  fwd_train, fwd_infer: input projection 2*T*B*I*G*H + recurrent 2*T*B*H*G*H = 2*T*B*G*H*(I+H)\n"
    "  bwd: dX 2*T*B*G*H*I + dW_ih 2*T*B*G*H*I + dW_hh 2*T*B*G*H*H + dh_prev 2*T*B*G*H*H = 4*T*B*G*H*(I+H)\n"
    "  gen_step: B=1, T calls with T=1; ms and flops are per token: 2*G*H*(I+H)";

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string simd_in_use() { return Eigen::SimdInstructionSetsInUse(); }

void write_json(const std::string& path, const Options& opt, const std::vector<GemmRate>& gemms, double peak,
                const std::vector<int64_t>& read_sizes_mib, const std::vector<double>& read_gbps,
                const std::vector<Row>& rows) {
  std::ofstream f(path);
  if (!f) {
    std::fprintf(stderr, "rnnfast_bench: --json: cannot write '%s'\n", path.c_str());
    std::exit(2);
  }
  f << "{\n  \"threads\": " << rnnfast::max_threads() << ",\n  \"reps\": " << opt.reps
    << ",\n  \"quick\": " << (opt.quick ? "true" : "false") << ",\n  \"isa\": \"" << RNNFAST_ISA
    << "\",\n  \"eigen_simd\": \"" << json_escape(simd_in_use()) << "\",\n  \"compiler\": \""
    << json_escape(rnnfast::compiler_name()) << "\",\n  \"openmp\": " << (rnnfast::openmp_enabled() ? "true" : "false")
    << ",\n  \"flop_formula\": \"" << json_escape(kFlopFormula) << "\",\n  \"check_tolerance\": " << kCheckTolerance
    << ",\n  \"gemm\": [";
  for (size_t i = 0; i < gemms.size(); ++i)
    f << (i ? ", " : "") << "{\"M\": " << gemms[i].shape.M << ", \"N\": " << gemms[i].shape.N
      << ", \"K\": " << gemms[i].shape.K << ", \"gflops\": " << gemms[i].gflops << "}";
  f << "],\n  \"peak_gflops\": " << peak << ",\n  \"read_bandwidth\": [";
  for (size_t i = 0; i < read_gbps.size(); ++i)
    f << (i ? ", " : "") << "{\"mib\": " << read_sizes_mib[i] << ", \"gbps\": " << read_gbps[i] << "}";
  f << "],\n  \"results\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    f << "    {\"cell\": \"" << cell_name(r.cell) << "\", \"T\": " << r.shape.T << ", \"B\": " << r.shape.B
      << ", \"I\": " << r.shape.I << ", \"H\": " << r.shape.H << ", \"mode\": \"" << r.mode
      << "\", \"ms_median\": " << r.time.median_ms << ", \"ms_min\": " << r.time.min_ms << ", \"gflop\": " << r.gflop
      << ", \"gflops\": " << r.gflops() << ", \"sgemm_gflops\": " << r.sgemm_gflops
      << ", \"pct_peak\": " << r.pct_peak() << ", \"check_max_rel_error\": " << r.check_error << "}"
      << (i + 1 < rows.size() ? "," : "") << "\n";
  }
  f << "  ]\n}\n";
}

void print_row(const Row& r) {
  std::printf("%-8s %5lld %4lld %5lld %5lld  %-9s %11.4f %9.1f %9.1f %6.1f%%  %8.1e\n", cell_name(r.cell),
              static_cast<long long>(r.shape.T), static_cast<long long>(r.shape.B), static_cast<long long>(r.shape.I),
              static_cast<long long>(r.shape.H), r.mode.c_str(), r.time.median_ms, r.gflops(), r.sgemm_gflops,
              r.pct_peak(), r.check_error);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);
  if (opt.threads > 0) rnnfast::set_num_threads(opt.threads);
  const int warmup = opt.quick ? 1 : 2;

  std::printf(
      "# rnnfast_bench: isa %s, Eigen SIMD %s, %s, OpenMP %s, %d thread(s), median of %d reps after %d "
      "warm-up\n",
      RNNFAST_ISA, simd_in_use().c_str(), rnnfast::compiler_name().c_str(), rnnfast::openmp_enabled() ? "on" : "off",
      rnnfast::max_threads(), opt.reps, warmup);

  self_test_reference();
  std::printf("# reference self-test: analytic backward matches central differences for every cell\n");

  // Square GEMM, then shapes like the layers' own: an input projection and one recurrent step.
  const std::vector<GemmShape> gemm_shapes =
      opt.quick ? std::vector<GemmShape>{{1024, 1024, 1024}, {700, 800, 200}, {20, 800, 200}}
                : std::vector<GemmShape>{{2048, 2048, 2048}, {6400, 2048, 512}, {64, 4096, 1024}};
  const int gemm_reps = opt.quick ? 3 : 5;
  std::vector<GemmRate> gemms;
  double peak = 0.0;
  for (const GemmShape& g : gemm_shapes) {
    for (const bool packed : {false, true}) {
      gemms.push_back(measure_gemm(g, gemm_reps, packed));
      peak = std::max(peak, gemms.back().gflops);
      std::printf("# SGEMM (%s) M=%lld N=%lld K=%lld: %.1f GFLOP/s (best of %d)\n", packed ? "rnnfast" : "Eigen",
                  static_cast<long long>(g.M), static_cast<long long>(g.N), static_cast<long long>(g.K),
                  gemms.back().gflops, gemm_reps);
    }
  }
  const std::vector<int64_t> read_sizes_mib{16, 256};
  std::vector<double> read_gbps;
  for (int64_t mib : read_sizes_mib) {
    read_gbps.push_back(measure_read_gbps(mib, 2 * gemm_reps));
    std::printf("# memory read bandwidth over %lld MiB (%d thread(s), best of %d): %.1f GB/s\n",
                static_cast<long long>(mib), rnnfast::max_threads(), 2 * gemm_reps, read_gbps.back());
  }
  std::string flop_lines = kFlopFormula;
  for (size_t at = flop_lines.find('\n'); at != std::string::npos; at = flop_lines.find('\n', at + 1))
    flop_lines.insert(at + 1, "#");
  Yardstick yardstick(gemm_shapes[1]);
  std::printf(
      "# best SGEMM above = %.1f GFLOP/s; sgemm: rnnfast's SGEMM M=%lld N=%lld K=%lld, the mean of its best "
      "of 3 right before and right after each row; %%peak: GFLOP/s / sgemm\n# FLOPs: %s\n",
      peak, static_cast<long long>(yardstick.shape().M), static_cast<long long>(yardstick.shape().N),
      static_cast<long long>(yardstick.shape().K), flop_lines.c_str());
  std::printf(
      "# check: max |kernel - double reference| / max |reference| over every output and gradient, on "
      "T<=%lld, B<=%lld (gen_step: T<=%lld), tolerance %.0e\n",
      static_cast<long long>(kCheckSteps), static_cast<long long>(kCheckBatch),
      static_cast<long long>(kCheckGenerationSteps), kCheckTolerance);
  std::printf("\n%-8s %5s %4s %5s %5s  %-9s %11s %9s %9s %7s  %8s\n", "cell", "T", "B", "I", "H", "mode", "ms(median)",
              "GFLOP/s", "sgemm", "%peak", "check");

  std::vector<Row> rows;
  uint32_t seed = 1;  // check_kernels uses seed and seed + 1
  for (const Shape& s : opt.shapes) {
    for (Cell cell : opt.cells) {
      const CheckResults checks = check_kernels(cell, s, seed);
      const Problem p = make_problem(cell, s, seed + 2);
      const int G = p.G;
      Buffers b(p);

      // The timed shape itself, beyond the reference slice: inference (chunked input projection) must agree
      // with training (one projection for all steps).
      kernel_forward(p, b, true);
      const Vec y_train = to_double(b.y);
      kernel_forward(p, b, false);
      Check consistency;
      consistency.compare("y (inference vs training)", b.y.data(), y_train);
      consistency.require(cell, s, "fwd_infer", s, kCheckTolerance);

      const double fwd = forward_gflop(G, s);
      auto add_row = [&](const Shape& shape, const char* mode, double gflop, const TimedRow& t, double check) {
        rows.push_back({cell, shape, mode, gflop, t.time, check, t.sgemm_gflops});
        print_row(rows.back());
      };
      add_row(s, "fwd_train", fwd, time_bracketed(yardstick, warmup, opt.reps, [&] { kernel_forward(p, b, true); }),
              checks.fwd_train);
      add_row(s, "fwd_infer", fwd, time_bracketed(yardstick, warmup, opt.reps, [&] { kernel_forward(p, b, false); }),
              std::max(checks.fwd_infer, consistency.worst));
      kernel_forward(p, b, true);  // backward reads this forward's workspace
      add_row(s, "bwd", 2.0 * fwd,
              time_bracketed(
                  yardstick, warmup, opt.reps, [&] { kernel_backward(p, b); }, [&] { b.zero_grads(); }),
              checks.bwd);

      const Shape gen_shape{s.T, 1, s.I, s.H};
      const Problem g = make_problem(cell, gen_shape, seed + 3);
      seed += 4;
      StepState state(g.H);
      std::vector<float> y(g.T * g.H);
      TimedRow per_token = time_bracketed(yardstick, warmup, opt.reps, [&] { kernel_steps(g, state, y.data()); });
      per_token.time = {per_token.time.median_ms / g.T, per_token.time.min_ms / g.T};
      add_row(gen_shape, "gen_step", forward_gflop(G, {1, 1, s.I, s.H}), per_token, checks.gen);
    }
  }
  if (!opt.json.empty()) {
    write_json(opt.json, opt, gemms, peak, read_sizes_mib, read_gbps, rows);
    std::printf("\n# wrote %s\n", opt.json.c_str());
  }
  return 0;
}
