"""The README's tour, run block by block against a real `atrium up` (issue 17).

Every ``sh`` and ``python`` block of the README before "## Commands" runs in order in one
bash session, as a reader pasting them would. The only edits are the ones a test needs to
share a machine: free ports instead of 8080/8000/9000 and a private folder instead of
``/tmp/models``; each must still find its text, so the README cannot drift from what runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.platform import Platform
from tests.support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
# the tour shows these refusals on purpose; any other status >= 400 is a broken step
EXPECTED_REFUSALS = [(429, "GET", "/auth/me"), (422, "POST", "/versions?wait=true")]


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int


def tour_blocks() -> list[Block]:
    text = README.read_text()
    end = text.index("\n## Commands")
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text, 0, end)
    ]


def start_settings(blocks: list[Block]) -> tuple[Block, dict[str, str]]:
    """The quick start's `VAR=... make run`: the settings `atrium up` starts with."""
    block = next(b for b in blocks if "make run" in b.text and "ATRIUM_" in b.text)
    words = shlex.split(block.text.replace("\\\n", " "), comments=True)
    assert words[-2:] == ["make", "run"], words
    return block, dict(word.split("=", 1) for word in words[:-2])


def edit(text: str, old: str, new: str) -> str:
    assert old in text, f"the README no longer says {old!r}: update this test"
    return text.replace(old, new)


def script(blocks: list[Block], *, api: str, serve: str, hook_port: int, models: Path) -> str:
    lines = [
        "set -uE",  # no -e: the tour shows refusals on purpose; ERR reports failed commands
        "trap 'echo \"@@failed line $LINENO: $BASH_COMMAND\" >&2' ERR",
        # every curl reports its status on stderr, beside what the reader sees
        "curl() { command curl -w '%{stderr}@@ %{http_code} %{method} %{url_effective}\\n' "
        '"$@"; }',
    ]
    text = "\n".join(f"### {b.line} {b.lang}\n{b.text}" for b in blocks)
    text = edit(text, "http://127.0.0.1:8080", api)
    text = edit(text, "http://127.0.0.1:8000", serve)
    text = edit(text, '"127.0.0.1:8000"', f'"{serve.removeprefix("http://")}"')
    text = edit(text, "127.0.0.1:9000", f"127.0.0.1:{hook_port}")
    text = edit(text, "--port 9000", f"--port {hook_port}")
    text = edit(text, "/tmp/models", str(models))  # noqa: S108 - the README's own path
    text = edit(text, '"Bearer atr_..."', '"Bearer " + __import__("os").environ["KEY"]')
    for chunk in text.split("### ")[1:]:
        head, body = chunk.split("\n", 1)
        line, lang = head.split()
        lines.append(f"echo '@@block {line}'; echo '@@block {line}' >&2")
        if lang == "python":
            lines += [f"KEY=\"$KEY\" .venv/bin/python - <<'PY'\n{body}PY"]
        else:
            lines.append(body)
    lines.append(
        'echo "@@vars $(jq -cn --arg key "$OWNER" --arg model "$MODEL" '
        '--arg churn "$CHURN" \'{$key, $model, $churn}\')" >&2'
    )
    return "\n".join(lines) + "\n"


def refusals(stderr: str) -> list[tuple[int, str, str]]:
    found = []
    for line in stderr.splitlines():
        if line.startswith("@@ "):  # 000: no answer at all
            _, status, method, url = line.split(" ", 3)
            if int(status) >= 400 or status == "000":
                found.append((int(status), method, url))
    return found


def test_the_readme_tour_runs_line_by_line(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = tour_blocks()
    start, settings = start_settings(blocks)
    tour = [b for b in blocks if b.line > start.line]
    assert [b.lang for b in tour].count("python") == 1, "the tritonclient block moved"
    platform = Platform(tmp_path / "home", extra_env=settings)
    platform.start()
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / ".venv").symlink_to(Path(sys.prefix))  # the tour calls .venv/bin/atrium
        hook_port = free_port()
        (work / "tour.sh").write_text(
            script(
                tour,
                api=platform.api,
                serve=platform.serve,
                hook_port=hook_port,
                models=tmp_path / "models",
            )
        )
        env = {**platform.env(), "ATRIUM_URL": platform.api}
        out, err = work / "stdout", work / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.Popen(
                ["bash", "tour.sh"],
                cwd=work,
                env=env,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                proc.wait(timeout=900)
                # the backgrounded webhook receiver prints what it verified
                deadline = time.monotonic() + 30
                while "verified api_key.created" not in err.read_text():
                    assert time.monotonic() < deadline, err.read_text()[-4000:]
                    time.sleep(0.5)
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
        said, errors = out.read_text(), err.read_text()
        context = f"stdout:\n{said[-6000:]}\nstderr:\n{errors[-6000:]}\nlog:\n{platform.log_tail()}"

        assert "@@failed" not in errors, context
        found = refusals(errors)
        assert len(found) == len(EXPECTED_REFUSALS), (found, context)
        for (status, method, url), expected in zip(found, EXPECTED_REFUSALS, strict=True):
            assert (status, method) == expected[:2] and url.endswith(expected[2]), (found, context)
        assert '"code":"rate_limited"' in said and '"code":"model_rejected"' in said, context
        assert "fraud version 1: ready" in said, context
        assert "sum of squares: 285" in said, context  # `ray job submit` followed its log
        assert "/api/v1/ray/dashboard/login?ticket=" in said, context

        final = json.loads(errors.rsplit("@@vars ", 1)[1].splitlines()[0])
        api = httpx.Client(
            base_url=f"{platform.api}/api/v1", headers={"Authorization": f"Bearer {final['key']}"}
        )
        request.addfinalizer(api.close)
        versions = api.get(f"/models/{final['model']}/versions").json()["items"]
        assert sorted(v["format"] for v in versions) == sorted(
            [
                "onnx",
                "xgboost",
                "sklearn-skops",
                "torchscript",
                "torch-export",
                "keras",
                "tf-savedmodel",
            ]
        )
        assert {v["status"] for v in versions} == {"ready"}
        assert api.get(f"/models/{final['model']}").json()["aliases"] == {"champion": 2}
        # the promotion rolls "churn" to version 2; it settles ready
        deadline = time.monotonic() + 120
        while True:
            statuses = {d["name"]: d["status"] for d in api.get("/deployments").json()["items"]}
            if statuses == {"churn": "ready", "churn-big": "ready"}:
                break
            assert time.monotonic() < deadline, (statuses, context)
            time.sleep(1)
        # the tritonclient block printed the server's metadata, then both deployments' rows
        python = next(b for b in tour if b.lang == "python")
        printed = [
            line
            for line in said.split(f"@@block {python.line}\n", 1)[1]
            .split("@@block ", 1)[0]
            .splitlines()
            if line.strip()
        ]
        assert "'name': 'atrium'" in printed[0], context
        assert len(printed) >= 3 and all(row.lstrip().startswith("[") for row in printed[1:]), (
            context
        )
    finally:
        platform.stop()
