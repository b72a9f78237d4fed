"""Downloading the released weights: verified, cached, retried, and possible to do ahead
of time.

OpenAI released the models whose training the paper describes (Radford et al., 2021,
§2.5: five ResNets and three Vision Transformers, plus ViT-L/14 trained one more epoch
at 336 px) as TorchScript files whose address contains their SHA256. :func:`download`
fetches a file into a cache directory and returns its path only once the content matches
that checksum:

- it streams into a uniquely named temporary file in the cache directory, hashing as it
  goes, and moves it into place with an atomic ``os.replace`` only when complete and
  verified, so an interrupted or concurrent download never leaves a half-written file
  under the real name;
- a cached file is reused only after its checksum is verified; a corrupt one is deleted
and fetched again;
- connection errors, timeouts, HTTP 5xx/429 and truncated transfers are retried with
exponential backoff;
- a checksum mismatch deletes the download and raises :class:`ChecksumError`, saying
what to do;
- offline mode (``offline=True`` or ``CLIP_REF_OFFLINE=1``) never touches the network
  and raises :class:`OfflineError` naming the missing file and where it was expected.

The cache directory is the ``root`` argument, else ``$CLIP_REF_CACHE``, else
``~/.cache/clip_ref``. The file names are OpenAI's (``ViT-B-32.pt``), so a folder filled
by OpenAI's ``clip`` package works too.

:func:`download_weights` does this for a released model by name. The same weights are
mirrored as safetensors on the Hugging Face Hub by open_clip (``source="hf"``, needs
``huggingface_hub``); the default ``source="auto"`` uses OpenAI's file and turns to the
mirror, with a warning, only when OpenAI's server cannot be reached. To fill a cache
ahead of time, for a machine without internet access: ``python -c "import clip_ref;
clip_ref.download_weights('ViT-B/32', root='DIR')"``.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import re
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import ReleasedModel

__all__ = [
    "CACHE_ENV",
    "OFFLINE_ENV",
    "ChecksumError",
    "DownloadError",
    "OfflineError",
    "cache_dir",
    "download",
    "download_weights",
    "file_sha256",
    "is_offline",
]

CACHE_ENV = "CLIP_REF_CACHE"
OFFLINE_ENV = "CLIP_REF_OFFLINE"
HF_FILENAME = "open_clip_model.safetensors"


class DownloadError(RuntimeError):
    """A file could not be fetched (after retrying where that could help)."""


class ChecksumError(DownloadError):
    """A file's content does not match its published SHA256; the bad copy has been
    deleted."""


class OfflineError(DownloadError, FileNotFoundError):
    """Offline mode is on and the file is not in the cache."""


def cache_dir(root=None) -> str:
    """The cache directory: ``root`` if given, else ``$CLIP_REF_CACHE``, else
    ``~/.cache/clip_ref``."""
    root = (
        root
        if root is not None
        else os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "clip_ref")
    )
    return os.path.abspath(os.path.expanduser(os.fspath(root)))


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether ``$CLIP_REF_OFFLINE`` is set to
    1/true/yes/on."""
    if offline is not None:
        return bool(offline)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def file_sha256(path, chunk_size: int = 1 << 20) -> str:
    """The SHA256 of a file, as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Truncated(Exception):
    """The server closed the connection before sending the promised number of bytes."""


# Failures worth another try: the network, the server being briefly unwell, a cut-off
# transfer.
_RETRYABLE = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    _Truncated,
)


def download(
    url: str,
    sha256: str,
    root=None,
    *,
    filename: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
    retries: int = 4,
    timeout: float = 30.0,
    backoff: float = 1.0,
) -> str:
    """Fetch ``url`` into the cache directory, verify its SHA256, and return the local
    path.

    Args:
        url: where the file lives (``http``, ``https`` or ``file``).
        sha256: the expected SHA256 of the content, hex.
        root: cache directory (see :func:`cache_dir`).
        filename: the name in the cache; the last part of the URL by default.
        offline: never touch the network (default: ``$CLIP_REF_OFFLINE``).
        progress: show a progress bar while downloading.
        retries: how many times to retry after a network failure.
        timeout: seconds to wait for the server on each connect or read.
        backoff: seconds before the first retry; each further retry waits twice as long.
    """
    expected = str(sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    filename = filename or os.path.basename(urllib.parse.urlparse(url).path)
    if (
        not filename
        or filename != os.path.basename(filename)
        or filename.startswith(".")
    ):
        raise ValueError(
            f"cannot name the cached file {filename!r} (from {url}); pass filename="
        )
    root = cache_dir(root)
    target = os.path.join(root, filename)
    offline = is_offline(offline)

    if os.path.isfile(target):
        actual = file_sha256(target)
        if actual == expected:
            return target
        _remove(target)
        if not offline:
            warnings.warn(
                f"{target} was corrupt (SHA256 {actual}, expected {expected}); deleted "
                "it and downloading it again",
                stacklevel=2,
            )
        else:
            raise OfflineError(
                f"offline mode: the cached {target} was corrupt (SHA256 {actual}, "
                f"expected {expected}) and has been deleted. "
                f"{_how_to_fetch(url, target)}"
            )
    if offline:
        raise OfflineError(
            f"offline mode: {filename} is not in the cache; expected it at {target}. "
            f"{_how_to_fetch(url, target)}"
        )

    os.makedirs(root, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            return _fetch(url, expected, target, progress, timeout)
        except urllib.error.HTTPError as err:
            err.close()
            # the request itself is wrong: asking again won't help
            if err.code < 500 and err.code != 429:
                raise DownloadError(
                    f"could not download {url}: HTTP {err.code} {err.reason}"
                ) from None
            failure = err
        except _RETRYABLE as err:
            failure = err
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    raise DownloadError(
        f"could not download {url} after {retries + 1} attempts; last error: "
        f"{type(failure).__name__}: {failure}"
    ) from failure


def _how_to_fetch(url: str, target: str) -> str:
    release = next((r for r in _registry().values() if r.url == url), None)
    command = (
        'python -c "import clip_ref; '
        f"clip_ref.download_weights({release.name!r}, root='DIR')\""
        if release
        else 'python -c "import clip_ref; clip_ref.download_weights(NAME, '
        "root='DIR')\" "
        "for a released model"
    )
    return (
        f"On a machine with internet access, download {url} ({command}) and copy it to "
        f"{target}, or set {CACHE_ENV} to the folder holding it; or turn offline mode "
        f"off (unset {OFFLINE_ENV})."
    )


def _fetch(url: str, expected: str, target: str, progress: bool, timeout: float) -> str:
    """One attempt: stream to a temporary file next to ``target``, verify, then move
    it into place."""
    # imported here: in a notebook, tqdm.auto's import-time checks can warn
    from tqdm.auto import (
        tqdm,
    )

    root, filename = os.path.split(target)
    handle, temporary = tempfile.mkstemp(
        dir=root, prefix=f".{filename}.", suffix=".part"
    )
    try:
        digest, received = hashlib.sha256(), 0
        request = urllib.request.Request(url, headers={"User-Agent": "clip_ref"})
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(request, timeout=timeout) as response,
        ):
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=filename,
                disable=not progress,
            ) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise _Truncated(f"received {received} of {total} bytes")
        actual = digest.hexdigest()
        if actual != expected:
            raise ChecksumError(
                f"downloaded {url}, but its SHA256 is {actual}, not the expected "
                f"{expected}; the download has been deleted. A proxy or login page may "
                "have answered instead of the server, or the file on the server "
                "differs from the one published. Try again later; if it persists, "
                "fetch the file by hand and compare `sha256sum` with the expected "
                "value, or use source='hf'."
            )
        # atomic: readers see the old state or the complete verified file
        os.replace(temporary, target)
        temporary = None
        return target
    finally:
        if temporary is not None:
            _remove(temporary)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:  # someone else removed it first
        pass


# --------------------------------------------------------------------------------------
# Released models by name


def _registry() -> dict[str, ReleasedModel]:
    # The registry (clip_ref.config) is imported on first use, not with this module:
    # downloading needs only the standard library and tqdm, so this file also works
    # alone (``clip_ref.download.RELEASED`` is the same dict).
    from .config import RELEASED

    return RELEASED


def __getattr__(name):
    if name == "RELEASED":
        return _registry()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _release_named(name: str) -> ReleasedModel:
    try:
        return _registry()[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; released models: {list(_registry())}"
        ) from None


def download_weights(
    name: str,
    root=None,
    *,
    source: str = "auto",
    offline: bool | None = None,
    progress: bool = True,
) -> str:
    """The local path of a released model's weights, downloaded and verified if needed.

    ``source="openai"``: OpenAI's TorchScript file (checksum pinned above).
    ``source="hf"``: open_clip's safetensors mirror on the Hugging Face Hub, kept in the
    same cache directory in the Hub's own layout (it needs ``huggingface_hub``; the
    Hub's content address is verified). ``source="auto"`` (default): OpenAI's file; if
    that cannot be fetched (network failure, or offline with no cached copy) and
    ``huggingface_hub`` is installed, the mirror, with a warning. A checksum mismatch
    never falls back: it raises.
    """
    release = _release_named(name)
    if source not in ("auto", "openai", "hf"):
        raise ValueError(f"source must be 'auto', 'openai' or 'hf', got {source!r}")
    offline = is_offline(offline)
    if source == "hf":
        return _download_hf(release, root, offline)
    try:
        return download(
            release.url,
            release.sha256,
            root,
            filename=release.filename,
            offline=offline,
            progress=progress,
        )
    except ChecksumError:
        raise
    except DownloadError as err:
        if source == "openai" or not _hub_installed():
            raise
        try:
            path = _download_hf(release, root, offline)
        except DownloadError as hf_err:
            raise type(err)(
                f"{err}\nThe Hugging Face mirror failed too: {hf_err}"
            ) from hf_err
        if not offline:
            warnings.warn(
                f"could not fetch OpenAI's {release.filename} ({err}); using "
                f"open_clip's mirror {release.hf_repo} on the Hugging Face Hub instead",
                stacklevel=2,
            )
        return path


def _hub_installed() -> bool:
    return importlib.util.find_spec("huggingface_hub") is not None


def _download_hf(release: ReleasedModel, root, offline: bool) -> str:
    """open_clip's safetensors mirror of ``release``, via ``huggingface_hub`` (which
    shows its own progress)."""
    try:
        import huggingface_hub
    except ImportError:
        raise DownloadError(
            "the Hugging Face mirror needs huggingface_hub: pip install huggingface_hub"
        ) from None
    root = cache_dir(root)
    try:
        path = huggingface_hub.hf_hub_download(
            release.hf_repo, HF_FILENAME, cache_dir=root, local_files_only=offline
        )
    except (
        OSError
    ) as err:  # the Hub's errors (not found, HTTP, connection) are all OSErrors
        if offline:
            raise OfflineError(
                f"offline mode: {HF_FILENAME} of {release.hf_repo} is not in "
                "the Hugging Face "
                f"cache under {root}. On a machine with internet access run "
                'python -c "import '
                f"clip_ref; clip_ref.download_weights({release.name!r}, root='DIR', "
                f"source='hf')\" and copy DIR here, or set {CACHE_ENV} to it."
            ) from err
        raise DownloadError(
            f"could not download {HF_FILENAME} from {release.hf_repo}: "
            f"{type(err).__name__}: {err}"
        ) from err
    _verify_hub_blob(path)
    return path


def _verify_hub_blob(path: str) -> None:
    """The Hub stores a large file under its SHA256 (``blobs/<sha256>``); check the
    content against it."""
    blob = os.path.realpath(path)
    expected = os.path.basename(blob)
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        # not a content-addressed blob (e.g. a copy where symlinks are unavailable):
        # nothing to check
        return
    actual = file_sha256(blob)
    if actual != expected:
        _remove(blob)
        if os.path.islink(path):
            _remove(path)
        raise ChecksumError(
            f"{path} is corrupt (SHA256 {actual}, the Hub's address says {expected}); "
            "it has been deleted, so the next call downloads it again"
        )
