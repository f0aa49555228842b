// The key rebuild for ranks whose per-head basis fits in shared memory (the common case: rank
// 160 of Llama-3.1-8B's 1024-wide keys is a 40 KiB basis per head). rebuild_keys.cu routes here
// when `rebuild_resident_fits`, and to the streaming kernel otherwise (float32, large ranks).
#pragma once

#include <cstddef>

#include "launchers.h"

namespace shadowkv {

bool rebuild_resident_fits(const RebuildArgs& a, DType dtype, size_t max_block_smem);
cudaError_t launch_rebuild_resident(const RebuildArgs& a, DType dtype, size_t max_block_smem,
                                    int num_sms, cudaStream_t stream);

}  // namespace shadowkv
