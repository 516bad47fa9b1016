"""One self-contained HTML report (plots embedded as PNG) from the report tables, collected as pandas.

``render(sections, title, subtitle)`` -> HTML text. ``sections`` maps a report table name to its rows
(pandas); a missing or empty table gets a short note instead of a plot. Only aggregates are shown: no
personal value reaches the report.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.5rem}
.sub{color:#666}table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f4f4f4}
.note{color:#888;font-style:italic}img{max-width:100%}"""


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(frame: pd.DataFrame, limit: int = 30) -> str:
    return frame.head(limit).to_html(index=False, escape=True, na_rep="")


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _bars(labels: list[str], values: list[float], title: str, xlabel: str) -> str:
    figure, axes = plt.subplots(figsize=(8, max(2.0, 0.35 * len(labels) + 1)))
    axes.barh(labels[::-1], values[::-1], color="#4c72b0")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    return _png(figure)


def _heatmap(matrix: pd.DataFrame, title: str, value_format: str = "{:.0f}") -> str:
    figure, axes = plt.subplots(figsize=(max(5.0, 0.9 * matrix.shape[1] + 3), max(3.0, 0.5 * matrix.shape[0] + 1.5)))
    values = matrix.to_numpy(dtype=float)
    image = axes.imshow(values, cmap="Blues", aspect="auto")
    axes.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=30, ha="right")
    axes.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index])
    for (i, j), value in np.ndenumerate(values):
        if not np.isnan(value):
            axes.text(j, i, value_format.format(value), ha="center", va="center", fontsize=8,
                      color="white" if value > np.nanmax(values) * 0.6 else "black")
    axes.set_title(title)
    figure.colorbar(image, ax=axes)
    return _png(figure)


def _segments(metrics: pd.DataFrame, grouping: str, title: str) -> str:
    rows = metrics[metrics["grouping"] == grouping].drop(columns=["grouping"])
    if rows.empty:
        return _note(f"no {title.lower()}: the table has no rows for {grouping}")
    rows = rows.sort_values("customers", ascending=False)
    plot = _bars(rows["segment"].tolist(), rows["customers"].astype(float).tolist(), f"{title}: customers",
                 "customers")
    return plot + _table(rows)


def _movement(movement: pd.DataFrame) -> str:
    parts = []
    for state, rows in movement.groupby("state"):
        matrix = rows.pivot_table(index="from_value", columns="to_value", values="persons", aggfunc="sum",
                                  dropna=False).fillna(0)
        dates = f"{rows['from_date'].iloc[0]} to {rows['to_date'].iloc[0]}"
        parts.append(_heatmap(matrix, f"{state}: movement {dates} (rows: before, columns: after)"))
    return "".join(parts) or _note("no earlier state to compare with yet: movement appears from the second run")


def _funnels(funnel: pd.DataFrame) -> str:
    parts = []
    for name, rows in funnel.groupby("funnel"):
        rows = rows.sort_values("step_number")
        figure, axes = plt.subplots(figsize=(8, 3))
        axes.bar(rows["step"], rows["actors"], color="#55a868")
        for x, (actors, share) in enumerate(zip(rows["actors"], rows["pct_of_first"], strict=True)):
            axes.text(x, actors, f"{actors}\n{share:.0%}", ha="center", va="bottom", fontsize=8)
        axes.set_title(f"Funnel {name}")
        axes.set_ylabel("people")
        axes.margins(y=0.25)
        parts.append(_png(figure) + _table(rows))
    return "".join(parts)


SECTIONS = (
    ("RFM segments", "report_segment_metrics", lambda t: _segments(t, "rfm_segment", "RFM segments")),
    ("RFM grid (recency x frequency)", "report_rfm_grid",
     lambda t: _heatmap(t.pivot_table(index="rfm_recency", columns="rfm_frequency", values="customers",
                                      aggfunc="sum").fillna(0), "customers by R (rows) and F (columns)")),
    ("Movement between runs", "report_state_movement", _movement),
    ("CLV tiers (Pleasepoint's 9 metrics)", "report_segment_metrics",
     lambda t: _segments(t, "clv_tier", "CLV tiers")),
    ("Lifecycle (hibernation) states", "report_segment_metrics",
     lambda t: _segments(t, "hibernation_state", "Lifecycle states")),
    ("Personas: propensity per category", "report_persona_heatmap",
     lambda t: _heatmap(t.pivot_table(index="persona_name", columns="category", values="share", aggfunc="sum"),
                        "mean share of purchases", "{:.2f}") + _segments_note()),
    ("Funnels", "report_funnel", _funnels),
    ("Repeat-purchase timing per category", "report_repeat_purchase",
     lambda t: _bars(t["category"].tolist(), t["average_days_between"].fillna(0).astype(float).tolist(),
                     "average days between purchases of the category", "days") + _table(t)),
    ("Products bought in the next order", "report_next_order_products", _table),
    ("Products bought in the same cart", "report_same_cart_products", _table),
)


def _segments_note() -> str:
    return _note("levels (zero / low / medium / high) are in gold.report_persona_heatmap and gold.persona_model")


def render(sections: Mapping[str, pd.DataFrame | None], title: str, subtitle: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="sub">{html.escape(subtitle)}</p>']
    for heading, table, draw in SECTIONS:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        frame = sections.get(table)
        if frame is None or frame.empty:
            body.append(_note(f"gold.{table} is empty or was not produced (see the run log)"))
        else:
            body.append(draw(frame))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
