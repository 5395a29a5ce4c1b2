// What every binding file shares: registration (adding a file to cpp/python/ is all it takes to bind it), the
// array checks, the one lengths validator, and the one dtype dispatch that picks the loaded kernels.
//
// The files compile as one unity translation unit (pybind11's headers and templates are most of their compile
// time, and one unit pays for them once), so each file's registration and helpers need names of their own.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernel_table.hpp"

namespace rnnfast::bind {

namespace py = pybind11;

using Registration = std::function<void(py::module_&)>;

inline std::vector<Registration>& registrations() {
  static std::vector<Registration> all;
  return all;
}

struct Register {
  explicit Register(Registration r) { registrations().push_back(std::move(r)); }
};

// The Python package validates arguments with friendly messages; these checks are the last line that keeps a
// wrong call from reading or writing out of bounds.
inline std::string shape_str(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out += (i ? ", " : "") + std::to_string(a.shape(i));
  return out + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

template <class T>
void check_array(const py::array& a, const char* name, const std::vector<int64_t>& shape) {
  if (!py::isinstance<py::array_t<T>>(a) || !a.dtype().is(py::dtype::of<T>()))
    throw std::invalid_argument(std::string(name) + ": got dtype " + std::string(py::str(a.dtype())) + ", expected " +
                                std::string(py::str(py::dtype::of<T>())));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array");
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok)
    throw std::invalid_argument(std::string(name) + ": got shape " + shape_str(a) + ", expected " + shape_str(shape));
}

template <class T>
const T* in_ptr(const py::array& a, const char* name, const std::vector<int64_t>& shape) {
  check_array<T>(a, name, shape);
  return static_cast<const T*>(a.data());
}

template <class T>
T* out_ptr(py::array& a, const char* name, const std::vector<int64_t>& shape) {
  check_array<T>(a, name, shape);
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": array is read-only");
  return static_cast<T*>(a.mutable_data());
}

template <class T>
const T* optional_in_ptr(const py::object& o, const char* name, const std::vector<int64_t>& shape) {
  if (o.is_none()) return nullptr;
  return in_ptr<T>(py::cast<py::array>(o), name, shape);
}

template <class T>
T* optional_out_ptr(const py::object& o, const char* name, const std::vector<int64_t>& shape) {
  if (o.is_none()) return nullptr;
  py::array a = py::cast<py::array>(o);
  return out_ptr<T>(a, name, shape);
}

inline bool is_float64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

// lengths: None (every sequence has all T steps) or int64 (B,) with every value in 1..T.
inline const int64_t* checked_lengths(const py::object& lengths, int64_t B, int64_t T) {
  const int64_t* len = optional_in_ptr<int64_t>(lengths, "lengths", {B});
  for (int64_t b = 0; len && b < B; ++b)
    if (len[b] < 1 || len[b] > T)
      throw std::invalid_argument("lengths: got " + std::to_string(len[b]) + " at index " + std::to_string(b) +
                                  ", expected values in 1.." + std::to_string(T));
  return len;
}

// The kernel tables in use, set once by load_kernels (module.cpp): float32 kernels of the chosen instruction set,
// float64 kernels of the baseline library.
struct LoadedKernels {
  const KernelTable* f32 = nullptr;
  const KernelTable* f64 = nullptr;
};

inline LoadedKernels& loaded_kernels() {
  static LoadedKernels loaded;
  return loaded;
}

template <class S>
const TypedKernels<S>& kernels() {
  const LoadedKernels& k = loaded_kernels();
  if (!k.f32 || !k.f64) throw std::runtime_error("rnnfast._core: no kernels loaded (import rnnfast, which loads them)");
  if constexpr (std::is_same_v<S, double>)
    return k.f64->f64;
  else
    return k.f32->f32;
}

// The one dtype dispatch: f(kernels) with the float64 kernels when `first` is float64, else the float32 ones (whose
// array checks then name any other dtype). f is a generic lambda that passes the table to an implementation
// template, which deduces its scalar type S from TypedKernels<S>.
inline int64_t dim(const py::array& a, int axis, const char* name, const char* expected) {
  if (a.ndim() <= axis)
    throw std::invalid_argument(std::string(name) + ": got shape " + shape_str(a) + ", expected " + expected);
  return a.shape(axis);
}

// The float32 kernels' library: int8 inference exists for float32 models only.
inline const KernelTable& float_table() {
  const LoadedKernels& k = loaded_kernels();
  if (!k.f32) throw std::runtime_error("rnnfast._core: no kernels loaded (import rnnfast, which loads them)");
  return *k.f32;
}

// Weights quantized to int8: W (rows, K) int8 and its float32 scale (rows), with K small enough for int32 sums.
inline int8::Weights int8_weights(const py::array& W, const py::object& scale, const char* name, const char* scale_name,
                                  int64_t rows, int64_t K) {
  if (K > int8::kMaxDepth)
    throw std::invalid_argument(std::string(name) + ": got " + std::to_string(K) + " inputs per row, int8 weights " +
                                "support at most " + std::to_string(int8::kMaxDepth));
  if (scale.is_none()) throw std::invalid_argument(std::string(scale_name) + ": required with int8 " + name);
  return {in_ptr<int8_t>(W, name, {rows, K}), in_ptr<float>(py::cast<py::array>(scale), scale_name, {rows})};
}

template <class F>
decltype(auto) with_kernels_for(const py::array& first, F&& f) {
  if (is_float64(first)) return f(kernels<double>());
  return f(kernels<float>());
}

}  // namespace rnnfast::bind
