// Products with bfloat16 operands and float32 sums, for float32 models trained or run with
// set_matmul_precision("bfloat16") (the same trade as PyTorch's bfloat16 autocast): every product's operands
// are rounded to bfloat16 (round to nearest even), multiplied in pairs and summed in float32, and everything
// outside the products (cell math, the loss, optimizer updates, the weights themselves) stays float32.
//
// Two units can multiply: AMX tiles (Xeon 4th generation on), about three times the core's float32 FMA rate, and
// AVX512-BF16's VDPBF16PS (AMD Zen 4 and later, Xeon 3rd generation), which does two multiply-adds per float32
// lane per instruction, twice the float32 FMA rate. Both read the same converted A and packed B. Only the AVX-512
// module can hold this code (the instructions are compiled per function, so the module still runs on AVX-512 CPUs
// without them), and it runs only where the CPU has one of the units (and, for tiles, the kernel grants the
// process its tile state).
//
// Layouts: A is converted to row-major bfloat16, K padded with zeros to a multiple of 32 (one tile row), rows
// padded to a multiple of 32 (two tiles). B is packed in 16-column panels in the "VNNI" order the tile multiply
// reads: for each pair of k, the 16 columns' two values side by side, so one 32-k slice of a panel is a 16 x 64-byte
// tile.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "rnnfast/gemm.hpp"

#if defined(__AVX512F__) && defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && \
    (defined(__clang__) || __GNUC__ >= 11)
#define RNNFAST_HAVE_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define RNNFAST_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#define RNNFAST_DOT_TARGET __attribute__((target("avx512bf16")))
#else
#define RNNFAST_HAVE_AMX 0
#endif

namespace rnnfast {

enum class MatmulPrecision { float32, bfloat16 };

inline std::atomic<int>& matmul_precision_setting() {
  static std::atomic<int> setting{static_cast<int>(MatmulPrecision::float32)};
  return setting;
}

namespace amx {

// The unit that multiplies bfloat16 operands here, if any.
enum class Unit { none, tiles, vector_dot };

// Tiles: compiled in, the CPU has AMX-BF16, and Linux granted the tile state (asked once per process, as the
// kernel requires before the first tile instruction). Else VDPBF16PS: compiled in and the CPU has AVX512-BF16.
inline Unit unit() {
#if RNNFAST_HAVE_AMX
  static const Unit found = [] {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return Unit::none;
    const bool tile = edx & (1u << 24), tile_bf16 = edx & (1u << 22);
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    if (tile && tile_bf16 && syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0) return Unit::tiles;
    const bool avx512_bf16 = __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5));
    return avx512_bf16 ? Unit::vector_dot : Unit::none;
  }();
  return found;
#else
  return Unit::none;
#endif
}

// "amx", "avx512_bf16", or nullptr where there is no unit.
inline const char* unit_name() {
  switch (unit()) {
    case Unit::tiles:
      return "amx";
    case Unit::vector_dot:
      return "avx512_bf16";
    default:
      return nullptr;
  }
}

inline bool available() { return unit() != Unit::none; }

// Products of float32 operands round to bfloat16: the precision asks for it and the hardware allows it.
inline bool enabled() {
  return matmul_precision_setting().load(std::memory_order_relaxed) == static_cast<int>(MatmulPrecision::bfloat16) &&
         available();
}

constexpr int64_t TILE = 16;       // rows of a tile; columns of a C tile and of a B panel
constexpr int64_t TILE_K = 32;     // k per tile multiply
constexpr int64_t ROW_BLOCK = 32;  // rows of A per kernel call (two tiles)

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

using gemm::bf16;

#if RNNFAST_HAVE_AMX

// The bfloat16 rounding of gemm::to_bf16, lane by lane: the 16 bits in the upper half of each 32-bit lane, the
// lower half zero.
inline gemm::vu bf16_high(gemm::vf x) {
  gemm::vu u;
  std::memcpy(&u, &x, sizeof u);
  const gemm::vu rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  const gemm::vu quiet_nan = (u | 0x00400000u) & 0xFFFF0000u;
  const gemm::vu is_nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return (rounded & ~is_nan) | (quiet_nan & is_nan);
}

typedef uint16_t vbf __attribute__((vector_size(gemm::VL * sizeof(uint16_t))));

inline void store_bf16(bf16* dst, gemm::vf x) {
  const vbf narrow = __builtin_convertvector(bf16_high(x) >> 16, vbf);
  std::memcpy(dst, &narrow, sizeof narrow);
}

// Two k-rows of VL columns as VNNI pairs: column j's values for k and k + 1 side by side.
inline void store_pairs(bf16* dst, gemm::vf even_k, gemm::vf odd_k) {
  const gemm::vu pairs = (bf16_high(even_k) >> 16) | bf16_high(odd_k);
  std::memcpy(dst, &pairs, sizeof pairs);
}

// Rows [r0, r0 + rows) and k in [k0, k0 + K) of A (as seen through the view) as bfloat16 into dst, row stride kp;
// columns K..kp are zeroed. A transposed view (the gradient products' dy^T) is read VL x VL blocks at a time,
// transposed in registers, so every load and store is a whole vector.
inline void convert_rows(const gemm::View& view, int64_t r0, int64_t rows, int64_t k0, int64_t K, int64_t kp,
                         bf16* dst) {
  constexpr int64_t VL = gemm::VL;
  const gemm::View a{view.trans ? view.p + k0 * view.ld : view.p + k0, view.ld, view.trans};
  int64_t k_done = 0;
  if (!a.trans) {
    for (int64_t i = 0; i < rows; ++i) {
      const float* src = a.p + (r0 + i) * a.ld;
      int64_t k = 0;
      for (; k + VL <= K; k += VL) store_bf16(dst + i * kp + k, gemm::load(src + k));
      for (; k < K; ++k) dst[i * kp + k] = gemm::to_bf16(src[k]);
    }
    k_done = K;
  } else {
    const int64_t full_rows = rows / VL * VL;
    for (; k_done + VL <= K; k_done += VL)
      for (int64_t i0 = 0; i0 < full_rows; i0 += VL) {
        gemm::vf block[VL];
        for (int q = 0; q < VL; ++q) block[q] = gemm::load(a.p + (k_done + q) * a.ld + r0 + i0);
        gemm::transpose_in_registers(block);
        for (int q = 0; q < VL; ++q) store_bf16(dst + (i0 + q) * kp + k_done, block[q]);
      }
    for (int64_t k = 0; k < k_done; ++k)
      for (int64_t i = full_rows; i < rows; ++i) dst[i * kp + k] = gemm::to_bf16(a.p[k * a.ld + r0 + i]);
    for (int64_t k = k_done; k < K; ++k)
      for (int64_t i = 0; i < rows; ++i) dst[i * kp + k] = gemm::to_bf16(a.p[k * a.ld + r0 + i]);
  }
  for (int64_t i = 0; i < rows; ++i) std::fill(dst + i * kp + K, dst + (i + 1) * kp, bf16{0});
}

// Packing B's rows [k0, k0 + kc) and columns [j0, j0 + cols) as one VNNI panel (kpad/2 rows of 16 column pairs),
// from k_done on: the k a vectorized loop left, one value at a time, then zeros for the missing k.
inline void finish_panel(const gemm::View& b, int64_t k0, int64_t kc, int64_t kpad, int64_t j0, int64_t cols,
                         int64_t k_done, bf16* out) {
  std::fill(out + k_done * TILE, out + kpad * TILE, bf16{0});
  for (int64_t k = k_done; k < kc; ++k)
    for (int64_t j = 0; j < cols; ++j) {
      const float v = b.trans ? b.p[(j0 + j) * b.ld + k0 + k] : b.p[(k0 + k) * b.ld + j0 + j];
      out[(k / 2) * 2 * TILE + j * 2 + (k & 1)] = gemm::to_bf16(v);
    }
}

// One VNNI panel of B (see finish_panel). Full panels go a vector (non-transposed B) or a VL x VL register
// transpose (the weights, B = W^T) at a time; missing columns and k are zero.
inline void pack_panel(const gemm::View& b, int64_t k0, int64_t kc, int64_t kpad, int64_t j0, int64_t cols, bf16* out) {
  static_assert(gemm::VL == TILE, "a panel is one vector of columns");
  int64_t k_done = 0;
  if (cols == TILE && !b.trans) {
    for (; k_done + 2 <= kc; k_done += 2)
      store_pairs(out + k_done * TILE, gemm::load(b.p + (k0 + k_done) * b.ld + j0),
                  gemm::load(b.p + (k0 + k_done + 1) * b.ld + j0));
  } else if (cols == TILE) {
    for (; k_done + TILE <= kc; k_done += TILE) {
      gemm::vf block[TILE];
      for (int q = 0; q < TILE; ++q) block[q] = gemm::load(b.p + (j0 + q) * b.ld + k0 + k_done);
      gemm::transpose_in_registers(block);
      for (int q = 0; q < TILE; q += 2) store_pairs(out + (k_done + q) * TILE, block[q], block[q + 1]);
    }
  }
  finish_panel(b, k0, kc, kpad, j0, cols, k_done, out);
}

// The panels `dest` of B's rows [k0, k0 + kc), panel q at out + q * kpad * TILE. A non-transposed B (a gradient
// product's activations or gate gradients, often tens of megabytes) is read a pair of whole rows at a time: a
// panel at a time would walk down a 64-byte strip, one row (and, for wide B, one page) per step, which the
// hardware prefetchers do not follow; that walk took a third of a 1024 x 256 x 6400 product.
inline void pack_panels(const gemm::View& b, int64_t k0, int64_t kc, int64_t kpad, const gemm::PanelDest* dest,
                        int64_t npanels, bf16* out) {
  if (b.trans) {
    for (int64_t q = 0; q < npanels; ++q) pack_panel(b, k0, kc, kpad, dest[q].col, dest[q].cols, out + q * kpad * TILE);
    return;
  }
  const int64_t pairs_end = kc / 2 * 2;
  for (int64_t k = 0; k < pairs_end; k += 2) {
    const float* row = b.p + (k0 + k) * b.ld;
    for (int64_t q = 0; q < npanels; ++q)
      if (dest[q].cols == TILE)
        store_pairs(out + q * kpad * TILE + k * TILE, gemm::load(row + dest[q].col),
                    gemm::load(row + b.ld + dest[q].col));
  }
  for (int64_t q = 0; q < npanels; ++q)
    finish_panel(b, k0, kc, kpad, dest[q].col, dest[q].cols, dest[q].cols == TILE ? pairs_end : 0,
                 out + q * kpad * TILE);
}

// A right-hand operand packed once for all k: the weights of a sequence's products (see FixedRhs).
class PackedB {
 public:
  PackedB() = default;
  PackedB(const std::vector<gemm::Segment<float>>& segments, int64_t K) : K_(K), kp_(round_up(K, TILE_K)) {
    int64_t total = 0;
    for (const auto& seg : segments) total += (seg.cols + TILE - 1) / TILE;
    data_ = gemm::allocate<bf16>(total * kp_ * TILE);
    for (const auto& seg : segments)
      for (int64_t j = 0; j < seg.cols; j += TILE) {
        const int64_t cols = std::min(TILE, seg.cols - j);
        pack_panel(seg.b, 0, K, kp_, j, cols, data_.get() + static_cast<int64_t>(dest_.size()) * kp_ * TILE);
        dest_.push_back({seg.dest + j, cols});
      }
  }
  int64_t K() const { return K_; }
  int64_t kp() const { return kp_; }
  int64_t num_panels() const { return static_cast<int64_t>(dest_.size()); }
  const gemm::PanelDest* dest() const { return dest_.data(); }
  const bf16* data() const { return data_.get(); }

 private:
  int64_t K_ = 0, kp_ = 0;
  std::vector<gemm::PanelDest> dest_;
  gemm::BufferOf<bf16> data_;
};

// Rows of A that multiply() converts at a time: about 256 KB of bfloat16, so they stay in L2 while every panel of
// B passes them, and a projection over a whole sequence does not need its own copy of the sequence in bfloat16.
inline int64_t chunk_rows(int64_t K) {
  const int64_t rows = int64_t{256} * 1024 / (round_up(K, TILE_K) * int64_t{sizeof(bf16)});
  return std::max<int64_t>(ROW_BLOCK, rows / ROW_BLOCK * ROW_BLOCK);
}

// bfloat16 elements of scratch that multiply() needs for m rows of K.
inline int64_t scratch_size(int64_t m, int64_t K) {
  return std::min(round_up(std::max<int64_t>(m, 1), ROW_BLOCK), chunk_rows(K)) * round_up(K, TILE_K);
}

// Every tile is 16 rows of 64 bytes: C tiles 0-3 (16 x 16 float), A tiles 4-5 (16 x 32 bfloat16), B tiles 6-7
// (16 k-pairs x 16 columns).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

RNNFAST_AMX_TARGET inline void load_tile_config() {
  static const TileConfig config;
  _tile_loadconfig(&config);
}

RNNFAST_AMX_TARGET inline void release_tile_state() { _tile_release(); }

// Tile state is per thread: each thread that multiplies configures it first and releases it after.
inline void configure_tiles() {
  if (unit() == Unit::tiles) load_tile_config();
}

inline void release_tiles() {
  if (unit() == Unit::tiles) release_tile_state();
}

// Where one C tile is read and written: C itself (full tiles) or a 16 x 16 staging buffer (edges).
struct TileTarget {
  float* p;
  int64_t stride_bytes;
};

// The RT x CT tiles of C (RT row tiles of `a`, CT panels) = (accumulate ? C : 0) + A (rows x kp) * B panels.
template <int RT, int CT>
RNNFAST_AMX_TARGET inline void tile_kernel(int64_t kp, const bf16* a, int64_t lda, const bf16* b0, const bf16* b1,
                                           const TileTarget (&c)[2][2], bool accumulate) {
  if (accumulate) {
    _tile_loadd(0, c[0][0].p, c[0][0].stride_bytes);
    if constexpr (CT > 1) _tile_loadd(1, c[0][1].p, c[0][1].stride_bytes);
    if constexpr (RT > 1) _tile_loadd(2, c[1][0].p, c[1][0].stride_bytes);
    if constexpr (RT > 1 && CT > 1) _tile_loadd(3, c[1][1].p, c[1][1].stride_bytes);
  } else {
    _tile_zero(0);
    if constexpr (CT > 1) _tile_zero(1);
    if constexpr (RT > 1) _tile_zero(2);
    if constexpr (RT > 1 && CT > 1) _tile_zero(3);
  }
  const int64_t a_stride = lda * sizeof(bf16);
  for (int64_t k = 0; k < kp; k += TILE_K) {
    const int64_t panel_offset = k * TILE;  // k/2 pairs of 16 columns x 2
    _tile_loadd(4, a + k, a_stride);
    if constexpr (RT > 1) _tile_loadd(5, a + TILE * lda + k, a_stride);
    _tile_loadd(6, b0 + panel_offset, 64);
    if constexpr (CT > 1) _tile_loadd(7, b1 + panel_offset, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (CT > 1) _tile_dpbf16ps(1, 4, 7);
    if constexpr (RT > 1) _tile_dpbf16ps(2, 5, 6);
    if constexpr (RT > 1 && CT > 1) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c[0][0].p, c[0][0].stride_bytes);
  if constexpr (CT > 1) _tile_stored(1, c[0][1].p, c[0][1].stride_bytes);
  if constexpr (RT > 1) _tile_stored(2, c[1][0].p, c[1][0].stride_bytes);
  if constexpr (RT > 1 && CT > 1) _tile_stored(3, c[1][1].p, c[1][1].stride_bytes);
}

// C rows [0, m) += or = the converted A (rows of stride lda, k over [0, kpad)) times `npanels` panels (stride
// panel_stride) landing at dest. Tiles at the edges of C go through staging buffers, so no write leaves C.
inline void tile_panels(int64_t m, const bf16* a, int64_t lda, int64_t kpad, const bf16* panels_data,
                        int64_t panel_stride, int64_t npanels, const gemm::PanelDest* dest, float* c, int64_t ldc,
                        bool accumulate) {
  alignas(64) float staging[2][2][TILE * TILE];
  for (int64_t i0 = 0; i0 < m; i0 += ROW_BLOCK) {
    const int64_t block_rows = std::min(ROW_BLOCK, m - i0);
    const int rt = block_rows > TILE ? 2 : 1;
    for (int64_t p = 0; p < npanels; p += 2) {
      const int ct = p + 1 < npanels ? 2 : 1;
      TileTarget target[2][2];
      bool staged[2][2] = {};
      for (int r = 0; r < rt; ++r)
        for (int q = 0; q < ct; ++q) {
          const int64_t rows = std::min(TILE, block_rows - r * TILE), cols = dest[p + q].cols;
          float* corner = c + (i0 + r * TILE) * ldc + dest[p + q].col;
          staged[r][q] = rows < TILE || cols < TILE;
          if (!staged[r][q]) {
            target[r][q] = {corner, static_cast<int64_t>(ldc * sizeof(float))};
            continue;
          }
          float* s = staging[r][q];
          std::fill(s, s + TILE * TILE, 0.0f);
          if (accumulate)
            for (int64_t i = 0; i < rows; ++i) std::copy(corner + i * ldc, corner + i * ldc + cols, s + i * TILE);
          target[r][q] = {s, TILE * sizeof(float)};
        }
      const bf16* a_block = a + i0 * lda;
      const bf16* b0 = panels_data + p * panel_stride;
      const bf16* b1 = b0 + panel_stride;
      if (rt == 2 && ct == 2)
        tile_kernel<2, 2>(kpad, a_block, lda, b0, b1, target, accumulate);
      else if (rt == 2)
        tile_kernel<2, 1>(kpad, a_block, lda, b0, b1, target, accumulate);
      else if (ct == 2)
        tile_kernel<1, 2>(kpad, a_block, lda, b0, b1, target, accumulate);
      else
        tile_kernel<1, 1>(kpad, a_block, lda, b0, b1, target, accumulate);
      for (int r = 0; r < rt; ++r)
        for (int q = 0; q < ct; ++q) {
          if (!staged[r][q]) continue;
          const int64_t rows = std::min(TILE, block_rows - r * TILE), cols = dest[p + q].cols;
          float* corner = c + (i0 + r * TILE) * ldc + dest[p + q].col;
          for (int64_t i = 0; i < rows; ++i)
            std::copy(staging[r][q] + i * TILE, staging[r][q] + i * TILE + cols, corner + i * ldc);
        }
    }
  }
}

// The same product with VDPBF16PS: a block of R rows of A against P panels, R x P accumulators of 16 floats.
// Each step takes one k pair: a panel row is one vector of 16 column pairs, and each row of A contributes its pair
// broadcast to all lanes. Edge columns are masked, so no write leaves C.
template <int R, int P>
RNNFAST_DOT_TARGET inline void dot_kernel(int64_t kpad, const bf16* a, int64_t lda, const bf16* b, int64_t panel_stride,
                                          const gemm::PanelDest* dest, float* c, int64_t ldc, bool accumulate) {
  __m512 acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) acc[r][q] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kpad; k += 2) {
    __m512bh bv[P];
    for (int q = 0; q < P; ++q) bv[q] = (__m512bh)_mm512_loadu_si512(b + q * panel_stride + k * TILE);
    for (int r = 0; r < R; ++r) {
      uint32_t pair;
      std::memcpy(&pair, a + r * lda + k, sizeof pair);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
      for (int q = 0; q < P; ++q) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], av, bv[q]);
    }
  }
  for (int q = 0; q < P; ++q) {
    const __mmask16 cols = static_cast<__mmask16>((1u << dest[q].cols) - 1u);
    for (int r = 0; r < R; ++r) {
      float* p = c + r * ldc + dest[q].col;
      const __m512 sum = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(cols, p), acc[r][q]) : acc[r][q];
      _mm512_mask_storeu_ps(p, cols, sum);
    }
  }
}

// Rows per dot_kernel call: 12 rows x 2 panels keep 24 of the 32 vector registers accumulating.
constexpr int DOT_ROWS = 12;

// Panels per call for a block of R rows: four while that stays within 24 accumulators (few rows would otherwise
// leave the multiply-adds waiting on each other's latency), else two.
template <int R>
constexpr int dot_panels_at_once() {
  return R * 4 <= 24 ? 4 : 2;
}

// One block of `rows` (1..DOT_ROWS) rows against every panel, dispatched to its fixed-R kernels.
template <int R = DOT_ROWS>
inline void dot_row_block(int64_t rows, int64_t kpad, const bf16* a, int64_t lda, const bf16* panels_data,
                          int64_t panel_stride, int64_t npanels, const gemm::PanelDest* dest, float* c, int64_t ldc,
                          bool accumulate) {
  if constexpr (R > 1)
    if (rows < R)
      return dot_row_block<R - 1>(rows, kpad, a, lda, panels_data, panel_stride, npanels, dest, c, ldc, accumulate);
  constexpr int P = dot_panels_at_once<R>();
  int64_t p = 0;
  for (; p + P <= npanels; p += P)
    dot_kernel<R, P>(kpad, a, lda, panels_data + p * panel_stride, panel_stride, dest + p, c, ldc, accumulate);
  for (; p < npanels; ++p)
    dot_kernel<R, 1>(kpad, a, lda, panels_data + p * panel_stride, panel_stride, dest + p, c, ldc, accumulate);
}

// tile_panels' product on VDPBF16PS. Row block by row block, each against every panel: the block's rows of A
// (DOT_ROWS x kpad) stay in L1 while the panels stream from L2.
inline void dot_panels(int64_t m, const bf16* a, int64_t lda, int64_t kpad, const bf16* panels_data,
                       int64_t panel_stride, int64_t npanels, const gemm::PanelDest* dest, float* c, int64_t ldc,
                       bool accumulate) {
  for (int64_t i0 = 0; i0 < m; i0 += DOT_ROWS)
    dot_row_block(std::min<int64_t>(DOT_ROWS, m - i0), kpad, a + i0 * lda, lda, panels_data, panel_stride, npanels,
                  dest, c + i0 * ldc, ldc, accumulate);
}

inline void multiply_panels(int64_t m, const bf16* a, int64_t lda, int64_t kpad, const bf16* panels_data,
                            int64_t panel_stride, int64_t npanels, const gemm::PanelDest* dest, float* c, int64_t ldc,
                            bool accumulate) {
  if (unit() == Unit::tiles)
    tile_panels(m, a, lda, kpad, panels_data, panel_stride, npanels, dest, c, ldc, accumulate);
  else
    dot_panels(m, a, lda, kpad, panels_data, panel_stride, npanels, dest, c, ldc, accumulate);
}

// C = beta*C + A (m x K) * B over the columns B's panels cover, single-threaded; scratch from scratch_size().
inline void multiply(int64_t m, const gemm::View& a, const PackedB& b, float beta, float* c, int64_t ldc,
                     bf16* scratch) {
  if (m == 0) return;
  if (beta != 0.0f && beta != 1.0f)
    for (int64_t p = 0; p < b.num_panels(); ++p) gemm::scale_c(m, b.dest()[p].cols, beta, c + b.dest()[p].col, ldc);
  // Panels in groups of about 256 KB, each group against every row block of a chunk: a group stays in L2 while
  // A streams past it, instead of all of B (often more than L2 holds beside C) being read again for each row block.
  const int64_t panel_bytes = b.kp() * TILE * static_cast<int64_t>(sizeof(bf16));
  const int64_t group = std::max<int64_t>(2, (int64_t{256} * 1024 / panel_bytes) / 2 * 2);
  const int64_t rows_per_chunk = chunk_rows(b.K());
  configure_tiles();
  for (int64_t r0 = 0; r0 < m; r0 += rows_per_chunk) {
    const int64_t rows = std::min(rows_per_chunk, m - r0);
    convert_rows(a, r0, rows, 0, b.K(), b.kp(), scratch);
    std::fill(scratch + rows * b.kp(), scratch + round_up(rows, ROW_BLOCK) * b.kp(), bf16{0});
    for (int64_t p0 = 0; p0 < b.num_panels(); p0 += group)
      multiply_panels(rows, scratch, b.kp(), b.kp(), b.data() + p0 * b.kp() * TILE, b.kp() * TILE,
                      std::min(group, b.num_panels() - p0), b.dest() + p0, c + r0 * ldc, ldc, beta != 0.0f);
  }
  release_tiles();
}

// C (cols x rows, ldc) = beta*C + X^T for X (rows x cols, dense), a VL x VL block at a time.
inline void add_transpose(int64_t rows, int64_t cols, const float* x, float beta, float* c, int64_t ldc) {
  constexpr int64_t VL = gemm::VL;
  auto out = [&](int64_t i, int64_t j, float v) {
    float& dst = c[i * ldc + j];
    dst = (beta == 0.0f ? 0.0f : beta * dst) + v;
  };
  const int64_t full_rows = rows / VL * VL, full_cols = cols / VL * VL;
  for (int64_t r0 = 0; r0 < full_rows; r0 += VL)
    for (int64_t c0 = 0; c0 < full_cols; c0 += VL) {
      gemm::vf block[VL];
      for (int q = 0; q < VL; ++q) block[q] = gemm::load(x + (r0 + q) * cols + c0);
      gemm::transpose_in_registers(block);
      for (int q = 0; q < VL; ++q) {
        float* dst = c + (c0 + q) * ldc + r0;
        const gemm::vf old = beta == 0.0f ? gemm::vf{} : gemm::load(dst) * beta;
        gemm::store(dst, old + block[q]);
      }
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t col = r < full_rows ? full_cols : 0; col < cols; ++col) out(col, r, x[r * cols + col]);
}

// sgemm on tiles. Threads split the larger of M and N (as gemm::sgemm does). Each packs B in KC x NC blocks that
// stay in its L2; splitting columns, A is converted once into a shared buffer; splitting rows, each thread
// converts its own 32-row blocks as it goes, so they are still in cache for the tiles.
inline void sgemm(int64_t M, int64_t N, int64_t K, const gemm::View& a, const gemm::View& b, float beta, float* c,
                  int64_t ldc) {
  if (a.trans && M > N && K >= M) {
    // A transposed is the slow operand to convert: its rows are columns in memory, read in 16-float strips down
    // the rows. The product's transpose C^T = B^T A^T converts only the smaller B that way and packs A's rows as
    // stored (the parameter gradients dW = dG^T x over many tokens: dG is 4 x wider than x for an LSTM, tens of
    // megabytes). Adding C^T back is a pass over C, which pays only when C is small next to A (K >= M): a
    // language model head's dW over 400 tokens (10,000 x 200 x 400) ran 1.27x slower transposed.
    gemm::Buffer transposed = gemm::allocate(N * M);
    amx::sgemm(N, M, K, gemm::View{b.p, b.ld, !b.trans}, gemm::View{a.p, a.ld, !a.trans}, 0.0f, transposed.get(), M);
    add_transpose(N, M, transposed.get(), beta, c, ldc);
    return;
  }
  constexpr int64_t KC = 512, NC = 512;
  const int64_t kp = round_up(K, TILE_K), mp = round_up(M, ROW_BLOCK), npanels = (N + TILE - 1) / TILE;
  if (beta != 0.0f && beta != 1.0f) gemm::scale_c(M, N, beta, c, ldc);
  const int nthreads = gemm::threads_for_product(M, N, K);
  const bool split_columns = M <= N ? npanels >= nthreads : mp / ROW_BLOCK < nthreads;
  gemm::BufferOf<bf16> shared_a = gemm::allocate<bf16>(split_columns ? mp * kp : 0);
  StepBarrier step_barrier;
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = thread_id(), nth = team_size();
    int64_t i_lo = 0, i_hi = M, j_lo = 0, j_hi = N;
    if (split_columns) {
      const int64_t rows_per = (mp / TILE + nth - 1) / nth * TILE;
      const int64_t r_lo = std::min(M, rows_per * tid), r_hi = std::min(M, r_lo + rows_per);
      if (r_hi > r_lo) convert_rows(a, r_lo, r_hi - r_lo, 0, K, kp, shared_a.get() + r_lo * kp);
      if (tid == nth - 1) std::fill(shared_a.get() + M * kp, shared_a.get() + mp * kp, bf16{0});
      step_barrier.wait();
      const int64_t per = (npanels + nth - 1) / nth;
      j_lo = std::min(N, per * tid * TILE);
      j_hi = std::min(N, j_lo + per * TILE);
    } else {
      const int64_t per = (mp / ROW_BLOCK + nth - 1) / nth * ROW_BLOCK;
      i_lo = std::min(M, per * tid);
      i_hi = std::min(M, i_lo + per);
    }
    if (j_hi > j_lo && i_hi > i_lo) {
      gemm::BufferOf<bf16> bp = gemm::allocate<bf16>(NC / TILE * KC * TILE);
      gemm::BufferOf<bf16> a_block = gemm::allocate<bf16>(split_columns ? 0 : ROW_BLOCK * KC);
      std::vector<gemm::PanelDest> dest;
      configure_tiles();
      for (int64_t jc = j_lo; jc < j_hi; jc += NC) {
        const int64_t ncols = std::min(NC, j_hi - jc);
        dest.clear();
        for (int64_t j = 0; j < ncols; j += TILE) dest.push_back({jc + j, std::min(TILE, ncols - j)});
        const int64_t np = static_cast<int64_t>(dest.size());
        for (int64_t k0 = 0; k0 < kp; k0 += KC) {
          const int64_t kc = std::min(KC, K - k0), kpad = std::min(KC, kp - k0);
          const bool accumulate = k0 > 0 || beta != 0.0f;
          pack_panels(b, k0, kc, kpad, dest.data(), np, bp.get());
          if (split_columns) {
            multiply_panels(M, shared_a.get() + k0, kp, kpad, bp.get(), kpad * TILE, np, dest.data(), c, ldc,
                            accumulate);
            continue;
          }
          for (int64_t i0 = i_lo; i0 < i_hi; i0 += ROW_BLOCK) {
            const int64_t rows = std::min(ROW_BLOCK, i_hi - i0);
            convert_rows(a, i0, rows, k0, kc, kpad, a_block.get());
            std::fill(a_block.get() + rows * kpad, a_block.get() + ROW_BLOCK * kpad, bf16{0});
            multiply_panels(rows, a_block.get(), kpad, kpad, bp.get(), kpad * TILE, np, dest.data(), c + i0 * ldc, ldc,
                            accumulate);
          }
        }
      }
      release_tiles();
    }
  }
}

#endif  // RNNFAST_HAVE_AMX

}  // namespace amx
}  // namespace rnnfast
