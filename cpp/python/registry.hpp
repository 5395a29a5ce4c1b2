// Each binding file registers its functions here, so adding a file to cpp/python/ is all it takes to bind it.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

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
    throw std::invalid_argument(std::string(name) + ": got dtype " + std::string(py::str(a.dtype())) +
                                ", expected " + std::string(py::str(py::dtype::of<T>())));
  if (!(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array");
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
  if (!ok)
    throw std::invalid_argument(std::string(name) + ": got shape " + shape_str(a) + ", expected " +
                                shape_str(shape));
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

}  // namespace rnnfast::bind
