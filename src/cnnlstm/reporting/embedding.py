"""Report blocks of a t-SNE embedding: its settings, its quality numbers and its figure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnnlstm.reporting.page import Figure, Paragraph, Section, Table, plain
from cnnlstm.reporting.records import RunRecord


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
