"""`POST /v1/completions`: the legacy text completion endpoint, whole or streamed."""
import contextlib

from fastapi import APIRouter, Request

from shadowkv_engine.outputs import Logprob

from .inflight import RequestStream
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


@router.post("/v1/completions")
async def create_completion(body: CompletionRequest, request: Request):
    state = request.app.state.server
    engine = state.ready_engine()
    state.check_model(body.model)
    body.check_supported()
    prompt = body.single_prompt()
    params = body.sampling_params(body.max_tokens, body.logprobs)
    stream = await cancel_on_disconnect(request, state.inflight.open(engine, prompt, params, "cmpl"))
    if stream is None:
        return client_gone()
    echo = ""
    if body.echo:
        echo = prompt if isinstance(prompt, str) else engine.tokenizer.decode(prompt)
    header = {"id": stream.request_id, "object": "text_completion", "created": now(),
              "model": state.model_name}
    if body.stream:
        return EventStreamResponse(stream_events(_chunks(stream, header, body, echo)))
    output = await cancel_on_disconnect(request, stream.final())
    if output is None:
        return client_gone()
    choices = []
    for choice in output.outputs:
        logprobs = None
        if body.logprobs is not None:
            logprobs, _ = legacy_logprobs(choice.token_ids, choice.logprobs, len(echo))
        choices.append({"index": choice.index, "text": echo + choice.text, "logprobs": logprobs,
                        "finish_reason": choice.finish_reason, "stop_reason": choice.stop_reason})
    return {**header, "choices": choices, "usage": usage(output)}


async def _chunks(stream: RequestStream, header: dict, body: CompletionRequest, echo: str):
    tracker = DeltaTracker()
    text_offsets: dict[int, int] = {}
    output = stream.first
    async with contextlib.aclosing(stream):
        async for output in stream:
            for delta in tracker.deltas(output):
                text = echo + delta.text if delta.first else delta.text
                logprobs = None
                if delta.logprobs is not None:
                    logprobs, text_offsets[delta.index] = legacy_logprobs(
                        delta.token_ids, delta.logprobs, text_offsets.get(delta.index, len(echo)))
                choice = {"index": delta.index, "text": text, "logprobs": logprobs,
                          "finish_reason": delta.finish_reason, "stop_reason": delta.stop_reason}
                yield {**header, "choices": [choice], "usage": None}
    if body.include_usage_chunk:
        yield {**header, "choices": [], "usage": usage(output)}
