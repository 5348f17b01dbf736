"""The allocator a seed group trains with: freed memory kept for reuse within the group, and
given back when it ends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Six "training steps" that each make and free two large tensors (64 and 40 MiB) inside the
# block: the page faults of each step, then the resident memory (MiB) inside the block after
# the steps and once it has ended. glibc serves blocks this size with a fresh mmap and unmaps
# them when freed, so by default every step faults its 26,000 pages in again.
STEPS = """
import resource, torch
from selfcross.training.runtime import freed_memory_kept

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 2**20

faults = []
with freed_memory_kept() as kept:
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a, b = torch.empty(16 * 2**20).fill_(1.0), torch.empty(10 * 2**20).fill_(2.0)
        (a[: 10 * 2**20] * b).sum()
        del a, b
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    inside = rss()
print(kept, inside, rss(), *faults)
"""


def steps(env_value: str | None) -> tuple[str, int, int, list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "SELFCROSS_KEEP_FREED_MEMORY"}
    if env_value is not None:
        env["SELFCROSS_KEEP_FREED_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    return out[0], int(out[1]), int(out[2]), [int(n) for n in out[3:]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_steps_reuse_freed_memory_and_the_end_gives_it_back():
    kept, inside, after, faults = steps(None)
    assert kept == "True" and max(faults[-2:]) < 1000, faults
    assert inside - after > 80, (inside, after)  # the 104 MiB the steps held, returned
    kept, inside, after, faults = steps("0")
    assert kept == "False" and min(faults[-2:]) > 26000, faults
