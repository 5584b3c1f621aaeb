"""One backend registry for segmenters, painters, verifiers and predictors (lanepipe.registry)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lanepipe import registry
from lanepipe.errors import BackendUnavailableError, ConfigError


def test_importing_the_registry_and_config_imports_no_backend() -> None:
    code = ("import sys, lanepipe.registry, lanepipe.config; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'cv2', 'diffusers', 'transformers') "
            "or m in ('lanepipe.segment.grid', 'lanepipe.segment.sam2', 'lanepipe.edit.procedural', "
            "'lanepipe.edit.generative', 'lanepipe.verify.lane_detector', 'lanepipe.verify.qwen_vl', "
            "'lanepipe.predict.lane_keep', 'lanepipe.predict.alpamayo')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_every_builtin_names_an_importable_class_of_its_capability() -> None:
    for cap, specs in registry.BUILTINS.items():
        for name, s in specs.items():
            assert s.capability == cap and s.name == name and ":" in s.target
            cls = s.load()
            assert isinstance(cls.name, str) and (cls.name == name or cap == "predictor")  # alpamayo_r1
            assert all(callable(getattr(cls, m, None)) for m in registry.CONTRACT_METHODS[cap])
    assert registry.default_resources("painter", "flux_cogvideox").num_gpus == 1
    assert registry.default_resources("predictor", "alpamayo").custom_resources == {"alpamayo": 1.0}
    sam2 = registry.default_resources("segmenter", "sam2")
    assert sam2.gpu_if_available and 0 < sam2.num_gpus < 1


def test_unknown_names_list_the_choices_and_user_classes_are_accepted() -> None:
    with pytest.raises(ConfigError, match=r"edit.backend: unknown backend 'flux'.*procedural, flux_cogvideox"):
        registry.spec("painter", "flux")
    with pytest.raises(ConfigError, match=r"lanepipe\.verifiers"):
        registry.spec("verifier", "qwen")
    with pytest.raises(ConfigError, match="capability"):
        registry.spec("painters", "procedural")  # type: ignore[arg-type]
    user = registry.spec("painter", "user_backends:StripePainter")
    assert not user.builtin and user.resources.num_gpus == 0
    painter = registry.create("painter", "user_backends:StripePainter", {"width_px": 6})
    assert painter.cfg.width_px == 6
    with pytest.raises(ConfigError, match="invalid settings"):
        registry.create("painter", "user_backends:StripePainter", {"width_px": "wide"})
    with pytest.raises(ConfigError, match=r"not a painter.*prepare"):
        registry.create("painter", "user_backends:NotAPainter")
    with pytest.raises(ConfigError, match="cannot import"):
        registry.create("verifier", "no_such_module_xyz:Verifier")


def test_a_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    s = registry.BackendSpec("segmenter", "fake", "lanepipe_fake_mod_for_test:Seg", None, "",
                             registry.Needs("gpu", None, "sam2", ("lanepipe_fake_dep",)))
    assert not s.needs.installed() and s.needs.install_hint() == "pip install 'lanepipe[sam2]'"
    monkeypatch.setitem(sys.modules, "lanepipe_fake_mod_for_test", None)  # import fails like a missing dependency
    err = ImportError("No module named 'torch'", name="torch")

    def boom(name: str) -> None:
        raise err

    monkeypatch.setattr(registry.plugins.importlib, "import_module", boom)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'lanepipe\[sam2\]'"):
        s.load()


def test_create_from_a_config_section_takes_its_settings() -> None:
    from lanepipe.config import load_config
    from lanepipe.segment import build_segmenter

    cfg = load_config(None, ["segment.grid.work_width=160", "edit.backend=user_backends:StripePainter",
                             "edit.options.width_px=8", "verify.lane_detector.max_frames=3"])
    assert build_segmenter(cfg.segment).cfg.work_width == 160
    assert registry.create_from("painter", cfg.edit).cfg.width_px == 8
    assert registry.create_from("verifier", cfg.verify).cfg.max_frames == 3
    predictor = registry.create("predictor", "lane_keep", {"frames_used": 2})
    assert predictor.cfg.frames_used == 2


def test_one_qa_loop_drives_any_painter_with_any_verifier() -> None:
    import numpy as np

    from lanepipe.edit.base import run_qa
    from lanepipe.edit.config import QAConfig
    from lanepipe.lanes.instructions import parse_instruction
    from lanepipe.types import Clip, RoadMasks
    from lanepipe.verify.config import EditCheckConfig

    frames = np.full((3, 32, 48, 3), 90, np.uint8)
    clip = Clip(name="c", source="mem", frames=frames, fps=8.0, timestamps=np.arange(3) / 8.0, source_fps=8.0,
                source_indices=np.arange(3, dtype=np.int64))
    masks = RoadMasks(masks=np.ones((3, 32, 48), bool), backend="test")
    painter = registry.create("painter", "user_backends:StripePainter", {"width_px": 2})
    verifier = registry.create("verifier", "user_backends:PassOnSecond")
    # the loop's contract alone: the checks against the original (tests/verify/test_edit_checks.py) are off for this
    # toy stripe on a flat grey picture
    loop_only = QAConfig(max_iterations=5, checks=EditCheckConfig(enabled=False))
    out = run_qa(painter, verifier, clip, masks, parse_instruction("single white solid"), loop_only)
    assert [it["verdict"] for it in out.iterations] == ["FAIL", "PASS"] and out.passed
    assert [it["width_px"] for it in out.iterations] == [2, 4] and out.result.diagnostics == {"stripe_px": 4}
    skipped = run_qa(painter, verifier, clip, masks, parse_instruction("single white solid"),
                     QAConfig(enabled=False))
    assert skipped.iterations == [{"attempt": 0, "verdict": "SKIPPED", "reasons": [], "width_px": 2}]


def test_default_resources_fill_what_the_config_left_unset() -> None:
    from lanepipe.config import load_config

    cfg = load_config(None, ["edit.backend=flux_cogvideox", "segment.backend=sam2", "segment.resources.num_cpus=2"])
    gen = registry.default_resources("painter", "flux_cogvideox").under(cfg.edit.resources)
    assert (gen.num_cpus, gen.num_gpus, gen.concurrency) == (1.0, 1.0, 1)
    sam = registry.default_resources("segmenter", "sam2")
    assert (sam.under(cfg.segment.resources).num_gpus, sam.under(cfg.segment.resources).num_cpus) == (0.5, 2.0)
    assert sam.under(cfg.segment.resources, gpus_available=False).num_gpus == 0.0
    mine = load_config(None, ["edit.backend=flux_cogvideox", "edit.resources.num_gpus=0.5"])
    assert registry.default_resources("painter", "flux_cogvideox").under(mine.edit.resources).num_gpus == 0.5
    alp = registry.default_resources("predictor", "alpamayo").under(cfg.evaluate.resources)
    assert alp.custom_resources == {"alpamayo": 1.0}


def test_entry_point_backends_for_every_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    eps = [metadata.EntryPoint("stripe", "user_backends:StripePainter", "lanepipe.painters"),
           metadata.EntryPoint("second", "user_backends:PassOnSecond", "lanepipe.verifiers")]
    monkeypatch.setattr(registry.plugins.metadata, "entry_points",
                        lambda group: [ep for ep in eps if ep.group == group])
    assert registry.names("painter") == ["procedural", "flux_cogvideox", "stripe"]
    assert registry.create("painter", "stripe", {"width_px": 3}).cfg.width_px == 3
    assert registry.create("verifier", "second").name == "pass_on_second"
    from lanepipe.config import load_config

    assert load_config(None, ["edit.backend=stripe", "verify.backend=second"]).edit.backend == "stripe"
    with pytest.raises(ConfigError, match=r"procedural, flux_cogvideox, stripe"):
        load_config(None, ["edit.backend=stripes"])
