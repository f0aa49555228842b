"""The Llama-family decoder (Llama 2/3/3.1, Mistral, Qwen2, Yi) over a flat batch of tokens.

Tokens of all scheduled sequences are concatenated ([T] ids, [T] positions); everything but
attention is batched over them. Attention is delegated to a `StepAttention` object
(kv/step_attention.py) that holds the step's metadata, so this file knows nothing of caches.

A decode step is a few thousand small kernels, and on the GPU each costs a few microseconds of
launch gap even inside a CUDA graph, so the layer is written for few kernels: q, k and v come
from one GEMM (`qkv_proj`), gate and up from one (`gate_up_proj`), and the elementwise work is
fused (ops/model_fusions.py): RoPE of q and k in one kernel, SiLU-and-multiply in one, and each
residual add inside the norm after it. For that the layers pass (hidden, residual) along, as
vLLM does: a layer's output is its MLP's, and the next norm adds it to the residual stream.
Module names otherwise mirror Hugging Face's, and `checkpoint_tensors` maps the checkpoint's
separate q/k/v and gate/up weights onto the fused ones.
"""
import contextlib
from typing import Protocol

import torch
from torch import nn

from ..ops.model_fusions import fused_add_rms_norm, rms_norm, rope_qk, silu_and_mul
from .config import ModelConfig
from .rope import RotaryEmbedding, inverse_frequencies, signed_sin

# Fused projections and the checkpoint weights stacked in them, in order along the output dim.
FUSED_PARTS = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


class StepAttention(Protocol):
    def attend(self, layer: int, q: torch.Tensor, k_pre: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """q: [T, Hq, D] post-RoPE; k_pre/k: [T, Hkv, D] before/after RoPE; v: [T, Hkv, D].
        Stores the new keys/values in the sequences' caches and returns [T, Hq, D]."""


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        """Without a residual: the norm of x. With one: residual += x, then x = the norm of that
        sum, both in place; returns (x, residual)."""
        if residual is None:
            return rms_norm(x, self.weight, self.eps)
        return fused_add_rms_norm(x, residual, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.num_heads, self.num_kv_heads = config.num_heads, config.num_kv_heads
        self.head_dim = config.head_dim
        bias = config.attention_bias
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, q_size + 2 * kv_size, bias=bias)
        self.qkv_proj.part_sizes = (q_size, kv_size, kv_size)
        # Qwen2 has biases on q/k/v only; Llama's attention_bias also covers o_proj.
        o_bias = bias and config.architecture != "Qwen2ForCausalLM"
        self.o_proj = nn.Linear(q_size, config.hidden_size, bias=o_bias)

    def forward(self, x, cos, sin, attention: StepAttention):
        t, hq, hk = x.shape[0], self.num_heads, self.num_kv_heads
        qkv = self.qkv_proj(x).view(t, hq + 2 * hk, self.head_dim)
        k_pre, v = qkv[:, hq:hq + hk], qkv[:, hq + hk:]
        q, k = rope_qk(qkv[:, :hq + hk], cos, sin, hq)  # q contiguous, as attention takes it
        out = attention.attend(self.layer, q, k_pre, k, v)
        return self.o_proj(out.reshape(t, hq * self.head_dim))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        h, i, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_up_proj = nn.Linear(h, 2 * i, bias=bias)
        self.gate_up_proj.part_sizes = (i, i)
        self.down_proj = nn.Linear(i, h, bias=bias)

    def forward(self, x):
        return self.down_proj(silu_and_mul(self.gate_up_proj(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.self_attn = Attention(config, layer)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, hidden, residual, cos, sin, attention):
        """hidden: the previous layer's MLP output, or the embeddings with residual None (the
        first layer). Returns (this layer's MLP output, the residual stream before it): the
        residual stream after the layer is their sum, which the next norm forms."""
        if residual is None:
            hidden, residual = self.input_layernorm(hidden), hidden
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(hidden, cos, sin, attention)
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual


class DecoderModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    def __init__(self, config: ModelConfig, max_model_len: int):
        super().__init__()
        self.config = config
        self.model = DecoderModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.rotary = RotaryEmbedding(inverse_frequencies(
            config.head_dim, config.rope_theta, config.rope_scaling, max_model_len,
            config.max_position_embeddings))

    def to(self, *args, **kwargs):
        module = super().to(*args, **kwargs)
        self.rotary.to(self.lm_head.weight.device)
        return module

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                attention: StepAttention) -> torch.Tensor:
        """Returns the final hidden states [T, hidden] (normed); logits via `compute_logits`."""
        return self.forward_interleaved([(input_ids, positions, attention)], [None])[0]

    @torch.inference_mode()
    def forward_interleaved(self, batches: list[tuple[torch.Tensor, torch.Tensor, StepAttention]],
                            streams: list[torch.cuda.Stream | None],
                            logits: bool = False) -> list[torch.Tensor]:
        """`forward` of several micro-batches (input_ids, positions, attention), layer by layer
        in turn, each on its stream (None: the current one); with `logits`, their logits. The
        streams overlap one batch's waits with the other's work (engine/two_batch.py); the caller
        orders them around it."""
        states = []  # per micro-batch: [hidden, residual, cos, sin]
        for (input_ids, positions, _), stream in zip(batches, streams):
            with _on_stream(stream):
                x = self.model.embed_tokens(input_ids)
                cos, sin = self.rotary.cos_sin(positions, x.dtype)
                states.append([x, None, cos, signed_sin(sin)])
        for layer in self.model.layers:
            for state, (_, _, attention), stream in zip(states, batches, streams):
                with _on_stream(stream):
                    state[0], state[1] = layer(*state, attention)
        hidden = []
        for state, stream in zip(states, streams):
            with _on_stream(stream):
                x, residual = state[0], state[1]  # residual None: a model of no layers
                x = self.model.norm(x) if residual is None else self.model.norm(x, residual)[0]
                hidden.append(self.compute_logits(x) if logits else x)
        return hidden

    @torch.inference_mode()
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden).float()

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """Hugging Face checkpoint name -> the tensor its weights load into: a parameter, or the
        slice of a fused projection that holds it."""
        targets = {}
        for name, param in self.named_parameters(remove_duplicate=False):
            module, _, kind = name.rpartition(".")
            parent, _, leaf = module.rpartition(".")
            if leaf not in FUSED_PARTS:
                targets[name] = param
                continue
            sizes = self.get_submodule(module).part_sizes
            for part, piece in zip(FUSED_PARTS[leaf], param.split(sizes, dim=0)):
                targets[f"{parent}.{part}.{kind}"] = piece
        return targets


def _on_stream(stream: torch.cuda.Stream | None):
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
