"""/v1/chat/completions through the official `openai` client."""
from server_harness import MODEL_NAME

from shadowkv_engine.model.tokenizer import Tokenizer

MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a river."}]


def chat(client, **kwargs):
    return client.chat.completions.create(model=MODEL_NAME, messages=MESSAGES, **kwargs)


def test_chat_completion_uses_the_chat_template(client, demo_model):
    response = chat(client, max_completion_tokens=6, temperature=0.0,
                    extra_body={"ignore_eos": True})
    assert response.object == "chat.completion"
    [choice] = response.choices
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "length"
    tokenizer = Tokenizer.from_pretrained(demo_model)
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)
    assert response.usage.prompt_tokens == len(tokenizer.encode(prompt, add_special_tokens=False))
    assert response.usage.completion_tokens == 6


def test_max_tokens_still_works_for_chat(client):
    response = chat(client, max_tokens=3, temperature=0.0, extra_body={"ignore_eos": True})
    assert response.usage.completion_tokens == 3


def test_chat_streaming_with_usage(client):
    whole = chat(client, max_completion_tokens=10, temperature=0.0,
                 extra_body={"ignore_eos": True})
    chunks = list(chat(client, max_completion_tokens=10, temperature=0.0, stream=True,
                       stream_options={"include_usage": True},
                       extra_body={"ignore_eos": True}))
    *content, last = chunks
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert content[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in content) == \
        whole.choices[0].message.content
    assert content[-1].choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in content)
    assert last.choices == [] and last.usage.completion_tokens == 10


def test_chat_logprobs_with_top_logprobs(client):
    response = chat(client, max_completion_tokens=4, temperature=0.0, logprobs=True,
                    top_logprobs=2, extra_body={"ignore_eos": True})
    content = response.choices[0].logprobs.content
    assert len(content) == 4
    for token in content:
        assert len(token.top_logprobs) == 2
        assert token.top_logprobs[0].logprob >= token.top_logprobs[1].logprob
        assert token.logprob == token.top_logprobs[0].logprob  # greedy picks the top token
        assert token.bytes == list(token.token.encode())


def test_chat_n_and_seed(client):
    def sample(seed):
        response = chat(client, max_completion_tokens=8, temperature=1.0, n=2, seed=seed,
                        extra_body={"ignore_eos": True})
        return [c.message.content for c in sorted(response.choices, key=lambda c: c.index)]

    first = sample(99)
    assert len(first) == 2
    assert sample(99) == first


def test_chat_streams_every_generated_token_in_its_own_chunk(client):
    stop = "\u2603" * 40  # never generated; holds back the first tokens' text
    chunks = list(chat(client, max_completion_tokens=10, temperature=0.0, stop=[stop],
                       stream=True, stream_options={"include_usage": True},
                       extra_body={"ignore_eos": True}))
    *content, last = chunks
    assert last.usage.completion_tokens == len(content) == 10
    assert content[0].choices[0].delta.role == "assistant"
    assert all(chunk.choices[0].delta.content is not None for chunk in content)
