"""The attention heatmaps and console summary (report/attention.py) on a hand-made record and
hand-made maps: what each panel shows, where padding is marked, and the PNG's size, read from
the figure as it is saved (no run is trained)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from selfcross.analysis.records import AttentionRecord, ModuleAttention, UtteranceFigure
from selfcross.report import attention as report

SITES = [
    SimpleNamespace(name="self_attention.T", query="T", key="T"),
    SimpleNamespace(name="cross_attention.A2T", query="T", key="A"),
    SimpleNamespace(name="self_attention.A", query="A", key="A"),
    SimpleNamespace(name="cross_attention.T2A", query="A", key="T"),
]


def module(query: str, key: str, entropy: float, padding: float) -> ModuleAttention:
    return ModuleAttention(query=query, key=key, heads=2, rows=10, entropy=[entropy] * 2,
                           padding_share=[padding] * 2, entropy_mean=entropy,
                           padding_share_mean=padding, uniform_entropy=1.609)  # fmt: skip


def record(utterances) -> AttentionRecord:
    return AttentionRecord(
        run="runs/self-TA", model="cross", modality="TA", fold=2, seed=7, mask_padding=False,
        checkpoint="best.ckpt", split="test", n_utterances=12, valid_rule="nonzero",
        modules={"self_attention.T": module("T", "T", 1.25, 0.0),
                 "cross_attention.A2T": module("T", "A", 0.5, 0.1234)},
        utterances=utterances,
    )  # fmt: skip


def maps(valid_t: int, valid_a: int) -> dict:
    """Maps of one utterance: T has 4 steps, A 6; query rows are the first axis."""
    rng = np.random.default_rng(0)
    shapes = {"self_attention.T": (4, 4), "cross_attention.A2T": (4, 6),
              "self_attention.A": (6, 6), "cross_attention.T2A": (6, 4)}  # fmt: skip
    heat = {name: rng.random(shape) for name, shape in shapes.items()}
    return {"maps": heat, "valid": {"T": valid_t, "A": valid_a}}


@pytest.fixture
def saved(monkeypatch):
    """Each figure as it is saved: its panels' titles, images and padding marks."""
    figures = []
    real = report.atomic.save_figure

    def capture(fig, path, **kwargs):
        panels = [ax for ax in fig.axes if ax.get_images()]
        figures.append({
            "size": tuple(fig.get_size_inches()),
            "title": fig._suptitle.get_text(),
            "hidden": sum(1 for ax in fig.axes if not ax.axison),
            "panels": [{
                "title": ax.get_title(),
                "extent": tuple(ax.get_images()[0].get_extent()),
                "clim": ax.get_images()[0].get_clim(),
                "data": np.asarray(ax.get_images()[0].get_array()),
                "hatched": sorted((p.get_x(), p.get_y(), p.get_width(), p.get_height())
                                  for p in ax.patches),
                "hatches": {(p.get_hatch(), p.get_edgecolor()) for p in ax.patches},
                "lines": sorted((tuple(line.get_xdata()), tuple(line.get_ydata()))
                                for line in ax.lines),
                "texts": [t.get_text() for t in ax.texts],
            } for ax in panels],
        })  # fmt: skip
        return real(fig, path, **kwargs)

    monkeypatch.setattr(report.atomic, "save_figure", capture)
    return figures


def test_each_utterance_is_one_png_of_its_panels_with_padding_hatched(tmp_path, saved):
    figures = [
        UtteranceFigure(3, "ang", {"T": 4, "A": 6}, {"T": 3, "A": 6}, "utt3.png"),
        UtteranceFigure(9, "sad", {"T": 4, "A": 6}, {"T": 4, "A": 2}, "utt9.png"),
    ]
    rec = record(figures)
    paths = report.draw_attention(rec, SITES, {3: maps(3, 6), 9: maps(4, 2)}, tmp_path / "png")
    assert paths == [tmp_path / "png" / "utt3.png", tmp_path / "png" / "utt9.png"]
    # 4 panels: 3 columns, 2 rows, the last two cells of the grid hidden; 110 dpi
    with Image.open(paths[0]) as image:
        assert image.size == (round(3 * 4.2 * 110), round(2 * 3.8 * 110))
    first, second = saved
    assert first["size"] == pytest.approx((3 * 4.2, 2 * 3.8)) and first["hidden"] == 2
    assert first["title"] == (
        "cross TA, fold 2 seed 7, mask_padding=False: test utterance 3 (ang)"
        "   (mean over heads; hatched beyond the red line: padding)"
    )
    panels = {p["title"].split("\n")[0]: p for p in first["panels"]}
    assert list(panels) == [s.name for s in SITES]
    # utterance 3: T has 3 of 4 steps valid, A all 6
    a2t = panels["cross_attention.A2T"]
    assert a2t["title"] == "cross_attention.A2T\nquery T (3/4 valid), key A (6/6 valid)"
    np.testing.assert_array_equal(a2t["data"], maps(3, 6)["maps"]["cross_attention.A2T"])
    assert a2t["extent"] == (-0.5, 5.5, 3.5, -0.5)  # keys across, queries down
    assert a2t["clim"] == (0.0, pytest.approx(a2t["data"].max()))
    # the padded query row (row 3) is hatched across all 6 keys, with a red line above it
    assert a2t["hatched"] == [(-0.5, 2.5, 6, 1)]
    assert a2t["lines"] == [((0, 1), (2.5, 2.5))]
    assert a2t["hatches"] == {("//", (1.0, 1.0, 1.0, 1.0))}  # white hatching
    t2a = panels["cross_attention.T2A"]  # the padded key column (T step 3) of A's queries
    assert t2a["hatched"] == [(2.5, -0.5, 1, 6)] and t2a["lines"] == [((2.5, 2.5), (0, 1))]
    assert panels["self_attention.A"]["hatched"] == []  # nothing padded
    # utterance 9: A has 2 of 6 steps valid, T all 4
    panels = {p["title"].split("\n")[0]: p for p in second["panels"]}
    assert panels["self_attention.A"]["hatched"] == [(-0.5, 1.5, 6, 4), (1.5, -0.5, 4, 6)]
    assert panels["self_attention.T"]["hatched"] == []


def test_a_panel_with_no_valid_key_says_so(tmp_path, saved):
    empty = maps(4, 0)
    empty["maps"]["cross_attention.A2T"] = np.zeros((4, 6))
    rec = record([UtteranceFigure(5, "hap", {"T": 4, "A": 6}, {"T": 4, "A": 0}, "utt5.png")])
    report.draw_attention(rec, SITES[:2], {5: empty}, tmp_path)
    (figure,) = saved
    assert figure["size"] == pytest.approx((2 * 4.2, 3.8)) and figure["hidden"] == 0
    a2t, t = figure["panels"][1], figure["panels"][0]
    assert a2t["texts"] == ["no valid key:\nattends to nothing"] and t["texts"] == []
    assert a2t["clim"] == (0.0, 1.0)  # an all-zero map keeps a unit colour scale


def test_the_summary_prints_one_line_per_module(tmp_path, capsys):
    rec = record([UtteranceFigure(3, "ang", {}, {}, "utt3.png")])
    report.print_summary(rec, tmp_path)
    assert capsys.readouterr().out.splitlines() == [
        "cross TA (mask_padding=False), 12 test utterances",
        f"{'module':<32} {'entropy':>8} {'uniform':>8} {'on padding':>10}",
        f"{'self_attention.T':<32} {'1.250':>8} {'1.609':>8} {'0.0%':>10}",
        f"{'cross_attention.A2T':<32} {'0.500':>8} {'1.609':>8} {'12.3%':>10}",
        f"wrote {tmp_path / 'attention.json'} and 1 PNGs",
    ]
