// Products with int8 weights for inference (model.quantize("int8"), generate(weight_dtype="int8")).
//
// Weights: int8, one float32 scale per output row (symmetric), quantized once in Python (rnnfast/quantize.py) to
// q = rint(w * 64 / max|w|) in [-64, 64].
// Activations: quantized per row at run time, symmetric with 7 bits, q = rint(x * 63 / max|x|) in [-63, 63], and
// stored biased as u = q + 64 in [1, 127]. A product row is then sum_k u_k w_k - 64 * sum_k w_k = sum_k q_k w_k,
// exact in int32, rescaled to float32 as float(sum) * w_scale * x_scale.
//
// Why 7 bits: AVX2 has no unsigned-by-signed byte product that sums in int32; VPMADDUBSW sums pairs of u8 * s8
// into saturating int16. With u <= 127 and |w| <= 128 a pair is at most 2 * 127 * 128 = 32512 < 32767, so it can
// never saturate and every unit computes the same integers (the same reason PyTorch's fbgemm backend quantizes
// activations with reduce_range on x86). VNNI's VPDPBUSD would allow 8 bits, but one scheme everywhere means a
// model's outputs do not depend on the CPU that runs it.
//
// Why weights in [-64, 64]: then two VPMADDUBSW results (four products) add to at most 4 * 127 * 64 = 32512 in
// int16, so the AVX2 and AVX512-BW units widen to int32 (VPMADDWD) once per two steps of k instead of every step:
// three multiplies per 64 products instead of four, the count of fbgemm's saturating kernel, and still exact.
// Weights outside that range (int8 models saved before they were quantized so) take the step-by-step kernel, which
// any int8 weight fits.
//
// Units, chosen at run time within the loaded instruction-set library: AVX512-VNNI (VPDPBUSD on 512 bits) or
// AVX512-BW (VPMADDUBSW + VPMADDWD) in the AVX-512 library, AVX-VNNI (VEX VPDPBUSD) or AVX2 in the AVX2 library,
// plain integer loops in the baseline one. The VNNI instructions are written as inline assembly, so a library
// compiled for plain AVX2 or AVX-512 holds them and runs them only where CPUID reports them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnnfast/gemm.hpp"

#if defined(__AVX2__) && defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define RNNFAST_INT8_X86 1
#else
#define RNNFAST_INT8_X86 0
#endif

namespace rnnfast::int8 {

constexpr int kActivationMax = 63;    // |q| of an activation
constexpr int kZeroPoint = 64;        // u = q + kZeroPoint
constexpr int64_t kAlign = 64;        // k is padded to a multiple of this (one 512-bit vector of bytes)
constexpr int kRowsPerTile = 4;       // weight rows per micro-kernel call
constexpr int kNarrowWeightMax = 64;  // |w| of weights whose four products with u fit int16
// The most k an int32 sum of u * w can hold: K * 127 * 128 < 2**31.
constexpr int64_t kMaxDepth = (int64_t(1) << 31) / (127 * 128) - 1;

inline int64_t padded(int64_t K) { return (K + kAlign - 1) / kAlign * kAlign; }

// A (rows, K) weight matrix as int8, row-major, with one scale per row; empty when the weights are float.
struct Weights {
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  explicit operator bool() const { return q != nullptr; }
};

// `cols` rows of a weight matrix (row stride ld) whose products land in columns [dest, dest + cols).
struct Segment {
  const int8_t* q;
  int64_t ld;
  const float* scale;
  int64_t cols, dest;
};

enum class Unit { scalar, avx2, avx_vnni, avx512bw, avx512_vnni };

inline Unit unit() {
#if RNNFAST_INT8_X86
  static const Unit found = [] {
    unsigned eax, ebx, ecx, edx;
#if defined(__AVX512BW__)
    const bool vnni512 = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 11));
    return vnni512 ? Unit::avx512_vnni : Unit::avx512bw;
#else
    const bool avx_vnni = __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4));
    return avx_vnni ? Unit::avx_vnni : Unit::avx2;
#endif
  }();
  return found;
#else
  return Unit::scalar;
#endif
}

inline const char* unit_name() {
  switch (unit()) {
    case Unit::avx2:
      return "avx2";
    case Unit::avx_vnni:
      return "avx_vnni";
    case Unit::avx512bw:
      return "avx512bw";
    case Unit::avx512_vnni:
      return "avx512_vnni";
    default:
      return "scalar";
  }
}

// Quantizes one activation row of K values into Kp >= K biased bytes (the padding is the zero point, which the
// zero padding of the weights cancels). Returns the row's scale: 0 for an all-zero row, NaN when the row holds a
// NaN or infinity (so the products come out NaN instead of finite nonsense).
inline float quantize_row(const float* x, int64_t K, int64_t Kp, uint8_t* u) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t k = 0; k < K; ++k) {
    const float a = std::fabs(x[k]);
    amax = a > amax ? a : amax;
    finite &= a <= std::numeric_limits<float>::max();
  }
  std::memset(u, kZeroPoint, Kp);
  if (!finite) return std::numeric_limits<float>::quiet_NaN();
  if (amax == 0.0f) return 0.0f;
  const float inv = static_cast<float>(kActivationMax) / amax;
  for (int64_t k = 0; k < K; ++k) {
    const float q = std::min(std::max(std::nearbyint(x[k] * inv), -63.0f), 63.0f);
    u[k] = static_cast<uint8_t>(static_cast<int>(q) + kZeroPoint);
  }
  return amax / static_cast<float>(kActivationMax);
}

// Weight rows per block: their bytes stay in L1/L2 while a block of activation rows passes over them.
constexpr int64_t kRowBlock = 64;

// A block of packed rows [begin, begin + rows) (rows a multiple of kRowsPerTile) of which the first `valid` are real
// and land in columns [dest, dest + valid).
struct RowBlock {
  int64_t begin, rows, valid, dest;
};

// Weight rows packed for the kernels: each segment cut into blocks of at most kRowBlock rows, its last block padded
// to a multiple of kRowsPerTile with zero rows, so that a block's products land in consecutive columns; k padded to
// Kp with zeros; 64-byte aligned. Per row the scale and the zero point's share.
class PackedRows {
 public:
  PackedRows() = default;
  PackedRows(const std::vector<Segment>& segments, int64_t K) : K_(K), Kp_(padded(K)) {
    if (K > kMaxDepth)
      throw std::invalid_argument("int8 weights: got " + std::to_string(K) + " inputs per row, at most " +
                                  std::to_string(kMaxDepth) + " fit an int32 sum");
    for (const auto& s : segments)
      for (int64_t j = 0; j < s.cols; j += kRowBlock) {
        const int64_t valid = std::min(kRowBlock, s.cols - j);
        blocks_.push_back({rows_, (valid + kRowsPerTile - 1) / kRowsPerTile * kRowsPerTile, valid, s.dest + j});
        rows_ += blocks_.back().rows;
      }
    data_ = gemm::allocate<int8_t>(rows_ * Kp_);
    std::memset(data_.get(), 0, rows_ * Kp_);
    scale_.assign(rows_, 0.0f);
    zero_point_sum_.assign(rows_, 0);
    auto block = blocks_.begin();
    for (const auto& s : segments)
      for (int64_t j = 0; j < s.cols; j += kRowBlock, ++block)
        for (int64_t t = 0; t < block->valid; ++t) {
          const int8_t* row = s.q + (j + t) * s.ld;
          const int64_t r = block->begin + t;
          std::memcpy(data_.get() + r * Kp_, row, K);
          int32_t sum = 0;
          for (int64_t k = 0; k < K; ++k) {
            sum += row[k];
            narrow_ = narrow_ && std::abs(int(row[k])) <= kNarrowWeightMax;
          }
          zero_point_sum_[r] = kZeroPoint * sum;
          scale_[r] = s.scale[j + t];
        }
  }

  int64_t K() const { return K_; }
  int64_t Kp() const { return Kp_; }
  int64_t rows() const { return rows_; }
  const std::vector<RowBlock>& blocks() const { return blocks_; }
  const int8_t* data() const { return data_.get(); }
  const float* scale() const { return scale_.data(); }
  const int32_t* zero_point_sum() const { return zero_point_sum_.data(); }
  // Every weight within [-kNarrowWeightMax, kNarrowWeightMax]: two steps of k may add in int16.
  bool narrow() const { return narrow_; }

 private:
  int64_t K_ = 0, Kp_ = 0, rows_ = 0;
  bool narrow_ = true;
  std::vector<RowBlock> blocks_;
  gemm::BufferOf<int8_t> data_;
  std::vector<float> scale_;
  std::vector<int32_t> zero_point_sum_;
};

// The micro-kernel's arithmetic, per unit: acc (int32 lanes) += u * w summed over byte groups; sum4 reduces four
// accumulators to their four totals. Units whose products pass through int16 (kTwoSteps) also have dot2, the
// same over 2 * kBytes bytes with one widening, exact for narrow weights.
struct ScalarDot {
  using V = int32_t;
  static constexpr int kBytes = 64;
  static constexpr int kActivationRows = 2;
  static constexpr bool kTwoSteps = false;
  static V zero() { return 0; }
  static V dot(V acc, const uint8_t* u, const int8_t* w) {
    for (int b = 0; b < kBytes; ++b) acc += static_cast<int32_t>(u[b]) * static_cast<int32_t>(w[b]);
    return acc;
  }
  static void sum4(const V* acc, int32_t* out) { std::copy(acc, acc + 4, out); }
};

#if RNNFAST_INT8_X86
struct Avx2Dot {
  using V = __m256i;
  static constexpr int kBytes = 32;
  static constexpr int kActivationRows = 2;
  static constexpr bool kTwoSteps = true;
  static V zero() { return _mm256_setzero_si256(); }
  static V pairs(const uint8_t* u, const int8_t* w) {
    return _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const V*>(u)),
                                _mm256_load_si256(reinterpret_cast<const V*>(w)));
  }
  static V dot(V acc, const uint8_t* u, const int8_t* w) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs(u, w), _mm256_set1_epi16(1)));
  }
  static V dot2(V acc, const uint8_t* u, const int8_t* w) {
    const V quads = _mm256_add_epi16(pairs(u, w), pairs(u + kBytes, w + kBytes));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(quads, _mm256_set1_epi16(1)));
  }
  static void sum4(const V* acc, int32_t* out) {
    const V s = _mm256_hadd_epi32(_mm256_hadd_epi32(acc[0], acc[1]), _mm256_hadd_epi32(acc[2], acc[3]));
    const __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), t);
  }
};

struct AvxVnniDot : Avx2Dot {
  static constexpr bool kTwoSteps = false;
  static V dot(V acc, const uint8_t* u, const int8_t* w) {
    const V uv = _mm256_load_si256(reinterpret_cast<const V*>(u));
    const V wv = _mm256_load_si256(reinterpret_cast<const V*>(w));
    asm("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(uv), "x"(wv));
    return acc;
  }
};
#endif

#if RNNFAST_INT8_X86 && defined(__AVX512BW__)
struct Avx512Dot {
  using V = __m512i;
  static constexpr int kBytes = 64;
  static constexpr int kActivationRows = 4;
  static constexpr bool kTwoSteps = true;
  static V zero() { return _mm512_setzero_si512(); }
  static V pairs(const uint8_t* u, const int8_t* w) {
    return _mm512_maddubs_epi16(_mm512_load_si512(u), _mm512_load_si512(w));
  }
  static V dot(V acc, const uint8_t* u, const int8_t* w) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs(u, w), _mm512_set1_epi16(1)));
  }
  static V dot2(V acc, const uint8_t* u, const int8_t* w) {
    const V quads = _mm512_add_epi16(pairs(u, w), pairs(u + kBytes, w + kBytes));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(quads, _mm512_set1_epi16(1)));
  }
  static void sum4(const V* acc, int32_t* out) {
    __m256i half[4];
    for (int r = 0; r < 4; ++r)
      half[r] = _mm256_add_epi32(_mm512_castsi512_si256(acc[r]), _mm512_extracti64x4_epi64(acc[r], 1));
    Avx2Dot::sum4(half, out);
  }
};

struct Avx512VnniDot : Avx512Dot {
  static constexpr bool kTwoSteps = false;
  static V dot(V acc, const uint8_t* u, const int8_t* w) {
    const V uv = _mm512_load_si512(u), wv = _mm512_load_si512(w);
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(uv), "v"(wv));
    return acc;
  }
};
#endif

// out[i][col + r] = sum_k u[i][k] * w[r][k] for MR activation rows and kRowsPerTile weight rows; with kTwoSteps
// (narrow weights only) k advances two vectors at a time while two remain.
template <class D, int MR, bool kTwoSteps>
inline void tile(const uint8_t* u, int64_t ldu, const int8_t* w, int64_t Kp, int64_t col, int32_t (*out)[kRowBlock]) {
  typename D::V acc[MR][kRowsPerTile];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < kRowsPerTile; ++r) acc[i][r] = D::zero();
  int64_t k = 0;
  if constexpr (kTwoSteps)
    for (; k + 2 * D::kBytes <= Kp; k += 2 * D::kBytes)
      for (int i = 0; i < MR; ++i)
        for (int r = 0; r < kRowsPerTile; ++r) acc[i][r] = D::dot2(acc[i][r], u + i * ldu + k, w + r * Kp + k);
  for (; k < Kp; k += D::kBytes)
    for (int i = 0; i < MR; ++i)
      for (int r = 0; r < kRowsPerTile; ++r) acc[i][r] = D::dot(acc[i][r], u + i * ldu + k, w + r * Kp + k);
  for (int i = 0; i < MR; ++i) D::sum4(acc[i], out[i] + col);
}

// Activation bytes per block: they stay in L2 while a block of weight rows passes over them.
constexpr int64_t kActivationBlockBytes = 128 * 1024;

// For every activation row i (u biased, ldu >= Kp) and block of packed rows: visit(i, block, sums) with
// sums[t] = sum_k u_ik w_(block.begin+t)k for t < block.rows, exactly (the zero point's share still in).
template <class D, bool kTwoSteps, class Visit>
void products_in_steps(int64_t m, const uint8_t* u, int64_t ldu, const PackedRows& w, Visit&& visit) {
  constexpr int MR = D::kActivationRows;
  const int64_t Kp = w.Kp();
  const int64_t rows_per_block = std::max<int64_t>(MR, kActivationBlockBytes / Kp / MR * MR);
  alignas(64) int32_t sums[MR][kRowBlock];
  for (int64_t i0 = 0; i0 < m; i0 += rows_per_block) {
    const int64_t i1 = std::min(m, i0 + rows_per_block);
    for (const RowBlock& block : w.blocks()) {
      const int8_t* rows = w.data() + block.begin * Kp;
      int64_t i = i0;
      for (; i + MR <= i1; i += MR) {
        for (int64_t r = 0; r < block.rows; r += kRowsPerTile)
          tile<D, MR, kTwoSteps>(u + i * ldu, ldu, rows + r * Kp, Kp, r, sums);
        for (int a = 0; a < MR; ++a) visit(i + a, block, sums[a]);
      }
      for (; i < i1; ++i) {
        for (int64_t r = 0; r < block.rows; r += kRowsPerTile)
          tile<D, 1, kTwoSteps>(u + i * ldu, ldu, rows + r * Kp, Kp, r, sums);
        visit(i, block, sums[0]);
      }
    }
  }
}

template <class D, class Visit>
void products_with(int64_t m, const uint8_t* u, int64_t ldu, const PackedRows& w, Visit&& visit) {
  if constexpr (D::kTwoSteps)
    if (w.narrow()) return products_in_steps<D, true>(m, u, ldu, w, visit);
  products_in_steps<D, false>(m, u, ldu, w, visit);
}

// The same with the unit of this CPU.
template <class Visit>
void products(int64_t m, const uint8_t* u, int64_t ldu, const PackedRows& w, Visit&& visit) {
  switch (unit()) {
#if RNNFAST_INT8_X86 && defined(__AVX512BW__)
    case Unit::avx512_vnni:
      return products_with<Avx512VnniDot>(m, u, ldu, w, visit);
    case Unit::avx512bw:
      return products_with<Avx512Dot>(m, u, ldu, w, visit);
#elif RNNFAST_INT8_X86
    case Unit::avx_vnni:
      return products_with<AvxVnniDot>(m, u, ldu, w, visit);
    case Unit::avx2:
      return products_with<Avx2Dot>(m, u, ldu, w, visit);
#endif
    default:
      return products_with<ScalarDot>(m, u, ldu, w, visit);
  }
}

// Activations quantized row by row: u (rows, Kp) and one scale per row.
struct QuantizedRows {
  gemm::BufferOf<uint8_t> u;
  std::vector<float> scale;
  int64_t Kp = 0;
  QuantizedRows() = default;
  QuantizedRows(int64_t max_rows, int64_t K) : u(gemm::allocate<uint8_t>(max_rows * padded(K))), Kp(padded(K)) {
    scale.resize(max_rows);
  }
  void quantize(int64_t m, const float* a, int64_t lda, int64_t K) {
    for (int64_t i = 0; i < m; ++i) scale[i] = quantize_row(a + i * lda, K, Kp, u.get() + i * Kp);
  }
};

// c[i, column of row r] = float(sum_k q_ik w_rk) * w_scale_r * a_scale_i: the products of quantized rows with
// packed rows, a block of consecutive columns at a time.
inline void multiply(int64_t m, const QuantizedRows& a, const PackedRows& w, float* c, int64_t ldc) {
  products(m, a.u.get(), a.Kp, w, [&](int64_t i, const RowBlock& block, const int32_t* sums) {
    const int32_t* __restrict zero_point_sum = w.zero_point_sum() + block.begin;
    const float* __restrict w_scale = w.scale() + block.begin;
    const float a_scale = a.scale[i];
    float* __restrict out = c + i * ldc + block.dest;
    for (int64_t t = 0; t < block.valid; ++t)
      out[t] = static_cast<float>(sums[t] - zero_point_sum[t]) * w_scale[t] * a_scale;
  });
}

// A weight operand used for many products: packed once, activations quantized into its own scratch (each thread
// owns its operand, as with FixedRhs), so apply() allocates nothing.
class Rhs {
 public:
  Rhs() = default;
  Rhs(const std::vector<Segment>& segments, int64_t K, int64_t max_rows)
      : packed_(segments, K), scratch_(std::max<int64_t>(max_rows, 1), K), max_rows_(std::max<int64_t>(max_rows, 1)) {}

  // C (m x columns) = A (m x K, row-major with lda) * W^T.
  void apply(int64_t m, const float* a, int64_t lda, float* c, int64_t ldc) const {
    for (int64_t i0 = 0; i0 < m; i0 += max_rows_) {
      const int64_t rows = std::min(max_rows_, m - i0);
      scratch_.quantize(rows, a + i0 * lda, lda, packed_.K());
      multiply(rows, scratch_, packed_, c + i0 * ldc, ldc);
    }
  }

 private:
  PackedRows packed_;
  mutable QuantizedRows scratch_;
  int64_t max_rows_ = 1;
};

// out (m, n) = q (m, K) * w (n, K)^T in int32 with this CPU's unit, for activations already quantized (q in
// [-64, 63]): the products a test can compare with an exact integer reference.
inline void exact_products(const int8_t* q, int64_t m, int64_t K, const int8_t* w, int64_t n, int32_t* out) {
  const std::vector<float> unit_scales(n, 1.0f);
  const PackedRows packed({{w, K, unit_scales.data(), n, 0}}, K);
  QuantizedRows a(m, K);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < K; ++k) a.u[i * a.Kp + k] = static_cast<uint8_t>(q[i * K + k] + kZeroPoint);
  products(m, a.u.get(), a.Kp, packed, [&](int64_t i, const RowBlock& block, const int32_t* sums) {
    for (int64_t t = 0; t < block.valid; ++t)
      out[i * n + block.dest + t] = sums[t] - packed.zero_point_sum()[block.begin + t];
  });
}

// q (m, K) and scale (m): the activation quantization of quantize_row, unbiased.
inline void quantize_activations(const float* x, int64_t m, int64_t K, int8_t* q, float* scale) {
  std::vector<uint8_t> u(padded(K));
  for (int64_t i = 0; i < m; ++i) {
    scale[i] = quantize_row(x + i * K, K, padded(K), u.data());
    for (int64_t k = 0; k < K; ++k) q[i * K + k] = static_cast<int8_t>(u[k] - kZeroPoint);
  }
}

}  // namespace rnnfast::int8
