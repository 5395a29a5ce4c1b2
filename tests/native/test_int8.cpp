// int8 weight products (int8.hpp) against an exact int64 reference: every unit this instruction set compiles and
// this CPU runs, on odd shapes and at the extremes of the ranges (where 8-bit activations would saturate
// VPMADDUBSW), and the rescaled float products of FixedRhs against the same integers in double.
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "rnnfast/matmul.hpp"

namespace rnnfast_test {
namespace {

using rnnfast::int8::kZeroPoint;

// sum_k q[i][k] * w[j][k] in int64.
std::vector<int64_t> reference(const std::vector<int8_t>& q, const std::vector<int8_t>& w, int64_t m, int64_t n,
                               int64_t K) {
  std::vector<int64_t> out(m * n, 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < K; ++k) out[i * n + j] += int64_t(q[i * K + k]) * int64_t(w[j * K + k]);
  return out;
}

// The products of one unit, through the same packing and tiles as multiply().
template <class D>
std::vector<int64_t> unit_products(const std::vector<int8_t>& q, const std::vector<int8_t>& w, int64_t m, int64_t n,
                                   int64_t K) {
  const std::vector<float> ones(n, 1.0f);
  const rnnfast::int8::PackedRows packed({{w.data(), K, ones.data(), n, 0}}, K);
  rnnfast::int8::QuantizedRows a(m, K);
  std::fill(a.u.get(), a.u.get() + m * a.Kp, uint8_t(kZeroPoint));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < K; ++k) a.u[i * a.Kp + k] = uint8_t(q[i * K + k] + kZeroPoint);
  std::vector<int64_t> out(m * n, -1);
  rnnfast::int8::products_with<D>(m, a.u.get(), a.Kp, packed,
                                  [&](int64_t i, const rnnfast::int8::RowBlock& block, const int32_t* sums) {
                                    for (int64_t t = 0; t < block.valid; ++t)
                                      out[i * n + block.dest + t] = sums[t] - packed.zero_point_sum()[block.begin + t];
                                  });
  return out;
}

template <class D>
void check_unit(const char* name) {
  Scope unit(name);
  std::mt19937 rng(7);
  for (const auto& [m, K, n] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {1, 65, 7}, {2, 31, 5}, {3, 64, 4}, {5, 200, 17}, {7, 513, 9}, {6, 1024, 70}, {300, 513, 130}}) {
    Scope shape(format("m=%d K=%d n=%d", int(m), int(K), int(n)));
    // Narrow weights take the kernel that adds two steps in int16, any others the step-by-step one.
    for (const int weight_max : {int(rnnfast::int8::kNarrowWeightMax), 128}) {
      std::uniform_int_distribution<int> activation(-kZeroPoint, kZeroPoint - 1),
          weight(-weight_max, std::min(weight_max, 127));
      std::vector<int8_t> q(m * K), w(n * K);
      for (auto& v : q) v = int8_t(activation(rng));
      for (auto& v : w) v = int8_t(weight(rng));
      const auto want = reference(q, w, m, n, K);
      CHECK_IDENTICAL(format("random, |w| <= %d", weight_max).c_str(), unit_products<D>(q, w, m, n, K).data(),
                      want.data(), want.size());
    }
    std::vector<int8_t> q(m * K), w(n * K);
    // At |w| = 64 four products reach 32512; at 65, 33020 would wrap in int16 if that kernel took them.
    for (const auto& [qv, wv] : std::vector<std::pair<int, int>>{
             {63, 127}, {63, -128}, {-64, -128}, {63, 64}, {-64, -64}, {63, 65}, {-64, -65}}) {
      std::fill(q.begin(), q.end(), int8_t(qv));
      std::fill(w.begin(), w.end(), int8_t(wv));
      const auto extreme = reference(q, w, m, n, K);
      CHECK_IDENTICAL(format("q=%d w=%d", qv, wv).c_str(), unit_products<D>(q, w, m, n, K).data(), extreme.data(),
                      extreme.size());
    }
  }
}

// Two segments landing in interleaved columns, as the recurrent weights of a thread's units do.
void check_fixed_rhs() {
  Scope scope("FixedRhs int8");
  const int64_t m = 5, K = 70, n0 = 6, n1 = 3, cols = 12;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> weight(-127, 127);
  std::vector<int8_t> w((n0 + n1) * K);
  for (auto& v : w) v = int8_t(weight(rng));
  std::vector<float> scale(n0 + n1);
  for (size_t j = 0; j < scale.size(); ++j) scale[j] = 0.01f * float(j + 1);
  const rnnfast::FixedRhs<float> rhs(
      std::vector<rnnfast::int8::Segment>{{w.data(), K, scale.data(), n0, 0},
                                          {w.data() + n0 * K, K, scale.data() + n0, n1, 8}},
      K, 2);
  const std::vector<float> a = uniform<float>(rng, m * K, 2.0);
  std::vector<float> c(m * cols, -7.0f);
  rhs.apply(m, a.data(), K, 0.0f, c.data(), cols);
  std::vector<float> got;
  Vec want;
  for (int64_t i = 0; i < m; ++i) {
    std::vector<uint8_t> u(rnnfast::int8::padded(K));
    const float a_scale = rnnfast::int8::quantize_row(a.data() + i * K, K, u.size(), u.data());
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t row = j < n0 ? j : (j >= 8 && j < 8 + n1 ? n0 + j - 8 : -1);
      if (row < 0) {
        CHECK(c[i * cols + j] == -7.0f, "column %d outside the segments was written", int(j));
        continue;
      }
      int64_t sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += (int64_t(u[k]) - kZeroPoint) * w[row * K + k];
      got.push_back(c[i * cols + j]);
      want.push_back(double(sum) * scale[row] * a_scale);
    }
  }
  // float(sum) * w_scale * a_scale: two roundings of float32 products.
  CHECK_CLOSE("rescaled products", got.data(), want, 1e-6);
}

}  // namespace

void test_int8() {
  std::printf("  int8 unit: %s\n", rnnfast::int8::unit_name());
  check_unit<rnnfast::int8::ScalarDot>("scalar");
#if RNNFAST_INT8_X86 && defined(__AVX512BW__)
  check_unit<rnnfast::int8::Avx512Dot>("avx512bw");
  if (rnnfast::int8::unit() == rnnfast::int8::Unit::avx512_vnni) check_unit<rnnfast::int8::Avx512VnniDot>("vnni512");
#elif RNNFAST_INT8_X86
  check_unit<rnnfast::int8::Avx2Dot>("avx2");
  if (rnnfast::int8::unit() == rnnfast::int8::Unit::avx_vnni) check_unit<rnnfast::int8::AvxVnniDot>("avx_vnni");
#endif
  check_fixed_rhs();
}

}  // namespace rnnfast_test
