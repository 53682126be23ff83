"""Figures of the analyses: weight-update heatmaps and GIF (paper Figures 5/6), per-type lines, KL curves
(Figure 4) and causal-tracing profiles (Figure 12).

Uses matplotlib's object API (``Figure`` + Agg canvas), never pyplot's global state, so it is safe in worker
threads and leaves other code's figures alone. GIFs are assembled with pillow from rendered frames.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from scalpel import atomic


def slug(text: str) -> str:
    """A file-name-safe version of a label (``sft/42`` → ``sft-42``)."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-") or "x"


def figure(w: float, h: float) -> Figure:
    """A ``w`` × ``h`` inch figure on its own Agg canvas (no pyplot state)."""
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def to_image(fig: Figure) -> Image.Image:
    """The rendered figure as an RGB image (a GIF frame)."""
    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")


def heatmap_figure(grid: np.ndarray, matrices: Sequence[str], title: str, vmax: float | None = None,
                   label: str = "‖ΔW‖_F / ‖W‖_F") -> Figure:
    """Layer (rows, layer 0 at the bottom as in the paper) × matrix type (columns) heatmap of one checkpoint."""
    n_layers = grid.shape[0]
    fig = figure(1.0 + 0.55 * len(matrices), 1.2 + 0.22 * max(n_layers, 4))
    ax = fig.add_subplot(1, 1, 1)
    finite = grid[np.isfinite(grid)]
    vmax = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax or 1.0)
    ax.set_xticks(range(len(matrices)), list(matrices))
    step = max(1, n_layers // 16)
    ax.set_yticks(range(0, n_layers, step))
    ax.set_xlabel("matrix")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=label)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def save_gif(figs: Sequence[Figure], path: Path, ms_per_frame: int = 600) -> Path:
    """An animated GIF (looping) from figures of identical size."""
    frames = [to_image(f) for f in figs]
    with atomic.atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return path


def lines_figure(x: Sequence[float], series: dict[str, Sequence[float]], title: str, xlabel: str,
                 ylabel: str, logy: bool = False) -> Figure:
    """One line per series against a shared x (training step)."""
    fig = curves_figure({name: (x, ys, None) for name, ys in series.items()}, title, xlabel, ylabel)
    if logy:
        fig.axes[0].set_yscale("log")
    return fig


def curves_figure(curves: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
                  title: str, xlabel: str, ylabel: str) -> Figure:
    """One line per arm with an optional ±error band: ``{arm: (x, y, err or None)}`` (Figure 4's layout)."""
    fig = figure(6.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for name, (x, y, err) in curves.items():
        x, y = np.asarray(x, float), np.asarray(y, float)
        ax.plot(x, y, marker="o", markersize=3, label=name)
        if err is not None:
            e = np.asarray(err, float)
            ax.fill_between(x, y - e, y + e, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def trace_figure(grids: dict[str, np.ndarray], rows: Sequence[str], title: str,
                 profiles: dict[str, dict[str, Sequence[float]]]) -> Figure:
    """Causal-tracing figure: per state kind, a (token position × layer) AIE heatmap (ROME Fig. 1 layout), and
    below, per kind, AIE by layer at the last subject token and the last token (the paper's Figure 12)."""
    kinds = list(grids)
    fig = figure(4.2 * len(kinds), 6.4)
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(2, len(kinds), i + 1)
        g = grids[kind]
        im = ax.imshow(g, aspect="auto", cmap={"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}.get(kind, "Blues"),
                       vmin=min(0.0, float(np.nanmin(g))), vmax=max(1e-9, float(np.nanmax(g))))
        ax.set_yticks(range(len(rows)), list(rows), fontsize=7)
        ax.set_xlabel("layer")
        ax.set_title(f"AIE, restoring {kind}", fontsize=9)
        fig.colorbar(im, ax=ax)
        ax2 = fig.add_subplot(2, len(kinds), len(kinds) + i + 1)
        for name, ys in profiles[kind].items():
            ax2.plot(range(len(ys)), list(ys), marker="o", markersize=3, label=name)
        ax2.set_xlabel("layer")
        ax2.set_ylabel("AIE")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
