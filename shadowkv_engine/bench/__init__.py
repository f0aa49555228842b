"""`shadowkv bench serve`: a load test of any OpenAI-compatible server, after `vllm bench serve`."""
