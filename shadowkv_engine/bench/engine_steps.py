"""Driving LLMEngine for a throughput measurement: a batch of random prompts, steps until every
sequence has its first token (prefill and compression), warm-up steps, then timed steps between
synchronisations; the engine's counters give tokens, hit rate and preemptions of the window."""
import time

import torch

from ..sampling_params import SamplingParams
from .step_profile import profile_steps

GIB = 1 << 30
MAX_BATCHED_TOKENS = 8192  # the engine's per-step token budget (chunked prefill)
# A line on the prefill's progress this often: 19 prompts of 122K take over 300 s, and a run its
# time limit stopped printed nothing of how far it got (2026-12-01, H200, 4e126fc).
PROGRESS_EVERY_S = 30.0


def sync(on_cuda: bool):
    if on_cuda:
        torch.cuda.synchronize()


def decode_tokens(batch: int, context: int, args) -> int:
    """Tokens a sequence is planned to generate (what max_model_len, the pinned pool and the
    largest batch are sized for; requests may take all that max_model_len leaves): the decode
    steps early sequences take while later ones still prefill (at most one per prefill step),
    then warm-up, timed and profiled steps.

    Decodes take their tokens of a step first, and a sequence that waits for its prefill peak's
    pages starts after the one before it compressed, so the slack is two steps a sequence: with
    one, 3 of 19 sequences of 122K ran out of tokens before the timed steps (2026-11-30, H200,
    73370e2; docs/benchmarks.md)."""
    per_step = MAX_BATCHED_TOKENS - batch
    prefill_steps = -(-batch * context // per_step) + 2 * batch + 8
    return prefill_steps + args.warmup + args.new_tokens + args.profile_steps + 1


def largest_batch(engine, context: int, args, cap: int) -> int | None:
    """The most sequences of this context (with this benchmark's max_tokens) both pools hold at
    once, at most `cap`; None if the engine cannot say."""
    blocks = engine.blocks
    if not hasattr(blocks, "max_concurrent_sequences"):
        return None

    def fits(batch: int) -> int:
        return blocks.max_concurrent_sequences(context,
                                               context + decode_tokens(batch, context, args))

    batch = min(cap, fits(1))
    while batch > 0 and batch > fits(batch):
        batch -= 1
    return batch


def run_batch(engine, batch: int, context: int, args, timed: bool = True) -> dict:
    on_cuda = args.device != "cpu"
    vocab = engine.model_config.vocab_size
    g = torch.Generator().manual_seed(batch)
    # Every token the context length leaves (the engine reserves no memory for max_tokens):
    # sequences that run out before the timed steps would shrink the measured batch. They did,
    # 3 of 19 at 122K, with the two-steps-a-sequence slack (2026-11-30, H200, 454de46).
    params = SamplingParams(temperature=0.0, ignore_eos=True,
                            max_tokens=engine.max_model_len - context)
    ids = [f"ctx{context}-b{batch}-{i}" for i in range(batch)]
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    sync(on_cuda)
    start = time.perf_counter()
    for request_id in ids:
        prompt = torch.randint(5, min(vocab, 1000), (context,), generator=g).tolist()
        engine.add_request(request_id, prompt, params)
    started = set()
    preempted = engine.stats().num_preemptions_total
    reported = start
    while len(started) < batch:
        started |= {o.request_id for o in engine.step() if o.outputs[0].token_ids}
        if time.perf_counter() - reported >= PROGRESS_EVERY_S and len(started) < batch:
            reported = time.perf_counter()
            print(prefill_progress(engine, context, batch, len(started), reported - start),
                  flush=True)
    sync(on_cuda)
    row = {"batch": batch, "context": context, "prefill_s": time.perf_counter() - start,
           "prefill_preemptions": engine.stats().num_preemptions_total - preempted}
    try:
        for _ in range(args.warmup):
            engine.step()
        if timed:
            row.update(timed_steps(engine, batch, args.new_tokens, on_cuda))
        if args.profile:
            row["profile"] = profile_steps(engine, args.profile_steps, on_cuda)
    finally:
        for request_id in ids:
            engine.abort_request(request_id)
    return row


def prefill_progress(engine, context: int, batch: int, started: int, seconds: float) -> str:
    stats = engine.stats()
    return (f"    prefill ctx {context} batch {batch}: {started} of {batch} sequences have their "
            f"first token after {seconds:.0f} s ({stats.num_running} running, "
            f"{stats.num_waiting} waiting, {stats.num_preemptions_total} preemptions so far)")


def timed_steps(engine, batch: int, steps: int, on_cuda: bool) -> dict:
    sync(on_cuda)
    before = engine.stats()
    start = time.perf_counter()
    for _ in range(steps):
        engine.step()
    sync(on_cuda)
    elapsed = time.perf_counter() - start
    after = engine.stats()
    tokens = after.generation_tokens_total - before.generation_tokens_total
    selected = after.shadowkv_chunks_selected_total - before.shadowkv_chunks_selected_total
    hits = after.shadowkv_chunk_hits_total - before.shadowkv_chunk_hits_total
    host_bytes = after.cpu_bytes_fetched_total - before.cpu_bytes_fetched_total
    return {"steps": steps, "tokens": tokens, "decode_s": elapsed, "decode_tok_s": tokens / elapsed,
            "step_ms": elapsed * 1e3 / steps, "hit_rate": hits / selected if selected else None,
            "fetched_chunks": selected - hits, "host_fetch_bytes": host_bytes,
            "batch_intact": tokens == batch * steps,
            "preemptions": after.num_preemptions_total - before.num_preemptions_total,
            "gpu_kv_pages_used": after.gpu_blocks_used,
            "peak_gpu_gib": torch.cuda.max_memory_allocated() / GIB if on_cuda else None}


