"""Inputs and runs (issue 12, items 4-9): per-input failures, storage faults, resume safety, run ids,
interruption, and what a local Ray instance started by lanepipe listens on. Real files, real local Ray, real
servers on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lanepipe.config import load_config
from lanepipe.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "lanepipe.cli"]


def _cfg(inputs: list[str], out: Path, *sets: str):
    return load_config(None, ["input.max_frames=4", *sets], base={"input": {"paths": inputs}, "output": str(out)})


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


# --- item 7: run ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../x", "a/b", "..", ".hidden", "x..y", "", "a b", "x" * 129])
def test_run_id_outside_the_output_is_refused(tmp_path: Path, synthetic_clip_file: Path, bad: str) -> None:
    work = tmp_path / "w"
    out = work / "a" / "b" / "out"
    out.mkdir(parents=True)
    with pytest.raises(ConfigError, match="run_id"):
        _cfg([str(synthetic_clip_file)], out, f"run_id='{bad}'")
    res = subprocess.run([*CLI, "segment", "-i", str(synthetic_clip_file), "-o", str(out), "--run-id", bad,
                          "--executor", "sequential"], capture_output=True, text=True, timeout=120, check=False,
                         env=_env(), cwd=work)
    assert res.returncode == 2 and "run_id" in res.stderr, res.stderr[-2000:]
    assert [p for p in work.rglob("*") if not p.is_dir()] == [], "nothing may be written anywhere"


def test_from_run_id_is_validated_too(tmp_path: Path) -> None:
    for bad in ("..", "a b", "-x"):
        with pytest.raises(ConfigError, match="from_run"):
            load_config(None, [f"from_run='{bad}'", "stages=edit"], base={"output": str(tmp_path)})
    ok = load_config(None, ["from_run=20261125T203000Z-1a2b3c4d", "stages=edit", "run_id=my_run.2"])
    assert ok.from_run == "20261125T203000Z-1a2b3c4d" and ok.run_id == "my_run.2"


# --- item 9: what a local Ray instance started by lanepipe listens on ---------------------------------------------

_LISTENERS = r"""
import json, sys, time, psutil, ray
from lanepipe.actors.runner import start_ray
from lanepipe.config import RayConfig
start_ray(RayConfig(num_cpus=1, **json.loads(sys.argv[1])))
ray.get(ray.remote(lambda: 1).remote())
time.sleep(3)  # agents and the metrics exporter come up a moment after the node
me = psutil.Process()
out = []
for p in [me, *me.children(recursive=True)]:
    try:
        out += [[p.name(), c.laddr.ip, c.laddr.port] for c in p.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        pass
ray.shutdown()
print("LISTEN " + json.dumps(out))
"""


def _ray_listeners(tmp_path: Path, ray_cfg: dict[str, str]) -> list[list[object]]:
    res = subprocess.run([sys.executable, "-c", _LISTENERS, json.dumps(ray_cfg)], capture_output=True, text=True,
                         timeout=240, check=False, env=_env(), cwd=tmp_path)
    line = [x for x in res.stdout.splitlines() if x.startswith("LISTEN ")]
    assert res.returncode == 0 and line, res.stderr[-3000:]
    listeners: list[list[object]] = json.loads(line[0].removeprefix("LISTEN "))
    return listeners


def test_local_ray_started_by_lanepipe_listens_on_loopback_only(tmp_path: Path) -> None:
    listeners = _ray_listeners(tmp_path, {})
    names = {str(n) for n, _, _ in listeners}
    assert any("raylet" in n for n in names) and any("gcs" in n for n in names), listeners
    exposed = [x for x in listeners if x[1] not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")]
    assert exposed == [], f"listening beyond loopback: {exposed}"
