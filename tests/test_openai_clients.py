"""``import clip_ref as clip`` runs client code written for OpenAI's ``clip`` module
and gives OpenAI's numbers.

Every script in ``tests/openai_clients`` (see its README) runs twice on the same
stand-in weights (random, in the release's TorchScript format, the released depths and
resolutions): as written, against OpenAI's package, and with only ``import clip``
changed to ``import clip_ref as clip``. Their ``RESULTS`` must agree: arrays within
1e-5 relative, everything else exactly.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from rehearsal import build_cache

from clip_ref.config import RELEASED

pytestmark = pytest.mark.slow

CLIENTS = sorted((Path(__file__).parent / "openai_clients").glob("*.py"))
NAMES = ["RN50", "ViT-B/32"]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    cache = tmp_path_factory.mktemp("clip-weights")
    return cache, build_cache(cache, NAMES)


def run_client(path: Path, package: str, stand_ins, monkeypatch) -> dict:
    """Run a client script against ``package`` ("clip" or "clip_ref"); its RESULTS."""
    import clip.clip

    cache, checksums = stand_ins
    # OpenAI's package: its download step hands over the stand-in file
    by_url = {clip.clip._MODELS[n]: cache / RELEASED[n].filename for n in NAMES}
    monkeypatch.setattr(clip.clip, "_download", lambda url, root: str(by_url[url]))
    # clip_ref: the real path (cache, checksum, safe reader), with the stand-ins' sums
    for name, sha256 in checksums.items():
        monkeypatch.setitem(
            RELEASED, name, dataclasses.replace(RELEASED[name], sha256=sha256)
        )
    monkeypatch.setenv("CLIP_REF_CACHE", str(cache))
    monkeypatch.setenv("CLIP_REF_OFFLINE", "1")

    source = path.read_text(encoding="utf-8")
    assert source.count("\nimport clip\n") == 1, "one import line to change"
    if package == "clip_ref":
        source = source.replace("\nimport clip\n", "\nimport clip_ref as clip\n")
    namespace = {"__name__": f"client_{path.stem}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit=True's note, torch.jit deprecations
        exec(compile(source, str(path), "exec"), namespace)
    return namespace["RESULTS"]


def differences(ours: dict, theirs: dict) -> list[str]:
    """What differs between two RESULTS (empty when they agree)."""
    problems = []
    if set(ours) != set(theirs):
        return [f"keys differ: {sorted(set(ours) ^ set(theirs))}"]
    for key, reference in theirs.items():
        value = ours[key]
        if isinstance(reference, np.ndarray):
            value, reference = np.asarray(value, np.float64), reference.astype(float)
            if value.shape != reference.shape:
                problems.append(f"{key}: shape {value.shape} != {reference.shape}")
                continue
            if np.array_equal(value, reference):  # also for infinities (masks)
                continue
            error = np.abs(value - reference).max() / max(
                np.abs(reference).max(), 1e-12
            )
            if not error <= 1e-5:
                problems.append(f"{key}: relative difference {error:.3g}")
        elif isinstance(reference, float):
            if value != pytest.approx(reference, rel=1e-6):
                problems.append(f"{key}: {value} != {reference}")
        elif value != reference:
            problems.append(f"{key}: {value!r} != {reference!r}")
    return problems


@pytest.mark.parametrize("client", CLIENTS, ids=lambda p: p.stem)
def test_client_gives_openai_numbers(client, stand_ins, monkeypatch):
    theirs = run_client(client, "clip", stand_ins, monkeypatch)
    ours = run_client(client, "clip_ref", stand_ins, monkeypatch)
    assert differences(ours, theirs) == []


def test_the_comparison_sees_a_batch_first_transformer(stand_ins, monkeypatch):
    """The prompt-learning client fed batch-first where tokens-first is expected gives
    different numbers, and the comparison reports them."""
    client = Path(__file__).parent / "openai_clients" / "prompt_learning.py"
    theirs = run_client(client, "clip", stand_ins, monkeypatch)
    wrong = client.parent.parent / "_batch_first_prompt_learning.py"
    try:
        wrong.write_text(
            client.read_text()
            .replace("x.permute(1, 0, 2)  # NLD -> LND", "x")
            .replace("x.permute(1, 0, 2)  # LND -> NLD", "x")
        )
        ours = run_client(wrong, "clip_ref", stand_ins, monkeypatch)
    finally:
        wrong.unlink()
    assert any(
        p.startswith("learned: relative difference") for p in differences(ours, theirs)
    )
