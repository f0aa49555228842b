// Fused key rebuild: for every fetched chunk, gather its tokens' low-rank coefficient rows,
// multiply by the head's basis [rank, D] (float accumulation), rotate (RoPE, NeoX half split,
// angle = float(position) * inv_freq in float32 like the twin) and write the post-RoPE keys into
// the chunk's slot rows. Twin: shadowkv_engine/ops/key_rebuild.py.
//
// 16-bit keys whose basis fits in shared memory take rebuild_resident.cu; this file holds the
// entry point and the streaming kernel for the rest (float32 keys, ranks above 288).
//
// Block = one (sequence, KV head) and a segment of slots. It compacts the segment's fetched slots
// (hits cost nothing), then runs 128-row tiles: rank slices of the coefficient rows and of the
// basis stream through a multistage cp.async pipeline into the tile product, whose float result is
// staged in shared memory (aliasing the pipeline) so that RoPE can pair dimension d with d + D/2.
// Any rank works (slices past it are zero-filled); rows that straddle pages are looked up per row.

#include <cuda_runtime.h>

#include "block_scan.cuh"
#include "cp_async.cuh"
#include "float_convert.cuh"
#include "launchers.h"
#include "rebuild_resident.h"
#include "tile_product.cuh"

namespace shadowkv {
namespace {

constexpr int kMaxBlockRows = 256;  // rows of fetched chunks one block takes on at most

// Raw bits of one element: padding is all-zero bits in every float format.
template <typename T>
using Bits = std::conditional_t<sizeof(T) == 2, unsigned short, unsigned int>;

// Pipeline depth: as many rank slices in flight (2 to 4) as fit in 108 KiB or in the float
// output tile they alias, so that two blocks share an H100 SM (228 KiB; the register budget
// allows two) with ~70 KiB of HBM reads outstanding each. D = 256 needs 130 KiB, one block a
// SM, which fits an A100 (163 KiB a block) too.
template <typename T, int D>
struct Smem {
  static constexpr size_t kA = size_t(kTileRows) * lda<T>() * sizeof(T);
  static constexpr size_t kB = size_t(tile_rank<T>()) * ldb<T, D>() * sizeof(T);
  static constexpr size_t kStage = kA + kB;
  static constexpr size_t kC = size_t(kTileRows) * ldc<D>() * sizeof(float);
  static constexpr size_t kRoom = kC > 108 * 1024 ? kC : 108 * 1024;
  static constexpr int kStages = kRoom / kStage > 4 ? 4 : (kRoom / kStage < 2 ? 2 : kRoom / kStage);
  static constexpr size_t kBytes = kStages * kStage > kC ? kStages * kStage : kC;
};

template <typename T, int D>
__device__ void load_stage(const RebuildArgs& a, unsigned char* stage, const int64_t* row_u,
                           const int32_t* basis_pages, int head, int kt) {
  constexpr int kVec = 16 / int(sizeof(T));
  T* sa = reinterpret_cast<T*>(stage);
  T* sb = reinterpret_cast<T*>(stage + Smem<T, D>::kA);
  const T* u = static_cast<const T*>(a.u);
  const T* basis = static_cast<const T*>(a.basis);
  constexpr int kRank = tile_rank<T>();
  const int col0 = kt * kRank;

  constexpr int kAVecs = kRank / kVec;
  for (int v = threadIdx.x; v < kTileRows * kAVecs; v += kTileThreads) {
    const int r = v / kAVecs, col = col0 + (v % kAVecs) * kVec;
    T* dst = sa + r * lda<T>() + (v % kAVecs) * kVec;
    const int64_t off = row_u[r];
    const bool valid = off >= 0 && col < a.rank;
    if (a.u_aligned) {
      const int n = valid ? min(kVec, a.rank - col) : 0;
      cp_async16(dst, valid ? u + off + col : u, n * int(sizeof(T)));
    } else {
      const Bits<T>* src = reinterpret_cast<const Bits<T>*>(u + off + col);
#pragma unroll
      for (int e = 0; e < kVec; ++e)
        reinterpret_cast<Bits<T>*>(dst)[e] = valid && col + e < a.rank ? src[e] : Bits<T>(0);
    }
  }

  constexpr int kBVecs = D / kVec;
  for (int v = threadIdx.x; v < kRank * kBVecs; v += kTileThreads) {
    const int r = v / kBVecs, c = (v % kBVecs) * kVec;
    const int j = col0 + r;
    const T* src = basis;
    int bytes = 0;
    if (j < a.rank) {
      const int64_t page = basis_pages[j / a.basis_rows_per_page];
      src = basis + page * a.basis_page_stride + head * a.basis_head_stride +
            int64_t(j % a.basis_rows_per_page) * a.basis_row_stride + c;
      bytes = 16;
    }
    cp_async16(sb + r * ldb<T, D>() + c, src, bytes);
  }
}

// Two blocks per SM (128 registers a thread) except at D = 256, whose accumulators alone take 128.
template <typename T, int D>
__global__ void __launch_bounds__(kTileThreads, D >= 256 ? 1 : 2)
    rebuild_kernel(RebuildArgs a, int block_slots) {
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int64_t row_u[kTileRows];    // element offset of the row's coefficients, -1 = none
  __shared__ int64_t row_dst[kTileRows];  // element offset of the row's key in kv
  __shared__ int64_t row_token[kTileRows];
  __shared__ int slot_list[kMaxBlockRows];
  __shared__ int warp_totals[32];

  const SlotTables& t = a.t;
  const int head = blockIdx.y, b = blockIdx.z;
  const int32_t* fetch = t.fetch + (int64_t(b) * t.heads + head) * t.slots;
  const int first_slot = blockIdx.x * block_slots;

  int num_fetched = 0;
  for (int base = 0; base < block_slots; base += kTileThreads) {
    const int s = first_slot + base + threadIdx.x;
    const bool fetched = base + threadIdx.x < block_slots && s < t.slots && fetch[s] >= 0;
    int total;
    const int rank = block_exclusive_scan(fetched, warp_totals, total);
    if (fetched) slot_list[num_fetched + rank] = s;
    num_fetched += total;
  }
  if (num_fetched == 0) return;
  __syncthreads();

  const int32_t* u_pages = a.u_pages + int64_t(b) * a.u_cols;
  const int32_t* basis_pages = a.basis_pages + int64_t(b) * a.basis_cols;
  const int32_t* slot_pages = t.slot_pages + int64_t(b) * t.slot_cols;
  const int64_t row_offset = t.row_offset[b];
  const int num_rows = num_fetched * t.chunk_size;
  const int num_k_tiles = (a.rank + tile_rank<T>() - 1) / tile_rank<T>();
  float* sc = reinterpret_cast<float*>(smem);
  T* kv = static_cast<T*>(a.kv);

  for (int tile0 = 0; tile0 < num_rows; tile0 += kTileRows) {
    const int tile_rows = min(kTileRows, num_rows - tile0);
    if (threadIdx.x < kTileRows) {
      const int r = threadIdx.x;
      row_u[r] = -1;
      if (r < tile_rows) {
        const int q = (tile0 + r) / t.chunk_size, i = (tile0 + r) % t.chunk_size;
        const int slot = slot_list[q];
        const int64_t token = int64_t(fetch[slot]) * t.chunk_size + i;
        row_u[r] = int64_t(u_pages[token / a.u_tokens_per_page]) * a.u_page_stride +
                   (token % a.u_tokens_per_page) * a.u_row_stride;
        row_token[r] = token;
        const int64_t row = row_offset + int64_t(slot) * t.chunk_size + i;
        row_dst[r] = int64_t(slot_pages[row / t.block_size]) * a.kv_page_stride +
                     head * a.kv_head_stride + (row % t.block_size) * a.kv_row_stride;
      }
    }
    __syncthreads();

    // Multistage pipeline: slice kt + S - 1 loads while slice kt is multiplied. One group is
    // committed per slice, empty past the rank, so wait<S - 2> always means "slice kt landed".
    constexpr int S = Smem<T, D>::kStages;
    TileProduct<T, D> product;
    product.zero();
    for (int s = 0; s < S - 1; ++s) {
      if (s < num_k_tiles)
        load_stage<T, D>(a, smem + s * Smem<T, D>::kStage, row_u, basis_pages, head, s);
      cp_async_commit();
    }
    for (int kt = 0; kt < num_k_tiles; ++kt) {
      cp_async_wait<S - 2>();
      __syncthreads();  // slice kt visible to all; slice kt - 1's stage free for reuse
      const int next = kt + S - 1;
      if (next < num_k_tiles)
        load_stage<T, D>(a, smem + (next % S) * Smem<T, D>::kStage, row_u, basis_pages, head, next);
      cp_async_commit();
      const unsigned char* stage = smem + (kt % S) * Smem<T, D>::kStage;
      product.step(reinterpret_cast<const T*>(stage),
                   reinterpret_cast<const T*>(stage + Smem<T, D>::kA), tile_rows);
    }
    cp_async_wait<0>();
    __syncthreads();  // sc aliases the stages
    product.store(sc);
    __syncthreads();

    // RoPE: each thread takes 8 dims of the first half and their partners in the second half.
    constexpr int kHalf = D / 2, kGroups = kHalf / 8;
    for (int v = threadIdx.x; v < kTileRows * kGroups; v += kTileThreads) {
      const int r = v / kGroups, d0 = (v % kGroups) * 8;
      if (r >= tile_rows) continue;
      const float position = static_cast<float>(row_token[r]);
      const float* key = sc + r * ldc<D>();
      alignas(16) T lo[8], hi[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        float s, c;
        sincosf(position * __ldg(a.inv_freq + d0 + e), &s, &c);
        const float x = key[d0 + e], y = key[d0 + e + kHalf];
        lo[e] = from_float<T>(x * c - y * s);
        hi[e] = from_float<T>(y * c + x * s);
      }
      T* dst = kv + row_dst[r] + d0;
#pragma unroll
      for (int w = 0; w < int(sizeof(lo)) / 16; ++w) {
        reinterpret_cast<uint4*>(dst)[w] = reinterpret_cast<const uint4*>(lo)[w];
        reinterpret_cast<uint4*>(dst + kHalf)[w] = reinterpret_cast<const uint4*>(hi)[w];
      }
    }
    __syncthreads();  // row info and sc are rewritten by the next tile
  }
}

template <typename T, int D>
cudaError_t launch(const RebuildArgs& a, cudaStream_t stream) {
  const size_t smem = Smem<T, D>::kBytes;
  if (smem > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(rebuild_kernel<T, D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (err != cudaSuccess) return err;
  }
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  // Big blocks amortize the per-tile setup; small batches take one tile per block to fill the GPU.
  const int64_t rows = int64_t(a.t.batch) * a.t.heads * a.t.slots * a.t.chunk_size;
  const int block_rows = rows >= int64_t(sms) * 8 * kMaxBlockRows ? kMaxBlockRows : kTileRows;
  const int block_slots = block_rows / a.t.chunk_size > 0 ? block_rows / a.t.chunk_size : 1;
  const dim3 grid((a.t.slots + block_slots - 1) / block_slots, a.t.heads, a.t.batch);
  rebuild_kernel<T, D><<<grid, kTileThreads, smem, stream>>>(a, block_slots);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_for_dim(const RebuildArgs& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64: return launch<T, 64>(a, stream);
    case 128: return launch<T, 128>(a, stream);
    case 256: return launch<T, 256>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

template <typename T>
size_t smem_for_dim(int head_dim) {
  switch (head_dim) {
    case 64: return Smem<T, 64>::kBytes;
    case 128: return Smem<T, 128>::kBytes;
    case 256: return Smem<T, 256>::kBytes;
    default: return 0;
  }
}

}  // namespace

bool rebuild_supports_head_dim(int head_dim) {
  return head_dim == 64 || head_dim == 128 || head_dim == 256;
}

size_t rebuild_smem_bytes(DType dtype, int head_dim) {
  switch (dtype) {
    case DType::kFloat32: return smem_for_dim<float>(head_dim);
    case DType::kFloat16: return smem_for_dim<__half>(head_dim);
    default: return smem_for_dim<__nv_bfloat16>(head_dim);
  }
}

cudaError_t launch_rebuild_keys(const RebuildArgs& a, DType dtype, cudaStream_t stream) {
  if (int64_t(a.t.batch) * a.t.heads * a.t.slots == 0) return cudaSuccess;
  int device = 0, block_smem = 0, sm_smem = 0, reserved = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&block_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&sm_smem, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device);
  if (err == cudaSuccess)
    err = cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  // 1 KiB of room for the resident kernel's static shared memory (its scan's warp totals).
  const DeviceLimits limits{size_t(block_smem) - 1024,
                            size_t(sm_smem / 2 - reserved) - 1024, sms};
  if (a.kernel != RebuildKernel::kStreaming && rebuild_resident_fits(a, dtype, limits))
    return launch_rebuild_resident(a, dtype, limits, stream);
  switch (dtype) {
    case DType::kFloat32: return launch_for_dim<float>(a, stream);
    case DType::kFloat16: return launch_for_dim<__half>(a, stream);
    default: return launch_for_dim<__nv_bfloat16>(a, stream);
  }
}

}  // namespace shadowkv
