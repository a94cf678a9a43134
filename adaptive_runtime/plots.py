"""Figures: a reliability diagram and success over time, drawn with matplotlib.

matplotlib is an optional extra (`pip install 'adaptive-runtime[plot]'`); it is
imported only when a figure is asked for, and without it the error says what to install.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .calibration import Calibration
from .errors import ConfigurationError

__all__ = ["MIN_BIN", "reliability_and_success", "reliability_diagram"]

MIN_BIN = 10
"""Bins with fewer outcomes are left off the reliability curves: their rate is mostly noise."""
EMPTY = f"no curve yet: no confidence band\nholds {MIN_BIN} outcomes"
"""What a reliability diagram with no curve says in its middle."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        msg = "plots need matplotlib: pip install 'adaptive-runtime[plot]'"
        raise ConfigurationError(msg) from None
    matplotlib.use("Agg")  # files only: no display is needed or used
    import matplotlib.pyplot as plt

    return plt


def _reliability(ax: Any, curves: Mapping[str, Calibration]) -> bool:
    """Draw each curve's points (its bands of MIN_BIN outcomes or more); whether any was.

    With none, the plot says so in its middle, rather than show an empty square.
    """
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    drawn = False
    for name, cal in curves.items():
        points = [(b.confidence, b.success_rate) for b in cal.bins if b.n >= MIN_BIN]
        if points:
            drawn = True
            xs, ys = zip(*points, strict=True)
            ece = "-" if cal.ece is None else f"{cal.ece:.3f}"
            ax.plot(xs, ys, marker="o", label=f"{name} (ECE {ece})")
    if not drawn:
        ax.text(0.5, 0.5, EMPTY, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("success rate")
    ax.set_title("Reliability")
    ax.legend(loc="upper left", fontsize="small")
    return drawn


def reliability_diagram(
    path: str | os.PathLike[str], curves: Mapping[str, Calibration], title: str
) -> bool:
    """Write a reliability diagram: each curve's success rate against its confidence.

    Return whether it shows a curve: False when no confidence band holds MIN_BIN outcomes.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    drawn = _reliability(ax, curves)
    fig.suptitle(title)
    fig.tight_layout()
    _save(plt, fig, path)
    return drawn


def reliability_and_success(
    path: str | os.PathLike[str],
    curves: Mapping[str, Calibration],
    success: Mapping[str, Sequence[float]],
    window: int,
    shifts: Sequence[int],
    title: str,
) -> None:
    """Write a reliability diagram beside expected success over time (per window of events)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    _reliability(left, curves)
    for name, values in success.items():
        xs = [i * window + window / 2 for i in range(len(values))]
        right.plot(xs, values, label=name)
    for at in shifts:
        right.axvline(at, color="grey", linestyle=":", linewidth=1)
    right.set_ylim(0, 1)
    right.set_xlabel(f"event (mean per {window})")
    right.set_ylabel("expected success")
    right.set_title("Success over time")
    right.legend(loc="lower right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: str | os.PathLike[str]) -> None:
    """Write the figure as a PNG; it is closed whether or not the file could be written."""
    try:
        fig.savefig(os.fspath(path), format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)
