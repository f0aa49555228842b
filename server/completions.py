"""`POST /v1/completions`: the legacy text completion endpoint, whole or streamed.

A batch of prompts runs as one engine request per prompt; as in OpenAI's API, choice j of
prompt i has index i * n + j, and usage is summed over the batch.
"""
import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from shadowkv_engine.outputs import Logprob, RequestOutput

from .errors import ERROR_RESPONSES
from .inflight import merge, new_request_id
from .limits import check_context_length, check_prompt_chars
from .protocol import CompletionRequest
from .responses import DeltaTracker, finite, now, usage
from .streaming import EventStreamResponse, cancel_on_disconnect, client_gone, stream_events

router = APIRouter()


def legacy_logprobs(token_ids: list[int], entries: list[dict[int, Logprob]],
                    text_offset: int) -> tuple[dict, int]:
    """OpenAI's completions shape: parallel lists, top alternatives as {token text: logprob}.
    As in vLLM, each position's alternatives include the sampled token. Also returns the text
    offset after the last token, where the next chunk's offsets go on."""
    tokens, token_logprobs, top_logprobs, offsets = [], [], [], []
    for token_id, entry in zip(token_ids, entries):
        sampled = entry[token_id]
        tokens.append(sampled.decoded_token)
        token_logprobs.append(finite(sampled.logprob))
        top = {}
        for lp in sorted(entry.values(), key=lambda lp: lp.rank):
            top.setdefault(lp.decoded_token, finite(lp.logprob))  # tokens may decode alike
        top_logprobs.append(top)
        offsets.append(text_offset)
        text_offset += len(sampled.decoded_token)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs,
            "text_offset": offsets}, text_offset


async def tokenize_prompts(engine, prompts: list[str | list[int]]) -> list[list[int]]:
    """Token ids of every prompt, tokenized in a worker thread so the event loop keeps serving;
    text that cannot fit is refused before any of it is tokenized."""
    for prompt in prompts:
        if isinstance(prompt, str):
            check_prompt_chars(len(prompt), engine.max_model_len, "prompt")
    encode = engine.tokenizer.encode
    return await asyncio.to_thread(
        lambda: [encode(p) if isinstance(p, str) else p for p in prompts])


@router.post("/v1/completions", responses=ERROR_RESPONSES)
async def create_completion(body: CompletionRequest, request: Request):
    request_id = request.state.request_id = new_request_id("cmpl")  # for the log
    state = request.app.state.server
    engine = state.ready_engine()
    state.check_model(body.model)
    body.check_supported(state.options)
    body.check_token_ids(state.vocab_size)
    texts = body.prompts()
    params = body.sampling_params(body.max_tokens, body.logprobs)
    prompts = await tokenize_prompts(engine, texts)
    for prompt in prompts:
        check_context_length(len(prompt), body.max_tokens, engine.max_model_len, "prompt",
                             "max_tokens")
    streams = await cancel_on_disconnect(
        request, state.inflight.open_all(engine, prompts, params, request_id))
    if streams is None:
        return client_gone()
    echoes = [""] * len(prompts)
    if body.echo:
        echoes = [text if isinstance(text, str) else engine.tokenizer.decode(text)
                  for text in texts]
    header = {"id": request_id, "object": "text_completion", "created": now(),
              "model": state.model_name}
    outputs = merge(streams)
    if body.stream:
        return EventStreamResponse(stream_events(_chunks(outputs, header, body, echoes),
                                                 request_id))
    finals = await cancel_on_disconnect(request, _finals(outputs, len(streams)))
    if finals is None:
        return client_gone()
    n = params.n
    choices = []
    for i, output in enumerate(finals):
        for choice in output.outputs:
            logprobs = None
            if body.logprobs is not None:
                logprobs, _ = legacy_logprobs(choice.token_ids, choice.logprobs, len(echoes[i]))
            choices.append({"index": i * n + choice.index, "text": echoes[i] + choice.text,
                            "logprobs": logprobs, "finish_reason": choice.finish_reason,
                            "stop_reason": choice.stop_reason})
    return {**header, "choices": choices, "usage": usage(finals)}


async def _finals(outputs: AsyncIterator[tuple[int, RequestOutput]],
                  count: int) -> list[RequestOutput]:
    finals: list[RequestOutput | None] = [None] * count
    async with contextlib.aclosing(outputs):
        async for i, output in outputs:
            finals[i] = output
    return finals


async def _chunks(outputs: AsyncIterator[tuple[int, RequestOutput]], header: dict,
                  body: CompletionRequest, echoes: list[str]):
    n = body.n or 1
    trackers = [DeltaTracker() for _ in echoes]
    text_offsets: dict[int, int] = {}
    last: list[RequestOutput | None] = [None] * len(echoes)
    async with contextlib.aclosing(outputs):
        async for i, output in outputs:
            last[i] = output
            for delta in trackers[i].deltas(output):
                index = i * n + delta.index
                text = echoes[i] + delta.text if delta.first else delta.text
                logprobs = None
                if delta.logprobs is not None:
                    logprobs, text_offsets[index] = legacy_logprobs(
                        delta.token_ids, delta.logprobs, text_offsets.get(index, len(echoes[i])))
                choice = {"index": index, "text": text, "logprobs": logprobs,
                          "finish_reason": delta.finish_reason, "stop_reason": delta.stop_reason}
                yield {**header, "choices": [choice], "usage": None}
    if body.include_usage_chunk:
        yield {**header, "choices": [], "usage": usage(last)}
