"""The one markdown-table builder and the one dotted-key walker."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.dotted import dotted
from pipeline.markdown import markdown_table


def test_a_table_has_a_header_a_rule_per_column_and_a_line_per_row():
    assert markdown_table(["a", "b"], [[1, "x"], [2.5, None]]) == [
        "| a | b |",
        "|---|---|",
        "| 1 | x |",
        "| 2.5 | None |",
    ]
    assert markdown_table(["only"], []) == ["| only |", "|---|"]


def test_a_row_of_the_wrong_width_is_refused_naming_it():
    with pytest.raises(ValueError, match="row 2 has 1 cells, the header 2"):
        markdown_table(["a", "b"], [[1, 2], [3]])


@dataclasses.dataclass
class _Leaf:
    seed: int


@dataclasses.dataclass
class _Tree:
    pretrain: _Leaf


def test_dotted_walks_mappings_and_attributes_alike():
    assert dotted({"pretrain": {"seed": 3}}, "pretrain.seed") == 3
    assert dotted(_Tree(_Leaf(4)), "pretrain.seed") == 4
    assert dotted({"pretrain": _Leaf(5)}, "pretrain.seed") == 5
    with pytest.raises(KeyError, match="linear"):
        dotted({"pretrain": {"seed": 3}}, "linear.seed")
