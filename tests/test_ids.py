import numpy as np
import pytest

from cf_core.ids import IdMap, UnknownIdError


def test_int_ids_round_trip():
    m = IdMap.from_values(np.array([30, 10, 20, 10]), "user")
    assert len(m) == 3
    assert m.encode([10, 30]).tolist() == [0, 2]
    assert m.decode([2, 0]).tolist() == [30, 10]
    assert IdMap.from_list(m.to_list()).encode([20]).tolist() == [1]


def test_string_ids_and_text_input_for_int_ids():
    m = IdMap(["b", "a", "c"], "item")
    assert m.encode(["c"]).tolist() == [2]
    ints = IdMap([5, 7])
    assert ints.encode(["7"]).tolist() == [1]  # typed in a text box
    assert "5" in ints and 6 not in ints


def test_unknown_id_is_clear_error_or_minus_one():
    m = IdMap([1, 2], "user")
    with pytest.raises(UnknownIdError, match="unknown user id: 99"):
        m.encode([1, 99])
    assert m.encode([1, 99], "ignore").tolist() == [0, -1]
