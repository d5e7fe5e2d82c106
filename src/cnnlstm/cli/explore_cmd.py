"""``cnnlstm explore``: dataset statistics, the plan's exploratory figures and a raw-pixel t-SNE."""

from __future__ import annotations

from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import add_data_flags, add_tsne_flags, fmt, load_data_for_cli, working

EXAMPLES = """\
  cnnlstm explore                            # all 70,000 images into runs/explore (t-SNE ~2 min on 2 cores)
  cnnlstm explore --tsne-samples 10000       # a quicker t-SNE of a seeded 10,000-image sample
  cnnlstm explore --tsne-samples 0           # statistics and figures only
  cnnlstm explore --k0 250 --perplexity 50 --out runs/explore-k250
  cnnlstm report runs/explore                # an HTML + Markdown page of the result
"""


def add_parser(sub) -> None:
    p = add_command(sub, "explore", help="dataset statistics, figures and a raw-pixel t-SNE",
                    description="Explore the dataset as the research plan does (Section II.B.1): class "
                                "balance, box plots of per-image means and variances, sample and mean "
                                "images, and a t-SNE of the raw pixels of train+test (PCA to 50 dims, PCA "
                                "initialisation, K0 = floor((ln n)^2) early-exaggeration iterations) with "
                                "its quality metrics (kNN k=1/10 in pixel space and in the embedding, "
                                "trustworthiness, Spearman). Writes stats.json, embed.json, "
                                "embedding.npy and figures/*.png into --out.",
                    examples=EXAMPLES)
    p.add_argument("--out", metavar="DIR", default="runs/explore", help="output folder")
    p.add_argument("--tsne-samples", type=int, default=None, metavar="N",
                   help="images in the t-SNE, a seeded sample of train+test (default: all 70,000; "
                        "0 = skip the t-SNE)")
    add_tsne_flags(p)
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm import api

    out = Path(args.out)
    ds = load_data_for_cli(args)
    with working(args.quiet, explore_steps(len(ds.train_labels) + len(ds.test_labels), args.tsne_samples)):
        stats = api.explore(out, data=ds, tsne_samples=args.tsne_samples, seed=args.seed, n_jobs=args.jobs,
                            k0=args.k0, perplexity=args.perplexity)
    if not args.quiet:
        print_summary(out, stats)
    return 0


def explore_steps(n_images: int, tsne_samples: int | None) -> str:
    """What explore does, for its spinner: ``exploring 70,000 images: ..., t-SNE of 70,000``."""
    steps = f"exploring {n_images:,} images: statistics, figures, duplicate audit"
    if tsne_samples == 0:
        return steps
    n = n_images if tsne_samples is None else min(tsne_samples, n_images)
    return f"{steps}, then a t-SNE of {n:,} (about 2 min for 70,000 on 2 cores)"


def print_summary(out: Path, stats: dict) -> None:
    s = stats["splits"]
    print(f"{s['train']['n']:,} train + {s['test']['n']:,} test images; pixel mean "
          f"{s['train']['pixel_mean']:.4f}, std {s['train']['pixel_std']:.4f} (train, 0-1 units)")
    audit = stats.get("audit")
    if audit:
        c = audit["counts"]
        print(f"duplicates (exact or L2 <= {audit['threshold']:g}): {c['exact_train'] + c['near_train']} train "
              f"pairs, {c['exact_test'] + c['near_test']} test pairs, {c['exact_train_test'] + c['near_train_test']} "
              f"train/test pairs ({c['test_overlapping_train']} test images overlap train), "
              f"{c['label_conflicts']} with conflicting labels")
    emb = stats.get("embedding")
    if emb:
        q, f = emb["quality"]["embedding"], emb["quality"]["features"]
        print(f"t-SNE of {emb['n']:,} images in {emb['seconds']:.1f} s: K0 = {emb['k0']} ({emb['k0_rule']}), "
              f"perplexity {emb['perplexity_used']:g}")
        print(f"10-NN accuracy: pixels {fmt(f['knn10'])}, embedding {fmt(q['knn10'])}; "
              f"trustworthiness {fmt(q['trustworthiness'])}; Spearman {fmt(q['spearman'])}")
    print(f"wrote {out / 'stats.json'} and {out / 'figures'}/")
