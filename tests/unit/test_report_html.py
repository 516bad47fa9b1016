"""The HTML report as a person sees it: rendered from literal report rows and opened in headless Chromium
(no console error, every section and plot shown), and its tables' readable headers, percentages, product
names and truncation notes."""

from __future__ import annotations

from datetime import date

import pandas as pd

from cdp_spark.reports import html
from tests.browser import open_page

D = date.fromisoformat


def sections() -> dict[str, pd.DataFrame]:
    segments = pd.DataFrame([
        ("rfm_segment", "Champions", 3, 9, 20.0, 5.0, 180.0, 3.0, 60.0, 0.6, 0.75),
        ("rfm_segment", "Hibernating", 2, 2, 30.0, 200.0, 60.0, 1.0, 30.0, 0.4, 0.25),
        ("hibernation_state", "active", 5, 11, 21.8, 80.0, 240.0, 2.2, 48.0, 1.0, 1.0),
        ("clv_tier", "top 10%", 1, 4, 25.0, 3.0, 100.0, 4.0, 100.0, 0.2, 0.42)],
        columns=["grouping", "segment", "customers", "orders", "average_ticket", "average_recency_days", "total_spend",
                 "orders_per_customer", "spend_per_customer", "customers_share", "revenue_share"])
    return {
        "headlines": pd.DataFrame([("persons", 5.0, 4.0, D("2026-06-29")), ("revenue", 240.0, 250.0, D("2026-06-29")),
                                   ("rows_quarantined", 2.0, None, None)],
                                  columns=["metric", "value", "previous_value", "previous_as_of"]),
        "report_segment_metrics": segments,
        "report_rfm_grid": pd.DataFrame([(5, 3, 2, 90.0), (1, 1, 2, 30.0)],
                                        columns=["rfm_recency", "rfm_frequency", "customers", "average_amount"]),
        "report_state_movement": pd.DataFrame([
            ("rfm_segment", "Champions", "Hibernating", 1, D("2026-06-29"), D("2026-06-30")),
            ("rfm_segment", "(none)", "Champions", 3, D("2026-06-29"), D("2026-06-30"))],
            columns=["state", "from_value", "to_value", "persons", "from_date", "to_date"]),
        "report_persona_heatmap": pd.DataFrame([(0, "Sporty", 3, "shoes", 0.7, "high"),
                                                (0, "Sporty", 3, "books", 0.1, "low")],
                                               columns=["persona_id", "persona_name", "persons", "category", "share",
                                                        "level"]),
        "report_funnel": pd.DataFrame([("shop", 1, "view", 10, 4, 1.0, 1.0), ("shop", 2, "cart", 4, 3, 0.4, 0.4)],
                                      columns=["funnel", "step_number", "step", "actors", "customers", "pct_of_first",
                                               "pct_of_previous"]),
        "report_repeat_purchase": pd.DataFrame([("shoes", 3, 2, 4, 30.5, 28.0)],
                                               columns=["category", "buyers", "repeat_buyers", "repeat_purchases",
                                                        "average_days_between", "median_days_between"]),
        "report_next_order_products": pd.DataFrame([(f"P{i}", "P9", 2, 0.25, 1) for i in range(35)],
                                                   columns=["product_id", "next_product_id", "orders", "share",
                                                            "rank"]),
        "report_same_cart_products": pd.DataFrame([("P1", "P2", 3, 0.5, 1.5, 1)],
                                                  columns=["product_id", "other_product_id", "orders", "confidence",
                                                           "lift", "rank"]),
        "ingestion": pd.DataFrame([("crm", 2, 1, 14, 11, 3)], columns=["source", "files", "rejected_files", "rows_read",
                                                                      "rows_accepted", "rows_quarantined"]),
        "quarantine_reasons": pd.DataFrame([("contacts", "invalid_value", 3)], columns=["entity", "reason", "rows"]),
        "quality": pd.DataFrame([("gold.person_scores", 4, 6, 0, 1, True, pd.Timestamp("2026-06-30 09:00")),
                                 ("gold.clv", 2, 3, 1, 0, False, pd.Timestamp("2026-06-30 09:00"))],
                                columns=["table_name", "table_version", "expectations", "failed", "warnings",
                                         "published", "validated_at"]),
    }


def test_the_report_opens_in_chromium_with_every_section_and_no_error(tmp_path):
    page_file = tmp_path / "report.html"
    page_file.write_text(html.render(sections(), "cdp-spark report", "as of 2026-06-30", {"P1": "Trail shoe"}),
                         encoding="utf-8")
    page = open_page(page_file)
    assert page.errors == []
    assert page.headings == [heading for heading, _, _ in html.SECTIONS]
    assert page.images >= 8 and page.broken_images == 0  # every plot decodes
    for shown in ("Persons\n5\n+1 (+25.0%) since 2026-06-29", "Revenue\n240.00\n-10.00 (-4.0%) since 2026-06-29",
                  "Rows quarantined (last ingest)\n2\nfirst report", "Trail shoe (P1)",
                  "showing the first 30 of 35 rows", "Customers share", "Next product ID", "60.0%", "NO"):
        assert shown in page.text, shown


def test_tables_have_readable_headers_percentages_product_names_and_say_when_they_are_cut():
    assert [html.human(c) for c in ("rfm_segment", "pct_of_first", "clv_tier", "average_days_between")] == [
        "RFM segment", "% of first", "CLV tier", "Average days between"]
    frame = pd.DataFrame({"product_id": ["P1", "P2", "P3"], "share": [0.25, 0.5, None]})
    table = html._table(frame, "gold.report_next_order_products", {"P1": "Trail shoe"}, limit=2)
    assert "<th>Product ID</th>" in table and "<th>Share</th>" in table
    assert "<td>Trail shoe (P1)</td>" in table and "<td>P2</td>" in table and "<td>50.0%</td>" in table
    assert "showing the first 2 of 3 rows; every row is in gold.report_next_order_products" in table
    assert "showing" not in html._table(frame, "gold.x", limit=3)
    assert "<td>1,234.50</td>" in html._table(pd.DataFrame({"total_spend": [1234.5]}))


def test_an_empty_section_says_why():
    page = html.render({"report_rfm_grid": pd.DataFrame()}, "t", "s")
    assert "the movement shows from the second date on" in page and "no row was quarantined" in page
    assert "gold.report_rfm_grid is empty or was not produced (see the run log)" in page
    assert "validation runs after the report, so the next report shows this run&#x27;s" in page
