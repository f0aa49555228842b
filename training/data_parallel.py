"""Data parallelism for the training run: one process per GPU, started by torchrun.

    torchrun --nproc-per-node 2 -m training.train_long_context --out DIR    # 2 GPUs, one host

Every rank builds the same model from the same seed and trains on its own share of the batch
stream (batch index i goes to rank i % world; batches.py). After each backward pass the
gradients are averaged across ranks in one flat all-reduce, so the optimizer steps stay
identical and the weights never drift apart. The decisions that depend on the clock or on
accuracy (the learning rate's progress, the curriculum's length, stopping) are taken on rank 0
and broadcast, so all ranks take the same steps. Rank 0 alone logs, saves, exports and
evaluates. Without torchrun (WORLD_SIZE unset) it is one process and none of this costs anything.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def start(device: str) -> tuple[Ranks, str]:
    """Joins the process group when launched by torchrun; (ranks, this process's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Ranks(rank, world), device


def stop() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_text(ranks: Ranks, text: str | None) -> str:
    """Rank 0's text on every rank (e.g. the tokenizer, trained once)."""
    if not ranks.parallel:
        return text
    holder = [text]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def same_weights(ranks: Ranks, model: torch.nn.Module) -> None:
    """Rank 0's parameters everywhere (they are built from one seed; this makes sure)."""
    if ranks.parallel:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def check_same_weights(ranks: Ranks, model: torch.nn.Module) -> None:
    """Raises if any rank's weights differ from the others' (checksums compared across ranks)."""
    if not ranks.parallel:
        return
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()])
    low, high = sums.clone(), sums.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise RuntimeError("data-parallel ranks ended with different weights")


def average_gradients(ranks: Ranks, parameters: list[torch.nn.Parameter]) -> None:
    """Mean of every rank's gradients, in one all-reduce of a flat buffer."""
    if not ranks.parallel:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ranks.world
    at = 0
    for g in grads:
        g.copy_(flat[at:at + g.numel()].view_as(g))
        at += g.numel()


def summed(ranks: Ranks, tensor: torch.Tensor) -> torch.Tensor:
    """The tensor summed over ranks (in place)."""
    if ranks.parallel:
        dist.all_reduce(tensor)
    return tensor


def rank0_values(ranks: Ranks, values: list[float], device) -> list[float]:
    """Rank 0's values on every rank."""
    if not ranks.parallel:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()
