import json
from pathlib import Path

import pytest

from genai_models.schema import SchemaError, load_schema, parse_schema

GOOD = {
    "target": "y",
    "columns": [
        {"name": "a", "type": "continuous", "min": 0, "max": 1},
        {"name": "b", "type": "categorical", "categories": ["x", "z"], "nullable": True},
        {"name": "y", "type": "boolean"},
    ],
}


def test_good_schema_parses_from_toml_and_json(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(GOOD))
    (tmp_path / "s.toml").write_text(
        'target = "y"\n[[columns]]\nname = "a"\ntype = "continuous"\nmin = 0\nmax = 1\n'
        '[[columns]]\nname = "b"\ntype = "categorical"\ncategories = ["x", "z"]\nnullable = true\n'
        '[[columns]]\nname = "y"\ntype = "boolean"\n'
    )
    from_json, schema = load_schema(tmp_path / "s.json"), load_schema(tmp_path / "s.toml")
    assert from_json.columns == schema.columns and from_json.target == schema.target == "y"
    assert [c.name for c in schema.features] == ["a", "b"] and schema.classes == ("false", "true")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["columns"][0].update(type="float"), "column 'a': type='float'; allowed:"),
        (lambda d: d["columns"][0].update(min=2), "column 'a': needs finite numbers min < max"),
        (lambda d: d["columns"][1].update(categories=["x"]), "at least two distinct categories"),
        (lambda d: d["columns"][0].update(colour="red"), "column 'a': unknown key(s) colour"),
        (lambda d: d.update(target="nope"), "target='nope' is not a declared column"),
        (lambda d: d.update(target="a"), "target 'a' must be categorical or boolean"),
        (lambda d: d["columns"].append({"name": "a", "type": "boolean"}), "column 'a': declared twice"),
        (lambda d: d["columns"][0].update(scale="sqrt"), "column 'a': scale='sqrt'; allowed: linear, log"),
        (lambda d: d["columns"][1].update(scale="log"), "scale, log_offset and bins are for continuous and integer"),
        (lambda d: d["columns"][0].update(log_offset=0.1), "column 'a': log_offset is for scale = \"log\" only"),
        (lambda d: d["columns"][0].update(scale="log", log_offset=0), "column 'a': log_offset=0; allowed: a number > 0"),
        (lambda d: d["columns"][0].update(bins=1), "column 'a': bins=1; allowed: 0 (none) or an integer from 2 to 100"),
        (lambda d: d["columns"][1].update(categories=["x", "None"]), "category 'None' would be read as a missing value"),
        (lambda d: d["columns"][1].update(categories=["x", " z"]), "category ' z' would be read as a missing value or never match"),
    ],
)
def test_bad_schemas_are_named(change, message):
    data = json.loads(json.dumps(GOOD))
    change(data)
    with pytest.raises(SchemaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_schema(data, "s.toml")


def test_unreadable_schema_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("target = \n")
    with pytest.raises(SchemaError, match="bad.toml: not valid TOML"):
        load_schema(bad)


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted([*ROOT.glob("genai_models/schemas/*.toml"),
                                         *ROOT.glob("benchmarks/tables/*.toml")]),
                         ids=lambda p: p.name)
def test_every_shipped_and_benchmark_schema_loads(path):
    schema = load_schema(path)
    assert schema.features and schema.bounds_source != "declared in the schema"
