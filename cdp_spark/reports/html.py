"""One self-contained HTML report (plots embedded as PNG) from the report tables, collected as pandas.

``render(sections, title, subtitle, product_names)`` -> HTML text. ``sections`` maps a report table name
(and ``headlines``, ``ingestion``, ``quarantine_reasons``, ``quality``) to its rows (pandas); a missing or
empty one gets a short note instead of a plot. Headline figures come first with their change since the
previous report; tables get readable headers, shares as percentages, product names beside their ids, and
say when they show only their first rows. Only aggregates are shown: no personal value reaches the report.
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
td:first-child,th:first-child{text-align:left}
.note{color:#888;font-style:italic}img{max-width:100%}
.cards{display:flex;flex-wrap:wrap;gap:1rem;margin:1.5rem 0}.card{border:1px solid #ddd;border-radius:6px;
padding:.8rem 1.2rem;min-width:9rem}.card .label{color:#666;font-size:.85rem}.card .value{font-size:1.6rem}
.card .change{font-size:.8rem;color:#666}.up{color:#1a7f37}.down{color:#b42318}"""

WORDS = {"rfm": "RFM", "clv": "CLV", "id": "ID", "pct": "%", "avg": "average"}
SHARE_COLUMNS = ("share", "confidence", "pct_of_first", "pct_of_previous", "customers_share", "revenue_share")
PRODUCT_COLUMNS = ("product_id", "next_product_id", "other_product_id")
TABLE_ROWS = 30
HEADLINE_LABELS = {"persons": "Persons", "buyers": "Buyers", "revenue": "Revenue",
                   "files_ingested": "Files ingested (last ingest)",
                   "rows_quarantined": "Rows quarantined (last ingest)",
                   "suites_passed": "Tables passing their suite (last validation)"}


def human(column: str) -> str:
    """A column name as a table header: words, first one capitalised, known abbreviations in capitals."""
    words = [WORDS.get(w, w) for w in column.split("_")]
    first = words[0] if words[0].isupper() or words[0] == "%" else words[0].capitalize()
    return " ".join([first, *words[1:]])


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(frame: pd.DataFrame, source: str = "", names: Mapping[str, str] | None = None,
           limit: int = TABLE_ROWS) -> str:
    """The first ``limit`` rows as an HTML table (readable headers, shares as percentages, product names
    beside their ids), with a note naming ``source`` (the gold table holding every row) when rows are left out."""
    shown = frame.head(limit).copy()
    for column in shown.columns:
        if column in SHARE_COLUMNS:
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{float(v):.1%}")
        elif column in PRODUCT_COLUMNS and names:
            shown[column] = shown[column].map(lambda v: f"{names[v]} ({v})" if v in names else v)
    shown.columns = [human(str(c)) for c in shown.columns]
    table = shown.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:,.2f}")
    if len(frame) > limit:
        where = f"; every row is in {source}" if source else ""
        table += _note(f"showing the first {limit} of {len(frame)} rows{where}")
    return table


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _bars(labels: list[str], values: list[float], title: str, xlabel: str) -> str:
    figure, axes = plt.subplots(figsize=(8, max(2.0, 0.35 * len(labels) + 1)))
    axes.barh(labels[::-1], values[::-1], color="#4c72b0")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    return _png(figure)


def _heatmap(matrix: pd.DataFrame, title: str, value_format: str = "{:.0f}", xlabel: str = "",
             ylabel: str = "") -> str:
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
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    figure.colorbar(image, ax=axes)
    return _png(figure)


def _segments(metrics: pd.DataFrame, grouping: str, title: str) -> str:
    rows = metrics[metrics["grouping"] == grouping].drop(columns=["grouping"])
    if rows.empty:
        return _note(f"no {title.lower()}: the table has no rows for {grouping}")
    rows = rows.sort_values("customers", ascending=False)
    plot = _bars(rows["segment"].tolist(), rows["customers"].astype(float).tolist(), f"{title}: customers",
                 "customers")
    return plot + _table(rows, "gold.report_segment_metrics")


def _movement(movement: pd.DataFrame) -> str:
    parts = []
    for state, rows in movement.groupby("state"):
        matrix = rows.pivot_table(index="from_value", columns="to_value", values="persons", aggfunc="sum",
                                  dropna=False).fillna(0)
        dates = f"{rows['from_date'].iloc[0]} to {rows['to_date'].iloc[0]}"
        parts.append(_heatmap(matrix, f"{human(str(state))}: persons moving, {dates}",
                              xlabel=f"on {rows['to_date'].iloc[0]}", ylabel=f"on {rows['from_date'].iloc[0]}"))
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
        parts.append(_png(figure) + _table(rows, "gold.report_funnel"))
    return "".join(parts)


def _headlines(frame: pd.DataFrame) -> str:
    """One card per headline figure: its value and its change since the previous report."""
    cards = []
    for row in frame.itertuples(index=False):
        money = row.metric == "revenue"
        value = f"{row.value:,.2f}" if money else f"{row.value:,.0f}"
        if pd.isna(row.previous_value):
            change = "first report"
        else:
            delta = row.value - row.previous_value
            sign = "up" if delta > 0 else "down" if delta < 0 else ""
            relative = f" ({delta / row.previous_value:+.1%})" if row.previous_value else ""
            amount = f"{delta:+,.2f}" if money else f"{delta:+,.0f}"
            change = f'<span class="{sign}">{amount}{relative}</span> since {html.escape(str(row.previous_as_of))}'
        cards.append(f'<div class="card"><div class="label">{html.escape(HEADLINE_LABELS.get(row.metric, row.metric))}'
                     f'</div><div class="value">{value}</div><div class="change">{change}</div></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _quality(frame: pd.DataFrame) -> str:
    shown = frame.assign(published=frame["published"].map({True: "yes", False: "NO"}))
    return _table(shown, "quality.results")


SECTIONS = (
    ("RFM segments", "report_segment_metrics", lambda t, _: _segments(t, "rfm_segment", "RFM segments")),
    ("RFM grid (recency x frequency)", "report_rfm_grid",
     lambda t, _: _heatmap(t.pivot_table(index="rfm_recency", columns="rfm_frequency", values="customers",
                                         aggfunc="sum").fillna(0), "customers per recency and frequency score",
                           xlabel="frequency score (F, 5 = most orders)", ylabel="recency score (R, 5 = most recent)")),
    ("Movement between runs", "report_state_movement", lambda t, _: _movement(t)),
    ("CLV tiers (Pleasepoint's 9 metrics)", "report_segment_metrics",
     lambda t, _: _segments(t, "clv_tier", "CLV tiers")),
    ("Lifecycle (hibernation) states", "report_segment_metrics",
     lambda t, _: _segments(t, "hibernation_state", "Lifecycle states")),
    ("Personas: propensity per category", "report_persona_heatmap",
     lambda t, _: _heatmap(t.pivot_table(index="persona_name", columns="category", values="share", aggfunc="sum"),
                           "mean share of purchases per category", "{:.0%}", xlabel="category", ylabel="persona")
     + _segments_note()),
    ("Funnels", "report_funnel", lambda t, _: _funnels(t)),
    ("Repeat-purchase timing per category", "report_repeat_purchase",
     lambda t, _: _bars(t["category"].tolist(), t["average_days_between"].fillna(0).astype(float).tolist(),
                        "average days between purchases of the category", "days")
     + _table(t, "gold.report_repeat_purchase")),
    ("Products bought in the next order", "report_next_order_products",
     lambda t, names: _table(t, "gold.report_next_order_products", names)),
    ("Products bought in the same cart", "report_same_cart_products",
     lambda t, names: _table(t, "gold.report_same_cart_products", names)),
    ("Ingestion (last ingest run)", "ingestion", lambda t, _: _table(t, "meta.ingestion_log")),
    ("Quarantined rows by reason", "quarantine_reasons", lambda t, _: _table(t, "quarantine.<entity>")),
    ("Data quality (last validation of each table)", "quality", lambda t, _: _quality(t)),
)


EMPTY_NOTES = {
    "report_state_movement": "no earlier as-of date to compare with yet: the movement shows from the second date on",
    "quarantine_reasons": "no row was quarantined",
    "quality": "no table was validated yet: validation runs after the report, so the next report shows this run's",
}
"""what an empty section means when it is expected, instead of the generic note"""


def _empty_note(table: str) -> str:
    if table in EMPTY_NOTES:
        return EMPTY_NOTES[table]
    return f"gold.{table} is empty or was not produced (see the run log)" if table.startswith("report_") else (
        "nothing to show yet")


def _segments_note() -> str:
    return _note("levels (zero / low / medium / high) are in gold.report_persona_heatmap and gold.persona_model")


def render(sections: Mapping[str, pd.DataFrame | None], title: str, subtitle: str,
           product_names: Mapping[str, str] | None = None) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="sub">{html.escape(subtitle)}</p>']
    headlines = sections.get("headlines")
    if headlines is not None and not headlines.empty:
        body.append(_headlines(headlines))
    for heading, table, draw in SECTIONS:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        frame = sections.get(table)
        if frame is None or frame.empty:
            body.append(_note(_empty_note(table)))
        else:
            body.append(draw(frame, product_names or {}))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
