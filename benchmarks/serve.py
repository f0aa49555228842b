"""Load-test an OpenAI-compatible server: `shadowkv bench serve` as a script (same options).

    python benchmarks/serve.py --base-url http://127.0.0.1:8000 --dataset long-32k \
        --num-prompts 64 --max-concurrency 1 4 8 16 --ignore-eos --save-result --plot
"""
import sys

from shadowkv_engine.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
