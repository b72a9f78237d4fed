"""Test helpers that make files and servers: TorchScript archives like OpenAI's release,
malicious pickles, a loopback HTTP server, and a stand-in for the Hugging Face Hub's
download function.

Used by test_checkpoint, test_download and test_load; test modules import helpers from
here, never from each other.
"""

import hashlib
import http.server
import os
import sys
import threading
import time
import warnings
import zipfile
from collections import defaultdict, deque
from pathlib import Path

import torch
from support import TINY_VIT, openai_model, perturbed_state_dict, random_tokens


def traced_openai_archive(path, config=TINY_VIT, dtype=torch.float32, seed=0):
    """Trace OpenAI's reference CLIP with random weights and save it like the release
    (with its metadata buffers, and ``encode_image`` and ``encode_text`` beside
    ``forward``, which OpenAI's ``load(jit=True)`` patches). Returns the eager fp32
    model that was traced."""
    model = openai_model(config, perturbed_state_dict(config, seed=seed))
    # The released archives carry these three as buffers; clip_ref's build_model checks
    # and drops them.
    del model.context_length, model.vocab_size  # plain int attributes in OpenAI's code
    model.register_buffer("input_resolution", torch.tensor(config.image_resolution))
    model.register_buffer("context_length", torch.tensor(config.context_length))
    model.register_buffer("vocab_size", torch.tensor(config.vocab_size))
    images = torch.randn(2, 3, config.image_resolution, config.image_resolution)
    texts = random_tokens(2, config.context_length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.* deprecation warnings
        traced = torch.jit.trace_module(
            model,
            {
                "forward": (images, texts),
                "encode_image": (images,),
                "encode_text": (texts,),
            },
            check_trace=False,
        )
        if dtype != torch.float32:
            traced = traced.to(dtype)
        torch.jit.save(traced, str(path))
    return model


def rewrite_archive(src, dst, replace: dict[str, bytes]):
    """Copy a zip, replacing (or, with value None, dropping) the entries whose names
    end with a key."""
    with (
        zipfile.ZipFile(src) as zin,
        zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout,
    ):
        for info in zin.infolist():
            for suffix, data in replace.items():
                if info.filename.endswith(suffix):
                    if data is not None:
                        zout.writestr(info.filename, data)
                    break
            else:
                zout.writestr(info.filename, zin.read(info.filename))


def mark(path):  # the "arbitrary function" a malicious test pickle calls
    with open(path, "w") as f:
        f.write("ran")


class Payload:
    """Pickles as a call of ``function(argument)``."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


class _QuietServer(http.server.ThreadingHTTPServer):
    """A client that gives up (some download tests time out on purpose) closes its
    connection while the handler may still be writing. That is expected; the default
    traceback on stderr would leak into whichever test captures stderr next (it
    failed test_progress_bar_can_be_turned_off once)."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class LoopbackServer:
    """Serves ``files`` on 127.0.0.1; ``misbehave[path]`` is a queue of actions for
    the next requests."""

    def __init__(self):
        self.files = {}
        self.misbehave = defaultdict(deque)
        self.requests = []
        # a threading.Barrier: hold responses until that many requests are in flight
        self.gate = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                action = (
                    server.misbehave[self.path].popleft()
                    if server.misbehave[self.path]
                    else "ok"
                )
                body = server.files.get(self.path)
                if body is None or action == "404":
                    self.send_error(404)
                    return
                if action == "500":
                    self.send_error(500)
                    return
                if server.gate is not None:
                    server.gate.wait(timeout=60)
                if action == "stall":
                    time.sleep(1.0)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if action == "truncate":
                    # then the connection closes (HTTP/1.0)
                    body = body[: len(body) // 2]
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs=dict(poll_interval=0.05),
            daemon=True,
        )
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeHub:
    """Stands in for huggingface_hub.hf_hub_download, laying files out the way the
    Hub's cache does."""

    def __init__(self, content=b"mirror", fail=None):
        self.calls, self.content, self.fail = [], content, fail

    def __call__(
        self, repo_id, filename, *, cache_dir, local_files_only=False, **kwargs
    ):
        self.calls.append(
            dict(
                repo_id=repo_id,
                filename=filename,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        )
        folder = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
        link = folder / "snapshots" / "0123" / filename
        if not link.exists():
            if local_files_only or self.fail:
                raise (self.fail or FileNotFoundError)("not in the local cache")
            blob = folder / "blobs" / hashlib.sha256(self.content).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(self.content)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        return str(link)
