"""The page toolkit: blocks -> one self-contained HTML page and its Markdown twin.

The HTML file carries everything inline: the stylesheet and every figure (as a base64
``data:`` URI). It has no scripts and loads nothing from anywhere; a Content-Security-Policy
meta tag makes the browser refuse any fetch that is not a ``data:`` image, so opening the report
never touches the network. Citation links are plain ``<a>`` elements that are only followed when
clicked. The Markdown twin (``report.md`` beside the HTML) references the same figures by
relative path.

A page is a list of :class:`Section`; a section holds blocks: :class:`Paragraph`,
:class:`Table` (rows are dicts), :class:`Figures` (a grid of :class:`Figure`), :class:`Code`
(collapsed), or nested sections. :func:`render_page` / :func:`markdown_page` render them and
:func:`write_report` writes both files atomically, so other commands (``reproduce``) can compose
their own pages from these blocks plus the sections :func:`cnnlstm.reporting.sections.build_report`
makes from run folders.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from cnnlstm._version import __version__
from cnnlstm.errors import RunError
from cnnlstm.runs import atomic_write

log = logging.getLogger(__name__)

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
        ".gif": "image/gif", ".webp": "image/webp"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


# =========================================================================== building blocks


@dataclass
class Link:
    """A table cell or text that links somewhere (never fetched; followed only when clicked)."""

    text: str
    url: str


@dataclass
class Paragraph:
    """A paragraph of plain text (escaped; no markup)."""

    text: str


@dataclass
class BulletList:
    """A bulleted list of plain-text items (escaped): ``<ul>`` in HTML, ``- item`` lines in Markdown."""

    items: list[str]


@dataclass
class Table:
    """A table of dict rows.

    ``columns`` are keys, or ``(key, header)`` pairs. A row's ``"_class"`` value is a CSS class
    for the row (``"highlight"`` marks e.g. the worst class).
    """

    rows: list[dict]
    columns: Sequence[Union[str, tuple[str, str]]]
    caption: str = ""


@dataclass
class Figure:
    """An image file (PNG, JPEG, SVG...) with a caption."""

    path: Path
    caption: str = ""


@dataclass
class Figures:
    """A responsive grid of figures (``wide`` figures span the whole row)."""

    items: list[Figure]
    wide: bool = False


@dataclass
class Code:
    """Preformatted text in a collapsed ``<details>`` block (HTML) or a code fence (Markdown)."""

    text: str
    summary: str = "details"
    lang: str = ""


@dataclass
class Section:
    """A titled part of the page; ``blocks`` may hold nested sections (one heading level down)."""

    title: str
    blocks: list = field(default_factory=list)
    anchor: str = ""

    def __post_init__(self) -> None:
        if not self.anchor:
            self.anchor = slug(self.title)


Block = Union[Paragraph, Table, Figures, Figure, Code, Section]


def slug(text: str) -> str:
    """A URL-fragment id from a title (``"Run m1 (seed 0)"`` -> ``"run-m1-seed-0"``)."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(p for p in out.split("-") if p) or "section"


def format_cell(value: Any) -> str:
    """Plain-text form of a table value: None -> em dash, floats to 4 decimals, ints with commas."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Link):
        return value.text
    return str(value)


def _is_numeric(value: Any) -> bool:
    """Numbers and number-like text ("1,234", "91.2 ± 0.3", "+0.42") align right."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    words = str(value).replace(",", "").replace("\u00b1", " ").replace("%", " ").split()
    try:
        [float(w) for w in words]
    except ValueError:
        return False
    return bool(words)


def _columns(columns) -> list[tuple[str, str]]:
    return [(c, c) if isinstance(c, str) else (c[0], c[1]) for c in columns]


def _cell_html(value: Any) -> str:
    if isinstance(value, Link):
        return f'<a href="{html.escape(value.url, quote=True)}">{html.escape(value.text)}</a>'
    return html.escape(format_cell(value))


def html_table(rows: Sequence[dict], columns, caption: str = "") -> str:
    """An HTML table of dict rows.

    Parameters
    ----------
    rows : sequence of dict
        Missing keys show as an em dash; ``"_class"`` sets the row's CSS class.
    columns : sequence of str or (key, header)
    caption : str, optional

    Returns
    -------
    str
        ``<table>`` markup; numbers are right-aligned, every value escaped.
    """
    cols = _columns(columns)
    numeric = {k: all(_is_numeric(r.get(k)) for r in rows if r.get(k) is not None) and
               any(r.get(k) is not None for r in rows) for k, _ in cols}
    head = "".join(f'<th{" class=num" if numeric[k] else ""}>{html.escape(h)}</th>' for k, h in cols)
    body = []
    for row in rows:
        cls = f' class="{html.escape(row["_class"])}"' if row.get("_class") else ""
        cells = "".join(f'<td{" class=num" if numeric[k] else ""}>{_cell_html(row.get(k))}</td>'
                        for k, _ in cols)
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def markdown_table(rows: Sequence[dict], columns, caption: str = "") -> str:
    """The same table in GitHub-flavoured Markdown (pipes in values escaped)."""
    cols = _columns(columns)

    def cell(v):
        text = f"[{v.text}]({v.url})" if isinstance(v, Link) else format_cell(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"*{caption}*", ""] if caption else []
    lines.append("| " + " | ".join(h for _, h in cols) + " |")
    lines.append("|" + "|".join("---:" if all(_is_numeric(r.get(k)) for r in rows if r.get(k) is not None)
                                and rows else "---" for k, _ in cols) + "|")
    lines += ["| " + " | ".join(cell(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines)


def image_data_uri(path: str | Path) -> str:
    """``data:<mime>;base64,...`` of an image file.

    Raises
    ------
    RunError
        The file is missing or not an image type the report knows.
    """
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise RunError(f"{path}: not an image the report can inline ({', '.join(MIME)})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunError(f"{path}: cannot read figure ({exc.strerror or exc})") from exc
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def figure_html(path: str | Path, caption: str = "") -> str:
    """A ``<figure>`` with the image inlined as a data URI and an optional caption."""
    cap = html.escape(caption)
    alt = cap or html.escape(Path(path).name)
    return (f'<figure><img src="{image_data_uri(path)}" alt="{alt}">'
            + (f"<figcaption>{cap}</figcaption>" if cap else "") + "</figure>")


# =========================================================================== page rendering


STYLE = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --soft:#f6f8fa; --accent:#0b5cad; --hl:#fff4d6; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:#fff; line-height:1.5;
  font:15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, "Noto Sans", "DejaVu Sans", sans-serif; }
main { max-width:1180px; margin:0 auto; padding:0 28px 48px; }
header.page { background:var(--soft); border-bottom:1px solid var(--line); margin-bottom:24px; }
header.page div { max-width:1180px; margin:0 auto; padding:22px 28px 16px; }
h1 { font-size:1.75em; margin:0 0 4px; }
h2 { font-size:1.35em; margin:36px 0 12px; padding-bottom:6px; border-bottom:1px solid var(--line); }
h3 { font-size:1.12em; margin:26px 0 10px; }
h4 { font-size:1em; margin:20px 0 8px; }
p { margin:8px 0 12px; }
.meta { color:var(--muted); font-size:.9em; margin:0; }
nav.toc { font-size:.92em; margin:0 0 8px; }
nav.toc ol { margin:6px 0; padding-left:22px; columns:2; column-gap:40px; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
.table-wrap { overflow-x:auto; margin:10px 0 18px; }
table { border-collapse:collapse; font-size:.9em; min-width:40%; }
caption { caption-side:top; text-align:left; color:var(--muted); font-size:.92em; padding:0 0 6px; }
th, td { padding:5px 11px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
th { background:var(--soft); font-weight:600; border-bottom:2px solid var(--line); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.num { white-space:nowrap; }
tbody tr:nth-child(even) { background:#fbfcfd; }
tr.highlight td { background:var(--hl); }
tr.context td { color:var(--muted); }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(440px, 1fr)); gap:18px; margin:12px 0 20px; }
.grid.wide { grid-template-columns:1fr; }
.grid.wide figure img { max-width:880px; }
.tables { display:flex; flex-wrap:wrap; gap:0 36px; align-items:flex-start; }
.tables .table-wrap { flex:0 1 auto; }
figure { margin:0; border:1px solid var(--line); border-radius:6px; padding:10px; background:#fff; }
figure img { display:block; max-width:100%; height:auto; margin:0 auto; }
figcaption { color:var(--muted); font-size:.86em; margin-top:6px; }
details { margin:8px 0 16px; } summary { cursor:pointer; color:var(--accent); }
pre { background:var(--soft); border:1px solid var(--line); border-radius:6px; padding:10px 12px;
  overflow-x:auto; font-size:.84em; }
footer { color:var(--muted); font-size:.85em; border-top:1px solid var(--line); margin-top:40px; padding-top:10px; }
"""


def _block_html(block, level: int) -> str:
    if isinstance(block, Section):
        return _section_html(block, level + 1)
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, BulletList):
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return html_table(block.rows, block.columns, block.caption)
    if isinstance(block, Figure):
        block = Figures([block], wide=True)
    if isinstance(block, Figures):
        items = "".join(figure_html(f.path, f.caption) for f in block.items)
        return f'<div class="grid{" wide" if block.wide else ""}">{items}</div>'
    if isinstance(block, Code):
        return (f"<details><summary>{html.escape(block.summary)}</summary>"
                f"<pre>{html.escape(block.text)}</pre></details>")
    raise TypeError(f"unknown report block {type(block).__name__}")


def _section_html(section: Section, level: int = 2) -> str:
    h = min(level, 6)
    parts, run = [], []  # consecutive tables share a row (they wrap when the page is narrow)
    for block in list(section.blocks) + [None]:
        if isinstance(block, Table):
            run.append(_block_html(block, level))
            continue
        if run:
            parts.append(run[0] if len(run) == 1 else f'<div class="tables">{"".join(run)}</div>')
            run = []
        if block is not None:
            parts.append(_block_html(block, level))
    body = "".join(parts)
    return (f'<section id="{html.escape(section.anchor)}"><h{h}>{html.escape(section.title)}</h{h}>'
            f"{body}</section>")


def render_page(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """The whole self-contained HTML document.

    Parameters
    ----------
    title : str
    sections : sequence of Section
        Top-level sections become ``<h2>`` and entries of the table of contents.
    subtitle : str, optional
        A line under the title.

    Returns
    -------
    str
        HTML5 with inline CSS and inline images, no scripts, and a Content-Security-Policy that
        forbids every fetch except ``data:`` images.
    """
    toc = "".join(f'<li><a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a></li>' for s in sections)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    sub = f'<p class="meta">{html.escape(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="cnnlstm {__version__}">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<header class="page"><div><h1>{html.escape(title)}</h1>{sub}'
        f'<p class="meta">generated by cnnlstm {__version__} on {stamp}</p></div></header><main>'
        + (f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>' if len(sections) > 1 else "")
        + "".join(_section_html(s) for s in sections)
        + "<footer>Self-contained report: styles and figures are inline; nothing is loaded from the "
          "network.</footer></main></body></html>\n")


def _relative(path: str | Path, base_dir: Path) -> str:
    """``path`` relative to ``base_dir``, with forward slashes (Markdown links)."""
    return Path(os.path.relpath(Path(path).resolve(), base_dir.resolve())).as_posix()


def _block_md(block, level: int, base_dir: Path) -> str:
    if isinstance(block, Section):
        return _section_md(block, level + 1, base_dir)
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, BulletList):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        return markdown_table(block.rows, block.columns, block.caption)
    if isinstance(block, Figure):
        block = Figures([block])
    if isinstance(block, Figures):
        return "\n\n".join(f"![{f.caption or Path(f.path).name}]({_relative(f.path, base_dir)})"
                             + (f"\n*{f.caption}*" if f.caption else "") for f in block.items)
    if isinstance(block, Code):
        return f"<details><summary>{block.summary}</summary>\n\n```{block.lang}\n{block.text}\n```\n</details>"
    raise TypeError(f"unknown report block {type(block).__name__}")


def _section_md(section: Section, level: int, base_dir: Path) -> str:
    parts = ["#" * min(level, 6) + " " + section.title]
    parts += [_block_md(b, level, base_dir) for b in section.blocks]
    return "\n\n".join(p for p in parts if p)


def markdown_page(title: str, sections: Sequence[Section], base_dir: str | Path, subtitle: str = "") -> str:
    """The Markdown twin; figures are linked relative to ``base_dir`` (the Markdown file's folder)."""
    base = Path(base_dir)
    head = [f"# {title}"] + ([subtitle] if subtitle else [])
    head.append(f"*generated by cnnlstm {__version__} on {time.strftime('%Y-%m-%d %H:%M')}*")
    return "\n\n".join(head + [_section_md(s, 2, base) for s in sections]) + "\n"


def write_report(out_html: str | Path, title: str, sections: Sequence[Section],
                 subtitle: str = "") -> tuple[Path, Path]:
    """Write ``out_html`` and its Markdown twin (same name, ``.md``), each atomically.

    Returns
    -------
    (Path, Path)
        The HTML and Markdown paths.
    """
    out_html = Path(out_html)
    out_md = out_html.with_suffix(".md")
    page = render_page(title, sections, subtitle)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_md, markdown_page(title, sections, out_md.parent, subtitle).encode("utf-8"))
    atomic_write(out_html, page.encode("utf-8"))
    log.info("report written to %s (%.1f MB) and %s", out_html, len(page) / 1e6, out_md)
    return out_html, out_md


def plain(value: Any) -> str:
    """A config or parameter value as written (``2e-3`` stays ``0.002``, dicts as compact JSON)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": ")) if value else "\u2014"
    return format_cell(value)
