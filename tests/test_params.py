import numpy as np
import pytest
import vtracer
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vtopt.vtracer.params import DEFAULT_PARAMS, SPACE, action_size, action_to_params, check_params, params_to_unit
from vtopt.vtracer.synthetic import generate

IMAGE = generate("complex", 0, seed=0, size=48)


def test_defaults_are_vtracer_cli_defaults():
    assert DEFAULT_PARAMS["path_precision"] == 2
    assert check_params({}) == DEFAULT_PARAMS


def test_extreme_and_centre_actions_give_valid_params():
    for u in (-1.0, 0.0, 1.0, -5.0, 5.0):
        params = action_to_params(np.full(action_size(), u))
        assert check_params(params) == params


def test_each_dimension_spans_its_whole_range():
    for dim in SPACE:
        values = {dim.from_unit(u) for u in np.linspace(-1, 1, 2001)}
        if dim.choices:
            assert values == set(dim.choices)
        else:
            assert min(values) == dim.low and max(values) == dim.high
            if dim.integer:  # no value of the range is unreachable
                assert values == set(range(int(dim.low), int(dim.high) + 1))


def test_unit_round_trip():
    params = action_to_params(np.linspace(-0.9, 0.9, action_size()))
    assert action_to_params(params_to_unit(params)) == params


@pytest.mark.parametrize("bad", [{"color_precision": 0}, {"corner_threshold": 60.0}, {"mode": "pixel"},
                                 {"filter_speckle": -1}, {"nope": 1}, {"max_iterations": 0}])
def test_check_params_rejects_what_vtracer_would_mishandle(bad):
    with pytest.raises(ValueError):
        check_params(bad)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, action_size(), elements=st.one_of(st.floats(-3, 3), st.just(float("nan")))))
def test_every_action_converts(action):
    params = action_to_params(action)
    svg = vtracer.convert_raw_image_to_svg(IMAGE.png, img_format="png", **params)
    assert svg.startswith("<?xml")
