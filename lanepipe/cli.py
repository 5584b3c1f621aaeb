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

from lanepipe.config import STAGES, RunConfig, load_config, read_yaml_mapping
from lanepipe.errors import LanepipeError
from lanepipe.progress import RunReporter, quiet_ray

#: Exit status of every verb: all items ok; some items failed (their rows are in results.parquet);
#: usage, config or input error (nothing ran); the run could not start or finish (e.g. storage unreachable).
EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USAGE, EXIT_RUN_FAILED = 0, 1, 2, 3
EXIT_HELP = ("Exit status: 0 every item ok · 1 some items failed (see results.parquet) · 2 usage, config or "
             "input error, nothing ran · 3 the run could not start or finish (e.g. storage unreachable).")

app = typer.Typer(add_completion=False, no_args_is_help=True, epilog=EXIT_HELP,
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
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="show Ray's own log lines")]
FromRunHelp = "a run id under --output, or the run's folder or URL as printed (e.g. runs/<run_id>)"


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


def _execute(cfg: RunConfig, executor: str, verbose: bool = False) -> None:
    """Run ``cfg``, printing its plan, progress and outcome; exits 1 when any item failed."""
    from lanepipe import pipeline

    if not cfg.input.paths and cfg.stages[0] == "segment":
        cfg.input.paths = [default_sample_clip()]
    quiet_ray(verbose)
    with RunReporter(console) as reporter:
        summary = pipeline.run(cfg, executor=executor, progress=reporter.row, on_start=reporter.plan,
                               on_event=reporter.row)
        reporter.finish(summary)
    typer.echo(summary.url)
    if summary.failed:
        raise typer.Exit(EXIT_ITEMS_FAILED)


def _stages_configured(config: Path | None, sets: list[str] | None) -> bool:
    """Whether the YAML config or a ``--set`` names the stages (else ``lanepipe run`` runs all of them)."""
    if any(s.strip().startswith("stages=") for s in sets or []):
        return True
    return config is not None and "stages" in read_yaml_mapping(config)


@app.command(epilog=EXIT_HELP)
def run(
    input: InputOpt = None,
    output: OutputOpt = None,
    stages: Annotated[str | None, typer.Option(help="'all' (default) or a comma list of consecutive stages in "
                                               f"pipeline order: {','.join(STAGES)}, e.g. segment,edit")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    from_run: Annotated[str | None, typer.Option(help="run whose outputs a later-starting selection reads: "
                                                 + FromRunHelp)] = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
    edit: Annotated[list[str] | None, typer.Option("--edit", "-e", help="lane instruction or preset:NAME "
                                                   "(repeatable); default 'double yellow solid'")] = None,
    verbose: VerboseOpt = False,
    resume_changed_config: Annotated[bool, typer.Option(
        "--resume-changed-config", help="resume --run-id even though its recorded settings differ")] = False,
) -> None:
    """Run the selected stages (default: all of them) over the input clips (the synthetic sample clip when no
    --input). What will run (stages, backends, instructions, inputs, output folder) is printed first."""
    if stages is None and not _stages_configured(config, set_):
        stages = "all"
    cfg = _build_config(config, set_, input=input, output=output, stages=stages, run_id=run_id,
                        from_run=from_run, address=address, edit=edit, resume_changed_config=resume_changed_config)
    _execute(cfg, executor, verbose)


@app.command(epilog=EXIT_HELP)
def segment(
    input: InputOpt = None,
    output: OutputOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
    verbose: VerboseOpt = False,
) -> None:
    """Shortcut for ``run --stages segment``."""
    cfg = _build_config(config, set_, input=input, output=output, stages="segment", run_id=run_id,
                        address=address)
    _execute(cfg, executor, verbose)


@app.command("edit", epilog=EXIT_HELP)
def edit_cmd(
    edit: Annotated[list[str], typer.Option("--edit", "-e", help="lane instruction or preset:NAME (repeatable)")],
    input: InputOpt = None,
    output: OutputOpt = None,
    from_run: Annotated[str | None, typer.Option(help="edit the segmented clips of this run: " + FromRunHelp)] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
    verbose: VerboseOpt = False,
) -> None:
    """Paint lane markings: ``--stages edit --from-run RUN`` or, with ``--input``, ``--stages segment,edit``."""
    stages = "edit" if from_run else "segment,edit"
    cfg = _build_config(config, set_, input=input, output=output, stages=stages, run_id=run_id,
                        from_run=from_run, address=address, edit=edit)
    _execute(cfg, executor, verbose)


@app.command("evaluate", epilog=EXIT_HELP)
def evaluate_cmd(
    from_run: Annotated[str, typer.Option(help="run whose edited clips are evaluated: " + FromRunHelp)],
    output: OutputOpt = None,
    predictor: Annotated[list[str] | None, typer.Option("--predictor", "-p", help="lane_keep, alpamayo or "
                                                        "module:Class (repeatable)")] = None,
    render: Annotated[bool, typer.Option(help="also render videos and report.html")] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run_id: RunIdOpt = None,
    address: AddressOpt = None,
    executor: ExecutorOpt = "ray",
    verbose: VerboseOpt = False,
) -> None:
    """Predict trajectories on original and edited clips of an earlier run (``--stages evaluate[,render]``)."""
    sets = list(set_ or [])
    if predictor:
        sets.append("evaluate.predictors=[" + ", ".join(predictor) + "]")
    cfg = _build_config(config, sets, output=output, stages="evaluate,render" if render else "evaluate",
                        run_id=run_id, from_run=from_run, address=address)
    _execute(cfg, executor, verbose)


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
    rig: Annotated[bool, typer.Option("--rig", help="also render the wide, tele and two cross cameras of the "
                                      "sample's rig (rig/, rig.json)")] = False,
) -> None:
    """Render the synthetic front-camera sample clip with its ground truth (``--rig``: the whole camera rig)."""
    from lanepipe.sample import write_sample
    from lanepipe.sample.rig import write_rig

    writer = write_rig if rig else write_sample
    path = writer(output, num_frames=frames, fps=fps, width=width, height=height, seed=seed)
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


@app.command("backends")
def backends_cmd() -> None:
    """List every backend per capability: device, weights, pip extra (installed?), default resources."""
    from lanepipe import registry

    for cap in registry.CAPABILITIES:
        typer.echo(f"{cap} ({registry.CONFIG_KEY[cap]}; user backends: module:Class or entry point group "
                   f"{registry.entry_point_group(cap)})")
        for name in registry.names(cap):
            b = registry.spec(cap, name)
            n = b.needs
            extra = f"{n.extra} ({'installed' if n.installed() else 'missing: ' + n.install_hint()})" if n.extra \
                else "-"
            typer.echo(f"  {name:<15} {n.device:<8} weights: {n.weights or 'none'}")
            typer.echo(f"  {'':<15} extra: {extra}; resources: {b.resources.describe()}"
                       + (f"; {n.note}" if n.note else ""))
            typer.echo(f"  {'':<15} {b.summary} [{b.target}]")


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
    allow_url_prefix: Annotated[list[str] | None, typer.Option(
        "--allow-url-prefix", help="local folder or gs://, s3:// prefix a request's `url` may name (repeatable; "
        "default: none, uploads only)")] = None,
    input_root: Annotated[list[str] | None, typer.Option("--input-root", hidden=True,
                                                         help="deprecated: same as --allow-url-prefix")] = None,
    min_replicas: Annotated[int, typer.Option(help="fewest replicas of each model deployment (models resident)")] = 1,
    max_replicas: Annotated[int, typer.Option(help="most replicas of each model deployment (autoscaling)")] = 1,
    replicas: Annotated[list[str] | None, typer.Option(
        "--replicas", help="STAGE=MIN:MAX (or STAGE=N): bounds of one model deployment (segment, edit, evaluate), "
        "overriding --min-replicas/--max-replicas for it (repeatable)")] = None,
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
    from lanepipe.serve.settings import parse_replicas

    cfg = _build_config(config, set_, address=address)
    try:
        per_stage = dict(parse_replicas(r) for r in replicas or [])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        settings = ServeSettings(output=output, token=token or None, max_queue=max_queue, workers=workers,
                                 max_upload_bytes=int(max_upload_mb * 2**20), predictors=cfg.evaluate.predictors,
                                 allow_url_prefixes=[*(allow_url_prefix or []), *(input_root or [])],
                                 min_replicas=min_replicas, max_replicas=max_replicas, stage_replicas=per_stage,
                                 fit_to_cluster=cfg.ray.fits_pools(),
                                 # only what was set: backend default resources (GPUs) still apply in the replicas
                                 base_config=cfg.model_dump(mode="json", exclude={"run_id", "from_run"},
                                                            exclude_unset=True))
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
    """Run the CLI on ``argv`` (default: the process's arguments) and return its exit status (:data:`EXIT_HELP`):
    2 for a :class:`~lanepipe.errors.LanepipeError` (printed), 1 when some items failed. ``jobs/`` call this with
    their verb and ``messages_to_stdout=True`` (a submitted job's log is its stdout)."""
    was = console.stderr
    console.stderr = not messages_to_stdout
    try:
        app(args=argv)
    except LanepipeError as e:
        console.stderr = True  # errors always on stderr, unwrapped
        console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return e.exit_code
    except OSError as e:  # storage unreachable, disk full …: the run could not start or finish
        console.stderr = True
        console.print(f"[red]error:[/red] {escape(f'{type(e).__name__}: {e}')}", soft_wrap=True)
        return EXIT_RUN_FAILED
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        console.stderr = was
    return 0


def main() -> None:
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
