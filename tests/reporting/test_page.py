"""Tests for cnnlstm.reporting.page: the list block in both renderings."""

from __future__ import annotations

from cnnlstm.reporting.page import BulletList, Paragraph, Section, write_report


def test_a_bullet_list_is_a_ul_in_html_and_dash_items_in_markdown(tmp_path):
    sections = [Section("Summary", [Paragraph("Claims:"), BulletList(["a < b", "no measurable difference"])])]
    html_path, md_path = write_report(tmp_path / "r.html", "T", sections)
    html = html_path.read_text()
    assert "<ul><li>a &lt; b</li><li>no measurable difference</li></ul>" in html
    assert "<p>- " not in html
    assert "Claims:\n\n- a < b\n- no measurable difference" in md_path.read_text()
