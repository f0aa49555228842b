"""The value store's page ids over two tiers: device pages first, every page back on free."""
import pytest

from shadowkv_engine.kv.page_pool import OutOfPagesError
from shadowkv_engine.kv.value_pool import TieredValuePool


def test_device_tier_fills_first_then_host_pages():
    pool = TieredValuePool(host_pages=5, device_pages=3)
    first = pool.allocate(2)
    assert sorted(first) == [5, 6]  # device-tier ids follow the host store's
    second = pool.allocate(4)
    assert sorted(second) == [0, 1, 2, 7]
    assert pool.on_host(first + second) == 3 and pool.num_free == 2
    pool.free(first)
    assert sorted(pool.allocate(2)) == [5, 6]  # freed device pages are taken again first


def test_all_or_nothing_and_every_page_returns():
    pool = TieredValuePool(host_pages=2, device_pages=2)
    with pytest.raises(OutOfPagesError, match="5 pages asked, 4 free"):
        pool.allocate(5)
    assert pool.num_free == 4  # a refused request takes nothing
    pages = pool.allocate(4)
    pool.free(pages)
    assert (pool.host.num_free, pool.device.num_free, pool.num_used) == (2, 2, 0)
    with pytest.raises(RuntimeError, match="freed twice"):
        pool.free([3, 3])


def test_without_a_device_tier_it_is_the_host_store():
    pool = TieredValuePool(host_pages=3, device_pages=0)
    assert sorted(pool.allocate(3)) == [0, 1, 2]
