"""Worker images for the docker sandbox: a real one from a Dockerfile, or a registry-free skeleton."""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

from grader.paths import PACKAGE_DIR

DOCKERFILES = PACKAGE_DIR / "dockerfiles"

PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def skeleton_tar() -> bytes:
    """A root filesystem with empty folders and links into /usr: the host's /usr is mounted at run time."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("usr", "etc", "tmp", "scratch", "submission", "opt", "opt/grader-worker", "proc", "dev", "sys",
                  "root", "work"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, now
            tar.addfile(info)
        for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")):
            info = tarfile.TarInfo(link)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, now
            tar.addfile(info)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, now
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_skeleton(client: Any, tag: str) -> str:
    """Import the skeleton as ``tag`` (no registry, ~0.1 s); returns the image id."""
    repo, _, version = tag.partition(":")
    client.api.import_image_from_data(skeleton_tar(), repository=repo, tag=version or "latest",
                                      changes=["LABEL grader.mount-host=1"])
    return str(client.images.get(tag).id)


def build_image(client: Any, tag: str, cuda: bool = False) -> str:
    """Build the real worker image from the packaged Dockerfile (needs a registry for the base image)."""
    dockerfile = "Dockerfile.cuda" if cuda else "Dockerfile"
    image, _logs = client.images.build(path=str(DOCKERFILES), dockerfile=dockerfile, tag=tag, rm=True)
    return str(image.id)
