"""Messages that tenants read (a model that failed validation, a deployment that failed)
name no path of the host: not ATRIUM_HOME, its scratch files, the Python environment,
Ray's session directories. Standard library only: the sandboxed side imports it too."""

from __future__ import annotations

import re

PLACEHOLDER = "<path>"
# an absolute (or ~/) path of two or more parts; not inside a word, a number or a URL
_PATH = re.compile(r"(?<![\w.:/~\\-])~?(?:/[\w.@+~%=,-]+){2,}/?")


def scrub_paths(message: str) -> str:
    return _PATH.sub(PLACEHOLDER, message)
