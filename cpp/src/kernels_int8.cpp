// Products with int8 weights (rnnfast/int8.hpp, dense.hpp), for one instruction set.
#include "kernel_parts.hpp"
#include "rnnfast/dense.hpp"
#include "rnnfast/int8.hpp"

namespace rnnfast::RNNFAST_KERNEL_NS {

void fill_int8(KernelTable& t) {
  t.int8_unit_name = [] { return int8::unit_name(); };
  t.int8_linear_forward = &linear_forward_int8;
  t.int8_exact_products = &int8::exact_products;
  t.int8_quantize_activations = &int8::quantize_activations;
}

}  // namespace rnnfast::RNNFAST_KERNEL_NS
