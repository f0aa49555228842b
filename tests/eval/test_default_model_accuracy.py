"""The shipped model: its files, and a short CPU evaluation through the engine (docs/accuracy.md).

Full attention must keep the accuracy recorded for it, on the classic layouts and on both
held-out splits (layouts that training never saw, issue 16); ShadowKV must stay within MARGIN of
full attention on the same samples (fixed eval seeds).
"""
import json

import pytest

from shadowkv_engine.eval.cli import DEFAULT_MODEL_DIR
from shadowkv_engine.eval.runner import evaluate

CLASSIC_TASKS = ["passkey", "niah_single", "niah_multikey"]
CLASSIC_LENGTH = 2048
CLASSIC_SAMPLES = 10
HELDOUT_TASK = "passkey"
HELDOUT_LENGTH = 4096
HELDOUT_SAMPLES = 20
# Recorded on the CPU, 2026-12-02 (docs/accuracy.md), the shipped model (the weights 30% of the
# way from run 11 to run 13, training/interpolate_checkpoints.py; run 13 continued run 11 on
# needles camouflaged as their filler's lines):
# - classic, 2K, answer prefix supplied: full attention 100 / 100 / 100% (passkey, niah_single,
#   niah_multikey); ShadowKV with SHADOWKV_CLASSIC (budget 1/4 of the context) the same.
# - held-out passkey, 4K, free answers (the model writes the whole answer, as a user's request
#   has it): full attention 100% (run 11 100%, run 10 95%, run 8 95%, the third continued model
#   100%, the second 75%, the first retrained model 45%, the 8K model before them 0%); ShadowKV
#   at the engine's defaults (rank and landmark as the model recommends: 64, minmax) 100%.
# - blind passkey, 4K, free answers: full attention 100% (run 11 95%, run 10 85%, run 8 85%, the
#   third continued model, for which the split was blind, 75%), ShadowKV at the defaults 100%.
#   Training data since run 8 was chosen from this split's results, so the cell is a regression
#   check, not a blind measure (that was blind2 to blind7 in turn, docs/accuracy.md).
FULL_ATTENTION_FLOOR = 0.9
HELDOUT_FLOOR = 0.8
BLIND_FLOOR = 0.6
MARGIN = 0.2  # ShadowKV may lose at most this much accuracy per cell against full attention
SHADOWKV_CLASSIC = {"sparse_budget": 512, "outlier_chunks": 12, "local_chunks": 4,
                    "min_context_len": 1024}
SHADOWKV_DEFAULTS: dict = {}


def test_checkpoint_is_small_and_shaped_like_a_real_llama():
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json"} <= set(files)
    assert sum(files.values()) <= 25 * 10**6
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    assert config["head_dim"] == 128 and config["num_key_value_heads"] < config["num_attention_heads"]
    assert config["shadowkv_training"]["trained_length"] == 32768
    assert config["max_position_embeddings"] >= config["shadowkv_training"]["trained_length"]
    assert "chat_template" in json.loads((DEFAULT_MODEL_DIR / "tokenizer_config.json").read_text())


def accuracy(attention: str, shadowkv: dict, tasks: list[str], length: int, samples: int,
             split: str, modes: tuple[str, ...]) -> dict[tuple[str, str], float]:
    from shadowkv_engine import LLM, SamplingParams

    llm = LLM(model=str(DEFAULT_MODEL_DIR), device="cpu", attention=attention,
              shadowkv=shadowkv, max_model_len=length, max_num_seqs=samples)

    def generate(prompts, max_tokens):
        outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_tokens),
                               use_tqdm=False)
        return [o.outputs[0].text for o in outputs]

    results = evaluate(generate, llm.get_tokenizer(), tasks, [length], samples,
                       batch_size=samples, progress=False, split=split, modes=modes)
    return {(r.task, r.mode): r.accuracy for r in results}


@pytest.mark.slow
def test_full_attention_keeps_its_accuracy_and_shadowkv_stays_close():
    # Classic layouts (the README's example): full attention near perfect, ShadowKV close.
    dense = accuracy("dense", {}, CLASSIC_TASKS, CLASSIC_LENGTH, CLASSIC_SAMPLES, "classic",
                     ("prefixed",))
    assert all(a >= FULL_ATTENTION_FLOOR for a in dense.values()), dense
    sparse = accuracy("shadowkv", SHADOWKV_CLASSIC, CLASSIC_TASKS, CLASSIC_LENGTH,
                      CLASSIC_SAMPLES, "classic", ("prefixed",))
    assert all(sparse[c] >= dense[c] - MARGIN for c in dense), (dense, sparse)
    # One held-out cell: layouts (instruction, filler, needle and question wording, 4-8 digit
    # and alphanumeric keys) that training never saw, free answers.
    assert_held_out_cell("heldout", HELDOUT_FLOOR)


@pytest.mark.slow
def test_blind_split_keeps_its_accuracy_and_shadowkv_stays_close():
    assert_held_out_cell("blind", BLIND_FLOOR)


def assert_held_out_cell(split: str, floor: float) -> None:
    """HELDOUT_TASK on `split`, free answers: full attention at or above `floor`, ShadowKV at
    the engine's defaults within MARGIN of it."""
    dense = accuracy("dense", {}, [HELDOUT_TASK], HELDOUT_LENGTH, HELDOUT_SAMPLES, split,
                     ("free",))
    assert all(a >= floor for a in dense.values()), dense
    sparse = accuracy("shadowkv", SHADOWKV_DEFAULTS, [HELDOUT_TASK], HELDOUT_LENGTH,
                      HELDOUT_SAMPLES, split, ("free",))
    assert all(sparse[c] >= dense[c] - MARGIN for c in dense), (dense, sparse)


def test_the_readme_example_answers_as_the_readme_says():
    """README.md's chat example, run through the engine on the embedded model: the reply its
    `# -> "..."` comment promises."""
    import re
    from pathlib import Path

    from shadowkv_engine import LLM, SamplingParams

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    request = json.loads(re.search(r"chat/completions .*?-d '(\{.*?\})'\n", readme, re.S).group(1))
    promised = re.search(r'# -> "([^"]+)"', readme).group(1)
    llm = LLM(model=str(DEFAULT_MODEL_DIR), device="cpu", max_model_len=1024)
    params = SamplingParams(temperature=request["temperature"], max_tokens=request["max_tokens"])
    assert llm.chat(request["messages"], params)[0].outputs[0].text == promised
