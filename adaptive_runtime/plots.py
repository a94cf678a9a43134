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


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        msg = "plots need matplotlib: pip install 'adaptive-runtime[plot]'"
        raise ConfigurationError(msg) from None
    matplotlib.use("Agg")  # files only: no display is needed or used
    import matplotlib.pyplot as plt

    return plt


def _reliability(ax: Any, curves: Mapping[str, Calibration]) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for name, cal in curves.items():
        points = [(b.confidence, b.success_rate) for b in cal.bins if b.n >= MIN_BIN]
        if points:
            xs, ys = zip(*points, strict=True)
            ece = "-" if cal.ece is None else f"{cal.ece:.3f}"
            ax.plot(xs, ys, marker="o", label=f"{name} (ECE {ece})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("success rate")
    ax.set_title("Reliability")
    ax.legend(loc="upper left", fontsize="small")


def reliability_diagram(
    path: str | os.PathLike[str], curves: Mapping[str, Calibration], title: str
) -> None:
    """Write a reliability diagram: each curve's success rate against its confidence."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    _reliability(ax, curves)
    fig.suptitle(title)
    fig.tight_layout()
    _save(plt, fig, path)


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
