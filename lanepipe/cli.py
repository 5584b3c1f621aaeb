"""``lanepipe`` console script: one app, verbs as subcommands."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lanepipe.config import RunConfig, load_config
from lanepipe.errors import LanepipeError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Segment the road in driving videos, paint requested lane markings, evaluate the edit.")
config_app = typer.Typer(no_args_is_help=True, help="Inspect configuration.")
app.add_typer(config_app, name="config")
console = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML run config")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="dotted override, e.g. segment.backend=sam2")]
InputOpt = Annotated[list[str] | None, typer.Option("--input", "-i", help="clip, folder, glob or URL (repeatable)")]
OutputOpt = Annotated[str | None, typer.Option("--output", "-o", help="run root: local folder, gs://, s3://")]
RunIdOpt = Annotated[str | None, typer.Option(help="resume or name a run")]
AddressOpt = Annotated[str | None, typer.Option(help="Ray address: local (default), auto, ray://…")]
ExecutorOpt = Annotated[str, typer.Option(help="ray | sequential (no Ray, same stages)")]


def sample_cache_dir() -> Path:
    return Path(os.environ.get("LANEPIPE_CACHE", Path.home() / ".cache" / "lanepipe")) / "sample"


def default_sample_clip() -> str:
    """Render the synthetic sample clip once (cached) and return its path."""
    from lanepipe.sample import write_sample

    d = sample_cache_dir()
    mp4 = d / "sample.mp4"
    if not mp4.exists():
        console.print(f"no --input: rendering the synthetic sample clip into {d}")
        write_sample(d)
    return str(mp4)


def _build_config(config: Path | None, sets: list[str] | None, **fields: Any) -> RunConfig:
    base: dict[str, Any] = {}
    if fields.get("resume_changed_config"):
        base["resume_changed_config"] = True
    if fields.get("input"):
        base.setdefault("input", {})["paths"] = fields["input"]
    for key in ("output", "stages", "run_id", "from_run"):
        if fields.get(key) is not None:
            base[key] = fields[key]
    if fields.get("address"):
        base["ray"] = {"address": fields["address"]}
    if fields.get("edit"):
        base["edit"] = {"instructions": fields["edit"]}
    return load_config(config, sets or [], base=base)


def _execute(cfg: RunConfig, executor: str) -> None:
    from lanepipe import pipeline

    if not cfg.input.paths and cfg.stages[0] == "segment":
        cfg.input.paths = [default_sample_clip()]
    last = cfg.stages[-1]
    per_clip = 1
    if "edit" in cfg.stages and last != "segment":
        per_clip = len(cfg.edit.instructions) * (len(cfg.evaluate.predictors) if last in ("evaluate", "render") else 1)
    unit = {"segment": "clips", "edit": "edits"}.get(last, "evaluations")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn(unit + " · {task.fields[frames]} frames · {task.fields[failed]} failed"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(" → ".join(cfg.stages), total=None, frames=0, failed=0)

        def on_plan(todo: int, skipped: int) -> None:
            bar.update(task, total=todo * per_clip)
            if skipped:
                console.print(f"resuming: {skipped} clip(s) already finished in {cfg.stages[0]} are skipped")

        def on_row(row: dict[str, Any]) -> None:
            t = bar.tasks[task]
            if row.get("stage") == cfg.stages[0]:  # frames decoded, counted once per clip
                bar.update(task, frames=t.fields["frames"] + int(row.get("num_frames") or 0))
            if row.get("stage") == last:
                bar.update(task, advance=1, failed=t.fields["failed"] + (row["status"] != "ok"))

        summary = pipeline.run(cfg, executor=executor, progress=on_row, on_plan=on_plan)
    for r in summary.failed:
        what = escape(f"{r['clip']} [{r['instruction']}]") if r.get("instruction") else r["clip"]
        console.print(f"[red]failed[/red] {r['stage']} {what}: {str(r['error']).splitlines()[0]}")
    for r in summary.rows:
        if r.get("stage") == "edit" and r["status"] == "ok":
            console.print(escape(f"edit {r['clip']} [{r['instruction']}]") + f": QA {r.get('qa_verdict')} "
                          f"after {r.get('qa_iterations')} attempt(s)")
    ok = len(summary.rows) - len(summary.failed)
    console.print(f"run {summary.run_id}: {ok} ok, {len(summary.failed)} failed, {summary.skipped} skipped "
                  f"in {summary.seconds:.1f} s → {summary.url}")
    typer.echo(summary.url)


@app.command()
def run(
    input: InputOpt = None,
    output: OutputOpt = None,
    stages: Annotated[str | None, typer.Option(help="comma list or 'all', e.g. segment,edit")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    from_run: Annotated[str | None, typer.Option(help="run whose outputs a later-starting selection reads")] = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
    edit: Annotated[list[str] | None, typer.Option("--edit", "-e", help="lane instruction or preset:NAME "
                                                   "(repeatable), e.g. 'double yellow solid'")] = None,
    resume_changed_config: Annotated[bool, typer.Option(
        "--resume-changed-config", help="resume --run-id even though its recorded settings differ")] = False,
) -> None:
    """Run the selected stages over the input clips (the synthetic sample clip when no --input)."""
    cfg = _build_config(config, set_, input=input, output=output, stages=stages, run_id=run_id,
                        from_run=from_run, address=address, edit=edit, resume_changed_config=resume_changed_config)
    _execute(cfg, executor)


@app.command()
def segment(
    input: InputOpt = None,
    output: OutputOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
) -> None:
    """Shortcut for ``run --stages segment``."""
    cfg = _build_config(config, set_, input=input, output=output, stages="segment", run_id=run_id,
                        address=address)
    _execute(cfg, executor)


@app.command("edit")
def edit_cmd(
    edit: Annotated[list[str], typer.Option("--edit", "-e", help="lane instruction or preset:NAME (repeatable)")],
    input: InputOpt = None,
    output: OutputOpt = None,
    from_run: Annotated[str | None, typer.Option(help="edit the segmented clips of this run")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
) -> None:
    """Paint lane markings: ``--stages edit --from-run RUN`` or, with ``--input``, ``--stages segment,edit``."""
    stages = "edit" if from_run else "segment,edit"
    cfg = _build_config(config, set_, input=input, output=output, stages=stages, run_id=run_id,
                        from_run=from_run, address=address, edit=edit)
    _execute(cfg, executor)


@app.command("evaluate")
def evaluate_cmd(
    from_run: Annotated[str, typer.Option(help="run whose edited clips are evaluated")],
    output: OutputOpt = None,
    predictor: Annotated[list[str] | None, typer.Option("--predictor", "-p", help="lane_keep, alpamayo or "
                                                        "module:Class (repeatable)")] = None,
    render: Annotated[bool, typer.Option(help="also render videos and report.html")] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
) -> None:
    """Predict trajectories on original and edited clips of an earlier run (``--stages evaluate[,render]``)."""
    sets = list(set_ or [])
    if predictor:
        sets.append("evaluate.predictors=[" + ", ".join(predictor) + "]")
    cfg = _build_config(config, sets, output=output, stages="evaluate,render" if render else "evaluate",
                        run_id=run_id, from_run=from_run, address=address)
    _execute(cfg, executor)


@app.command()
def report(run: Annotated[str, typer.Argument(help="run folder or URL (<output>/<run_id>)")]) -> None:
    """Write report.html for a run and print its summary table."""
    from lanepipe.viz.report import format_table, summary_table, write_report

    path = write_report(run)
    typer.echo(format_table(summary_table(run)))
    console.print(f"report: {path}")


@app.command()
def sample(
    output: Annotated[Path, typer.Option("--output", "-o", help="folder for sample.mp4 and ground truth")] = Path(
        "sample"),
    frames: Annotated[int, typer.Option(help="number of frames")] = 48,
    fps: Annotated[float, typer.Option(help="frame rate")] = 8.0,
    width: int = 960,
    height: int = 540,
    seed: int = 0,
) -> None:
    """Render the synthetic front-camera sample clip with its ground truth."""
    from lanepipe.sample import write_sample

    path = write_sample(output, num_frames=frames, fps=fps, width=width, height=height, seed=seed)
    typer.echo(str(path))


def _counts_lines(counts: dict[str, dict[str, int]]) -> list[str]:
    return [f"  {attr:<8} " + " · ".join(f"{k} {v}" for k, v in values.items())
            for attr, values in counts.items() if attr != "unparseable" or values.get("rows")]


@app.command("dataset")
def dataset_cmd(
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="clip, image, folder, glob or URL "
                                                    "(repeatable); an image is a one-frame clip")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="dataset folder: local path or bucket "
                                               "URL (default: dataset)")] = None,
    frames: Annotated[str | None, typer.Option(help="source frame indices, comma list, e.g. 0,25,50")] = None,
    stride: Annotated[int | None, typer.Option(help="every N-th source frame from 0 (default 10)")] = None,
    max_frames: Annotated[int | None, typer.Option(help="most frames per clip (default 50)")] = None,
    segmenter: Annotated[str | None, typer.Option(help="road mask backend: grid | sam2")] = None,
    captioner: Annotated[str | None, typer.Option(help="caption backend: lane_detector | qwen_vl")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML dataset config (DatasetConfig)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="dotted override, e.g. boundary=both")] = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
) -> None:
    """Build a training dataset: frames → road masks → canonical captions → train.csv, images/, masks/.

    Re-running with the same output skips finished frames; train.csv is rewritten from all of them.
    """
    from lanepipe.datasets.building import generate_dataset, load_dataset_config
    from lanepipe.errors import ConfigError

    base: dict[str, Any] = {}
    if input:
        base["paths"] = input
    if output is not None:
        base["output"] = output
    if frames is not None:
        try:
            base["frames"] = [int(x) for x in frames.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(f"--frames: expected comma-separated frame indices like 0,25,50, "
                              f"got {frames!r}") from None
    for key, value in (("stride", stride), ("max_frames", max_frames), ("captioner", captioner)):
        if value is not None:
            base[key] = value
    if segmenter is not None:
        base["segment"] = {"backend": segmenter}
    if address:
        base["ray"] = {"address": address}
    cfg = load_dataset_config(config, set_ or [], base=base)
    if not cfg.paths:
        raise ConfigError("dataset: give at least one --input (clip, image, folder, glob or URL)")

    def on_clip(row: dict[str, Any]) -> None:
        if row.get("status") != "ok":
            reason = str(row.get("error")).splitlines()[0]
            console.print(f"[red]failed[/red] {escape(str(row.get('clip')))}: {escape(reason)}", soft_wrap=True)

    summary = generate_dataset(cfg, executor=executor, progress=on_clip)
    dropped = sum(len(c.get("frames_dropped") or []) for c in summary.clips)
    console.print(f"dataset {summary.url}: {summary.rows} rows in train.csv ({summary.frames_written} frames written, "
                  f"{summary.frames_resumed} resumed, {dropped} dropped for an empty road mask); "
                  f"{len(summary.clips)} clips, {len(summary.failed)} failed, {summary.seconds:.1f} s", soft_wrap=True)
    console.print("caption attributes (rows per value):")
    for line in _counts_lines(summary.counts):
        console.print(line, soft_wrap=True)
    typer.echo(summary.csv_url)


@app.command("filter")
def filter_cmd(
    source: Annotated[str, typer.Argument(help="dataset folder or its train.csv (path or URL)")],
    output: Annotated[str, typer.Option("--output", "-o", help="new dataset folder (path or URL)")],
    count: Annotated[str, typer.Option(help="single | double | any")] = "any",
    color: Annotated[str, typer.Option(help="white | yellow | mixed | any")] = "any",
    pattern: Annotated[str, typer.Option(help="solid | dashed | mixed (incl. solid-dashed) | solid-dashed | any")] = (
        "any"),
    require_known: Annotated[bool, typer.Option("--require-known", help="drop captions with an unknown "
                                                "attribute")] = False,
    link: Annotated[str, typer.Option(help="copy | hardlink | symlink (links: local folders only)")] = "copy",
    validate: Annotated[bool, typer.Option(help="read and check every image and mask")] = True,
) -> None:
    """Keep the rows of a dataset whose caption matches; copy or link their files into a new dataset."""
    from lanepipe.datasets.filter import Selection, filter_dataset

    sel = Selection(count=count, color=color, pattern=pattern, require_known=require_known)
    s = filter_dataset(source, output, sel, link=link, validate=validate)
    reasons = " · ".join(f"{k} {v}" for k, v in s.dropped.items() if v) or "none"
    console.print(f"filter: kept {s.kept} of {s.total} rows ({s.files} files, {link}); dropped: {reasons}",
                  soft_wrap=True)
    shown = 100
    for line, prompt in s.unparseable[:shown]:
        console.print(escape(f"  unparseable caption, line {line}: {prompt!r}"), soft_wrap=True)
    for bad in s.invalid[:shown]:
        console.print(escape(f"  invalid row, line {bad.line}: {bad.reason}"), soft_wrap=True)
    for what, items in (("unparseable", s.unparseable), ("invalid", s.invalid)):
        if len(items) > shown:
            console.print(f"  … {len(items) - shown} more {what} rows")
    typer.echo(s.csv_url)


@app.command("train")
def train_cmd(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="dataset folder or URL (train.csv, images/, "
                                         "masks/), e.g. from `lanepipe dataset`")],
    output: Annotated[str | None, typer.Option("--output", "-o", help="folder or URL for the adapter, "
                                               "train_summary.json and checkpoints/ (default lora-out)")] = None,
    preset: Annotated[str | None, typer.Option(help="tiny-random: tiny random FLUX Fill on CPU (tests)")] = None,
    flux_model: Annotated[str | None, typer.Option(help="FLUX.1 Fill: local diffusers folder or hub id")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers (default 1)")] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="one GPU per worker (default: yes, "
                                             "except with the tiny-random preset)")] = None,
    epochs: Annotated[int | None, typer.Option(help="passes over the data (default 5)")] = None,
    max_steps: Annotated[int | None, typer.Option(help="optimiser steps in all (overrides --epochs)")] = None,
    lr: Annotated[float | None, typer.Option(help="peak learning rate (default 1e-5)")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank (default 16)")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="steps between checkpoints (default 100)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of TrainConfig fields")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a TrainConfig field, e.g. "
                                                   "gradient_checkpointing=true (repeatable)")] = None,
    address: AddressOpt = None,
) -> None:
    """Train a FLUX.1 Fill LoRA with Ray Train; re-running with the same --output resumes from its last checkpoint.

    Writes <output>/pytorch_lora_weights.safetensors (use it as edit.generative.lora_path) and train_summary.json.
    """
    from lanepipe.config import apply_overrides, read_yaml_mapping
    from lanepipe.train.lora import parse_config, train_lora

    data: dict[str, Any] = read_yaml_mapping(config) if config is not None else {}
    for key, value in (("output", output), ("preset", preset), ("flux_model", flux_model), ("num_workers", workers),
                       ("use_gpu", gpu), ("epochs", epochs), ("max_steps", max_steps), ("lr", lr), ("rank", rank),
                       ("checkpoint_every", checkpoint_every)):
        if value is not None:
            data[key] = value
    cfg = parse_config(apply_overrides(data, set_ or []))
    console.print(f"training a rank-{cfg.rank} LoRA on {escape(dataset)} with {cfg.num_workers} worker(s) "
                  f"({'GPU' if cfg.use_gpu else 'CPU'}) → {escape(cfg.output)}")
    s = train_lora(dataset, cfg, address=address)
    resumed = f", resumed at step {s.start_step}" if s.start_step else ""
    last = f"{s.final_loss:.4f}" if s.final_loss is not None else "n/a"
    console.print(f"trained {s.steps_run} step(s) to step {s.steps}{resumed} on {s.rows} rows; final loss {last}; "
                  f"{s.seconds:.1f} s")
    typer.echo(s.lora_path)


@config_app.command("show")
def config_show(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Print the effective config (defaults < YAML file < --set overrides) as YAML."""
    cfg = load_config(config, set_ or [])
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="address to bind; the default keeps the server on this machine")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    token: Annotated[str | None, typer.Option(envvar="LANEPIPE_SERVE_TOKEN", help="bearer token every /v1 "
                                              "request must send (or env LANEPIPE_SERVE_TOKEN)")] = None,
    max_queue: Annotated[int, typer.Option(help="jobs queued or running before new ones get 503 + Retry-After")] = 4,
    output: Annotated[str, typer.Option("--output", "-o", help="local run root: one run folder per job")] = "runs",
    workers: Annotated[int, typer.Option(help="jobs run at once")] = 1,
    max_upload_mb: Annotated[float, typer.Option(help="largest accepted upload, MiB")] = 200.0,
    input_root: Annotated[list[str] | None, typer.Option("--input-root", help="local folder a request's `url` may "
                                                         "point into (repeatable; default: any path)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    address: AddressOpt = None,
) -> None:
    """Serve the HTTP API and web page (Ray Serve): POST /v1/edits, GET /v1/edits/{id}, GET /.

    Every job starts from the run config given here (-c/--set); a request chooses only its clip, instructions,
    stages and predictors (among evaluate.predictors).
    """
    import signal
    import time

    from pydantic import ValidationError

    from lanepipe import pipeline
    from lanepipe.errors import ConfigError
    from lanepipe.serve.app import ServeSettings, start, stop

    cfg = _build_config(config, set_, address=address)
    try:
        settings = ServeSettings(output=output, token=token or None, max_queue=max_queue, workers=workers,
                                 max_upload_bytes=int(max_upload_mb * 2**20), predictors=cfg.evaluate.predictors,
                                 input_roots=input_root or None,
                                 base_config=cfg.model_dump(mode="json", exclude={"run_id", "from_run"}))
    except ValidationError as e:
        raise ConfigError("serve: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}"
                                                for x in e.errors())) from None
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.token:
        console.print(f"[yellow]warning:[/yellow] binding {host} without --token: anyone who reaches this port can "
                      "submit jobs and read their results")
    pipeline.init_ray(cfg)
    url = start(settings, host=host, port=port)
    console.print(f"lanepipe serve: {url} (max queue {max_queue}, {workers} worker(s), runs in {settings.output}); "
                  "Ctrl-C stops it")
    typer.echo(url)

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("lanepipe serve: stopping")
        stop()


def run_cli(argv: list[str] | None = None, *, messages_to_stdout: bool = False) -> int:
    """Run the CLI on ``argv`` (default: the process's arguments) and return its exit status: 2 for a
    :class:`~lanepipe.errors.LanepipeError` (printed). ``jobs/`` call this with their verb and
    ``messages_to_stdout=True`` (a submitted job's log is its stdout)."""
    was = console.stderr
    console.stderr = not messages_to_stdout
    try:
        app(args=argv)
    except LanepipeError as e:
        console.stderr = True  # errors always on stderr, unwrapped
        console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        console.stderr = was
    return 0


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
