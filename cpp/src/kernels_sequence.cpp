// One recurrent layer direction over a sequence, forward and backward (rnnfast/sequence.hpp), for one instruction
// set.
#include "kernel_parts.hpp"
#include "rnnfast/sequence.hpp"

namespace rnnfast::RNNFAST_KERNEL_NS {

template <class S>
void fill_sequence(TypedKernels<S>& k) {
  k.sequence_forward = &sequence_forward<S>;
  k.sequence_backward = &sequence_backward<S>;
}

}  // namespace rnnfast::RNNFAST_KERNEL_NS

using rnnfast::TypedKernels;
RNNFAST_INSTANTIATE_PART(fill_sequence)
