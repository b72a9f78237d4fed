"""Downloads against a local HTTP server (127.0.0.1 only): verification, cache, retries,
offline, concurrency.

The server counts requests and can be told to misbehave on the next requests for a file:
answer with a server error or a 404, send fewer bytes than its Content-Length, or stall
past the client's timeout.
"""

import dataclasses
import hashlib
import importlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support_files import FakeHub, LoopbackServer

import clip_ref.config
from clip_ref.config import CLIPConfig, available_models
from clip_ref.download import (
    RELEASED,
    ChecksumError,
    DownloadError,
    OfflineError,
    cache_dir,
    download,
    download_weights,
)

dl = importlib.import_module("clip_ref.download")

CONTENT = os.urandom(300_000) + b"end"
SHA = hashlib.sha256(CONTENT).hexdigest()
FAST = dict(backoff=0.01, progress=False)  # retries without real waiting


@pytest.fixture
def server():
    server = LoopbackServer()
    server.files["/models/tiny.pt"] = CONTENT
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    monkeypatch.delenv(dl.CACHE_ENV, raising=False)
    monkeypatch.delenv(dl.OFFLINE_ENV, raising=False)


def listing(root):
    return sorted(os.listdir(root))


def test_good_download(server, tmp_path):
    path = download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
    assert path == str(tmp_path / "tiny.pt")
    assert Path(path).read_bytes() == CONTENT
    assert listing(tmp_path) == ["tiny.pt"]  # no temporary file left behind
    assert server.requests == ["/models/tiny.pt"]


def test_cached_file_is_reused_without_a_request(server, tmp_path):
    download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
    server.close()  # any further request would now fail
    assert download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST) == str(
        tmp_path / "tiny.pt"
    )
    assert len(server.requests) == 1


def test_corrupt_cache_is_downloaded_again(server, tmp_path):
    (tmp_path / "tiny.pt").write_bytes(CONTENT[:-1] + b"X")
    with pytest.warns(UserWarning, match="corrupt"):
        path = download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
    assert Path(path).read_bytes() == CONTENT
    assert len(server.requests) == 1


def test_truncated_transfer_is_retried(server, tmp_path):
    server.misbehave["/models/tiny.pt"].extend(["truncate", "truncate"])
    path = download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
    assert Path(path).read_bytes() == CONTENT
    assert len(server.requests) == 3
    assert listing(tmp_path) == ["tiny.pt"]


def test_truncated_every_time_is_an_error_and_leaves_nothing(server, tmp_path):
    server.misbehave["/models/tiny.pt"].extend(["truncate"] * 10)
    with pytest.raises(
        DownloadError, match=r"after 3 attempts.*received 150001 of 300003 bytes"
    ):
        download(server.url("/models/tiny.pt"), SHA, tmp_path, retries=2, **FAST)
    assert len(server.requests) == 3
    assert listing(tmp_path) == []


def test_server_error_then_success(server, tmp_path):
    server.misbehave["/models/tiny.pt"].extend(["500", "500"])
    path = download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
    assert Path(path).read_bytes() == CONTENT
    assert len(server.requests) == 3


def test_backoff_doubles(server, tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(dl.time, "sleep", sleeps.append)
    server.misbehave["/models/tiny.pt"].extend(["500"] * 3)
    download(server.url("/models/tiny.pt"), SHA, tmp_path, backoff=0.5, progress=False)
    assert sleeps == [0.5, 1.0, 2.0]


def test_not_found_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("/models/missing.pt"), SHA, tmp_path, **FAST)
    assert server.requests == ["/models/missing.pt"]
    assert listing(tmp_path) == []


def test_stalled_server_times_out_and_is_retried(server, tmp_path):
    server.misbehave["/models/tiny.pt"].append("stall")
    start = time.monotonic()
    path = download(server.url("/models/tiny.pt"), SHA, tmp_path, timeout=0.2, **FAST)
    assert time.monotonic() - start < 5
    assert Path(path).read_bytes() == CONTENT
    assert len(server.requests) == 2


def test_unreachable_server_is_an_error(tmp_path):
    server = LoopbackServer()
    url = server.url("/models/tiny.pt")
    server.close()  # nothing listens on that port any more
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download(url, SHA, tmp_path, retries=1, **FAST)


def test_wrong_checksum_deletes_the_file_and_says_what_to_do(server, tmp_path):
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError) as info:
        download(server.url("/models/tiny.pt"), wrong, tmp_path, **FAST)
    message = str(info.value)
    assert (
        SHA in message
        and wrong in message
        and "deleted" in message
        and "sha256sum" in message
    )
    assert listing(tmp_path) == []
    assert len(server.requests) == 1  # a mismatch is not a network error: no retry


def test_invalid_checksum_argument(tmp_path):
    with pytest.raises(ValueError, match="64 hex digits"):
        download("http://127.0.0.1:9/x.pt", "abc", tmp_path)


def test_offline_with_missing_file_makes_no_request(server, tmp_path, monkeypatch):
    with pytest.raises(OfflineError) as info:
        download(server.url("/models/tiny.pt"), SHA, tmp_path, offline=True, **FAST)
    message = str(info.value)
    assert (
        str(tmp_path / "tiny.pt") in message
        and "clip_ref.download_weights(NAME, root='DIR')" in message
    )
    assert isinstance(info.value, FileNotFoundError)
    monkeypatch.setenv(dl.OFFLINE_ENV, "1")
    with pytest.raises(OfflineError, match="tiny.pt is not in the cache"):
        download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
    assert server.requests == []


def test_offline_with_cached_file(server, tmp_path, monkeypatch):
    download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
    monkeypatch.setenv(dl.OFFLINE_ENV, "yes")
    assert download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST) == str(
        tmp_path / "tiny.pt"
    )
    assert len(server.requests) == 1


def test_offline_with_corrupt_cache_deletes_it_and_says_so(server, tmp_path):
    (tmp_path / "tiny.pt").write_bytes(b"garbage")
    with pytest.raises(OfflineError, match="corrupt"):
        download(server.url("/models/tiny.pt"), SHA, tmp_path, offline=True, **FAST)
    assert listing(tmp_path) == [] and server.requests == []


def test_concurrent_downloads_in_threads(server, tmp_path):
    server.gate = threading.Barrier(2)  # both transfers are in flight at the same time
    results, errors = [], []

    def fetch():
        try:
            results.append(
                download(server.url("/models/tiny.pt"), SHA, tmp_path, **FAST)
            )
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [str(tmp_path / "tiny.pt")] * 2
    assert len(server.requests) == 2  # both really downloaded
    assert listing(tmp_path) == ["tiny.pt"]
    assert (tmp_path / "tiny.pt").read_bytes() == CONTENT


def test_concurrent_downloads_in_processes(server, tmp_path):
    server.gate = threading.Barrier(2)  # both transfers are in flight at the same time
    # The module needs only the standard library and tqdm; load it alone so the
    # processes start fast.
    code = (
        "import importlib.util, sys; spec = "
        "importlib.util.spec_from_file_location('dl', sys.argv[4]); "
        "dl = sys.modules['dl'] = importlib.util.module_from_spec(spec); "
        "spec.loader.exec_module(dl); "
        "print(dl.download(sys.argv[1], sys.argv[2], sys.argv[3], "
        "progress=False, backoff=0.01))"
    )
    args = [
        sys.executable,
        "-c",
        code,
        server.url("/models/tiny.pt"),
        SHA,
        str(tmp_path),
        dl.__file__,
    ]
    processes = [
        subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == [str(tmp_path / "tiny.pt")] * 2
    assert len(server.requests) == 2
    assert listing(tmp_path) == ["tiny.pt"]
    assert (tmp_path / "tiny.pt").read_bytes() == CONTENT


def test_progress_bar_can_be_turned_off(server, tmp_path, capsys):
    download(server.url("/models/tiny.pt"), SHA, tmp_path / "a", progress=True)
    assert "tiny.pt" in capsys.readouterr().err
    download(server.url("/models/tiny.pt"), SHA, tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == str(tmp_path / "home" / ".cache" / "clip_ref")
    monkeypatch.setenv(dl.CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir() == str(tmp_path / "env")
    assert cache_dir(tmp_path / "arg") == str(tmp_path / "arg")


# --------------------------------------------------------------------------------------
# The table of released files and download_weights


def test_released_table_matches_the_reference():
    assert RELEASED is clip_ref.config.RELEASED  # one registry: names, configs, files
    assert list(RELEASED) == available_models()
    filenames = [
        "RN50.pt",
        "RN101.pt",
        "RN50x4.pt",
        "RN50x16.pt",
        "RN50x64.pt",
        "ViT-B-32.pt",
        "ViT-B-16.pt",
        "ViT-L-14.pt",
        "ViT-L-14-336px.pt",
    ]
    assert [release.filename for release in RELEASED.values()] == filenames
    for name, release in RELEASED.items():
        assert release.name == name
        assert release.config == CLIPConfig.from_name(name)
        assert release.url == (
            "https://openaipublic.azureedge.net/clip/models/"
            f"{release.sha256}/{release.filename}"
        )
        assert release.hf_repo.startswith("timm/") and release.hf_repo.endswith(
            ".openai"
        )
    assert (
        RELEASED["ViT-B/32"].sha256
        == "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
    )
    assert RELEASED["RN50x64"].hf_repo == "timm/resnet50x64_clip.openai"


@pytest.fixture
def local_release(server, monkeypatch):
    """Point ViT-B/32 at the loopback server."""
    release = dataclasses.replace(
        RELEASED["ViT-B/32"], sha256=SHA, url=server.url("/models/ViT-B-32.pt")
    )
    server.files["/models/ViT-B-32.pt"] = CONTENT
    monkeypatch.setitem(RELEASED, "ViT-B/32", release)
    return release


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    fake = FakeHub()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return fake


def test_download_weights_by_name(local_release, server, tmp_path, hub):
    path = download_weights("ViT-B/32", tmp_path, progress=False)
    assert path == str(tmp_path / "ViT-B-32.pt") and Path(path).read_bytes() == CONTENT
    assert hub.calls == []
    with pytest.raises(ValueError, match="unknown model 'ViT-B/33'"):
        download_weights("ViT-B/33", tmp_path)


def test_download_weights_from_the_hub(local_release, server, tmp_path, hub):
    path = download_weights("ViT-B/32", tmp_path, source="hf")
    assert Path(path).read_bytes() == b"mirror"
    assert hub.calls == [
        dict(
            repo_id="timm/vit_base_patch32_clip_224.openai",
            filename="open_clip_model.safetensors",
            cache_dir=str(tmp_path),
            local_files_only=False,
        )
    ]
    assert server.requests == []
    # offline, the mirror's cached copy is found without the network
    assert download_weights("ViT-B/32", tmp_path, source="hf", offline=True) == path


def test_corrupt_hub_blob_is_detected_and_deleted(local_release, tmp_path, hub):
    path = download_weights("ViT-B/32", tmp_path, source="hf")
    Path(os.path.realpath(path)).write_bytes(b"mirroR")
    with pytest.raises(ChecksumError, match="deleted"):
        download_weights("ViT-B/32", tmp_path, source="hf")
    assert not os.path.lexists(path)


def test_auto_falls_back_to_the_hub_when_openai_is_unreachable(
    local_release, server, tmp_path, hub
):
    server.misbehave["/models/ViT-B-32.pt"].append("404")
    with pytest.warns(UserWarning, match="timm/vit_base_patch32_clip_224.openai"):
        path = download_weights("ViT-B/32", tmp_path, progress=False)
    assert Path(path).read_bytes() == b"mirror"
    # source="openai" never falls back
    with pytest.raises(DownloadError, match="HTTP 404"):
        server.misbehave["/models/ViT-B-32.pt"].append("404")
        download_weights(
            "ViT-B/32", tmp_path / "other", source="openai", progress=False
        )


def test_checksum_mismatch_never_falls_back(local_release, server, tmp_path, hub):
    server.files["/models/ViT-B-32.pt"] = b"tampered"
    with pytest.raises(ChecksumError):
        download_weights("ViT-B/32", tmp_path, progress=False)
    assert hub.calls == []


def test_offline_with_neither_copy_names_both(local_release, server, tmp_path, hub):
    with pytest.raises(OfflineError) as info:
        download_weights("ViT-B/32", tmp_path, offline=True)
    message = str(info.value)
    assert str(tmp_path / "ViT-B-32.pt") in message and "Hugging Face" in message
    assert "clip_ref.download_weights('ViT-B/32', root='DIR')" in message
    assert server.requests == [] and hub.calls[0]["local_files_only"] is True


def test_offline_auto_finds_a_cached_mirror_copy(local_release, server, tmp_path, hub):
    path = download_weights("ViT-B/32", tmp_path, source="hf")
    assert download_weights("ViT-B/32", tmp_path, offline=True) == path
    assert server.requests == [] and hub.calls[-1]["local_files_only"] is True


def test_hub_failure_is_a_download_error(local_release, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(
        huggingface_hub, "hf_hub_download", FakeHub(fail=ConnectionError)
    )
    with pytest.raises(
        DownloadError, match="could not download open_clip_model.safetensors"
    ):
        download_weights("ViT-B/32", tmp_path, source="hf")
