"""The batched sampler: every row of a step's logits in a few tensor operations on their device.

Greedy rows take the argmax. Random rows use the exponential race: argmax(p / E) with
E ~ Exponential(1) i.i.d. picks token i with probability p_i / sum(p), so truncated
distributions need no renormalization and no multinomial. Each seeded sequence draws its noise
from its own generator, so its tokens do not depend on the rest of the batch; all unseeded rows
share one draw from the engine's generator.
"""
import torch

from .metadata import SamplingMetadata, build_metadata
from .penalties import PenaltyCache
from .request import SampleRequest, SampleResult
from .truncation import mask_min_p, mask_top_k_top_p


class Sampler:
    def __init__(self, device: torch.device, seed: int):
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.seeded_generators: dict[int, torch.Generator] = {}
        self.penalties = PenaltyCache(self.device)

    def sample(self, logits: torch.Tensor, requests: list[SampleRequest]) -> list[SampleResult]:
        """logits: float32 [B, V] on `device`, row i for requests[i]. Waits for the results."""
        if not requests:
            return []
        return self.launch(logits, requests).results()

    def launch(self, logits: torch.Tensor, requests: list[SampleRequest]) -> "SampledBatch":
        """Queues the sampling of every row on the device and returns without waiting for it:
        the tokens stay on the device for the next step, their host copy is on its way."""
        meta = build_metadata(requests, logits.shape[-1], logits.device)
        processed = logits
        if meta.penalty_rows or meta.blocked is not None:
            processed = logits.clone()
            if meta.penalty_rows:
                self.penalties.apply(processed, meta.penalty_rows, requests)
            if meta.blocked is not None:
                processed[meta.blocked] = float("-inf")
            # Defensive: a NaN never wins, an overflowed logit stays the largest finite one.
            processed = processed.nan_to_num(nan=float("-inf"),
                                             posinf=torch.finfo(torch.float32).max)
        tokens = processed.argmax(dim=-1)
        if not meta.all_greedy:
            tokens[meta.random_rows] = self._sample_random(processed[meta.random_rows], meta)
        if meta.penalty_rows:
            self.penalties.record(meta.penalty_rows, tokens, requests)
        return SampledBatch(tokens, self._pack(logits, tokens, meta), meta)

    def release(self, key: int) -> None:
        """The sequence finished, was aborted or preempted: drop its generator and penalty state."""
        self.seeded_generators.pop(key, None)
        self.penalties.release(key)

    def _sample_random(self, logits: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
        logits = mask_top_k_top_p(logits / meta.temperature, meta.top_k, meta.max_top_k,
                                  meta.top_p)
        probs = mask_min_p(logits.softmax(dim=-1), meta.min_p)
        noise = torch.empty_like(probs)
        if meta.unseeded is not None:
            if len(meta.unseeded) == len(probs):
                noise.exponential_(generator=self.generator)
            else:
                draw = torch.empty(len(meta.unseeded), probs.shape[-1], device=probs.device)
                noise[meta.unseeded] = draw.exponential_(generator=self.generator)
        for position, key, seed in meta.seeded:
            noise[position].exponential_(generator=self._seeded_generator(key, seed))
        # exponential_ may return 0: p / 0 is inf for an allowed token and nan for a dropped one
        noise.clamp_(min=torch.finfo(noise.dtype).tiny)
        return probs.div_(noise).argmax(dim=-1)

    def _seeded_generator(self, key: int, seed: int) -> torch.Generator:
        generator = self.seeded_generators.get(key)
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
            self.seeded_generators[key] = generator
        return generator

    @staticmethod
    def _pack(logits: torch.Tensor, tokens: torch.Tensor, meta: SamplingMetadata) -> torch.Tensor:
        """Everything the host needs in one float64 tensor (token ids < 2**53 are exact in it),
        so a step costs a single device-to-host transfer."""
        chosen = tokens.unsqueeze(-1)
        logprobs = logits.gather(-1, chosen).squeeze(-1) - logits.logsumexp(dim=-1)
        parts = [tokens, logprobs]
        rows = meta.logprob_index
        if rows is not None:
            # from one log_softmax, so the sampled token's rank and value agree with the top list
            row_logprobs = logits[rows].log_softmax(dim=-1)
            sampled = row_logprobs.gather(-1, chosen[rows])
            logprobs[rows] = sampled.squeeze(-1)
            parts.append((row_logprobs > sampled).sum(dim=-1) + 1)
            if meta.max_top_logprobs:
                values, ids = row_logprobs.topk(meta.max_top_logprobs, dim=-1)
                parts += [ids.flatten(), values.flatten()]
        return torch.cat([part.double() for part in parts])


class SampledBatch:
    """One step's sampled tokens: on the device (`tokens`, which the next step's decode rows
    read as their inputs) and on their way to the host, without blocking the caller."""

    def __init__(self, tokens: torch.Tensor, packed: torch.Tensor, meta: SamplingMetadata):
        self.tokens = tokens
        self.meta = meta
        self._ready = None
        if packed.is_cuda:
            # Pinned, so the copy is truly asynchronous; the event marks its end.
            self._host = torch.empty(packed.shape, dtype=packed.dtype, pin_memory=True)
            self._host.copy_(packed, non_blocking=True)
            self._ready = torch.cuda.Event()
            self._ready.record()
        else:
            self._host = packed

    def results(self) -> list[SampleResult]:
        """Waits for this step's copy only (later work queued on the device runs on)."""
        if self._ready is not None:
            self._ready.synchronize()
        host = self._host.tolist()
        meta = self.meta
        batch, num, width = len(self.tokens), len(meta.logprob_rows), meta.max_top_logprobs
        token_ids, sampled_logprobs, rest = host[:batch], host[batch:2 * batch], host[2 * batch:]
        ranks, top = [1] * batch, [[] for _ in range(batch)]
        for i, (row, n) in enumerate(zip(meta.logprob_rows, meta.num_top_logprobs)):
            ranks[row] = int(rest[i])
            ids = rest[num + i * width:num + i * width + n]
            values = rest[num + (num + i) * width:num + (num + i) * width + n]
            top[row] = [(int(t), v) for t, v in zip(ids, values)]
        return [SampleResult(int(token), logprob, alternatives, rank) for token, logprob,
                alternatives, rank in zip(token_ids, sampled_logprobs, top, ranks)]
