// Asynchronous global->shared 16-byte copies (sm_80+), so a tile's next rank slice loads while
// the current one is multiplied. A copy of fewer than 16 source bytes zero-fills the rest, which
// is how padding rows and columns past the rank become zeros without a branch in the product.
#pragma once

namespace shadowkv {

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src, int src_bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :: "r"(dst), "l"(gmem_src), "r"(src_bytes) : "memory");
}

// Same, to a shared-memory address already converted (saves the conversion in hot loops).
__device__ __forceinline__ void cp_async16(unsigned smem_dst, const void* gmem_src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :: "r"(smem_dst), "l"(gmem_src), "r"(src_bytes) : "memory");
}

// 4-byte variant (through L1), for copies that scatter 32-bit words.
__device__ __forceinline__ void cp_async4(unsigned smem_dst, const void* gmem_src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n"
               :: "r"(smem_dst), "l"(gmem_src), "r"(src_bytes) : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" :: "n"(Pending) : "memory");
}

}  // namespace shadowkv
