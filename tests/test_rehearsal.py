"""A Colab dress rehearsal: every chapter runs top to bottom with *all* its cells, the
skipped ones included.

nbval skips the cells that need the released weights, a GPU or ImageNet (tagged
``nbval-skip``), so nothing but this test runs them before a reader in Colab does. Here
they run against stand-ins:

* the released weights: for every model a chapter names, a small random-weight model
  with the released image tower's depth and resolution, the released context and
  vocabulary, narrow everywhere and with a text tower one block deep (the chapters
  encode up to 89,000 prompts, 1,000 ImageNet classes by 80 templates and more, which at
  the released depth took most of the rehearsal's quarter of an hour), traced and saved
  as a TorchScript archive like OpenAI's, put in an offline cache. The chapter's
  ``clip_ref.load("ViT-B/32")`` goes through the real path (the cache, the SHA-256
  check, the safe archive reader, ``build_model``): only the expected checksum is the
  stand-in's.
* ImageNetV2: a miniature ``imagenetv2-matched-frequency.tar.gz`` with 1,000 numbered
  class folders of one tiny image each, where the chapter's download helper looks for
  the archive, so the real unpacking and the numbered-folder labelling run too.

A chapter passes if no cell raises. Chapters without skipped cells run completely under
nbval already, so they are only checked to have none. Runs share ``chapters/runs`` with
nbval, so a toy model trained here is reused there (and the other way round) rather than
trained twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from PIL import Image
from support_files import traced_openai_archive

from clip_ref import CLIPConfig, available_models
from clip_ref.download import RELEASED

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
SKIP_TAGS = {"nbval-skip", "skip-execution"}

pytestmark = pytest.mark.slow


def _skipped_cells(notebook) -> list:
    return [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and SKIP_TAGS & set(cell.metadata.get("tags", []))
    ]


def _named_models(notebook) -> list[str]:
    """The released models a chapter loads: ``load("NAME"`` or ``MODEL = "NAME"`` in
    a code cell."""
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    return [
        name
        for name in available_models()
        if re.search(rf"(load\(\s*|MODEL\s*=\s*)[\"']{re.escape(name)}[\"']", code)
    ]


def _stand_in(name: str) -> CLIPConfig:
    """The released image depth, resolution, patch size, context and vocabulary; 64
    channels wide everywhere,
    and one text block (the chapters' prompts are many, so the text tower's depth is
    what costs)."""
    released = CLIPConfig.from_name(name)
    if released.is_vit:
        vision = dict(vision_layers=released.vision_layers, vision_width=64)
    # a ResNet's final width is 32 x the stem's, and its attention pool wants 64-channel
    # heads
    else:
        vision = dict(vision_layers=released.vision_layers, vision_width=2)
    return CLIPConfig(
        embed_dim=32,
        image_resolution=released.image_resolution,
        vision_patch_size=released.vision_patch_size,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=1,
        **vision,
    )


@pytest.fixture(scope="module")
def weights_cache(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """An offline cache of stand-in archives for every model any chapter names:
    (folder, name -> SHA-256)."""
    cache = tmp_path_factory.mktemp("clip-weights")
    names = sorted(
        {
            name
            for path in CHAPTERS
            for name in _named_models(nbformat.read(path, as_version=4))
        }
    )
    checksums = {}
    for name in names:
        path = cache / RELEASED[name].filename
        # the release's dtype
        traced_openai_archive(path, _stand_in(name), dtype=torch.float16)
        checksums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return cache, checksums


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The chapters' working folder: the shared toy runs, and a miniature ImageNetV2
    archive in data/."""
    folder = tmp_path_factory.mktemp("chapters")
    runs = ROOT / "chapters" / "runs"
    runs.mkdir(exist_ok=True)
    (folder / "runs").symlink_to(runs, target_is_directory=True)
    data = folder / "data"
    data.mkdir()
    with tarfile.open(data / "imagenetv2-matched-frequency.tar.gz", "w:gz") as tar:
        for label in range(1000):
            pixels = torch.randint(
                0, 256, (24, 32, 3), generator=torch.Generator().manual_seed(label)
            )
            buffer = io.BytesIO()
            Image.fromarray(pixels.to(torch.uint8).numpy()).save(buffer, format="JPEG")
            info = tarfile.TarInfo(
                f"imagenetv2-matched-frequency-format-val/{label}/0.jpeg"
            )
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
    return folder


def _rehearsal_setup(cache: Path, checksums: dict[str, str]) -> str:
    """The first cell: the offline cache of stand-ins, and their checksums in place
    of the released ones."""
    return "\n".join(
        [
            "import dataclasses, os",
            "import clip_ref.download",
            f"os.environ['CLIP_REF_CACHE'] = {str(cache)!r}",
            "os.environ['CLIP_REF_OFFLINE'] = '1'",
            f"for _name, _sha256 in {json.dumps(checksums)}.items():",
            "    _release = clip_ref.download.RELEASED[_name]",
            "    clip_ref.download.RELEASED[_name] = "
            "dataclasses.replace(_release, sha256=_sha256)",
        ]
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_top_to_bottom_with_every_cell(path, weights_cache, workdir):
    notebook = nbformat.read(path, as_version=4)
    if not _skipped_cells(notebook):
        return  # nbval executes every cell of this chapter already
    cache, checksums = weights_cache
    for cell in notebook.cells:  # run everything
        cell.metadata["tags"] = [
            t for t in cell.metadata.get("tags", []) if t not in SKIP_TAGS
        ]
    notebook.cells.insert(
        0, nbformat.v4.new_code_cell(_rehearsal_setup(cache, checksums))
    )
    client = NotebookClient(
        notebook,
        timeout=1200,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error


def test_stand_ins_have_the_released_image_depth_and_load_through_the_real_path(
    weights_cache, monkeypatch
):
    import clip_ref

    cache, checksums = weights_cache
    assert checksums, (
        "no chapter names a released model: the rehearsal would test nothing"
    )
    monkeypatch.setenv("CLIP_REF_OFFLINE", "1")
    for name, sha256 in checksums.items():
        monkeypatch.setitem(
            RELEASED, name, dataclasses.replace(RELEASED[name], sha256=sha256)
        )
        model, preprocess = clip_ref.load(name, device="cpu", download_root=cache)
        released = CLIPConfig.from_name(name)
        assert model.config.vision_layers == released.vision_layers, name
        assert model.config.transformer_layers == 1, name
        assert preprocess.n_px == released.image_resolution, name
