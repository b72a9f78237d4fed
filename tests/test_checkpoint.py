"""Reading checkpoints safely: TorchScript archives without torch.jit.load, state dicts,
safetensors.

Ground truth for an archive is ``torch.jit.load(path).state_dict()`` (run here on
archives the tests made themselves). Malicious files carry payloads that provably run
under plain ``pickle``; the reader must refuse them before anything runs.
"""

import os
import pickle
import warnings
import zipfile

import pytest
import torch
from support import TINY_RESNET, TINY_VIT, perturbed_state_dict
from support_files import Payload, mark, rewrite_archive, traced_openai_archive
from torch import nn

from clip_ref.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    checkpoint_format,
    read_state_dict,
    read_torchscript_state_dict,
)

# --------------------------------------------------------------------------------------
# Archive helpers


def jit_state_dict(path) -> dict[str, torch.Tensor]:
    """The reference: what TorchScript itself says the archive holds (trusted,
    test-made archives only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").state_dict()


def assert_same_state_dict(actual, expected, ordered=True):
    if ordered:
        assert list(actual) == list(expected)  # same names, in state_dict() order
    assert set(actual) == set(expected)
    for key, tensor in expected.items():
        assert actual[key].dtype == tensor.dtype, key
        assert actual[key].shape == tensor.shape, key
        assert torch.equal(actual[key], tensor), key


# --------------------------------------------------------------------------------------
# A scripted module with nested submodules and every kind of attribute TorchScript
# pickles


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.register_buffer("running", torch.arange(4.0))
        self.register_buffer("absent", None)  # a None buffer: not in state_dict()
        # a tensor attribute that is neither parameter nor buffer
        self.plain = torch.ones(2)
        self.sizes: list[int] = [1, 2, 3]
        self.k = 5

    def forward(self, x):
        return self.lin(x) + self.running + self.plain.sum() + self.k


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Inner(), Inner()])
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.head = nn.Sequential(
            nn.Linear(3, 3, bias=False), nn.ReLU(), nn.BatchNorm1d(3)
        )
        self.register_buffer("count", torch.tensor(7))
        self.name = "outer"
        self.table: dict[str, int] = {"a": 1}
        self.floats: list[float] = [1.5]
        self.tensors: list[torch.Tensor] = [torch.zeros(1)]
        self.flags: list[bool] = [True]

    def forward(self, x):
        for block in self.blocks:
            x = block(x)[..., :3]
        return self.head(x) * self.scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_scripted_nested_module_matches_jit_load(tmp_path, dtype):
    torch.manual_seed(0)
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Outer().to(dtype)), str(path))
    assert checkpoint_format(path) == "torchscript"
    state_dict = read_torchscript_state_dict(path)
    expected = jit_state_dict(path)
    assert_same_state_dict(state_dict, expected)
    # Buffers (including integer ones) are there; plain tensor attributes and None
    # buffers are not.
    assert {"count", "blocks.0.running", "head.2.num_batches_tracked"} <= set(
        state_dict
    )
    assert not any(k.endswith(("plain", "absent")) for k in state_dict)
    assert (
        state_dict["count"].dtype == torch.int64
        and state_dict["blocks.1.lin.weight"].dtype == dtype
    )


@pytest.mark.parametrize("config", [TINY_VIT, TINY_RESNET], ids=["vit", "resnet"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_traced_openai_archive_matches_jit_load(tmp_path, config, dtype):
    path = tmp_path / "tiny.pt"
    eager = traced_openai_archive(path, config, dtype)
    state_dict = read_state_dict(path)
    expected = jit_state_dict(path)
    assert_same_state_dict(state_dict, expected)
    assert (
        "visual.conv1.weight" in state_dict
        and int(state_dict["input_resolution"]) == config.image_resolution
    )
    assert state_dict["visual.conv1.weight"].dtype == dtype
    # And they are the weights of the model that was traced, not merely self-consistent.
    for key, tensor in eager.state_dict().items():
        assert torch.equal(state_dict[key], tensor.to(state_dict[key].dtype)), key


def test_shared_storage_views_come_back_as_views(tmp_path):
    class Views(nn.Module):
        def __init__(self):
            super().__init__()
            base = torch.arange(12.0)
            self.register_buffer("whole", base)
            self.register_buffer("middle", base[2:8].view(2, 3))
            self.register_buffer("transposed", base.view(3, 4).t())

        def forward(self, x):
            return x + self.whole.sum() + self.middle.sum() + self.transposed.sum()

    path = tmp_path / "views.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Views()), str(path))
    state_dict = read_torchscript_state_dict(path)
    assert_same_state_dict(state_dict, jit_state_dict(path))
    assert state_dict["transposed"].stride() == (1, 4)


# --------------------------------------------------------------------------------------
# Malicious files: the payload would run under plain pickle, and must not run here


def payloads(flag):
    return {
        "builtins.exec": Payload(exec, f"open({str(flag)!r}, 'w').write('ran')"),
        "os.system": Payload(os.system, f"printf ran > '{flag}'"),
        "test function": Payload(mark, str(flag)),
    }


PAYLOAD_NAMES = ["builtins.exec", "os.system", "test function"]


@pytest.mark.parametrize("kind", PAYLOAD_NAMES)
def test_payloads_are_live_under_plain_pickle(tmp_path, kind):
    """The control: each payload really runs when unpickled without restrictions."""
    flag = tmp_path / "flag"
    pickle.loads(pickle.dumps(payloads(flag)[kind], protocol=2))
    assert flag.read_text() == "ran"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    path = tmp_path_factory.mktemp("archive") / "tiny.pt"
    traced_openai_archive(path)
    return path


@pytest.mark.parametrize("kind", PAYLOAD_NAMES)
def test_archive_whose_pickle_calls_a_function_is_refused(archive, tmp_path, kind):
    flag = tmp_path / "flag"
    evil = tmp_path / "evil.pt"
    rewrite_archive(
        archive, evil, {"/data.pkl": pickle.dumps(payloads(flag)[kind], protocol=2)}
    )
    assert checkpoint_format(evil) == "torchscript"
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        read_state_dict(evil)
    assert not flag.exists()


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def test_payload_hidden_inside_the_module_tree_is_refused(archive, tmp_path):
    """A well-formed TorchScript module object whose attribute is built by os.system."""
    flag = tmp_path / "flag"
    # SETITEM, BUILD, STOP
    data_pkl = (
        b"\x80\x02"
        + b"c__torch__.evil\nModel\n"
        + b")\x81"  # GLOBAL; NEWOBJ with no arguments
        + b"}"
        + _unicode("weight")  # EMPTY_DICT, key
        + b"cposix\nsystem\n"
        + _unicode(f"touch '{flag}'")
        + b"\x85R"  # os.system("touch flag")
        + b"sb."
    )
    evil = tmp_path / "evil.pt"
    rewrite_archive(archive, evil, {"/data.pkl": data_pkl})
    with pytest.raises(UnsafeCheckpointError, match="posix.system"):
        read_torchscript_state_dict(evil)
    assert not flag.exists()


def test_torchscript_class_cannot_be_called_with_arguments(archive, tmp_path):
    data_pkl = b"\x80\x02c__torch__.evil\nModel\n" + _unicode("argument") + b"\x85R."
    evil = tmp_path / "evil.pt"
    rewrite_archive(archive, evil, {"/data.pkl": data_pkl})
    with pytest.raises(UnsafeCheckpointError, match="arguments"):
        read_torchscript_state_dict(evil)


def test_state_cannot_be_built_into_helper_objects(archive, tmp_path):
    """BUILD on the stand-in for torch.FloatStorage (to change its dtype) is refused."""
    data_pkl = (
        b"\x80\x02ctorch\nFloatStorage\n}"
        + _unicode("dtype")
        + _unicode("int")
        + b"sb."
    )
    evil = tmp_path / "evil.pt"
    rewrite_archive(archive, evil, {"/data.pkl": data_pkl})
    with pytest.raises(CheckpointError, match="cannot read data.pkl"):
        read_torchscript_state_dict(evil)


@pytest.mark.parametrize("kind", PAYLOAD_NAMES)
def test_state_dict_whose_pickle_calls_a_function_is_refused(tmp_path, kind):
    flag = tmp_path / "flag"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "extra": payloads(flag)[kind]}, path)
    assert checkpoint_format(path) == "torch"
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        read_state_dict(path)
    assert not flag.exists()


# --------------------------------------------------------------------------------------
# Damaged or unusual archives: clear errors


def test_truncated_record_is_an_error(archive, tmp_path):
    with zipfile.ZipFile(archive) as z:
        record = next(
            n for n in z.namelist() if "/data/" in n and z.getinfo(n).file_size > 8
        )
        data = z.read(record)
    broken = tmp_path / "broken.pt"
    rewrite_archive(archive, broken, {record: data[:-4]})
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(broken)


def test_missing_record_is_an_error(archive, tmp_path):
    broken = tmp_path / "broken.pt"
    rewrite_archive(archive, broken, {"/data/0": None})
    with pytest.raises(CheckpointError, match="missing record"):
        read_state_dict(broken)


def test_big_endian_archive_is_refused(archive, tmp_path):
    broken = tmp_path / "big.pt"
    rewrite_archive(archive, broken, {"/byteorder": b"big"})
    with pytest.raises(CheckpointError, match="big-endian"):
        read_state_dict(broken)


def test_archive_without_byteorder_record_reads_as_little_endian(archive, tmp_path):
    """Archives older than PyTorch 1.12, like OpenAI's of January 2021, have no
    byteorder record."""
    old = tmp_path / "old.pt"
    rewrite_archive(archive, old, {"/byteorder": None})
    assert_same_state_dict(read_state_dict(old), jit_state_dict(archive))


def test_tensor_reaching_past_its_storage_is_an_error(archive, tmp_path):
    with zipfile.ZipFile(archive) as z:
        data_pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    # positional_embedding is the first tensor: [16, 64] with strides (64, 1); claim
    # [17, 64].
    index = (
        data_pkl.index(b"K\x10K@\x86")
        if b"K\x10K@\x86" in data_pkl
        else data_pkl.index(b"K\x10K@t")
    )
    broken = tmp_path / "broken.pt"
    rewrite_archive(
        archive,
        broken,
        {"/data.pkl": data_pkl[:index] + b"K\x11" + data_pkl[index + 2 :]},
    )
    with pytest.raises(CheckpointError, match="past the end"):
        read_state_dict(broken)


def test_undeclared_class_is_an_error(archive, tmp_path):
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(archive) as z:
        code = [n for n in z.namelist() if "/code/" in n]
    rewrite_archive(archive, broken, dict.fromkeys(code))
    with pytest.raises(CheckpointError, match="no code file"):
        read_state_dict(broken)


def test_not_a_checkpoint(tmp_path):
    for name, content in {"text.pt": b"hello world", "empty.pt": b""}.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="not a checkpoint"):
            read_state_dict(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("folder/readme.txt", "not a model")
    with pytest.raises(CheckpointError, match="not a PyTorch archive"):
        read_state_dict(tmp_path / "other.zip")


# --------------------------------------------------------------------------------------
# Plain state dicts and safetensors


@pytest.fixture(scope="module")
def weights():
    return perturbed_state_dict(TINY_VIT)


def test_state_dict_file(tmp_path, weights):
    path = tmp_path / "sd.pt"
    torch.save(weights, path)
    # a torch.save zip has data.pkl but no code/
    assert checkpoint_format(path) == "torch"
    assert_same_state_dict(read_state_dict(path), weights)


def test_legacy_state_dict_file(tmp_path, weights):
    path = tmp_path / "legacy.pt"
    torch.save(weights, path, _use_new_zipfile_serialization=False)
    assert checkpoint_format(path) == "torch"
    assert_same_state_dict(read_state_dict(path), weights)


def test_training_checkpoint_is_unwrapped(tmp_path, weights):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": weights, "optimizer": {"lr": 0.1}}, path)
    assert_same_state_dict(read_state_dict(path), weights)


def test_ambiguous_wrapper_is_an_error(tmp_path, weights):
    path = tmp_path / "odd.pt"
    torch.save({"state_dict": weights, "logit_scale": torch.ones(())}, path)
    with pytest.raises(CheckpointError, match="expected names mapped to tensors"):
        read_state_dict(path)


def test_module_prefix_is_never_stripped_silently(tmp_path, weights):
    path = tmp_path / "ddp.pt"
    torch.save({"module." + k: v for k, v in weights.items()}, path)
    with pytest.raises(CheckpointError, match="strip_prefix='module.'"):
        read_state_dict(path)
    assert_same_state_dict(read_state_dict(path, strip_prefix="module."), weights)
    with pytest.raises(CheckpointError, match="lack it"):
        read_state_dict(path, strip_prefix="model.")


def test_non_tensor_values_are_an_error(tmp_path):
    path = tmp_path / "mixed.pt"
    torch.save({"weight": torch.zeros(1), "note": "hello"}, path)
    with pytest.raises(CheckpointError, match="'note': str"):
        read_state_dict(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="got list"):
        read_state_dict(path)


def test_safetensors_file(tmp_path, weights):
    from safetensors.torch import save_file

    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.half() for k, v in weights.items()}, str(path))
    assert checkpoint_format(path) == "safetensors"
    # safetensors sorts the names; the order carries no meaning for load_state_dict.
    assert_same_state_dict(
        read_state_dict(path), {k: v.half() for k, v in weights.items()}, ordered=False
    )


def test_reading_does_not_touch_torch_jit_load(archive, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.jit.load must not be used")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert "logit_scale" in read_state_dict(archive)
