"""The value store's page ids, over two tiers: pinned host memory and spare GPU memory.

ShadowKV keeps the values of compressed chunks off the KV arena because device memory is what
bounds the batch. When it is not (at long contexts host RAM for the values runs out first, and
the arena has memory to spare), values in device memory are read at HBM speed instead of over
PCIe, the step's bound. So the store is tiered: ids 0 .. host - 1 are pages of the pinned host
store, ids host .. host + device - 1 pages of the device tier (KVStorage.device_values), and
allocation fills the device tier first. Both tiers have one layout; the ops address either by id
(ops.gather_values, ops.offload_values). A sequence's pages may span both tiers.
"""
import numpy as np

from .page_pool import OutOfPagesError, PagePool


class TieredValuePool:
    def __init__(self, host_pages: int, device_pages: int):
        self.host = PagePool("CPU value", host_pages)
        self.device = PagePool("GPU value", device_pages, first_id=host_pages)

    @property
    def num_pages(self) -> int:
        return self.host.num_pages + self.device.num_pages

    @property
    def num_free(self) -> int:
        return self.host.num_free + self.device.num_free

    @property
    def num_used(self) -> int:
        return self.num_pages - self.num_free

    def allocate(self, count: int = 1) -> list[int]:
        """`count` page ids, device tier first; all or none."""
        if count > self.num_free:
            raise OutOfPagesError(f"value pool: {count} pages asked, {self.num_free} free "
                                  f"({self.device.num_free} in GPU memory, {self.host.num_free} "
                                  "in host memory)")
        on_device = min(count, self.device.num_free)
        return self.device.allocate(on_device) + self.host.allocate(count - on_device)

    def free(self, pages) -> None:
        pages = list(pages)
        boundary = self.host.num_pages
        self.host.free([p for p in pages if p < boundary])
        self.device.free([p for p in pages if p >= boundary])

    def on_host(self, pages) -> int:
        """How many of these page ids are host-tier pages."""
        return int((np.asarray(pages) < self.host.num_pages).sum())
