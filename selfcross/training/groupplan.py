"""Which seeds a seed group trains, where each member writes, and how large ``auto`` makes it.

``seed_group`` (``conf/config.yaml``, not hashed) is one of:

- ``null``: a single run (today's behaviour);
- ``K`` (a count >= 1): in a single run, the seeds ``seed .. seed+K-1`` trained as one group; in
  a sweep (``-m``), groups of up to K formed from the seed axis of each (model, modality, fold)
  and every other setting;
- ``auto``: in a sweep, the largest K that fits the memory (:func:`auto_size`);
- a list of seeds ``[s1, s2, ...]`` whose first is ``seed``: exactly these (the sweeper gives each
  group's job this form).

Each member writes the folder its single run would write: in a sweep the sweep's subfolder of its
seed, in a single run ``outputs/<model>-<modality>-fold<k>-seed<s>/<config hash>/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from selfcross.errors import ConfigError

EXPECTED = "expected null, a count >= 1, auto, or a list of seeds starting with seed"
CPU_BUDGET_SHARE = 0.5
"""``seed_group=auto``: the group may use this share of the memory available now (on the CPU
``MemAvailable`` of ``/proc/meminfo``; on a GPU its free memory, ``torch.cuda.mem_get_info``)."""


def group_value(cfg: DictConfig):
    """``cfg.seed_group`` as a plain value (None, int, "auto" or a list of ints), checked."""
    value = cfg.get("seed_group")
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value)
    if value is None or value == "auto":
        return value
    if isinstance(value, bool):
        raise ConfigError(f"seed_group={value}: {EXPECTED}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"seed_group={value}: {EXPECTED}")
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        if value[0] != cfg.seed:
            raise ConfigError(f"seed_group={value}: the first seed must be seed={cfg.seed}")
        if len(set(value)) != len(value):
            raise ConfigError(f"seed_group={value}: a seed appears twice")
        return value
    raise ConfigError(f"seed_group={value}: {EXPECTED}")


def member_seeds(cfg: DictConfig) -> list[int] | None:
    """The seeds a run with ``cfg`` trains together (None: a single run). ``auto`` is a sweep's
    setting: a single run has no seed axis to fill."""
    value = group_value(cfg)
    if value is None:
        return None
    if value == "auto":
        raise ConfigError(
            "seed_group=auto: sizes the groups of a sweep (-m); a single run takes a count"
        )
    if isinstance(value, int):
        return list(range(int(cfg.seed), int(cfg.seed) + value))
    return list(value)


def member_cfg(cfg: DictConfig, seed: int, out_dir: Path) -> DictConfig:
    """The configuration of ``cfg``'s run with ``seed`` in ``out_dir`` (a member of its group)."""
    member = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(member):
        member.seed = int(seed)
        member.paths.output_dir = str(out_dir)
        member.seed_group = None
    return member


def sweep_member_dir(own_dir: Path, subdir: Callable[[int], str], first: int, seed: int) -> Path:
    """A sweep member's folder: the sweep folder (``own_dir`` without the first member's
    subfolder) and the subfolder of ``seed``. ``subdir(s)``: ``hydra.sweep.subdir`` for seed s."""
    own, first_sub = str(own_dir), subdir(first).strip("/")
    if not own.rstrip("/").endswith(first_sub):
        raise ConfigError(
            f"hydra.sweep.subdir={first_sub}: the job's folder {own} does not end with it"
        )
    return Path(own.rstrip("/")[: -len(first_sub)]) / subdir(seed).strip("/")


def job_subdir(cfg: DictConfig) -> Callable[[int], str]:
    """Inside a sweep's job: ``hydra.sweep.subdir`` resolved for another seed."""
    from hydra.core.hydra_config import HydraConfig

    pattern = OmegaConf.to_container(HydraConfig.get().sweep, resolve=False)["subdir"]
    plain = OmegaConf.to_container(cfg, resolve=False)

    def subdir(seed: int) -> str:
        node = OmegaConf.create({**plain, "seed": int(seed), "_subdir": pattern})
        return str(node._subdir)

    return subdir


def form_groups(seeds: Sequence[int], cells: Sequence[tuple], size: int) -> list[list[int]]:
    """Job indices grouped by cell (every override but the seed), in order of first
    appearance, in groups of at most ``size``."""
    by_cell: dict[tuple, list[int]] = {}
    for i, cell in enumerate(cells):
        by_cell.setdefault(cell, []).append(i)
    groups = []
    for members in by_cell.values():
        members = sorted(members, key=lambda i: seeds[i])
        groups += [members[i : i + size] for i in range(0, len(members), size)]
    return groups


def memory_budget(device=None) -> int:
    """Bytes a group may use on ``device`` (default the CPU): :data:`CPU_BUDGET_SHARE` of the
    memory available now there."""
    if device is not None and device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free * CPU_BUDGET_SHARE)
    try:
        with open("/proc/meminfo") as f:
            line = next(x for x in f if x.startswith("MemAvailable:"))
        return int(int(line.split()[1]) * 1024 * CPU_BUDGET_SHARE)
    except (OSError, StopIteration):  # not Linux: the whole machine's memory
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * CPU_BUDGET_SHARE)


def group_bytes(cfg: DictConfig, members: int, device=None) -> int:
    """Measured by a probe on ``device`` (default the CPU; its code path: on CUDA the unfused
    GRU): the bytes a group of ``members`` holds during a training step at ``cfg``'s shapes and
    batch size: parameters, gradients and Adam's two moments (4 copies), the batch, and every
    tensor the forward pass saves for the backward pass (autograd's saved tensors, counted once
    per storage)."""
    import torch
    from hydra.utils import instantiate

    from selfcross.models.stacked import stack_networks
    from selfcross.models.streams import SeedStream

    streams = [SeedStream(i) for i in range(members)]
    nets = [s.build(lambda: instantiate(cfg.model.network)) for s in streams]
    net = stack_networks(nets, streams).to(device or "cpu")
    shapes, batch = cfg.data.shapes, int(cfg.data.batch_size) * members
    inputs = {m: torch.randn(batch, shapes[m].seq_len, shapes[m].feat_dim, device=device)
              for m in net.modalities}  # fmt: skip
    inputs["label"] = torch.zeros(batch, dtype=torch.long, device=device)
    storages: dict[int, torch.UntypedStorage] = {}

    def keep(t):
        # The storage, held till the probe ends (a freed one's address could be reused and
        # counted once), not the tensor: a saved output would hold its own graph node, a cycle
        # Python's collector cannot see, and the probe's whole graph leaked. No backward runs.
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage
        return None

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda _: None):
        net(inputs)
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    data = sum(t.numel() * t.element_size() for t in inputs.values())
    return 4 * params + data + sum(s.nbytes() for s in storages.values())


def auto_size(cfg: DictConfig, budget: int, largest: int = 64, device=None) -> int:
    """The largest group (at most ``largest``) whose probe-measured step fits in ``budget``
    bytes: two probes (1 and 2 members, on ``device``) give the fixed and per-member costs."""
    one, two = group_bytes(cfg, 1, device), group_bytes(cfg, 2, device)
    per_member = max(two - one, 1)
    fixed = max(one - per_member, 0)
    k = (budget - fixed) // per_member
    if k < 1:
        raise ConfigError(
            f"seed_group=auto: one member needs {one / 2**20:.0f} MiB, the budget is "
            f"{budget / 2**20:.0f} MiB"
        )
    return int(min(k, largest))
