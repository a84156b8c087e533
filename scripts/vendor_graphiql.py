"""Vendor the files Strawberry's GraphiQL page loads from unpkg into modelql/static/vendor/,
so GraphiQL works with no internet: each package is fetched with `npm pack` from the npm
registry, and each file is checked against the page's Subresource Integrity hash.

Run after upgrading strawberry-graphql:  .venv/bin/python scripts/vendor_graphiql.py
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import strawberry

TEMPLATE = Path(strawberry.__file__).parent / "static" / "graphiql.html"
TARGET = Path(__file__).resolve().parents[1] / "modelql" / "static" / "vendor"
ASSET = re.compile(
    r'(?:src|href)="https://unpkg\.com/(?P<package>(?:@[^/]+/)?[^@/]+)@(?P<version>[^/]+)/'
    r'(?P<path>[^"]+)"\s+integrity="(?P<integrity>[^"]+)"'
)
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt")


def integrity(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def vendor() -> None:
    assets = list(ASSET.finditer(TEMPLATE.read_text()))
    if not assets:
        raise SystemExit(f"no unpkg assets found in {TEMPLATE}")
    shutil.rmtree(TARGET, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        for asset in assets:
            package, version, path = asset["package"], asset["version"], asset["path"]
            spec = f"{package}@{version}"
            tarball = subprocess.run(
                ["npm", "pack", "--silent", spec],
                cwd=scratch,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
            with tarfile.open(Path(scratch) / tarball) as archive:
                members = {member.name.removeprefix("package/"): member for member in archive}
                data = archive.extractfile(members[path]).read()  # type: ignore[union-attr]
                licence = next((members[name] for name in LICENSE_FILES if name in members), None)
                licence_text = archive.extractfile(licence).read() if licence else None  # type: ignore[union-attr]
            if integrity(data) != asset["integrity"]:
                raise SystemExit(f"{spec}/{path} does not match the page's integrity hash")
            destination = TARGET / spec / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
            if licence_text is not None:
                (TARGET / spec / "LICENSE").write_bytes(licence_text)
            print(f"{spec}/{path}: {len(data):,} bytes, integrity verified")


if __name__ == "__main__":
    vendor()
