"""The README's quickstart runs as written (with random weights), so it cannot drift
from the API."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs():
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1]
    code = re.search(r"```python\n(.*?)```", quickstart, re.S).group(1)
    namespace = {}
    exec(compile(code, "README quickstart", "exec"), namespace)
    assert tuple(namespace["logits_per_image"].shape) == (1, 2)
    assert tuple(namespace["text_features"].shape) == (2, 512)
    assert abs(namespace["probs"].sum().item() - 1) < 1e-5
