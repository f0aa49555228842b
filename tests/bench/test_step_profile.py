"""Kernel names sorted into the phases of a decode step, and GPU busy time as a union."""
import pytest
from shadowkv_engine.bench.step_profile import breakdown, classify, format_profile, union_us


@pytest.mark.parametrize("name, phase", [
    ("gather_kernel(GatherArgs)", "value gather"),
    ("offload_kernel(OffloadArgs)", "value offload"),
    ("void rebuild_resident_kernel<128>(RebuildArgs, SmemPlan, Divisors)", "key rebuild"),
    ("void score_segments_kernel<__nv_bfloat16, 128, 4>(ScoreArgs, int)", "landmark scoring"),
    ("void normalize_kernel<__nv_bfloat16>(ScoreArgs, int)", "landmark scoring"),
    ("void at::native::sbtopk::gatherTopK<float, unsigned int, 2, false>(...)", "top-k"),
    ("void at::native::radixSortKVInPlace<-2, -1, 128, 4, float, long>(...)", "top-k"),
    ("plan_kernel(PlanArgs, int)", "hit/miss plan"),
    ("shadowkv::(anonymous namespace)::select_kernel(shadowkv::SelectArgs, int, bool)",
     "top-k + plan (one kernel)"),
    ("void shadowkv::(anonymous namespace)::project_kernel<__nv_bfloat16>(ProjectArgs)",
     "coefficient projection"),
    ("void shadowkv::scoring::score_segments_mma_kernel<__nv_bfloat16, 128>(ScoreArgs, int)",
     "landmark scoring"),
    ("void flashinfer::BatchDecodeWithPagedKVCacheKernel<...>", "attention"),
    ("void pytorch_flash::flash_fwd_kernel<...>", "attention"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80", "attention"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "GEMM"),
    ("nvjet_hsh_128x256_64x4_2x1_v_bz_coopA_NNT", "GEMM"),
    ("void gemv2T_kernel_val<int, int, __nv_bfloat16, ...>", "GEMM"),
    ("void flashinfer::sampling::TopKTopPSamplingFromProbKernel<...>", "sampling"),
    ("void at::native::reduce_kernel<512, 1, ReduceOp<float, ArgMaxOps<float>, ...>>", "sampling"),
    ("Memcpy HtoD (Pinned -> Device)", "copy/index glue"),
    ("void at::native::(anonymous namespace)::CatArrayBatchedCopy<...>", "copy/index glue"),
    ("void at::native::index_elementwise_kernel<128, 4, ...>", "copy/index glue"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>",
     "other elementwise"),
    ("aten::addmm", "GEMM"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
])
def test_classify(name, phase):
    assert classify(name) == phase


def test_union_counts_overlap_once():
    assert union_us([(0, 10), (5, 15), (20, 25), (21, 22)]) == 20
    assert union_us([]) == 0


def test_breakdown_per_step():
    kernels = [("gather_kernel", 0.0, 400.0), ("nvjet_gemm", 100.0, 800.0),  # overlap 300 µs
               ("plan_kernel", 2000.0, 200.0)]
    result = breakdown(kernels, steps=2, wall_s=0.004)
    assert result["phases_ms"]["value gather"] == pytest.approx(0.2)
    assert result["phases_ms"]["GEMM"] == pytest.approx(0.4)
    assert result["phases_ms"]["hit/miss plan"] == pytest.approx(0.1)
    assert result["busy_ms"] == pytest.approx((900 + 200) / 1e3 / 2)
    assert result["wall_ms"] == pytest.approx(2.0)
    assert result["kernels_per_step"] == 1.5


def test_top_kernels_by_name_longest_first():
    kernels = [("plan_kernel", 0.0, 100.0), ("nvjet_gemm", 100.0, 800.0),
               ("plan_kernel", 1000.0, 300.0)]
    result = breakdown(kernels, steps=2, wall_s=0.004) | {"graph_launches_per_step": 1.0}
    assert result["top_kernels"] == [("nvjet_gemm", "GEMM", 0.5, pytest.approx(0.4)),
                                     ("plan_kernel", "hit/miss plan", 1.0, pytest.approx(0.2))]
    text = format_profile("p", result, top_kernels=1)
    assert "nvjet_gemm" in text and text.count("plan_kernel") == 0
    assert "plan_kernel" not in format_profile("p", result)
