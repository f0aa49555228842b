"""How much of the true attention each chunk-selection rule keeps, layer by layer and KV head by
KV head, at the answer steps of real prompts (docs/accuracy.md, the ShadowKV sections).

    python -m shadowkv_engine.eval.compare dense.json shadowkv.json --lost lost.json
    python benchmarks/selection_coverage.py lost.json --length 32k --split heldout

For each sample: the prompt and the answer a perfect model writes, one forward pass with
transformers (float32, CPU) that records the queries and keys; then, per layer, KV head and
answer step, the share of the exact attention (softmax over every key, averaged over the GQA
group's query heads) that lands on tokens ShadowKV attends: the exact ones (the outlier chunks,
the local window and tail) plus the chunks each rule selects within the budget. Rules:
  mean      the ShadowKV paper's landmark, the mean post-RoPE key of the chunk (the default)
  minmax    Quest's per-channel bound (--shadowkv-landmark minmax)
  best-key  each chunk's best q.k over its exact keys (an oracle: what a token-level score sees)
  best-rank each chunk's best q.k over its rank-r keys (pre-RoPE keys projected on the top-r
            eigenvectors of the prompt's key Gram matrix, then RoPE), as ShadowKV rebuilds them
Each rule scores like the engine (the landmark rules through its own op): outliers left out, a
softmax over the chunks per query head, the maximum over the group. About 40 s a 32K sample on 2 cores.
"""
import argparse
import json

import torch
from transformers import AutoTokenizer, LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from shadowkv_engine.config import ShadowKVConfig
from shadowkv_engine.default_model import DEFAULT_MODEL_DIR
from shadowkv_engine.eval.tasks import make_sample, parse_length
from shadowkv_engine.kv.compression import outlier_chunk_ids
from shadowkv_engine.kv.landmarks import chunk_landmarks, landmark_queries
from shadowkv_engine.model.config import ModelConfig
from shadowkv_engine.ops.chunk_scores import score_chunks, scores_from_logits

RULES = ("mean", "minmax", "best-key", "best-rank")


def rule_scores(q: torch.Tensor, keys: torch.Tensor, low_rank: torch.Tensor, chunk: int,
                excluded: torch.Tensor) -> dict:
    """q: [H, G, D]; keys, low_rank: [H, n*chunk, D] post-RoPE keys of the compressed chunks;
    excluded: [H, X] the outlier chunks. The landmark rules go through the engine's own
    landmarks and scoring op."""
    heads, group, dim = q.shape
    chunks = keys.view(heads, -1, chunk, dim)
    flat_q = q.reshape(heads * group, dim)
    scores = {kind: score_chunks(landmark_queries(flat_q, rows), chunk_landmarks(chunks, rows),
                                 excluded)
              for kind, rows in (("mean", 1), ("minmax", 2))}
    per_token = torch.einsum("hgd,hsd->hgs", q, keys).view(heads, group, -1, chunk)
    per_rank = torch.einsum("hgd,hsd->hgs", q, low_rank).view(heads, group, -1, chunk)
    scores["best-key"] = scores_from_logits(per_token.amax(-1) / dim ** 0.5, excluded)
    scores["best-rank"] = scores_from_logits(per_rank.amax(-1) / dim ** 0.5, excluded)
    return scores


class Recorder:
    """Pre-RoPE q and k of every layer, from forward hooks on the projections."""

    def __init__(self, model):
        self.q, self.k = {}, {}
        for i, layer in enumerate(model.model.layers):
            layer.self_attn.q_proj.register_forward_hook(self._hook(self.q, i))
            layer.self_attn.k_proj.register_forward_hook(self._hook(self.k, i))

    @staticmethod
    def _hook(store, index):
        def hook(module, inputs, output):
            store[index] = output[0]
        return hook


@torch.no_grad()
def coverage(model, recorder, tokenizer, task, seed, args, cfg) -> dict:
    """(rule, layer, head) -> kept attention share at each answer step."""
    conf = model.config
    heads, q_heads, dim = conf.num_key_value_heads, conf.num_attention_heads, conf.head_dim
    sample = make_sample(task, tokenizer, args.length, seed, args.split, "free")
    answer = tokenizer.encode(sample.answer_text, add_special_tokens=False)
    ids = sample.prompt_token_ids + answer
    prompt = len(sample.prompt_token_ids)
    model(input_ids=torch.tensor([ids]))
    c = cfg.chunk_size
    n = (prompt - cfg.local_tokens) // c  # compressed chunks; the rest is the exact tail
    positions = torch.arange(len(ids))[None]
    out = {}
    for layer in range(conf.num_hidden_layers):
        q = recorder.q[layer].view(len(ids), q_heads, dim).transpose(0, 1)[None]
        k = recorder.k[layer].view(len(ids), heads, dim).transpose(0, 1)[None]
        cos, sin = model.model.rotary_emb(k, positions)
        q_post, k_post = (x[0] for x in apply_rotary_pos_emb(q, k, cos, sin))
        k_pre = k[0, :, :prompt].transpose(0, 1).reshape(prompt, heads * dim)
        basis = torch.linalg.eigh(k_pre.T @ k_pre).eigenvectors[:, -cfg.rank:]
        low = (k_pre @ basis @ basis.T).view(prompt, heads, dim).transpose(0, 1)[None]
        low = apply_rotary_pos_emb(q[:, :, :prompt], low, cos[:, :prompt], sin[:, :prompt])[1][0]
        compressed = k_post[:, :n * c]
        outliers = outlier_chunk_ids(compressed, c, min(cfg.outlier_chunks, n))
        for step in range(prompt - 1, len(ids) - 1):
            qs = q_post[:, step].view(heads, q_heads // heads, dim)
            logits = torch.einsum("hgd,hsd->hgs", qs, k_post[:, :step + 1]) / dim ** 0.5
            prob = torch.softmax(logits, -1).mean(1)  # [H, keys]
            mass = prob[:, :n * c].view(heads, n, c).sum(-1)
            exact = prob[:, n * c:].sum(-1) + mass.gather(1, outliers).sum(-1)
            for rule, scores in rule_scores(qs, compressed, low[:, :n * c], c, outliers).items():
                picked = scores.topk(min(cfg.budget_chunks, n - outliers.shape[1]), -1).indices
                kept = exact + mass.gather(1, picked).sum(-1)
                for h in range(heads):
                    out.setdefault((rule, layer, h), []).append(float(kept[h]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", help="JSON file: [[task, seed], ...]")
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--length", type=parse_length, default=32768)
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--rank", type=int, default=None, help="default: the engine's")
    args = parser.parse_args()
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                             attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    conf = model.config
    # The rank the engine runs: --rank, else the checkpoint's recommendation (read and checked
    # as the engine reads it), else the paper's.
    cfg = ShadowKVConfig(rank=args.rank, chunk_size=args.chunk_size).for_model(
        conf.num_key_value_heads, conf.head_dim,
        ModelConfig.from_pretrained(args.model).shadowkv_defaults)
    recorder = Recorder(model)
    with open(args.samples) as f:
        samples = [(task, int(seed)) for task, seed in json.load(f)]
    totals: dict = {}
    for task, seed in samples:
        result = coverage(model, recorder, tokenizer, task, seed, args, cfg)
        worst = {rule: min(min(v) for (r, _, _), v in result.items() if r == rule) for rule in RULES}
        print(task, seed, "worst step:", " ".join(f"{r} {w:.2f}" for r, w in worst.items()),
              flush=True)
        for key, values in result.items():
            totals.setdefault(key, []).extend(values)
    layers, heads = conf.num_hidden_layers, conf.num_key_value_heads
    columns = [f"L{layer}H{h}" for layer in range(layers) for h in range(heads)]
    print(f"\nattention kept, mean over answer steps (chunk {cfg.chunk_size}, rank {cfg.rank}, "
          f"budget {cfg.sparse_budget}, {cfg.outlier_chunks} outliers, {len(samples)} samples)")
    print(f"{'rule':<10} " + " ".join(f"{c:>6}" for c in columns))
    for rule in RULES:
        row = [sum(totals[(rule, layer, h)]) / len(totals[(rule, layer, h)])
               for layer in range(layers) for h in range(heads)]
        print(f"{rule:<10} " + " ".join(f"{x:6.3f}" for x in row))


if __name__ == "__main__":
    main()
