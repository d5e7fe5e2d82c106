"""Reports: run folders -> one self-contained HTML page and its Markdown twin.

- :mod:`cnnlstm.report.page`: the page toolkit (blocks, HTML / Markdown rendering, :func:`write_report`);
- :mod:`cnnlstm.report.records`: reading run folders, sorting inputs, dataset checks, grouping seeds;
- :mod:`cnnlstm.report.sections`: the sections of ``cnnlstm report`` and :func:`build_report`;
- :mod:`cnnlstm.report.study`: the study's own report (``cnnlstm reproduce``); import it from there,
  it is not loaded here because it pulls in the study presets and the plotting stack.

The public names of the first three are re-exported, so ``from cnnlstm.report import build_report,
Section, Table`` keeps working.
"""

from cnnlstm.errors import RunError
from cnnlstm.report.page import (CSP, MIME, STYLE, Block, Code, Figure, Figures, Link, Paragraph, Section, Table,
                                 figure_html, format_cell, html_table, image_data_uri, markdown_page,
                                 markdown_table, render_page, slug, write_report)
from cnnlstm.report.records import (OPERATIONAL_KEYS, RunRecord, check_same_dataset, classify_inputs,
                                    dataset_identity, experiment_key, group_runs, load_run)
from cnnlstm.report.sections import (COMPARISON_COLUMNS, CONFIG_SUMMARY_KEYS, EXPLORE_FIGURES, MAX_TRIALS_SHOWN,
                                     METRIC_LABELS, QUALITY_COLUMNS, QUALITY_NOTE, REFERENCE_COLUMNS, build_report,
                                     comparison_rows, comparison_section, config_blocks, default_title,
                                     embed_blocks, embedding_comparison_section, explore_section, history_blocks,
                                     metrics_blocks, model_description, plain, pm, quality_row, reference_rows,
                                     reference_section, report_sections, run_figures, run_section, sweep_section)
from cnnlstm.stats import mean_std

__all__ = [
    "CSP", "MIME", "STYLE", "Block", "Code", "Figure", "Figures", "Link", "Paragraph", "Section", "Table",
    "figure_html", "format_cell", "html_table", "image_data_uri", "markdown_page", "markdown_table",
    "render_page", "slug", "write_report",
    "OPERATIONAL_KEYS", "RunRecord", "check_same_dataset", "classify_inputs", "dataset_identity",
    "experiment_key", "group_runs", "load_run",
    "COMPARISON_COLUMNS", "CONFIG_SUMMARY_KEYS", "EXPLORE_FIGURES", "MAX_TRIALS_SHOWN", "METRIC_LABELS",
    "QUALITY_COLUMNS", "QUALITY_NOTE", "REFERENCE_COLUMNS", "build_report", "comparison_rows",
    "comparison_section", "config_blocks", "default_title", "embed_blocks", "embedding_comparison_section",
    "explore_section", "history_blocks", "metrics_blocks", "model_description", "plain", "pm", "quality_row",
    "reference_rows", "reference_section", "report_sections", "run_figures", "run_section", "sweep_section",
    "RunError", "mean_std",
]
