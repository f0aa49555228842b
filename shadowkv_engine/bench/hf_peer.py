"""Hugging Face transformers as a peer: the same random-weight shape, batch and context.

Decode tokens/s = B*N / (time of generate(N+1 new tokens) - time of generate(1 new token)): both
calls prefill the same prompts, so the difference is N decode steps of the whole batch.
"""
import gc
import time
from pathlib import Path

import torch


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_model(path: Path, device: str, dtype: torch.dtype):
    """Random weights of the checkpoint's shape, made directly on the device in `dtype`."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(path)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = transformers.AutoModelForCausalLM.from_config(config,
                                                                  attn_implementation="sdpa")
    finally:
        torch.set_default_dtype(previous)
    return model.to(dtype).eval()


def _generate_s(model, input_ids: torch.Tensor, new_tokens: int) -> float:
    _sync(input_ids.device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, pad_token_id=0)
    _sync(input_ids.device)
    if out.shape[1] != input_ids.shape[1] + new_tokens:
        raise RuntimeError(f"transformers generated {out.shape[1] - input_ids.shape[1]} tokens, "
                           f"not {new_tokens}")
    return time.perf_counter() - start


def decode_tok_s(path: Path, batch: int, context: int, new_tokens: int, device: str,
                 dtype: torch.dtype, vocab: int) -> dict:
    """{'decode_tok_s', 'prefill_s'} or {'skipped': reason} when it runs out of memory."""
    model = None
    try:
        model = load_model(path, device, dtype)
        g = torch.Generator().manual_seed(batch)
        ids = torch.randint(5, min(vocab, 1000), (batch, context), generator=g).to(device)
        _generate_s(model, ids[:, :16], 2)  # warm-up: kernels, allocator
        prefill = _generate_s(model, ids, 1)
        full = _generate_s(model, ids, new_tokens + 1)
        if full <= prefill:
            return {"skipped": f"generate({new_tokens + 1}) took {full:.3f} s, no longer than "
                               f"generate(1) ({prefill:.3f} s): too few new tokens to time"}
        return {"decode_tok_s": batch * new_tokens / (full - prefill), "prefill_s": prefill}
    except torch.OutOfMemoryError as error:
        return {"skipped": f"out of memory ({str(error).splitlines()[0][:120]})"}
    finally:
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
