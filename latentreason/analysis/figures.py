"""Matplotlib figures of the analysis tables; one function per figure, each writing one PNG.

Matplotlib is an optional dependency (`pip install 'latentreason[analysis]'`): `pyplot()` says so
in one line when it is missing. Several models on one figure share its axes, one colour each.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from latentreason.errors import ConfigError

DPI = 80


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or a one-line error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "latentreason analyze draws its figures with matplotlib, which is not installed: "
            "pip install 'latentreason[analysis]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by(rows: list[dict], *keys: str) -> dict:
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]].append(r)
    return groups


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _colours(labels) -> dict:
    cycle = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def _ok(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))


def segments_figure(rows: list[dict], max_steps: dict[str, int], path: Path) -> Path:
    """Token and exact accuracy when every example gets k segments (seed 000, Figure 2)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    groups = _by(rows, "model")
    colours = _colours(groups)
    for label, table in groups.items():
        k = [r["segments"] for r in table]
        for ax, key in zip(axes, ("token_accuracy", "exact_accuracy")):
            ax.plot(k, [r[key] for r in table], marker=".", color=colours[label], label=label)
            ax.axvline(max_steps[label], color=colours[label], linestyle=":", linewidth=1)
    for ax, title in zip(axes, ("token accuracy", "exact accuracy")):
        ax.set_xlabel("segments run on every example (dotted: training maximum)")
        ax.set_ylabel(title)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def halting_figure(rows: list[dict], path: Path) -> Path:
    """Token accuracy, exact accuracy and mean segments against the halting threshold (seed 000, Figure 3)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    models = _by(rows, "model")
    colours = _colours(models)
    styles = {"sigmoid(q_halt)": "-", "sigmoid(q_halt - q_continue)": "--"}
    for label, table in models.items():
        for rule, sub in _by(table, "rule").items():
            for ax, key in zip(axes, ("token_accuracy", "exact_accuracy", "mean_segments")):
                if rule in styles:
                    ax.plot(
                        [r["threshold"] for r in sub],
                        [r[key] for r in sub],
                        styles[rule],
                        color=colours[label],
                        label=f"{label}: {rule}",
                    )
                elif rule == "policy":
                    ax.axhline(
                        sub[0][key],
                        color=colours[label],
                        linestyle="-.",
                        linewidth=1,
                        label=f"{label}: its own halting rule",
                    )
                else:  # max_steps
                    ax.axhline(
                        sub[0][key],
                        color=colours[label],
                        linestyle=":",
                        linewidth=1,
                        label=f"{label}: all run max_steps",
                    )
    for ax, title in zip(axes, ("token accuracy", "exact accuracy", "mean segments")):
        ax.set_xlabel("threshold t (halt when the probability > t)")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def examples_figure(rows: list[dict], label: str, path: Path) -> Path:
    """Per-example token accuracy, exactness and output change by segment, best and random rows (seed 000, Figure 4)."""
    plt = pyplot()
    groups = _by(rows, "group")
    fig, axes = plt.subplots(len(groups), 3, figsize=(13, 3 * len(groups)), squeeze=False)
    for row_axes, (group, table) in zip(axes, groups.items()):
        for sub in _by(table, "example").values():
            k = [r["segments"] for r in sub]
            row_axes[0].plot(k, [r["token_accuracy"] for r in sub], alpha=0.7)
            row_axes[1].plot(k, [r["exact"] for r in sub], alpha=0.7)
            row_axes[2].plot(k, [r["logit_change"] for r in sub], alpha=0.7)
        for ax, title in zip(row_axes, ("token accuracy", "exact (0/1)", "output change ||Δlogits|| / ||logits||")):
            ax.set_title(f"{group} examples: {title}", fontsize=9)
            ax.set_xlabel("segments")
            ax.grid(alpha=0.3)
        row_axes[2].set_yscale("log")
    fig.suptitle(label, fontsize=10)
    return _save(fig, path)


def pca_figure(rows: list[dict], explained: list[float], label: str, path: Path) -> Path:
    """Each chosen example's latent, segment by segment, on the first two principal components."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    colours = {"best": "#1f77b4", "random": "#d62728"}
    seen = set()
    for (group, _example), sub in _by(rows, "group", "example").items():
        ax.plot(
            [r["pc1"] for r in sub],
            [r["pc2"] for r in sub],
            "-",
            color=colours[group],
            alpha=0.5,
            label=None if group in seen else group,
        )
        ax.plot(sub[0]["pc1"], sub[0]["pc2"], "o", color=colours[group], markersize=3)
        ax.plot(sub[-1]["pc1"], sub[-1]["pc2"], "x", color=colours[group], markersize=5)
        seen.add(group)
    share = ", ".join(f"PC{i + 1} {v:.0%}" for i, v in enumerate(explained))
    ax.set_title(f"latent trajectories (o start, x last segment)\n{label}; variance: {share}", fontsize=8)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def residuals_figure(rows: list[dict], path: Path) -> Path:
    """Forward residual of each state field at every update it makes, trained (solid) and untrained (dashed)."""
    plt = pyplot()
    models = _by(rows, "model")
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 3.6), squeeze=False)
    for ax, (label, table) in zip(axes[0], models.items()):
        fields = list(dict.fromkeys(r["field"] for r in table))
        colours = _colours(fields)
        for (weights, name), sub in _by(table, "weights", "field").items():
            sub = [r for r in sub if r["written"] and r["residual"] > 0]
            ax.plot(
                [r["update"] for r in sub],
                [r["residual"] for r in sub],
                "-" if weights == "trained" else "--",
                marker=".",
                markersize=3,
                color=colours[name],
                label=f"{name} ({weights})",
            )
        length = max(r["index_in_segment"] for r in table)
        for boundary in range(length, max(r["update"] for r in table), length):
            ax.axvline(boundary + 0.5, color="grey", linewidth=0.5, alpha=0.5)
        ax.set_yscale("log")
        ax.set_xlabel("update (grey lines: segment boundaries)")
        ax.set_ylabel("||z_t - z_{t-1}|| / ||z_t||")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def participation_figure(rows: list[dict], path: Path) -> Path:
    """Participation ratio of each state field by segment, trained (solid) and untrained (dashed)."""
    plt = pyplot()
    models = _by(rows, "model")
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.4), squeeze=False)
    for ax, (label, table) in zip(axes[0], models.items()):
        fields = list(dict.fromkeys(r["field"] for r in table))
        colours = _colours(fields)
        for (weights, name), sub in _by(table, "weights", "field").items():
            ax.plot(
                [r["segment"] for r in sub],
                [r["participation_ratio"] for r in sub],
                "-" if weights == "trained" else "--",
                marker=".",
                color=colours[name],
                label=f"{name} ({weights})",
            )
        ax.set_xlabel("segment")
        ax.set_ylabel("participation ratio (effective dims)")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path)


CURVE_PANELS = (
    (
        "losses (training)",
        lambda c: (
            c.startswith("train/") and (c.endswith("loss") or c in ("train/lm", "train/q_halt", "train/q_continue"))
        ),
        True,
    ),
    ("accuracy", lambda c: c.endswith("token_accuracy") or c.endswith("exact_accuracy"), False),
    ("mean segments", lambda c: c.endswith("/steps"), False),
    ("learning rate", lambda c: c == "lr", False),
)


def curve_columns(rows: list[dict], wanted) -> list[str]:
    """The wanted columns of any row, in first-seen order: Lightning writes held-out metrics on rows of their own."""
    return [c for c in dict.fromkeys(k for r in rows for k in r) if wanted(c)]


def curves_figure(runs: dict[str, list[dict]], path: Path) -> Path:
    """Loss terms, accuracies, mean segments and learning rate against the optimizer step, for each run."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4.2 * len(CURVE_PANELS), 3.4))
    colours = _colours(runs)
    styles = ["-", "--", ":", "-."]
    for ax, (title, wanted, log) in zip(axes, CURVE_PANELS):
        for label, rows in runs.items():
            columns = curve_columns(rows, wanted)
            for i, column in enumerate(columns):
                points = [(r["step"], r[column]) for r in rows if _ok(r.get(column)) and _ok(r.get("step"))]
                if points:
                    ax.plot(
                        *zip(*points),
                        styles[i % len(styles)],
                        color=colours[label],
                        marker="." if len(points) < 30 else None,
                        label=f"{label}: {column}" if len(runs) > 1 else column,
                    )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    return _save(fig, path)
