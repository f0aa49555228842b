"""The decode-step ops (plan, key rebuild, value gather) replay correctly from a CUDA graph:
no host sync or allocation inside them breaks capture, and a replay on new selections equals
the twins run eagerly."""
import torch

from shadowkv_engine import ops
from shadowkv_engine.ops.chunk_plan import plan_chunk_reuse_torch
from shadowkv_engine.ops.key_rebuild import rebuild_keys_torch
from shadowkv_engine.ops.value_gather import gather_values_torch
from paged_case import make_case, needs_cuda_ops, random_plan_inputs


@needs_cuda_ops
def test_plan_rebuild_gather_replay_from_a_cuda_graph():
    batch, heads, chunk, budget, rank = 2, 4, 8, 512, 160
    case = make_case(batch, heads, 128, chunk, budget, rank, torch.bfloat16, "cuda", seed=3,
                     pin=True)
    k = budget // chunk
    resident = torch.full((batch * heads, k), -1, dtype=torch.int32, device="cuda")
    selected = torch.full_like(resident, -1)

    def step():
        _, fetch, _ = ops.plan_chunk_reuse(resident, selected)
        fetch = fetch.view(batch, heads, k)
        ops.rebuild_keys(case.u_rows, case.head_rows, case.kv, case.tables, fetch, case.inv_freq,
                         case.layer, chunk, rank)
        ops.gather_values(case.store, case.kv, case.tables, fetch, case.layer, chunk)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # warm-up outside capture, as torch.cuda.graphs recommends
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    gen = torch.Generator().manual_seed(7)
    new_resident, new_selected = random_plan_inputs(batch * heads, k, case.num_chunks, 0.6, gen)
    resident.copy_(new_resident)
    selected.copy_(new_selected)
    want = case.arena.clone()
    graph.replay()
    torch.cuda.synchronize()

    fetch = plan_chunk_reuse_torch(new_resident, new_selected)[1].view(batch, heads, k).cuda()
    layout = case.layout
    rebuild_keys_torch(layout.u_rows_view(want, rank), layout.head_rows_view(want),
                       layout.kv_view(want), case.tables, fetch, case.inv_freq, case.layer, chunk,
                       rank)
    gather_values_torch(case.store, layout.kv_view(want), case.tables, fetch, case.layer, chunk)
    values = (slice(None), case.layer, 1)
    torch.testing.assert_close(case.kv[values], layout.kv_view(want)[values], rtol=0, atol=0,
                               equal_nan=True)
    keys = (slice(None), case.layer, 0)
    written = ~layout.kv_view(want)[keys].isnan()
    assert torch.equal(written, ~case.kv[keys].isnan())
    torch.testing.assert_close(case.kv[keys][written].float(),
                               layout.kv_view(want)[keys][written].float(), rtol=2e-2, atol=5e-2)
