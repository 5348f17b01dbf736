"""A W&B workspace for Table 1: test WA/UWA per (model, modality) cell, learning curves.

Runs are grouped by their W&B group, ``<model>-<modality>`` (one group per table cell, see
:mod:`selfcross.training.tracking`), so each bar is a cell's mean with its standard deviation over
folds and seeds; the run table is grouped by model and modality. Building the workspace needs no
network; ``python -m selfcross.dashboard`` saves it.
"""

from __future__ import annotations

METRICS = (("test/uwa", "UWA (accuracy)"), ("test/wa", "WA (mean per-class recall)"))
CURVES = (("val/uwa", "validation UWA"), ("val/loss", "validation loss"), ("lr", "learning rate"))


def build_workspace(entity: str, project: str = "selfcross", data_label: str | None = None):
    """The workspace object (nothing is sent until ``.save()``)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def cell_bars(metric: str, title: str):
        return wr.BarPlot(
            title=f"Test {title}: mean ± std per model and modality",
            metrics=[wr.SummaryMetric(metric)],
            groupby="Group",
            groupby_aggfunc="mean",
            groupby_rangefunc="stddev",
            max_bars_to_show=20,
        )

    def curve(metric: str, title: str):
        return wr.LinePlot(
            title=f"{title} per epoch (mean ± std per cell)",
            x="epoch",
            y=[metric],
            groupby="Group",
            groupby_aggfunc="mean",
            groupby_rangefunc="stddev",
        )

    sections = [
        ws.Section(name="Table 1", is_open=True, panels=[cell_bars(m, t) for m, t in METRICS]),
        ws.Section(name="Learning curves", is_open=True, panels=[curve(m, t) for m, t in CURVES]),
    ]
    runset = ws.RunsetSettings(
        groupby=[ws.Config("model.name"), ws.Config("modality.name")],
        pinned_columns=["summary:test/wa", "summary:test/uwa", "summary:n_params"],
        filters=f"Config('data.label') = '{data_label}'" if data_label else "",
    )
    name = f"selfcross Table 1 ({data_label})" if data_label else "selfcross Table 1"
    return ws.Workspace(
        entity=entity, project=project, name=name, sections=sections, runset_settings=runset
    )
