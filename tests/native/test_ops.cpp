// The fused softmax cross-entropy (loss.hpp), the optimizer updates (optim.hpp), the linear-chain CRF (crf.hpp)
// and the dense layers (dense.hpp) against double-precision formulas written out here: PyTorch's update rules,
// log-sum-exp, and for the CRF brute-force enumeration of every tag sequence.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "reference.hpp"
#include "rnnfast/crf.hpp"
#include "rnnfast/dense.hpp"
#include "rnnfast/loss.hpp"
#include "rnnfast/optim.hpp"
#include "rnnfast/parallel.hpp"

namespace rnnfast_test {
namespace {

// float32 element-wise results (a softmax, an update) carry a few roundings of 2^-24 each: 1e-6 relative to the
// largest value leaves room for them and none for a wrong formula. float64: the same in double.
template <class S>
constexpr double tolerance() {
  return std::is_same_v<S, float> ? 1e-6 : 1e-13;
}

template <class S>
const char* type_name() {
  return std::is_same_v<S, float> ? "float32" : "float64";
}

// ----- softmax cross-entropy ------------------------------------------------------------------------------------

template <class S>
void loss_case(std::mt19937& rng, int64_t N, int64_t V, double offset, bool alias, double grad_scale) {
  Scope s(format("%s N=%lld V=%lld offset=%g%s", type_name<S>(), static_cast<long long>(N), static_cast<long long>(V),
                 offset, alias ? " dlogits aliasing logits" : ""));
  const int64_t ignore = -100;
  std::vector<S> logits = uniform<S>(rng, N * V, 3.0);
  for (S& z : logits) z = static_cast<S>(z + offset);
  std::vector<int64_t> targets(N);
  std::uniform_int_distribution<int64_t> target(0, V - 1);
  for (int64_t n = 0; n < N; ++n) targets[n] = n % 4 == 2 ? ignore : target(rng);

  // Reference: log-sum-exp with the maximum taken out, in double from the same values.
  double loss = 0.0;
  int64_t count = 0, correct = 0;
  Vec dlogits(N * V, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] == ignore) continue;
    const S* z = &logits[n * V];
    const int64_t best = std::max_element(z, z + V) - z;
    double sum = 0.0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v]) - z[best]);
    loss += std::log(sum) + z[best] - z[targets[n]];
    ++count;
    correct += best == targets[n];
    for (int64_t v = 0; v < V; ++v)
      dlogits[n * V + v] = grad_scale * (std::exp(static_cast<double>(z[v]) - z[best]) / sum - (v == targets[n]));
  }

  std::vector<S> d = alias ? logits : std::vector<S>(N * V, static_cast<S>(kNaN));
  S* dptr = d.data();
  const rnnfast::LossResult r = rnnfast::softmax_cross_entropy<S>(alias ? d.data() : logits.data(), N, V,
                                                                  targets.data(), ignore, dptr, grad_scale);
  CHECK(r.count == count, "count %lld, want %lld", static_cast<long long>(r.count), static_cast<long long>(count));
  CHECK(r.correct == correct, "correct %lld, want %lld", static_cast<long long>(r.correct),
        static_cast<long long>(correct));
  // Each row's loss is log(sum of V exps, summed in S) plus z_max - z_target taken exactly in double: within about
  // V ulps of S of the sum's log, a few 1e-6 for float32 at V <= 37, whatever the logits' offset.
  const double loss_tol = N * (std::is_same_v<S, float> ? 5e-6 : 1e-13);
  CHECK(std::abs(r.loss_sum - loss) <= loss_tol, "loss %.12g, want %.12g (tolerance %.1g)", r.loss_sum, loss, loss_tol);
  CHECK_CLOSE("dlogits", d.data(), dlogits, tolerance<S>());
  // Without a gradient buffer: the same loss.
  const rnnfast::LossResult plain =
      rnnfast::softmax_cross_entropy<S>(logits.data(), N, V, targets.data(), ignore, nullptr, 1.0);
  if (!alias)
    CHECK(plain.loss_sum == r.loss_sum, "loss without dlogits %.17g vs with %.17g", plain.loss_sum, r.loss_sum);
}

}  // namespace

void test_loss() {
  std::mt19937 rng(800);
  for (int64_t V : {1, 5, 16, 37}) {
    loss_case<float>(rng, 9, V, 0.0, false, 0.25);
    loss_case<double>(rng, 9, V, 0.0, false, 0.25);
  }
  loss_case<float>(rng, 6, 23, 1e4, false, 1.0);  // large logits: no overflow, no cancellation
  loss_case<float>(rng, 6, 23, 0.0, true, 1.0);
  loss_case<double>(rng, 6, 23, 0.0, true, 1.0);
  {
    // Rows are split between threads; documented: the same bits whatever the thread count.
    Scope s("float32 N=40 V=2000: 2 threads vs 1");
    const int before = rnnfast::max_threads();
    const int64_t N = 40, V = 2000;
    std::mt19937 same(801);
    const std::vector<float> logits = uniform<float>(same, N * V, 4.0);
    std::vector<int64_t> targets(N);
    for (int64_t n = 0; n < N; ++n) targets[n] = (n * 37) % V;
    std::vector<float> d1(N * V), d2(N * V);
    rnnfast::set_num_threads(1);
    const rnnfast::LossResult r1 =
        rnnfast::softmax_cross_entropy<float>(logits.data(), N, V, targets.data(), -1, d1.data(), 0.5);
    rnnfast::set_num_threads(2);
    const rnnfast::LossResult r2 =
        rnnfast::softmax_cross_entropy<float>(logits.data(), N, V, targets.data(), -1, d2.data(), 0.5);
    CHECK(r1.loss_sum == r2.loss_sum && r1.correct == r2.correct, "loss %.17g vs %.17g", r1.loss_sum, r2.loss_sum);
    CHECK_IDENTICAL("dlogits", d2.data(), d1.data(), d1.size());
    rnnfast::set_num_threads(before);
  }
}

// ----- optimizers -----------------------------------------------------------------------------------------------

namespace {

struct SgdOptions {
  double lr, momentum, weight_decay, dampening;
  bool nesterov;
};

struct AdamOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;
};

// torch.optim.SGD's step, element by element in double.
void sgd_reference(Vec& p, const Vec& g, Vec& buf, const SgdOptions& o, bool first_step) {
  for (size_t k = 0; k < p.size(); ++k) {
    double d = g[k] + o.weight_decay * p[k];
    if (o.momentum != 0.0) {
      buf[k] = first_step ? d : o.momentum * buf[k] + (1.0 - o.dampening) * d;
      d = o.nesterov ? d + o.momentum * buf[k] : buf[k];
    }
    p[k] -= o.lr * d;
  }
}

// torch.optim.Adam / AdamW's step (step counts from 1), element by element in double.
void adam_reference(Vec& p, const Vec& g, Vec& m, Vec& v, const AdamOptions& o, int64_t step) {
  const double c1 = 1.0 - std::pow(o.beta1, step), c2 = 1.0 - std::pow(o.beta2, step);
  for (size_t k = 0; k < p.size(); ++k) {
    double grad = g[k];
    if (o.decoupled)
      p[k] *= 1.0 - o.lr * o.weight_decay;
    else
      grad += o.weight_decay * p[k];
    m[k] = o.beta1 * m[k] + (1.0 - o.beta1) * grad;
    v[k] = o.beta2 * v[k] + (1.0 - o.beta2) * grad * grad;
    p[k] -= o.lr / c1 * m[k] / (std::sqrt(v[k]) / std::sqrt(c2) + o.eps);
  }
}

Vec scaled(Vec x, double factor) {
  for (double& v : x) v *= factor;
  return x;
}

template <class S>
void optimizer_cases(int64_t n) {
  std::mt19937 rng(900 + n);
  const int steps = 3;
  const SgdOptions sgds[] = {{0.1, 0.0, 0.0, 0.0, false}, {0.1, 0.9, 0.01, 0.1, false}, {0.05, 0.8, 0.0, 0.0, true}};
  for (const SgdOptions& o : sgds) {
    Scope s(format("%s n=%lld SGD lr=%g momentum=%g weight_decay=%g dampening=%g%s", type_name<S>(),
                   static_cast<long long>(n), o.lr, o.momentum, o.weight_decay, o.dampening,
                   o.nesterov ? " nesterov" : ""));
    std::vector<S> p = uniform<S>(rng, n, 1.0), buf(n, static_cast<S>(kNaN));  // the first step must not read buf
    Vec pr = to_double(p), bufr(n, 0.0);
    for (int step = 0; step < steps; ++step) {
      const std::vector<S> g = uniform<S>(rng, n, 1.0);
      const double grad_scale = 1.0 / (1 << step);  // 1 on the first step, then clipping's factor
      rnnfast::sgd_step<S>(p.data(), g.data(), o.momentum != 0.0 ? buf.data() : nullptr, n, o.lr, o.momentum,
                           o.weight_decay, o.dampening, o.nesterov, step == 0, grad_scale);
      sgd_reference(pr, scaled(to_double(g), grad_scale), bufr, o, step == 0);
    }
    CHECK_CLOSE("parameters", p.data(), pr, tolerance<S>());
    if (o.momentum != 0.0) CHECK_CLOSE("momentum buffer", buf.data(), bufr, tolerance<S>());
  }
  const AdamOptions adams[] = {
      {1e-2, 0.9, 0.999, 1e-8, 0.0, false}, {1e-2, 0.9, 0.999, 1e-8, 0.05, false}, {1e-2, 0.8, 0.99, 1e-6, 0.1, true}};
  for (const AdamOptions& o : adams) {
    Scope s(format("%s n=%lld %s lr=%g betas=(%g, %g) eps=%g weight_decay=%g", type_name<S>(),
                   static_cast<long long>(n), o.decoupled ? "AdamW" : "Adam", o.lr, o.beta1, o.beta2, o.eps,
                   o.weight_decay));
    std::vector<S> p = uniform<S>(rng, n, 1.0), m(n, S(0)), v(n, S(0));
    Vec pr = to_double(p), mr(n, 0.0), vr(n, 0.0);
    for (int step = 1; step <= steps; ++step) {
      const std::vector<S> g = uniform<S>(rng, n, 1.0);
      const double grad_scale = 1.0 / step;
      rnnfast::adam_step<S>(p.data(), g.data(), m.data(), v.data(), n, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                            o.decoupled, step, grad_scale);
      adam_reference(pr, scaled(to_double(g), grad_scale), mr, vr, o, step);
    }
    CHECK_CLOSE("parameters", p.data(), pr, tolerance<S>());
    CHECK_CLOSE("first moment", m.data(), mr, tolerance<S>());
    CHECK_CLOSE("second moment", v.data(), vr, tolerance<S>());
  }
  {
    Scope s(
        format("%s n=%lld sum_of_squares, scale_in_place, clamp_in_place", type_name<S>(), static_cast<long long>(n)));
    std::vector<S> x = uniform<S>(rng, n, 2.0);
    double want = 0.0;
    for (S e : x) want += static_cast<double>(e) * static_cast<double>(e);
    const double got = rnnfast::sum_of_squares<S>(x.data(), n);
    // Summed in double in both: rounding of at most n terms of 2^-53 each.
    CHECK(std::abs(got - want) <= 1e-15 * n * want + 1e-300, "sum_of_squares %.17g, want %.17g", got, want);
    const std::vector<S> x0 = x;
    rnnfast::scale_in_place<S>(x.data(), n, S(0.75));
    Vec scaled(n);
    for (int64_t k = 0; k < n; ++k) scaled[k] = static_cast<S>(x0[k] * S(0.75));
    CHECK_CLOSE("scale_in_place", x.data(), scaled, 0.0);
    rnnfast::clamp_in_place<S>(x.data(), n, S(0.5));
    Vec clamped(n);
    for (int64_t k = 0; k < n; ++k) clamped[k] = std::min(0.5, std::max(-0.5, scaled[k]));
    CHECK_CLOSE("clamp_in_place", x.data(), clamped, 0.0);
  }
}

}  // namespace

void test_optim() {
  // 37 elements: one thread; 140,000: two threads (threads_for_elements gives each at least 64K).
  for (int64_t n : {int64_t{37}, int64_t{140000}}) {
    optimizer_cases<float>(n);
    optimizer_cases<double>(n);
  }
  {
    Scope s("sum_of_squares: the same bits for 1 and 2 threads");
    const int before = rnnfast::max_threads();
    std::mt19937 rng(950);
    const std::vector<float> x = uniform<float>(rng, 300000, 1.0);
    rnnfast::set_num_threads(1);
    const double one = rnnfast::sum_of_squares<float>(x.data(), static_cast<int64_t>(x.size()));
    rnnfast::set_num_threads(2);
    const double two = rnnfast::sum_of_squares<float>(x.data(), static_cast<int64_t>(x.size()));
    CHECK(one == two, "%.17g vs %.17g", one, two);
    rnnfast::set_num_threads(before);
  }
}

// ----- linear-chain CRF -----------------------------------------------------------------------------------------

namespace {

// Every tag sequence of one batch element, enumerated: log Z, the gold score, the expected feature counts (the
// gradient of log Z) and the best sequence.
struct BruteForce {
  double log_z = 0, gold = 0, best_score = -INFINITY;
  std::vector<int64_t> best;
  Vec p_emission, p_start, p_end, p_trans;  // (L, C), (C), (C), (C, C) marginals
};

template <class S>
BruteForce enumerate(const rnnfast::CrfScores<S>& s, const std::vector<int64_t>& tags, int64_t b) {
  const int64_t C = s.C, L = s.length(b), B = s.B;
  auto score = [&](const std::vector<int64_t>& y) {
    double total = static_cast<double>(s.start[y[0]]) + s.end[y[L - 1]];
    for (int64_t t = 0; t < L; ++t) {
      total += s.emission(t, b, y[t]);
      if (t > 0) total += s.trans[y[t - 1] * C + y[t]];
    }
    return total;
  };
  BruteForce r;
  std::vector<int64_t> y(L, 0), gold(L);
  for (int64_t t = 0; t < L; ++t) gold[t] = tags[t * B + b];
  r.gold = score(gold);
  std::vector<std::pair<std::vector<int64_t>, double>> all;
  double m = -INFINITY;
  for (;;) {  // y counts in base C, most significant tag last
    const double v = score(y);
    all.push_back({y, v});
    m = std::max(m, v);
    // Random scores: no two sequences tie, so the best one is unique.
    if (v > r.best_score) r.best_score = v, r.best = y;
    int64_t t = 0;
    while (t < L && ++y[t] == C) y[t++] = 0;
    if (t == L) break;
  }
  double z = 0;
  for (const auto& e : all) z += std::exp(e.second - m);
  r.log_z = m + std::log(z);
  r.p_emission.assign(L * C, 0.0), r.p_start.assign(C, 0.0), r.p_end.assign(C, 0.0), r.p_trans.assign(C * C, 0.0);
  for (const auto& [seq, v] : all) {
    const double p = std::exp(v - r.log_z);
    r.p_start[seq[0]] += p;
    r.p_end[seq[L - 1]] += p;
    for (int64_t t = 0; t < L; ++t) {
      r.p_emission[t * C + seq[t]] += p;
      if (t > 0) r.p_trans[seq[t - 1] * C + seq[t]] += p;
    }
  }
  return r;
}

template <class S>
void crf_case(std::mt19937& rng, int64_t T, int64_t B, int64_t C, bool with_lengths) {
  Scope s(format("%s T=%lld B=%lld C=%lld%s", type_name<S>(), static_cast<long long>(T), static_cast<long long>(B),
                 static_cast<long long>(C), with_lengths ? " lengths" : ""));
  const std::vector<S> emissions = uniform<S>(rng, T * B * C, 2.0), start = uniform<S>(rng, C, 1.0),
                       end = uniform<S>(rng, C, 1.0), trans = uniform<S>(rng, C * C, 1.0);
  std::vector<int64_t> lengths(B);
  for (int64_t b = 0; b < B; ++b) lengths[b] = with_lengths ? 1 + (b * 5 + 2) % T : T;
  if (with_lengths) lengths[0] = T;
  const rnnfast::CrfScores<S> scores{
      emissions.data(), T, B, C, with_lengths ? lengths.data() : nullptr, start.data(), end.data(), trans.data()};
  // Gold tags; past each length a value far out of range, which must never be read.
  std::vector<int64_t> tags(T * B, 1 << 20);
  std::uniform_int_distribution<int64_t> tag(0, C - 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < scores.length(b); ++t) tags[t * B + b] = tag(rng);

  const double grad_scale = 0.5;
  std::vector<double> nll(B, kNaN);
  std::vector<S> demissions(T * B * C, static_cast<S>(kNaN));
  const std::vector<S> prefill = uniform<S>(rng, C * C + 2 * C, 0.5);
  std::vector<S> dtrans(prefill.begin(), prefill.begin() + C * C),
      dstart(prefill.begin() + C * C, prefill.begin() + C * C + C), dend(prefill.begin() + C * C + C, prefill.end());
  rnnfast::crf_nll<S>(scores, tags.data(), nll.data(), demissions.data(), dstart.data(), dend.data(), dtrans.data(),
                      grad_scale);
  std::vector<double> nll_only(B, kNaN);
  rnnfast::crf_nll<S>(scores, tags.data(), nll_only.data(), nullptr, nullptr, nullptr, nullptr, 1.0);

  Vec want_nll(B), want_de(T * B * C, 0.0), want_dstart(C, 0.0), want_dend(C, 0.0), want_dtrans(C * C, 0.0);
  std::vector<int64_t> viterbi_tags(T * B, -7), want_tags(T * B, -1);
  Vec viterbi_scores(B, kNaN), want_scores(B);
  for (int64_t b = 0; b < B; ++b) {
    const BruteForce r = enumerate(scores, tags, b);
    const int64_t L = scores.length(b);
    want_nll[b] = r.log_z - r.gold;
    want_scores[b] = r.best_score;
    for (int64_t t = 0; t < L; ++t) {
      want_tags[t * B + b] = r.best[t];
      for (int64_t j = 0; j < C; ++j)
        want_de[(t * B + b) * C + j] = grad_scale * (r.p_emission[t * C + j] - (tags[t * B + b] == j));
      if (t > 0) want_dtrans[tags[(t - 1) * B + b] * C + tags[t * B + b]] -= grad_scale;
    }
    for (int64_t k = 0; k < C * C; ++k) want_dtrans[k] += grad_scale * r.p_trans[k];
    for (int64_t j = 0; j < C; ++j) {
      want_dstart[j] += grad_scale * (r.p_start[j] - (tags[b] == j));
      want_dend[j] += grad_scale * (r.p_end[j] - (tags[(L - 1) * B + b] == j));
    }
  }
  // Log-space sums over at most C^T = 243 sequences of scores up to ~15: float32 keeps ~1e-6 of them.
  const double tol = std::is_same_v<S, float> ? 1e-5 : 1e-12;
  CHECK_CLOSE("nll", nll.data(), want_nll, tol);
  CHECK_CLOSE("nll without gradients", nll_only.data(), want_nll, tol);
  CHECK_CLOSE("demissions (0 past each length)", demissions.data(), want_de, tol);
  auto added = [](const std::vector<S>& got, const std::vector<S>& base) {
    Vec out(got.size());
    for (size_t k = 0; k < got.size(); ++k) out[k] = static_cast<double>(got[k]) - base[k];
    return out;
  };
  const std::vector<S> p_trans(prefill.begin(), prefill.begin() + C * C),
      p_start(prefill.begin() + C * C, prefill.begin() + C * C + C), p_end(prefill.begin() + C * C + C, prefill.end());
  CHECK_CLOSE("dtrans (accumulated)", added(dtrans, p_trans).data(), want_dtrans, tol);
  CHECK_CLOSE("dstart (accumulated)", added(dstart, p_start).data(), want_dstart, tol);
  CHECK_CLOSE("dend (accumulated)", added(dend, p_end).data(), want_dend, tol);

  rnnfast::crf_viterbi<S>(scores, viterbi_tags.data(), viterbi_scores.data());
  CHECK(viterbi_tags == want_tags, "Viterbi tags differ from the best enumerated sequence (-1 past each length)");
  CHECK_CLOSE("Viterbi scores", viterbi_scores.data(), want_scores, tol);
}

}  // namespace

void test_crf() {
  std::mt19937 rng(1000);
  for (bool lengths : {false, true}) {
    crf_case<float>(rng, 4, 5, 3, lengths);
    crf_case<double>(rng, 4, 5, 3, lengths);
    crf_case<float>(rng, 3, 4, 6, lengths);
    crf_case<double>(rng, 3, 4, 6, lengths);
  }
  crf_case<float>(rng, 1, 2, 4, false);  // one step: start + emission + end only
}

// ----- dense layers ---------------------------------------------------------------------------------------------

namespace {

template <class S>
void dense_case(std::mt19937& rng, int64_t N, int64_t I, int64_t O) {
  Scope s(format("%s linear N=%lld I=%lld O=%lld", type_name<S>(), static_cast<long long>(N), static_cast<long long>(I),
                 static_cast<long long>(O)));
  const std::vector<S> x = uniform<S>(rng, N * I, 1.0), W = uniform<S>(rng, O * I, 0.5), b = uniform<S>(rng, O, 0.5),
                       dy = uniform<S>(rng, N * O, 1.0), dW0 = uniform<S>(rng, O * I, 0.5),
                       db0 = uniform<S>(rng, O, 0.5);
  std::vector<S> y(N * O, static_cast<S>(kNaN)), dx(N * I, static_cast<S>(kNaN)), dW = dW0, db = db0;
  rnnfast::linear_forward<S>(x.data(), N, I, W.data(), O, b.data(), y.data());
  rnnfast::linear_backward<S>(dy.data(), N, O, x.data(), I, W.data(), dx.data(), dW.data(), db.data());
  Vec want_y(N * O), want_dx(N * I, 0.0), want_dW(O * I, 0.0), want_db(O, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double v = b[o];
      for (int64_t i = 0; i < I; ++i) {
        v += static_cast<double>(x[n * I + i]) * W[o * I + i];
        want_dx[n * I + i] += static_cast<double>(dy[n * O + o]) * W[o * I + i];
        want_dW[o * I + i] += static_cast<double>(dy[n * O + o]) * x[n * I + i];
      }
      want_y[n * O + o] = v;
      want_db[o] += dy[n * O + o];
    }
  // Sums of up to max(I, N) = 70 float32 products.
  const double tol = std::is_same_v<S, float> ? 1e-5 : 1e-12;
  CHECK_CLOSE("y", y.data(), want_y, tol);
  CHECK_CLOSE("dx", dx.data(), want_dx, tol);
  Vec added_dW(O * I), added_db(O);
  for (int64_t k = 0; k < O * I; ++k) added_dW[k] = static_cast<double>(dW[k]) - dW0[k];
  for (int64_t k = 0; k < O; ++k) added_db[k] = static_cast<double>(db[k]) - db0[k];
  CHECK_CLOSE("dW (accumulated)", added_dW.data(), want_dW, tol);
  CHECK_CLOSE("db (accumulated)", added_db.data(), want_db, tol);
}

template <class S>
void embedding_case(std::mt19937& rng) {
  Scope s(format("%s embedding_backward", type_name<S>()));
  const int64_t N = 40, E = 5, V = 11;
  std::vector<int64_t> ids(N);
  for (int64_t n = 0; n < N; ++n) ids[n] = (n * n + 3) % V;  // repeated ids, one row never used
  const std::vector<S> dy = uniform<S>(rng, N * E, 1.0), dW0 = uniform<S>(rng, V * E, 0.5);
  std::vector<S> dW = dW0;
  rnnfast::embedding_backward<S>(ids.data(), N, dy.data(), E, dW.data(), V);
  Vec want = to_double(dW0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t e = 0; e < E; ++e) want[ids[n] * E + e] += dy[n * E + e];
  CHECK_CLOSE("dW", dW.data(), want, tolerance<S>());
}

}  // namespace

void test_dense() {
  std::mt19937 rng(1100);
  dense_case<float>(rng, 13, 19, 37);
  dense_case<double>(rng, 13, 19, 37);
  dense_case<float>(rng, 70, 1, 3);
  embedding_case<float>(rng);
  embedding_case<double>(rng);
}

}  // namespace rnnfast_test
