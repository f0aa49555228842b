"""Train the embedded default model: a small Llama that retrieves from long contexts.

    python -m training.train_long_context --out shadowkv_engine/assets/default_model   # one GPU
    python -m training.train_long_context --smoke --out /tmp/smoke                     # CPU, seconds

Steps: train a byte-level BPE on generated task text; train a Llama-architecture model (GQA, RoPE,
head dim 128) on chats over long contexts (classic layouts, varied layouts from the train pools
of shadowkv_engine/eval/layouts.py, made-up ones, and real text: real_text.py) with the loss on the answers, lengths growing
from 256 to 32768 tokens (curriculum.py); export a Hugging Face checkpoint in bf16; measure
full-attention accuracy with plain transformers (evaluate_hf.py), held-out layouts first, and
the key spectra (key_spectra.py). The run stops on a wall-clock budget (the GPU lease is short)
or a step count; data, initialisation and evaluation are seeded, but GPU kernels and the time
budget make the final weights differ from run to run.

A run longer than one command may last: `--state FILE --stop-after SECONDS` trains at most that
long, saves everything a run needs (weights, optimizer, curriculum, step, tokenizer) to FILE and
exits; the same command again resumes there, and the invocation that spends the time budget
exports and evaluates (docs/accuracy.md, "Retraining").

On several GPUs of one host, start it with torchrun (data_parallel.py): each GPU trains on its
own share of the batches, `--batch-tokens` per GPU; the time budget is the same wall-clock time.
"""
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers are forked after BPE training

import argparse
import dataclasses
import datetime
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from . import data_parallel, real_text
from .batches import BatchFeeder
from .data_parallel import Ranks
from .curriculum import Curriculum
from .documents import KINDS, RETRIEVAL_KINDS, tokenizer_corpus
from .tokenizer import BOS_ID, END_OF_TEXT_ID, EOT_ID, save_tokenizer, train_tokenizer

HEADLINE_TASKS = ("passkey", "niah_single")
# Eval grid after the headline cells, in this order of (split, answer mode) at each length.
GRID_LAYOUTS = (("heldout", "prefixed"), ("train", "free"), ("classic", "free"), ("classic", "prefixed"))

PRESETS = {
    # ~10.5M parameters, 21 MB in bf16; the shape of training_probe.md's run 4 with a smaller MLP
    # so the checkpoint stays under 25 MB.
    # Lengths to 32K: ShadowKV's budget is a real selection problem only there (2048 of 32K).
    # Time budget and eval deadline fit one 10-minute command on a GPU machine, start-up included.
    "full": dict(layers=4, hidden=512, heads=4, kv_heads=2, head_dim=128, intermediate=1024,
                 vocab_size=1024, lengths="256,512,1024,2048,4096,8192,16384,32768",
                 batch_tokens=32768, max_position_embeddings=32768, corpus_docs=3000,
                 time_budget=420.0, deadline=540.0, max_steps=0,
                 workers=max(1, (os.cpu_count() or 2) - 2),
                 eval_samples=25, eval_lengths="8192,32768", grid_samples=20,
                 grid_lengths="8192,32768,16384,4096", grid_tasks="all",
                 spectra_tasks="niah_single_prose,passkey"),
    "smoke": dict(layers=2, hidden=64, heads=2, kv_heads=1, head_dim=32, intermediate=128,
                  vocab_size=384, lengths="192,256", batch_tokens=1024, max_position_embeddings=1024,
                  corpus_docs=200, time_budget=0.0, deadline=0.0, max_steps=12, workers=0,
                  eval_samples=1, eval_lengths="512", grid_samples=1, grid_lengths="512",
                  grid_tasks="passkey,vt", spectra_tasks="niah_single_prose"),
}
PRESET_HELP = {
    "time_budget": "seconds of training in the whole run, resumes included (0: --max-steps only)",
    "deadline": "seconds from this invocation's start after which the eval grid stops (0: none; "
                "the headline cells always run)",
    "eval_lengths": "lengths of the headline eval (held-out layouts, free answers)",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--smoke", action="store_true", help="tiny model, a few steps on the CPU")
    # Not "--log": torchrun's own parser would take it for an abbreviation of its --log-dir.
    p.add_argument("--log-file", help="append the log here too")
    p.add_argument("--eval-output", help="JSON of the full-attention eval")
    p.add_argument("--spectra-output", help="JSON of the key spectra")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rope-theta", type=float, default=500000.0)
    p.add_argument("--state", help="training state file: resumed from if it exists, written when "
                                   "this invocation stops")
    p.add_argument("--init-from", help="checkpoint folder (an export of this script) to continue "
                                       "from: its weights and tokenizer instead of new ones")
    p.add_argument("--stage-threshold", type=float, default=0.95,
                   help="retrieval answer-token accuracy that ends a curriculum stage early "
                        "(above 1: stages end only at their deadlines)")
    p.add_argument("--stop-after", type=float, default=0.0,
                   help="seconds of training in this invocation before saving --state and exiting "
                        "(0: train to the end of the budget)")
    for name, default in PRESETS["full"].items():  # preset values unless given
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=None,
                       help=PRESET_HELP.get(name))
    args = p.parse_args(argv)
    for name, value in PRESETS["smoke" if args.smoke else "full"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.lengths = [int(x) for x in args.lengths.split(",")]
    args.eval_lengths = [int(x) for x in args.eval_lengths.split(",")]
    args.grid_lengths = [int(x) for x in args.grid_lengths.split(",")]
    if args.stop_after and not args.state:
        p.error("--stop-after needs --state, or the training would be lost")
    if args.smoke:
        args.warmup = min(args.warmup, 4)
    return args


class Log:
    def __init__(self, path: str | None, enabled: bool = True):
        """enabled=False: a silent log (data-parallel ranks other than 0)."""
        self.path, self.start, self.enabled = path, time.time(), enabled

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.time() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")


def build_model(args, vocab_size: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.head_dim, max_position_embeddings=args.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta}, rms_norm_eps=1e-5,
        tie_word_embeddings=False, bos_token_id=BOS_ID, eos_token_id=[END_OF_TEXT_ID, EOT_ID],
        pad_token_id=END_OF_TEXT_ID)
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")


def initial_weights(folder: str) -> dict:
    """The weights of an exported checkpoint, in float32 (training's master copy)."""
    loaded = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return loaded.state_dict()


def previous_runs(args) -> list[dict]:
    """The training summaries of the checkpoint this run continues from, oldest first."""
    if not args.init_from:
        return []
    config = json.loads((Path(args.init_from) / "config.json").read_text())
    earlier = config.get("shadowkv_training", {})
    return earlier.pop("continued_from", []) + [earlier]


def make_optimizer(model, args) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=args.lr, betas=(0.9, 0.95), fused=args.device.startswith("cuda"))


def lr_factor(step: int, progress: float, warmup: int) -> float:
    """Linear warm-up, flat, then linear decay to 10% over the last fifth of the run."""
    decay = 1.0 if progress < 0.8 else max(0.1, 1.0 - 4.5 * (progress - 0.8))
    return min(1.0, (step + 1) / warmup) * decay


def train(args, model, feeder: BatchFeeder, log: Log, resumed: dict | None = None,
          ranks: Ranks = Ranks()) -> tuple[dict, dict]:
    """Train until the budget is spent or --stop-after; (summary, state to resume from)."""
    device = torch.device(args.device)
    optimizer = make_optimizer(model, args)
    curriculum = Curriculum(args.lengths, threshold=args.stage_threshold)
    step, tokens, seconds_before = 0, 0, 0.0
    if resumed:
        optimizer.load_state_dict(resumed["optimizer"])
        curriculum = Curriculum(**resumed["curriculum"])
        step, tokens, seconds_before = resumed["step"], resumed["tokens"], resumed["seconds"]
    bf16 = device.type == "cuda"
    num_kinds = max(KINDS.values()) + 1
    window = torch.zeros(2, num_kinds, device=device)  # correct, total answer tokens per kind
    log_every, check_every = (1, 1) if args.smoke else (50, 10)
    start, loss_sum = time.time(), torch.zeros((), device=device)
    log_window = torch.zeros(2, num_kinds, device=device)

    def progress() -> float:
        by_steps = step / args.max_steps if args.max_steps else 0.0
        by_time = (seconds_before + time.time() - start) / args.time_budget if args.time_budget else 0.0
        return max(by_steps, by_time)

    first_step = step

    def stopping() -> bool:  # at least one step per invocation, so every resume makes progress
        return (bool(args.stop_after) and step > first_step
                and time.time() - start >= args.stop_after)

    def decide() -> tuple[float, bool]:
        """Rank 0's progress and whether to stop now, on every rank (taken every check)."""
        here = progress()
        agreed, done = data_parallel.rank0_values(ranks, [here, float(here >= 1.0 or stopping())],
                                                  device)
        return agreed, bool(done)

    parameters = list(model.parameters())
    model.train()
    agreed, done = decide()
    while not done:
        ids, loss_mask, kind = (torch.from_numpy(a).to(device, non_blocking=True)
                                for a in feeder.next(curriculum.length))
        ids = ids.long()
        target, mask = ids[:, 1:], loss_mask[:, 1:]
        for group in optimizer.param_groups:
            group["lr"] = args.lr * lr_factor(step, agreed, args.warmup)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = model.model(input_ids=ids[:, :-1]).last_hidden_state
            logits = model.lm_head(hidden[mask]).float()
        answers = target[mask]
        loss = F.cross_entropy(logits, answers)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        data_parallel.average_gradients(ranks, parameters)
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()

        kinds = kind[:, 1:][mask].long()
        correct = (logits.argmax(-1) == answers).float()
        counts = torch.stack([torch.zeros(num_kinds, device=device).index_add_(0, kinds, correct),
                              torch.bincount(kinds, minlength=num_kinds).float()])
        window += counts
        log_window += counts
        loss_sum += loss.detach()
        step += 1
        tokens += ids.numel() * ranks.world
        if step % check_every == 0:
            retrieval = data_parallel.summed(ranks, window[:, list(RETRIEVAL_KINDS)].sum(1))
            correct_n, total_n = retrieval.tolist()
            window.zero_()
            agreed, done = decide()
            if curriculum.update(step, agreed, correct_n / total_n if total_n else None):
                log(f"step {step}: curriculum -> length {curriculum.length}")
        if step % log_every == 0:
            hits, totals = log_window.tolist()
            accuracy = {name: round(hits[code] / totals[code], 3) for name, code in KINDS.items()
                        if totals[code]}
            elapsed = seconds_before + time.time() - start
            log(f"step {step} len {curriculum.length} lr {optimizer.param_groups[0]['lr']:.2e} "
                f"loss {loss_sum.item() / log_every:.4f} answer-token acc {accuracy} "
                f"tok/s {tokens / elapsed:,.0f}")
            loss_sum.zero_()
            log_window.zero_()
    seconds = seconds_before + time.time() - start
    summary = {"steps": step, "tokens": tokens, "seconds": round(seconds, 1),
               "final_length": curriculum.length, "finished": agreed >= 1.0, "gpus": ranks.world}
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "curriculum": dataclasses.asdict(curriculum), "step": step, "tokens": tokens,
             "seconds": seconds}
    return summary, state


def export(model, tokenizer, args, summary: dict) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out)
    save_tokenizer(tokenizer, out, args.max_position_embeddings)
    config_file = out / "config.json"
    config = json.loads(config_file.read_text())
    # Older readers (transformers 4.x) look for these two names.
    config |= {"torch_dtype": "bfloat16", "rope_theta": args.rope_theta, "shadowkv_training": summary}
    config_file.write_text(json.dumps(config, indent=2) + "\n")
    return out


def evaluate_checkpoint(out: Path, args, log: Log, script_start: float) -> None:
    """Full-attention accuracy and key spectra; the eval JSON is rewritten after every cell, so a
    cut-off run keeps what it measured.

    Headline first, always: held-out layouts, free answers, passkey and niah_single at each
    --eval-lengths (what issue 16 asks the model to do). Then the key spectra, then the grid in
    order of interest until --deadline: at each --grid-lengths, held-out prefixed, train-split
    free, then the classic tasks free and prefixed.
    """
    from shadowkv_engine.eval.runner import format_table, write_json
    from shadowkv_engine.eval.tasks import LAYOUT_TASKS, TASKS

    from .evaluate_hf import run_hf_eval
    from .hf_generate import load
    from .key_spectra import format_spectra, measure

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model, tokenizer = load(str(out), args.device, dtype)
    trained = args.lengths[-1]
    meta = {"model": str(out), "attention": "dense (transformers SDPA)", "device": args.device,
            "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
            "dtype": str(dtype), "date": datetime.date.today().isoformat(),
            "samples": f"{args.eval_samples} for the headline cells (held-out, free), "
                       f"{args.grid_samples} for the rest"}
    results = []

    def run_cell(split: str, mode: str, task: str, length: int, samples: int) -> None:
        results.extend(run_hf_eval(model, tokenizer, [task], [length], samples, progress=False,
                                   split=split, modes=(mode,)))
        if args.eval_output:
            write_json(args.eval_output, results, meta)

    for length in args.eval_lengths:
        for task in HEADLINE_TASKS:
            run_cell("heldout", "free", task, length, args.eval_samples)
    log("full attention (transformers), held-out layouts, free answers:\n" + format_table(results))

    spectra = measure(model.float(), tokenizer, args.spectra_tasks.split(","), trained)
    log("key spectra:\n" + format_spectra(spectra))
    if args.spectra_output:
        Path(args.spectra_output).write_text(json.dumps(spectra, indent=1) + "\n")
    model.to(dtype)

    headline = len(results)
    classic = list(TASKS) if args.grid_tasks == "all" else args.grid_tasks.split(",")
    grid = [(split, mode, task, length) for length in args.grid_lengths
            for split, mode in GRID_LAYOUTS
            for task in (classic if split == "classic" else LAYOUT_TASKS)]
    for split, mode, task, length in grid:
        if args.deadline and time.time() - script_start > args.deadline:
            log(f"deadline reached: eval grid stops before {task} ({split}, {mode}) @ {length}")
            break
        run_cell(split, mode, task, length, args.grid_samples)
    if len(results) > headline:
        log("full attention (transformers), grid:\n" + format_table(results[headline:]))


def main(argv=None) -> None:
    args = parse_args(argv)
    ranks, args.device = data_parallel.start(args.device)
    log = Log(args.log_file, enabled=ranks.main)
    script_start = time.time()
    torch.manual_seed(args.seed)
    log(f"args: {vars(args)}; data-parallel ranks: {ranks.world}")
    resumed = None
    if args.state and Path(args.state).is_file():
        resumed = torch.load(args.state, map_location=args.device)
        tokenizer = Tokenizer.from_str(resumed["tokenizer"])
        log(f"resumed from {args.state} at step {resumed['step']} ({resumed['seconds']:.0f} s trained)")
    elif args.init_from:
        tokenizer = Tokenizer.from_file(str(Path(args.init_from) / "tokenizer.json"))
        log(f"continuing from {args.init_from}: its weights and tokenizer")
    else:  # trained once, on rank 0
        trained = (train_tokenizer(tokenizer_corpus(args.seed, args.corpus_docs), args.vocab_size)
                   if ranks.main else None)
        tokenizer = Tokenizer.from_str(data_parallel.broadcast_text(
            ranks, trained.to_str() if trained else None))
    log(f"tokenizer: {tokenizer.get_vocab_size()} tokens")
    workers = max(1, args.workers // ranks.world) if args.workers else 0  # the host's CPUs, shared
    feeder = BatchFeeder(tokenizer, args.seed, args.batch_tokens, workers,
                         start=resumed["step"] if resumed else 0, rank=ranks.rank,
                         world=ranks.world)
    try:
        model = build_model(args, tokenizer.get_vocab_size()).to(args.device)
        if resumed:
            model.load_state_dict(resumed["model"])
        elif args.init_from:
            model.load_state_dict(initial_weights(args.init_from))
        data_parallel.same_weights(ranks, model)
        log(f"model: {sum(p.numel() for p in model.parameters()):,} parameters on {args.device}"
            + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
            + (f", x{ranks.world} ranks" if ranks.parallel else ""))
        summary, state = train(args, model, feeder, log, resumed, ranks)
        data_parallel.check_same_weights(ranks, model)
    finally:
        feeder.close()
    data_parallel.stop()  # the weights are the same on every rank: rank 0 goes on alone
    if not ranks.main:
        return
    if args.state:
        torch.save(state | {"tokenizer": tokenizer.to_str()}, args.state)
        log(f"state saved to {args.state}")
    if not summary.pop("finished"):
        log(f"stopped after {args.stop_after:.0f} s at step {summary['steps']}: run the same "
            f"command again to continue")
        return
    summary |= {"trained_length": args.lengths[-1], "seed": args.seed,
                "date": datetime.date.today().isoformat(), "real_text": real_text.source()}
    if args.init_from:
        summary["continued_from"] = previous_runs(args)
    log(f"trained: {summary}")
    out = export(model, tokenizer, args, summary)
    log(f"exported to {out}: " + ", ".join(f"{p.name} {p.stat().st_size:,} B" for p in sorted(out.iterdir())))
    evaluate_checkpoint(out, args, log, script_start)
    log("done")


if __name__ == "__main__":
    main()
