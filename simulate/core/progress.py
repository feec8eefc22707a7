"""Progress bars of the commands: a tqdm bar on stderr, or one that does nothing (``--quiet``, no tqdm), and the
progress of an ODE solver along alpha."""

from __future__ import annotations

__all__ = ["progress_bar", "AlphaProgress"]


class _NoBar:
    """What :func:`progress_bar` returns when there is nothing to show."""

    n = 0

    def update(self, n=1):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(total, desc: str, *, show: bool = True, unit: str = "it", **kwargs):
    """A tqdm bar on stderr (``show=False``, e.g. under ``--quiet``, or tqdm not installed: a bar that does
    nothing).  ``total`` may be a float (alpha of an ODE, seconds); ``bar.update(x)`` moves it by x."""
    if not show:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with the mc/empirical/sweep extras; the ODE commands run without it
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, **kwargs)


class AlphaProgress:
    """Progress of an ODE solver along alpha: wraps the right-hand side ``f(alpha, y)`` and moves the bar to
    the largest alpha the solver has reached (the solution is unchanged: only ``alpha`` is read)."""

    def __init__(self, f, alpha_end: float, desc: str = "ODE", show: bool = True):
        self.f, self.reached = f, 0.0
        self.bar = progress_bar(float(alpha_end), desc, show=show, unit="alpha",
                                bar_format="{desc}: {percentage:3.0f}%|{bar}| alpha {n:.4g}/{total:.4g} "
                                           "[{elapsed}<{remaining}]")

    def __call__(self, alpha, y):
        if alpha > self.reached:
            self.bar.update(float(alpha) - self.reached)
            self.reached = float(alpha)
        return self.f(alpha, y)

    def close(self):
        self.bar.close()
