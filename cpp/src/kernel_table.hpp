// The dispatch table between the Python bindings (compiled once, baseline flags) and the kernels (compiled once
// per instruction set, cpp/src/kernels_*.cpp).
//
// Each instruction set's kernels live in their own shared library, _core_kernels_<isa>.so, built with hidden
// visibility: the header templates (ours and Eigen's) are instantiated inside each library and never merged with
// another library's copies, so an AVX-512 instantiation can never stand in for a baseline one (the one-definition
// rule problem of compiling one module's files with different -m flags). Each library exports one C function,
// RNNFAST_KERNEL_ENTRY, that returns its table; the module `_core` dlopens the library the package chose.
//
// float64 kernels serve gradient checks and references, never speed, so only the baseline library holds them:
// the other libraries leave `f64` empty and `_core` takes it from the baseline library.
#pragma once

#include <cstdint>

#include "rnnfast/crf.hpp"
#include "rnnfast/dense.hpp"
#include "rnnfast/loss.hpp"
#include "rnnfast/matmul.hpp"
#include "rnnfast/sample.hpp"
#include "rnnfast/sequence.hpp"

// Raised whenever the table's layout or a kernel's signature changes: a library from another build is refused.
#define RNNFAST_KERNEL_ABI 4
#define RNNFAST_KERNEL_ENTRY rnnfast_kernel_table

namespace rnnfast {

// The kernels of one scalar type. Shapes as in the headers each one comes from.
template <class S>
struct TypedKernels {
  using Scalar = S;
  // sequence.hpp
  void (*sequence_forward)(const LayerParams<S>& p, const SeqShape& s, const S* x, const S* h0, const S* c0, S* y,
                           int64_t ldy, S* hT, S* cT, S* workspace);
  void (*sequence_backward)(const LayerParams<S>& p, const SeqShape& s, const S* x, const S* workspace, const S* dy,
                            int64_t ldy, const S* dhT, const S* dcT, S* dx, bool accumulate_dx, S* dh0, S* dc0,
                            const LayerGrads<S>& grads);
  // dense.hpp
  void (*linear_forward)(const S* x, int64_t N, int64_t I, const S* W, int64_t O, const S* b, S* y);
  void (*linear_backward)(const S* dy, int64_t N, int64_t O, const S* x, int64_t I, const S* W, S* dx, S* dW, S* db);
  void (*embedding_backward)(const int64_t* ids, int64_t N, const S* dy, int64_t E, S* dW, int64_t V);
  // loss.hpp
  LossResult (*softmax_cross_entropy)(const S* logits, int64_t N, int64_t V, const int64_t* targets,
                                      int64_t ignore_index, S* dlogits, double grad_scale);
  // optim.hpp
  void (*sgd_step)(S* p, const S* g, S* momentum_buf, int64_t n, double lr, double momentum, double weight_decay,
                   double dampening, bool nesterov, bool first_step, double grad_scale);
  void (*adam_step)(S* p, const S* g, S* m, S* v, int64_t n, double lr, double beta1, double beta2, double eps,
                    double weight_decay, bool decoupled, int64_t step, double grad_scale);
  double (*sum_of_squares)(const S* x, int64_t n);
  void (*scale_in_place)(S* x, int64_t n, S factor);
  void (*clamp_in_place)(S* x, int64_t n, S limit);
  // crf.hpp
  void (*crf_nll)(const CrfScores<S>& s, const int64_t* tags, double* nll, S* demissions, S* dstart, S* dend, S* dtrans,
                  double grad_scale);
  void (*crf_viterbi)(const CrfScores<S>& s, int64_t* tags, double* scores);
  // sample.hpp
  void (*generate)(const LanguageModelWeights<S>& w, const int64_t* prompt, int64_t P, int64_t steps,
                   const SamplingOptions& opt, S* h_state, S* c_state, int64_t* out, RhsStorage weight_storage);
};

struct KernelTable {
  int abi;          // RNNFAST_KERNEL_ABI of the build that made the library
  int64_t size;     // sizeof(KernelTable) there
  const char* isa;  // "baseline", "avx2", "avx512"
  TypedKernels<float> f32;
  TypedKernels<double> f64;  // every pointer null except in the baseline library
  bool has_f64;

  // Process-wide settings live in each library (parallel.hpp and amx.hpp keep them in function-local statics, and
  // hidden visibility keeps those per library), so the bindings set them through the table in every loaded one.
  void (*set_num_threads)(int n);
  int (*max_threads)();
  int (*threads_in_use)();  // max_threads, or fewer while other processes hold cores (parallel.hpp)
  void (*set_matmul_bfloat16)(bool on);
  bool (*matmul_bfloat16)();
  const char* (*bf16_unit_name)();  // amx::unit_name(): "amx", "avx512_bf16" or nullptr
  bool (*amx_tiles)();              // amx::unit() == Unit::tiles

  // int8.hpp and dense.hpp: int8 weights for float32 inference.
  const char* (*int8_unit_name)();
  void (*int8_linear_forward)(const float* x, int64_t N, int64_t I, const int8::Weights& W, int64_t O, const float* b,
                              float* y);
  void (*int8_exact_products)(const int8_t* q, int64_t m, int64_t K, const int8_t* w, int64_t n, int32_t* out);
  void (*int8_quantize_activations)(const float* x, int64_t m, int64_t K, int8_t* q, float* scale);

  // What the library was compiled with (build_info.hpp, Eigen's vector instruction sets).
  const char* openmp;
  const char* eigen_simd;
  const char* compiler;
};

}  // namespace rnnfast

extern "C" {
typedef const rnnfast::KernelTable* (*rnnfast_kernel_entry_fn)();
}
