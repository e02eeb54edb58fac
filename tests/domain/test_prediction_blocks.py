"""Input rows logged as one matrix (a model server's ``InputBlock``) make the same columns as
the same rows logged as mappings."""

from __future__ import annotations

import math

import numpy as np

from shipyard.domain.predictions import InputBlock, Logged, columns_of

NAMES = ("x", "version", "y")  # "version" clashes with a log column: stored as input_version


def _entry(i: int, inputs: object) -> Logged:
    return Logged(f"r{i}", 1_700_000_000.0 + i, 3, inputs, [i, i + 1][: _rows(inputs)], 0.002, 0.0)  # type: ignore[arg-type]


def _rows(inputs: object) -> int:
    return len(inputs)  # type: ignore[arg-type]


def _as_lists(columns: dict[str, object]) -> dict[str, list[object]]:
    return {
        k: list(np.asarray(v).tolist()) if not isinstance(v, list) else v
        for k, v in columns.items()
    }


def test_blocks_and_records_give_the_same_columns() -> None:
    matrices = [np.array([[1.5, 2.0, math.nan]]), np.array([[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])]
    blocks = [_entry(i, InputBlock(NAMES, m.astype(np.float32))) for i, m in enumerate(matrices)]
    records = [
        _entry(i, [dict(zip(NAMES, row, strict=True)) for row in m.tolist()])
        for i, m in enumerate(matrices)
    ]
    from_blocks = _as_lists(columns_of(blocks, "dep"))
    from_records = _as_lists(columns_of(records, "dep"))
    assert list(from_blocks) == list(from_records)
    assert "input_version" in from_blocks and from_blocks["version"] == [3, 3, 3]
    for name in from_records:
        got, want = from_blocks[name], from_records[name]
        assert len(got) == len(want) == 3
        for a, b in zip(got, want, strict=True):
            assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))  # type: ignore[arg-type]
    assert from_blocks["row"] == [0, 0, 1] and from_blocks["request_id"] == ["r0", "r1", "r1"]


def test_blocks_of_other_columns_and_records_mix() -> None:
    entries = [
        _entry(0, InputBlock(("a",), np.array([[1.0]]))),
        _entry(1, InputBlock(("b",), np.array([[2.0]]))),
        _entry(2, [{"a": 3.0, "c": "text"}]),
    ]
    columns = columns_of(entries, "dep")
    assert columns["a"] == [1.0, None, 3.0]
    assert columns["b"] == [None, 2.0, None]
    assert columns["c"] == [None, None, "text"]
    assert len(InputBlock(("a",), np.zeros((4, 1)))) == 4


def test_a_batch_built_in_chunks_reads_as_the_batch_built_whole() -> None:
    from shipyard.services.prediction_log import batch_table, joined_table

    entries = [
        _entry(i, [{"x": float(i) if i % 3 else i, "city": None if i < 400 else "Oslo"}])
        for i in range(900)
    ]
    whole = batch_table(entries, "dep")
    joined = joined_table([batch_table(entries[i : i + 128], "dep") for i in range(0, 900, 128)])
    assert joined.num_rows == whole.num_rows == 900
    assert sorted(joined.column_names) == sorted(whole.column_names)
    for name in whole.column_names:
        assert joined[name].to_pylist() == whole[name].to_pylist(), name
    # numbers in one chunk and text in another: JSON text, as the whole batch types them
    mixed = [_entry(i, [{"v": i if i < 300 else f"t{i}"}]) for i in range(600)]
    chunks = [batch_table(mixed[i : i + 128], "dep") for i in range(0, 600, 128)]
    assert joined_table(chunks)["v"].to_pylist() == batch_table(mixed, "dep")["v"].to_pylist()


def test_chunks_with_a_column_of_flags_in_one_and_numbers_in_another_join_as_json_text() -> None:
    from shipyard.services.prediction_log import batch_table, joined_table

    entries = [_entry(i, [{"v": True if i < 3 else i, "w": [i]}]) for i in range(6)]
    joined = joined_table([batch_table(entries[:3], "dep"), batch_table(entries[3:], "dep")])
    assert joined["v"].to_pylist() == batch_table(entries, "dep")["v"].to_pylist()
    assert joined["v"].to_pylist()[2:4] == ["true", "3"]
    assert joined["w"].to_pylist() == [[i] for i in range(6)]  # lists join as Arrow does
