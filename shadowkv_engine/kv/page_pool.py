"""A free list of page ids. Pages are interchangeable; every allocation is returned on free."""


class OutOfPagesError(RuntimeError):
    pass


class PagePool:
    def __init__(self, name: str, num_pages: int, first_id: int = 0):
        """Hands out ids first_id .. first_id + num_pages - 1."""
        self.name = name
        self.num_pages = num_pages
        self._free = list(range(first_id + num_pages - 1, first_id - 1, -1))  # low ids first

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_pages - len(self._free)

    def allocate(self, count: int = 1) -> list[int]:
        if count > len(self._free):
            raise OutOfPagesError(f"{self.name} pool: {count} pages asked, {len(self._free)} free")
        return [self._free.pop() for _ in range(count)]

    def free(self, pages) -> None:
        self._free.extend(pages)
        if len(self._free) > self.num_pages:
            raise RuntimeError(f"{self.name} pool: a page was freed twice")
