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
) -> None:
    """Run the selected stages over the input clips (the synthetic sample clip when no --input)."""
    cfg = _build_config(config, set_, input=input, output=output, stages=stages, run_id=run_id,
                        from_run=from_run, address=address, edit=edit)
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


def main() -> None:
    try:
        app()
    except LanepipeError as e:
        console.print(f"[red]error:[/red] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
