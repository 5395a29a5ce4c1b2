// Products of float and double matrices for the layers: matmul (one-off products) and FixedRhs (one operand
// used for many products, such as a sequence's weights). float runs on the packed kernel of gemm.hpp, or on AMX
// tiles with bfloat16 operands when set_matmul_precision("bfloat16") asks for it (amx.hpp); double uses Eigen.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "rnnfast/amx.hpp"
#include "rnnfast/gemm.hpp"
#include "rnnfast/int8.hpp"
#include "rnnfast/parallel.hpp"

namespace rnnfast {

template <class S>
using ConstStridedMap =
    Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;
template <class S>
using StridedMap =
    Eigen::Map<Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;

// C (M x N, ldc) = beta*C + A (M x K) * B (K x N): the packed kernel (or tiles) for float, Eigen for double.
template <class S>
void matmul(int64_t M, int64_t N, int64_t K, const gemm::MatView<S>& a, const gemm::MatView<S>& b, S beta, S* c,
            int64_t ldc) {
  if constexpr (std::is_same_v<S, float>) {
#if RNNFAST_HAVE_AMX
    if (amx::enabled() && M > 0 && N > 0 && K > 0) return amx::sgemm(M, N, K, a, b, beta, c, ldc);
#endif
    gemm::sgemm(M, N, K, a, b, beta, c, ldc);
  } else {
    StridedMap<S> C(c, M, N, Eigen::OuterStride<>(ldc));
    auto A = [&] { return ConstStridedMap<S>(a.p, a.trans ? K : M, a.trans ? M : K, Eigen::OuterStride<>(a.ld)); };
    auto B = [&] { return ConstStridedMap<S>(b.p, b.trans ? N : K, b.trans ? K : N, Eigen::OuterStride<>(b.ld)); };
    if (beta == S(0))
      C.setZero();
    else if (beta != S(1))
      C *= beta;
    if (a.trans && b.trans)
      C.noalias() += A().transpose() * B().transpose();
    else if (a.trans)
      C.noalias() += A().transpose() * B();
    else if (b.trans)
      C.noalias() += A() * B().transpose();
    else
      C.noalias() += A() * B();
  }
}

// out (cols) += the sum of the rows of a (rows x cols), added row by row: a fixed order whatever the alignment
// (Eigen's colwise().sum() peels unaligned heads differently, which changes the last bits between runs) and
// whatever the thread count, since threads own ranges of columns.
template <class S>
void add_column_sums(const S* a, int64_t rows, int64_t cols, S* out) {
#pragma omp parallel num_threads(threads_for_elements(rows* cols))
  {
    const UnitRange own = unit_range(cols, team_size(), thread_id());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = own.begin; c < own.end; ++c) out[c] += a[r * cols + c];
  }
}

// c (cols) = beta*c + a (K) * B (K x cols) for a few rows, without packing: dot products in fixed 16-lane blocks
// (B given transposed, i.e. the weights W) or row updates in k order (B as is). Both orders are fixed, so results
// do not depend on alignment or threads.
inline void unpacked_row_product(const float* a, const gemm::View& b, int64_t K, int64_t cols, float beta, float* c) {
  if (b.trans) {
    constexpr int L = 16;
    for (int64_t j = 0; j < cols; ++j) {
      const float* w = b.p + j * b.ld;
      float acc[L] = {};
      int64_t k = 0;
      for (; k + L <= K; k += L)
        for (int l = 0; l < L; ++l) acc[l] += a[k + l] * w[k + l];
      for (int l = 0; k + l < K; ++l) acc[l] += a[k + l] * w[k + l];
      for (int width = L / 2; width > 0; width /= 2)
        for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
      c[j] = (beta == 0.0f ? 0.0f : beta * c[j]) + acc[0];
    }
  } else {
    if (beta != 1.0f)
      for (int64_t j = 0; j < cols; ++j) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    for (int64_t k = 0; k < K; ++k) {
      const float ak = a[k];
      const float* row = b.p + k * b.ld;
      for (int64_t j = 0; j < cols; ++j) c[j] += ak * row[j];
    }
  }
}

// How a FixedRhs holds its operand: read in place by each product (cheaper when it serves only a few rows in all,
// a single step of a small batch), packed once so each product is only the micro-kernel over cached panels, or
// packed as bfloat16: rounded weights, half the bytes for a product that is bound by reading them (batch-1
// generation). Under bfloat16 matmul precision every float operand is packed for the tiles instead (tiles). int8:
// weights given quantized (int8.hpp), float models in inference only.
enum class RhsStorage { in_place, packed, packed_bf16, tiles, int8 };

// A right-hand operand used for many products, given as segments (see gemm::Segment). float only packs; double
// always reads in place (it only serves gradient checks). Allocation-free after construction.
template <class S>
class FixedRhs {
 public:
  FixedRhs(std::vector<gemm::Segment<S>> segments, int64_t K, int64_t max_rows, RhsStorage storage = RhsStorage::packed)
      : segments_(std::move(segments)), K_(K), storage_(storage_for<S>(storage)) {
    if constexpr (std::is_same_v<S, float>) {
      if (storage_ == RhsStorage::packed) packed_ = gemm::PackedB<float>(segments_, K);
      if (storage_ == RhsStorage::packed_bf16) packed_bf16_ = gemm::PackedB<gemm::bf16>(segments_, K);
      if (storage_ == RhsStorage::packed || storage_ == RhsStorage::packed_bf16)
        scratch_ = gemm::allocate(gemm::scratch_size(max_rows));
#if RNNFAST_HAVE_AMX
      if (storage_ == RhsStorage::tiles) {
        tiles_ = amx::PackedB(segments_, K);
        tile_scratch_ = gemm::allocate<gemm::bf16>(amx::scratch_size(max_rows, K));
      }
#endif
    }
  }
  // Weights quantized to int8 (float only); products overwrite C (beta 0).
  FixedRhs(const std::vector<int8::Segment>& segments, int64_t K, int64_t max_rows)
      : K_(K), storage_(RhsStorage::int8), int8_(segments, K, max_rows) {}
  // One segment landing in columns [0, N).
  FixedRhs(const gemm::MatView<S>& b, int64_t K, int64_t N, int64_t max_rows, RhsStorage storage = RhsStorage::packed)
      : FixedRhs(std::vector<gemm::Segment<S>>{{b, N, 0}}, K, max_rows, storage) {}

  // C = beta*C + A (m x K, row-major with lda) * B, on the columns the segments cover.
  void apply(int64_t m, const S* a, int64_t lda, S beta, S* c, int64_t ldc) const {
    if (m == 0) return;
    if constexpr (std::is_same_v<S, float>) {
      const gemm::View a_view{a, lda, false};
      if (storage_ == RhsStorage::int8) {
        int8_.apply(m, a, lda, c, ldc);
      } else if (storage_ == RhsStorage::packed) {
        gemm::multiply(m, a_view, packed_, beta, c, ldc, scratch_.get());
      } else if (storage_ == RhsStorage::packed_bf16) {
        gemm::multiply(m, a_view, packed_bf16_, beta, c, ldc, scratch_.get());
#if RNNFAST_HAVE_AMX
      } else if (storage_ == RhsStorage::tiles) {
        amx::multiply(m, a_view, tiles_, beta, c, ldc, tile_scratch_.get());
#endif
      } else {
        for (const auto& seg : segments_)
          for (int64_t i = 0; i < m; ++i)
            unpacked_row_product(a + i * lda, seg.b, K_, seg.cols, beta, c + i * ldc + seg.dest);
      }
    } else {
      for (const auto& seg : segments_)
        if (seg.cols > 0) matmul<S>(m, seg.cols, K_, gemm::MatView<S>{a, lda, false}, seg.b, beta, c + seg.dest, ldc);
    }
  }

 private:
  template <class T>
  static RhsStorage storage_for(RhsStorage requested) {
    if (!std::is_same_v<T, float>) return RhsStorage::in_place;
    return amx::enabled() ? RhsStorage::tiles : requested;
  }

  std::vector<gemm::Segment<S>> segments_;
  int64_t K_;
  RhsStorage storage_;
  gemm::PackedB<float> packed_;
  gemm::PackedB<gemm::bf16> packed_bf16_;
  gemm::Buffer scratch_;
  int8::Rhs int8_;
#if RNNFAST_HAVE_AMX
  amx::PackedB tiles_;
  gemm::BufferOf<gemm::bf16> tile_scratch_;
#endif
};

}  // namespace rnnfast
