"""Where the time goes: forward + backward and eval time of each layer of a tri-modal
Cross+Self network (every encoder, self-attention and cross-attention module), ours against
the baseline."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from selfcross.benchmark.network import OnRow
from selfcross.benchmark.timing import median, timed
from selfcross.benchmark.variants import Settings, build_pair
from selfcross.models import EmotionNet


def bench_layers(settings: Settings, on_row: OnRow | None = None) -> list[dict]:
    """One row per layer of ``cross_self`` on TVA; ``on_row`` gets each as it is measured."""
    s = settings
    autocast_dtype = s.autocast_dtype
    ours_net, base_net, shapes = build_pair("cross_self", "TVA", s.preset, s.overrides)
    device = torch.device(s.device)
    ours_net.to(device)
    base_net.to(device)
    ours_cases = _layer_cases(ours_net, shapes, s.batch, device, torch.float32)
    base_cases = (
        _layer_cases(base_net, shapes, s.batch, device, torch.float64) if s.baseline else {}
    )
    rows = []
    for name, case in ours_cases.items():
        pairs = [("ours", *case, autocast_dtype)]
        if s.baseline:
            pairs.append(("baseline", *base_cases[name], None))
        times = {k: {"train": [], "eval": []} for k, *_ in pairs}
        for i in range(s.warmup + s.steps):
            for key, module, f, xs, ac in pairs:
                train_ms = timed(device, _layer_train, module, f, xs, device, ac)
                eval_ms = timed(device, _layer_eval, module, f, xs, device, ac)
                if i >= s.warmup:
                    times[key]["train"].append(train_ms)
                    times[key]["eval"].append(eval_ms)
        row = {
            "layer": name,
            "device": s.device,
            "batch": s.batch,
            "train_ms": median(times["ours"]["train"]),
            "eval_ms": median(times["ours"]["eval"]),
        }
        if s.baseline:
            row["baseline_train_ms"] = median(times["baseline"]["train"])
            row["baseline_eval_ms"] = median(times["baseline"]["eval"])
            row["train_speedup"] = round(row["baseline_train_ms"] / row["train_ms"], 2)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def _layer_cases(net: EmotionNet, shapes: dict, b: int, device: torch.device, dtype) -> dict:
    """{layer name: (module, call, inputs)}: random inputs of each layer's shapes, seeded."""
    gen = torch.Generator().manual_seed(2)

    def rand(*shape, grad=True):
        x = torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)
        return x.requires_grad_(grad)

    cases = {}
    for m, enc in net.encoders.items():
        s = shapes[m]
        if enc.conv is not None:
            x = rand(b, s["seq_len"], s["feat_dim"], grad=False)
            cases[f"{m} conv {s['seq_len']}->{s['conv_out']}"] = (enc.conv, enc.conv, (x,))
        # Text enters its GRU straight from the data; audio and vision from the conv.
        x = rand(b, enc.out_len, s["feat_dim"], grad=enc.conv is not None)
        cases[f"{m} bi-GRU {enc.out_len}x{s['feat_dim']}"] = (enc, enc.recurrent, (x,))
    encoded = {m: rand(b, enc.out_len, enc.out_dim) for m, enc in net.encoders.items()}
    for m, attn in net.self_attention.items():
        t = encoded[m].shape[1]
        call = _attention_call(net, attn)
        cases[f"{m} self-attention {t}x{t}"] = (attn, call, (encoded[m],))
    for pair, attn in net.cross_attention.items():
        src, tgt = pair.split("2")
        lt, ls = encoded[tgt].shape[1], encoded[src].shape[1]
        call = _attention_call(net, attn)
        cases[f"{src}->{tgt} cross-attention {lt}x{ls}"] = (
            attn,
            call,
            (encoded[tgt], encoded[src]),
        )
    return cases


def _attention_call(net: EmotionNet, attention: nn.Module):
    return lambda *streams: net._attention_output(attention, *streams)


def _layer_train(module: nn.Module, fn, inputs, device, autocast_dtype) -> None:
    module.train()
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        out = fn(*inputs)
    out.float().sum().backward()


@torch.no_grad()
def _layer_eval(module: nn.Module, fn, inputs, device, autocast_dtype) -> None:
    module.eval()
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with ctx:
        fn(*inputs)
