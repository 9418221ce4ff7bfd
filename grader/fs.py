"""Small filesystem helpers shared by the engine and the asset cache."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path
from typing import Any


def force_rmtree(path: Path) -> None:
    """Remove ``path`` even where a sandboxed job left read-only files or folders (chmod 000 and kin)."""

    def fix(func: Any, p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)

    if path.exists():
        shutil.rmtree(path, onerror=fix)
