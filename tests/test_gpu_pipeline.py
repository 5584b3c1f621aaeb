"""Issue 14 on CPU: random-init presets at published sizes (counted on the meta device), GPU reservations and the
no-GPU refusal, models loaded once per actor (``model_loads``), Alpamayo's pool in a ``--stages all`` run, the random
weights banner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lanepipe import pipeline
from lanepipe.actors.base import gpu_visibility
from lanepipe.config import load_config, random_weight_models
from lanepipe.monitoring import loads_columns, model_load, summarise_loads, take_model_loads

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def four_clips(tmp_path_factory: pytest.TempPathFactory, make_road_clip: Callable[[Path, int], Path]) -> list[Path]:
    d = tmp_path_factory.mktemp("clips")
    return [make_road_clip(d / f"clip{i}.mp4", 80 + 4 * i) for i in range(4)]


# ------------------------------------------------------------------------------------------ random-init shapes
def test_random_init_generative_modules_have_the_published_sizes() -> None:
    from lanepipe.edit.generative import published

    counts = published.parameter_counts()  # on the meta device: nothing allocated
    assert set(counts) == set(published.PUBLISHED_PARAMS)
    for name, n in counts.items():
        assert n == pytest.approx(published.PUBLISHED_PARAMS[name], rel=0.02), name
    # FLUX Fill's input: 64 noisy-latent channels + 64 masked-image + 256 mask channels per packed token
    assert published.FLUX_TRANSFORMER["in_channels"] == 384


def test_random_init_qwen_and_sam2_have_the_published_sizes() -> None:
    from lanepipe import torchkit
    from lanepipe.segment import sam2
    from lanepipe.verify import qwen_vl

    model = qwen_vl.random_init_model(qwen_vl.tiny_tokenizer(), "meta")
    assert torchkit.count_parameters(model) == pytest.approx(qwen_vl.PUBLISHED_PARAMS_7B, rel=0.01)
    assert next(model.parameters()).device.type == "meta"
    assert sam2.parameter_count() == pytest.approx(sam2.PUBLISHED_PARAMS_HIERA_L, rel=0.01)


def test_random_init_backends_build_the_published_models_through_their_own_code() -> None:
    """The painter, the judge and SAM2 with ``preset=random-init``, through the classes a run uses: the generative
    stack on the meta device (no allocation; one T5-XXL shared by FLUX and CogVideoX), SAM2.1 Hiera-L at 1024 px on
    CPU; each load counted once."""
    from lanepipe import torchkit
    from lanepipe.edit.config import GenerativeConfig
    from lanepipe.edit.generative import GenerativePainter
    from lanepipe.errors import ConfigError
    from lanepipe.segment.config import Sam2Config
    from lanepipe.segment.sam2 import Sam2Segmenter
    from lanepipe.verify.config import QwenJudgeConfig
    from lanepipe.verify.qwen_vl import QwenJudge

    take_model_loads()
    painter = GenerativePainter(GenerativeConfig(preset="random-init", flux_device="meta", video_device="meta"))
    fill, video = painter._load("flux"), painter._load("video")
    assert torchkit.count_parameters(fill.transformer) == pytest.approx(11.9e9, rel=0.01)
    assert torchkit.count_parameters(video.transformer) == pytest.approx(5.6e9, rel=0.01)
    assert video.text_encoder is fill.text_encoder_2 and fill.tokenizer_2.model_max_length == 512
    judge = QwenJudge(QwenJudgeConfig(preset="random-init", device="meta"))
    assert torchkit.count_parameters(judge.model) == pytest.approx(8.29e9, rel=0.01)
    seg = Sam2Segmenter(Sam2Config(preset="random-init", device="cpu"))
    assert seg.image_size == 1024 and seg.model_cfg.endswith("sam2.1_hiera_l.yaml") and seg.checkpoint is None
    assert [x["model"] for x in take_model_loads()] == ["flux_fill", "cogvideox_i2v", "qwen_vl:random-init",
                                                        "sam2:sam2.1_hiera_l"]
    with pytest.raises(ConfigError, match="cannot be used with preset=random-init"):
        Sam2Segmenter(Sam2Config(preset="random-init", checkpoint="/x/sam2.1_hiera_large.pt"))


def test_random_init_tokenizers_give_the_published_sequence_lengths() -> None:
    from lanepipe.edit.config import GenerativeConfig
    from lanepipe.edit.generative.tiny import tiny_clip_tokenizer, tiny_t5_tokenizer

    cfg = GenerativeConfig(preset="random-init")
    assert (cfg.width, cfg.height, cfg.num_frames, cfg.max_sequence_length) == (720, 480, 49, 512)
    prompt = "road with double yellow solid lane markings"
    for tok, n in ((tiny_t5_tokenizer(cfg.max_sequence_length), 512),
                   (tiny_t5_tokenizer(cfg.video_max_sequence_length), 226), (tiny_clip_tokenizer(), 77)):
        ids = tok(prompt, padding="max_length", max_length=n, truncation=True)["input_ids"]
        assert len(ids) == n


def test_edit_preset_random_init_reaches_painter_and_judge_and_is_flagged() -> None:
    cfg = load_config(None, ["stages=all", "edit.backend=flux_cogvideox", "edit.preset=random-init",
                             "verify.backend=qwen_vl", "segment.backend=sam2", "segment.sam2.preset=random-init"])
    assert cfg.edit.generative.preset == "random-init" and cfg.verify.qwen_vl.preset == "random-init"
    assert cfg.verify.qwen_vl.max_new_tokens == 256  # full size: no tiny defaults
    assert random_weight_models(cfg) == ["segment.sam2 (random-init)", "edit.generative (random-init)",
                                         "verify.qwen_vl (random-init)"]
    assert random_weight_models(load_config(None, ["stages=all"])) == []
    with pytest.raises(Exception, match=r"edit\.preset=random-init switches edit\.generative"):
        load_config(None, ["edit.preset=random-init", "edit.generative.preset=tiny-random"])


# ------------------------------------------------------------------------------------------ GPU resources
def test_gpu_backends_reserve_gpus_where_the_cluster_has_them(ray_local) -> None:
    from lanepipe.stages.edit import EditStage
    from lanepipe.stages.evaluate import EvaluateStage
    from lanepipe.stages.segment import SegmentStage

    assert ray_local.cluster_resources().get("GPU") == 1.0  # the session's logical GPU
    gen = load_config(None, ["edit.backend=flux_cogvideox", "edit.preset=tiny-random"])
    assert EditStage(gen, "r", "x", "r", "x").resources().num_gpus == 1.0
    assert EditStage(load_config(None, []), "r", "x", "r", "x").resources().num_gpus == 0.0
    sam = load_config(None, ["segment.backend=sam2", "segment.sam2.preset=tiny-random"])
    assert SegmentStage(sam, "r", "x").resources().num_gpus == 0.5
    alp = load_config(None, ["evaluate.predictors=[lane_keep,alpamayo]"])
    assert EvaluateStage(alp, "r", "x", "r", "x").resources().num_gpus == 1.0
    assert EvaluateStage(load_config(None, []), "r", "x", "r", "x").resources().num_gpus == 0.0
    # a configured value wins over the default
    fixed = load_config(None, ["edit.backend=flux_cogvideox", "edit.resources.num_gpus=2"])
    assert EditStage(fixed, "r", "x", "r", "x").resources().num_gpus == 2.0


def test_the_config_a_worker_rebuilds_keeps_the_backend_defaults(ray_local) -> None:
    """The stage spec carries only the fields a user set, so the worker-side stage still applies backend defaults
    (a full dump marked every field set, and no GPU backend ever reserved its GPU through Ray)."""
    from lanepipe.pipeline import stage_spec

    cfg = load_config(None, ["stages=all", "edit.backend=flux_cogvideox", "edit.preset=tiny-random",
                             "segment.backend=sam2", "segment.sam2.preset=tiny-random", "verify.backend=qwen_vl",
                             "evaluate.resources.concurrency=2", "render.resources.num_gpus=0"])
    specs = {n: stage_spec(n, cfg, "/r", "x", "/r", "x") for n in cfg.stages}
    assert type(cfg).model_validate_json(specs["edit"].cfg_json) == cfg  # same values
    res = {n: s.build().resources() for n, s in specs.items()}
    assert (res["segment"].num_gpus, res["edit"].num_gpus, res["evaluate"].num_gpus) == (0.5, 1.0, 0.0)
    assert res["evaluate"].concurrency == 2 and res["render"].num_gpus == 0.0


def test_a_worker_without_a_reserved_gpu_sees_none() -> None:
    assert gpu_visibility([], {}) == ""  # device=auto must not take GPU 0 unreserved
    assert gpu_visibility([], {"CUDA_VISIBLE_DEVICES": "0,1"}) == ""
    assert gpu_visibility(["1"], {"CUDA_VISIBLE_DEVICES": "1"}) is None  # Ray set it to the assigned GPU
    assert gpu_visibility([], {"CUDA_VISIBLE_DEVICES": ""}) is None


@pytest.mark.ray
def test_full_size_gpu_model_on_a_cluster_without_gpus_is_refused(tmp_path: Path, four_clips: list[Path]) -> None:
    """``lanepipe run`` with random-init FLUX/CogVideoX on a local Ray instance with no GPU: exit 2 and a message
    naming the model, before any model loads (not an hours-long CPU run)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "lanepipe.cli", "run", "-i", str(four_clips[0]), "-o", str(tmp_path),
         "--stages", "segment,edit", "--set", "edit.backend=flux_cogvideox", "--set", "edit.preset=random-init",
         "--set", "ray.num_gpus=0", "--set", "ray.num_cpus=2"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "edit.generative.preset=random-init" in proc.stderr and "no GPU" in proc.stderr, proc.stderr[-2000:]
    assert "tiny-random" in proc.stderr


# ------------------------------------------------------------------------------------------ model loads
def test_model_load_counter_and_summary() -> None:
    take_model_loads()
    with model_load("a"):
        pass
    with pytest.raises(RuntimeError), model_load("b"):
        raise RuntimeError("a failed load is not a load")
    loads = take_model_loads()
    assert [x["model"] for x in loads] == ["a"] and take_model_loads() == []
    rows = [{"stage": "edit", **loads_columns(loads + loads)}, {"stage": "edit", "model_loads": None},
            {"stage": "segment", "skipped": True, "model_loads": 5}]
    s = summarise_loads(rows, ["segment", "edit"])
    assert s["edit"]["loads"] == 2 and s["edit"]["models"] == {"a": 2} and s["segment"]["loads"] == 0


@pytest.mark.ray
def test_sam2_loads_once_per_actor_not_per_clip(ray_local, tmp_path: Path, four_clips: list[Path]) -> None:
    cfg = load_config(None, ["segment.backend=sam2", "segment.sam2.preset=tiny-random", "run_id=loads",
                             "input.max_frames=3",
                             "segment.resources.concurrency=2", "segment.resources.num_cpus=0.5",
                             "segment.overlay=false", "segment.videopainter=false"],
                      base={"input": {"paths": [str(p) for p in four_clips]}, "output": str(tmp_path)})
    summary = pipeline.run(cfg)
    assert [r["status"] for r in summary.rows] == ["ok"] * 4, [r.get("error") for r in summary.rows]
    manifest = json.loads((Path(summary.url) / "manifest.json").read_text())
    loads = manifest["stages"]["segment"]["model_loads"]
    assert loads["loads"] == 2, loads  # two actors, four clips: one load each
    assert loads["models"] == {"sam2:sam2.1_hiera_t": 2} and loads["load_s"] > 0
    assert manifest["model_loads"] == {"segment": 2}
    # each actor reported the GPU Ray assigned it (0.5 of the session's logical GPU 0) on its first row
    assert sorted(r["cuda_visible_devices"] for r in summary.rows if r.get("cuda_visible_devices")) == ["0", "0"]
    assert manifest["random_weights"]["models"] == ["segment.sam2 (tiny-random)"]


@pytest.mark.ray
def test_alpamayo_pool_in_a_full_run_and_the_random_weights_banner(ray_local, tmp_path: Path) -> None:
    """``--stages all`` on a PhysicalAI-AV clip (the four cameras Alpamayo takes) with Alpamayo (dry-run worker,
    its own process) beside lane_keep: the evaluate actor pool hosts the worker, started once; a random-weights
    run's report carries the banner."""
    from lanepipe.testing.paiav import FIXTURE_CLIP_ID, write_fixture

    root = tmp_path / "paiav"
    write_fixture(root, FIXTURE_CLIP_ID, seconds=3.0, egomotion_seconds=12.0)
    front = "camera_front_wide_120fov"
    cfg = load_config(None, ["stages=all", "run_id=alp", "edit.instructions=[none@both]", "edit.qa.max_iterations=1",
                             "evaluate.predictors=[lane_keep,alpamayo]",
                             "evaluate.predictor_options.alpamayo.dry_run=true",
                             "segment.backend=sam2", "segment.sam2.preset=tiny-random", "segment.resources.num_gpus=0",
                             *[f"{s}.resources.num_cpus=0.5" for s in ("segment", "edit", "evaluate", "render")]],
                      base={"input": {"paths": [f"paiav://{root}?camera={front}"]}, "output": str(tmp_path)})
    summary = pipeline.run(cfg)
    ev = [r for r in summary.rows if r["stage"] == "evaluate"]
    assert sorted(r["predictor"] for r in ev) == ["alpamayo", "lane_keep"], summary.rows
    assert all(r["status"] == "ok" for r in summary.rows), [r.get("error") for r in summary.rows]
    run = Path(summary.url)
    doc = json.loads((run / "evaluate" / f"{FIXTURE_CLIP_ID}_{front}" / "none-at-both" / "alpamayo.json").read_text())
    assert doc["predictor"] == "alpamayo" and doc["context"] == "physical_ai_av"
    # the evaluate actor (Alpamayo's pool) holds the GPU; an actor that reserved none sees none
    seen = {r["stage"]: r.get("cuda_visible_devices") for r in summary.rows if r.get("setup_s") is not None}
    assert seen["evaluate"] == "0" and seen["segment"] is None and seen["render"] is None, seen
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["evaluate"]["model_loads"]["models"] == {"alpamayo_r1:dry-run": 1}
    html = (run / "report.html").read_text()
    assert "RANDOM WEIGHTS" in html and "segment.sam2 (tiny-random)" in html


# ------------------------------------------------------------------------------------------ monitoring, benchmark
def test_grafana_dashboard_references_metrics_lanepipe_and_ray_export() -> None:
    """Every metric a panel queries is one lanepipe records (``ray_`` prefix, counter ``_total`` / histogram
    ``_bucket`` suffixes) or one Ray's node agent exports (its reporter_agent.py defines it); every lanepipe metric
    and Ray's GPU utilisation and memory have a panel."""
    import re

    import ray

    from lanepipe import monitoring

    dash = json.loads((REPO / "cluster" / "monitoring" / "grafana-lanepipe.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs.append(dash["templating"]["list"][1]["query"]["query"])
    used = {m for e in exprs for m in re.findall(r"\b(ray_[a-z_]+)", e)}
    ours = {f"ray_{m}{s}" for m in monitoring.METRIC_NAMES for s in ("", "_total", "_bucket", "_sum", "_count")}
    agent = (Path(ray.__file__).parent / "dashboard" / "modules" / "reporter" / "reporter_agent.py").read_text()
    for m in used - ours:
        assert m in monitoring.RAY_GPU_METRICS, m
        assert f'"{m.removeprefix("ray_")}"' in agent, f"{m} is not a metric of Ray {ray.__version__}'s agent"
    assert {"ray_node_gpus_utilization", "ray_node_gram_used"} <= used
    for m in monitoring.METRIC_NAMES:  # each lanepipe metric is on the dashboard
        assert any(u.startswith(f"ray_{m}") for u in used), m
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def _bench():

    from lanepipe.testing import load_script

    return load_script("benchmarks/gpu_pipeline.py", "gpu_pipeline_bench")


def test_gpu_pipeline_figures_from_samples_and_events() -> None:
    b = _bench()
    samples = [{"t": t, "gpu": 0, "util_pct": u} for t, u in ((0.5, 100), (1.5, 80), (3.5, 0), (5.5, 90))]
    assert b.busy_fraction(samples, [(0, 2)]) == pytest.approx(0.9)
    assert b.busy_fraction(samples, [(10, 11)]) is None
    assert b.stage_of_title("ray::MapWorker(MapBatches(EditActor)).submit") == "edit"
    assert b.stage_of_title("ray::DashboardAgent") is None
    rows = [{"clip": "a", "stage": "edit", "busy_s": 2.0, "status": "ok"},
            {"clip": "a", "stage": "edit", "busy_s": 1.0, "status": "ok"},
            {"clip": "a", "stage": "render", "busy_s": 0.5, "status": "ok", "gpu_peak_mib": None}]
    manifest = {"stages": {"edit": {"model_loads": {"loads": 1}}, "render": {}},
                "timing": {"busy_s": {"edit": 3.0, "render": 0.5}, "setup_s": {"edit": 1.0, "render": 0.0},
                           "ray_start_s": 0.5}}
    events = [(2.0, {"stage": "edit", "clip": "a", "busy_s": 2.0}),
              (4.0, {"stage": "edit", "clip": "b", "busy_s": 1.0})]
    out = b.summarise(rows, events, manifest, samples, {7: 1000.0}, {7: "edit"}, 1, 10.0, t0=-1.0)
    assert out["per_clip_stage_busy_s"] == {"a": {"edit": 3.0, "render": 0.5}}
    assert out["edit_span_s"] == 4.0 and out["edit_idle_gaps_s"] == 1.0  # the GPU waited 1 s between edits
    assert out["gpu_busy_fraction_edit_items"] == pytest.approx(0.6)  # samples at 0.5, 1.5, 3.5
    assert out["gpu_busy_fraction_edit_after_first_item"] == 0.0  # after t=2 only the sample at 3.5 (idle)
    # Ray started over [-1, -0.5]; items ran [0, 2] and [3, 4]: 3.5 s of the 10 s wall computed something
    assert out["sum_stage_compute_s"] == 5.0 and out["active_s"] == 3.5 and out["overhead_fraction"] == 0.65
    assert out["clips_per_hour_per_gpu"] == 360.0 and out["peak_gpu_mib_per_actor_nvml"][0]["stage"] == "edit"


def test_rows_of_one_call_form_one_item_and_overlapping_stages_are_not_overhead() -> None:
    """The two edit rows of a clip (one call, its 156 s split 78 + 78) are one item of 156 s; items in flight at
    once and pipelined stages overlap, so the busy sum exceeds the wall, while the overhead (time nothing ran) stays
    what it is — the figures of the H200 run of 2026-12-05, in small."""
    b = _bench()
    events = [(12.0, {"stage": "segment", "clip": "a", "busy_s": 6.0, "setup_s": 4.0}),
              (20.0, {"stage": "segment", "clip": "b", "busy_s": 6.0}),
              (180.0, {"stage": "edit", "clip": "a", "busy_s": 78.0, "setup_s": 12.0}),
              (180.5, {"stage": "edit", "clip": "a", "busy_s": 78.0}),
              (200.0, {"stage": "edit", "clip": "b", "busy_s": 90.0}),
              (200.2, {"stage": "edit", "clip": "b", "busy_s": 90.0}),
              (201.0, {"stage": "render", "clip": "a", "busy_s": 0.5}),
              (201.2, {"stage": "render", "clip": "a", "busy_s": 0.7})]  # two items: their busy differs
    items = b.item_intervals(events)
    assert [(i["stage"], i["clip"], round(i["start"], 6), i["end"]) for i in items] == [
        ("segment", "a", 6.0, 12.0), ("segment", "b", 14.0, 20.0), ("edit", "a", 24.5, 180.5),
        ("edit", "b", 20.2, 200.2), ("render", "a", 200.5, 201.0), ("render", "a", 200.5, 201.2)]
    assert items[0]["setup_start"] == 2.0 and items[2]["setup_start"] == 12.5 and items[1]["setup_start"] is None
    assert [i["clip"] for i in b.item_intervals(events, "edit")] == ["a", "b"]
    manifest = {"stages": {"segment": {}, "edit": {}, "render": {}},
                "timing": {"busy_s": {"segment": 12.0, "edit": 336.0, "render": 1.2},
                           "setup_s": {"segment": 4.0, "edit": 12.0}, "ray_start_s": 2.0}}
    out = b.summarise([], events, manifest, [], {}, {}, 1, 205.0, t0=0.0)
    assert out["sum_stage_compute_s"] > out["wall_s"]  # overlapping work: no reference for the overhead
    # nothing ran over [12, 12.5] (before the edit worker's set-up), [200.2, 200.5] and after 201.2
    assert out["active_s"] == pytest.approx(200.4) and out["overhead_s"] == pytest.approx(4.6)
    assert out["edit_span_s"] == pytest.approx(180.0)


def test_metrics_scraper_reads_the_ray_node_endpoint(ray_local) -> None:
    """The scraper finds this process's Ray, reads its Prometheus endpoint and keeps the series asked for (the node
    CPU series here: the GPU ones need a GPU node)."""
    b = _bench()
    scraper = b.MetricsScraper(period_s=0.5)
    scraper.PREFIXES = ("ray_node_cpu_", "ray_node_mem_used")
    scraper.start()
    deadline = time.monotonic() + 60  # the node agent reports every few seconds
    while time.monotonic() < deadline and "ray_node_cpu_count" not in scraper.summary()["metrics"]:
        time.sleep(0.5)
    scraper.stop()
    out = scraper.summary()
    assert out["port"] == ray_local.nodes()[0]["MetricsExportPort"] and out["scrapes"] >= 1, out
    assert out["metrics"]["ray_node_cpu_count"]["max"] >= 1 and out["error"] is None
    assert not any(m.startswith("ray_lanepipe_") for m in out["metrics"])  # only the prefixes asked for


def test_an_interrupted_run_still_reports_what_finished() -> None:
    b = _bench()
    sampler, scraper = b.NvmlSampler(), b.MetricsScraper()
    sampler.samples = [{"t": 1.0, "gpu": 0, "util_pct": 50.0, "mem_used_mib": 900.0},
                       {"t": 2.0, "gpu": 0, "util_pct": 100.0, "mem_used_mib": 1200.0}]
    events = [(10.0, {"stage": "segment", "clip": "a", "status": "ok", "busy_s": 4.0, "setup_s": 30.0}),
              (50.0, {"stage": "edit", "clip": "a", "status": "ok", "busy_s": 35.0, "setup_s": 80.0})]
    out = b.partial_report(events, sampler, scraper, 120.0, KeyboardInterrupt("SIGTERM"))
    assert out["items_done"] == {"segment:ok": 1, "edit:ok": 1} and out["interrupted"].startswith("KeyboardInterrupt")
    assert [e["t"] for e in out["events"]] == [4.0, 44.0]  # seconds since the first item started
    assert out["nvml_mean_busy_fraction"] == 0.75 and out["nvml_max_mem_used_mib"] == 1200.0


def test_the_heartbeat_says_what_each_gpu_process_holds_and_what_finished(tmp_path: Path) -> None:
    b = _bench()
    sampler = b.NvmlSampler()
    sampler.samples = [{"t": 1.0, "gpu": 0, "util_pct": 97.0, "mem_used_mib": 61000.0}]
    sampler.proc_now_mib = {999999: 60000.0}  # no such process: shown by pid
    events = [(1.0, {"stage": "segment", "status": "ok"}), (2.0, {"stage": "segment", "status": "ok"})]
    lines: list[str] = []
    ticks: list[int] = []
    hb = b.Heartbeat(sampler, events, dump_after_s=1e9, out=lambda line, flush=False: lines.append(line),
                     on_tick=lambda: ticks.append(1))
    hb.tick()
    assert ticks == [1]
    assert "util 97% mem 61000 MiB" in lines[0] and "999999 60000 MiB" in lines[0]
    assert "items segment:ok=2" in lines[0] and len(lines) == 1  # no py-spy dump before dump_after_s
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker-ab.err").write_text(":actor_name:MapWorker(MapBatches(EditActor))\n" + "\n".join(
        f"line {i}" for i in range(100)))
    (logs / "worker-cd.err").write_text("some other worker\n")
    tails = b.worker_log_tails(logs, lines=5)
    assert tails.startswith("=== worker-ab.err") and "line 99" in tails and "line 94" not in tails
    assert "other worker" not in tails and b.worker_log_tails(tmp_path / "absent") == ""


def test_an_80_gb_gpu_parks_the_idle_edit_phase() -> None:
    b = _bench()
    args = ("full", 1, 20, 49, ["double yellow solid"], 16)
    h100, h200 = b.run_overrides(*args, gpu_gib=79.2), b.run_overrides(*args, gpu_gib=139.8)
    assert "edit.generative.unload_between_phases=true" in h100
    assert not any("unload_between_phases" in o for o in h200)
    assert "segment.resources.num_gpus=0.2" in h200 and "edit.resources.num_gpus=0.8" in h200
    assert not any("unload_between_phases" in o for o in b.run_overrides(*args, gpu_gib=None))  # size unknown


def test_no_gpu_size_without_a_gpu() -> None:
    from lanepipe import torchkit

    if torch_cuda_count() == 0:
        assert torchkit.smallest_gpu_gib() is None
    else:
        assert (torchkit.smallest_gpu_gib() or 0) > 1


def torch_cuda_count() -> int:
    import torch

    return torch.cuda.device_count()


def test_process_stages_reads_a_running_process_title() -> None:
    """The stage of a GPU process comes from its title in /proc while it runs (a Ray actor's title is written over
    its arguments); a process that has ended, or one that is no stage actor, gives none."""
    import subprocess
    import sys

    b = _bench()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                             "ray::MapWorker(MapBatches(SegmentActor))"])
    try:
        deadline = time.monotonic() + 10
        while b"SegmentActor" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():  # not yet exec'd
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert b.process_stages([proc.pid, os.getpid()]) == {proc.pid: "segment"}
    finally:
        proc.kill()
        proc.wait()
    assert b.process_stages([proc.pid]) == {}
