from __future__ import annotations

import random
import sys

import pytest

from shipyard.domain.filters import (
    ATTRIBUTES,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    Comparison,
    Expr,
    Field,
    Or,
    OrderBy,
    fields,
    parse_filter,
    parse_order_by,
)
from shipyard.errors import InvalidArgumentError


def metric(key: str) -> Field:
    return Field("metric", key)


def param(key: str) -> Field:
    return Field("param", key)


def tag(key: str) -> Field:
    return Field("tag", key)


def attr(name: str) -> Field:
    return Field("attribute", name)


A = Comparison(metric("a"), "=", 1)
B = Comparison(metric("b"), "=", 2)
C = Comparison(metric("c"), "=", 3)
D = Comparison(metric("d"), "=", 4)


def assert_same(actual: object, expected: object) -> None:
    # repr tells 1 from 1.0 and from True, which == does not
    assert actual == expected
    assert repr(actual) == repr(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # operators and numbers
        ("metrics.auc > 0.9", Comparison(metric("auc"), ">", 0.9)),
        ("metrics.auc == 1", Comparison(metric("auc"), "=", 1)),
        ("metrics.auc=1", Comparison(metric("auc"), "=", 1)),
        ("metrics.n != -3", Comparison(metric("n"), "!=", -3)),
        ("metrics.loss <= -1.5e-3", Comparison(metric("loss"), "<=", -0.0015)),
        ("metrics.x >= 1E3", Comparison(metric("x"), ">=", 1000.0)),
        ("metrics.x < .5", Comparison(metric("x"), "<", 0.5)),
        ("metrics.x > 2.", Comparison(metric("x"), ">", 2.0)),
        ("metrics.x = 'high'", Comparison(metric("x"), "=", "high")),
        # params keep the type they were written with
        ("params.lr = 0.01", Comparison(param("lr"), "=", 0.01)),
        ("params.lr = '0.01'", Comparison(param("lr"), "=", "0.01")),
        ("params.depth > 3", Comparison(param("depth"), ">", 3)),
        # strings and escapes
        ('tags.team = "core"', Comparison(tag("team"), "=", "core")),
        ("tags.note = 'it''s'", Comparison(tag("note"), "=", "it's")),
        ('tags.note = "say ""hi"""', Comparison(tag("note"), "=", 'say "hi"')),
        ("tags.note = \"it''s\"", Comparison(tag("note"), "=", "it''s")),
        (r"tags.note = 'a\'b\\c'", Comparison(tag("note"), "=", "a'b\\c")),
        (r'tags.note = "a\"b"', Comparison(tag("note"), "=", 'a"b')),
        (r"tags.note = 'x\ty\nz\r'", Comparison(tag("note"), "=", "x\ty\nz\r")),
        ("tags.note = ''", Comparison(tag("note"), "=", "")),
        ("tags.note = 'a and b or (c)'", Comparison(tag("note"), "=", "a and b or (c)")),
        # booleans
        ("tags.flag = true", Comparison(tag("flag"), "=", True)),
        ("tags.flag = FALSE", Comparison(tag("flag"), "=", False)),
        # like / ilike
        ("tags.owner like 'ali%'", Comparison(tag("owner"), "like", "ali%")),
        ("tags.owner ILIKE '%X_'", Comparison(tag("owner"), "ilike", "%X_")),
        ("name LIKE 'run-%'", Comparison(attr("name"), "like", "run-%")),
        # in / not in
        ("params.model in ('xgb', \"lgbm\")", Comparison(param("model"), "in", ("xgb", "lgbm"))),
        ("params.model IN('xgb')", Comparison(param("model"), "in", ("xgb",))),
        ("metrics.k not in (1, 2.5, true)", Comparison(metric("k"), "not in", (1, 2.5, True))),
        ("metrics.k NOT IN (-1)", Comparison(metric("k"), "not in", (-1,))),
        # null tests
        ("tags.x is null", Comparison(tag("x"), "is null")),
        ("tags.x IS NOT NULL", Comparison(tag("x"), "is not null")),
        # attributes, bare and prefixed
        ("status = 'FINISHED'", Comparison(attr("status"), "=", "FINISHED")),
        ("attributes.status != 'FAILED'", Comparison(attr("status"), "!=", "FAILED")),
        ("run_id = 'abc'", Comparison(attr("run_id"), "=", "abc")),
        ("user = 'ann'", Comparison(attr("user"), "=", "ann")),
        ("experiment = 'churn'", Comparison(attr("experiment"), "=", "churn")),
        ("duration > 60", Comparison(attr("duration"), ">", 60)),
        ("`status` = 'x'", Comparison(attr("status"), "=", "x")),
        # times: ISO-8601 strings, checked and kept as written
        (
            "attributes.start_time >= '2024-05-01T12:00:00Z'",
            Comparison(attr("start_time"), ">=", "2024-05-01T12:00:00Z"),
        ),
        ("end_time < '2024-05-01'", Comparison(attr("end_time"), "<", "2024-05-01")),
        (
            "end_time in ('2024-05-01', \"2024-05-02 10:00+02:00\")",
            Comparison(attr("end_time"), "in", ("2024-05-01", "2024-05-02 10:00+02:00")),
        ),
        ("start_time like '2024%'", Comparison(attr("start_time"), "like", "2024%")),
        # keys
        ("metrics.val/loss.v-2_x = 1", Comparison(metric("val/loss.v-2_x"), "=", 1)),
        ("params.a.b = 'c'", Comparison(param("a.b"), "=", "c")),
        ("metrics.`val loss` > 1", Comparison(metric("val loss"), ">", 1)),
        ("tags.`a``b` = 'x'", Comparison(tag("a`b"), "=", "x")),
        ("tags.`and` = 'x'", Comparison(tag("and"), "=", "x")),
        ("metrics.`=odd (key), 'q'` = 1", Comparison(metric("=odd (key), 'q'"), "=", 1)),
        ("tags.`mlflow.user` = 'x'", Comparison(tag("mlflow.user"), "=", "x")),
        ("metrics.précision > 0.5", Comparison(metric("précision"), ">", 0.5)),
        ("metrics.1st = 1", Comparison(metric("1st"), "=", 1)),
        # whitespace and grouping
        ("  metrics.a = 1\n", A),
        ("((metrics.a = 1))", A),
        (
            "tags.a='x'and tags.b='y'",
            And((Comparison(tag("a"), "=", "x"), Comparison(tag("b"), "=", "y"))),
        ),
    ],
)
def test_parse_filter_builds_the_tree(text: str, expected: Expr) -> None:
    assert_same(parse_filter(text), expected)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_parse_filter_returns_none_for_blank_text(text: str) -> None:
    assert parse_filter(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.a = 1 or metrics.b = 2 and metrics.c = 3", Or((A, And((B, C))))),
        ("metrics.a = 1 and metrics.b = 2 or metrics.c = 3", Or((And((A, B)), C))),
        ("(metrics.a = 1 or metrics.b = 2) and metrics.c = 3", And((Or((A, B)), C))),
        (
            "metrics.a = 1 and (metrics.b = 2 or metrics.c = 3) and metrics.d = 4",
            And((A, Or((B, C)), D)),
        ),
        ("metrics.a = 1 AND metrics.b = 2 Or metrics.c = 3", Or((And((A, B)), C))),
    ],
)
def test_and_binds_tighter_than_or(text: str, expected: Expr) -> None:
    assert_same(parse_filter(text), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.a = 1 and metrics.b = 2 and metrics.c = 3", And((A, B, C))),
        (
            "(metrics.a = 1 and metrics.b = 2) and (metrics.c = 3 and metrics.d = 4)",
            And((A, B, C, D)),
        ),
        ("metrics.a = 1 or (metrics.b = 2 or (metrics.c = 3 or metrics.d = 4))", Or((A, B, C, D))),
        ("((metrics.a = 1 or metrics.b = 2)) or metrics.c = 3", Or((A, B, C))),
        ("metrics.a = 1 and (metrics.b = 2 or metrics.c = 3)", And((A, Or((B, C))))),
        ("(metrics.a = 1 and metrics.b = 2) or (metrics.c = 3)", Or((And((A, B)), C))),
    ],
)
def test_nested_and_or_of_the_same_kind_are_flattened(text: str, expected: Expr) -> None:
    assert_same(parse_filter(text), expected)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    text = "(" * MAX_FILTER_DEPTH + "metrics.a = 1" + ")" * MAX_FILTER_DEPTH
    assert_same(parse_filter(text), A)


def test_input_up_to_the_length_limit_is_accepted() -> None:
    clause = "metrics.a = 1"
    text = clause + " " * (MAX_FILTER_LENGTH - len(clause))
    assert_same(parse_filter(text), A)


def test_fields_lists_every_field_once() -> None:
    expr = parse_filter(
        "metrics.auc > 0.9 and (params.model = 'x' or tags.`a b` is null) "
        "and (status = 'FINISHED' or metrics.auc < 0.1)"
    )
    assert expr is not None
    assert fields(expr) == {metric("auc"), param("model"), tag("a b"), attr("status")}
    assert fields(A) == {metric("a")}


ERRORS = [
    # operators and values
    ("metrics.auc >> 0.9", 13, "expected a value after '>'"),
    ("metrics.auc >", 13, "expected a value after '>'"),
    ("metrics.auc <> 1", 13, "expected a value after '<'"),
    ("metrics.auc => 1", 13, "expected a value after '='"),
    ("metrics.auc", 12, "expected an operator"),
    ("metrics.auc ~ 1", 13, "unexpected character '~'"),
    ("metrics.auc foo 1", 13, "expected an operator"),
    ("metrics.auc = -", 15, "unexpected character '-'"),
    ("status = RUNNING", 8, "quote text values: 'RUNNING'"),
    ("tags.a = null", 8, "'is null'"),
    ("tags.a like 5", 8, "expected a quoted pattern after 'like'"),
    ("tags.a ilike", 8, "expected a quoted pattern after 'ilike'"),
    ("start_time > 'yesterday'", 14, "expected an ISO-8601 time"),
    ("start_time > 1714560000000", 14, "expected an ISO-8601 time"),
    ("end_time in ('2024-05-01', true)", 28, "expected an ISO-8601 time"),
    ("metrics.a = 1abc", 13, "malformed number"),
    ("metrics.a = 1.2.3", 13, "malformed number"),
    ("metrics.a = 1e999", 13, "out of range"),
    # strings and backquotes
    ("tags.a = 'abc", 10, "unterminated string"),
    ('tags.a = "abc', 10, "unterminated string"),
    ("tags.a = 'abc\\'", 10, "unterminated string"),
    ("tags.a = 'it's'", 14, "found 's'"),
    (r"tags.a = 'a\qb'", 12, "unknown escape"),
    ("metrics.`` = 1", 9, "closing `"),
    ("metrics.`abc = 1", 9, "closing `"),
    ("`status = 'x'", 1, "closing `"),
    # in / not in / is
    ("metrics.a in ()", 15, "expected at least one value"),
    ("metrics.a in (1,)", 16, "expected a value after ','"),
    ("metrics.a in (1 2)", 17, "expected ',' or ')'"),
    ("metrics.a in (1", 16, "expected ',' or ')'"),
    ("metrics.a in (", 14, "expected a value after '('"),
    ("metrics.a in 1", 14, "expected '(' after 'in'"),
    ("metrics.a not 1", 15, "expected 'in' after 'not'"),
    ("metrics.a not like 'x'", 15, "expected 'in' after 'not'"),
    ("metrics.a is 1", 14, "expected 'null' or 'not null' after 'is'"),
    ("metrics.a is not", 17, "expected 'null' after 'not'"),
    # and / or / parentheses
    ("metrics.a = 1 and", 18, "expected a field (metrics.KEY"),
    ("metrics.a = 1 or", 17, "after 'or', found the end of the filter"),
    ("and metrics.a = 1", 1, "expected a field"),
    ("metrics.a = 1 and and metrics.b = 2", 19, "after 'and', found 'and'"),
    ("metrics.a = 1 and not metrics.b = 2", 19, "found 'not'"),
    ("(metrics.a = 1", 15, "expected ')' to close the '(' at position 1"),
    ("((metrics.a = 1) or (metrics.b = 2)", 36, "expected ')' to close the '(' at position 1"),
    ("metrics.a = 1)", 14, "unbalanced ')'"),
    ("()", 2, "expected a field (metrics.KEY, params.KEY, tags.KEY, NAME) after '('"),
    (")", 1, "expected a field"),
    ("metrics.a = 1 metrics.b = 2", 15, "expected 'and', 'or' or the end of the filter"),
    ("metrics.a = 1,", 14, "expected 'and', 'or'"),
    # fields
    ("bogus = 1", 1, "unknown attribute 'bogus'"),
    ("attributes.bogus = 1", 1, "unknown attribute 'bogus'"),
    ("Status = 'x'", 1, "unknown attribute 'Status'"),
    ("metric.auc > 1", 1, "unknown field prefix 'metric.'"),
    ("Metrics.auc > 1", 1, "unknown field prefix 'Metrics.'"),
    ("metrics. > 1", 9, "expected a key after 'metrics.'"),
    ("metrics .auc > 1", 1, "unknown attribute 'metrics'"),
    ("1 = metrics.a", 1, "expected a field"),
    ("'x' = tags.a", 1, "expected a field"),
]


@pytest.mark.parametrize(("text", "position", "fragment"), ERRORS)
def test_parse_filter_reports_position_and_expectation(
    text: str, position: int, fragment: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_filter(text)
    message = str(caught.value)
    assert message.startswith(f'invalid filter "{text}" at position {position}: '), message
    assert fragment in message


def test_error_message_matches_the_documented_shape() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_filter("metrics.auc >> 0.9")
    assert str(caught.value) == (
        "invalid filter \"metrics.auc >> 0.9\" at position 13: expected a value after '>'"
    )


def test_unknown_attribute_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_filter("bogus = 1")
    assert all(name in str(caught.value) for name in ATTRIBUTES)


def test_too_long_input_is_refused_with_a_short_message() -> None:
    text = "metrics.a = 1 and " * 600
    assert len(text) > MAX_FILTER_LENGTH
    with pytest.raises(InvalidArgumentError, match=r"at position 10001: expected at most 10000"):
        parse_filter(text)
    with pytest.raises(InvalidArgumentError) as caught:
        parse_filter(text)
    assert len(str(caught.value)) < 400


def test_error_in_a_long_filter_quotes_an_excerpt() -> None:
    text = "metrics.a = 1 and " * 300 + "metrics.b >"
    with pytest.raises(InvalidArgumentError) as caught:
        parse_filter(text)
    message = str(caught.value)
    assert f"at position {len(text)}: expected a value after '>'" in message
    assert len(message) < 400


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_FILTER_DEPTH + 1) + "metrics.a = 1" + ")" * (MAX_FILTER_DEPTH + 1),
        "(" * 5000,
        "(" * 4000 + "metrics.a = 1" + ")" * 4000,
    ],
)
def test_too_deep_nesting_is_refused_without_recursion_error(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"at position 51: expected at most 50 nested"):
        parse_filter(text)


def test_numbers_with_too_many_digits_are_refused() -> None:
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(4300)
    try:
        with pytest.raises(InvalidArgumentError, match=r"at position 13: number has too many"):
            parse_filter("metrics.a = " + "9" * 5000)
    finally:
        sys.set_int_max_str_digits(limit)


@pytest.mark.parametrize("text", [None, 3, b"metrics.a = 1"])
def test_parse_filter_refuses_what_is_not_a_string(text: object) -> None:
    with pytest.raises(InvalidArgumentError, match="expected a string"):
        parse_filter(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (None, ()),
        ("", ()),
        ("  ", ()),
        ([], ()),
        (["metrics.auc"], (OrderBy(metric("auc"), descending=False),)),
        (
            ["metrics.auc DESC", "start_time"],
            (OrderBy(metric("auc"), descending=True), OrderBy(attr("start_time"))),
        ),
        (
            "metrics.auc desc, params.lr asc, attributes.name",
            (OrderBy(metric("auc"), True), OrderBy(param("lr")), OrderBy(attr("name"))),
        ),
        (("metrics.`val, loss` desc",), (OrderBy(metric("val, loss"), True),)),
        ("tags.`a``b` Asc", (OrderBy(tag("a`b")),)),
    ],
)
def test_parse_order_by(items: list[str] | str | None, expected: tuple[OrderBy, ...]) -> None:
    assert parse_order_by(items) == expected


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        (["metrics.auc sideways"], "at position 13: expected 'asc', 'desc' or the end"),
        (["metrics.auc desc, name"], "at position 17: expected 'asc', 'desc' or the end"),
        ("metrics.auc desc,", "at position 18: expected a field (metrics.KEY"),
        ("metrics.auc desc name", "at position 18: expected 'asc', 'desc', ',' or the end"),
        ([""], "at position 1: expected a field"),
        (["bogus"], "at position 1: unknown attribute 'bogus'"),
        (["metrics.a", "metrics.a desc"], "at position 1: metrics.a is already ordered by"),
        ("tags.`x y`, tags.`x y` desc", "at position 13: tags.`x y` is already ordered by"),
        (["desc"], "unknown attribute 'desc'"),
    ],
)
def test_parse_order_by_reports_errors(items: list[str] | str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^invalid order_by ") as caught:
        parse_order_by(items)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("items", [[1], 5, [None]])
def test_parse_order_by_refuses_what_is_not_strings(items: object) -> None:
    with pytest.raises(InvalidArgumentError, match="expected a"):
        parse_order_by(items)  # type: ignore[arg-type]


TOKENS = [
    *("metrics.auc", "params.lr", "tags.`a b`", "metrics.", "metric.x", "status", "name"),
    *("start_time", "bogus", "`", "``", "`x`", "=", "==", "!=", "<", "<=", ">", ">=", ">>"),
    *("like", "ilike", "in", "not", "is", "null", "and", "or", "AND", "Or", "(", ")", ","),
    *("'x'", '"y"', "'it''s'", "'open", '"', "\\", "'\\q'", "1", "-2.5", "1e3", "1e999"),
    *(".5", "-", "true", "FALSE", "'2024-05-01'", "'soon'", "~", ".", "\n", "é", "9" * 30),
]


def _random_filter(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(
            rng.choice(TOKENS) + rng.choice(["", " ", " "]) for _ in range(rng.randint(0, 12))
        )
    # a valid filter with one random token inserted, dropped or replaced, or left alone
    clauses = [
        f"{rng.choice(['metrics.auc', 'params.lr', 'tags.`a b`', 'status'])} "
        f"{rng.choice(['=', '!=', '<', '>=', 'in (1, 2)', 'is null', 'like'])} "
        for _ in range(rng.randint(1, 4))
    ]
    words = " and ".join(clause + rng.choice(["'x'", "1", "true"]) for clause in clauses).split()
    action = rng.choice(["insert", "drop", "replace", "keep"])
    where = rng.randrange(len(words))
    if action == "insert":
        words.insert(where, rng.choice(TOKENS))
    elif action == "drop":
        del words[where]
    elif action == "replace":
        words[where] = rng.choice(TOKENS)
    return " ".join(words)


def test_parse_filter_only_ever_returns_an_expression_or_raises_invalid_argument() -> None:
    rng = random.Random(20240501)
    parsed = refused = 0
    for _ in range(500):
        text = _random_filter(rng)
        try:
            result = parse_filter(text)
        except InvalidArgumentError as exc:
            assert " at position " in str(exc), (text, str(exc))
            refused += 1
        else:
            assert result is None or isinstance(result, Comparison | And | Or), text
            parsed += 1
    assert parsed > 25
    assert refused > 250
