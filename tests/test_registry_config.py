import pytest

from bench.config import ConfigError, RunConfig, from_dict, load_run_config, parse_override
from bench.registry import Registry


def test_registry_duplicate_and_unknown():
    r = Registry("widget")
    r.register("a", 1, colour="red")
    r.register("b", 2, aliases=("bee",))
    assert r.get("bee") == 2 and r.meta("a")["colour"] == "red" and r.names() == ["a", "b"]
    with pytest.raises(ValueError, match="already registered"):
        r.register("a", 3)
    with pytest.raises(ValueError, match="valid names: a, b"):
        r.get("c")


def test_presets_resolve_with_overrides():
    cfg = load_run_config("smoke", ["train.epochs=7", "data.dataset=synthetic-cells", "model.width=0.5"])
    assert (cfg.train.epochs, cfg.data.dataset, cfg.model.width) == (7, "synthetic-cells", 0.5)
    assert load_run_config("paper").model.width == 1.0 and load_run_config("paper").data.folds == 10


def test_unknown_key_and_wrong_type_name_key_and_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text("[train]\nepochz = 3\n")
    with pytest.raises(ConfigError, match=r"mine.toml: unknown key 'train.epochz'"):
        load_run_config(str(f))
    f.write_text("[train]\nepochs = 'three'\n")
    with pytest.raises(ConfigError, match=r"mine.toml: train.epochs must be int, got str"):
        load_run_config(str(f))
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        load_run_config("fast")
    with pytest.raises(ConfigError, match="must be bool"):
        from_dict(RunConfig, {"data": {"augment": 1}})


def test_override_values_are_toml_literals():
    assert parse_override("train.lr=1e-4") == (["train", "lr"], 1e-4)
    assert parse_override("data.dataset=ham10000") == (["data", "dataset"], "ham10000")
    assert parse_override("data.augment=false") == (["data", "augment"], False)
    with pytest.raises(ConfigError):
        parse_override("nonsense")
