"""Installing a connector package offline into a scratch site, and running okr-sync over it.

Subprocesses get the site on ``PYTHONPATH``, so entry points are discovered from real
package metadata; the test process itself never sees the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def pip_install(package: Path, target: Path) -> None:
    """Build and install ``package`` offline into ``target`` (from a copy: no build/ left)."""
    source = target.parent / f"{package.name}-src"
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def environment(site: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["PREFECT_HOME"] = str(site.parent / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env | extra


def okr_sync(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "okr-sync"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )
