"""Data parallelism on Ray: engine replicas on the GPUs (or CPUs) of a cluster, behind one server.

`replica.py` is the Ray actor that owns one engine, `replica_set.py` starts, watches and restarts
the actors, `router.py` sends each request to one of them and gives the server the same API as
one `AsyncEngine`. Ray is optional: this package imports it only when replicas are started.
"""
from ..errors import EngineDeadError

RAY_INSTALL_HINT = "pip install 'shadowkv-engine[ray]'"


class ReplicaDiedError(EngineDeadError):
    """The replica running a request died or stopped answering; the request is lost (HTTP 500).
    Its message is meant for the client: it says what happened and that a retry will work."""


class NoReplicaReadyError(EngineDeadError):
    """Every replica is down or restarting (HTTP 503)."""


def require_ray():
    """The `ray` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ModuleNotFoundError as e:
        if e.name != "ray":
            raise
        raise ImportError(f"--distributed-backend ray needs Ray, which is not installed: "
                          f"{RAY_INSTALL_HINT}") from None
    return ray
