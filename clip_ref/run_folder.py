"""A training run's output folder, so that nothing is lost and nothing is silently
wrong: one run at a time, no run overwritten by accident, checkpoints verified and the
previous one kept, a log that a crash cannot leave half-written.

The folder holds ``checkpoint.pt`` (everything an exact resume needs: tensors and plain
values only, read back with ``torch.load(weights_only=True)``, with a SHA-256 of its
contents stored inside), ``checkpoint.prev.pt`` (the checkpoint before it, kept until a
newer one has been written and read back intact), ``log.jsonl`` (one JSON line per
logged step), ``model.pt`` (the trained weights as an OpenAI-format state dict) and,
from the callers, ``metrics.json``. A lock file, ``.lock``, held with ``flock`` for the
whole run (released by the system even when the process is killed), keeps a second run
out. Every file is written to a temporary file of this process and renamed into place,
so an interruption never leaves a half-written file under a real name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

__all__ = [
    "RUN_FILES",
    "DamagedCheckpointError",
    "RunFolder",
    "RunFolderError",
    "state_checksum",
    "write_atomically",
]

# The files that make a folder hold a run.
RUN_FILES = (
    "checkpoint.pt",
    "checkpoint.prev.pt",
    "log.jsonl",
    "model.pt",
    "metrics.json",
)


class RunFolderError(RuntimeError):
    """The output folder cannot be used: another run holds it, or it holds a run that
    a new one would overwrite."""


class DamagedCheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose contents differ from its checksum."""


def state_checksum(state) -> str:
    """SHA-256 over every tensor (dtype, shape and bytes) and plain value of a nested
    checkpoint state, in a fixed order; the entry ``"checksum"`` itself is left out."""
    digest = hashlib.sha256()

    def visit(obj, where: str) -> None:
        if isinstance(obj, dict):
            for key in sorted(obj, key=str):
                if not (where == "" and key == "checksum"):
                    visit(obj[key], f"{where}/{key}")
        elif isinstance(obj, (list, tuple)):
            for index, item in enumerate(obj):
                visit(item, f"{where}/{index}")
        elif isinstance(obj, torch.Tensor):
            data = obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest.update(f"{where}:{obj.dtype}:{tuple(obj.shape)}:".encode())
            digest.update(data.numpy().tobytes())
        else:
            digest.update(f"{where}={obj!r};".encode())

    visit(state, "")
    return digest.hexdigest()


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a temporary file of this process beside ``path``, flush it to
    disk, then rename it to ``path``; on any failure the temporary file is removed and
    ``path`` is as it was. A full disk is said in so many words."""
    path = Path(path)
    handle, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC or "No space left" in str(error):
            raise OSError(
                errno.ENOSPC,
                f"no space left on the device while writing {path}; nothing was "
                "replaced (the temporary file was removed). Free some space in "
                f"{path.parent} and resume the run (--resume)",
            ) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _torch_save_failure(error: Exception) -> bool:
    # torch.save reports a full disk as a RuntimeError from its zip writer
    text = str(error)
    return "unexpected pos" in text or "file write failed" in text


def _torch_save(obj, path: Path) -> None:
    """``torch.save``, with a full disk reported as the OSError it is. Saved through a
    file object, so that the archive's records are named ``archive/...`` whatever the
    temporary file is called: the same tensors give the same bytes."""
    try:
        with open(path, "wb") as file:
            torch.save(obj, file)
    except RuntimeError as error:
        if _torch_save_failure(error):
            raise OSError(errno.ENOSPC, str(error)) from error
        raise


def save_tensors(obj, path: Path) -> None:
    """``torch.save`` through :func:`write_atomically`."""
    write_atomically(path, lambda tmp: _torch_save(obj, tmp))


class RunFolder:
    """The output folder of one run, as process ``rank`` sees it (process 0 writes)."""

    def __init__(self, path: os.PathLike, rank: int = 0):
        self.path = Path(path)
        self.rank = rank
        self._lock = None

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def previous(self) -> Path:
        return self.path / "checkpoint.prev.pt"

    @property
    def log(self) -> Path:
        return self.path / "log.jsonl"

    # ------------------------------------------------------------ claiming the folder

    def claim(self, *, resume: bool, overwrite: bool) -> None:
        """Lock the folder for this run. A new run refuses a folder that holds a run
        unless ``overwrite`` (which then deletes that run's files); ``resume`` needs
        one. Call it after everything else was validated: it is the first change."""
        if resume and overwrite:
            raise ValueError(
                "resume continues the run in the folder and overwrite deletes it; pass "
                "one"
            )
        if self.rank != 0:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        lock = open(self.path / ".lock", "a+")  # noqa: SIM115 (held until release)
        try:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise RunFolderError(
                f"{self.path} is in use by another run ({holder}); wait for it to "
                "finish, or pass another output folder"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"process {os.getpid()}")
        lock.flush()
        self._lock = lock
        try:
            present = [name for name in RUN_FILES if (self.path / name).exists()]
            if resume and not (self.checkpoint.exists() or self.previous.exists()):
                raise FileNotFoundError(
                    f"resume: no checkpoint in {self.path} (expected checkpoint.pt)"
                )
            if not resume and present and not overwrite:
                raise RunFolderError(
                    f"{self.path} holds a run ({', '.join(present)}); pass --resume "
                    "(resume=True) to continue it, --overwrite (overwrite=True) to "
                    "delete it and start again, or another output folder"
                )
            if not resume:
                for name in present:
                    (self.path / name).unlink()
            # temporary files of a process that was killed while writing
            for stale in self.path.glob(".*.tmp"):
                stale.unlink()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._lock is not None:
            if fcntl is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, state: dict) -> None:
        """Write ``state`` with its checksum, read it back and compare, and only then
        move the last checkpoint to ``checkpoint.prev.pt`` and the new one in place."""
        state = {**state, "checksum": state_checksum(state)}

        def write(tmp: Path) -> None:
            _torch_save(state, tmp)
            read = self._read(tmp)
            if read.get("checksum") != state_checksum(read):
                raise DamagedCheckpointError(
                    f"{self.checkpoint} was written but did not read back intact; the "
                    "previous checkpoint is unchanged"
                )

        def write_in_place(tmp: Path) -> None:
            write(tmp)
            if self.checkpoint.exists():
                os.replace(self.checkpoint, self.previous)

        write_atomically(self.checkpoint, write_in_place)

    def _read(self, path: Path, device=None) -> dict:
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as error:  # a damaged zip, pickle or tensor record
            reason = str(error).splitlines()[0][:200] if str(error) else ""
            raise DamagedCheckpointError(
                f"{path} cannot be read ({type(error).__name__}: {reason}); the file "
                "is damaged or is not a checkpoint of this package"
            ) from None
        if not isinstance(state, dict) or "checksum" not in state:
            raise DamagedCheckpointError(
                f"{path} has no checksum: it was written by an older version of "
                "clip_ref, or is not a training checkpoint"
            )
        return state

    def load_checkpoint(self, device=None) -> dict:
        """The newest intact checkpoint: ``checkpoint.pt``, or with a warning the
        previous one when the newest is missing or damaged."""
        problems = []
        for path in (self.checkpoint, self.previous):
            if not path.exists():
                problems.append(f"{path.name} is missing")
                continue
            try:
                state = self._read(path, device)
                if state["checksum"] != state_checksum(state):
                    raise DamagedCheckpointError(
                        f"{path} is damaged: its contents do not match the checksum "
                        "stored in it"
                    )
            except DamagedCheckpointError as error:
                problems.append(str(error))
                continue
            if path == self.previous:
                warnings.warn(
                    f"{'; '.join(problems)}; resuming from the previous checkpoint, "
                    f"{path} (step {state['step']})",
                    stacklevel=3,
                )
            return state
        raise DamagedCheckpointError(
            f"cannot resume the run in {self.path}: {'; '.join(problems)}. Start it "
            "again with --overwrite (overwrite=True)"
        )

    # ------------------------------------------------------------ the log and model

    def read_log(self, upto_step: int) -> list[dict]:
        """The log's entries up to ``upto_step`` (a resumed run redoes the later
        steps). A damaged last line, from a crash in an older version, is dropped with
        a warning; a damaged line before it is an error naming the line."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    warnings.warn(
                        f"{self.log}, line {number}: a damaged last line was dropped",
                        stacklevel=3,
                    )
                    continue
                raise ValueError(
                    f"{self.log}, line {number}: not a JSON line; the log is damaged "
                    "(delete the line, or start again with --overwrite)"
                ) from None
        return [entry for entry in entries if entry["step"] <= upto_step]

    def write_log(self, log: list[dict]) -> None:
        if self.rank == 0:
            text = "".join(json.dumps(entry) + "\n" for entry in log)
            write_atomically(self.log, lambda tmp: tmp.write_text(text))

    def save_model(self, weights: dict) -> None:
        if self.rank == 0:
            save_tensors(weights, self.path / "model.pt")
