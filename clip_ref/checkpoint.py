"""Reading checkpoint files into a state dict, without ever running code from them.

The weights of the models the paper trains (Radford et al., 2021, §2.5) were released as
TorchScript archives. ``torch.jit.load`` would execute the archive's code and
unrestricted unpickling can call any function named in the file, so neither is used
here. A file is recognised by its content:

- OpenAI's TorchScript archive (a zip holding ``<root>/data.pkl``, ``<root>/data/<key>``
  records and ``<root>/code/``). ``data.pkl`` pickles the module tree: one object per
  ``nn.Module`` (classes named ``__torch__.<module path>.<Class>``) whose attribute dict
  holds tensors and submodules. An allow-listed unpickler rebuilds the tensors from the
  raw records and replaces every ``__torch__`` class by an inert record of its
  attributes. Which attributes are parameters or buffers is declared in the archive's
  code as ``__parameters__ = [...]`` and ``__buffers__ = [...]``; those two lines are
  read as text, never run.
- open_clip's safetensors mirror of the same weights: ``safetensors.torch.load_file``.
- A plain ``torch.save`` state dict: ``torch.load(weights_only=True)``.

Whatever the format, anything unexpected raises :class:`CheckpointError`; a file that
asks to call a function that rebuilding tensors does not need raises
:class:`UnsafeCheckpointError`. Nothing falls back to unsafe loading.
"""

from __future__ import annotations

import ast
import collections
import os
import pickle
import re
import sys
import zipfile
from collections.abc import Mapping

import torch

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "checkpoint_format",
    "read_state_dict",
    "read_torchscript_state_dict",
]


class CheckpointError(ValueError):
    """A file that is not a checkpoint this module can read, or one whose content is
    inconsistent."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle asks for a function or class outside the allow-list.
    Nothing was called."""


# --------------------------------------------------------------------------------------
# Recognising the format


def checkpoint_format(path) -> str:
    """``"torchscript"``, ``"safetensors"`` or ``"torch"`` (a ``torch.save`` file),
    read off the content."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            root = _archive_root(archive, path)
            names = set(archive.namelist())
        if f"{root}/constants.pkl" in names or any(
            n.startswith(f"{root}/code/") for n in names
        ):
            return "torchscript"
        return "torch"  # torch.save's zip format: data.pkl and data/ without code
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    if (
        len(head) == 9
        and head[8:9] == b"{"
        and 2 <= int.from_bytes(head[:8], "little") <= size - 8
    ):
        return "safetensors"
    # a pickle protocol opcode: torch.save's legacy (pre-1.6) format
    if head[:1] == b"\x80":
        return "torch"
    raise CheckpointError(
        f"{path}: not a checkpoint this package can read (expected a TorchScript "
        "archive, a safetensors file or a torch.save state dict; the file starts with "
        f"{head!r})"
    )


def read_state_dict(
    path, *, strip_prefix: str | None = None
) -> dict[str, torch.Tensor]:
    """Read any supported checkpoint file into ``{name: tensor}`` on the CPU, dtypes as
    stored.

    A ``torch.save`` file may hold the state dict itself, or a dictionary with no
    tensors of its own whose ``"state_dict"`` entry is the state dict (as training
    checkpoints are saved); that entry is unwrapped. Names are never rewritten silently:
    if every name starts with ``module.`` (saved from ``DistributedDataParallel``) this
    raises, and ``strip_prefix="module."`` removes the prefix explicitly.
    """
    path = os.fspath(path)
    kind = checkpoint_format(path)
    if kind == "torchscript":
        state_dict = read_torchscript_state_dict(path)
    elif kind == "safetensors":
        state_dict = _read_safetensors(path)
    else:
        state_dict = _read_torch_save(path)
    return _check_names(state_dict, path, strip_prefix)


def _read_safetensors(path: str) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ImportError(
            f"{path} is a safetensors file; reading it needs the safetensors package "
            "(pip install safetensors)"
        ) from None
    return load_file(path, device="cpu")


def _read_torch_save(path: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: its pickle needs more than tensors and plain "
            f"containers (torch.load with weights_only=True said: {err})"
        ) from None
    if (
        isinstance(obj, Mapping)
        and isinstance(obj.get("state_dict"), Mapping)
        and not any(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a state dict (a mapping of names to tensors), got "
            f"{type(obj).__name__}"
        )
    return dict(obj)


def _check_names(
    state_dict: Mapping, path: str, strip_prefix: str | None
) -> dict[str, torch.Tensor]:
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: expected names mapped to tensors, found {key!r}: "
                f"{type(value).__name__}"
            )
    if not state_dict:
        raise CheckpointError(f"{path}: the checkpoint holds no tensors")
    if strip_prefix:
        unprefixed = [k for k in state_dict if not k.startswith(strip_prefix)]
        if unprefixed:
            raise CheckpointError(
                f"{path}: strip_prefix={strip_prefix!r} given, but {len(unprefixed)} "
                f"names lack it, e.g. {unprefixed[0]!r}"
            )
        return {k[len(strip_prefix) :]: v for k, v in state_dict.items()}
    if all(k.startswith("module.") for k in state_dict):
        raise CheckpointError(
            f"{path}: every name starts with 'module.' (a model saved while wrapped in "
            "DistributedDataParallel?); pass strip_prefix='module.' to remove it"
        )
    return dict(state_dict)


# --------------------------------------------------------------------------------------
# TorchScript archives


def _archive_root(archive: zipfile.ZipFile, path: str) -> str:
    """The single top-level folder of a PyTorch zip, which must hold ``data.pkl``."""
    roots = {name.split("/", 1)[0] for name in archive.namelist() if "/" in name}
    if len(roots) != 1 or f"{next(iter(roots))}/data.pkl" not in archive.namelist():
        raise CheckpointError(
            f"{path}: a zip file, but not a PyTorch archive (expected one top-level "
            f"folder holding data.pkl; found folders {sorted(roots)[:5]})"
        )
    return roots.pop()


# torch.save and torch.jit.save name each storage by a legacy class; its element type is
# all we need.
_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"


class _StorageType:
    """What the unpickler hands back for ``torch.FloatStorage`` and friends: a dtype,
    not a callable."""

    __slots__ = ("dtype",)  # no __dict__: a pickle cannot BUILD new state into it

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _Storage:
    """The raw bytes of one ``data/<key>`` record, with the element type the pickle
    declared for it."""

    __slots__ = ("data", "dtype", "key")

    def __init__(self, data: torch.UntypedStorage, dtype: torch.dtype, key: str):
        self.data, self.dtype, self.key = data, dtype, key


class _ScriptObject:
    """Inert stand-in for an instance of a TorchScript class (``__torch__.*``): it only
    records attributes.

    The unpickler makes one subclass per class name it meets, so ``qualified_name`` says
    what the archive called it; no code of that class exists or runs here.
    """

    __slots__ = ("attributes",)
    qualified_name = ""

    def __new__(cls, *args):
        if args:
            raise UnsafeCheckpointError(
                f"{cls.qualified_name} was constructed with arguments; TorchScript "
                "archives construct objects without any"
            )
        obj = super().__new__(cls)
        obj.attributes = None
        return obj

    def __init__(self, *args):
        pass

    def __setstate__(self, state):
        if (
            self.attributes is not None
            or not isinstance(state, dict)
            or not all(isinstance(k, str) for k in state)
        ):
            raise CheckpointError(
                f"unexpected state for {self.qualified_name}: expected one dict of "
                f"attribute names, got {type(state).__name__}"
            )
        self.attributes = state


def _rebuild_tensor(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
):
    """Our replacement for ``torch._utils._rebuild_tensor_v2``: a view of the
    record's bytes, bounds-checked."""
    if not isinstance(storage, _Storage):
        raise CheckpointError(
            f"a tensor refers to {type(storage).__name__}, not to a storage record"
        )
    shape_ok = (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(isinstance(n, int) and n >= 0 for n in size + stride)
        and isinstance(storage_offset, int)
        and storage_offset >= 0
    )
    if not shape_ok or not isinstance(requires_grad, bool):
        raise CheckpointError(
            f"malformed tensor in storage {storage.key}: offset={storage_offset!r}, "
            f"size={size!r}, stride={stride!r}"
        )
    if backward_hooks or metadata:
        raise CheckpointError(
            f"the tensor in storage {storage.key} carries hooks or metadata; a "
            "checkpoint of weights has neither"
        )
    itemsize = torch.empty((), dtype=storage.dtype).element_size()
    if all(size):  # a non-empty tensor must lie inside its storage
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if (last + 1) * itemsize > storage.data.nbytes():
            raise CheckpointError(
                f"the tensor of size {list(size)} reaches past the end of storage "
                f"{storage.key} ({storage.data.nbytes()} bytes)"
            )
    return torch.empty(0, dtype=storage.dtype).set_(
        storage.data, storage_offset, size, stride
    )


# TorchScript tags typed containers; the tag changes nothing here
def _restore_type_tag(value, type_str):
    return value


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` of a TorchScript archive, allowing only what rebuilding
    its tensors needs."""

    _ALLOWED = {
        (
            "collections",
            "OrderedDict",
        ): collections.OrderedDict,  # the (empty) backward hooks of a tensor
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
        # Typed lists of non-parameter attributes, e.g. List[int]: the builders just
        # return the list.
        ("torch.jit._pickle", "build_intlist"): list,
        ("torch.jit._pickle", "build_doublelist"): list,
        ("torch.jit._pickle", "build_boollist"): list,
        ("torch.jit._pickle", "build_tensorlist"): list,
    }

    def __init__(self, file, archive: zipfile.ZipFile, root: str, path: str):
        super().__init__(file)
        self.archive, self.root, self.path = archive, root, path
        self.classes: dict[str, type] = {}
        self.storages: dict[str, torch.UntypedStorage] = {}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if re.fullmatch(rf"__torch__(\.{_IDENTIFIER})*", module) and re.fullmatch(
            _IDENTIFIER, name
        ):
            qualified = f"{module}.{name}"
            if qualified not in self.classes:
                self.classes[qualified] = type(
                    name,
                    (_ScriptObject,),
                    {"__slots__": (), "qualified_name": qualified},
                )
            return self.classes[qualified]
        raise UnsafeCheckpointError(
            f"{self.path}: refused to load: its data.pkl asks for {module}.{name}, "
            "which rebuilding tensors does not need. The file may be malicious or not "
            "a checkpoint of weights; nothing from it was run."
        )

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str)
            and re.fullmatch(r"[A-Za-z0-9_]+", pid[2])
            and isinstance(pid[4], int)
            and pid[4] >= 0
        ):
            raise CheckpointError(
                f"{self.path}: unexpected persistent id in data.pkl: {pid!r}"
            )
        _, storage_type, key, _location, numel = (
            pid  # the saved device is ignored: everything loads to CPU
        )
        if key not in self.storages:
            record = f"{self.root}/data/{key}"
            try:
                data = self.archive.read(record)
            except KeyError:
                raise CheckpointError(
                    f"{self.path}: data.pkl refers to a missing record {record}"
                ) from None
            self.storages[key] = (
                torch.frombuffer(bytearray(data), dtype=torch.uint8).untyped_storage()
                if data
                else torch.UntypedStorage(0)
            )
        data = self.storages[key]
        expected = numel * torch.empty((), dtype=storage_type.dtype).element_size()
        if data.nbytes() != expected:
            raise CheckpointError(
                f"{self.path}: record data/{key} has {data.nbytes()} bytes, but "
                f"data.pkl declares {numel} elements of {storage_type.dtype} "
                f"({expected} bytes); the file is truncated or corrupt"
            )
        return _Storage(data, storage_type.dtype, key)


class _ClassDeclaration:
    def __init__(self, is_module: bool, parameters: list, buffers: list):
        self.is_module, self.parameters, self.buffers = is_module, parameters, buffers


def _read_declaration(
    archive: zipfile.ZipFile, root: str, qualified_name: str, path: str
) -> _ClassDeclaration:
    """Read ``class X(Module):`` and its ``__parameters__`` / ``__buffers__`` lines from
    the archive's code.

    A class ``__torch__.a.b.X`` is defined in ``code/__torch__/a/b.py``. Only those
    declaration lines are parsed, as literals; the code itself is never compiled or run.
    """
    module, name = qualified_name.rsplit(".", 1)
    source_name = f"{root}/code/{module.replace('.', '/')}.py"
    try:
        lines = archive.read(source_name).decode("utf-8").splitlines()
    except KeyError:
        raise CheckpointError(
            f"{path}: the archive has no code file {source_name} declaring "
            f"{qualified_name}"
        ) from None
    header = re.compile(rf"class {re.escape(name)}\((.*)\):\s*$")
    for start, line in enumerate(lines):  # noqa: B007 (start is read after the loop)
        match = header.match(line)
        if match:
            break
    else:
        raise CheckpointError(f"{path}: {source_name} does not define class {name}")
    declared = {}
    for line in lines[start + 1 :]:
        # the next top-level statement ends the class body
        if line and not line[0].isspace():
            break
        field = re.match(r"\s+(__parameters__|__buffers__) = (\[.*\])\s*$", line)
        if field:
            names = ast.literal_eval(field.group(2))
            if not all(isinstance(n, str) for n in names):
                raise CheckpointError(
                    f"{path}: malformed {field.group(1)} of {qualified_name}: {names!r}"
                )
            declared[field.group(1)] = names
    is_module = match.group(1).strip() == "Module"
    if is_module and len(declared) != 2:
        raise CheckpointError(
            f"{path}: class {qualified_name} does not declare both __parameters__ and "
            "__buffers__ (an archive from PyTorch before 1.6 is not supported)"
        )
    return _ClassDeclaration(
        is_module, declared.get("__parameters__", []), declared.get("__buffers__", [])
    )


def read_torchscript_state_dict(path) -> dict[str, torch.Tensor]:
    """The parameters and buffers of a ``torch.jit.save`` archive, named as its
    ``state_dict()`` names them.

    Equivalent to ``torch.jit.load(path, map_location="cpu").state_dict()`` (same names,
    order, dtypes and values), but nothing in the archive is executed: see the module
    docstring.
    """
    path = os.fspath(path)
    if sys.byteorder != "little":
        raise CheckpointError(
            "reading TorchScript archives needs a little-endian machine"
        )
    with zipfile.ZipFile(path) as archive:
        root = _archive_root(archive, path)
        names = set(archive.namelist())
        # absent in archives older than PyTorch 1.12, which were little-endian
        if f"{root}/byteorder" in names:
            order = archive.read(f"{root}/byteorder").decode("ascii", "replace").strip()
            if order != "little":
                raise CheckpointError(
                    f"{path}: the archive's tensors are stored {order}-endian; only "
                    "little-endian archives are supported"
                )
        with archive.open(f"{root}/data.pkl") as f:
            unpickler = _RestrictedUnpickler(f, archive, root, path)
            try:
                tree = unpickler.load()
            except CheckpointError:
                raise
            except (
                Exception
            ) as err:  # malformed pickle: report it, never retry another way
                raise CheckpointError(
                    f"{path}: cannot read data.pkl: {type(err).__name__}: {err}"
                ) from None
        if not isinstance(tree, _ScriptObject):
            raise CheckpointError(
                f"{path}: data.pkl holds {type(tree).__name__}, not a TorchScript "
                "module"
            )
        declarations: dict[str, _ClassDeclaration] = {}

        def declaration(obj: _ScriptObject) -> _ClassDeclaration:
            if obj.qualified_name not in declarations:
                declarations[obj.qualified_name] = _read_declaration(
                    archive, root, obj.qualified_name, path
                )
            return declarations[obj.qualified_name]

        if not declaration(tree).is_module:
            raise CheckpointError(
                f"{path}: the archive's top object {tree.qualified_name} is not a "
                "module"
            )
        state_dict: dict[str, torch.Tensor] = {}
        _collect(tree, "", declaration, state_dict, path, ancestors=())
    return state_dict


def _collect(
    module: _ScriptObject,
    prefix: str,
    declaration,
    out: dict,
    path: str,
    ancestors: tuple,
) -> None:
    """Walk the module tree like ``Module.state_dict``: parameters, then buffers,
    then each submodule."""
    if module.attributes is None:
        raise CheckpointError(f"{path}: module {prefix or '<root>'} has no attributes")
    if id(module) in ancestors:
        raise CheckpointError(f"{path}: module {prefix} contains itself")
    decl = declaration(module)
    for name in decl.parameters + decl.buffers:
        if name not in module.attributes:
            raise CheckpointError(
                f"{path}: {module.qualified_name} declares {name!r} but the archive "
                "holds no value for it"
            )
        value = module.attributes[name]
        if value is None:  # e.g. a Linear without bias; state_dict() skips it too
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: {prefix}{name} should be a tensor, got {type(value).__name__}"
            )
        out[prefix + name] = value.detach()
    for name, value in module.attributes.items():
        if isinstance(value, _ScriptObject) and declaration(value).is_module:
            _collect(
                value,
                f"{prefix}{name}.",
                declaration,
                out,
                path,
                ancestors + (id(module),),
            )
