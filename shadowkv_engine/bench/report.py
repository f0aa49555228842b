"""The console summary, in `vllm bench serve`'s fixed-width layout, and the sweep table."""
WIDTH = 50
LATENCIES = (("ttft_ms", "TTFT", "Time to First Token"),
             ("tpot_ms", "TPOT", "Time per Output Token (excl. 1st token)"),
             ("itl_ms", "ITL", "Inter-token Latency"),
             ("e2el_ms", "E2EL", "End-to-end Latency"))


def line(label: str, value) -> str:
    if isinstance(value, float):
        value = f"{value:.2f}"
    return f"{label:<40} {value}"


def heading(text: str, fill: str = "-") -> str:
    return f"{' ' + text + ' ':{fill}^{WIDTH}}" if fill == "=" else f"{text:{fill}^{WIDTH}}"


def format_run(result: dict, run: dict) -> str:
    concurrency = run["max_concurrency"] or "unbounded"
    rows = [heading("Serving Benchmark Result", "="),
            line("Successful requests:", run["completed"]),
            line("Failed requests:", run["failed"]),
            line("Request rate configured (RPS):", result["request_rate"]),
            line("Maximum request concurrency:", concurrency),
            line("Benchmark duration (s):", run["duration_s"]),
            line("Total input tokens:", run["total_input_tokens"]),
            line("Total generated tokens:", run["total_output_tokens"]),
            line("Request throughput (req/s):", run["request_throughput"])]
    if "request_goodput" in run:
        slos = " ".join(f"{k}:{v:g}" for k, v in run["goodput_slos_ms"].items())
        rows += [line("Goodput SLOs (ms):", slos),
                 line("Request goodput (req/s):", run["request_goodput"])]
    rows += [line("Output token throughput (tok/s):", run["output_throughput"]),
             line("Total token throughput (tok/s):", run["total_token_throughput"]),
             line("Peak concurrent requests:", run["max_concurrent_requests"])]
    for key, short, title in LATENCIES:
        rows.append(heading(title))
        dist = run[key]
        rows += [line(f"Mean {short} (ms):", dist["mean"]),
                 line(f"Median {short} (ms):", dist["median"])]
        rows += [line(f"{name.upper()} {short} (ms):", value) for name, value in dist.items()
                 if name.startswith("p") and name != "p50"]
    if run["accuracy"]:
        rows.append(heading("Synthetic tasks (exact match)"))
        for task, cell in run["accuracy"]["per_task"].items():
            rows.append(line(f"{task}:", f"{cell['correct']}/{cell['scored']}"))
        total = run["accuracy"]
        rows.append(line("Accuracy (%):", 100.0 * (total["exact_match"] or 0.0)))
    rows += format_server(run["server_metrics"])
    if run["errors"]:
        rows.append(heading("Errors (most frequent first)"))
        rows += [f"{e['count']:>5} x {e['error'][:200]}" for e in run["errors"]]
    rows.append("=" * WIDTH)
    return "\n".join(rows)


def format_server(metrics: dict) -> list[str]:
    rows = [heading("Server /metrics (delta over the run)")]
    if not metrics["available"]:
        return rows + [f"unavailable: {metrics['error']}"]
    count = lambda name: None if metrics[name] is None else int(metrics[name])
    hit = metrics["shadowkv_hit_rate"]
    scope = ", since start" if metrics.get("shadowkv_hit_rate_scope") == "since server start" \
        else ""
    values = [("Preemptions:", count("preemptions")),
              ("Prompt tokens (server):", count("prompt_tokens")),
              ("Generation tokens (server):", count("generation_tokens")),
              ("CPU bytes fetched (MB):", None if metrics["cpu_bytes_fetched"] is None
               else metrics["cpu_bytes_fetched"] / 1e6),
              (f"ShadowKV hit rate{scope} (%):", None if hit is None else 100.0 * hit),
              ("Mean queue time (ms):", metrics["mean_queue_time_ms"])]
    return rows + [line(label, "n/a" if value is None else value) for label, value in values]


def format_sweep(result: dict) -> str:
    """One line per concurrency level."""
    header = (f"{'concurrency':>11} {'ok':>5} {'fail':>5} {'req/s':>8} {'out tok/s':>10} "
              f"{'p50 TTFT':>9} {'p99 TTFT':>9} {'p50 TPOT':>9} {'p99 TPOT':>9} {'p99 E2E':>9}"
              f"{'   acc %' if result['runs'][0]['accuracy'] else ''}")
    rows = [header, "-" * len(header)]
    for run in result["runs"]:
        row = (f"{run['max_concurrency'] or 'unbounded':>11} {run['completed']:>5} "
               f"{run['failed']:>5} {run['request_throughput']:>8.2f} "
               f"{run['output_throughput']:>10.1f} {run['ttft_ms']['median']:>9.1f} "
               f"{run['ttft_ms']['p99']:>9.1f} {run['tpot_ms']['median']:>9.1f} "
               f"{run['tpot_ms']['p99']:>9.1f} {run['e2el_ms']['p99']:>9.1f}")
        if run["accuracy"]:
            row += f" {100.0 * (run['accuracy']['exact_match'] or 0.0):>7.1f}"
        rows.append(row)
    return "\n".join(rows)
