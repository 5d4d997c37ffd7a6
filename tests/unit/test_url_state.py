"""URL values are type-checked, finite and clamped into their widget's range (ui/state.py `_parse`)."""

from __future__ import annotations

import pytest

from ui.state import _parse


@pytest.mark.parametrize("raw, default, bounds, want, clean", [
    ("1e400", 0, (0, 9999), 0, False),  # overflows to inf: not finite -> default
    ("100000", 25, (1, 100), 100, False),  # above the maximum -> the maximum (not the minimum)
    ("0", 25, (1, 100), 1, False),  # below the minimum -> the minimum
    ("1e308", 1.5, (0.0, 3.0), 3.0, False),
    ("inf", 1.5, (-3.0, 3.0), 1.5, False),
    ("-inf", 1.5, (-3.0, 3.0), 1.5, False),
    ("nan", 1.5, (-3.0, 3.0), 1.5, False),
    ("[0,999]", (10, 22), (0, 32), (0, 32), False),  # a range slider: each end clamped
    ("[1e400,3]", (10, 22), (0, 32), (10, 22), False),
    ("[1,2,3]", (10, 22), (0, 32), (10, 22), False),  # a range needs two values
    ("abc", 3, (0, 9), 3, False),
    ("2.5", 3, (0, 9), 3, False),  # not a whole number where the widget takes one
    ("0.7", 0.1, [0.05, 0.1, 0.2], 0.1, False),  # not one of a select slider's choices
    ("0.2", 0.1, [0.05, 0.1, 0.2], 0.2, True),
    ("textured", "sprites", ["sprites", "textured"], "textured", True),
    ("../../etc/passwd", "sprites", ["sprites", "textured"], "sprites", False),
    ("maybe", True, None, True, False),
    ("0", True, None, False, True),
    ("[0,5,99]", [0], (0, 7), [0, 5, 7], False),
    ('{"a":1}', [0], (0, 7), [0], False),
    ('["Z1→Z2","x"]', ["Z1→Z2"], ["Z1→Z2", "Z2→Z3"], ["Z1→Z2"], False),
])
def test_values_are_checked_and_clamped(raw, default, bounds, want, clean):
    value, why = _parse(raw, default, bounds)
    assert value == want and type(value) is type(want)
    assert (why is None) == clean  # every change is reported (the page shows it in a toast)


def test_plain_values_pass_unchanged():
    assert _parse("42", 0, (0, 100)) == (42, None)
    assert _parse("0.25", 1.0, (-3.0, 3.0)) == (0.25, None)
    assert _parse("[3,4]", (10, 22), (0, 32)) == ((3, 4), None)
