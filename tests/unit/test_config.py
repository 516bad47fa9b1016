from __future__ import annotations

from pathlib import Path

import pytest

from cdp_spark.config import ConfigError, load_config
from tests.conftest import REPO_ROOT


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture()
def conf(tmp_path: Path) -> Path:
    root = tmp_path / "conf"
    write(root / "base" / "00.yaml",
          "identity:\n  person_sources: [contacts]\n  profile_attributes: [email_norm]\n"
          "spark:\n  shuffle_partitions: 64\n")
    write(root / "local" / "00.yaml", "spark:\n  master: local[2]\n  shuffle_partitions: 4\n")
    return root


def test_layers_merge_base_then_overlay_then_cli(conf):
    cfg = load_config(conf, "local", ["spark.shuffle_partitions=2", "storage.engine=rs"])
    assert (cfg.spark.master, cfg.spark.shuffle_partitions, cfg.storage.engine) == ("local[2]", 2, "rs")
    base_only = load_config(conf, None)
    assert (base_only.spark.master, base_only.spark.shuffle_partitions) == (None, 64)


def test_unknown_key_names_file_and_key(conf):
    write(conf / "local" / "10.yaml", "spark:\n  shuffle_partitons: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(conf, "local")
    expected = f"{conf / 'local' / '10.yaml'}: key 'spark.shuffle_partitons': Extra inputs are not permitted"
    assert expected in str(err.value)


def test_wrong_type_names_file_and_key(conf):
    write(conf / "local" / "10.yaml", "spark:\n  shuffle_partitions: many\n")
    expected = r"10\.yaml: key 'spark\.shuffle_partitions': Input should be a valid integer"
    with pytest.raises(ConfigError, match=expected):
        load_config(conf, "local")


def test_cli_override_is_named_when_wrong(conf):
    with pytest.raises(ConfigError, match=r"CLI override 'storage.engine=duckdb': key 'storage.engine'"):
        load_config(conf, "local", ["storage.engine=duckdb"])


def test_missing_overlay_is_a_clear_error(conf):
    with pytest.raises(ConfigError, match=r"environment overlay .*staging' does not exist \(known: \['local'\]\)"):
        load_config(conf, "staging")


def test_warehouse_url_must_not_carry_credentials(conf):
    with pytest.raises(ConfigError, match="must not carry credentials"):
        load_config(conf, "local", ["warehouse.url=jdbc:postgresql://h/db?user=a&password=b"])


@pytest.mark.parametrize("env", ["local", "cluster"])
def test_project_configs_parse(env):
    cfg = load_config(REPO_ROOT / "conf", env)
    assert set(cfg.sources) == {"crm_contacts", "ecommerce_customers", "loyalty_members", "orders", "order_items",
                                "products", "stores", "web_events"}
    assert cfg.resolve(cfg.storage.lake_root).endswith("/lake")


def test_paths_expand_from_data_dir(tmp_path):
    cfg = load_config(REPO_ROOT / "conf", "local", data_dir=str(tmp_path))
    assert (cfg.lake_root, cfg.landing_dir) == (f"{tmp_path}/lake", f"{tmp_path}/landing")


def test_the_configuration_reference_is_current_and_explains_every_key():
    from cdp_spark import config_reference
    from cdp_spark.config import CdpConfig

    text = config_reference.render()
    assert (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == text, (
        "docs/configuration.md is stale: run `cdp config-reference`")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row for row in rows if not row.rsplit("|", 2)[-2].strip()] == []
    for heading in ("## `identity.matching`", "## `identity.matching.snm_passes[]`", "## `sources.<name>`",
                    "## `scores.rfm.segments[]`", "## `predictions.clv`", "## `warehouse`"):
        assert heading in text
    assert len(rows) == len(_field_paths(CdpConfig, ""))


def _field_paths(model, path: str) -> list[str]:
    """Every key of the model tree by dotted path, computed independently of the renderer's walk."""
    import typing

    from pydantic import BaseModel

    found = []
    for name, field in model.model_fields.items():
        dotted = f"{path}.{name}".lstrip(".")
        found.append(dotted)
        todo = [(field.annotation, dotted)]
        while todo:
            annotation, at = todo.pop()
            args = typing.get_args(annotation)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found += _field_paths(annotation, at)
            elif typing.get_origin(annotation) is dict:
                todo.append((args[1], f"{at}.<name>"))
            elif typing.get_origin(annotation) is list:
                todo.append((args[0], f"{at}[]"))
            else:
                todo += [(arg, at) for arg in args if arg is not type(None)]
    return found
