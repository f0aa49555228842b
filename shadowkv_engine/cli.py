"""The `shadowkv` command: `serve` (OpenAI-compatible server), `generate` (offline demo), `eval`,
`bench serve` (load test of any OpenAI-compatible server).

Server and evaluation code are imported only by their subcommands: the engine package must import
without FastAPI, and `shadowkv --help` must work whatever optional part is missing.
"""
import argparse
import logging
import os
import sys
from dataclasses import fields, replace
from pathlib import Path

from .config import (ATTENTION_BACKENDS, ATTENTION_MODES, DTYPES, LANDMARKS, TWO_BATCH_OVERLAP,
                     EngineConfig, ShadowKVConfig)
from .errors import InvalidRequestError

logger = logging.getLogger("shadowkv")

# Flags for EngineConfig fields; any field missing here still gets a flag, typed from its default.
ENGINE_FLAG_HELP = {
    "device": "cpu, cuda, cuda:N or auto",
    "dtype": "weights and activations; auto = the checkpoint's dtype on CUDA, float32 on CPU",
    "attention": "shadowkv (sparse decode, values offloaded to CPU) or dense",
    "max_model_len": "context length (prompt + output); None: the checkpoint's",
    "max_num_seqs": "most requests in the running batch",
    "max_num_batched_tokens": "token budget of one engine step (chunked prefill)",
    "max_queued_requests": "waiting requests beyond which new ones get 429; None: unbounded",
    "block_size": "tokens per KV page (a multiple of the ShadowKV chunk size)",
    "num_gpu_blocks": "device KV pool size in pages (overrides the memory fraction)",
    "gpu_memory_utilization": "fraction of free GPU memory for the device KV pool",
    "cpu_kv_pool_gb": "device KV pool size in GB when the model runs on the CPU",
    "num_cpu_blocks": "pinned CPU value pool size in pages (overrides --cpu-offload-gb)",
    "cpu_offload_gb": "pinned CPU memory for offloaded values, GB",
    "gpu_value_store_gb": "GPU memory for ShadowKV values, GB, taken from the KV pool (0: every "
                          "value in host memory; None: the split that fits the most sequences "
                          "of max_model_len, on CUDA)",
    "seed": "engine seed (requests without a seed draw from it)",
    "served_model_name": "model name clients send and /v1/models shows",
    "attention_backend": "attention kernels: flashinfer (GPU), torch, or auto (flashinfer where "
                         "it is installed and the model runs on CUDA)",
    "enforce_eager": "never capture CUDA graphs of the decode step",
    "async_scheduling": "launch each step before the previous step's tokens are read, so host "
                        "work overlaps the GPU (--no-async-scheduling: wait every step)",
    "two_batch_overlap": "split decode steps into two halves on two CUDA streams, one half's "
                         "value fetch over PCIe beside the other's compute: auto (ShadowKV steps "
                         "that read values from host memory), on, off",
}
SHADOWKV_FLAG_HELP = {
    "rank": "SVD rank of the pre-RoPE keys; None: the model's recommendation (config.json "
            "shadowkv_defaults), else the paper's 160 per 1024 key channels",
    "chunk_size": "tokens per chunk (landmark granularity)",
    "sparse_budget": "tokens attended from selected chunks per KV head",
    "outlier_chunks": "chunks per KV head kept exact",
    "local_chunks": "most recent chunks kept exact",
    "min_context_len": "sequences shorter than this stay dense",
    "landmark": "what scores a chunk: mean (the paper's mean key) or minmax (Quest's per-channel "
                "bounds, twice the landmark memory); None: the model's recommendation "
                "(config.json shadowkv_defaults), else mean",
}
SHADOWKV_CHOICES = {"landmark": LANDMARKS}
CHOICES = {"attention": ATTENTION_MODES, "dtype": DTYPES, "attention_backend": ATTENTION_BACKENDS,
           "two_batch_overlap": TWO_BATCH_OVERLAP}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_type(field_type, default):
    # `int | None` fields default to None, so the annotation decides their type.
    if default is None:
        return int if "int" in str(field_type) else float if "float" in str(field_type) else str
    return type(default)


def add_engine_args(parser: argparse.ArgumentParser):
    parser.add_argument("model", nargs="?", default=None,
                        help="Hugging Face checkpoint folder; default: the embedded trained model")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML file of EngineConfig options; flags override it")
    parser.add_argument("--print-config", action="store_true",
                        help="print the merged configuration (file, then flags) as YAML and exit")
    engine = parser.add_argument_group("engine")
    for f in fields(EngineConfig):
        if f.name in ("model", "shadowkv"):
            continue
        if isinstance(f.default, bool):  # a switch: --enforce-eager / --no-enforce-eager
            engine.add_argument(_flag(f.name), dest=f.name, default=None,
                                action=argparse.BooleanOptionalAction,
                                help=f"{ENGINE_FLAG_HELP.get(f.name, f.name)} (default: {f.default})")
            continue
        engine.add_argument(_flag(f.name), dest=f.name, default=None,
                            type=_flag_type(f.type, f.default), choices=CHOICES.get(f.name),
                            help=f"{ENGINE_FLAG_HELP.get(f.name, f.name)} (default: {f.default})")
    shadowkv = parser.add_argument_group("ShadowKV")
    for f in fields(ShadowKVConfig):
        shadowkv.add_argument(_flag("shadowkv_" + f.name), dest="shadowkv_" + f.name,
                              type=_flag_type(f.type, f.default), default=None,
                              choices=SHADOWKV_CHOICES.get(f.name),
                              help=f"{SHADOWKV_FLAG_HELP.get(f.name, f.name)} (default: {f.default})")


def _config_names_model(path: str) -> bool:
    import yaml

    return bool((yaml.safe_load(Path(path).read_text()) or {}).get("model"))


def _default_model() -> dict:
    """The shipped trained model, or the random-weight demo where it is missing."""
    from .default_model import DEFAULT_MODEL_NAME, default_model_path

    path = default_model_path()
    if path is not None:
        logger.info("no model given: serving the embedded %s (a 10M-parameter model trained on "
                    "synthetic long-context retrieval tasks) from %s", DEFAULT_MODEL_NAME, path)
        return {"model": str(path), "served_model_name": DEFAULT_MODEL_NAME}
    from .demo_model import DEMO_MODEL_NAME, ensure_demo_model

    path = ensure_demo_model()
    logger.warning("no model given: using %s at %s, a RANDOM-WEIGHT DEMO model (its output is "
                   "gibberish)", DEMO_MODEL_NAME, path)
    return {"model": str(path), "served_model_name": DEMO_MODEL_NAME}


def engine_config(args: argparse.Namespace) -> EngineConfig:
    overrides = {f.name: getattr(args, f.name) for f in fields(EngineConfig)
                 if f.name not in ("model", "shadowkv") and getattr(args, f.name) is not None}
    if args.model is not None:
        overrides["model"] = args.model
    elif not (args.config and _config_names_model(args.config)):
        overrides.update(_default_model())
    if args.config:
        config = EngineConfig.from_yaml(args.config, **overrides)
    else:
        config = EngineConfig(**overrides)
    shadowkv = {f.name: getattr(args, "shadowkv_" + f.name) for f in fields(ShadowKVConfig)
                if getattr(args, "shadowkv_" + f.name) is not None}
    if shadowkv:
        config = replace(config, shadowkv=replace(config.shadowkv, **shadowkv))
    return config


def run_serve(args: argparse.Namespace) -> int:
    from server.launch import serve  # FastAPI is needed only here
    from server.options import server_options

    return serve(engine_config(args), args.host, args.port, args.shutdown_timeout,
                 args.log_level, server_options(args))


def run_generate(args: argparse.Namespace) -> int:
    from .llm import LLM
    from .sampling_params import SamplingParams

    llm = LLM(**engine_config(args).to_dict())
    params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens)
    output = llm.generate([args.prompt], params)[0]
    print(output.outputs[0].text)
    return 0


def print_config(config: EngineConfig) -> int:
    import yaml

    print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowkv", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="OpenAI-compatible HTTP server")
    add_engine_args(serve)
    serve.add_argument("--host", default=os.environ.get("SHADOWKV_HOST", "127.0.0.1"),
                       help="address to listen on (default: $SHADOWKV_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("SHADOWKV_PORT", 8000)),
                       help="default: $SHADOWKV_PORT or 8000")
    serve.add_argument("--shutdown-timeout", type=float, default=30.0,
                       help="on SIGTERM, seconds to let running requests finish (0: abort them)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    from server.options import add_server_args  # plain argparse: no server dependency

    add_server_args(serve)
    serve.set_defaults(func=run_serve)

    generate = commands.add_parser("generate", help="complete one prompt offline and print it")
    add_engine_args(generate)
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--max-tokens", type=int, default=32)
    generate.add_argument("--temperature", type=float, default=0.0)
    generate.set_defaults(func=run_generate)

    try:
        from .eval.cli import add_parser as add_eval_parser
    except ModuleNotFoundError as e:
        if e.name != "shadowkv_engine.eval.cli":
            raise
    else:
        add_eval_parser(commands)
    from .bench.cli import add_parser as add_bench_parser

    add_bench_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "info").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "print_config", False):
            return print_config(engine_config(args))
        return args.func(args)
    except (InvalidRequestError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
