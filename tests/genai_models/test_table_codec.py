"""The schema-driven codec: only the schema decides; bad values are named precisely."""

import numpy as np
import pandas as pd
import pytest

from genai_models.schema import parse_schema
from genai_models.table_codec import DataError, TableCodec

SCHEMA = parse_schema({
    "target": "outcome",
    "columns": [
        {"name": "age", "type": "integer", "min": 18, "max": 90},
        {"name": "income", "type": "continuous", "min": 0, "max": 100000, "nullable": True},
        {"name": "smoker", "type": "boolean"},
        {"name": "region", "type": "categorical", "categories": ["north", "south", "east"]},
        {"name": "outcome", "type": "categorical", "categories": ["healthy", "sick"]},
    ],
}, "test.toml")
CODEC = TableCodec(SCHEMA)


def _frame(**change):
    data = {"age": ["34", "95", "18"], "income": ["52000.5", "", "-5"],
            "smoker": ["yes", "No", "TRUE"], "region": ["north", "east", "south"],
            "outcome": ["sick", "healthy", "sick"]}
    data.update(change)
    return pd.DataFrame(data)


def test_width_and_encoding_follow_the_schema():
    assert CODEC.width == 1 + 2 + 1 + 3  # income carries a missing indicator
    x, y = CODEC.encode(_frame(), "f.csv")
    assert x.shape == (3, 7) and y.tolist() == [1, 0, 1]
    assert x.min() >= 0 and x.max() <= 1
    assert x[1, 0] == 1.0  # age 95 clipped to the declared max
    assert x[1, 2] == 1.0 and x[1, 1] == 0.0  # missing income: indicator set
    assert x[2, 1] == 0.0  # income -5 clipped to 0


def test_decode_restores_columns_order_dtypes_and_categories():
    x, y = CODEC.encode(_frame(), "f.csv")
    out = CODEC.decode(x, y)
    assert list(out.columns) == ["age", "income", "smoker", "region", "outcome"]
    assert str(out.age.dtype) == "Int64" and out.age.tolist() == [34, 90, 18]
    assert out.income.isna().tolist() == [False, True, False]
    assert out.smoker.tolist() == [True, False, True]
    assert list(out.region.cat.categories) == ["north", "south", "east"]
    assert out.region.tolist() == ["north", "east", "south"]
    assert out.outcome.tolist() == ["sick", "healthy", "sick"]
    again_x, again_y = CODEC.encode(out.astype(str).replace("<NA>", ""), "round trip")
    assert np.allclose(again_x, x, atol=1e-6) and (again_y == y).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"region": ["north", "west", "south"]},
         "f.csv: row 2 (line 3), column 'region': unknown category (allowed: north, south, east): 'west'"),
        ({"age": ["34", "old", "18"]}, "row 2 (line 3), column 'age': not a number: 'old'"),
        ({"smoker": ["yes", "maybe", "no"]}, "column 'smoker': not a boolean: 'maybe'"),
        ({"age": ["34", "", "18"]}, "column 'age': missing value (column is not nullable)"),
        ({"outcome": ["sick", "dead", "sick"]}, "column 'outcome': unknown category"),
    ],
)
def test_bad_values_name_file_row_column_and_value(change, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CODEC.encode(_frame(**change), "f.csv")


def test_every_bad_cell_of_a_file_is_named_in_one_message():
    with pytest.raises(DataError) as caught:
        CODEC.encode(_frame(age=["34", "42.7", "x"], smoker=["maybe", "no", "yes"]), "f.csv")
    message = str(caught.value)
    assert message.startswith("f.csv: 3 bad cells: row 1 (line 2), column 'smoker'")
    assert "row 2 (line 3), column 'age': not an integer: '42.7'" in message
    assert "row 3 (line 4), column 'age': not a number: 'x'" in message and "\n" not in message


def test_a_file_full_of_bad_cells_names_twenty_and_counts_the_rest():
    import pandas as pd

    frame = pd.concat([_frame(age=["x", "y", "z"])] * 20, ignore_index=True)
    with pytest.raises(DataError, match=r"60 bad cells: .*; and 40 more$"):
        CODEC.encode(frame, "f.csv")


def test_missing_and_extra_columns_are_named():
    with pytest.raises(DataError, match="missing column\\(s\\) 'region'"):
        CODEC.encode(_frame().drop(columns="region"), "f.csv")
    with pytest.raises(DataError, match="column\\(s\\) 'zip' are not in the schema"):
        CODEC.encode(_frame(zip=["1", "2", "3"]), "f.csv")


def test_a_log_scaled_number_spreads_its_low_values_and_decodes_back():
    schema = parse_schema({"target": "y", "columns": [
        {"name": "fare", "type": "continuous", "min": 0, "max": 520, "scale": "log"},
        {"name": "y", "type": "categorical", "categories": ["a", "b"]},
    ]}, "log.toml")
    codec = TableCodec(schema)
    fares = ["0", "7.25", "30", "512.3", "600"]
    x, y = codec.encode(pd.DataFrame({"fare": fares, "y": ["a"] * 5}), "f.csv")
    assert x[0, 0] == 0.0 and x[4, 0] == 1.0  # bounds map to 0 and 1 (600 clipped)
    assert x[1, 0] > 0.3  # a £7 fare sits a third of the way up, not at 1.4%
    assert np.allclose(x[:, 0], np.log1p([0, 7.25, 30, 512.3, 520]) / np.log1p(520), atol=1e-6)
    back = codec.decode(x, y).fare.to_numpy()
    assert np.allclose(back, [0, 7.25, 30, 512.3, 520], rtol=1e-5)


def test_a_log_offset_makes_the_log_scale_fit_a_number_measured_in_hundredths():
    def unit(offset: dict) -> np.ndarray:
        schema = parse_schema({"target": "y", "columns": [
            {"name": "c", "type": "continuous", "min": 0, "max": 0.4, "scale": "log"} | offset,
            {"name": "y", "type": "categorical", "categories": ["a", "b"]},
        ]}, "log.toml")
        codec = TableCodec(schema)
        x, y = codec.encode(pd.DataFrame({"c": ["0", "0.004", "0.04", "0.4"], "y": ["a"] * 4}),
                            "f.csv")
        assert np.allclose(codec.decode(x, y).c.to_numpy(), [0, 0.004, 0.04, 0.4], atol=1e-7)
        return x[:, 0]
    assert unit({})[1] < 0.02  # in units of 1 the log of a 0.004 hardly differs from linear
    spread = unit({"log_offset": 0.004})
    assert np.allclose(spread, np.log1p([0, 1, 10, 100]) / np.log1p(100))
    assert spread[1] > 0.15


def test_binned_numbers_are_a_bin_and_an_offset_and_small_integers_are_exact():
    schema = parse_schema({"target": "y", "columns": [
        {"name": "age", "type": "continuous", "min": 0, "max": 80, "bins": 8},
        {"name": "kids", "type": "integer", "min": 0, "max": 3, "bins": 10, "nullable": True},
        {"name": "y", "type": "categorical", "categories": ["a", "b"]},
    ]}, "bins.toml")
    codec = TableCodec(schema)
    assert codec.width == (8 + 1) + (4 + 1)  # age: 8 bins and an offset; kids: 4 values, NA
    heads = codec.heads()
    assert heads.categorical == ((0, 8), (9, 4)) and heads.numeric == (8,)
    frame = pd.DataFrame({"age": ["0", "25", "80"], "kids": ["2", "", "0"], "y": ["a", "b", "a"]})
    x, y = codec.encode(frame, "f.csv")
    assert x[1, :8].tolist() == [0, 0, 1, 0, 0, 0, 0, 0] and abs(x[1, 8] - 0.5) < 1e-6
    assert x[2, 7] == 1 and x[2, 8] == 1.0  # the top of the range: last bin, offset 1
    assert x[0, 9:13].tolist() == [0, 0, 1, 0] and x[1, 13] == 1.0  # kids=2; kids missing
    back = codec.decode(x, y)
    assert np.allclose(back.age.to_numpy(float), [0, 25, 80], atol=1e-4)
    assert back.kids.tolist()[0] == 2 and back.kids.isna().tolist() == [False, True, False]


def test_a_boolean_target_is_false_0_and_true_1_both_ways():
    schema = parse_schema({"target": "smoker", "columns": [
        {"name": "age", "type": "integer", "min": 18, "max": 90},
        {"name": "smoker", "type": "boolean"}]}, "b.toml")
    codec = TableCodec(schema)
    x, y = codec.encode(pd.DataFrame({"age": ["30", "40", "50"],
                                      "smoker": ["yes", "false", "TRUE"]}), "b.csv")
    assert y.tolist() == [1, 0, 1]
    assert codec.decode(x, y)["smoker"].tolist() == [True, False, True]
    with pytest.raises(DataError, match=r"column 'smoker': unknown category .*'maybe'"):
        codec.encode(pd.DataFrame({"age": ["30"], "smoker": ["maybe"]}), "b.csv")
