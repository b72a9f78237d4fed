"""Small helpers for the book's notebooks: reproducible setup and showing the package's
real source.

The book never pastes package code into a chapter; it renders the source of the object
it explains with :func:`show_source`, so the text and the code that runs can never drift
apart.
"""

from __future__ import annotations

import inspect
import random

import numpy as np
import torch

from ..device import default_device

__all__ = ["setup", "show_source"]


def setup(seed: int = 0, threads: int = 2) -> torch.device:
    """Seed every random generator, pin the CPU thread count, and return the default
    device.

    Pinning threads matters for reproducible stored outputs: reductions on CPU may sum
    in a different order with a different number of threads.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return default_device()


def show_source(obj):
    """Display the source of ``obj`` (``inspect.getsource``) as a highlighted code
    block in a notebook.

    Returns an IPython ``Markdown`` object, so the book renders it with syntax
    highlighting; outside IPython it returns the plain source text.
    """
    text = inspect.getsource(obj)
    try:
        from IPython.display import Markdown
    except ImportError:  # plain Python: no rich display
        return text
    return Markdown(f"```python\n{text}```")
