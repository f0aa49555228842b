"""Loads the model and runs one scheduled batch through it."""
import logging

import torch

from ..config import EngineConfig
from ..kv.batch import BatchAttention
from ..kv.storage import index_tensor
from ..model.config import TORCH_DTYPES, ModelConfig
from ..model.llama import LlamaForCausalLM
from ..model.loader import load_weights
from .scheduler import ScheduledBatch

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here")
    return device


def resolve_dtype(name: str, model_config: ModelConfig, device: torch.device) -> torch.dtype:
    if name != "auto":
        return TORCH_DTYPES[name]
    if device.type == "cpu":
        return torch.float32  # CPU half-precision matmuls are slow and imprecise
    return model_config.torch_dtype if model_config.torch_dtype != torch.float32 else torch.bfloat16


@torch.no_grad()
def randomize_weights(model: torch.nn.Module, seed: int) -> None:
    """Random weights of the checkpoint's shapes (`load_format="dummy"`): throughput does not
    depend on weight values, so benchmarks of real shapes need no download."""
    generator = torch.Generator(device=model.lm_head.weight.device).manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith("norm.weight"):
            param.fill_(1.0)
        elif name.endswith("bias"):
            param.zero_()
        else:
            param.normal_(0.0, 0.02, generator=generator)


class ModelRunner:
    def __init__(self, config: EngineConfig, model_config: ModelConfig, max_model_len: int):
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, model_config, self.device)
        # Built in place on the device and in the target dtype: an 8B model never exists as a
        # float32 copy in host memory.
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        try:
            with torch.device(self.device):
                model = LlamaForCausalLM(model_config, max_model_len)
        finally:
            torch.set_default_dtype(default_dtype)
        if config.load_format == "dummy":
            randomize_weights(model, config.seed)
        else:
            load_weights(model, config.model, model_config.tie_word_embeddings)
        self.model = model.eval()
        self.model_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())

    @torch.inference_mode()
    def run(self, batch: ScheduledBatch, sample_rows: list[int]) -> torch.Tensor:
        """Runs the batch; returns float32 logits (on the CPU) of the last scheduled token of
        each sequence listed in sample_rows (indices into batch.sequences)."""
        ids, positions, ends = [], [], []
        total = 0
        for seq, n in zip(batch.sequences, batch.num_tokens):
            ids.extend(seq.token_ids[seq.num_computed:seq.num_computed + n])
            positions.extend(range(seq.num_computed, seq.num_computed + n))
            total += n
            ends.append(total - 1)
        input_ids = index_tensor(ids, self.device)
        pos = index_tensor(positions, self.device)
        attention = BatchAttention([s.kv for s in batch.sequences], batch.num_tokens)
        hidden = self.model(input_ids, pos, attention)
        for seq, n in zip(batch.sequences, batch.num_tokens):
            seq.kv.end_step(n)
            seq.num_computed += n
        if not sample_rows:
            return torch.empty(0)
        rows = index_tensor([ends[i] for i in sample_rows], self.device)
        return self.model.compute_logits(hidden[rows]).cpu()
