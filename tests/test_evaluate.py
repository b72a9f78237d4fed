"""The evaluation loop, the ImageFolder class mapping and the command line, end to end
on data made here.

Every expected number is computed independently: images are read and encoded one at a
time, labels come from the folder names in the file paths, classifiers are built by
hand, and ranks come from numpy's argsort.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from support import perturbed_state_dict
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets import ImageFolder
from workers import unpinned

from clip_ref import CLIPConfig, build_model
from clip_ref.evaluate import Features, accuracy, evaluate, image_features, image_folder
from clip_ref.imagenet import TEMPLATE_SETS
from clip_ref.preprocess import Preprocess
from clip_ref.tokenizer import tokenize
from clip_ref.zeroshot import main, zero_shot_classifier

REPO = Path(__file__).resolve().parents[1]
CONFIG = CLIPConfig(
    embed_dim=16,
    image_resolution=32,
    vision_layers=1,
    vision_width=64,
    vision_patch_size=8,
    transformer_width=64,
    transformer_heads=1,
    transformer_layers=1,
    context_length=77,
    vocab_size=49408,
)
# Twelve classes, so that folders "10" and "11" sort between "1" and "2" as strings.
CLASSNAMES = [
    "apple",
    "bus",
    "cat",
    "dog",
    "eel",
    "fox",
    "goat",
    "hat",
    "ink",
    "jar",
    "kite",
    "lamp",
]


@pytest.fixture(scope="module")
def model():
    return build_model(perturbed_state_dict(CONFIG, seed=5))


def write_folder(root: Path, folder_names, per_class=3, seed=0):
    """Random non-square PNGs, ``per_class`` in each folder; returns the list of file
    paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for name in folder_names:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(40 + 3 * i, 48, 3), dtype=np.uint8)
            path = root / name / f"img{i}.png"
            Image.fromarray(pixels).save(path)
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def numbered_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenetv2_like")
    paths = write_folder(root, [str(i) for i in range(len(CLASSNAMES))])
    return root, paths


def classifier_by_hand(model, templates):
    columns = []
    with torch.no_grad():
        for name in CLASSNAMES:
            embeddings = model.encode_text(
                tokenize([t.format(name) for t in templates])
            )
            columns.append(F.normalize(F.normalize(embeddings, dim=-1).mean(0), dim=0))
    return torch.stack(columns, dim=1)


def features_by_hand(model, paths):
    preprocess = Preprocess(CONFIG.image_resolution)
    with torch.no_grad():
        rows = [
            model.encode_image(preprocess(Image.open(path))[None])[0] for path in paths
        ]
    return F.normalize(torch.stack(rows), dim=-1)


def topk_by_hand(features, labels, classifier, k):
    scores = (features.double() @ classifier.double()).numpy()
    ranking = np.argsort(-scores, axis=1)  # best class first
    return float(np.mean([label in row[:k] for label, row in zip(labels, ranking)]))


# ---------------------------------------------------------------- the class mapping


def test_numbered_folders_are_labelled_by_their_number(numbered_folder):
    root, _ = numbered_folder
    dataset = image_folder(root)
    for path, target in dataset.samples:
        assert target == int(Path(path).parent.name)
    assert dataset.classes == [str(i) for i in range(12)]
    # The trap this avoids: torchvision's ImageFolder sorts the names as strings and
    # labels folder "10" as 2.
    plain = ImageFolder(str(root))
    assert plain.class_to_idx["10"] == 2 and plain.class_to_idx["2"] == 4
    assert image_folder(root).class_to_idx["10"] == 10


def test_a_subset_of_numbered_folders_keeps_the_numbers(tmp_path):
    write_folder(tmp_path, ["3", "17", "999"], per_class=1)
    assert sorted(target for _, target in image_folder(tmp_path).samples) == [
        3,
        17,
        999,
    ]


def test_named_folders_are_numbered_in_sorted_order(tmp_path):
    # WordNet ids, as in ImageNet's val folders
    names = [
        "n02119789",
        "n01440764",
        "n15075141",
        "n01443537",
    ]
    write_folder(tmp_path, names, per_class=1)
    dataset = image_folder(tmp_path)
    assert dataset.class_to_idx == {
        "n01440764": 0,
        "n01443537": 1,
        "n02119789": 2,
        "n15075141": 3,
    }
    assert dataset.class_to_idx == ImageFolder(str(tmp_path)).class_to_idx


def test_ambiguous_layouts_raise(tmp_path):
    write_folder(tmp_path / "mixed", ["0", "1", "cat"], per_class=1)
    with pytest.raises(ValueError, match="mixes numbered class folders"):
        image_folder(tmp_path / "mixed")
    write_folder(tmp_path / "twice", ["7", "007"], per_class=1)
    with pytest.raises(ValueError, match="same class number"):
        image_folder(tmp_path / "twice")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        image_folder(tmp_path / "empty")


# ---------------------------------------------------------------- accuracy


def test_accuracy_matches_a_brute_force_count():
    generator = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(300, 8, generator=generator), dim=-1)
    classifier = F.normalize(torch.randn(8, 20, generator=generator), dim=0)
    labels = torch.randint(20, (300,), generator=generator)
    result = accuracy(features, labels, classifier, topk=(1, 3, 5), chunk_size=64)
    for k in (1, 3, 5):
        assert result[k] == pytest.approx(
            topk_by_hand(features, labels.tolist(), classifier, k), abs=0
        )
    assert 0 < result[1] < result[5] < 1


def test_accuracy_with_known_answers():
    # Three images, three classes; image i is most similar to class i, then i+1, then
    # i+2 (mod 3).
    classifier = torch.eye(3)
    features = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [2.0, 1.0, 3.0]])
    assert accuracy(features, torch.tensor([0, 1, 2]), classifier, topk=(1, 2)) == {
        1: 1.0,
        2: 1.0,
    }
    assert accuracy(features, torch.tensor([1, 2, 0]), classifier, topk=(1, 2)) == {
        1: 0.0,
        2: 1.0,
    }
    assert accuracy(features, torch.tensor([2, 0, 1]), classifier, topk=(1, 2, 5)) == {
        1: 0.0,
        2: 0.0,
        5: 1.0,
    }


def test_accuracy_refuses_labels_outside_the_classifier():
    with pytest.raises(ValueError, match="do not match the class names"):
        accuracy(torch.ones(2, 3), torch.tensor([0, 3]), torch.ones(3, 3))
    with pytest.raises(ValueError, match="do not fit"):
        accuracy(torch.ones(2, 4), torch.tensor([0, 1]), torch.ones(3, 3))
    with pytest.raises(ValueError, match="targets"):
        accuracy(torch.ones(2, 3), torch.tensor([0]), torch.ones(3, 3))


# ---------------------------------------------------------------- the evaluation loop


def test_evaluate_end_to_end_on_numbered_folders(model, numbered_folder):
    root, paths = numbered_folder
    labels = [int(path.parent.name) for path in paths]
    classifier = classifier_by_hand(model, ["a photo of a {}."])
    expected_features = features_by_hand(model, paths)
    expected = {
        k: topk_by_hand(expected_features, labels, classifier, k) for k in (1, 5)
    }
    # The test has power: reading the folders with string order would give other
    # numbers.
    wrong_labels = [
        ImageFolder(str(root)).class_to_idx[path.parent.name] for path in paths
    ]
    assert {
        k: topk_by_hand(expected_features, wrong_labels, classifier, k) for k in (1, 5)
    } != expected

    dataset = image_folder(root, transform=Preprocess(CONFIG.image_resolution))
    result = evaluate(
        model, classifier, dataset, batch_size=5, workers=0, progress=False
    )
    assert result["top1"] == expected[1] and result["top5"] == expected[5]
    assert result["images"] == len(paths) and result["images_per_second"] > 0

    # Worker processes and a ready DataLoader give the same features, in the same order.
    features = image_features(
        model, DataLoader(dataset, batch_size=7, num_workers=2), progress=False
    )
    torch.testing.assert_close(
        features.features, image_features(model, dataset, progress=False).features
    )
    in_dataset_order = features_by_hand(
        model, [Path(path) for path, _ in dataset.samples]
    )
    torch.testing.assert_close(
        features.features, in_dataset_order, rtol=1e-5, atol=1e-6
    )
    assert features.targets.tolist() == [
        int(Path(path).parent.name) for path, _ in dataset.samples
    ]


def test_image_features_on_any_dataset(model):
    images = torch.randn(10, 3, 32, 32)
    dataset = TensorDataset(images, torch.arange(10) % 3)
    result = image_features(model, dataset, batch_size=4, progress=False)
    assert isinstance(result, Features) and result.features.shape == (
        10,
        CONFIG.embed_dim,
    )
    with torch.no_grad():
        torch.testing.assert_close(
            result.features,
            F.normalize(model.encode_image(images), dim=-1),
            rtol=1e-5,
            atol=1e-6,
        )
    assert result.targets.dtype == torch.long and result.targets.tolist() == [
        0,
        1,
        2,
        0,
        1,
        2,
        0,
        1,
        2,
        0,
    ]
    with pytest.raises(ValueError, match="pass targets"):
        accuracy(result, result.targets, torch.ones(CONFIG.embed_dim, 3))


def test_progress_bar_only_when_asked(model, capsys):
    dataset = TensorDataset(torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))
    image_features(model, dataset, progress=False)
    assert capsys.readouterr().err == ""
    image_features(model, dataset, progress=True)
    assert "img" in capsys.readouterr().err


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.pt"
    torch.save(model.state_dict(), path)
    names = path.parent / "classnames.txt"
    names.write_text("\n".join(CLASSNAMES) + "\n")
    return path, names


def parse_table(text):
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in TEMPLATE_SETS:
            rows[parts[0]] = (int(parts[1]), float(parts[2]), float(parts[3]))
    return rows


def expected_rows(model, paths, template_keys):
    labels = [int(path.parent.name) for path in paths]
    features = features_by_hand(model, paths)
    rows = {}
    for key in template_keys:
        classifier = classifier_by_hand(model, TEMPLATE_SETS[key])
        rows[key] = (
            len(TEMPLATE_SETS[key]),
            round(100 * topk_by_hand(features, labels, classifier, 1), 2),
            round(100 * topk_by_hand(features, labels, classifier, 5), 2),
        )
    return rows


def test_command_line_in_process(model, numbered_folder, checkpoint, capsys):
    root, paths = numbered_folder
    path, names = checkpoint
    keys = ["name", "1", "7", "80"]
    rows = main(
        [
            "--model",
            str(path),
            "--data",
            str(root),
            "--templates",
            *keys,
            "--classnames",
            str(names),
            "--workers",
            "0",
            "--batch-size",
            "8",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert [row["templates"] for row in rows] == keys
    out = capsys.readouterr().out
    assert parse_table(out) == expected_rows(model, paths, keys)
    assert f"{len(paths)} images" in out and "images/s" in out


@pytest.mark.slow  # a new Python process
def test_command_line_as_a_module(model, numbered_folder, checkpoint):
    root, paths = numbered_folder
    path, names = checkpoint
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "clip_ref.zeroshot",
            "--model",
            str(path),
            "--data",
            str(root),
            "--templates",
            "1",
            "--classnames",
            str(names),
            "--workers",
            "2",
            "--device",
            "cpu",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        preexec_fn=unpinned,  # a make-test worker runs on one core: this runs on all
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert parse_table(done.stdout) == expected_rows(model, paths, ["1"])


def test_command_line_refuses_folders_that_do_not_fit_the_class_names(
    numbered_folder, checkpoint, tmp_path
):
    root, _ = numbered_folder
    path, _ = checkpoint
    few = tmp_path / "few.txt"
    few.write_text("apple\nbus\n")
    with pytest.raises(ValueError, match="out of range"):
        main(
            [
                "--model",
                str(path),
                "--data",
                str(root),
                "--classnames",
                str(few),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
    named = tmp_path / "named"
    write_folder(named, ["n01440764", "n01443537", "n01484850"], per_class=1)
    with pytest.raises(ValueError, match="3 class folders but 1000 class names"):
        main(
            [
                "--model",
                str(path),
                "--data",
                str(named),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_fp16_and_amp_match_the_cpu(model):
    """On a GPU: released-style fp16 weights and autocast give the CPU's fp32
    features to fp16 precision."""
    from clip_ref import convert_weights

    images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    dataset = TensorDataset(images, torch.arange(6))
    expected = image_features(model, dataset, progress=False).features
    fp32_gpu = build_model(model.state_dict()).cuda()
    fp16_gpu = convert_weights(build_model(model.state_dict())).cuda()
    for gpu_model, amp in ((fp32_gpu, True), (fp16_gpu, True), (fp16_gpu, False)):
        result = image_features(
            gpu_model, dataset, batch_size=4, amp=amp, progress=False
        )
        assert (
            result.features.device.type == "cpu"
            and result.features.dtype == torch.float32
        )
        torch.testing.assert_close(result.features, expected, rtol=0, atol=2e-2)
    weights = zero_shot_classifier(
        fp16_gpu, CLASSNAMES, ["a photo of a {}."], progress=False
    )
    assert weights.device.type == "cuda" and weights.dtype == torch.float32
    torch.testing.assert_close(
        weights.cpu(),
        classifier_by_hand(model, ["a photo of a {}."]),
        rtol=0,
        atol=2e-2,
    )
