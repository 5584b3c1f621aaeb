from __future__ import annotations

from pathlib import Path

import pytest

from lanepipe.config import RunConfig, apply_overrides, config_hash, load_config
from lanepipe.errors import ConfigError


def test_defaults_are_embedded_backends() -> None:
    cfg = RunConfig()
    assert cfg.segment.backend == "grid" and cfg.stages == ["segment"]
    assert cfg.input.target_fps == 8.0 and cfg.input.max_frames == 150


def test_yaml_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "run.yaml"
    p.write_text("segment:\n  backend: sam2\n  resources: {concurrency: 2}\ninput:\n  paths: a.mp4\n")
    cfg = load_config(p, ["segment.resources.batch_size=3", "input.max_frames=20", "segment.sam2.preset=tiny-random"])
    assert cfg.segment.backend == "sam2" and cfg.segment.resources.concurrency == 2
    assert cfg.segment.resources.batch_size == 3 and cfg.input.max_frames == 20
    assert cfg.input.paths == ["a.mp4"] and cfg.segment.sam2.preset == "tiny-random"


@pytest.mark.parametrize(("override", "needle"), [
    ("segment.backend=foo", "segment.backend"),
    ("input.target_fps=-1", "input.target_fps"),
    ("segment.nope=1", "segment.nope"),
    ("stages=segment,evaluate", "consecutive"),
    ("stages=", "at least one"),
])
def test_invalid_values_are_explained(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(None, [override])
    assert needle in str(ei.value)


def test_override_needs_equals() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["segment.backend"])


def test_stage_selections() -> None:
    assert load_config(None, ["stages=all"]).stages == ["segment", "edit", "evaluate", "render"]
    assert load_config(None, ["stages=segment,edit"]).stages == ["segment", "edit"]
    with pytest.raises(ConfigError, match=r"pipeline order \(segment,edit,evaluate,render\)"):
        load_config(None, ["stages=edit,segment"])
    with pytest.raises(ConfigError, match="consecutive"):
        load_config(None, ["stages=segment,evaluate"])
    assert load_config(None, ["stages=evaluate"]).stages == ["evaluate"]


def test_bad_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("segment: [unclosed\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="nothing at that path"):
        load_config(tmp_path / "none.yaml")


def test_config_hash_ignores_run_id_but_not_settings() -> None:
    a = RunConfig()
    assert config_hash(a) == config_hash(RunConfig(run_id="x", output="elsewhere"))
    assert config_hash(a) != config_hash(load_config(None, ["segment.backend=sam2"]))


def test_stage_custom_resources_and_runtime_env_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from lanepipe.actors.base import custom_resources

    monkeypatch.delenv("LANEPIPE_RAY_RESOURCES", raising=False)
    cfg = load_config(None, ["evaluate.resources.custom_resources={alpamayo: 1}",
                             "evaluate.resources.runtime_env={env_vars: {HF_HUB_OFFLINE: '1'}}"])
    assert custom_resources(cfg, "evaluate") == {"alpamayo": 1.0}
    assert custom_resources(cfg, "segment") == {}
    assert cfg.evaluate.resources.runtime_env == {"env_vars": {"HF_HUB_OFFLINE": "1"}}


def test_read_yaml_mapping_names_the_file_and_the_problem(tmp_path) -> None:
    from lanepipe.config import read_yaml_mapping
    from lanepipe.errors import ConfigError

    good = tmp_path / "good.yaml"
    good.write_text("rank: 8\nlr: 0.001\n")
    assert read_yaml_mapping(good) == {"rank": 8, "lr": 0.001}
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml_mapping(tmp_path / "empty.yaml") == {}
    for name, text, found in (("missing.yaml", None, "found nothing"), ("bad.yaml", "a: [1,", "parse error"),
                              ("list.yaml", "- 1\n- 2\n", "found list")):
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(ConfigError, match=found) as info:
            read_yaml_mapping(path)
        assert name in str(info.value)


def test_edit_preset_is_one_rule_and_the_manifest_records_what_runs() -> None:
    """edit.preset=tiny-random switches edit.generative and verify.qwen_vl the same way, once, in the config."""
    tiny = load_config(None, ["edit.preset=tiny-random", "verify.backend=qwen_vl", "verify.qwen_vl.seed=3"])
    assert tiny.verify.qwen_vl.preset == "tiny-random" and tiny.verify.qwen_vl.device == "cpu"
    assert tiny.edit.generative.preset == "tiny-random" and tiny.verify.qwen_vl.seed == 3
    assert RunConfig.model_validate_json(tiny.model_dump_json()) == tiny  # as a Ray actor rebuilds it
    # a conflicting preset is refused (before, the manifest recorded 'none' while the tiny judge ran)
    for section in ("verify.qwen_vl", "edit.generative"):
        with pytest.raises(ConfigError, match=f"{section}.*drop one of the two"):
            load_config(None, ["edit.preset=tiny-random", f"{section}.preset=none"])
    assert load_config(None, ["verify.qwen_vl.preset=none"]).verify.qwen_vl.preset == "none"
