"""Run folders -> one self-contained HTML page and its Markdown twin.

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
their own pages from these blocks plus the sections :func:`build_report` makes from run folders.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from cnnlstm import __version__
from cnnlstm.errors import RunError
from cnnlstm.runs import atomic_write, read_history, read_json

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


# =========================================================================== reading folders


@dataclass
class RunRecord:
    """What the report reads from one run folder."""

    path: Path
    config: dict
    metrics: dict | None
    history: list[dict]
    embed: dict | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        return str(self.config.get("model", "?"))

    def figure(self, name: str) -> Path | None:
        p = self.path / "figures" / name
        return p if p.is_file() else None


def _read_optional(path: Path) -> dict | None:
    return read_json(path) if path.is_file() else None


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run folder (``config.json`` required; metrics, history and embedding optional)."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if not isinstance(config, dict):
        raise RunError(f"{run_dir}/config.json is not a table of settings")
    return RunRecord(run_dir, config, _read_optional(run_dir / "metrics.json"),
                     read_history(run_dir / "history.csv"), _read_optional(run_dir / "embed.json"))


def classify_inputs(paths: Iterable[str | Path]) -> dict[str, list[Path]]:
    """Sort input folders into runs (config.json), explorations (stats.json) and sweeps (sweep.json).

    Raises
    ------
    RunError
        A path that is not a folder, or a folder with none of those files.
    """
    out: dict[str, list[Path]] = {"runs": [], "explore": [], "sweeps": []}
    for p in map(Path, paths):
        if not p.is_dir():
            raise RunError(f"{p}: no such folder")
        kinds = [k for k, f in (("runs", "config.json"), ("explore", "stats.json"), ("sweeps", "sweep.json"))
                 if (p / f).is_file()]
        if not kinds:
            raise RunError(f"{p}: not a run, explore or sweep folder (no config.json, stats.json or sweep.json)")
        for k in kinds:
            out[k].append(p)
    return out


def dataset_identity(dataset: str | None, verified: bool | None) -> str:
    """``"Fashion-MNIST (verified)"`` for checksum-verified data, else the source folder."""
    if verified:
        return "Fashion-MNIST (verified)"
    source = (dataset or "unknown").removesuffix(" (cache)")
    return f"unverified data from {source}"


def check_same_dataset(runs: Sequence[RunRecord], explores: Sequence[tuple[Path, dict]]) -> str | None:
    """The one dataset every input was evaluated on, or a RunError naming the mix.

    Runs without ``metrics.json`` are not checked (they hold no dataset record).
    """
    seen: dict[str, list[str]] = {}
    for r in runs:
        if r.metrics and ("dataset" in r.metrics or "verified" in r.metrics):
            ident = dataset_identity(r.metrics.get("dataset"), r.metrics.get("verified"))
            seen.setdefault(ident, []).append(str(r.path))
    for path, stats in explores:
        ds = stats.get("dataset") or {}
        if ds:
            seen.setdefault(dataset_identity(ds.get("source"), ds.get("verified")), []).append(str(path))
    if len(seen) > 1:
        parts = "; ".join(f"{ident}: {', '.join(paths)}" for ident, paths in seen.items())
        raise RunError(f"the inputs come from different datasets, which a report must not mix ({parts})")
    return next(iter(seen), None)


# =========================================================================== grouping and numbers

# Config keys that do not change what a run measures: runs differing only in these (and the
# seed) are repeats of one experiment and are reported as mean ± std.
OPERATIONAL_KEYS = ("seed", "data_dir", "download", "device", "threads", "tensorboard", "eval_batch_size",
                    "compile", "channels_last")


def experiment_key(run: RunRecord) -> str:
    """Identity of a run's experiment: its config without seed and operational keys, plus how it
    was evaluated (checkpoint, TTA)."""
    cfg = {k: v for k, v in run.config.items() if k not in OPERATIONAL_KEYS}
    how = {k: run.metrics.get(k) for k in ("checkpoint", "tta")} if run.metrics else {"evaluated": False}
    return json.dumps([cfg, how], sort_keys=True, default=str)


def group_runs(runs: Sequence[RunRecord]) -> list[list[RunRecord]]:
    """Runs grouped by :func:`experiment_key`, groups and members in input order."""
    groups: dict[str, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault(experiment_key(r), []).append(r)
    return list(groups.values())


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; None for a single value or none)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def pm(values: Sequence[float], scale: float = 1.0, digits: int = 4) -> str | None:
    """``"mean ± std"`` (or just the value for one run) of ``values * scale``."""
    mean, std = mean_std([v * scale for v in values if v is not None])
    if mean is None:
        return None
    return f"{mean:.{digits}f}" + (f" \u00b1 {std:.{digits}f}" if std is not None else "")


def plain(value: Any) -> str:
    """A config or parameter value as written (``2e-3`` stays ``0.002``, dicts as compact JSON)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": ")) if value else "\u2014"
    return format_cell(value)


def _metric_values(group: Sequence[RunRecord], key: str) -> list[float]:
    return [r.metrics[key] for r in group if r.metrics and r.metrics.get(key) is not None]


def _seeds(group: Sequence[RunRecord]) -> str:
    return ", ".join(str(r.config.get("seed", "?")) for r in group)


def _worst_class_name(group: Sequence[RunRecord]) -> str | None:
    names = [r.metrics["per_class"][r.metrics["worst_class"]]["name"] for r in group if r.metrics]
    return max(sorted(set(names)), key=names.count) if names else None


# =========================================================================== overview sections


def comparison_rows(groups: Sequence[Sequence[RunRecord]]) -> list[dict]:
    """One row per experiment: accuracy etc. as mean ± std over its seeds."""
    rows = []
    for g in groups:
        epochs = [r.metrics.get("epochs_trained") for r in g if r.metrics] or [len(r.history) for r in g]
        rows.append({
            "runs": ", ".join(r.name for r in g), "model": g[0].model, "seeds": _seeds(g), "n": len(g),
            "epochs": plain(g[0].config.get("epochs")) + (f" ({pm(epochs, digits=1)} run)" if
                                                         epochs and set(epochs) != {g[0].config.get("epochs")}
                                                         else ""),
            "acc": pm(_metric_values(g, "accuracy"), 100, 2), "f1": pm(_metric_values(g, "f1_macro"), 100, 2),
            "auc": pm(_metric_values(g, "roc_auc_macro"), 1, 4), "worst": _worst_class_name(g),
            "train_s": pm(_metric_values(g, "train_seconds"), 1, 1),
            "eval_s": pm(_metric_values(g, "eval_seconds"), 1, 2),
        })
    return rows


COMPARISON_COLUMNS = (("model", "model"), ("runs", "run folders"), ("seeds", "seeds"), ("n", "n seeds"),
                      ("epochs", "epochs"), ("acc", "test accuracy (%)"), ("f1", "macro F1 (%)"),
                      ("auc", "macro ROC AUC"), ("worst", "worst class"), ("train_s", "training (s)"),
                      ("eval_s", "evaluation (s)"))


def comparison_section(groups: Sequence[Sequence[RunRecord]]) -> Section:
    """Side-by-side comparison of every experiment."""
    n_runs = sum(len(g) for g in groups)
    text = (f"{n_runs} run(s) in {len(groups)} experiment(s). Runs whose config.json differs only in "
            f"the seed (and in settings that do not change the measurement: "
            f"{', '.join(OPERATIONAL_KEYS[1:])}) are one experiment, shown as mean \u00b1 sample standard "
            "deviation over its n seeds. Accuracy and F1 are on the test set, in percent.")
    return Section("Comparison", [Paragraph(text), Table(comparison_rows(groups), COMPARISON_COLUMNS)])


def reference_rows(groups: Sequence[Sequence[RunRecord]]) -> list[dict]:
    """Measured experiments beside their published number, then published-only context rows."""
    from cnnlstm.references import REFERENCES, published_for

    rows, matched = [], set()
    for g in groups:
        acc = _metric_values(g, "accuracy")
        if not acc:
            continue
        ref = published_for(g[0].model)
        mean = sum(acc) / len(acc) * 100
        if ref:
            matched.add(ref.key)
        rows.append({
            "model": g[0].model + (f" \u2014 {ref.name}" if ref else ""),
            "published": f"{ref.accuracy:.2f}" if ref else None,
            "source": (Link(ref.source, ref.url) if ref.url else ref.source) if ref else "this project",
            "measured": pm(acc, 100, 2), "delta": f"{mean - ref.accuracy:+.2f}" if ref else None,
            "n": len(acc), "epochs": plain(g[0].config.get("epochs")),
            "train_s": pm(_metric_values(g, "train_seconds"), 1, 1),
        })
    context = sorted((r for r in REFERENCES if r.key not in matched), key=lambda r: r.accuracy)
    rows += [{"model": r.name, "published": f"{r.accuracy:.2f}",
              "source": Link(r.source, r.url) if r.url else r.source, "_class": "context"} for r in context]
    return rows


REFERENCE_COLUMNS = (("model", "model"), ("published", "published (%)"), ("source", "source"),
                     ("measured", "measured (%)"), ("delta", "measured \u2212 published (pp)"),
                     ("n", "n seeds"), ("epochs", "epochs"), ("train_s", "training (s)"))


def reference_section(groups: Sequence[Sequence[RunRecord]]) -> Section:
    """Published vs measured test accuracy."""
    text = ("Published Fashion-MNIST test accuracies (the research plan's Tables I and II, the "
            "Fashion-MNIST README, Agarap 2017) beside what the runs here measured (mean \u00b1 sample "
            "std over seeds). Rows without a measurement are published results for context.")
    return Section("Published vs measured", [Paragraph(text), Table(reference_rows(groups), REFERENCE_COLUMNS)])


def quality_row(label: str, record: dict) -> dict:
    """One row of embedding-quality numbers from an ``embed.json`` record."""
    q = record.get("quality") or {}
    f, e = q.get("features") or {}, q.get("embedding") or {}
    return {"space": label, "n": record.get("n"), "k0": record.get("k0"),
            "perplexity": plain(record.get("perplexity_used", record.get("perplexity"))),
            "f1nn": f.get("knn1"), "f10nn": f.get("knn10"), "e1nn": e.get("knn1"), "e10nn": e.get("knn10"),
            "trust": e.get("trustworthiness"), "spearman": e.get("spearman")}


QUALITY_COLUMNS = (("space", "embedded space"), ("n", "n"), ("k0", "K0"), ("perplexity", "perplexity"),
                   ("f1nn", "1-NN acc. original"), ("f10nn", "10-NN acc. original"),
                   ("e1nn", "1-NN acc. t-SNE"), ("e10nn", "10-NN acc. t-SNE"),
                   ("trust", "trustworthiness"), ("spearman", "Spearman of distances"))

QUALITY_NOTE = ("Embedding quality after Gove et al. (2022): leave-one-out kNN label accuracy (k = 1, 10) "
                "in the original space and in the 2-D t-SNE, trustworthiness (10 neighbours) and the "
                "Spearman correlation of pairwise distances between the two spaces. K0 is the length "
                "of the early-exaggeration phase, floor((ln n)^2) with the natural log unless set by hand.")


def embedding_comparison_section(runs: Sequence[RunRecord],
                                 explores: Sequence[tuple[Path, dict]]) -> Section | None:
    """Raw pixels vs each model's features, when more than one embedding is present."""
    rows = [quality_row(f"raw pixels ({p.name})", s["embedding"]) for p, s in explores if s.get("embedding")]
    rows += [quality_row(f"{r.model} features ({r.name})", r.embed) for r in runs if r.embed]
    if len(rows) < 2:
        return None
    return Section("Embedding quality: raw pixels vs learned features",
                   [Paragraph(QUALITY_NOTE), Table(rows, QUALITY_COLUMNS)])


# =========================================================================== one run

CONFIG_SUMMARY_KEYS = ("model", "model_args", "epochs", "batch_size", "optimizer", "lr", "weight_decay",
                       "schedule", "warmup_epochs", "loss", "label_smoothing", "flip_h", "flip_v", "shift",
                       "erase", "patience", "val_size", "limit_train", "limit_test", "amp", "seed")

METRIC_LABELS = (("accuracy", "accuracy"), ("precision_macro", "precision (macro)"),
                 ("recall_macro", "recall (macro)"), ("f1_macro", "F1 (macro)"),
                 ("precision_micro", "precision (micro)"), ("recall_micro", "recall (micro)"),
                 ("f1_micro", "F1 (micro)"), ("roc_auc_macro", "ROC AUC (macro, one-vs-rest)"),
                 ("n_test", "test images"), ("checkpoint", "weights evaluated"), ("tta", "test-time augmentation"),
                 ("epochs_trained", "epochs trained"), ("best_epoch", "best validation epoch"),
                 ("train_seconds", "training time (s)"), ("eval_seconds", "evaluation time (s)"))


def model_description(model: str) -> str:
    """The registry's one-line description of a model ("" for a model not registered here)."""
    from cnnlstm.errors import ConfigError
    from cnnlstm.models import get_model_entry

    try:
        return get_model_entry(model).description
    except (ConfigError, KeyError):  # an unknown or renamed model must not stop a report
        return ""


def config_blocks(run: RunRecord) -> list:
    rows = [{"setting": k, "value": plain(run.config[k])} for k in CONFIG_SUMMARY_KEYS if k in run.config]
    return [Table(rows, ("setting", "value"), "main settings"),
            Code(json.dumps(run.config, indent=2), "full config.json", "json")]


def metrics_blocks(run: RunRecord) -> list:
    """Headline metrics, the per-class table (worst class highlighted) and top confusions."""
    m = run.metrics
    values = [{"metric": label, "value": m[k] if isinstance(m[k], (int, float)) and not isinstance(m[k], bool)
               else format_cell(m[k])} for k, label in METRIC_LABELS if k in m]
    per_class = [{"label": c["label"], "name": c["name"], "precision": c["precision"], "recall": c["recall"],
                  "f1": c["f1"], "support": c["support"], "auc": c.get("roc_auc"),
                  "_class": "highlight" if c["label"] == m["worst_class"] else ""} for c in m["per_class"]]
    support = {c["label"]: c["support"] for c in m["per_class"]}
    confusions = [{"true": c["true_name"], "pred": c["pred_name"], "count": c["count"],
                   "share": f"{100 * c['count'] / support[c['true']]:.1f}" if support.get(c["true"]) else None}
                  for c in m["top_confusions"]]
    worst = m["per_class"][m["worst_class"]]["name"]
    return [Table(values, ("metric", "value")),
            Table(per_class, (("label", "label"), ("name", "class"), ("precision", "precision"),
                              ("recall", "recall"), ("f1", "F1"), ("support", "support"),
                              ("auc", "ROC AUC")), f"per class; the worst class ({worst}, lowest F1) is highlighted"),
            Table(confusions, (("true", "true class"), ("pred", "predicted as"), ("count", "count"),
                               ("share", "% of the true class")), "most frequent confusions")]


def run_figures(run: RunRecord) -> list[Figure]:
    worst = ""
    if run.metrics:
        worst = f" ({run.metrics['per_class'][run.metrics['worst_class']]['name']}, the plan's Fig. 6)"
    wanted = (("confusion_matrix.png", "Confusion matrix (counts; rows true, columns predicted)"),
              ("confusion_matrix_normalized.png", "Confusion matrix, rows normalised to recall"),
              ("roc_worst_class.png", f"ROC curve of the worst class{worst}"),
              ("roc_all.png", "One-vs-rest ROC curves of every class"),
              ("misclassified.png", "Misclassified test images (true -> predicted)"))
    return [Figure(p, cap) for name, cap in wanted if (p := run.figure(name))]


def history_blocks(run: RunRecord) -> list:
    blocks: list = []
    if (p := run.figure("history.png")):
        blocks.append(Figures([Figure(p, "Loss, accuracy and learning rate per epoch")]))
    if run.history:
        rows = [{**{k: h.get(k) for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")},
                 "lr": f"{h['lr']:.2e}" if h.get("lr") is not None else None,
                 "seconds": f"{h['seconds']:.1f}" if h.get("seconds") is not None else None} for h in run.history]
        blocks.append(Table(rows, ("epoch", ("train_loss", "train loss"), ("train_acc", "train acc."),
                                   ("val_loss", "val. loss"), ("val_acc", "val. acc."), ("lr", "LR"),
                                   ("seconds", "seconds")), "history.csv"))
    return blocks


def embed_blocks(record: dict, figure: Path | None, label: str) -> list:
    """Parameters, quality table and the t-SNE figure of one ``embed.json`` record."""
    text = (f"openTSNE on {record['n']:,} points of {record.get('space', label)}: PCA to "
            f"{record.get('pca_dims', 50)} dims, PCA initialisation, perplexity "
            f"{plain(record.get('perplexity_used', record.get('perplexity')))}, K0 = {record['k0']} "
            f"early-exaggeration iterations ({record.get('k0_rule', '')}), "
            f"{record.get('n_iter', '?')} further iterations, seed {record.get('seed')}; "
            f"{record.get('seconds', 0):.1f} s.")
    blocks: list = [Paragraph(text), Table([quality_row(label, record)], QUALITY_COLUMNS)]
    if figure is not None and figure.is_file():
        blocks.append(Figure(figure, f"t-SNE of {label}, coloured by true class"))
    return blocks


def run_section(run: RunRecord, group_size: int = 1) -> Section:
    """Everything about one run folder."""
    desc = model_description(run.model)
    intro = f"Folder {run.path}. Model {run.model}" + (f": {desc}." if desc else ".")
    if group_size > 1:
        intro += f" One of {group_size} seeds of the same experiment."
    blocks: list = [Paragraph(intro), Section("Configuration", config_blocks(run), slug(f"{run.name}-config"))]
    if run.metrics:
        blocks.append(Section("Test metrics", metrics_blocks(run), slug(f"{run.name}-metrics")))
        figs = run_figures(run)
        if figs:
            blocks.append(Section("Evaluation figures", [Figures(figs)], slug(f"{run.name}-figures")))
    else:
        blocks.append(Paragraph(f"Not evaluated yet (no metrics.json): run `cnnlstm evaluate {run.path}`."))
    hist = history_blocks(run)
    if hist:
        blocks.append(Section("Training curves", hist, slug(f"{run.name}-history")))
    if run.embed:
        blocks.append(Section("t-SNE of the learned features",
                              embed_blocks(run.embed, run.figure("tsne.png"), f"{run.model} features"),
                              slug(f"{run.name}-tsne")))
    return Section(f"Run {run.name}", blocks, slug(f"run-{run.name}"))


# =========================================================================== exploration and sweeps

EXPLORE_FIGURES = (("class_distribution.png", "Examples per class, train and test"),
                   ("boxplot_means.png", "Per-image pixel mean by class (the plan's Fig. 2)"),
                   ("boxplot_variances.png", "Per-image pixel variance by class (the plan's Fig. 3)"),
                   ("sample_grid.png", "Random training images per class"),
                   ("mean_images.png", "Mean image of each class"))


def _box(summary: dict | None, digits: int = 3) -> str | None:
    if not summary or summary.get("median") is None:
        return None
    return f"{summary['median']:.{digits}f} [{summary['q1']:.{digits}f}, {summary['q3']:.{digits}f}]"


def explore_section(folder: Path, stats: dict) -> Section:
    """Dataset statistics, the exploratory figures and the raw-pixel t-SNE of an ``explore`` folder."""
    ds = stats.get("dataset") or {}
    shape = "x".join(str(s) for s in stats.get("image_shape", []))
    text = (f"Folder {folder}. Data: {ds.get('source', 'unknown source')} "
            f"({'checksums verified' if ds.get('verified') else 'not verified as Fashion-MNIST'}); "
            f"images {shape}; pixel values in [0, 1] units.")
    splits = [{"split": name, "n": s["n"], "mean": s["pixel_mean"], "std": s["pixel_std"]}
              for name, s in stats["splits"].items()]
    per_class = [{"label": c["label"], "name": c["name"], "n_train": c["n_train"], "n_test": c["n_test"],
                  "mean": _box(c["mean"]), "var": _box(c["variance"], 4)} for c in stats["per_class"]]
    blocks: list = [
        Paragraph(text),
        Table(splits, ("split", "n", ("mean", "pixel mean"), ("std", "pixel std"))),
        Table(per_class, ("label", ("name", "class"), ("n_train", "train"), ("n_test", "test"),
                          ("mean", "image mean: median [q1, q3]"), ("var", "image variance: median [q1, q3]")),
              "per class, over train and test"),
    ]
    figs = [Figure(folder / "figures" / n, cap) for n, cap in EXPLORE_FIGURES if (folder / "figures" / n).is_file()]
    if figs:
        blocks.append(Figures(figs))
    if stats.get("embedding"):
        blocks.append(Section("t-SNE of the raw pixels", embed_blocks(
            stats["embedding"], folder / "figures" / "tsne_raw.png", "raw pixels"), slug(f"{folder.name}-tsne")))
    else:
        blocks.append(Paragraph("No t-SNE in this folder (explore ran with --tsne-samples 0)."))
    return Section(f"Dataset exploration ({folder.name})", blocks, slug(f"explore-{folder.name}"))


MAX_TRIALS_SHOWN = 30


def _sorted_trials(sweep: dict) -> list[dict]:
    sign = -1.0 if sweep.get("direction", "maximize") == "maximize" else 1.0
    done = [t for t in sweep.get("trials", []) if t.get("value") is not None]
    rest = [t for t in sweep.get("trials", []) if t.get("value") is None]
    return sorted(done, key=lambda t: (sign * t["value"], t.get("number", 0))) + rest


def sweep_section(folder: Path, sweep: dict) -> Section:
    """The best trial, parameter importances, the trials table and the sweep's figures."""
    trials, best = sweep.get("trials", []), sweep.get("best") or {}
    states = {}
    for t in trials:
        states[t.get("state", "?")] = states.get(t.get("state", "?"), 0) + 1
    text = (f"Folder {folder}. Optuna study {sweep.get('study', '?')!s}, direction "
            f"{sweep.get('direction', '?')}, {len(trials)} trials ("
            + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) + ")"
            + (f"; best trial #{best.get('number')} with value {format_cell(best.get('value'))}." if best else "."))
    blocks: list = [Paragraph(text)]
    if best.get("params"):
        blocks.append(Table([{"param": k, "value": plain(v)} for k, v in best["params"].items()],
                            (("param", "parameter"), ("value", "best value")), "best parameters"))
    imp = sweep.get("importances") or {}
    if imp:
        blocks.append(Table([{"param": k, "importance": float(v)} for k, v in
                             sorted(imp.items(), key=lambda kv: -kv[1])],
                            (("param", "parameter"), ("importance", "importance")), "parameter importances"))
    shown = _sorted_trials(sweep)[:MAX_TRIALS_SHOWN]
    keys = sorted({k for t in shown for k in (t.get("params") or {})})
    rows = [{"number": t.get("number"), "value": t.get("value"), "state": t.get("state"),
             **{f"p:{k}": plain(t["params"][k]) for k in keys if k in (t.get("params") or {})}} for t in shown]
    cap = f"trials, best first ({len(shown)} of {len(trials)} shown)"
    blocks.append(Table(rows, [("number", "trial"), ("value", "value"), ("state", "state")]
                        + [(f"p:{k}", k) for k in keys], cap))
    figs = sorted((folder / "figures").glob("*.png")) if (folder / "figures").is_dir() else []
    if figs:
        blocks.append(Figures([Figure(p, p.stem.replace("_", " ")) for p in figs]))
    return Section(f"Sweep {sweep.get('study', folder.name)}", blocks, slug(f"sweep-{folder.name}"))


# =========================================================================== the whole report


def _unique_anchors(sections: Sequence[Section], seen: set | None = None) -> None:
    """Suffix repeated anchors (two run folders may share a name) so every link lands right."""
    seen = set() if seen is None else seen
    for s in sections:
        base, n = s.anchor, 1
        while s.anchor in seen:
            n += 1
            s.anchor = f"{base}-{n}"
        seen.add(s.anchor)
        _unique_anchors([b for b in s.blocks if isinstance(b, Section)], seen)


def report_sections(runs: Sequence[RunRecord], explores: Sequence[tuple[Path, dict]],
                    sweeps: Sequence[tuple[Path, dict]]) -> list[Section]:
    """The standard sections for the given folders, in reading order."""
    groups = group_runs(runs)
    sections: list[Section] = []
    if len(runs) > 1:
        sections.append(comparison_section(groups))
    if any(r.metrics for r in runs):
        sections.append(reference_section(groups))
    if (emb := embedding_comparison_section(runs, explores)) is not None:
        sections.append(emb)
    sections += [explore_section(p, s) for p, s in explores]
    sections += [sweep_section(p, s) for p, s in sweeps]
    size = {id(r): len(g) for g in groups for r in g}
    sections += [run_section(r, size[id(r)]) for r in runs]
    return sections


def default_title(runs: Sequence[RunRecord], explores, sweeps) -> str:
    if len(runs) == 1 and not explores and not sweeps:
        return f"cnnlstm report: {runs[0].name} ({runs[0].model})"
    parts = [f"{len(runs)} run{'s' * (len(runs) != 1)}" if runs else "",
             "dataset exploration" if explores else "",
             f"{len(sweeps)} sweep{'s' * (len(sweeps) != 1)}" if sweeps else ""]
    return "cnnlstm report: " + ", ".join(p for p in parts if p)


def build_report(inputs: Iterable[str | Path], out_html: str | Path, *, title: str | None = None,
                 explore_dirs: Iterable[str | Path] = (), extra_sections: Sequence[Section] = (),
                 subtitle: str = "") -> dict:
    """Read run / explore / sweep folders and write the HTML report and its Markdown twin.

    Parameters
    ----------
    inputs : iterable of path
        Folders: runs (``config.json``), explorations (``stats.json``), sweeps (``sweep.json``).
    out_html : path
        The HTML file; the Markdown goes beside it with the ``.md`` suffix.
    title : str, optional
        Default names the run, or counts the inputs.
    explore_dirs : iterable of path
        More exploration folders (the CLI's ``--explore``).
    extra_sections : sequence of Section
        Appended after the standard sections (e.g. ``reproduce``'s own tables and figures).
    subtitle : str, optional

    Returns
    -------
    dict
        ``{"html": Path, "md": Path, "runs": int, "experiments": int, "sections": [titles],
        "dataset": str or None}``.

    Raises
    ------
    RunError
        A folder that is none of those kinds, unreadable JSON, or inputs from different datasets.
    """
    kinds = classify_inputs(list(inputs))
    for p in map(Path, explore_dirs):
        if not (p / "stats.json").is_file():
            raise RunError(f"--explore {p}: no stats.json there (run `cnnlstm explore --out {p}`)")
        kinds["explore"].append(p)
    runs = [load_run(p) for p in kinds["runs"]]
    explores = [(p, read_json(p / "stats.json")) for p in dict.fromkeys(kinds["explore"])]
    sweeps = [(p, read_json(p / "sweep.json")) for p in kinds["sweeps"]]
    dataset = check_same_dataset(runs, explores)
    sections = report_sections(runs, explores, sweeps) + list(extra_sections)
    if not sections:
        raise RunError("nothing to report")
    _unique_anchors(sections)
    title = title or default_title(runs, explores, sweeps)
    sub = subtitle or (f"Data: {dataset}" if dataset else "")
    html_path, md_path = write_report(out_html, title, sections, sub)
    return {"html": html_path, "md": md_path, "runs": len(runs), "experiments": len(group_runs(runs)),
            "sections": [s.title for s in sections], "dataset": dataset}
