// The key rebuild for ranks whose per-head basis fits in shared memory (the common case: rank
// 160 of Llama-3.1-8B's 1024-wide keys is a 40 KiB basis per head). rebuild_keys.cu routes here
// when `rebuild_resident_fits`, and to the streaming kernel otherwise (float32, large ranks).
#pragma once

#include <cstddef>

#include "launchers.h"

namespace shadowkv {

// What the device offers a launch, less the shared memory the kernel declares statically and
// the runtime reserves per block.
struct DeviceLimits {
  size_t block_smem;   // dynamic shared memory one block may opt into
  size_t paired_smem;  // dynamic shared memory each of two blocks sharing a SM may have
  int num_sms;
};

bool rebuild_resident_fits(const RebuildArgs& a, DType dtype, const DeviceLimits& device);
cudaError_t launch_rebuild_resident(const RebuildArgs& a, DType dtype, const DeviceLimits& device,
                                    cudaStream_t stream);

}  // namespace shadowkv
