// The fused generation loop (rnnfast/sample.hpp), for one instruction set.
#include "kernel_parts.hpp"
#include "rnnfast/sample.hpp"

namespace rnnfast::RNNFAST_KERNEL_NS {

template <class S>
void fill_sample(TypedKernels<S>& k) {
  k.generate = &generate<S>;
}

}  // namespace rnnfast::RNNFAST_KERNEL_NS

using rnnfast::TypedKernels;
RNNFAST_INSTANTIATE_PART(fill_sample)
