"""Write the analysis out: a PNG and a CSV per figure, and one self-contained HTML report.

The report embeds every image as base64 data, so the single file opens offline and can be mailed.
A small script in it counts the images that loaded and writes the count into the page title,
which `scripts/check_report.sh` reads from headless Chromium.
"""

from __future__ import annotations

import base64
import html
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from latentreason.analysis import figures
from latentreason.analysis.analyze import CheckpointAnalysis, slug, write_csv

EXPLAIN = {
    "summary": (
        "Accuracy of each model when every example runs the training maximum of segments, the most segments "
        "traced, and its own halting rule (as <code>latentreason eval</code> applies it)."
    ),
    "segments": (
        "Every example gets exactly k segments, no halting, beyond the training maximum (dotted line). A "
        "curve that keeps rising past the maximum suggests a recurrence that generalises; a flat one, a "
        "fixed-depth network (Ge, Liao &amp; Poggio, Figure 2)."
    ),
    "halting": (
        "Each example halts at the first segment where the probability exceeds the threshold t (or at the "
        "training maximum). Horizontal lines: the policy's own rule and running every example to the maximum "
        "(Figure 3 of Ge et al.)."
    ),
    "examples": (
        "Best examples (most often exactly right) and random ones: token accuracy, exactness and how much the"
        " output logits move from one segment to the next (Figure 4 of Ge et al.)."
    ),
    "latent_pca": (
        "The latent the heads read (all positions), before segment 1 and after each segment, projected on the"
        " first two principal components of all these points."
    ),
    "grids": (
        "Intermediate predictions, segment by segment, with each segment's token accuracy ('ok': exactly "
        "right) (Figure 5 of Ge et al.)."
    ),
    "residuals": (
        "Forward residual ||z_t - z_(t-1)|| / ||z_t|| of each state field at every update that writes it, "
        "over the schedule of successive segments: the trained model (solid) against an untrained one of the "
        "same shape (dashed). Residuals that fall inside a segment and jump when another module updates are "
        "the HRM paper's 'hierarchical convergence'."
    ),
    "participation": (
        "Participation ratio (effective dimensionality, (sum of eigenvalues)^2 / sum of squares, of the "
        "states' covariance over examples and positions) of each state field after each segment, trained "
        "(solid) against untrained (dashed)."
    ),
    "curves": (
        "Training curves from each run's metrics.csv: loss terms, accuracies (train and held-out), mean "
        "segments, learning rate."
    ),
}


@dataclass
class Section:
    title: str
    key: str
    images: list[tuple[str, Path]] = field(default_factory=list)
    csvs: list[Path] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)  # shown as an HTML table under the text


def summary(results: list[CheckpointAnalysis]) -> list[dict]:
    """One line per checkpoint: accuracy at the training maximum, at the last traced segment and under its own
    halting rule."""
    lines = []
    for res in results:
        line = {"model": res.label, "trained with (segments)": res.max_steps}
        segments = {r["segments"]: r for r in res.tables.get("segments", [])}
        for k in sorted({res.max_steps, max(segments, default=res.max_steps)}):
            if k in segments:
                line[f"token / exact at {k}"] = (
                    f"{segments[k]['token_accuracy']:.1%} / {segments[k]['exact_accuracy']:.1%}"
                )
        policy = next((r for r in res.tables.get("halting", []) if r["rule"] == "policy"), None)
        if policy:
            line["own halting rule: token / exact, mean segments"] = (
                f"{policy['token_accuracy']:.1%} / {policy['exact_accuracy']:.1%}, {policy['mean_segments']:.2f}"
            )
        lines.append(line)
    return lines


def build_sections(results: list[CheckpointAnalysis], runs: dict[str, list[dict]], out: Path) -> list[Section]:
    """Draw every figure the results allow into `out`, with the CSV behind each; returns them in report order."""
    sections = []
    if results and results[0].tables.get("segments"):
        lines = summary(results)
        sections.append(Section("Summary", "summary", csvs=[write_csv(lines, out / "summary.csv")], table=lines))

    def merged(name: str) -> list[dict]:
        return [r for res in results for r in res.tables.get(name, [])]

    if merged("segments"):
        rows = merged("segments")
        png = figures.segments_figure(rows, {r.label: r.max_steps for r in results}, out / "accuracy_vs_segments.png")
        sections.append(
            Section(
                "Accuracy against segments",
                "segments",
                [("", png)],
                [write_csv(rows, out / "accuracy_vs_segments.csv")],
            )
        )
    if merged("halting"):
        rows = merged("halting")
        png = figures.halting_figure(rows, out / "halting_sweep.png")
        sections.append(
            Section("Halting thresholds", "halting", [("", png)], [write_csv(rows, out / "halting_sweep.csv")])
        )
    for res in results:
        if "examples" in res.tables:
            name = slug(res.label)
            png = figures.examples_figure(res.tables["examples"], res.label, out / f"examples-{name}.png")
            sections.append(
                Section(
                    f"Per-example trajectories: {res.label}",
                    "examples",
                    [("", png)],
                    [write_csv(res.tables["examples"], out / f"examples-{name}.csv")],
                )
            )
        if "latent_pca" in res.tables:
            name = slug(res.label)
            png = figures.pca_figure(res.tables["latent_pca"], res.explained, res.label, out / f"latent_pca-{name}.png")
            sections.append(
                Section(
                    f"Latent trajectories: {res.label}",
                    "latent_pca",
                    [("", png)],
                    [write_csv(res.tables["latent_pca"], out / f"latent_pca-{name}.csv")],
                )
            )
        if res.grid_pngs:
            sections.append(Section(f"Intermediate predictions: {res.label}", "grids", list(res.grid_pngs)))
    if merged("residuals"):
        rows = merged("residuals")
        png = figures.residuals_figure(rows, out / "residuals.png")
        sections.append(
            Section("Convergence inside segments", "residuals", [("", png)], [write_csv(rows, out / "residuals.csv")])
        )
    if merged("participation"):
        rows = merged("participation")
        png = figures.participation_figure(rows, out / "participation_ratio.png")
        sections.append(
            Section(
                "Participation ratio", "participation", [("", png)], [write_csv(rows, out / "participation_ratio.csv")]
            )
        )
    if runs:
        png = figures.curves_figure(runs, out / "training_curves.png")
        csvs = [write_csv(rows, out / f"training_curves-{slug(label)}.csv") for label, rows in runs.items()]
        sections.append(Section("Training curves", "curves", [("", png)], csvs))
    return sections


def hardware() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    import os

    return f"CPU only ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def embed(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f"data:image/png;base64,{data}"


STYLE = """body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em;color:#222}
img{max-width:100%;border:1px solid #ddd;margin:4px 0} h2{border-bottom:1px solid #ccc;margin-top:1.5em}
.meta{color:#555;font-size:90%} figure{margin:0.5em 0} figcaption{font-size:85%;color:#444}"""

COUNTER = """<script>
window.addEventListener('load', function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) if (images[i].complete && images[i].naturalWidth > 0) loaded++;
  document.title = 'images loaded ' + loaded + '/' + images.length;
  document.getElementById('loaded').textContent = loaded + ' of ' + images.length + ' images loaded';
});
</script>"""


def write_report(sections: list[Section], out: Path, command: str, sources: list[str]) -> Path:
    """One HTML file with every figure embedded, its explanation and the CSV files beside it."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>latentreason analysis</title>",
        f"<style>{STYLE}</style>{COUNTER}</head><body>",
        "<h1>latentreason analysis</h1>",
        f"<p class='meta'><code>{html.escape(command)}</code><br>{html.escape(hardware())}, {when}, "
        f"torch {torch.__version__}. <span id='loaded'></span></p>",
        "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sources) + "</ul>",
        "<p>Contents: "
        + " · ".join(f"<a href='#s{i}'>{html.escape(s.title)}</a>" for i, s in enumerate(sections))
        + "</p>",
    ]
    for i, section in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(section.title)}</h2><p>{EXPLAIN.get(section.key, '')}</p>")
        for caption, image in section.images:
            alt = html.escape(caption or section.title)
            parts.append(
                f"<figure><img alt='{alt}' src='{embed(image)}'>"
                + (f"<figcaption>{alt}</figcaption>" if caption else "")
                + "</figure>"
            )
        if section.table:
            columns = list(dict.fromkeys(k for line in section.table for k in line))
            parts.append(
                "<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>"
                + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
                + "</tr>"
                + "".join(
                    "<tr>" + "".join(f"<td>{html.escape(str(line.get(c, '')))}</td>" for c in columns) + "</tr>"
                    for line in section.table
                )
                + "</table>"
            )
        if section.csvs:
            parts.append(
                "<p class='meta'>Numbers: "
                + ", ".join(f"<a href='{c.name}'>{c.name}</a>" for c in section.csvs)
                + "</p>"
            )
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
