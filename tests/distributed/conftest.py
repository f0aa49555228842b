"""A local Ray cluster, started once per test module that asks for it and always shut down."""
import pytest


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # Logical CPUs: one per replica plus one for a replacement starting while the dead
    # replica's slot is being released; each replica's torch runs on one thread.
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
