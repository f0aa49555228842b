"""`shadowkv bench`: `serve`, a load test of any OpenAI-compatible server (after `vllm bench serve`);
`throughput`, the engine's offline decode throughput, dense vs ShadowKV, against its roofline;
`shape`, a named model shape's checkpoint folder without weights."""
