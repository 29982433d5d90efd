from pathlib import Path

import pytest
import yaml

from im2im_engine import ConfigError, load_config
from im2im_engine.config import dump_config, preset_dir
from im2im_engine.networks import check_sizes

PRESETS = ["semantic_2d", "semantic_3d", "instance_2d", "instance_3d", "denoise_2d"]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name):
    cfg = load_config(preset_dir() / f"{name}.yaml")
    check_sizes(cfg)
    again = load_config(yaml.safe_load(dump_config(cfg)))
    assert again == cfg
    assert dump_config(again) == dump_config(cfg)


def test_round_trip_through_file(tmp_path: Path):
    cfg = load_config(None, {"training": {"steps": 7}, "model": {"name": "SegResNet", "params": {"init_filters": 8}}})
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


def test_bad_model_name_names_key_and_choices():
    with pytest.raises(ConfigError) as e:
        load_config({"model": {"name": "Foo"}})
    assert str(e.value) == "model.name: must be one of UNet, BasicUNet, AttentionUnet, SegResNet, DynUNet, CAREUNet (got 'Foo')"


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        ({"training": {"steps": -1}}, "training.steps"),
        ({"training": {"lr": "fast"}}, "training.lr"),
        ({"inference": {"mode": "mean"}}, "inference.mode: must be one of gaussian, constant (got 'mean')"),
        ({"uncertainty": {"method": "x"}}, "uncertainty.method: must be one of entropy, margin"),
        ({"data": {"spatial_dims": 4}}, "data.spatial_dims: must be one of 2, 3 (got 4)"),
        ({"data": {"patch_size": [64, 64, 64]}}, "data.patch_size: needs 2 sizes"),
        ({"task": {"kind": "regression"}, "uncertainty": {"method": "bald"}}, "uncertainty.method"),
        ({"task": {"kind": "regression", "loss": "ce"}}, "task.loss: must be one of l1, mse"),
        ({"model": {"params": {"channelz": [8]}}}, "model.params.channelz: not a parameter of UNet"),
    ],
)
def test_bad_values_name_the_key(data, expect):
    with pytest.raises(ConfigError) as e:
        load_config(data)
    assert expect in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_key_lists_allowed():
    with pytest.raises(ConfigError, match=r"data\.foo: unknown key \(allowed: spatial_dims, in_channels"):
        load_config({"data": {"foo": 1}})


def test_loop_section_is_not_engine_config():
    with pytest.raises(ConfigError, match="loop"):
        load_config({"loop": {"rounds": 3}})


def test_invalid_yaml_and_missing_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n  model: {")
    with pytest.raises(ConfigError, match="invalid YAML") as e:
        load_config(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)


def test_overrides_deep_merge():
    cfg = load_config(preset_dir() / "semantic_2d.yaml", {"training": {"steps": 5}})
    assert cfg.training.steps == 5 and cfg.training.batch_size == 4


def test_indivisible_patch_is_reported():
    cfg = load_config({"data": {"patch_size": [30, 32]}})
    with pytest.raises(ConfigError, match=r"data\.patch_size: every size must be divisible"):
        check_sizes(cfg)
