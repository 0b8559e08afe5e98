"""The sandbox primitive: what a sandboxed process sees, and the limits that end it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cluster.sandbox import Bubblewrap, Limits, Spec


def _python(code: str, **options: object) -> Spec:
    limits = options.pop("limits", Limits(wall_s=30))
    return Spec(argv=[sys.executable, "-c", code], limits=limits, **options)  # type: ignore[arg-type]


def test_only_the_allow_listed_environment_and_an_unprivileged_user() -> None:
    os.environ["ATRIUM_SANDBOX_CANARY"] = "secret"
    try:
        code = "import os; print(os.getuid(), sorted(os.environ))"
        done = Bubblewrap().run(_python(code))
    finally:
        del os.environ["ATRIUM_SANDBOX_CANARY"]
    assert done.returncode == 0, done.stderr
    uid, names = done.stdout.decode().split(" ", 1)
    assert uid == "65534"
    assert "ATRIUM_SANDBOX_CANARY" not in names and "RAY_" not in names


def test_a_file_bound_under_tmp_is_visible_and_the_rest_of_tmp_is_not(tmp_path: Path) -> None:
    shown, hidden = tmp_path / "shown.txt", tmp_path / "hidden.txt"
    shown.write_text("visible")
    hidden.write_text("private")
    code = f"import os; print(open({str(shown)!r}).read(), os.path.exists({str(hidden)!r}))"
    done = Bubblewrap().run(_python(code, read_only={str(shown): str(shown)}))
    assert done.stdout.decode().split() == ["visible", "False"], done.stderr


def test_no_network_and_the_scratch_is_removed() -> None:
    code = (
        "import socket\n"
        "try:\n    socket.create_connection(('127.0.0.1', 5432), timeout=2); print('open')\n"
        "except OSError:\n    print('refused')\n"
        "open('/scratch/left', 'w').write('x')"
    )
    running = Bubblewrap().start(_python(code, stdout=subprocess.PIPE))
    done = running.communicate(None, 30)
    running.close()
    assert done.stdout.decode().strip() == "refused", done.stderr
    assert not running.scratch.exists()


def test_the_memory_and_time_limits_end_it_and_are_named() -> None:
    hog = Bubblewrap().run(
        _python("x = bytearray(2 * 1024**3); print('allocated')", limits=Limits(256, wall_s=30))
    )
    assert hog.returncode != 0 and b"allocated" not in hog.stdout
    assert hog.limit == "memory" or b"MemoryError" in hog.stderr
    spin = Bubblewrap().run(_python("while True: pass", limits=Limits(wall_s=1)))
    assert spin.limit == "time"
