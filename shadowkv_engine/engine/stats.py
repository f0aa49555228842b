"""A snapshot of engine counters and gauges, read by the server's /metrics."""
from dataclasses import dataclass


@dataclass
class EngineStats:
    num_running: int = 0
    num_waiting: int = 0
    num_preemptions_total: int = 0
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    requests_finished_total: int = 0
    gpu_blocks_total: int = 0
    gpu_blocks_used: int = 0
    cpu_blocks_total: int = 0  # pinned host pages of the value store
    cpu_blocks_used: int = 0
    gpu_value_blocks_total: int = 0  # the value store's pages in GPU memory (its device tier)
    gpu_value_blocks_used: int = 0
    shadowkv_chunks_selected_total: int = 0  # chunk selections over all decode steps
    shadowkv_chunk_hits_total: int = 0  # of those, chunks already resident on the GPU
    cpu_bytes_fetched_total: int = 0  # value bytes gathered from the CPU store (over PCIe)

    @property
    def gpu_usage(self) -> float:
        return self.gpu_blocks_used / self.gpu_blocks_total if self.gpu_blocks_total else 0.0

    @property
    def cpu_usage(self) -> float:
        return self.cpu_blocks_used / self.cpu_blocks_total if self.cpu_blocks_total else 0.0

    @property
    def gpu_value_usage(self) -> float:
        return (self.gpu_value_blocks_used / self.gpu_value_blocks_total
                if self.gpu_value_blocks_total else 0.0)

    @property
    def free_value_blocks(self) -> int:
        """Value-store pages free in either tier."""
        return (self.cpu_blocks_total - self.cpu_blocks_used + self.gpu_value_blocks_total
                - self.gpu_value_blocks_used)

    @property
    def value_blocks_total(self) -> int:
        return self.cpu_blocks_total + self.gpu_value_blocks_total

    @property
    def shadowkv_hit_rate(self) -> float:
        selected = self.shadowkv_chunks_selected_total
        return self.shadowkv_chunk_hits_total / selected if selected else 0.0
