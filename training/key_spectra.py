"""Singular value spectra of a checkpoint's pre-RoPE and post-RoPE keys, per layer.

ShadowKV keeps only a rank-r SVD of each layer's pre-RoPE keys ([tokens, kv_heads * head_dim]);
its paper shows Llama's pre-RoPE keys are far lower-rank than post-RoPE ones and uses r = 160 of
1024 dimensions. This measures the same on a long eval prompt: the rank holding 90% / 99% of the
energy (sum of squared singular values) and the relative error left at the paper's rank ratio.

    python -m training.key_spectra --model shadowkv_engine/assets/default_model --length 8192
"""
import argparse
import json

import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from shadowkv_engine.eval.tasks import EVAL_SEED_OFFSET, make_sample

PAPER_RANK_RATIO = 160 / 1024  # Llama-3-8B: rank 160 over 8 KV heads x 128


@torch.inference_mode()
def layer_keys(model, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(pre-RoPE, post-RoPE) keys of each layer, float32 [tokens, kv_heads * head_dim]."""
    captured = []
    hooks = [layer.self_attn.k_proj.register_forward_hook(lambda m, i, out: captured.append(out[0].float()))
             for layer in model.model.layers]
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    try:
        model.model(input_ids=input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    head_dim = model.config.head_dim
    positions = torch.arange(len(ids), device=device)[None]
    cos, sin = model.model.rotary_emb(captured[0], positions)
    keys = []
    for pre in captured:
        heads = pre.view(len(ids), -1, head_dim).transpose(0, 1)[None]  # [1, kv, T, d]
        post, _ = apply_rotary_pos_emb(heads, heads, cos.float(), sin.float())
        keys.append((pre, post[0].transpose(0, 1).reshape(len(ids), -1)))
    return keys


def spectrum_summary(matrix: torch.Tensor, ratio: float = PAPER_RANK_RATIO) -> dict:
    singular = torch.linalg.svdvals(matrix.double())
    energy = torch.cumsum(singular**2, 0) / (singular**2).sum()
    rank = max(1, round(ratio * matrix.shape[1]))
    return {
        "dim": matrix.shape[1],
        "rank_90": int(torch.searchsorted(energy, 0.90)) + 1,
        "rank_99": int(torch.searchsorted(energy, 0.99)) + 1,
        "ratio_rank": rank,
        "rel_error_at_ratio_rank": float((1 - energy[rank - 1]).clamp(min=0).sqrt()),
        "singular_values": [round(float(s), 4) for s in singular],
    }


def measure(model, tokenizer, tasks: list[str], length: int) -> dict:
    results = {}
    for task in tasks:
        sample = make_sample(task, tokenizer, length, EVAL_SEED_OFFSET)
        layers = layer_keys(model, sample.prompt_token_ids)
        results[task] = {"tokens": sample.num_prompt_tokens, "layers": [
            {"pre_rope": spectrum_summary(pre), "post_rope": spectrum_summary(post)} for pre, post in layers]}
    return results


def format_spectra(results: dict) -> str:
    lines = ["context (tokens) | layer | pre-RoPE rank 90% / 99% | post-RoPE rank 90% / 99% | "
             "rel. error at paper ratio (pre / post)"]
    for task, entry in results.items():
        for i, layer in enumerate(entry["layers"]):
            pre, post = layer["pre_rope"], layer["post_rope"]
            lines.append(f"{task} ({entry['tokens']}) | {i} | {pre['rank_90']} / {pre['rank_99']} of {pre['dim']} | "
                         f"{post['rank_90']} / {post['rank_99']} | rank {pre['ratio_rank']}: "
                         f"{pre['rel_error_at_ratio_rank']:.3f} / {post['rel_error_at_ratio_rank']:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="shadowkv_engine/assets/default_model")
    parser.add_argument("--tasks", default="niah_single_prose,passkey")
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", help="JSON with every singular value")
    args = parser.parse_args()
    from .hf_generate import load

    model, tokenizer = load(args.model, args.device, torch.float32)
    results = measure(model, tokenizer, args.tasks.split(","), args.length)
    print(format_spectra(results))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
