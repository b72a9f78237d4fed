"""A Colab dress rehearsal inside the nbval run: the cells that CI otherwise skips run
too, against stand-ins, in the same kernel as the chapter's checked cells.

nbval skips the cells that need the released weights, a GPU or ImageNet (tagged
``nbval-skip``), so nothing but this rehearsal runs them before a reader in Colab does.
``tests/conftest.py`` hands every chapter that has such cells to :func:`rehearse_items`:

* before the chapter's first cell, an item of its own runs :func:`stage` in the kernel:
  an offline cache of stand-ins for every released model the chapters name (random
  weights in OpenAI's TorchScript format, the released image depth, resolution, context
  and vocabulary, narrow, with a one-block text tower, since the chapters encode up to
  89,000 prompts), their checksums in place of the released ones, and a working folder
  that holds a miniature ``imagenetv2-matched-frequency.tar.gz`` (1,000 numbered class
  folders of one tiny image) and the chapters' shared ``runs``.
  ``clip_ref.load("ViT-B/32")`` then goes through the real path: the cache, the SHA-256
  check, the safe archive reader, ``build_model``;
* each skipped cell runs (its output is not compared: none is stored) inside a guard
  that restores what a later checked cell could see: the random generators' states,
  and the names the cell bound. Names bound by rehearsed cells stay visible to later
  rehearsed cells, as in Colab, so a chapter's Colab path runs top to bottom.

A rehearsed cell that raises fails its nbval item, naming the cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import re
import tarfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_TAGS = {"nbval-skip", "skip-execution"}


def released_models_named(sources: list[str]) -> list[str]:
    """The released models a chapter loads: ``load("NAME"`` or ``MODEL = "NAME"``."""
    from clip_ref import available_models

    code = "\n".join(sources)
    pattern = r"(load\(\s*|MODEL\s*=\s*)[\"']{}[\"']"
    return [
        name
        for name in available_models()
        if re.search(pattern.format(re.escape(name)), code)
    ]


def stand_in_config(name: str):
    """The released image depth, resolution, patch size, context and vocabulary; 64
    channels wide everywhere, and one text block (the chapters' prompts are many, so
    the text tower's depth is what costs)."""
    from clip_ref import CLIPConfig

    released = CLIPConfig.from_name(name)
    if released.is_vit:
        vision = {"vision_layers": released.vision_layers, "vision_width": 64}
    else:  # a ResNet's final width is 32 x the stem's; its pool wants 64-wide heads
        vision = {"vision_layers": released.vision_layers, "vision_width": 2}
    return CLIPConfig(
        embed_dim=32,
        image_resolution=released.image_resolution,
        vision_patch_size=released.vision_patch_size,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=1,
        **vision,
    )


def build_cache(cache: Path, names: list[str]) -> dict[str, str]:
    """Stand-in archives for ``names`` in ``cache`` (built once); name -> SHA-256."""
    import torch
    from support_files import traced_openai_archive

    from clip_ref.config import RELEASED

    index = cache / "checksums.json"
    checksums = json.loads(index.read_text()) if index.exists() else {}
    for name in names:
        if name not in checksums:
            path = cache / RELEASED[name].filename
            # fp16, the release's dtype
            traced_openai_archive(path, stand_in_config(name), dtype=torch.float16)
            checksums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    index.write_text(json.dumps(checksums))
    return checksums


def _miniature_imagenetv2(data: Path) -> None:
    import torch
    from PIL import Image

    archive = data / "imagenetv2-matched-frequency.tar.gz"
    if archive.exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for label in range(1000):
            generator = torch.Generator().manual_seed(label)
            pixels = torch.randint(0, 256, (24, 32, 3), generator=generator)
            buffer = io.BytesIO()
            Image.fromarray(pixels.to(torch.uint8).numpy()).save(buffer, format="JPEG")
            info = tarfile.TarInfo(
                f"imagenetv2-matched-frequency-format-val/{label}/0.jpeg"
            )
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)


def stage(folder: str, names: list[str], runs: str) -> None:
    """Run in the chapter's kernel before its first cell: the stand-ins, the working
    folder, and ``_rehearse`` in the kernel's namespace."""
    import numpy as np
    import torch
    from IPython import get_ipython

    import clip_ref.config

    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    threads = torch.get_num_threads()
    folder = Path(folder)
    cache, work = folder / "clip-weights", folder / "chapter"
    cache.mkdir(parents=True, exist_ok=True)
    for name, sha256 in build_cache(cache, names).items():
        release = clip_ref.config.RELEASED[name]
        clip_ref.config.RELEASED[name] = dataclasses.replace(release, sha256=sha256)
    _miniature_imagenetv2(work / "data")
    Path(runs).mkdir(exist_ok=True)
    if not (work / "runs").exists():
        (work / "runs").symlink_to(runs, target_is_directory=True)
    os.environ["CLIP_REF_CACHE"] = str(cache)
    os.environ["CLIP_REF_OFFLINE"] = "1"
    os.chdir(work)
    random.setstate(rng[0])
    np.random.set_state(rng[1])
    torch.set_rng_state(rng[2])
    torch.set_num_threads(threads)
    shell = get_ipython()
    shell.user_ns["_rehearse"] = _Rehearsal(shell)


class _Rehearsal:
    """Runs a skipped cell in the kernel, then restores the generators and the names
    that checked cells see; the cell's own bindings are kept for later skipped cells."""

    def __init__(self, shell):
        self.shell = shell
        self.bindings: dict = {}

    def __call__(self, source: str) -> None:
        import numpy as np
        import torch

        ns = self.shell.user_ns
        before = dict(ns)
        rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        ns.update(self.bindings)
        try:
            result = self.shell.run_cell(source, store_history=False)
        finally:
            for key, value in list(ns.items()):
                if key not in before or before[key] is not value:
                    self.bindings[key] = value
                    if key in before:
                        ns[key] = before[key]
                    else:
                        del ns[key]
            random.setstate(rng[0])
            np.random.set_state(rng[1])
            torch.set_rng_state(rng[2])
        result.raise_error()


def _tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


def rehearse_items(items: list, folder: Path) -> tuple[int, int]:
    """Turn nbval's skipped cells of each chapter in ``items`` into rehearsed ones, and
    insert an item that stages the stand-ins before each such chapter's first cell (in
    place). Returns (rehearsed cells, chapters)."""
    import nbformat

    chapters: dict = {}
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            chapters.setdefault(item.parent, []).append(item)
    rehearsed, staged = 0, []
    for chapter, cells in chapters.items():
        skipped = [c for c in cells if SKIP_TAGS & _tags(c.cell)]
        if not skipped:
            continue
        names = released_models_named([c.cell.source for c in cells])
        setup = (
            f"import sys as _sys; _sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
            "import rehearsal as _rehearsal\n"
            f"_rehearsal.stage({str(folder)!r}, {names!r}, "
            f"{str(ROOT / 'chapters' / 'runs')!r})\n"
        )
        first = cells[0]
        options = defaultdict(bool, check=False)
        staging = type(first).from_parent(
            chapter,
            name="rehearsal set-up",
            cell_num=first.cell_num,
            cell=nbformat.v4.new_code_cell(setup),
            options=options,
        )
        staged.append((first, staging))
        for item in skipped:  # nbval read the notebook itself: changed in memory only
            item.options["skip"] = False
            item.options["check"] = False
            item.cell.source = f"_rehearse({item.cell.source!r})"
            rehearsed += 1
    for first, staging in staged:
        items.insert(items.index(first), staging)
    return rehearsed, len(staged)
