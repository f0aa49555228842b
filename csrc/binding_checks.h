// Helpers shared by the torch op registrations (torch_bindings.cpp, model_bindings.cpp): the
// launch status as a torch error, and the kernels' dtype tag of a tensor.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime_api.h>

#include "launchers.h"

namespace shadowkv {

inline void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, "shadowkv.", op, ": CUDA error: ", cudaGetErrorString(err));
}

inline DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::kFloat32;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "shadowkv: unsupported dtype ", t.scalar_type());
  }
}

}  // namespace shadowkv
