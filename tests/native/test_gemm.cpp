// The products (rnnfast/gemm.hpp, matmul.hpp, amx.hpp) against a naive triple loop in double: sizes at and
// around every blocking edge of the kernel compiled here (register tile MR x NR, vector length VL, k-slices KC and
// KC_MAX, row panels MC, panel groups, column chunks), both transposes of both operands, several beta, strides
// larger than the rows (with NaN in the padding, which must never reach a result), and C's padding untouched.
//
// Tolerance: the standard forward error bound of a float32 dot product in any summation order, with or without
// FMA, |c - c_exact| <= (K + 2) u (|beta c0| + sum_k |a_ik b_kj|) with u = 2^-24 (2^-53 for double), element by
// element. It does not depend on the data, and an indexing mistake breaks it by orders of magnitude.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "reference.hpp"
#include "rnnfast/amx.hpp"
#include "rnnfast/gemm.hpp"
#include "rnnfast/matmul.hpp"
#include "rnnfast/parallel.hpp"
#include "rnnfast/sequence.hpp"

namespace rnnfast_test {

void check_sequence_bf16();  // test_sequence.cpp

namespace {

namespace gemm = rnnfast::gemm;

// The bfloat16 rounding (nearest, ties to even) written independently of gemm::to_bf16: 8 significant bits, so
// the quantum is 2^(e-8) for |x| in [2^(e-1), 2^e), and never below bfloat16's subnormal step 2^-133.
float round_bf16(float x) {
  if (std::isnan(x) || std::isinf(x) || x == 0.0f) return x;
  int e = 0;
  std::frexp(x, &e);
  const double quantum = std::ldexp(1.0, std::max(e - 8, -133));
  return static_cast<float>(std::nearbyint(static_cast<double>(x) / quantum) * quantum);
}

float widen(gemm::bf16 v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// A logical rows x cols operand stored row-major, or transposed (stored cols x rows), with a row stride 3 larger
// than a stored row; the padding holds NaN.
template <class S>
struct Operand {
  int64_t rows = 0, cols = 0, ld = 0;
  bool trans = false;
  std::vector<S> data;
  S at(int64_t i, int64_t j) const { return trans ? data[j * ld + i] : data[i * ld + j]; }
  gemm::MatView<S> view() const { return {data.data(), ld, trans}; }
};

template <class S>
Operand<S> make_operand(std::mt19937& rng, int64_t rows, int64_t cols, bool trans) {
  Operand<S> o;
  o.rows = rows, o.cols = cols, o.trans = trans;
  const int64_t stored_rows = trans ? cols : rows, stored_cols = trans ? rows : cols;
  o.ld = stored_cols + 3;
  o.data.assign(std::max<int64_t>(1, stored_rows * o.ld), static_cast<S>(kNaN));
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (int64_t r = 0; r < stored_rows; ++r)
    for (int64_t c = 0; c < stored_cols; ++c) o.data[r * o.ld + c] = static_cast<S>(dist(rng));
  return o;
}

// C (M x N) with row stride N + 5: the padding holds a sentinel; with beta == 0, C holds NaN, which must not
// survive (BLAS semantics: beta == 0 means C is not read).
template <class S>
struct Output {
  int64_t M, N, ldc;
  std::vector<S> c0, c;
};

template <class S>
Output<S> make_output(std::mt19937& rng, int64_t M, int64_t N, double beta) {
  Output<S> o{M, N, N + 5, {}, {}};
  o.c0.assign(std::max<int64_t>(1, M * o.ldc), S(7));
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      o.c0[i * o.ldc + j] = beta == 0.0 ? static_cast<S>(kNaN) : static_cast<S>(dist(rng));
  o.c = o.c0;
  return o;
}

// Element (i, j) of the exact product and its error bound's sum of magnitudes.
struct Exact {
  double value, magnitude;
};

// Compares C's columns [col0, col0 + N) with beta*C0 + A*B (operands rounded by `round_a` / `round_b` first, as the
// bfloat16 paths do), against the error bound times `slack`. Everything else in C must be unchanged.
template <class S, class Ra, class Rb>
void check_product(const char* file, int line, const std::string& what, const Output<S>& out, int64_t col0, int64_t N,
                   const Operand<S>& a, const Operand<S>& b, double beta, double unit_roundoff, Ra round_a, Rb round_b,
                   std::vector<char>* covered = nullptr) {
  const int64_t M = a.rows, K = a.cols;
  double worst = 0.0;
  int64_t wi = 0, wj = 0;
  double got_at = 0, want_at = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const int64_t at = i * out.ldc + col0 + j;
      const double c0 = beta == 0.0 ? 0.0 : beta * static_cast<double>(out.c0[at]);
      double sum = c0, mag = std::abs(c0);
      for (int64_t k = 0; k < K; ++k) {
        const double p = static_cast<double>(round_a(a.at(i, k))) * static_cast<double>(round_b(b.at(k, j)));
        sum += p, mag += std::abs(p);
      }
      // Plus FLT_MIN per operation: the bfloat16 units flush subnormal results to zero.
      const double bound = (K + 2) * (unit_roundoff * mag + 1.2e-38);
      double ratio = std::abs(static_cast<double>(out.c[at]) - sum) / bound;
      if (std::isnan(ratio)) ratio = INFINITY;
      if (ratio > worst || (i == 0 && j == 0)) worst = ratio, wi = i, wj = j, got_at = out.c[at], want_at = sum;
      if (covered) (*covered)[at] = 1;
    }
  record(worst <= 1.0, file, line, what,
         format("error / bound = %.3g at (%lld, %lld): got %.9g, want %.9g (bound (K+2)u sum|a b|, K = %lld)", worst,
                static_cast<long long>(wi), static_cast<long long>(wj), got_at, want_at, static_cast<long long>(K)));
  if (worst <= 1.0 && worst > stats().worst_ratio)
    stats().worst_ratio = worst, stats().worst_what = where() + ": " + what;
}

template <class S>
void check_untouched(const char* file, int line, const Output<S>& out, const std::vector<char>& covered) {
  int64_t changed = 0;
  for (size_t k = 0; k < out.c.size(); ++k)
    if (!covered[k] && std::memcmp(&out.c[k], &out.c0[k], sizeof(S)) != 0) ++changed;
  record(changed == 0, file, line, "C outside the product unchanged",
         format("%lld values outside the product's rows and columns changed", static_cast<long long>(changed)));
}

auto identity = [](auto v) { return v; };
auto to_bf16 = [](float v) { return round_bf16(v); };

const char* transposes(bool ta, bool tb) {
  static const char* names[] = {"A B", "A B^T", "A^T B", "A^T B^T"};
  return names[(ta ? 2 : 0) + (tb ? 1 : 0)];
}

// One product through `multiply` (sgemm, matmul<float> or matmul<double>) checked against the bound.
template <class S, class Multiply, class Ra = decltype(identity), class Rb = decltype(identity)>
Output<S> product_case(std::mt19937& rng, int64_t M, int64_t N, int64_t K, bool ta, bool tb, double beta,
                       Multiply&& multiply, double unit_roundoff, Ra round_a = identity, Rb round_b = identity) {
  Scope s(format("M=%lld N=%lld K=%lld %s beta=%g", static_cast<long long>(M), static_cast<long long>(N),
                 static_cast<long long>(K), transposes(ta, tb), beta));
  const Operand<S> a = make_operand<S>(rng, M, K, ta), b = make_operand<S>(rng, K, N, tb);
  Output<S> out = make_output<S>(rng, M, N, beta);
  multiply(M, N, K, a.view(), b.view(), static_cast<S>(beta), out.c.data(), out.ldc);
  std::vector<char> covered(out.c.size(), 0);
  check_product(__FILE__, __LINE__, "C", out, 0, N, a, b, beta, unit_roundoff, round_a, round_b, &covered);
  check_untouched(__FILE__, __LINE__, out, covered);
  return out;
}

std::vector<int64_t> distinct_positive(std::vector<int64_t> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](int64_t x) { return x <= 0; }), v.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

constexpr double kFloatU = 1.0 / (1 << 24);
constexpr double kDoubleU = 1.0 / 9007199254740992.0;  // 2^-53

// Sizes at and around each blocking edge of this build's kernel.
struct Edges {
  std::vector<int64_t> M, N, K;
};

Edges edges() {
  using namespace gemm;
  return {distinct_positive({1, 2, MR - 1, MR, MR + 1, 2 * MR + 1, 3 * MR, 15, 16, 17, MC - 1, MC + MR + 1}),
          distinct_positive(
              {1, VL - 1, VL, VL + 1, NR - 1, NR, NR + 1, NR + VL, 2 * NR + VL + 1, kPanelsPerGroup * NR + NR + 3}),
          distinct_positive({1, 2, VL + 1, KC - 1, KC, KC + 1, KC_MAX, KC_MAX + 1, 2 * KC + KC / 4 + 5})};
}

auto sgemm = [](int64_t M, int64_t N, int64_t K, const gemm::View& a, const gemm::View& b, float beta, float* c,
                int64_t ldc) { gemm::sgemm(M, N, K, a, b, beta, c, ldc); };
auto matmul_float = [](int64_t M, int64_t N, int64_t K, const gemm::View& a, const gemm::View& b, float beta, float* c,
                       int64_t ldc) { rnnfast::matmul<float>(M, N, K, a, b, beta, c, ldc); };
auto matmul_double = [](int64_t M, int64_t N, int64_t K, const gemm::MatView<double>& a, const gemm::MatView<double>& b,
                        double beta, double* c, int64_t ldc) { rnnfast::matmul<double>(M, N, K, a, b, beta, c, ldc); };

// Every edge of M, N and K in turn (the other two fixed off the edges), all four transposes, beta 0, 1, 0.5.
template <class S, class Multiply, class Ra = decltype(identity), class Rb = decltype(identity)>
void sweep(std::mt19937& rng, Multiply&& multiply, double unit_roundoff, const std::vector<double>& betas,
           Ra round_a = identity, Rb round_b = identity) {
  using namespace gemm;
  const Edges e = edges();
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (double beta : betas) {
        for (int64_t M : e.M)
          product_case<S>(rng, M, NR + VL + 3, 45, ta, tb, beta, multiply, unit_roundoff, round_a, round_b);
        for (int64_t N : e.N)
          product_case<S>(rng, MR + 3, N, 29, ta, tb, beta, multiply, unit_roundoff, round_a, round_b);
        for (int64_t K : e.K)
          product_case<S>(rng, 2 * MR + 1, 2 * NR + VL + 1, K, ta, tb, beta, multiply, unit_roundoff, round_a, round_b);
      }
}

}  // namespace

void test_bf16_rounding() {
  // gemm::to_bf16 against the independent rounding above: random values, exact ties (both parities), values
  // that round up into the next binade, subnormals, infinities and NaN.
  std::mt19937 rng(401);
  std::vector<float> values{0.0f, -0.0f, 1.0f, -1.0f, 1e-40f, -3e-39f, 3.0e38f, -3.0e38f, INFINITY, -INFINITY};
  std::uniform_int_distribution<uint32_t> bits(0, 0xFFFFFFFFu);
  for (int i = 0; i < 20000; ++i) {
    uint32_t u = bits(rng);
    if (i % 4 == 1) u = (u & 0xFFFF0000u) | 0x8000u;                // a tie
    if (i % 4 == 2) u = (u & 0xFFFF0000u) | 0x7FFFu;                // just below a tie
    if (i % 4 == 3) u = (u & 0xFF80FFFFu) | 0x007F0000u | 0x8000u;  // a tie at the top of a binade's significand
    float f;
    std::memcpy(&f, &u, sizeof f);
    values.push_back(f);
  }
  int64_t wrong = 0, nan_lost = 0;
  float first_wrong = 0.0f;
  for (float v : values) {
    const float got = widen(gemm::to_bf16(v));
    if (std::isnan(v)) {
      nan_lost += !std::isnan(got);
      continue;
    }
    const float want = round_bf16(v);
    if (std::memcmp(&got, &want, sizeof got) != 0 &&
        !(got == 0.0f && want == 0.0f && std::signbit(got) == std::signbit(want)))
      if (wrong++ == 0) first_wrong = v;
  }
  CHECK(wrong == 0, "%lld of %zu values rounded differently (first: %.9g)", static_cast<long long>(wrong),
        values.size(), static_cast<double>(first_wrong));
  CHECK(nan_lost == 0, "%lld NaN became numbers", static_cast<long long>(nan_lost));
}

void test_gemm() {
  using namespace gemm;
  std::mt19937 rng(500);
  {
    Scope s(format("sgemm (MR=%d NR=%d VL=%d KC=%lld KC_MAX=%lld MC=%lld)", MR, NR, VL, static_cast<long long>(KC),
                   static_cast<long long>(KC_MAX), static_cast<long long>(MC)));
    sweep<float>(rng, sgemm, kFloatU, {0.0, 1.0, 0.5});
    // Every edge together: more than MC rows, a k remainder past KC_MAX, a narrow last panel.
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        product_case<float>(rng, MC + MR + 1, 2 * NR + 5, KC_MAX + 1, ta, tb, -2.0, sgemm, kFloatU);
    // More columns than one packed chunk (2048).
    product_case<float>(rng, 3, 2048 + NR + 1, 17, false, true, 1.0, sgemm, kFloatU);
  }
  {
    Scope s("sgemm degenerate sizes");
    for (double beta : {0.0, 0.5, 1.0})
      product_case<float>(rng, 5, 7, 0, false, false, beta, sgemm, kFloatU);  // C = beta C
    product_case<float>(rng, 0, 7, 5, false, false, 0.0, sgemm, kFloatU);
    product_case<float>(rng, 5, 0, 5, true, true, 0.0, sgemm, kFloatU);
  }
  {
    // Threads split columns (M <= N) or rows (M > N); documented: the same bits for any thread count.
    Scope s("sgemm thread splits");
    const int before = rnnfast::max_threads();
    const struct {
      int64_t M, N, K;
    } shapes[] = {{200, 150, 100}, {300, 20, 400}, {2 * MR + 1, 700, 90}};
    for (const auto& sh : shapes)
      for (bool ta : {false, true}) {
        std::mt19937 same(sh.M + ta);
        rnnfast::set_num_threads(1);
        const Output<float> one = product_case<float>(same, sh.M, sh.N, sh.K, ta, !ta, 0.5, sgemm, kFloatU);
        for (int threads : {2, 3}) {
          std::mt19937 again(sh.M + ta);
          rnnfast::set_num_threads(threads);
          const Output<float> many = product_case<float>(again, sh.M, sh.N, sh.K, ta, !ta, 0.5, sgemm, kFloatU);
          CHECK_IDENTICAL(format("%d threads vs 1: M=%lld N=%lld K=%lld", threads, static_cast<long long>(sh.M),
                                 static_cast<long long>(sh.N), static_cast<long long>(sh.K)),
                          many.c.data(), one.c.data(), one.c.size());
        }
      }
    rnnfast::set_num_threads(before);
  }
  {
    Scope s("matmul<float>");
    for (bool ta : {false, true})
      for (bool tb : {false, true}) product_case<float>(rng, 37, 45, 70, ta, tb, 1.0, matmul_float, kFloatU);
  }
  {
    Scope s("matmul<double> (Eigen)");
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (double beta : {0.0, 1.0, -0.5}) {
          product_case<double>(rng, 1, 9, 3, ta, tb, beta, matmul_double, kDoubleU);
          product_case<double>(rng, 37, 45, 70, ta, tb, beta, matmul_double, kDoubleU);
        }
  }
}

namespace {

// One operand used for many products (rnnfast::FixedRhs), as the recurrent kernels use it: segments of B landing
// in separate column ranges of C (gates), with gaps between them that must stay untouched.
template <class S, class Rb>
void fixed_rhs_case(std::mt19937& rng, int64_t K, const std::vector<int64_t>& segment_cols, bool trans,
                    rnnfast::RhsStorage storage, double beta, const std::vector<int64_t>& row_counts, Rb round_b,
                    bool round_a) {
  Scope s(format("K=%lld, %zu segment(s) of %lld.. columns, B%s, beta=%g", static_cast<long long>(K),
                 segment_cols.size(), static_cast<long long>(segment_cols[0]), trans ? "^T" : "", beta));
  std::vector<Operand<S>> b;
  std::vector<rnnfast::gemm::Segment<S>> segments;
  int64_t width = 0;
  for (int64_t cols : segment_cols) {
    b.push_back(make_operand<S>(rng, K, cols, trans));
    segments.push_back({b.back().view(), cols, width});
    width += cols + 2;  // a gap of two columns
  }
  const int64_t max_rows = *std::max_element(row_counts.begin(), row_counts.end());
  const rnnfast::FixedRhs<S> rhs(segments, K, max_rows, storage);
  for (int64_t m : row_counts) {
    Scope r(format("m=%lld", static_cast<long long>(m)));
    const Operand<S> a = make_operand<S>(rng, m, K, false);
    Output<S> out = make_output<S>(rng, m, width, beta);
    rhs.apply(m, a.data.data(), a.ld, static_cast<S>(beta), out.c.data(), out.ldc);
    std::vector<char> covered(out.c.size(), 0);
    for (size_t g = 0; g < b.size(); ++g)
      check_product(
          __FILE__, __LINE__, format("segment %zu", g), out, segments[g].dest, segment_cols[g], a, b[g], beta,
          std::is_same_v<S, float> ? kFloatU : kDoubleU,
          [&](S v) { return round_a ? static_cast<S>(round_bf16(static_cast<float>(v))) : v; }, round_b, &covered);
    check_untouched(__FILE__, __LINE__, out, covered);
  }
}

}  // namespace

void test_fixed_rhs() {
  using namespace gemm;
  using rnnfast::RhsStorage;
  std::mt19937 rng(600);
  const std::vector<int64_t> rows{1, 3, MR + 1, 16, 2 * MR + 5, MC + MR + 2};
  const std::vector<std::vector<int64_t>> layouts{{13}, {NR + 1, NR + 1, NR + 1}, {2 * NR, VL - 1, 1, NR + VL}};
  for (const auto& [storage, name] :
       {std::pair{RhsStorage::in_place, "float32 in place"}, std::pair{RhsStorage::packed, "float32 packed"},
        std::pair{RhsStorage::packed_bf16, "float32 packed as bfloat16"}}) {
    Scope s(name);
    const bool bf16 = storage == RhsStorage::packed_bf16;
    auto round_b = [bf16](float v) { return bf16 ? round_bf16(v) : v; };
    // Each beta (0 as a forward's projection, 1 as the backward's dh_prev accumulation, and another) with every
    // K and transpose, the layouts taking turns.
    int turn = 0;
    for (int64_t K : {int64_t{5}, int64_t{37}, KC_MAX + 3})
      for (bool trans : {true, false})
        for (double beta : {0.0, 1.0, 0.5})
          fixed_rhs_case<float>(rng, K, layouts[turn++ % layouts.size()], trans, storage, beta,
                                storage == RhsStorage::in_place ? std::vector<int64_t>{1, 3, 7} : rows, round_b, false);
  }
  {
    Scope s("float64 (in place, Eigen)");
    for (bool trans : {true, false})
      for (double beta : {0.0, 1.0})
        fixed_rhs_case<double>(rng, 37, {NR + 1, 5}, trans, RhsStorage::packed, beta, {1, 17}, identity, false);
  }
}

// The bfloat16 products of set_matmul_precision("bfloat16"): AMX tiles or AVX512-BF16, where the CPU has one.
// Both operands are rounded to bfloat16 (their products are exact in float32) and summed in float32, so the
// reference rounds both the same way and the float32 bound applies.
void test_bf16_products() {
  namespace amx = rnnfast::amx;
  if (!amx::available()) {
    std::printf("  SKIP bfloat16 products: %s\n",
                RNNFAST_HAVE_AMX ? "this CPU has neither AMX tiles nor AVX512-BF16"
                                 : "built without AVX-512 (only the avx512 build holds the bfloat16 kernels)");
    return;
  }
  std::printf("  bfloat16 unit: %s\n", amx::unit_name());
  auto& precision = rnnfast::matmul_precision_setting();
  const int saved = precision.load();
  precision.store(static_cast<int>(rnnfast::MatmulPrecision::bfloat16));
  CHECK(amx::enabled(), "bfloat16 precision set on a CPU with a unit, but amx::enabled() is false");
  std::mt19937 rng(700);
  {
    Scope s(format("matmul<float> on %s", amx::unit_name()));
    sweep<float>(rng, matmul_float, kFloatU, {0.0, 1.0, 0.5}, to_bf16, to_bf16);
    // More rows than columns with A transposed and K >= M: computed as (B^T A^T)^T.
    for (double beta : {0.0, 1.0, 0.5})
      product_case<float>(rng, 70, 20, 90, true, false, beta, matmul_float, kFloatU, to_bf16, to_bf16);
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        product_case<float>(rng, 130, 600, 530, ta, tb, 1.0, matmul_float, kFloatU, to_bf16, to_bf16);  // past KC, NC
  }
  {
    Scope s(format("FixedRhs on %s", amx::unit_name()));
    for (int64_t K : {int64_t{5}, int64_t{37}, int64_t{100}})
      for (bool trans : {true, false})
        for (double beta : {0.0, 1.0, 0.5})
          fixed_rhs_case<float>(rng, K, {16, 17, 1, 40}, trans, rnnfast::RhsStorage::packed, beta, {1, 15, 33, 70},
                                to_bf16, true);
  }
  {
    Scope s(format("sequence kernels on %s", amx::unit_name()));
    check_sequence_bf16();
  }
  precision.store(saved);
}

}  // namespace rnnfast_test
