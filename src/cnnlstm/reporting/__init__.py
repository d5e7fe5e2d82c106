"""Reports: run folders -> one self-contained HTML page and its Markdown twin.

- :mod:`cnnlstm.reporting.page`: the page toolkit (blocks, HTML / Markdown rendering, :func:`write_report`);
- :mod:`cnnlstm.reporting.records`: reading run folders, sorting inputs, dataset checks, grouping seeds;
- :mod:`cnnlstm.reporting.sections`: the sections of ``cnnlstm report`` and :func:`build_report`;
- :mod:`cnnlstm.reporting.folders`, :mod:`cnnlstm.reporting.embedding`: explore and sweep folders' sections, t-SNE blocks;
- :mod:`cnnlstm.reporting.figures`: every figure, drawn from arrays;
- :mod:`cnnlstm.study.paper.report`: the study's own report (``cnnlstm reproduce``); import it from there,
  it is not loaded here because it pulls in the study presets and the plotting stack.

The page toolkit's blocks and :func:`build_report` are re-exported, so ``from cnnlstm.reporting import
build_report, Section, Table`` works.
"""

from cnnlstm.reporting.page import (
                                    BulletList,
                                    Code,
                                    Figure,
                                    Figures,
                                    Link,
                                    Paragraph,
                                    Section,
                                    Table,
                                    figure_html,
                                    html_table,
                                    markdown_table,
                                    write_report,
)
from cnnlstm.reporting.sections import build_report

__all__ = ["BulletList", "Code", "Figure", "Figures", "Link", "Paragraph", "Section", "Table", "build_report", "figure_html",
           "html_table", "markdown_table", "write_report"]
