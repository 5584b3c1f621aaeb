"""KubeRay manifests, Prometheus configs and Dockerfiles under cluster/: the fields the workloads need, checked
against the repository (entrypoint files, config keys, Serve import path, COPY sources, console scripts).

No Kubernetes or Docker here: these are static checks of what the operator, kubelet and builder will read.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
from importlib.metadata import distribution, version
from pathlib import Path
from typing import Any

import pytest
import yaml

from lanepipe.actors.base import ALPAMAYO_RESOURCE, RESOURCES_ENV
from lanepipe.config import load_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = sorted((CLUSTER / "kuberay").glob("*.yaml"))
DOCKERFILES = {p.name: p for p in sorted((CLUSTER / "docker").glob("Dockerfile.*")) if "." not in p.name[11:]}
#: Serve import paths whose module another change adds (checked in full once the module exists).
PENDING_SERVE_MODULES = {"lanepipe.serve.app": "the Ray Serve edit API (serve/ is written in a parallel change)"}
GPU_GROUPS = {"gpu", "alpamayo"}
IMAGE_ROOT = "/app"  # WORKDIR of the images: the repository's files are copied under it


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _all_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in KUBERAY for d in _docs(p)]


def _cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]
    key = {"RayCluster": None, "RayJob": "rayClusterSpec", "RayService": "rayClusterConfig"}[doc["kind"]]
    out: dict[str, Any] = spec if key is None else spec[key]
    return out


def _groups(cluster: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(group name, group spec) for the head ("head") and every worker group."""
    return [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """Instructions (KEYWORD, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in path.read_text().splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):  # a comment inside a continued RUN
            continue
        buf += " " + s.removesuffix("\\")
        if not s.endswith("\\"):
            kw, _, args = buf.strip().partition(" ")
            out.append((kw.upper(), args.strip()))
            buf = ""
    return out


def _image_tags() -> dict[str, str]:
    """Image tag each Dockerfile is built as (its documented `docker build … -t TAG`) → Dockerfile name."""
    tags = {}
    for name, p in DOCKERFILES.items():
        found = re.findall(r"^#.*docker build -f cluster/docker/" + re.escape(name) + r"\b.*?(?:\n#.*?)*?-t (\S+)",
                           p.read_text(), flags=re.M)
        assert len(found) == 1, f"{name}: document the build command with its -t tag in the header"
        tags[found[0]] = name
    return tags


def test_every_manifest_is_a_kuberay_resource_of_the_installed_ray() -> None:
    kinds = sorted(d["kind"] for _, d in _all_docs())
    assert kinds == ["RayCluster", "RayJob", "RayService"]
    for path, doc in _all_docs():
        assert doc["apiVersion"] == "ray.io/v1", path
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), path
        cluster = _cluster_spec(doc)
        assert cluster["rayVersion"] == version("ray"), f"{path}: rayVersion must match the Ray lanepipe runs"
        for name, _ in _groups(cluster):
            assert re.fullmatch(r"[a-z0-9-]+", name)


def test_groups_have_images_resources_and_start_params() -> None:
    tags = _image_tags()
    assert set(tags.values()) == set(DOCKERFILES) == {"Dockerfile.main", "Dockerfile.alpamayo"}
    main = next(t for t, n in tags.items() if n == "Dockerfile.main")
    alpamayo = next(t for t, n in tags.items() if n == "Dockerfile.alpamayo")
    for path, doc in _all_docs():
        groups = dict(_groups(_cluster_spec(doc)))
        assert {"head", "gpu"} <= set(groups), path
        for name, g in groups.items():
            where = f"{path.name}:{name}"
            params = g["rayStartParams"]
            assert all(isinstance(v, str) for v in params.values()), f"{where}: rayStartParams values are strings"
            assert params.get("metrics-export-port") == "8080", where
            if name != "head":
                assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"], where
            pod = g["template"]["spec"]
            (c,) = pod["containers"]
            assert c["image"] == (alpamayo if name == "alpamayo" else main), where
            limits, requests = c["resources"]["limits"], c["resources"]["requests"]
            assert {"cpu", "memory"} <= set(limits) and limits == requests, f"{where}: set limits = requests"
            assert re.fullmatch(r"\d+Gi", limits["memory"]) and int(limits["cpu"]) >= 1
            gpus = limits.get("nvidia.com/gpu")
            if name in GPU_GROUPS:
                assert gpus == "1", f"{where}: one GPU per worker"
                assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
            else:
                assert gpus is None, where
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            assert ports.get("metrics") == 8080, f"{where}: the PodMonitor scrapes the port named metrics"
            if name == "head":
                assert {"gcs-server": 6379, "dashboard": 8265, "client": 10001}.items() <= ports.items()
                assert params["num-cpus"] == "0" and params["dashboard-host"] == "0.0.0.0"
            volumes = {v["name"] for v in pod.get("volumes", [])}
            assert {m["name"] for m in c.get("volumeMounts", [])} <= volumes, f"{where}: mount without volume"
            assert any(m["mountPath"] == "/dev/shm" for m in c["volumeMounts"]), f"{where}: object store shm"


def test_alpamayo_group_advertises_the_resource_lanepipe_asks_for() -> None:
    seen = 0
    for path, doc in _all_docs():
        groups = dict(_groups(_cluster_spec(doc)))
        for name, g in groups.items():
            raw = g["rayStartParams"].get("resources")
            if name != "alpamayo":
                assert raw is None, f"{path.name}:{name}: only the alpamayo group has custom resources"
                continue
            seen += 1
            # KubeRay passes it to `ray start --resources=…` as a quoted JSON string
            assert raw.startswith('"') and raw.endswith('"')
            assert json.loads(raw[1:-1].replace('\\"', '"')) == {ALPAMAYO_RESOURCE: 1}
    assert seen >= 2  # the long-lived cluster and the job's cluster
    assert RESOURCES_ENV in (CLUSTER / "README.md").read_text()


def _entrypoint_checks(entry: str) -> None:
    argv = shlex.split(entry)
    assert argv[0] == "python", entry
    script = REPO / argv[1]
    assert script.is_file(), f"entrypoint script {argv[1]} is not in the repository"
    config, sets = None, []
    it = iter(argv[2:])
    for a in it:
        if a in ("-c", "--config"):
            config = next(it)
        elif a == "--set":
            sets.append(next(it))
        else:
            raise AssertionError(f"unexpected entrypoint argument {a!r}")
    assert config is not None and (REPO / config).is_file(), f"config {config} is not in the repository"
    cfg = load_config(REPO / config, sets)  # every override names a real key with a valid value
    assert cfg.run_id, "fix the run id so a retried job resumes the same run"
    assert cfg.output.startswith(("gs://", "s3://")), "a cluster job writes to object storage"
    assert all(p.startswith(("gs://", "s3://")) for p in cfg.input.paths)


def test_rayjob_runs_the_sweep_entrypoint_from_the_repo() -> None:
    jobs = [d for _, d in _all_docs() if d["kind"] == "RayJob"]
    assert jobs
    for job in jobs:
        spec = job["spec"]
        assert spec["entrypoint"].startswith("python jobs/sweep.py -c jobs/configs/segment_sweep.yaml")
        _entrypoint_checks(spec["entrypoint"])
        runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
        assert runtime_env["working_dir"] == IMAGE_ROOT  # relative entrypoint paths resolve in the image's copy
        assert spec["shutdownAfterJobFinishes"] is True and spec["submissionMode"] == "K8sJobMode"
        assert spec["backoffLimit"] >= 1


def test_rayservice_import_path_is_a_module_of_the_repo() -> None:
    services = [d for _, d in _all_docs() if d["kind"] == "RayService"]
    assert services
    for svc in services:
        serve = yaml.safe_load(svc["spec"]["serveConfigV2"])
        assert serve["http_options"]["host"] == "0.0.0.0" and serve["http_options"]["port"] == 8000
        (app,) = serve["applications"]
        module, _, attr = app["import_path"].partition(":")
        assert (module, attr) == ("lanepipe.serve.app", "build_app")
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.exists():
            assert module in PENDING_SERVE_MODULES, f"{module} is neither in the repo nor declared pending"
            continue
        tree = ast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        assert attr in names, f"{path} defines no {attr}"


def test_dockerfiles_copy_existing_paths_and_run_declared_commands() -> None:
    scripts = {ep.name for ep in distribution("lanepipe").entry_points if ep.group == "console_scripts"}
    assert "lanepipe" in scripts and "[project.scripts]\nlanepipe = " in (REPO / "pyproject.toml").read_text()
    for name, path in DOCKERFILES.items():
        instr = _dockerfile(path)
        kws = [k for k, _ in instr]
        assert "FROM" in kws
        assert ("WORKDIR", IMAGE_ROOT) in instr or name == "Dockerfile.alpamayo"  # that one builds on main
        ignore = (path.parent / f"{name}.dockerignore").read_text().splitlines()
        included = {line[1:] for line in ignore if line.startswith("!")}
        for kw, args in instr:
            if kw == "COPY" and "--from=" not in args:
                *srcs, _dst = shlex.split(args)
                for src in srcs:
                    assert (REPO / src).exists(), f"{name}: COPY {src} is not in the repository"
                    top = src.strip("/").split("/")[0]
                    assert top in included, f"{name}: COPY {src} but {name}.dockerignore leaves it out"
            if kw in ("ENTRYPOINT", "CMD"):
                cmd = json.loads(args)  # exec form
                if kw == "ENTRYPOINT":
                    assert cmd[0] in scripts, f"{name}: ENTRYPOINT {cmd[0]} is not a console script of lanepipe"
                for tok in cmd:
                    if tok.startswith(IMAGE_ROOT + "/"):
                        assert (REPO / tok.removeprefix(IMAGE_ROOT + "/")).exists(), f"{name}: {tok}"
        assert kws[-1] in ("CMD", "ENTRYPOINT")


def test_images_run_the_python_and_ray_of_this_project() -> None:
    main = dict(_dockerfile(DOCKERFILES["Dockerfile.main"]))
    # Ray refuses mixed Python minor versions: every image's Ray runs this interpreter's minor version
    assert main["FROM"] == f"python:{sys.version_info.major}.{sys.version_info.minor}-slim-bookworm"
    args = [a for k, a in _dockerfile(DOCKERFILES["Dockerfile.main"]) if k == "ARG"]
    assert f"RAY_VERSION={version('ray')}" in args
    assert any(a.startswith("TORCH_VERSION=") for a in args)
    run = " ".join(a for k, a in _dockerfile(DOCKERFILES["Dockerfile.main"]) if k == "RUN")
    assert "torchvision" not in run and "SAM2_BUILD_CUDA=0" in run and "wget" in run  # wget: KubeRay probes
    alp = _dockerfile(DOCKERFILES["Dockerfile.alpamayo"])
    main_tag = next(t for t, n in _image_tags().items() if n == "Dockerfile.main")
    assert ("ARG", f"MAIN_IMAGE={main_tag}") in alp and ("FROM", "${MAIN_IMAGE}") in alp
    alp_run = " ".join(a for k, a in alp if k == "RUN")
    assert "uv sync --frozen" in alp_run and "--python 3.12" in alp_run and "/opt/alpamayo/bin/python" in alp_run
    readme = (CLUSTER / "README.md").read_text()
    assert "evaluate.predictor_options.alpamayo.python=/opt/alpamayo/bin/python" in readme


def test_monitoring_configs() -> None:
    (pm,) = _docs(CLUSTER / "monitoring" / "podmonitor.yaml")
    assert (pm["apiVersion"], pm["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"] == {"ray.io/is-ray-node": "yes"}
    assert [e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == ["metrics"]
    prom = yaml.safe_load((CLUSTER / "monitoring" / "prometheus-local.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["file_sd_configs"][0]["files"] == ["/tmp/ray/prom_metrics_service_discovery.json"]
    readme = (CLUSTER / "README.md").read_text()
    for f in [*KUBERAY, CLUSTER / "monitoring" / "podmonitor.yaml", CLUSTER / "monitoring" / "prometheus-local.yml"]:
        assert f.name in readme, f"cluster/README.md does not mention {f.name}"
    for needle in ("ray metrics launch-prometheus", "ray_lanepipe_clips_processed_total", "MetricsExportPort",
                   "## Fault tolerance"):
        assert needle in readme


@pytest.mark.parametrize("path", KUBERAY, ids=lambda p: p.name)
def test_readme_names_how_to_apply(path: Path) -> None:
    assert f"kubectl apply -f cluster/kuberay/{path.name}" in (CLUSTER / "README.md").read_text() + path.read_text()
