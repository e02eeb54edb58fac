from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from shipyard.domain.profiles import ColumnProfile, ColumnSchema, Histogram, TableProfile
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.services.profiling import profile_table, read_schema
from shipyard.services.reports import render_profile_html, svg_bars, svg_hbars

FORMATS = ["parquet", "csv", "jsonl", "arrow"]
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl", "arrow": "arrow"}


def write(table: pa.Table, path: Path, fmt: str) -> Path:
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pacsv.write_csv(table, path)
    elif fmt == "jsonl":
        lines = (json.dumps(row) for row in table.to_pylist())
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    else:
        feather.write_feather(table, path)
    return path


def sample_table(n: int = 2000, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0, 3.0, size=n)
    ints = rng.integers(0, 100, size=n)
    letters = rng.choice(list("abcde"), p=[0.4, 0.3, 0.15, 0.1, 0.05], size=n)
    flags = rng.random(n) < 0.3
    missing = np.arange(n) % 50 == 0
    return pa.table(
        {
            "x": pa.array(x, mask=missing),
            "n": pa.array(ints, mask=np.arange(n) % 40 == 1),
            "s": pa.array(letters.tolist(), mask=np.arange(n) % 25 == 2),
            "b": pa.array(flags, mask=np.arange(n) % 30 == 3),
        }
    )


def finite_values(column: pa.ChunkedArray) -> np.ndarray:
    values = np.array([v for v in column.to_pylist() if v is not None], dtype=float)
    return values[np.isfinite(values)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_profile_matches_numpy(tmp_path: Path, fmt: str) -> None:
    table = sample_table()
    path = write(table, tmp_path / f"t.{EXTENSIONS[fmt]}", fmt)

    profile = profile_table([path], fmt)

    assert profile.rows == table.num_rows
    assert [c.name for c in profile.columns] == ["x", "n", "s", "b"]
    assert [c.kind for c in profile.columns] == ["numeric", "numeric", "categorical", "boolean"]
    for name in ("x", "n"):
        column, values = profile.column(name), finite_values(table[name])
        assert column.count == table.num_rows
        assert column.nulls == table[name].null_count
        assert column.na_share == pytest.approx(table[name].null_count / table.num_rows)
        assert column.distinct == len(np.unique(values))
        assert not column.distinct_approx
        assert column.min == pytest.approx(values.min(), rel=1e-12)
        assert column.max == pytest.approx(values.max(), rel=1e-12)
        assert column.mean == pytest.approx(values.mean(), rel=1e-9)
        assert column.std == pytest.approx(values.std(ddof=1), rel=1e-9)
        for key, q in zip(
            ["p01", "p05", "p25", "p50", "p75", "p95", "p99"],
            [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99],
            strict=True,
        ):
            assert column.quantiles[key] == pytest.approx(np.quantile(values, q), rel=1e-9)
        assert column.histogram is not None
        assert column.histogram.total == len(values)
        counts, edges = np.histogram(values, bins=20, range=(values.min(), values.max()))
        assert column.histogram.edges == pytest.approx(edges.tolist(), rel=1e-12)
        assert list(column.histogram.counts) == counts.tolist()
        assert column.top == ()
    assert isinstance(profile.column("n").min, int)

    letters = profile.column("s")
    expected = Counter(v for v in table["s"].to_pylist() if v is not None).most_common()
    assert letters.top == tuple(expected)
    assert letters.distinct == 5
    assert letters.nulls == table["s"].null_count
    assert letters.histogram is None and letters.mean is None and letters.quantiles == {}

    flags = profile.column("b")
    counts = Counter(v for v in table["b"].to_pylist() if v is not None)
    assert flags.top == (("false", counts[False]), ("true", counts[True]))
    assert flags.distinct == 2


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow"])
def test_nan_and_inf_are_counted_and_left_out(tmp_path: Path, fmt: str) -> None:
    values = [1.0, float("nan"), 2.0, float("inf"), None, -float("inf"), 4.0, float("nan"), 3.0]
    path = write(pa.table({"v": pa.array(values, pa.float64())}), tmp_path / f"t.{fmt}", fmt)

    column = profile_table([path], fmt).columns[0]

    assert column.kind == "numeric"
    assert (column.count, column.nulls, column.nan_count, column.inf_count) == (9, 1, 2, 2)
    assert column.na_share == pytest.approx(3 / 9)
    assert (column.min, column.max) == (1.0, 4.0)
    assert column.mean == pytest.approx(2.5)
    assert column.std == pytest.approx(np.std([1.0, 2.0, 3.0, 4.0], ddof=1))
    assert column.quantiles["p50"] == pytest.approx(2.5)
    assert column.histogram is not None and column.histogram.total == 4
    assert json.dumps(column.to_dict(), allow_nan=False)


def test_all_null_all_nan_and_constant_columns(tmp_path: Path) -> None:
    n = 50
    table = pa.table(
        {
            "empty_float": pa.nulls(n, pa.float64()),
            "empty_text": pa.nulls(n, pa.string()),
            "null_typed": pa.nulls(n),
            "all_nan": pa.array([float("nan")] * n),
            "constant": pa.array([7] * n, pa.int32()),
            "constant_text": pa.array(["same"] * n),
        }
    )
    path = write(table, tmp_path / "t.parquet", "parquet")

    profile = profile_table([path], "parquet")

    for name in ("empty_float", "empty_text", "null_typed"):
        column = profile.column(name)
        assert (column.nulls, column.na_share, column.distinct) == (n, 1.0, 0)
        assert column.min is None and column.max is None and column.mean is None
        assert column.histogram is None and column.top == () and column.quantiles == {}
    assert profile.column("null_typed").kind == "other"
    all_nan = profile.column("all_nan")
    assert (all_nan.nan_count, all_nan.na_share, all_nan.nulls) == (n, 1.0, 0)
    assert all_nan.min is None and all_nan.mean is None and all_nan.histogram is None
    constant = profile.column("constant")
    assert (constant.min, constant.max, constant.mean, constant.std) == (7, 7, 7.0, 0.0)
    assert constant.histogram == Histogram(edges=(7.0, 7.0), counts=(n,))
    assert constant.quantiles["p99"] == 7.0
    assert profile.column("constant_text").top == (("same", n),)
    assert json.dumps(profile.to_dict(), allow_nan=False)


def test_empty_table_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n", encoding="utf-8")

    profile = profile_table([path], "csv")

    assert profile.rows == 0
    assert [(c.name, c.count, c.na_share, c.distinct) for c in profile.columns] == [
        ("a", 0, 0.0, 0),
        ("b", 0, 0.0, 0),
    ]


ODD_NAMES = ["with space", 'quo"te', "it's", "ünïcødé ✓", "<script>alert(1)</script>", "select"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_odd_column_names(tmp_path: Path, fmt: str) -> None:
    table = pa.table({name: pa.array([i, i + 1, i + 2]) for i, name in enumerate(ODD_NAMES)})
    path = write(table, tmp_path / f"t.{fmt}", fmt)

    profile = profile_table([path], fmt)

    assert [c.name for c in profile.columns] == ODD_NAMES
    assert [c.name for c in profile.schema] == ODD_NAMES
    assert [(c.min, c.max) for c in profile.columns] == [(i, i + 2) for i in range(len(ODD_NAMES))]


def test_names_that_differ_only_in_case_keep_their_spelling(tmp_path: Path) -> None:
    path = write(pa.table({"A": [1, 2], "a": [3, 4]}), tmp_path / "t.parquet", "parquet")

    profile = profile_table([path], "parquet")

    assert [(c.name, c.min, c.max) for c in profile.columns] == [("A", 1, 2), ("a", 3, 4)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_folder_of_parts_profiles_as_one_table(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    for part in range(3):
        part_table = pa.table(
            {"k": pa.array(range(part * 10, part * 10 + 10)), "g": [f"p{part}"] * 10}
        )
        write(part_table, folder / f"part-{part}.{fmt}", fmt)
    (folder / "_SUCCESS").write_text("", encoding="utf-8")

    whole = profile_table([folder], fmt)
    listed = profile_table(sorted(folder.glob(f"part-*.{fmt}")), fmt)

    assert whole == listed
    assert whole.rows == 30
    k = whole.column("k")
    assert (k.min, k.max, k.distinct, k.mean) == (0, 29, 30, 14.5)
    assert whole.column("g").top == (("p0", 10), ("p1", 10), ("p2", 10))


def test_types_decimal_temporal_and_strings(tmp_path: Path) -> None:
    utc = dt.UTC
    table = pa.table(
        {
            "price": pa.array([Decimal("1.25"), Decimal("3.75"), None], pa.decimal128(10, 2)),
            "day": pa.array([dt.date(2024, 1, 2), dt.date(2023, 5, 6), None]),
            "at": pa.array(
                [
                    dt.datetime(2024, 1, 1, 12, tzinfo=utc),
                    dt.datetime(2024, 3, 1, tzinfo=utc),
                    None,
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "naive": pa.array([dt.datetime(2024, 1, 1, 5, 30)] * 3, pa.timestamp("ns")),
            "text": pa.array(["b", "a", "b"], pa.large_string()),
            "tiny": pa.array([-3, 4, 5], pa.int8()),
            "big": pa.array([0, 2**63, 5], pa.uint64()),
            "tags": pa.array([[1], [2, 3], None]),
        }
    )
    path = write(table, tmp_path / "t.parquet", "parquet")

    profile = profile_table([path], "parquet")

    price = profile.column("price")
    assert (price.kind, price.type, price.min, price.max, price.mean) == (
        "numeric",
        "decimal128(10, 2)",
        1.25,
        3.75,
        pytest.approx(2.5),
    )
    day = profile.column("day")
    assert (day.kind, day.min, day.max) == ("temporal", "2023-05-06", "2024-01-02")
    at = profile.column("at")
    assert (at.kind, at.type) == ("temporal", "timestamp[us, tz=UTC]")
    assert (at.min, at.max) == ("2024-01-01T12:00:00+00:00", "2024-03-01T00:00:00+00:00")
    assert profile.column("naive").min == "2024-01-01T05:30:00"
    text = profile.column("text")
    assert (text.kind, text.type, text.top) == ("categorical", "large_string", (("b", 2), ("a", 1)))
    assert (profile.column("tiny").min, profile.column("tiny").max) == (-3, 5)
    assert profile.column("big").max == 2**63
    tags = profile.column("tags")
    assert (tags.kind, tags.nulls, tags.distinct) == ("other", 1, 2)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_distinct_and_quantiles_are_estimated_above_the_limit(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 1000, size=20_000)
    path = write(pa.table({"v": values}), tmp_path / f"t.{fmt}", fmt)

    column = profile_table([path], fmt, exact_distinct_limit=1_000).columns[0]

    assert column.distinct_approx
    assert column.distinct == pytest.approx(20_000, rel=0.05)
    assert column.quantiles["p50"] == pytest.approx(np.quantile(values, 0.5), rel=0.02)
    assert column.mean == pytest.approx(values.mean(), rel=1e-9)
    assert column.histogram is not None and column.histogram.total == 20_000


def test_top_values_keep_the_20_most_frequent(tmp_path: Path) -> None:
    values = [f"v{i:02d}" for i in range(30) for _ in range(40 - i)]
    path = write(pa.table({"v": values}), tmp_path / "t.csv", "csv")

    column = profile_table([path], "csv").columns[0]

    assert column.distinct == 30
    assert column.top == tuple((f"v{i:02d}", 40 - i) for i in range(20))


def test_read_schema_keeps_arrow_types_and_nullability(tmp_path: Path) -> None:
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.large_string())]
    )
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1, 2], "name": ["a", None]}, schema=schema), path)

    assert read_schema([path], "parquet") == (
        ColumnSchema("id", "int64", nullable=False),
        ColumnSchema("name", "large_string", nullable=True),
    )
    csv_path = write(pa.table({"id": [1, 2], "name": ["a", "b"]}), tmp_path / "t.csv", "csv")
    assert read_schema([csv_path], "csv") == (
        ColumnSchema("id", "int64", nullable=True),
        ColumnSchema("name", "string", nullable=True),
    )


def test_profile_round_trips_through_json(tmp_path: Path) -> None:
    table = sample_table(300).append_column(
        "when", pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(300)])
    )
    table = table.append_column("odd", pa.array([float("nan"), float("inf")] * 150))
    path = write(table, tmp_path / "t.parquet", "parquet")
    profile = profile_table([path], "parquet")

    text = json.dumps(profile.to_dict(), allow_nan=False)

    assert TableProfile.from_dict(json.loads(text)) == profile


def test_non_finite_floats_round_trip_as_strings() -> None:
    column = ColumnProfile(
        name="v",
        type="double",
        kind="numeric",
        count=3,
        nulls=0,
        na_share=0.0,
        distinct=3,
        min=-math.inf,
        max=math.inf,
        mean=math.inf,
        quantiles={"p50": math.inf},
        histogram=Histogram(edges=(0.0, math.inf), counts=(3,)),
    )

    data = json.loads(json.dumps(column.to_dict(), allow_nan=False))

    assert (data["min"], data["max"], data["mean"]) == ("-Infinity", "Infinity", "Infinity")
    assert ColumnProfile.from_dict(data) == column


def test_from_dict_rejects_an_unknown_kind() -> None:
    data = ColumnProfile("v", "int64", "numeric", 1, 0, 0.0, 1).to_dict()
    data["kind"] = "weird"

    with pytest.raises(InvalidArgumentError, match="unknown column kind 'weird'"):
        ColumnProfile.from_dict(data)


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a,b\n1,2\n3,4,5\n" + "6,7\n" * 10, 3),  # inside the sniffer's sample
        ("a,b\n" + "1,2\n" * 30_000 + "3,4,5\n", 30_002),  # after it
        ("a,b\n" + "1,2\n" * 30_000 + '3,"open\n', 30_002),
        ("a,b\n" + "1,2\n" * 30_000 + "x,y\n", 30_002),  # a value that is not the sniffed type
    ],
)
def test_malformed_csv_names_the_file_and_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "broken data.csv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(InvalidArgumentError) as caught:
        profile_table([path], "csv")

    assert str(path) in str(caught.value)
    assert f"line {line}" in str(caught.value)


def test_malformed_jsonl_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n', encoding="utf-8")

    with pytest.raises(InvalidArgumentError, match=r"t\.jsonl is not valid JSON Lines \(line"):
        profile_table([path], "jsonl")


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_file_is_refused(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"t.{fmt}"
    path.touch()

    with pytest.raises(InvalidArgumentError, match=r"t\.\w+ is empty"):
        profile_table([path], fmt)


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_a_file_of_another_format_is_refused(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"t.{fmt}"
    path.write_text("a,b\n1,2\n", encoding="utf-8")

    with pytest.raises(InvalidArgumentError, match=re.escape(str(path))):
        profile_table([path], fmt)


def test_missing_file_and_empty_folder_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        profile_table([tmp_path / "nope.parquet"], "parquet")
    with pytest.raises(NotFoundError):
        read_schema([tmp_path / "nope.csv"], "csv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InvalidArgumentError, match="is empty"):
        profile_table([tmp_path / "folder"], "parquet")
    with pytest.raises(InvalidArgumentError, match="unknown table format 'xlsx'"):
        profile_table([tmp_path], "xlsx")
    with pytest.raises(InvalidArgumentError, match="no files"):
        profile_table([], "csv")


# -- the HTML report -----------------------------------------------------------------------------


def test_report_is_self_contained_and_escapes_everything(tmp_path: Path) -> None:
    table = sample_table(200).append_column(
        "<script>alert(1)</script>", pa.array(["<b>bold</b>"] * 200)
    )
    profile = profile_table([write(table, tmp_path / "t.parquet", "parquet")], "parquet")

    page = render_profile_html(
        profile,
        title="customers@3 <i>",
        description_md="# About\n\nRows from **CRM** with `ids`.\n\n- one\n- <img src=x>",
        meta={"source": "s3://bucket/<key>", "created by": "alice"},
    )

    for name in ("x", "n", "s", "b"):
        assert f">{name}<" in page
    assert page.count("<svg") >= 4
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "customers@3 &lt;i&gt;" in page
    assert "s3://bucket/&lt;key&gt;" in page
    assert "<img" not in page
    assert "<strong>CRM</strong>" in page and "<code>ids</code>" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page


def test_svg_helpers_draw_one_bar_per_value() -> None:
    vertical = svg_bars(["a", "b", "c"], [1.0, 0.0, 3.0], 300, 100, axis=("0", "9"))
    horizontal = svg_hbars(["x" * 50, "<y>"], [5.0, 2.0])

    assert vertical.startswith("<svg") and vertical.count("<rect") == 3
    assert horizontal.count("<rect") == 2 and "&lt;y&gt;" in horizontal
    assert "x" * 50 in horizontal  # the full label stays in the tooltip
    assert svg_bars([], []).startswith("<svg")


@pytest.mark.slow
def test_a_million_rows_profile_in_seconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    columns: dict[str, object] = {f"f{k}": rng.normal(size=n) for k in range(4)}
    columns |= {f"i{k}": rng.integers(0, 1_000_000, size=n) for k in range(3)}
    columns["cat"] = pa.array(rng.choice([f"c{j}" for j in range(50)], size=n))
    columns["id"] = pa.array(np.char.add("user-", np.arange(n).astype(str)))
    columns["flag"] = rng.random(n) < 0.3
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table(columns), path)

    started = time.perf_counter()
    profile = profile_table([path], "parquet")
    elapsed = time.perf_counter() - started

    assert profile.rows == n and profile.column("id").distinct == n
    assert elapsed < 10, f"profiling 1M x 10 took {elapsed:.1f} s"


def _big_parquet(path: Path, rows: int, row_group_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    data = {
        "id": np.arange(rows, dtype=np.int64),
        "x": rng.normal(50.0, 10.0, rows),
        "level": rng.integers(0, 8, rows),
    }
    x_with_nulls = pa.array(data["x"], mask=np.arange(rows) % 50 == 0)
    table = pa.table({"id": data["id"], "x": x_with_nulls, "level": data["level"]})
    pq.write_table(table, path, row_group_size=row_group_size)
    return data


def test_big_parquet_reads_counts_and_ranges_from_footers_and_samples_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.services import profiling

    monkeypatch.setattr(profiling, "SAMPLE_ROWS", 20_000)
    rows = 200_000
    data = _big_parquet(tmp_path / "big.parquet", rows, row_group_size=5_000)

    profile = profile_table([tmp_path / "big.parquet"], "parquet", exact_distinct_limit=50_000)

    assert profile.rows == rows
    assert profile.sample_rows is not None and 15_000 <= profile.sample_rows <= 25_000
    ident, x, level = (profile.column(n) for n in ("id", "x", "level"))
    # exact, from the footers
    assert (ident.min, ident.max) == (0, rows - 1)
    assert x.nulls == rows // 50
    assert x.min == pytest.approx(float(data["x"][np.arange(rows) % 50 != 0].min()))
    # estimated from row groups spread over the file: a unique column scales to the table
    assert ident.distinct_approx and ident.distinct == pytest.approx(rows, rel=0.1)
    assert level.distinct == 8
    assert x.mean == pytest.approx(50.0, abs=0.5)
    assert x.quantiles["p50"] == pytest.approx(50.0, abs=0.5)
    assert x.histogram is not None and x.histogram.total == rows - rows // 50
    assert ident.quantiles["p50"] == pytest.approx(rows / 2, rel=0.1)  # not the first groups
    assert TableProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_big_parquet_in_one_row_group_is_scanned_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.services import profiling

    monkeypatch.setattr(profiling, "SAMPLE_ROWS", 5_000)
    rows = 60_000
    data = _big_parquet(tmp_path / "one.parquet", rows, row_group_size=rows)

    profile = profile_table([tmp_path / "one.parquet"], "parquet", exact_distinct_limit=10_000)

    x = profile.column("x")
    kept = data["x"][np.arange(rows) % 50 != 0]
    assert profile.sample_rows == 5_000
    assert x.mean == pytest.approx(float(kept.mean()), rel=1e-9)  # scanned: exact moments


def test_big_parquet_with_infinities_keeps_them_out_of_the_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.services import profiling

    monkeypatch.setattr(profiling, "SAMPLE_ROWS", 4_000)
    values = np.linspace(-5.0, 5.0, 40_000)
    values[::1000] = np.inf
    pq.write_table(pa.table({"v": values}), tmp_path / "inf.parquet", row_group_size=1_000)

    column = profile_table([tmp_path / "inf.parquet"], "parquet", exact_distinct_limit=1_000)
    column = column.columns[0]

    assert column.max is not None and math.isfinite(column.max) and column.max <= 5.0
    assert column.inf_count == pytest.approx(40, abs=20)
    assert column.histogram is not None and all(math.isfinite(e) for e in column.histogram.edges)
