"""``cnnlstm embed``: t-SNE of a trained run's learned features on the test set."""

from __future__ import annotations

from pathlib import Path

from cnnlstm.cli import add_command
from cnnlstm.cli.common import (
    DATA_NOTE,
    add_data_flags,
    add_device_flag,
    add_tsne_flags,
    fmt,
    load_run_data,
)

EXAMPLES = """\
  cnnlstm embed runs/cnn_lstm-20250101-120000     # all 10,000 test images (~30 s on 2 cores)
  cnnlstm embed runs/m1 --samples 2000 --seed 1   # a seeded sample, quicker
  cnnlstm embed runs/m1 --k0 250 --perplexity 50  # override K0 = floor((ln n)^2)
  cnnlstm report runs/m1                          # the report then shows the t-SNE
"""


def add_parser(sub) -> None:
    p = add_command(sub, "embed", help="t-SNE of a run's learned features",
                    description="Embed forward_features of RUN_DIR's best.pt on the test set with "
                                "openTSNE (PCA to 50 dims, PCA initialisation, K0 = floor((ln n)^2) "
                                "early-exaggeration iterations, natural log; seeded) and score it "
                                "(kNN k=1/10 in feature space and in the embedding, trustworthiness, "
                                "Spearman). Writes embedding.npy, embed.json and figures/tsne.png into "
                                "RUN_DIR and adds the features to its predictions.npz. " + DATA_NOTE,
                    examples=EXAMPLES)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (with best.pt)")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="test images embedded, a seeded sample (default: all test images)")
    add_tsne_flags(p)
    add_device_flag(p, default=None, default_text="the run's device setting")
    add_data_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from cnnlstm import api

    run_dir = Path(args.run_dir)
    record = api.embed(run_dir, samples=args.samples, perplexity=args.perplexity, k0=args.k0, seed=args.seed,
                       device=args.device, n_jobs=args.jobs, data=lambda cfg: load_run_data(args, cfg, run_dir))
    if not args.quiet:
        q, f = record["quality"]["embedding"], record["quality"]["features"]
        print(f"{run_dir}: t-SNE of {record['n']:,} test images' {record['feature_dim']}-dim features "
              f"in {record['seconds']:.1f} s; K0 = {record['k0']} ({record['k0_rule']})")
        print(f"kNN accuracy (k=1 / k=10): features {fmt(f['knn1'])} / {fmt(f['knn10'])}, "
              f"embedding {fmt(q['knn1'])} / {fmt(q['knn10'])}")
        print(f"trustworthiness {fmt(q['trustworthiness'])}, Spearman {fmt(q['spearman'])}")
        print(f"wrote {run_dir / 'embed.json'}, embedding.npy and figures/tsne.png")
    return 0
