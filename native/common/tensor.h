// TensorView: a non-owning description of a tensor that kernels read and write.
//
// Layout: row-major; strides are in elements. Every op of the foundation requires contiguous inputs and outputs
// (views made by reshape and first-dimension slices are contiguous), which TensorView::contiguous() checks; the
// strides are carried so that later ops can accept strided views without an ABI change.
#pragma once
#include <cstdint>
#include <string>

#include "dtype.h"
#include "quant.h"

namespace lk {

constexpr int kMaxDims = 8;

enum class DeviceKind : int32_t { cpu = 0, cuda = 1 };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int32_t index = 0;
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string name() const { return kind == DeviceKind::cpu ? "cpu" : "cuda:" + std::to_string(index); }
};

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::f32;
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  Device device;

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  // Bytes of the data: numel * element size, or for a quantized weight [N, K] the bytes of its panel form.
  size_t nbytes() const {
    if (dtype_is_quant(dtype)) return ndim == 2 ? quant_nbytes(dtype, shape[0], shape[1]) : 0;
    return static_cast<size_t>(numel()) * dtype_size(dtype);
  }
  bool contiguous() const {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != s) return false;
      s *= shape[i];
    }
    return true;
  }
  // Size of the last dimension (1 for a scalar) and the product of all others: the [rows, cols] view used by the
  // row-broadcast elementwise ops and by matmul.
  int64_t cols() const { return ndim == 0 ? 1 : shape[ndim - 1]; }
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i < ndim - 1; ++i) r *= shape[i];
    return r;
  }
  std::string shape_str() const {
    std::string s = "[";
    for (int i = 0; i < ndim; ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

inline void set_contiguous_strides(TensorView& t) {
  int64_t s = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    t.strides[i] = s;
    s *= t.shape[i];
  }
}

}  // namespace lk
