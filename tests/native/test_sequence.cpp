// The recurrent kernels (rnnfast/sequence.hpp) and the generation loop (rnnfast/sample.hpp) against the double
// reference of reference.hpp, whose own backward is first checked against central differences.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "reference.hpp"
#include "rnnfast/gemm.hpp"
#include "rnnfast/parallel.hpp"
#include "rnnfast/sample.hpp"
#include "rnnfast/sequence.hpp"

namespace rnnfast_test {
namespace {

namespace ref = rnnfast_reference;
using rnnfast::Cell;

// float32 kernels against the double reference, as max |error| / max |reference| per tensor. The kernels sum at
// most I + H = 150 products per gate and the backward's weight gradients up to T*B = 360 rows; float32 rounding of
// such sums stays near 1e-6 of the largest value (at most 1.1e-6 measured here), while an indexing, gate-order or
// length mistake is off by 1e-4 or more.
constexpr double kFloatTolerance = 1e-5;
// float64 kernels: the same sums in double, a few units of 1e-16; a mistake is as large as in float32.
constexpr double kDoubleTolerance = 1e-12;
// The reference's analytic backward against central differences (step 1e-6): truncation error ~1e-11 and
// cancellation ~1e-10 relative.
constexpr double kSelfTestTolerance = 1e-6;

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

constexpr Cell kCells[] = {Cell::RNN_TANH, Cell::RNN_RELU, Cell::LSTM, Cell::GRU};

// One test layer: shapes and which features are exercised.
struct Case {
  int64_t T, B, I, H;
  bool lengths, reverse, bias;
};

std::string describe(Cell cell, const Case& c) {
  return format("%s T=%lld B=%lld I=%lld H=%lld%s%s%s", cell_name(cell), static_cast<long long>(c.T),
                static_cast<long long>(c.B), static_cast<long long>(c.I), static_cast<long long>(c.H),
                c.lengths ? " lengths" : "", c.reverse ? " reverse" : "", c.bias ? "" : " no-bias");
}

// Inputs as float32-representable doubles: the float kernel, the double kernel and the reference all see exactly
// the same values. Weights like PyTorch's initialisation (uniform in +-1/sqrt(H)).
struct Data {
  ref::Layer layer;
  Vec dy, dhT, dcT;  // gradients reaching y (T, B, H), h_T and c_T (B, H)
  Vec grad_prefill;  // accumulated into: every parameter gradient starts from these (G*H*(I+H+2))
  Vec dx_prefill;    // (T, B, I) for accumulate_dx
};

Data make_data(Cell cell, const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t G = rnnfast::num_gates(cell), GH = G * c.H;
  const double w = 1.0 / std::sqrt(static_cast<double>(c.H));
  Data d;
  ref::Layer& L = d.layer;
  L.cell = cell;
  L.T = c.T, L.B = c.B, L.I = c.I, L.H = c.H, L.G = G;
  L.W_ih = to_double(uniform<float>(rng, GH * c.I, w));
  L.W_hh = to_double(uniform<float>(rng, GH * c.H, w));
  if (c.bias) {
    L.b_ih = to_double(uniform<float>(rng, GH, w));
    L.b_hh = to_double(uniform<float>(rng, GH, w));
  }
  L.x = to_double(uniform<float>(rng, c.T * c.B * c.I, 1.0));
  L.h0 = to_double(uniform<float>(rng, c.B * c.H, 0.5));
  L.c0 = to_double(uniform<float>(rng, c.B * c.H, 0.5));
  if (c.lengths) {
    // Unsorted, with a full-length and a length-1 sequence whenever the batch has room for them.
    std::uniform_int_distribution<int64_t> length(1, c.T);
    for (int64_t b = 0; b < c.B; ++b) L.lengths.push_back(b == 0 ? 1 : b == 1 ? c.T : length(rng));
  }
  L.reverse = c.reverse;
  d.dy = to_double(uniform<float>(rng, c.T * c.B * c.H, 1.0));
  d.dhT = to_double(uniform<float>(rng, c.B * c.H, 1.0));
  d.dcT = to_double(uniform<float>(rng, c.B * c.H, 1.0));
  d.grad_prefill = to_double(uniform<float>(rng, GH * (c.I + c.H + 2), 0.5));
  d.dx_prefill = to_double(uniform<float>(rng, c.T * c.B * c.I, 0.5));
  return d;
}

template <class S>
std::vector<S> as(const Vec& v) {
  return std::vector<S>(v.begin(), v.end());
}

// Everything one run of the kernels produces. The forward's y is written with a row stride above H (as a
// bidirectional layer writes its half of the output); the columns past H hold a sentinel that must survive.
template <class S>
struct Results {
  std::vector<S> y_train, hT_train, cT_train;  // training forward: y (T, B, H) without the padding
  std::vector<S> y_infer, hT_infer, cT_infer;  // inference forward
  int64_t y_padding_changed = 0;               // sentinel columns the forwards wrote
  // (a) dy, dhT, dcT given, dx overwritten (prefilled with NaN), every gradient accumulated onto the prefill.
  std::vector<S> dx_a, dh0_a, dc0_a, dW_ih_a, dW_hh_a, db_ih_a, db_hh_a;
  // (b) dy and dcT absent (zeros), dx accumulated onto the prefill, no bias gradients asked for.
  std::vector<S> dx_b, dh0_b, dW_ih_b, dW_hh_b;
};

template <class S>
Results<S> run_kernels(const Data& d, int threads) {
  rnnfast::set_num_threads(threads);
  const ref::Layer& L = d.layer;
  const Cell cell = L.cell;
  const int64_t T = L.T, B = L.B, I = L.I, H = L.H, GH = L.G * H;
  const bool lstm = cell == Cell::LSTM;
  const std::vector<S> W_ih = as<S>(L.W_ih), W_hh = as<S>(L.W_hh), b_ih = as<S>(L.b_ih), b_hh = as<S>(L.b_hh);
  const std::vector<S> x = as<S>(L.x), h0 = as<S>(L.h0), c0 = as<S>(L.c0);
  const rnnfast::LayerParams<S> p{
      cell, I, H, W_ih.data(), W_hh.data(), b_ih.empty() ? nullptr : b_ih.data(), b_hh.empty() ? nullptr : b_hh.data()};
  const rnnfast::SeqShape shape{T, B, L.lengths.empty() ? nullptr : L.lengths.data(), L.reverse};
  const S nan = static_cast<S>(kNaN), sentinel = S(7);
  const int64_t ldy = H + 3;

  Results<S> r;
  std::vector<S> workspace(rnnfast::workspace_size(cell, T, B, H), nan);
  auto forward = [&](bool training, std::vector<S>& y, std::vector<S>& hT, std::vector<S>& cT) {
    std::vector<S> y_padded(T * B * ldy, sentinel);
    hT.assign(B * H, nan);
    cT.assign(B * H, nan);
    rnnfast::sequence_forward<S>(p, shape, x.data(), h0.data(), c0.data(), y_padded.data(), ldy, hT.data(), cT.data(),
                                 training ? workspace.data() : nullptr);
    y.resize(T * B * H);
    for (int64_t row = 0; row < T * B; ++row) {
      std::copy(&y_padded[row * ldy], &y_padded[row * ldy] + H, &y[row * H]);
      for (int64_t k = H; k < ldy; ++k) r.y_padding_changed += y_padded[row * ldy + k] != sentinel;
    }
  };
  forward(false, r.y_infer, r.hT_infer, r.cT_infer);
  forward(true, r.y_train, r.hT_train, r.cT_train);  // last: backward reads its workspace

  // dy with the same row stride, NaN in the columns the kernel must not read.
  std::vector<S> dy(T * B * ldy, nan);
  for (int64_t row = 0; row < T * B; ++row)
    for (int64_t k = 0; k < H; ++k) dy[row * ldy + k] = static_cast<S>(d.dy[row * H + k]);
  const std::vector<S> dhT = as<S>(d.dhT), dcT = as<S>(d.dcT);
  auto prefilled = [&](int64_t offset, int64_t n) {
    return std::vector<S>(d.grad_prefill.begin() + offset, d.grad_prefill.begin() + offset + n);
  };
  {
    r.dx_a.assign(T * B * I, nan);
    r.dh0_a.assign(B * H, nan);
    r.dc0_a.assign(B * H, nan);
    r.dW_ih_a = prefilled(0, GH * I);
    r.dW_hh_a = prefilled(GH * I, GH * H);
    r.db_ih_a = prefilled(GH * (I + H), GH);
    r.db_hh_a = prefilled(GH * (I + H + 1), GH);
    const bool bias = !L.b_ih.empty();
    const rnnfast::LayerGrads<S> grads{r.dW_ih_a.data(), r.dW_hh_a.data(), bias ? r.db_ih_a.data() : nullptr,
                                       bias ? r.db_hh_a.data() : nullptr};
    rnnfast::sequence_backward<S>(p, shape, x.data(), workspace.data(), dy.data(), ldy, dhT.data(),
                                  lstm ? dcT.data() : nullptr, r.dx_a.data(), false, r.dh0_a.data(),
                                  lstm ? r.dc0_a.data() : nullptr, grads);
  }
  {
    r.dx_b = as<S>(d.dx_prefill);
    r.dh0_b.assign(B * H, nan);
    std::vector<S> dc0(B * H, nan);
    r.dW_ih_b = prefilled(0, GH * I);
    r.dW_hh_b = prefilled(GH * I, GH * H);
    const rnnfast::LayerGrads<S> grads{r.dW_ih_b.data(), r.dW_hh_b.data(), nullptr, nullptr};
    rnnfast::sequence_backward<S>(p, shape, x.data(), workspace.data(), nullptr, ldy, dhT.data(), nullptr,
                                  r.dx_b.data(), true, r.dh0_b.data(), lstm ? dc0.data() : nullptr, grads);
  }
  return r;
}

// got - base, in double: what a kernel added to an accumulated buffer.
template <class S>
Vec minus(const std::vector<S>& got, const Vec& base, int64_t offset = 0) {
  Vec out(got.size());
  for (size_t k = 0; k < got.size(); ++k) out[k] = static_cast<double>(got[k]) - base[offset + k];
  return out;
}

template <class S>
void check_against_reference(const Data& d, const Results<S>& r, double tol, bool modes_identical = true) {
  const ref::Layer& L = d.layer;
  const bool lstm = L.cell == Cell::LSTM, bias = !L.b_ih.empty();
  const int64_t GH = L.G * L.H, I = L.I, H = L.H;
  ref::Tape tape;
  const ref::Out want = ref::forward(L, &tape);
  CHECK(r.y_padding_changed == 0, "the forward wrote %lld values past column H of y",
        static_cast<long long>(r.y_padding_changed));
  {
    Scope s("training forward");
    CHECK_CLOSE("y", r.y_train.data(), want.y, tol);
    CHECK_CLOSE("h_T", r.hT_train.data(), want.hT, tol);
    if (lstm) CHECK_CLOSE("c_T", r.cT_train.data(), want.cT, tol);
  }
  {
    Scope s("inference forward");
    CHECK_CLOSE("y", r.y_infer.data(), want.y, tol);
    CHECK_CLOSE("h_T", r.hT_infer.data(), want.hT, tol);
    if (lstm) CHECK_CLOSE("c_T", r.cT_infer.data(), want.cT, tol);
    // Both modes run the same products on the same rows (inference only projects fewer steps at a time).
    if (modes_identical) {
      CHECK_IDENTICAL("y (inference vs training)", r.y_infer.data(), r.y_train.data(), r.y_train.size());
      CHECK_IDENTICAL("h_T (inference vs training)", r.hT_infer.data(), r.hT_train.data(), r.hT_train.size());
    }
  }
  {
    Scope s("backward: dy, dh_T, dc_T given; dx overwritten; gradients accumulated");
    const ref::Grads g = ref::backward(L, tape, d.dy, d.dhT, d.dcT);
    CHECK_CLOSE("dx", r.dx_a.data(), g.x, tol);
    CHECK_CLOSE("dh0", r.dh0_a.data(), g.h0, tol);
    if (lstm) CHECK_CLOSE("dc0", r.dc0_a.data(), g.c0, tol);
    CHECK_CLOSE("dW_ih", minus(r.dW_ih_a, d.grad_prefill).data(), g.W_ih, tol);
    CHECK_CLOSE("dW_hh", minus(r.dW_hh_a, d.grad_prefill, GH * I).data(), g.W_hh, tol);
    if (bias) {
      CHECK_CLOSE("db_ih", minus(r.db_ih_a, d.grad_prefill, GH * (I + H)).data(), g.b_ih, tol);
      CHECK_CLOSE("db_hh", minus(r.db_hh_a, d.grad_prefill, GH * (I + H + 1)).data(), g.b_hh, tol);
    } else {
      CHECK_CLOSE("db_ih untouched (no bias)", r.db_ih_a.data(),
                  Vec(d.grad_prefill.begin() + GH * (I + H), d.grad_prefill.begin() + GH * (I + H + 1)), 0.0);
    }
  }
  {
    Scope s("backward: no dy, no dc_T; dx accumulated; no bias gradients");
    const Vec zeros_y(L.T * L.B * H, 0.0), zeros_c(L.B * H, 0.0);
    const ref::Grads g = ref::backward(L, tape, zeros_y, d.dhT, zeros_c);
    CHECK_CLOSE("dx", minus(r.dx_b, d.dx_prefill).data(), g.x, tol);
    CHECK_CLOSE("dh0", r.dh0_b.data(), g.h0, tol);
    CHECK_CLOSE("dW_ih", minus(r.dW_ih_b, d.grad_prefill).data(), g.W_ih, tol);
    CHECK_CLOSE("dW_hh", minus(r.dW_hh_b, d.grad_prefill, GH * I).data(), g.W_hh, tol);
  }
}

// float32 results are documented as the same bits whatever the thread count.
void check_same_bits(const Results<float>& a, const Results<float>& b) {
  auto same = [&](const char* what, const std::vector<float>& x, const std::vector<float>& y) {
    CHECK_IDENTICAL(what, x.data(), y.data(), x.size());
  };
  same("y", a.y_train, b.y_train);
  same("h_T", a.hT_train, b.hT_train);
  same("c_T", a.cT_train, b.cT_train);
  same("y (inference)", a.y_infer, b.y_infer);
  same("dx", a.dx_a, b.dx_a);
  same("dh0", a.dh0_a, b.dh0_a);
  same("dc0", a.dc0_a, b.dc0_a);
  same("dW_ih", a.dW_ih_a, b.dW_ih_a);
  same("dW_hh", a.dW_hh_a, b.dW_hh_a);
  same("db_ih", a.db_ih_a, b.db_ih_a);
  same("db_hh", a.db_hh_a, b.db_hh_a);
  same("dx (accumulated)", a.dx_b, b.dx_b);
}

}  // namespace

void test_reference() {
  // Tiny layers: every element of every input costs two reference forwards.
  const Case cases[] = {
      {3, 2, 3, 4, false, false, true}, {4, 3, 2, 3, true, false, true}, {4, 3, 2, 3, true, true, false}};
  uint32_t seed = 100;
  for (Cell cell : kCells)
    for (const Case& c : cases) {
      Scope s(describe(cell, c));
      const Data d = make_data(cell, c, seed++);
      for (const ref::GradientError& e : ref::gradient_errors(d.layer, d.dy, d.dhT, d.dcT))
        CHECK(e.relative <= kSelfTestTolerance, "d%s: analytic vs central differences %.3g (relative), tolerance %.0e",
              e.tensor, e.relative, kSelfTestTolerance);
    }
}

void test_sequence() {
  // Sizes around the kernels' edges: fewer than gemm::kMinRowsToPack rows in all (weights read in place) and more
  // (packed); H not a multiple of the 16-unit thread slices or of a register panel; one step; I = 1; a layer with
  // enough work per step for several threads (threads_for_step), whose split leaves a short last slice; and
  // batches large enough that inference projects the input in chunks of steps.
  const Case cases[] = {
      {5, 3, 7, 20, false, false, true},   // 15 rows: in place
      {6, 4, 33, 37, true, false, true},   // packed, lengths
      {4, 5, 19, 45, true, true, false},   // reverse with lengths, no biases
      {1, 1, 5, 3, false, false, true},    // one step, one sequence, H = 3
      {7, 2, 1, 16, false, true, true},    // I = 1, reverse
      {3, 16, 50, 100, true, true, true},  // up to 4 threads: slices of 32 units and a last one of 4
      {9, 40, 4, 6, true, false, false},   // inference projects 256 / B = 6 steps at a time: chunks of 6 and 3
      {5, 60, 3, 5, true, true, true},     // the same in reverse: chunks of 4 and 1
  };
  const int threads_before = rnnfast::max_threads();
  uint32_t seed = 200;
  for (Cell cell : kCells)
    for (const Case& c : cases) {
      Scope s(describe(cell, c));
      const Data d = make_data(cell, c, seed++);
      const Results<float> single = run_kernels<float>(d, 1);
      {
        Scope f("float32, 1 thread");
        check_against_reference(d, single, kFloatTolerance);
      }
      for (int threads : {2, 4}) {
        Scope f(format("float32, %d threads vs 1 thread", threads));
        check_same_bits(run_kernels<float>(d, threads), single);
      }
      {
        Scope f("float64");
        check_against_reference(d, run_kernels<double>(d, 2), kDoubleTolerance);
      }
    }
  rnnfast::set_num_threads(threads_before);
}

// Under set_matmul_precision("bfloat16") (the caller sets it), every product rounds its operands to bfloat16, whose
// precision is covered by the products' own tests (test_gemm.cpp); here the layers only have to be wired to them
// right. bfloat16 keeps 8 significant bits (relative rounding 2^-9), and sums of ~70 such products with mixed
// signs over a few steps stay within a few 1e-2 of the largest value; a layout mistake is off by order 1.
void check_sequence_bf16() {
  constexpr double kBf16SmokeTolerance = 0.1;
  const Case cases[] = {{6, 4, 33, 37, true, false, true}, {3, 16, 50, 100, true, true, true}};
  const int threads_before = rnnfast::max_threads();
  uint32_t seed = 250;
  for (Cell cell : kCells)
    for (const Case& c : cases) {
      Scope s(describe(cell, c));
      const Data d = make_data(cell, c, seed++);
      check_against_reference(d, run_kernels<float>(d, 2), kBf16SmokeTolerance, false);
    }
  rnnfast::set_num_threads(threads_before);
}

namespace {

// A small language model for generate(): embedding -> `layers` cells -> linear head.
template <class S>
struct Model {
  Cell cell;
  int64_t V, E, H, layers;
  std::vector<S> embedding, head_W, head_b;
  std::vector<std::vector<S>> W_ih, W_hh, b_ih, b_hh;

  rnnfast::LanguageModelWeights<S> weights() const {
    rnnfast::LanguageModelWeights<S> w{cell, V, E, H, layers, embedding.data(), {}, head_W.data(), head_b.data()};
    for (int64_t l = 0; l < layers; ++l)
      w.rnn.push_back({cell, l == 0 ? E : H, H, W_ih[l].data(), W_hh[l].data(), b_ih[l].data(), b_hh[l].data()});
    return w;
  }
};

Model<float> make_model(Cell cell, int64_t V, int64_t E, int64_t H, int64_t layers, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t GH = rnnfast::num_gates(cell) * H;
  // Weights large enough that the head's logits spread over a few units: greedy choices are far from ties.
  const double w = 2.0 / std::sqrt(static_cast<double>(H));
  Model<float> m{cell,
                 V,
                 E,
                 H,
                 layers,
                 uniform<float>(rng, V * E, 1.0),
                 uniform<float>(rng, V * H, 3 * w),
                 uniform<float>(rng, V, 0.5),
                 {},
                 {},
                 {},
                 {}};
  for (int64_t l = 0; l < layers; ++l) {
    m.W_ih.push_back(uniform<float>(rng, GH * (l == 0 ? E : H), w));
    m.W_hh.push_back(uniform<float>(rng, GH * H, w));
    m.b_ih.push_back(uniform<float>(rng, GH, w));
    m.b_hh.push_back(uniform<float>(rng, GH, w));
  }
  return m;
}

template <class T, class S>
Model<T> convert(const Model<S>& m) {
  auto cv = [](const std::vector<S>& v) { return std::vector<T>(v.begin(), v.end()); };
  Model<T> out{m.cell, m.V, m.E, m.H, m.layers, cv(m.embedding), cv(m.head_W), cv(m.head_b), {}, {}, {}, {}};
  for (int64_t l = 0; l < m.layers; ++l) {
    out.W_ih.push_back(cv(m.W_ih[l]));
    out.W_hh.push_back(cv(m.W_hh[l]));
    out.b_ih.push_back(cv(m.b_ih[l]));
    out.b_hh.push_back(cv(m.b_hh[l]));
  }
  return out;
}

// The model with its weight matrices (not biases or embedding) rounded to bfloat16, as generate() multiplies by
// them under RhsStorage::packed_bf16.
Model<float> rounded_to_bf16(Model<float> m) {
  auto round = [](std::vector<float>& v) {
    for (float& e : v) {
      const uint32_t bits = static_cast<uint32_t>(rnnfast::gemm::to_bf16(e)) << 16;
      std::memcpy(&e, &bits, sizeof e);
    }
  };
  round(m.head_W);
  for (int64_t l = 0; l < m.layers; ++l) round(m.W_ih[l]), round(m.W_hh[l]);
  return m;
}

struct Generated {
  std::vector<int64_t> tokens;
  Vec h, c;  // final state (layers, H)
};

template <class S>
Generated run_generate(const Model<S>& m, const std::vector<int64_t>& prompt, int64_t steps,
                       const rnnfast::SamplingOptions& opt, const Vec& h0, const Vec& c0,
                       rnnfast::RhsStorage storage = rnnfast::RhsStorage::packed) {
  std::vector<S> h(h0.begin(), h0.end()), c(c0.begin(), c0.end());
  Generated g{std::vector<int64_t>(steps, -1), {}, {}};
  rnnfast::generate<S>(m.weights(), prompt.data(), static_cast<int64_t>(prompt.size()), steps, opt, h.data(), c.data(),
                       g.tokens.data(), storage);
  g.h = to_double(h), g.c = to_double(c);
  return g;
}

// The reference model state after one more token, layer by layer through reference.hpp's one-step forward.
struct RefState {
  Vec h, c;  // (layers, H)
};

void ref_feed(const Model<double>& m, int64_t token, RefState& state) {
  Vec x(m.embedding.begin() + token * m.E, m.embedding.begin() + (token + 1) * m.E);
  for (int64_t l = 0; l < m.layers; ++l) {
    ref::Layer L;
    L.cell = m.cell;
    L.T = 1, L.B = 1, L.I = x.size(), L.H = m.H, L.G = rnnfast::num_gates(m.cell);
    L.W_ih = m.W_ih[l], L.W_hh = m.W_hh[l], L.b_ih = m.b_ih[l], L.b_hh = m.b_hh[l];
    L.x = x;
    L.h0.assign(state.h.begin() + l * m.H, state.h.begin() + (l + 1) * m.H);
    L.c0.assign(state.c.begin() + l * m.H, state.c.begin() + (l + 1) * m.H);
    const ref::Out out = ref::forward(L, nullptr);
    std::copy(out.hT.begin(), out.hT.end(), state.h.begin() + l * m.H);
    std::copy(out.cT.begin(), out.cT.end(), state.c.begin() + l * m.H);
    x = out.hT;
  }
}

Vec ref_logits(const Model<double>& m, const RefState& state) {
  Vec logits(m.V);
  const double* h = &state.h[(m.layers - 1) * m.H];
  for (int64_t v = 0; v < m.V; ++v) logits[v] = m.head_b[v] + ref::dot(&m.head_W[v * m.H], h, m.H);
  return logits;
}

// Greedy generation against the reference: each chosen token must be the reference's argmax (or within the
// kernel's rounding of it: a near-tie may go either way), and the final state must match after feeding the
// kernel's own tokens.
template <class S>
void check_greedy(const Model<S>& model, const std::vector<int64_t>& prompt, const Generated& g, const Vec& h0,
                  const Vec& c0, double tol) {
  const Model<double> m = convert<double>(model);
  RefState state{h0, c0};
  for (int64_t token : prompt) ref_feed(m, token, state);
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    const Vec logits = ref_logits(m, state);
    const int64_t best = std::max_element(logits.begin(), logits.end()) - logits.begin();
    const int64_t got = g.tokens[i];
    const bool in_range = got >= 0 && got < m.V;
    CHECK(in_range && logits[got] >= logits[best] - tol * std::max(1.0, std::abs(logits[best])),
          "token %zu: generated %lld, reference argmax %lld", i, static_cast<long long>(got),
          static_cast<long long>(best));
    if (!in_range) return;
    ref_feed(m, got, state);
  }
  CHECK_CLOSE("final h", g.h.data(), state.h, tol);
  if (model.cell == Cell::LSTM) CHECK_CLOSE("final c", g.c.data(), state.c, tol);
}

}  // namespace

void test_generate() {
  const int64_t V = 13, E = 8, H = 24, layers = 2, steps = 12;
  const std::vector<int64_t> prompt{3, 0, 12, 7};
  const rnnfast::SamplingOptions greedy{0.0, 0, 1.0, 1};
  uint32_t seed = 300;
  for (Cell cell : kCells) {
    Scope s(format("%s V=%lld E=%lld H=%lld layers=%lld", cell_name(cell), static_cast<long long>(V),
                   static_cast<long long>(E), static_cast<long long>(H), static_cast<long long>(layers)));
    const Model<float> model = make_model(cell, V, E, H, layers, seed);
    std::mt19937 rng(seed++);
    const Vec h0 = to_double(uniform<float>(rng, layers * H, 0.5)),
              c0 = to_double(uniform<float>(rng, layers * H, 0.5));
    const Generated g = run_generate(model, prompt, steps, greedy, h0, c0);
    {
      Scope f("float32 greedy");
      check_greedy(model, prompt, g, h0, c0, kFloatTolerance);
    }
    {
      Scope f("float64 greedy");
      const Model<double> m64 = convert<double>(model);
      check_greedy(m64, prompt, run_generate(m64, prompt, steps, greedy, h0, c0), h0, c0, kDoubleTolerance);
    }
    {
      // Sampling restricted to one candidate is greedy, whatever the temperature and the draw.
      Scope f("float32 top_k = 1 and top_p -> 0 against greedy");
      const Generated k1 = run_generate(model, prompt, steps, {1.0, 1, 1.0, 99}, h0, c0);
      const Generated p0 = run_generate(model, prompt, steps, {0.7, 0, 1e-9, 5}, h0, c0);
      CHECK(k1.tokens == g.tokens, "top_k = 1 chose other tokens than greedy");
      CHECK(p0.tokens == g.tokens, "top_p = 1e-9 chose other tokens than greedy");
    }
    {
      // Sampling is a function of the seed alone.
      Scope f("float32 sampling, same seed twice");
      const rnnfast::SamplingOptions sampled{0.9, 5, 0.95, 1234};
      const Generated a = run_generate(model, prompt, steps, sampled, h0, c0);
      const Generated b = run_generate(model, prompt, steps, sampled, h0, c0);
      CHECK(a.tokens == b.tokens, "the same seed gave different tokens");
      bool in_range = true;
      for (int64_t t : a.tokens) in_range = in_range && t >= 0 && t < V;
      CHECK(in_range, "a sampled token is outside [0, V)");
    }
    {
      // bfloat16 weights give exactly what the float32 model with those rounded weights gives.
      Scope f("float32, weights packed as bfloat16, vs the float32 model with rounded weights");
      const Generated bf = run_generate(model, prompt, steps, greedy, h0, c0, rnnfast::RhsStorage::packed_bf16);
      const Generated rounded = run_generate(rounded_to_bf16(model), prompt, steps, greedy, h0, c0);
      CHECK(bf.tokens == rounded.tokens, "other tokens than the rounded float32 model");
      CHECK_IDENTICAL("final h", bf.h.data(), rounded.h.data(), bf.h.size());
      CHECK_IDENTICAL("final c", bf.c.data(), rounded.c.data(), bf.c.size());
    }
    {
      // Generation's products are the sequence kernel's (both packed): over a prompt of 16 or more tokens, the
      // state after it is the training forward's, bit for bit.
      Scope f("float32 state after a 20-token prompt vs sequence_forward (training) layer by layer");
      std::vector<int64_t> long_prompt(20);
      for (size_t i = 0; i < long_prompt.size(); ++i) long_prompt[i] = (5 * i + 1) % V;
      const Generated after = run_generate(model, long_prompt, 0, greedy, h0, c0);
      const int64_t T = static_cast<int64_t>(long_prompt.size());
      std::vector<float> x(T * E);
      for (int64_t t = 0; t < T; ++t)
        std::copy(&model.embedding[long_prompt[t] * E], &model.embedding[(long_prompt[t] + 1) * E], &x[t * E]);
      std::vector<float> hT(layers * H), cT(layers * H);
      const std::vector<float> h0f(h0.begin(), h0.end()), c0f(c0.begin(), c0.end());
      const rnnfast::LanguageModelWeights<float> w = model.weights();
      for (int64_t l = 0; l < layers; ++l) {
        std::vector<float> y(T * H), ws(rnnfast::workspace_size(cell, T, 1, H));
        rnnfast::sequence_forward<float>(w.rnn[l], {T, 1, nullptr, false}, x.data(), &h0f[l * H], &c0f[l * H], y.data(),
                                         H, &hT[l * H], &cT[l * H], ws.data());
        x = y;
      }
      const std::vector<float> gh(after.h.begin(), after.h.end()), gc(after.c.begin(), after.c.end());
      CHECK_IDENTICAL("h", gh.data(), hT.data(), hT.size());
      if (cell == Cell::LSTM) CHECK_IDENTICAL("c", gc.data(), cT.data(), cT.size());
    }
  }
}

}  // namespace rnnfast_test
