"""Offline decode throughput, dense vs ShadowKV: `shadowkv bench throughput` as a script (same
options; shadowkv_engine/bench/throughput.py).

    python benchmarks/throughput.py --shape llama3.1-8b --context 32768 122880 --batches 1 8 max \
        --profile --peer hf --project-hit-rates 0.33 0.37 0.47 --out results.json
"""
import sys

from shadowkv_engine.bench.throughput import main

if __name__ == "__main__":
    sys.exit(main())
