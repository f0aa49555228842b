"""Our Tokenizer against transformers on tiny trained tokenizers: same ids, text and chat prompts;
streaming detokenization reassembles exactly the text a full decode gives."""

import json
import random

import pytest
from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as BackendTokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from shadowkv_engine.errors import InvalidRequestError
from shadowkv_engine.model.tokenizer import IncrementalDetokenizer, Tokenizer

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Written over several indented lines, so it renders right only with trim_blocks and lstrip_blocks;
# also uses raise_exception, namespace, loop controls, tojson and the always-defined `tools`.
MULTILINE_TEMPLATE = """{{ bos_token }}
{% set ns = namespace(turns=0) %}
{% for message in messages %}
    {% if message['role'] == 'system' %}
        {{ '<<SYS>>' + (message | tojson) + '<</SYS>>' }}
        {% continue %}
    {% endif %}
    {% if (message['role'] == 'user') != (ns.turns % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
    {% set ns.turns = ns.turns + 1 %}
    {% if message['role'] == 'user' %}
        {{ '[INST] ' + message['content'] + ' [/INST]' }}
    {% else %}
        {{ message['content'] + eos_token }}
    {% endif %}
{% endfor %}
{% if tools is not none %}TOOLS{% endif %}
{% if add_generation_prompt %}{{ 'turns=' ~ ns.turns }}{% endif %}
"""

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
WORDS = "the quick brown fox jumps over lazy dog river stone light naïve café über 東京 北京 语言 模型 😀 🚀 👍🏽 ∑ ≈".split()
TEXTS = [
    "",
    "Hello world",
    " leading space and  double  spaces ",
    "line one\nline two\n\n\tindented",
    "naïve café, über alles — “quotes” ½",
    "東京と北京の言語モデル",
    "emoji 😀🚀 and a family 👨‍👩‍👧 with skin tone 👍🏽",
    "special <|eot_id|> inside and <|im_end|> too",
    "added <pad> and<extra>here",
    "numbers 1234567 and code: x = f(y) + 42;",
]
CONVERSATIONS = [
    [{"role": "user", "content": "Hi there! 😀"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "  What is 東京?  "},
        {"role": "assistant", "content": "A city <b>&</b> more."},
        {"role": "user", "content": "Thanks\nbye"},
    ],
]


def corpus(seed: int, lines: int = 600) -> list[str]:
    rng = random.Random(seed)
    sentences = (" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(lines))
    return [sentence + rng.choice([".", "!\n", "?"]) for sentence in sentences]


def train_byte_level(specials: list[str], vocab_size: int) -> BackendTokenizer:
    tok = BackendTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(0), trainer)
    return tok


def write_checkpoint(directory, backend: BackendTokenizer, config: dict, generation_config=None, template_file=None):
    directory.mkdir()
    backend.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    if generation_config is not None:
        (directory / "generation_config.json").write_text(json.dumps(generation_config))
    if template_file is not None:
        (directory / "chat_template.jinja").write_text(template_file)
    return directory


@pytest.fixture(scope="module")
def llama3_dir(tmp_path_factory):
    backend = train_byte_level(LLAMA3_SPECIALS, 700)
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", 0)],
    )
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": False,
        "chat_template": LLAMA3_TEMPLATE,
    }
    return write_checkpoint(tmp_path_factory.mktemp("t") / "llama3", backend, config, {"eos_token_id": [1, 4]})


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory):
    # No post-processor in tokenizer.json and add_bos_token false, as in Qwen2; the template lives
    # in chat_template.jinja, which wins over a (deliberately wrong) config entry, as in transformers.
    backend = train_byte_level(QWEN2_SPECIALS, 600)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": "WRONG",
    }
    return write_checkpoint(tmp_path_factory.mktemp("t") / "qwen2", backend, config, template_file=CHATML_TEMPLATE)


@pytest.fixture(scope="module")
def metaspace_dir(tmp_path_factory):
    # SentencePiece-style: words carry a "▁" prefix that decoding strips from the very first token,
    # so a token decoded alone loses its space. add_bos_token is set but ignored: tokenizer.json's
    # post-processor alone adds BOS, as in transformers 5. The pad and extra tokens are not in
    # tokenizer.json, so loading must add them.
    backend = BackendTokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    backend.train_from_iterator(corpus(1), trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "additional_special_tokens": ["<extra>"],
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": MULTILINE_TEMPLATE,
    }
    return write_checkpoint(tmp_path_factory.mktemp("t") / "metaspace", backend, config)


@pytest.fixture(params=["llama3_dir", "qwen2_dir", "metaspace_dir"])
def pair(request):
    directory = request.getfixturevalue(request.param)
    return Tokenizer.from_pretrained(directory), AutoTokenizer.from_pretrained(str(directory))


def test_encode_decode_match_transformers(pair):
    ours, hf = pair
    assert isinstance(hf, PreTrainedTokenizerFast)
    for text in TEXTS:
        for add_special in (True, False):
            ids = ours.encode(text, add_special_tokens=add_special)
            assert ids == hf.encode(text, add_special_tokens=add_special), text
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
        assert ours.convert_ids_to_tokens(ids) == hf.convert_ids_to_tokens(ids)
    rng = random.Random(0)
    for _ in range(50):
        ids = [rng.randrange(len(hf)) for _ in range(rng.randint(1, 20))]
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)


def test_special_token_ids_match_transformers(pair):
    ours, hf = pair
    assert ours.vocab_size == len(hf)
    assert ours.bos_token_id == hf.bos_token_id
    assert ours.pad_token_id == hf.pad_token_id


def test_eos_ids_prefer_generation_config(llama3_dir, qwen2_dir):
    assert Tokenizer.from_pretrained(llama3_dir).eos_token_ids == [1, 4]  # end_of_text, eot_id
    qwen = Tokenizer.from_pretrained(qwen2_dir)
    assert qwen.eos_token_ids == [qwen.token_to_id("<|im_end|>")]


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chat_template_matches_transformers(pair, conversation, add_generation_prompt):
    ours, hf = pair
    expected = hf.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt, tokenize=False)
    assert ours.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt) == expected


def test_content_parts_are_joined(llama3_dir):
    tok = Tokenizer.from_pretrained(llama3_dir)
    parts = [{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]
    assert tok.apply_chat_template(parts) == tok.apply_chat_template([{"role": "user", "content": "one\ntwo"}])


def test_template_exception_is_value_error(metaspace_dir):
    tok = Tokenizer.from_pretrained(metaspace_dir)
    with pytest.raises(ValueError, match="roles must alternate"):
        tok.apply_chat_template([{"role": "assistant", "content": "first"}])


@pytest.mark.parametrize(
    "messages, match",
    [
        ([], "non-empty list"),
        ("hello", "non-empty list"),
        (["hello"], r"messages\[0\] must be an object"),
        ([{"content": "hi"}], r"messages\[0\]\.role"),
        ([{"role": "user"}], "no 'content'"),
        ([{"role": "user", "content": 3}], "string or a list of text parts"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "only text"),
    ],
)
def test_invalid_messages_raise(llama3_dir, messages, match):
    with pytest.raises(InvalidRequestError, match=match):
        Tokenizer.from_pretrained(llama3_dir).apply_chat_template(messages)


def test_missing_chat_template_raises(tmp_path):
    directory = write_checkpoint(tmp_path / "plain", train_byte_level(QWEN2_SPECIALS, 300), {"eos_token": "<|im_end|>"})
    with pytest.raises(ValueError, match="no chat template"):
        Tokenizer.from_pretrained(directory).apply_chat_template([{"role": "user", "content": "hi"}])


def test_missing_tokenizer_json_names_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"tokenizer.json.*{tmp_path}"):
        Tokenizer.from_pretrained(tmp_path)


def test_streaming_real_text_never_splits_a_character(pair):
    ours, _ = pair
    prompt = ours.encode("Prompt: 東京", add_special_tokens=True)
    for text in TEXTS[1:]:
        detok = IncrementalDetokenizer(ours, prompt)
        deltas = [detok.push(i) for i in ours.encode(text, add_special_tokens=False)]
        assert "".join(deltas) == detok.text
        assert all("\ufffd" not in d for d in deltas)
        # Decoding the generated ids together with the prompt keeps the space a lone decode would strip.
        full = ours.decode(prompt + ours.encode(text, add_special_tokens=False))
        assert ours.decode(prompt) + detok.text == full


@pytest.mark.parametrize("skip_special_tokens", [True, False])
def test_streaming_random_tokens_reassembles_full_decode(pair, skip_special_tokens):
    ours, _ = pair
    rng = random.Random(1)
    flush = ours.encode(".", add_special_tokens=False)  # a last complete character, so nothing stays held
    for _ in range(30):
        prompt = ours.encode(rng.choice(TEXTS), add_special_tokens=rng.random() < 0.5)
        generated = [rng.randrange(ours.vocab_size) for _ in range(rng.randint(1, 40))] + flush
        detok = IncrementalDetokenizer(ours, prompt, skip_special_tokens=skip_special_tokens)
        prompt_text = ours.decode(prompt, skip_special_tokens=skip_special_tokens)
        for n, token in enumerate(generated, 1):
            detok.push(token)
            so_far = ours.decode(prompt + generated[:n], skip_special_tokens=skip_special_tokens)
            assert so_far.startswith(prompt_text + detok.text)  # nothing emitted is ever taken back
        assert prompt_text + detok.text == ours.decode(prompt + generated, skip_special_tokens=skip_special_tokens)
