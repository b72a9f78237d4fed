"""The Colab rehearsal's parts (tests/rehearsal.py): the stand-ins load through the real
path, and a rehearsed cell leaves nothing behind that a later checked cell could see.

The rehearsal itself runs inside ``make test``'s nbval run, where every chapter's
skipped cells execute against these stand-ins (its summary line counts them)."""

from __future__ import annotations

import dataclasses
import random

import nbformat
import numpy as np
import pytest
import torch
from rehearsal import (
    ROOT,
    SKIP_TAGS,
    _Rehearsal,
    build_cache,
    released_models_named,
)

from clip_ref import CLIPConfig
from clip_ref.config import RELEASED

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def _code(path):
    cells = nbformat.read(path, as_version=4).cells
    return [c for c in cells if c.cell_type == "code"]


def test_the_chapters_have_cells_to_rehearse():
    skipped = [
        c
        for path in CHAPTERS
        for c in _code(path)
        if SKIP_TAGS & set(c.metadata.get("tags", []))
    ]
    assert skipped, "no chapter has a Colab-only cell: the rehearsal would test nothing"


@pytest.mark.slow
def test_stand_ins_have_the_released_image_depth_and_load_through_the_real_path(
    stand_in_cache, monkeypatch
):
    import clip_ref

    names = sorted(
        {
            n
            for p in CHAPTERS
            for n in released_models_named([c.source for c in _code(p)])
        }
    )
    assert names, "no chapter names a released model"
    checksums = build_cache(stand_in_cache, names)
    monkeypatch.setenv("CLIP_REF_OFFLINE", "1")
    for name, sha256 in checksums.items():
        monkeypatch.setitem(
            RELEASED, name, dataclasses.replace(RELEASED[name], sha256=sha256)
        )
        model, preprocess = clip_ref.load(
            name, device="cpu", download_root=stand_in_cache
        )
        released = CLIPConfig.from_name(name)
        assert model.config.vision_layers == released.vision_layers, name
        assert model.config.transformer_layers == 1, name
        assert preprocess.n_px == released.image_resolution, name


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def test_a_rehearsed_cell_leaves_the_checked_names_and_generators_as_they_were(shell):
    rehearse = _Rehearsal(shell)
    shell.run_cell("model = 'toy'; import torch; torch.manual_seed(1)").raise_error()

    def seed():
        torch.manual_seed(1)
        random.seed(1)
        np.random.seed(1)

    seed()
    expected = (torch.rand(3), random.random(), np.random.rand())
    seed()
    rehearse(
        "model = 'released'; extra = torch.randn(5)\n"
        "import random, numpy; random.random(); numpy.random.rand()"
    )
    assert shell.user_ns["model"] == "toy" and "extra" not in shell.user_ns
    # the generators are where they were: the same draws as without the cell
    assert torch.equal(torch.rand(3), expected[0])
    assert (random.random(), np.random.rand()) == expected[1:]
    # a later rehearsed cell sees what the earlier one bound, as in Colab
    rehearse("assert model == 'released' and extra.shape == (5,)")
    with pytest.raises(ZeroDivisionError):
        rehearse("1 / 0")
