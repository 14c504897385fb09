"""Constraint expressions are bounded: length, nesting and integer size are capped with one clear
error each, the tokenizer is linear, and expressions people write still parse and evaluate."""

from __future__ import annotations

import pytest

from optimizer.errors import ExpressionError
from optimizer.expressions import MAX_CHARS, MAX_NESTING, evaluate, parse


def test_a_long_expression_is_refused_by_its_length() -> None:
    text = " + ".join(["max-num-seqs"] * (MAX_CHARS // 10))
    with pytest.raises(
        ExpressionError, match=rf"characters; an expression is at most {MAX_CHARS:,}"
    ):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1) + " > 0",
        "[" * (MAX_NESTING + 1) + "1" + "]" * (MAX_NESTING + 1) + " == 1",
        "not " * (MAX_NESTING + 1) + "true",
        "- " * (MAX_NESTING + 1) + "1 < 0",
        "(" * 500 + "1" + ")" * 500 + " > 0",  # deep enough to exhaust the stack unbounded
    ],
    ids=["parentheses", "lists", "not", "minus", "stack-deep"],
)
def test_deep_nesting_is_refused_not_a_recursion_error(text: str) -> None:
    with pytest.raises(ExpressionError, match=f"nested more than {MAX_NESTING} levels"):
        parse(text)


def test_many_sibling_groups_are_not_nesting() -> None:
    text = " and ".join(["(a > 0)"] * (MAX_NESTING * 2))
    assert evaluate(parse(text), {"a": 1}) is True


def test_nesting_up_to_the_bound_parses() -> None:
    text = "(" * MAX_NESTING + "a" + ")" * MAX_NESTING + " * 2 == 4"
    assert evaluate(parse(text), {"a": 2}) is True


def test_huge_integers_are_refused_in_the_text_and_in_arithmetic() -> None:
    with pytest.raises(ExpressionError, match="beyond 10\\^18"):
        parse("a < 99999999999999999999999")
    growing = parse(" * ".join(["a"] * 40) + " > 0")
    with pytest.raises(ExpressionError, match="beyond 10\\^18"):
        evaluate(growing, {"a": 1_000_000_000})
    assert evaluate(growing, {"a": 1}) is True


def test_trailing_blanks_end_the_expression() -> None:
    assert evaluate(parse("a >= 2 * b   \n\t "), {"a": 4, "b": 2}) is True
