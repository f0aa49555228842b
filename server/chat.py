"""`POST /v1/chat/completions`: messages rendered by the model's own chat template, whole or streamed."""
import asyncio
import contextlib

from fastapi import APIRouter, Request

from shadowkv_engine.outputs import Logprob

from .errors import ERROR_RESPONSES
from .inflight import RequestStream, new_request_id
from .limits import check_context_length, check_prompt_chars
from .protocol import ChatCompletionRequest
from .responses import DeltaTracker, finite, now, ranked, usage
from .streaming import EventStreamResponse, cancel_on_disconnect, client_gone, stream_events

router = APIRouter()


def _token(lp: Logprob) -> dict:
    return {"token": lp.decoded_token, "logprob": finite(lp.logprob),
            "bytes": list(lp.decoded_token.encode("utf-8"))}


def chat_logprobs(token_ids: list[int], entries: list[dict[int, Logprob]], top_n: int) -> dict:
    """OpenAI's chat shape: one object per token, with exactly its top-`top_n` alternatives."""
    return {"content": [_token(entry[token_id]) | {"top_logprobs": [_token(lp) for lp in
                                                                     ranked(entry, top_n)]}
                        for token_id, entry in zip(token_ids, entries)]}


def render_prompt(tokenizer, body: ChatCompletionRequest) -> list[int]:
    text = tokenizer.apply_chat_template([m.as_template_input() for m in body.messages],
                                         add_generation_prompt=body.add_generation_prompt)
    # Templates write BOS themselves; adding special tokens again would double it.
    return tokenizer.encode(text, add_special_tokens=False)


@router.post("/v1/chat/completions", responses=ERROR_RESPONSES)
async def create_chat_completion(body: ChatCompletionRequest, request: Request):
    request_id = request.state.request_id = new_request_id("chatcmpl")  # for the log
    state = request.app.state.server
    engine = state.ready_engine()
    state.check_model(body.model)
    body.check_supported(state.options)
    body.check_token_ids(state.vocab_size)
    params = body.sampling_params(body.completion_limit, body.num_top_logprobs)
    check_prompt_chars(sum(len(m.as_template_input()["content"]) for m in body.messages),
                       engine.max_model_len, "messages")
    # In a worker thread: templating and tokenizing a long conversation takes a while.
    prompt = await asyncio.to_thread(render_prompt, engine.tokenizer, body)
    check_context_length(len(prompt), body.completion_limit, engine.max_model_len, "messages",
                         body.completion_limit_param)
    stream = await cancel_on_disconnect(request,
                                        state.inflight.open(engine, prompt, params, request_id))
    if stream is None:
        return client_gone()
    header = {"id": request_id, "object": "chat.completion", "created": now(),
              "model": state.model_name}
    if body.stream:
        return EventStreamResponse(stream_events(_chunks(stream, header, body), request_id))
    output = await cancel_on_disconnect(request, stream.final())
    if output is None:
        return client_gone()
    choices = []
    for choice in output.outputs:
        logprobs = None
        if body.logprobs:
            logprobs = chat_logprobs(choice.token_ids, choice.logprobs, body.num_top_logprobs)
        choices.append({"index": choice.index,
                        "message": {"role": "assistant", "content": choice.text},
                        "logprobs": logprobs, "finish_reason": choice.finish_reason,
                        "stop_reason": choice.stop_reason})
    return {**header, "choices": choices, "usage": usage([output])}


async def _chunks(stream: RequestStream, header: dict, body: ChatCompletionRequest):
    header = {**header, "object": "chat.completion.chunk"}
    tracker = DeltaTracker()
    output = stream.first
    async with contextlib.aclosing(stream):
        async for output in stream:
            for delta in tracker.deltas(output):
                message = {"role": "assistant", "content": delta.text} if delta.first else \
                    {"content": delta.text}
                logprobs = None
                if delta.logprobs is not None:
                    logprobs = chat_logprobs(delta.token_ids, delta.logprobs,
                                             body.num_top_logprobs)
                choice = {"index": delta.index, "delta": message, "logprobs": logprobs,
                          "finish_reason": delta.finish_reason, "stop_reason": delta.stop_reason}
                yield {**header, "choices": [choice], "usage": None}
    if body.include_usage_chunk:
        yield {**header, "choices": [], "usage": usage([output])}
