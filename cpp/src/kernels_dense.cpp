// Dense layers, the fused loss and the optimizer updates (rnnfast/dense.hpp, loss.hpp, optim.hpp), for one
// instruction set.
#include "kernel_parts.hpp"
#include "rnnfast/dense.hpp"
#include "rnnfast/loss.hpp"
#include "rnnfast/optim.hpp"

namespace rnnfast::RNNFAST_KERNEL_NS {

template <class S>
void fill_dense(TypedKernels<S>& k) {
  k.linear_forward = &linear_forward<S>;
  k.linear_backward = &linear_backward<S>;
  k.embedding_backward = &embedding_backward<S>;
  k.softmax_cross_entropy = &softmax_cross_entropy<S>;
  k.sgd_step = &sgd_step<S>;
  k.adam_step = &adam_step<S>;
  k.sum_of_squares = &sum_of_squares<S>;
  k.scale_in_place = &scale_in_place<S>;
  k.clamp_in_place = &clamp_in_place<S>;
}

}  // namespace rnnfast::RNNFAST_KERNEL_NS

using rnnfast::TypedKernels;
RNNFAST_INSTANTIATE_PART(fill_dense)
