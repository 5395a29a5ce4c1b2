// The linear-chain CRF's likelihood with its gradient, and Viterbi decoding (rnnfast/crf.hpp), for one
// instruction set.
#include "kernel_parts.hpp"
#include "rnnfast/crf.hpp"

namespace rnnfast::RNNFAST_KERNEL_NS {

template <class S>
void fill_crf(TypedKernels<S>& k) {
  k.crf_nll = &crf_nll<S>;
  k.crf_viterbi = &crf_viterbi<S>;
}

}  // namespace rnnfast::RNNFAST_KERNEL_NS

using rnnfast::TypedKernels;
RNNFAST_INSTANTIATE_PART(fill_crf)
