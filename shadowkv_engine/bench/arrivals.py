"""When each request is sent: all at once, or Poisson/gamma arrivals at a mean rate.

As `vllm bench serve` does: gaps are gamma-distributed with shape `burstiness` and mean
1/rate (burstiness 1 is a Poisson process, below 1 burstier, above 1 more regular), and the
cumulative send times are rescaled so the last request leaves at num_requests/rate, which removes
the run-to-run drift of the achieved rate.
"""
import math

import numpy as np


def send_times(num_requests: int, rate: float, burstiness: float = 1.0,
               seed: int = 0) -> list[float]:
    """Seconds after the start at which each request is sent; all 0 when the rate is infinite."""
    if num_requests < 0 or rate <= 0 or burstiness <= 0:
        raise ValueError("the number of requests must be >= 0, the rate and burstiness > 0")
    if math.isinf(rate) or num_requests == 0:
        return [0.0] * num_requests
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness),
                                size=num_requests))
    return (times * (num_requests / rate) / times[-1]).tolist()
