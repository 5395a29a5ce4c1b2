// Single-precision GEMM for the recurrent kernels: C = beta*C + A*B with operands packed into cache-sized panels
// and a register-blocked micro-kernel written with GCC vector extensions, so the same source compiles to SSE,
// AVX2+FMA or AVX-512 code in each per-ISA module.
//
// Why not Eigen's GEMM: a recurrent layer multiplies by the same weights at every step. Eigen repacks them on
// every call and reaches about two thirds of the machine's peak here; packing them once per sequence and keeping
// each thread's packed share in its own cache is what makes the per-step product fast. double keeps using Eigen
// (it only serves gradient checks).
//
// Layouts: a packed B panel holds NR columns for all k (k-major, NR values per k, zero-padded past N), as floats
// or, for weights rounded to bfloat16, as 16-bit values (see load_panel_row). Packed A holds MR-row blocks for one
// KC slice of k (k-major, rows of the block contiguous for each k).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "rnnfast/parallel.hpp"

namespace rnnfast {
namespace gemm {

// AVX-512 tiles are 12 rows x 32 columns (24 of the 32 vector registers accumulate): 32-column panels waste
// less padding on the sizes recurrent models use (H = 200 fills 224 columns, not 256) and keep each B micro-panel
// about L1-sized, while 12 broadcast rows still give every FMA port independent work.
#if defined(__AVX512F__)
constexpr int VL = 16, NV = 2, MR = 12;
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int VL = 8, NV = 2, MR = 6;
#else
constexpr int VL = 4, NV = 2, MR = 4;
#endif
constexpr int NR = VL * NV;              // columns per micro-tile
constexpr int64_t KC = 384;              // k-slice: long enough that C tiles are rarely reloaded
constexpr int64_t KC_MAX = KC + KC / 4;  // the longest slice: see k_slice
constexpr int64_t MC = 480;              // rows of A packed at once (MC x KC floats live in L2)

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef uint32_t vu __attribute__((vector_size(VL * sizeof(uint32_t))));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}

inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }

// A bfloat16 value: the upper 16 bits of a float.
using bf16 = uint16_t;

// Rounds to nearest, ties to even, as PyTorch's and the hardware's float -> bfloat16 conversion; NaN stays NaN.
inline bf16 to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<bf16>((u >> 16) | 0x40u);
  return static_cast<bf16>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// Row k of a packed panel (NR values) as NVU float vectors. A bfloat16 panel keeps columns v and VL + v in the
// low and high halves of 32-bit lane v, so one vector load and two bit operations widen a whole row.
template <int NVU>
inline void load_panel_row(const float* row, vf* out) {
  for (int v = 0; v < NVU; ++v) out[v] = load(row + v * VL);
}

template <int NVU>
inline void load_panel_row(const bf16* row, vf* out) {
  static_assert(NV == 2 && NVU <= NV, "a bfloat16 panel row is two float vectors");
  vu lanes;
  std::memcpy(&lanes, row, sizeof(vu));
  const vu low = lanes << 16, high = lanes & 0xFFFF0000u;
  std::memcpy(&out[0], &low, sizeof(vf));
  if constexpr (NVU == 2) std::memcpy(&out[1], &high, sizeof(vf));
}

// A read-only row-major matrix view: element (i, j) is p[i*ld + j], or p[j*ld + i] when transposed.
template <class S>
struct MatView {
  const S* p;
  int64_t ld;
  bool trans;
};
using View = MatView<float>;

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <class T>
using BufferOf = std::unique_ptr<T[], AlignedFree>;
using Buffer = BufferOf<float>;

template <class T = float>
inline BufferOf<T> allocate(int64_t count) {
  const size_t bytes = (static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T) + 63) / 64 * 64;
  T* p = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return BufferOf<T>(p);
}

inline int64_t panels(int64_t n) { return (n + NR - 1) / NR; }

// The length of the k-slice starting at k0: KC, except that a short remainder joins the slice before it. A slice
// of a few k costs a whole extra pass over C for almost no arithmetic (K = 400 tokens as 384 + 16 in the weight
// gradient of a 10,000-word output layer, whose C is 8 MB).
inline int64_t k_slice(int64_t K, int64_t k0) { return K - k0 <= KC_MAX ? K - k0 : KC; }

typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));

// Two-input shuffle with constant indices (0..VL-1 pick from x, VL..2VL-1 from y): GCC and clang spell it
// differently.
#if defined(__clang__)
#define RNNFAST_SHUFFLE2(x, y, ...) __builtin_shufflevector(x, y, __VA_ARGS__)
#else
#define RNNFAST_SHUFFLE2(x, y, ...) __builtin_shuffle(x, y, vi{__VA_ARGS__})
#endif

// One round of the recursive block transpose: rows x = r[i] and y = r[i + half] (i & half == 0) swap their
// off-diagonal halves of each 2*half block, i.e. x[e] <-> y[e ^ half] for every e with e & half set.
template <int half, size_t... e>
inline void swap_off_diagonal(vf& x, vf& y, std::index_sequence<e...>) {
  const vf x_new = RNNFAST_SHUFFLE2(x, y, static_cast<int32_t>((e & half) ? VL + (e ^ half) : e)...);
  const vf y_new = RNNFAST_SHUFFLE2(x, y, static_cast<int32_t>((e & half) ? VL + e : (e ^ half))...);
  x = x_new;
  y = y_new;
}
#undef RNNFAST_SHUFFLE2

template <int half = VL / 2>
inline void transpose_in_registers(vf (&r)[VL]) {
#pragma GCC unroll 16
  for (int i = 0; i < VL; ++i)
    if (!(i & half)) swap_off_diagonal<half>(r[i], r[i + half], std::make_index_sequence<VL>{});
  if constexpr (half > 1) transpose_in_registers<half / 2>(r);
}

// Columns [j0, j0+n) of B (K x N) for k in [k0, k0+kc), as panels of NR columns with panel stride kc*NR.
inline void pack_b(const View& b, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* out) {
  for (int64_t p = 0; p < panels(n); ++p) {
    const int64_t cols = std::min<int64_t>(NR, n - p * NR);
    float* dst = out + p * kc * NR;
    if (!b.trans) {
      const float* src = b.p + k0 * b.ld + j0 + p * NR;
      // A full panel copies a fixed NR floats per k, which compiles to vector moves instead of a memcpy call per
      // k (packing the language-model head's weights took a fifth of its dx product that way).
      if (cols == NR) {
        for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, src + k * b.ld, sizeof(float) * NR);
        continue;
      }
      for (int64_t k = 0; k < kc; ++k) {
        std::memcpy(dst + k * NR, src + k * b.ld, sizeof(float) * cols);
        std::fill(dst + k * NR + cols, dst + (k + 1) * NR, 0.0f);
      }
      continue;
    }
    // Transposed source (the weights W with B = W^T). Full panels go VL x VL tiles at a time, transposed in
    // registers (VL vector loads and stores instead of VL*VL scalar copies: the pack was a tenth of the time of
    // the language-model head's product, whose weights are packed anew at each call). The remaining k, and
    // partial panels, copy 16 k at a time from each source row, so every source cache line is read once while
    // the (16 x NR) destination block stays in L1.
    int64_t k_done = 0;
    if (cols == NR) {
      for (; k_done + VL <= kc; k_done += VL)
        for (int v = 0; v < NV; ++v) {
          const float* src = b.p + (j0 + p * NR + v * VL) * b.ld + k0 + k_done;
          vf tile[VL];
          for (int i = 0; i < VL; ++i) tile[i] = load(src + i * b.ld);
          transpose_in_registers(tile);
          for (int i = 0; i < VL; ++i) store(dst + (k_done + i) * NR + v * VL, tile[i]);
        }
    } else {
      for (int64_t k = 0; k < kc; ++k) std::fill(dst + k * NR + cols, dst + (k + 1) * NR, 0.0f);
    }
    for (int64_t kb = k_done; kb < kc; kb += 16) {
      const int64_t kn = std::min<int64_t>(16, kc - kb);
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = b.p + (j0 + p * NR + j) * b.ld + k0 + kb;
        for (int64_t k = 0; k < kn; ++k) dst[(kb + k) * NR + j] = src[k];
      }
    }
  }
}

// One block of R rows of A (not transposed): k-major, the R values of each k contiguous. VL k at a time, the R
// rows are loaded as vectors and transposed in registers, so each k takes one R-float store instead of R scalar
// loads and stores (which made packing 7% of an LSTM backward at B = 64, H = 256).
template <int R>
inline void pack_a_block(const View& a, int64_t i, int64_t k0, int64_t kc, float* dst) {
  static_assert(R <= VL, "a block's rows must fit the lanes of one vector");
  const float* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = a.p + (i + r) * a.ld + k0;
  int64_t k = 0;
  for (; k + VL <= kc; k += VL) {
    vf tile[VL];
    for (int r = 0; r < VL; ++r) tile[r] = r < R ? load(rows[r] + k) : vf{};
    transpose_in_registers(tile);
    for (int j = 0; j < VL; ++j) std::memcpy(dst + (k + j) * R, &tile[j], sizeof(float) * R);
  }
  for (; k < kc; ++k)
    for (int r = 0; r < R; ++r) dst[k * R + r] = rows[r][k];
}

// A runtime row count (1..MR) dispatched to its fixed-R instantiation.
template <int R = MR>
inline void pack_a_rows(int64_t rows, const View& a, int64_t i, int64_t k0, int64_t kc, float* dst) {
  if (rows == R) return pack_a_block<R>(a, i, k0, kc, dst);
  if constexpr (R > 1) pack_a_rows<R - 1>(rows, a, i, k0, kc, dst);
}

// Rows [i0, i0+m) of A (M x K) for k in [k0, k0+kc): blocks of MR rows (the last may be shorter), k-major.
// A transposed source (dG^T in the weight gradients) holds column k of A in its row k: each such row is read
// once, contiguously, for all blocks. Block by block, each block would walk down kc source rows lying a power of
// two apart (ld = G*H = 1024, 2048, ...): weight-gradient products ran 1.04-1.17x faster reading rows whole.
inline void pack_a(const View& a, int64_t i0, int64_t m, int64_t k0, int64_t kc, float* out) {
  if (a.trans) {
    const int64_t full_rows = m / MR * MR, tail_rows = m - full_rows;
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = a.p + (k0 + k) * a.ld + i0;
      for (int64_t ib = 0; ib < full_rows; ib += MR) std::memcpy(out + ib * kc + k * MR, src + ib, sizeof(float) * MR);
      if (tail_rows > 0) std::memcpy(out + full_rows * kc + k * tail_rows, src + full_rows, sizeof(float) * tail_rows);
    }
    return;
  }
  for (int64_t ib = 0; ib < m; ib += MR) pack_a_rows(std::min<int64_t>(MR, m - ib), a, i0 + ib, k0, kc, out + ib * kc);
}

// Where each packed panel of B lands in C: its first column and how many of its NR columns are real.
struct PanelDest {
  int64_t col, cols;
};

// The C tiles of P consecutive panels (R x NR each, only dest[q].cols columns stored) = (accumulate ? C : 0) +
// A_block (R x kc) * B panel q. A block of few rows takes several panels at once: FMA latency needs about eight
// independent accumulators, and one row of one panel has only NV. Every C element still sums its k in order, so
// the grouping never changes a result.
//
// `next`, if given, starts the P panels the caller will use after these (same stride): they are prefetched into
// L2 a k-row at a time, so weights that live further out (in L3, when a thread's share outgrows its L2) arrive
// while these are being multiplied. Only full row blocks ask for it: a block of a few rows is bound by its loads,
// and the prefetches would take their slots (an L2-resident one-row product ran 0.7x as fast).
template <int R, int P, int NVU = NV, class T = float>
inline void micro_kernel(int64_t kc, const float* __restrict a, const T* __restrict b, int64_t panel_stride,
                         const PanelDest* dest, float* c, int64_t ldc, bool accumulate, const T* next = nullptr) {
  constexpr int W = P * NVU;  // vectors per row of the tile group
  constexpr int row_bytes = std::is_same_v<T, float> ? NVU * VL * sizeof(float) : NR * sizeof(T);
  vf acc[R][W];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < W; ++v) acc[r][v] = vf{};
  for (int64_t k = 0; k < kc; ++k) {
    if (next)
      for (int q = 0; q < P; ++q)
        for (int line = 0; line < row_bytes; line += 64)
          __builtin_prefetch(reinterpret_cast<const char*>(next + q * panel_stride + k * NR) + line, 0, 2);
    vf bv[W];
#pragma GCC unroll 16
    for (int q = 0; q < P; ++q) load_panel_row<NVU>(b + q * panel_stride + k * NR, bv + q * NVU);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const float ar = a[k * R + r];
#pragma GCC unroll 16
      for (int v = 0; v < W; ++v) acc[r][v] += bv[v] * ar;
    }
  }
  for (int q = 0; q < P; ++q) {
    float* cq = c + dest[q].col;
    if (dest[q].cols == NVU * VL) {
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NVU; ++v) {
          float* p = cq + r * ldc + v * VL;
          store(p, accumulate ? load(p) + acc[r][q * NVU + v] : acc[r][q * NVU + v]);
        }
    } else {
      alignas(64) float tile[NR];
      for (int r = 0; r < R; ++r) {
        for (int v = 0; v < NVU; ++v) store(tile + v * VL, acc[r][q * NVU + v]);
        float* p = cq + r * ldc;
        for (int64_t j = 0; j < dest[q].cols; ++j) p[j] = accumulate ? p[j] + tile[j] : tile[j];
      }
    }
  }
}

constexpr int kVectorRegisters = VL == 16 ? 32 : 16;

// Panels per call for a block of `rows`, as measured on AVX-512 and AVX2: four for a single row; two while the
// doubled accumulators stay at most 24 and leave four vector registers free (more, and they spill); else one.
constexpr int panels_at_once(int rows) {
  if (rows * NV <= 2) return 4;
  return 2 * rows * NV <= std::min(24, kVectorRegisters - 4) ? 2 : 1;
}

// One block of R rows against every panel, panels_at_once(R) at a time; NVU < NV for narrow panels, whose
// real columns fit NVU vectors.
template <int R, int NVU = NV, class T>
inline void row_block(int64_t npanels, int64_t kc, const float* a, const T* bp, int64_t panel_stride,
                      const PanelDest* dest, float* c, int64_t ldc, bool accumulate) {
  constexpr int P = NVU == NV ? panels_at_once(R) : 1;
  int64_t p = 0;
  if constexpr (P > 1)
    for (; p + P <= npanels; p += P)
      micro_kernel<R, P>(kc, a, bp + p * panel_stride, panel_stride, dest + p, c, ldc, accumulate);
  for (; p < npanels; ++p)
    micro_kernel<R, 1, NVU>(kc, a, bp + p * panel_stride, panel_stride, dest + p, c, ldc, accumulate);
}

// A runtime row count (1..MR) dispatched to its fixed-R instantiation.
template <int NVU = NV, int R = MR, class T>
inline void row_block_of(int64_t rows, int64_t npanels, int64_t kc, const float* a, const T* bp, int64_t panel_stride,
                         const PanelDest* dest, float* c, int64_t ldc, bool accumulate) {
  if (rows == R) return row_block<R, NVU>(npanels, kc, a, bp, panel_stride, dest, c, ldc, accumulate);
  if constexpr (R > 1) row_block_of<NVU, R - 1>(rows, npanels, kc, a, bp, panel_stride, dest, c, ldc, accumulate);
}

// Panels multiplied as one group: kc x 512 columns of packed B (768 KB at kc = 384) stay in L2 while every row
// block of A passes over them.
constexpr int64_t kPanelsPerGroup = 512 / NR;

// C (m x ...) += or = packed A (m x kc) * each packed B panel p (kc x NR at bp + p*panel_stride) into its columns.
// Panel group by group, each full MR-row block runs across the group's panels: its A micro-panel (MR x kc, 18 KB
// at AVX-512) stays in L1 while the B panels stream from L2. (The other way round, a 48 KB B micro-panel could
// not stay in a 48 KB L1; layer-sized products ran 0.93-1.22x as fast, forward projections 1.03-1.22x.) The short
// last block of rows follows in the same group, so B crosses the caches once per product, not twice (from L3
// whenever a thread's share of the weights outgrows L2).
template <class T>
inline void block(int64_t m, int64_t npanels, int64_t kc, const float* ap, const T* bp, int64_t panel_stride,
                  const PanelDest* dest, float* c, int64_t ldc, bool accumulate) {
  const int64_t full_rows = m / MR * MR, tail_rows = m - full_rows;
  // A panel whose real columns fit one vector (the end of a gate's columns, N = 200 as 6 x 32 + 8) runs a
  // one-vector kernel instead of computing NR columns. A short block of rows that takes several panels at once
  // keeps them together instead: alone, its few accumulators would wait on FMA latency.
  const bool tail_narrow_alone = panels_at_once(static_cast<int>(std::max<int64_t>(tail_rows, 1))) == 1;
  auto narrow = [&](int64_t p) { return NV > 1 && dest[p].cols <= VL; };
  const float* a_tail = ap + full_rows * kc;
  float* c_tail = c + full_rows * ldc;
  for (int64_t g0 = 0; g0 < npanels; g0 += kPanelsPerGroup) {
    const int64_t g1 = std::min(npanels, g0 + kPanelsPerGroup);
    for (int64_t ib = 0; ib < full_rows; ib += MR)
      for (int64_t p = g0; p < g1; ++p) {
        const T* next = ib == 0 && p + 1 < npanels ? bp + (p + 1) * panel_stride : nullptr;
        if (narrow(p))
          micro_kernel<MR, 1, 1>(kc, ap + ib * kc, bp + p * panel_stride, panel_stride, dest + p, c + ib * ldc, ldc,
                                 accumulate, next);
        else
          micro_kernel<MR, 1>(kc, ap + ib * kc, bp + p * panel_stride, panel_stride, dest + p, c + ib * ldc, ldc,
                              accumulate, next);
      }
    if (tail_rows == 0) continue;
    if (!tail_narrow_alone) {
      row_block_of(tail_rows, g1 - g0, kc, a_tail, bp + g0 * panel_stride, panel_stride, dest + g0, c_tail, ldc,
                   accumulate);
      continue;
    }
    for (int64_t p = g0; p < g1; ++p) {
      if (narrow(p))
        row_block_of</*NVU=*/1>(tail_rows, 1, kc, a_tail, bp + p * panel_stride, panel_stride, dest + p, c_tail, ldc,
                                accumulate);
      else
        row_block_of(tail_rows, 1, kc, a_tail, bp + p * panel_stride, panel_stride, dest + p, c_tail, ldc, accumulate);
    }
  }
}

// Panels of n contiguous columns starting at column `first`.
inline std::vector<PanelDest> contiguous_panels(int64_t first, int64_t n) {
  std::vector<PanelDest> out;
  for (int64_t j = 0; j < n; j += NR) out.push_back({first + j, std::min<int64_t>(NR, n - j)});
  return out;
}

inline void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// One piece of a right-hand operand: B (K x cols) whose product lands in C's columns [dest, dest + cols).
template <class S>
struct Segment {
  MatView<S> b;
  int64_t cols, dest;
};

// B packed once, all k, for products with many different A: the recurrent weights of a sequence. Several
// segments (one per gate) are packed side by side so one pass over A serves them all, each segment's panels
// writing to its own columns of C. T = bf16 stores the values rounded to bfloat16 (see load_panel_row).
template <class T = float>
class PackedB {
 public:
  PackedB() = default;
  PackedB(const std::vector<Segment<float>>& segments, int64_t K) : K_(K) {
    int64_t total_panels = 0;
    for (const auto& seg : segments) total_panels += panels(seg.cols);
    data_ = allocate<T>(total_panels * K * NR);
    for (const auto& seg : segments) {
      T* out = data_.get() + static_cast<int64_t>(dest_.size()) * K * NR;
      if constexpr (std::is_same_v<T, float>) {
        pack_b(seg.b, 0, K, 0, seg.cols, out);
      } else {
        Buffer packed = allocate(panels(seg.cols) * K * NR);
        pack_b(seg.b, 0, K, 0, seg.cols, packed.get());
        for (int64_t row = 0; row < panels(seg.cols) * K; ++row)
          for (int v = 0; v < VL; ++v) {
            out[row * NR + 2 * v] = to_bf16(packed[row * NR + v]);
            out[row * NR + 2 * v + 1] = to_bf16(packed[row * NR + VL + v]);
          }
      }
      for (const PanelDest& d : contiguous_panels(seg.dest, seg.cols)) dest_.push_back(d);
    }
  }
  int64_t K() const { return K_; }
  int64_t num_panels() const { return static_cast<int64_t>(dest_.size()); }
  const PanelDest* dest() const { return dest_.data(); }
  const T* data() const { return data_.get(); }

 private:
  int64_t K_ = 0;
  std::vector<PanelDest> dest_;
  BufferOf<T> data_;
};

// Fewer rows than this in all, over a call, and packing an operand costs more than it saves.
constexpr int64_t kMinRowsToPack = 16;

// Floats of A-packing scratch that multiply() needs for m rows.
inline int64_t scratch_size(int64_t m) { return (std::min(m, MC) + MR) * KC_MAX; }

// C = beta*C + A (m x K) * B over every column B's segments cover, single-threaded; scratch from
// scratch_size(m). Allocation-free, so it can run inside a time loop.
template <class T>
inline void multiply(int64_t m, const View& a, const PackedB<T>& b, float beta, float* c, int64_t ldc, float* scratch) {
  const int64_t K = b.K();
  if (beta != 0.0f && beta != 1.0f)
    for (int64_t p = 0; p < b.num_panels(); ++p) scale_c(m, b.dest()[p].cols, beta, c + b.dest()[p].col, ldc);
  for (int64_t ic = 0; ic < m; ic += MC) {
    const int64_t mc = std::min(MC, m - ic);
    for (int64_t k0 = 0, kc; k0 < K; k0 += kc) {
      kc = k_slice(K, k0);
      pack_a(a, ic, mc, k0, kc, scratch);
      block(mc, b.num_panels(), kc, scratch, b.data() + k0 * NR, K * NR, b.dest(), c + ic * ldc, ldc,
            k0 > 0 || beta != 0.0f);
    }
  }
}

// Threads for one product of M x K by K x N: about a million multiply-adds each at least, and only the calling
// thread inside a parallel region (no nested teams).
inline int threads_for_product(int64_t M, int64_t N, int64_t K) {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;
#endif
  return static_cast<int>(std::min<int64_t>(usable_threads(), std::max<int64_t>(1, M * N * K / (1 << 20))));
}

// C (M x N) = beta*C + A (M x K) * B (K x N), threads splitting the columns (or the rows when N is narrow).
// Called from inside a parallel region it runs on the calling thread alone.
inline void sgemm(int64_t M, int64_t N, int64_t K, const View& a, const View& b, float beta, float* c, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, beta, c, ldc);
    return;
  }
  const int nthreads = threads_for_product(M, N, K);
  // Each thread packs all of the operand it does not split: split the larger dimension, so the smaller operand
  // is the one packed twice.
  const bool split_columns = M <= N ? panels(N) >= nthreads : (M + MR - 1) / MR < nthreads;
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = thread_id(), nth = team_size();
    int64_t i_lo = 0, i_hi = M, j_lo = 0, j_hi = N;
    if (split_columns) {
      const int64_t per = (panels(N) + nth - 1) / nth;
      j_lo = std::min(N, per * tid * NR);
      j_hi = std::min(N, j_lo + per * NR);
    } else {
      const int64_t per = ((M + nth - 1) / nth + MR - 1) / MR * MR;
      i_lo = std::min(M, per * tid);
      i_hi = std::min(M, i_lo + per);
    }
    const int64_t n = j_hi - j_lo, m_all = i_hi - i_lo;
    if (n > 0 && m_all > 0) {
      const int64_t nc = std::min<int64_t>(n, 2048);
      Buffer bp = allocate(panels(nc) * KC_MAX * NR);
      Buffer ap = allocate(scratch_size(m_all));
      for (int64_t jc = j_lo; jc < j_hi; jc += nc) {
        const int64_t ncols = std::min(nc, j_hi - jc);
        const std::vector<PanelDest> dest = contiguous_panels(0, ncols);
        for (int64_t k0 = 0, kc; k0 < K; k0 += kc) {
          kc = k_slice(K, k0);
          pack_b(b, k0, kc, jc, ncols, bp.get());
          for (int64_t ic = i_lo; ic < i_hi; ic += MC) {
            const int64_t m = std::min(MC, i_hi - ic);
            pack_a(a, ic, m, k0, kc, ap.get());
            float* c_block = c + ic * ldc + jc;
            if (k0 == 0 && beta != 0.0f && beta != 1.0f) scale_c(m, ncols, beta, c_block, ldc);
            block(m, panels(ncols), kc, ap.get(), bp.get(), kc * NR, dest.data(), c_block, ldc, k0 > 0 || beta != 0.0f);
          }
        }
      }
    }
  }
}

}  // namespace gemm
}  // namespace rnnfast
