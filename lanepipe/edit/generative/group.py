"""A group of Ray actors that edits one clip together (``edit.generative.parallel``, :mod:`.parallel`).

:class:`ParallelGroup` starts ``cfg x ulysses`` actors (one GPU each on CUDA; ``parallel.worker_cpus`` CPUs each
with gloo on CPU), has rank 0 open a TCP store on its node (address and a free port), joins every rank to one
``torch.distributed`` process group through it, and builds on every rank a :class:`GenerativePainter` whose video
transformer :func:`.parallel.install` has changed. Each call runs on every rank at once (they meet in the
collectives) and returns rank 0's result. The group's models stay loaded until :meth:`close` (or until the
group is garbage-collected: Ray ends actors whose handles are gone), so a Serve replica or edit actor that holds
the painter pays the loads once.

:class:`~lanepipe.edit.generative.painter.GenerativePainter` uses a group on its own: with ``parallel`` set, its
:meth:`~GenerativePainter.propagate` (the QA loop's ``finish``, :meth:`~GenerativePainter.paint`) runs on the
group and the calling process keeps FLUX only. Ray is imported when a group starts, never at import.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from lanepipe.edit.config import GenerativeConfig
from lanepipe.edit.generative import parallel
from lanepipe.edit.procedural import PaintResult
from lanepipe.errors import BackendUnavailableError, ConfigError, LanepipeError
from lanepipe.lanes.instructions import LaneSpec
from lanepipe.types import Clip, RoadMasks


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def resolve_backend(cfg: GenerativeConfig, on_cuda: bool) -> str:
    """``parallel.backend`` as it runs: ``auto`` → nccl on CUDA, gloo on CPU.

    Raises:
        ConfigError: nccl asked for ranks without a GPU.
    """
    backend = cfg.parallel.backend
    if backend == "auto":
        return "nccl" if on_cuda else "gloo"
    if backend == "nccl" and not on_cuda:
        raise ConfigError("edit.generative.parallel.backend=nccl needs a GPU per rank, but the ranks run on CPU "
                          "(edit.generative.video_device or no GPUs in the cluster): use gloo or auto")
    return backend


class ParallelRank:
    """One rank of a :class:`ParallelGroup` (runs inside a Ray actor; ``on_cuda``: the actor holds one GPU;
    ``make_painter``: ``cfg -> GenerativePainter``)."""

    def __init__(self, cfg: GenerativeConfig, rank: int, on_cuda: bool,
                 make_painter: Callable[[GenerativeConfig], Any]) -> None:
        device = "cuda:0" if on_cuda else "cpu"  # Ray shows the actor its own GPU only, as device 0
        self.cfg = cfg.model_copy(update={"flux_device": device, "video_device": device})
        self.rank, self.on_cuda = rank, on_cuda
        self.make_painter = make_painter
        self.painter: Any = None

    def address(self) -> tuple[str, int]:
        """Rank 0: where the other ranks meet it (this node's IP, a free port)."""
        import ray

        return str(ray.util.get_node_ip_address()), _free_port()  # type: ignore[no-untyped-call]

    def join(self, host: str, port: int) -> dict[str, Any]:
        """Join the process group (all ranks call this at once), split it into the CFG / Ulysses groups."""
        import torch
        import torch.distributed as dist

        par = self.cfg.parallel
        backend = resolve_backend(self.cfg, self.on_cuda)
        if self.on_cuda:
            torch.cuda.set_device(0)
        dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=self.rank, world_size=par.world,
                                timeout=timedelta(seconds=par.timeout_s))
        mesh = parallel.build_mesh(par.cfg, par.ulysses, backend)
        parallel.set_mesh(mesh)
        return mesh.describe()

    def setup(self, flux: bool = False) -> None:
        """Load the video pipeline on this rank (its transformer gets :func:`.parallel.install`), and FLUX too
        with ``flux`` (otherwise FLUX loads only if :meth:`paint` runs here)."""
        if self.painter is None:
            self.painter = self.make_painter(self.cfg)
        if flux:
            self.painter.setup()
        else:
            self.painter.setup_video()

    def propagate(self, clip: Clip, masks: RoadMasks, first_frame: Any, prompt: str, seed: int | None,
                  spec: LaneSpec | None) -> PaintResult | None:
        self.setup()
        res = self.painter.propagate(clip, masks, first_frame, prompt, seed=seed, spec=spec)
        return res if self.rank == 0 else None

    def window(self, frames: Any, masks: Any, condition: Any, prompt: str, seed: int,
               output_type: str = "latent") -> Any:
        """One window (:meth:`GenerativePainter.propagate_window`): rank 0's output as a numpy array."""
        self.setup()
        out, _ = self.painter.propagate_window(frames, masks, condition, prompt, seed, output_type=output_type)
        if self.rank != 0:
            return None
        return out.float().cpu().numpy() if output_type == "latent" else out

    def paint(self, clip: Clip, masks: RoadMasks, spec: LaneSpec) -> PaintResult | None:
        """The whole clip (FLUX first frame on every rank, same seed, then the shared propagation)."""
        self.setup()
        res = self.painter.paint(clip, masks, spec)
        return res if self.rank == 0 else None

    def close(self) -> None:
        import torch.distributed as dist

        parallel.set_mesh(None)
        if dist.is_initialized():
            dist.destroy_process_group()


class ParallelGroup:
    """``cfg.parallel.world`` Ray actors sharing one clip's CogVideoX propagation (see the module docstring).

    Args:
        cfg: the painter settings; ``cfg.parallel`` says how many ranks and how they split the work.
        make_painter: ``cfg -> GenerativePainter`` run on each rank (picklable: Ray sends it to the actors).

    Raises:
        ConfigError: ``parallel`` asks for one rank, or nccl without GPUs.
        BackendUnavailableError: Ray is missing, or the ranks could not start or meet.
    """

    def __init__(self, cfg: GenerativeConfig, make_painter: Callable[[GenerativeConfig], Any]) -> None:
        par = cfg.parallel
        if par.world < 2:
            raise ConfigError("edit.generative.parallel: a group needs cfg x ulysses >= 2 ranks, got "
                              f"cfg={par.cfg} x ulysses={par.ulysses}")
        try:
            import ray
        except ImportError as exc:
            raise BackendUnavailableError(f"edit.generative.parallel needs Ray ({exc})") from exc
        if not ray.is_initialized():
            ray.init()
        self.cfg = cfg
        gpus = float(ray.cluster_resources().get("GPU", 0.0))  # type: ignore[no-untyped-call]
        self.on_cuda = self._wants_gpus(cfg, gpus)
        resolve_backend(cfg, self.on_cuda)  # refuse nccl on CPU before starting anything
        options: dict[str, Any] = {"num_cpus": par.worker_cpus, "num_gpus": 1 if self.on_cuda else 0}
        if not self.on_cuda:  # CPU ranks: no GPU visible, whatever the node has
            options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": ""}}
        actor: Any = ray.remote(ParallelRank)
        self.ranks: list[Any] = [actor.options(**options).remote(cfg, r, self.on_cuda, make_painter)
                                 for r in range(par.world)]
        try:
            host, port = ray.get(self.ranks[0].address.remote())
            self.meshes: list[dict[str, Any]] = ray.get([a.join.remote(host, port) for a in self.ranks],
                                                        timeout=par.timeout_s)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            self.close(graceful=False)
            raise BackendUnavailableError(f"edit.generative.parallel: the {par.world} ranks could not form a "
                                          f"process group: {exc}") from exc

    @staticmethod
    def _wants_gpus(cfg: GenerativeConfig, cluster_gpus: float) -> bool:
        """GPU ranks when the video device names CUDA, or is ``auto`` and the cluster has a GPU per rank."""
        dev = cfg.video_device
        if dev == "cpu" or cfg.parallel.backend == "gloo":
            return False
        return dev.startswith("cuda") or cluster_gpus >= cfg.parallel.world

    @property
    def closed(self) -> bool:
        return not self.ranks

    def _all(self, method: str, *args: Any) -> Any:
        """Call ``method`` on every rank at once; rank 0's return value. The first rank that fails closes the group
        (its peers would otherwise wait in a collective until ``timeout_s``) and its error is raised."""
        import ray

        if self.closed:
            raise BackendUnavailableError("edit.generative.parallel: this group was closed (after an error or "
                                          "close()); the painter starts a new one on its next call")
        refs = [getattr(a, method).remote(*args) for a in self.ranks]
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except ray.exceptions.RayError as exc:
                self.close(graceful=False)
                cause = getattr(exc, "cause", None)
                if isinstance(cause, LanepipeError):  # the rank's own error, e.g. ConfigError naming the setting
                    raise cause from None
                raise BackendUnavailableError(f"edit.generative.parallel: a rank failed in {method}: {exc}") from exc
        return ray.get(refs[0])

    def setup(self, flux: bool = False) -> None:
        """Load CogVideoX on every rank (and FLUX with ``flux``, for :meth:`paint`); otherwise the first call
        does."""
        self._all("setup", flux)

    def propagate(self, clip: Clip, masks: RoadMasks, first_frame: Any, prompt: str, seed: int | None = None,
                  spec: LaneSpec | None = None) -> PaintResult:
        """:meth:`GenerativePainter.propagate` on the group; rank 0's result, with ``parallel`` diagnostics."""
        res: PaintResult = self._all("propagate", clip, masks, first_frame, prompt, seed, spec)
        return self._mark(res)

    def window(self, frames: Any, masks: Any, condition: Any, prompt: str, seed: int,
               output_type: str = "latent") -> Any:
        """One CogVideoX window on the group (:meth:`GenerativePainter.propagate_window` arguments at model size):
        the final latents ``(1, F_lat, C, h/8, w/8)`` float32 numpy (``"latent"``) or the frames (``"np"``)."""
        return self._all("window", frames, masks, condition, prompt, seed, output_type)

    def paint(self, clip: Clip, masks: RoadMasks, spec: LaneSpec) -> PaintResult:
        """:meth:`GenerativePainter.paint` on the group; rank 0's result."""
        return self._mark(self._all("paint", clip, masks, spec))

    def _mark(self, res: PaintResult) -> PaintResult:
        res.diagnostics["parallel"] = {**(res.diagnostics.get("parallel") or {}), "ranks": self.meshes,
                                       "on_cuda": self.on_cuda}
        return res

    def close(self, graceful: bool = True) -> None:
        """End the actors; ``graceful``: let them leave the process group first (not after an error: a rank
        still waiting in a collective would not answer)."""
        import ray

        ranks, self.ranks = getattr(self, "ranks", []), []
        if graceful:
            with contextlib.suppress(ray.exceptions.RayError, TimeoutError):  # a dead rank has nothing to leave
                ray.get([a.close.remote() for a in ranks], timeout=60)
        for a in ranks:
            ray.kill(a)
