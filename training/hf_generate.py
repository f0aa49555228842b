"""Greedy decoding with plain transformers: the full-attention reference for the eval runner.

It needs nothing of our engine, so the trained model's accuracy is measured independently of it,
and the engine's dense mode can be checked against the same numbers.
"""
import inspect

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from shadowkv_engine.eval.runner import Generate

# transformers renamed `past_key_values` to `cache` (argument and output) in 5.2x.
CACHE = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


def load(model_dir: str, device: str, dtype: torch.dtype):
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    return model.to(device).eval(), AutoTokenizer.from_pretrained(model_dir)


def greedy_generator(model, tokenizer, stop_ids: list[int]) -> Generate:
    device = next(model.parameters()).device
    stop = set(stop_ids)

    @torch.inference_mode()
    def generate(prompts: list[list[int]], max_new_tokens: int) -> list[str]:
        texts = []
        for prompt in prompts:  # one at a time: no padding, so nothing differs from a lone request
            out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True, logits_to_keep=1)
            generated: list[int] = []
            token = int(out.logits[0, -1].argmax())
            while token not in stop:
                generated.append(token)
                if len(generated) == max_new_tokens:
                    break
                out = model(input_ids=torch.tensor([[token]], device=device), use_cache=True,
                            **{CACHE: out[CACHE]})
                token = int(out.logits[0, -1].argmax())
            texts.append(tokenizer.decode(generated, skip_special_tokens=True))
        return texts

    return generate
