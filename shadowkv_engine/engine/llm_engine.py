"""The engine, driven by its caller: requests in, one scheduler step per `step()` call, outputs
out. With async_scheduling a step is launched before the previous step's tokens are read, so
`step()` returns the outputs of the step before the one it launched (engine/in_flight.py)."""
import itertools
import logging
import time

from ..config import EngineConfig
from ..errors import InvalidRequestError, PromptTooLongError, QueueFullError
from ..model.config import ModelConfig
from ..model.tokenizer import IncrementalDetokenizer, Tokenizer
from ..outputs import RequestMetrics, RequestOutput
from ..sample import Sampler, SampleRequest
from ..sampling_params import SamplingParams
from .block_manager import BlockManager
from .host_range import host_range
from .in_flight import InFlightStep
from .model_runner import ModelRunner
from .output_processor import OutputProcessor
from .scheduler import Scheduler
from .sequence import Sequence, SequenceStatus
from .stats import EngineStats

logger = logging.getLogger(__name__)


class Request:
    def __init__(self, request_id: str, prompt: str | None, prompt_token_ids: list[int],
                 sequences: list[Sequence], arrival_time: float):
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.sequences = sequences
        self.metrics = RequestMetrics(arrival_time=arrival_time)
        self.error: str | None = None  # set when processing the request failed in the engine

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.sequences)


def _shadowkv_summary(kv, recommended: list[str]) -> str:
    """What the start-up log says of the resolved ShadowKV settings, and which the model chose."""
    source = f"; {' and '.join(recommended)} recommended by the model" if recommended else ""
    return f" (rank {kv.rank}, {kv.landmark} landmarks, budget {kv.sparse_budget}{source})"


class LLMEngine:
    def __init__(self, config: EngineConfig):
        self.config = config
        self.model_config = ModelConfig.from_pretrained(config.model)
        attention = config.attention
        if config.attention == "shadowkv":
            recommended = sorted(config.shadowkv.unset_of(self.model_config.shadowkv_defaults))
            config.shadowkv = config.shadowkv.for_model(self.model_config.num_kv_heads,
                                                        self.model_config.head_dim,
                                                        self.model_config.shadowkv_defaults)
            attention += _shadowkv_summary(config.shadowkv, recommended)
        self.max_model_len = self._resolve_max_model_len()
        window = self.model_config.sliding_window
        if config.attention == "shadowkv" and window is not None and window < self.max_model_len:
            raise InvalidRequestError(
                f"the model attends within a sliding window of {window} tokens, which ShadowKV's "
                f"compressed store does not model; use attention='dense' or max_model_len <= "
                f"{window}", param="attention")
        self.tokenizer = Tokenizer.from_pretrained(config.model)
        self.eos_token_ids = set(self.tokenizer.eos_token_ids or self.model_config.eos_token_ids)
        self.output_processor = OutputProcessor(self.tokenizer, self.eos_token_ids,
                                                self.max_model_len)
        self.runner = ModelRunner(config, self.model_config, self.max_model_len)
        num_gpu, num_cpu = BlockManager.page_counts(
            config, self.model_config, self.runner.dtype, self.runner.device, self.max_model_len)
        self.blocks = BlockManager(config, self.model_config, self.runner.dtype,
                                   self.runner.device, num_gpu, num_cpu, self.max_model_len)
        self.runner.bind_kv(self.blocks)
        self.scheduler = Scheduler(config, self.blocks)
        self.sampler = Sampler(self.runner.device, config.seed)
        self.requests: dict[str, Request] = {}
        self._seq_ids = itertools.count()
        self._in_flight: InFlightStep | None = None  # launched, its tokens not yet read
        self._totals = EngineStats()
        logger.info("engine ready: %s on %s (%s), attention=%s; memory plan: %s", config.model,
                    self.runner.device, self.runner.dtype, attention,
                    self.blocks.memory_plan(self.max_model_len))

    def _resolve_max_model_len(self) -> int:
        limit = self.model_config.max_position_embeddings
        wanted = self.config.max_model_len or limit
        if wanted > limit:
            raise InvalidRequestError(
                f"max_model_len ({wanted}) exceeds the model's max_position_embeddings ({limit})",
                param="max_model_len")
        return wanted

    @property
    def model_name(self) -> str:
        return self.config.model_name

    # ---- requests --------------------------------------------------------------------------
    def add_request(self, request_id: str, prompt: str | list[int], params: SamplingParams,
                    arrival_time: float | None = None, queue_limit: int | None = None) -> None:
        """Validates and queues a request. queue_limit: refuse it (QueueFullError) when its
        sequences would make more than that many wait beyond the free batch slots (0: never
        queue); checked after validation, so bad input still gets its own error."""
        if request_id in self.requests:
            raise InvalidRequestError(f"request id {request_id!r} is already in use")
        text, token_ids = self._tokenize(prompt)
        vocab = self.model_config.vocab_size
        bad = [t for t in params.stop_token_ids if t >= vocab]
        if bad:
            raise InvalidRequestError(f"stop_token_ids must be below the vocabulary size "
                                      f"({vocab}); got {bad[:5]}", param="stop_token_ids")
        max_tokens = self._max_tokens(token_ids, params)
        arrival = arrival_time or time.time()
        sequences = [self._new_sequence(request_id, i, token_ids, params, max_tokens, arrival)
                     for i in range(params.n)]
        self.blocks.check_fits(sequences[0])
        if (queue_limit is not None
                and self.scheduler.num_queued_beyond_capacity(params.n) > queue_limit):
            raise QueueFullError(f"the request queue is full ({len(self.scheduler.waiting)} "
                                 "waiting); retry later")
        self.requests[request_id] = Request(request_id, text, token_ids, sequences, arrival)
        for seq in sequences:
            self.scheduler.add(seq)
        self._totals.prompt_tokens_total += len(token_ids) * params.n

    def _tokenize(self, prompt) -> tuple[str | None, list[int]]:
        if isinstance(prompt, str):
            token_ids = self.tokenizer.encode(prompt)
            text = prompt
        elif isinstance(prompt, (list, tuple)) and all(
                isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            token_ids, text = list(prompt), None
            vocab = self.model_config.vocab_size
            bad = [t for t in token_ids if not 0 <= t < vocab]
            if bad:
                raise InvalidRequestError(
                    f"prompt token ids must be in [0, {vocab}); got {bad[:5]}", param="prompt")
        else:
            raise InvalidRequestError("prompt must be a string or a list of token ids",
                                      param="prompt")
        if not token_ids:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        return text, token_ids

    def _max_tokens(self, token_ids: list[int], params: SamplingParams) -> int:
        prompt_len = len(token_ids)
        if params.max_tokens is None:
            if prompt_len >= self.max_model_len:
                raise PromptTooLongError(prompt_len, self.max_model_len)
            return self.max_model_len - prompt_len
        if prompt_len + params.max_tokens > self.max_model_len:
            error = PromptTooLongError(prompt_len + params.max_tokens, self.max_model_len)
            error.args = (
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"you requested {prompt_len + params.max_tokens} tokens ({prompt_len} in the "
                f"prompt, {params.max_tokens} in the completion). Please reduce the length of "
                "the prompt or the completion.",)
            raise error
        return params.max_tokens

    def _new_sequence(self, request_id, index, token_ids, params, max_tokens, arrival):
        detok = IncrementalDetokenizer(self.tokenizer, token_ids, params.skip_special_tokens)
        return Sequence(next(self._seq_ids), request_id, index, token_ids, params, max_tokens,
                        detok, arrival)

    def abort_request(self, request_id: str) -> RequestOutput | None:
        request = self.requests.pop(request_id, None)
        if request is None:
            return None
        for seq in request.sequences:
            if not seq.finished:
                self.scheduler.remove(seq)
                self.sampler.release(seq.seq_id)
                seq.status = SequenceStatus.FINISHED
                seq.finish_reason = "abort"
        return self.output_processor.output(request)

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    @property
    def num_unfinished_requests(self) -> int:
        return len(self.requests)

    # ---- the step ----------------------------------------------------------------------------
    def step(self) -> list[RequestOutput]:
        """Schedules and launches one step; returns the outputs of the step before it (with
        async_scheduling), or of this one. A step launches before the previous step's tokens
        are read, so the host's scheduling, metadata and launch overlap the GPU's work."""
        # The host:* ranges name the step's host phases in a profile (bench/step_profile.py).
        with host_range("schedule"):
            batch = self.scheduler.schedule()
        previous = self._take_in_flight()
        if not batch.empty:
            self._in_flight = self._launch(batch, previous)
        elif previous is None and self.scheduler.waiting and not self.scheduler.running:
            raise RuntimeError("scheduler deadlock: a waiting request fits no empty pool")
        outputs = self._complete(previous) if previous is not None else []
        if self._in_flight is not None and not self.config.async_scheduling:
            outputs += self._complete(self._take_in_flight())
        return outputs

    def _take_in_flight(self) -> InFlightStep | None:
        step, self._in_flight = self._in_flight, None
        return step

    def _launch(self, batch, previous: InFlightStep | None) -> InFlightStep:
        now = time.time()
        sampling = [i for i, (seq, n) in enumerate(zip(batch.sequences, batch.num_tokens))
                    if seq.num_computed + n == len(seq.token_ids) + seq.num_pending]
        logits = self.runner.run(batch, sampling,
                                 previous.previous_tokens() if previous is not None else None)
        seqs = [batch.sequences[i] for i in sampling]
        try:
            sampled = self.sampler.launch(logits, [self._sample_request(s) for s in seqs])
        except Exception:  # the batch's requests fail; the engine and the others go on
            logger.exception("sampling failed for requests %s",
                             sorted({s.request_id for s in seqs}))
            sampled = None
        for seq in seqs:
            seq.num_pending += 1
        return InFlightStep(batch, seqs, sampled, now)

    def _complete(self, step: InFlightStep) -> list[RequestOutput]:
        """Reads a launched step's tokens (waiting for its sampling only) and processes them."""
        results = [None] * len(step.sequences)
        if step.sampled is not None:
            try:
                with host_range("sample (waits for the GPU)"):
                    results = step.sampled.results()
            except Exception:
                logger.exception("reading the sampled tokens failed for requests %s",
                                 sorted({s.request_id for s in step.sequences}))
        with host_range("outputs"):
            return self._process_outputs(step.batch, step.sequences, results, step.scheduled_at)

    def _process_outputs(self, batch, seqs, results, now) -> list[RequestOutput]:
        touched: dict[str, Request] = {}
        for seq in batch.sequences:
            request = self.requests.get(seq.request_id)
            if request is not None and request.metrics.first_scheduled_time is None:
                request.metrics.first_scheduled_time = now
        for seq, result in zip(seqs, results):
            seq.num_pending -= 1
            request = self.requests.get(seq.request_id)
            # Aborted, or finished (a stop, or EOS) by the token before this one, which arrived
            # after this step was launched: the extra token is dropped.
            if request is None or seq.finished:
                continue
            touched[request.request_id] = request
            if request.error is not None:
                continue
            if result is None:
                self._fail(request)
                continue
            try:
                self._totals.generation_tokens_total += 1
                finish = self.output_processor.append(seq, result)
                if finish is not None:
                    self._finish(seq, finish.reason, finish.stop_reason)
            except Exception:  # one request's output processing must not stop the engine
                logger.exception("request %s failed while processing its output",
                                 request.request_id)
                self._fail(request)
        done = time.time()
        outputs = []
        for request in touched.values():
            metrics = request.metrics
            metrics.first_token_time = metrics.first_token_time or done
            metrics.last_token_time = done
            if request.finished:
                metrics.finished_time = done
                del self.requests[request.request_id]
                self._totals.requests_finished_total += 1
            outputs.append(self.output_processor.output(request))
        return outputs

    def _sample_request(self, seq: Sequence) -> SampleRequest:
        params = seq.params
        blocked = []
        if len(seq.output_token_ids) + seq.num_pending < params.min_tokens:
            blocked = list(params.stop_token_ids) + ([] if params.ignore_eos
                                                     else sorted(self.eos_token_ids))
        return SampleRequest(seq.seq_id, params, seq.prompt_token_ids, seq.output_token_ids,
                             params.choice_seed(seq.index), blocked, seq.num_pending)

    def _finish(self, seq: Sequence, reason: str, stop_reason) -> None:
        seq.finish_reason, seq.stop_reason = reason, stop_reason
        seq.status = SequenceStatus.FINISHED
        self.scheduler.remove(seq)
        self.sampler.release(seq.seq_id)

    def _fail(self, request: Request) -> None:
        request.error = "the engine failed while producing this request's next token"
        for seq in request.sequences:
            if not seq.finished:
                self._finish(seq, "error", None)

    # ---- statistics ------------------------------------------------------------------------
    def stats(self) -> EngineStats:
        totals = self._totals
        selected, hits, fetched = self.blocks.shadowkv_counters(self.scheduler.running)
        return EngineStats(
            num_running=len(self.scheduler.running),
            num_waiting=len(self.scheduler.waiting),
            num_preemptions_total=self.scheduler.num_preemptions,
            prompt_tokens_total=totals.prompt_tokens_total,
            generation_tokens_total=totals.generation_tokens_total,
            requests_finished_total=totals.requests_finished_total,
            gpu_blocks_total=self.blocks.gpu_pool.num_pages,
            gpu_blocks_used=self.blocks.gpu_pool.num_used,
            cpu_blocks_total=self.blocks.value_pool.host.num_pages,
            cpu_blocks_used=self.blocks.value_pool.host.num_used,
            gpu_value_blocks_total=self.blocks.value_pool.device.num_pages,
            gpu_value_blocks_used=self.blocks.value_pool.device.num_used,
            shadowkv_chunks_selected_total=selected,
            shadowkv_chunk_hits_total=hits,
            cpu_bytes_fetched_total=fetched,
        )
