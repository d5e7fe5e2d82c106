"""The HTML report in a real browser: every image decodes, tables render, nothing is fetched.

Headless Chromium loads a copy of the report to which the test appends a small script; the
script writes what it found into the DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cnnlstm.fileio import write_history, write_json
from cnnlstm.measure.embed import embedding_quality
from cnnlstm.measure.metrics import compute_metrics
from cnnlstm.reporting import build_report
from cnnlstm.reporting import figures as plots
from cnnlstm.study.exploration import embed_record

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(`apt-get install chromium`; make test installs it as root)"),
]

PROBE = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const external = performance.getEntriesByType("resource").map(e => e.name)
    .filter(n => !n.startsWith("data:") && !n.includes("must-not-load"));
  const probe = document.getElementById("probe");
  const out = {
    images: imgs.length - 1,
    decoded: imgs.filter(i => i !== probe && i.complete && i.naturalWidth > 0).length,
    tables: document.querySelectorAll("table").length,
    external: external,
    probe_loaded: probe.naturalWidth > 0,
    violations: window.__violations || 0,
    width: document.documentElement.scrollWidth,
  };
  const pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
document.addEventListener("securitypolicyviolation", () => { window.__violations = (window.__violations || 0) + 1; });
</script>
<img id="probe" src="http://127.0.0.1:9/must-not-load.png" alt="">
"""


def fake_run(folder: Path, seed: int) -> Path:
    """A finished run folder made from arrays (no training): config, history, metrics, figures."""
    rng = np.random.default_rng(seed)
    classes = [f"class {i}" for i in range(10)]
    labels = np.arange(200) % 10
    probs = rng.dirichlet(np.ones(10), size=200)
    probs[np.arange(200), labels] += 0.5  # better than chance
    probs /= probs.sum(1, keepdims=True)
    metrics = compute_metrics(labels, probs, classes)
    metrics.update(checkpoint="best", tta=False, epochs_trained=2, best_epoch=2, train_seconds=3.0,
                   eval_seconds=0.1, dataset="/data/x", verified=True)
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + 0.1 * e, "val_loss": 1.1 / e,
                "val_acc": 0.45 + 0.1 * e, "lr": 1e-3, "seconds": 1.5} for e in (1, 2)]
    write_json(folder / "config.json", {"model": "model1", "epochs": 2, "seed": seed, "lr": 0.002})
    write_json(folder / "metrics.json", metrics)
    write_history(folder / "history.csv", history)
    figs = folder / "figures"
    cm = np.asarray(metrics["confusion_matrix"])
    plots.plot_confusion_matrix(cm, classes, figs / "confusion_matrix.png")
    plots.plot_roc(labels, probs, classes, figs / "roc_worst_class.png", classes=[metrics["worst_class"]])
    plots.plot_history(history, figs / "history.png")
    emb = rng.normal(size=(200, 2))
    plots.plot_embedding(emb, labels, classes, figs / "tsne.png", "t-SNE")
    quality = embedding_quality(probs, emb, labels, sample=100, seed=seed)
    write_json(folder / "embed.json", embed_record(space="model1 features", n=200, perplexity=30, k0=None,
                                                   seed=seed, n_jobs=1, seconds=1.0, quality=quality,
                                                   indices=None, index_space="test"))
    return folder


def chromium_dump(html: Path, profile: Path) -> str:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", html.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_renders_in_chromium_with_every_image_and_no_fetch(tmp_path):
    runs = [fake_run(tmp_path / f"r{s}", s) for s in (0, 1)]
    out = tmp_path / "report.html"
    build_report(runs, out, title="browser check")
    page = out.read_text(encoding="utf-8")
    n_images, n_tables = page.count("<img "), page.count("<table")
    assert n_images == 8 and n_tables >= 10
    # The test copy lets its own inline script run; everything else in the policy stays as written.
    probed = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    assert probed != page
    probed = probed.replace("</body>", PROBE + "</body>", 1)
    copy = tmp_path / "probed.html"
    copy.write_text(probed, encoding="utf-8")
    dom = chromium_dump(copy, tmp_path / "profile")
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] == n_images and result["decoded"] == n_images
    assert result["tables"] == n_tables
    assert result["external"] == []  # nothing fetched beyond data: URIs
    assert not result["probe_loaded"] and result["violations"] >= 1  # the policy blocks remote images
    assert result["width"] <= 1400  # no runaway horizontal layout at the default window size
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
