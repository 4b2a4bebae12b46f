"""The wording the error messages share."""

from __future__ import annotations

import pytest

from dpupose.errors import SHOWN, shortlist


@pytest.mark.parametrize(
    ("names", "want"),
    [
        ([], ""),
        (["a"], "a"),
        (["a", "b"], "a, b"),
        (["a", "b", "c", "d"], "a, b, c, d"),  # exactly the limit: all of them, nothing counted
        (["a", "b", "c", "d", "e"], "a, b, c, d and 1 more"),
        ([f"f{i}" for i in range(100)], "f0, f1, f2, f3 and 96 more"),
    ],
)
def test_a_list_of_names_is_cut_after_four_and_the_rest_counted(names, want):
    assert SHOWN == 4
    assert shortlist(names) == want


def test_a_place_may_show_fewer():
    assert shortlist(["Conv", "Sigmoid", "Reshape"], 3) == "Conv, Sigmoid, Reshape"
    assert shortlist(["Conv", "Sigmoid", "Reshape", "Add"], 3) == "Conv, Sigmoid, Reshape and 1 more"
    assert shortlist(["x"], 1) == "x" and shortlist(["x", "y"], 1) == "x and 1 more"
