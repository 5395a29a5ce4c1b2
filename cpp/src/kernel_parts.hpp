// The parts of one instruction set's kernel table, one translation unit each (so a build compiles them in
// parallel). RNNFAST_KERNEL_NS names the instruction set's namespace (kernels_baseline, kernels_avx2, ...), set by
// CMakeLists.txt together with the -m flags; RNNFAST_KERNEL_F64 is 1 where the float64 kernels are built too.
#pragma once

#include "kernel_table.hpp"

#ifndef RNNFAST_KERNEL_NS
#error "RNNFAST_KERNEL_NS must name the instruction set's namespace (see CMakeLists.txt)"
#endif
#ifndef RNNFAST_KERNEL_F64
#define RNNFAST_KERNEL_F64 0
#endif

namespace rnnfast::RNNFAST_KERNEL_NS {

// kernels_sequence.cpp
template <class S>
void fill_sequence(TypedKernels<S>& k);
// kernels_dense.cpp: linear, embedding, loss, optimizer updates
template <class S>
void fill_dense(TypedKernels<S>& k);
// kernels_crf.cpp
template <class S>
void fill_crf(TypedKernels<S>& k);
// kernels_sample.cpp
template <class S>
void fill_sample(TypedKernels<S>& k);

// kernels_int8.cpp: the float32 model's int8 entries
void fill_int8(KernelTable& t);

}  // namespace rnnfast::RNNFAST_KERNEL_NS

// Explicit instantiations of one part for the scalar types this library holds.
#if RNNFAST_KERNEL_F64
#define RNNFAST_INSTANTIATE_PART(part)                                         \
  template void rnnfast::RNNFAST_KERNEL_NS::part<float>(TypedKernels<float>&); \
  template void rnnfast::RNNFAST_KERNEL_NS::part<double>(TypedKernels<double>&);
#else
#define RNNFAST_INSTANTIATE_PART(part) template void rnnfast::RNNFAST_KERNEL_NS::part<float>(TypedKernels<float>&);
#endif
