import numpy as np
import pytest

from vtopt.vtracer import vectorize
from vtopt.vtracer.images import BACKGROUND, LogoImage, composite
from vtopt.vtracer.params import DEFAULT_PARAMS


def test_convert_and_render_a_real_image(vtopt_images):
    image = vtopt_images[0]
    svg = vectorize.convert(image, DEFAULT_PARAMS)
    pixels = vectorize.render(svg, *image.size)
    assert pixels.shape == (image.size[1], image.size[0], 3) and pixels.dtype == np.uint8
    # the rendering resembles the original
    assert np.abs(pixels.astype(int) - image.rgb.astype(int)).mean() < 20


def test_transparent_pixels_meet_the_same_background_on_both_sides():
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (200, 30, 30, 255)  # an opaque square on a transparent field
    image = LogoImage.from_rgba("sq", "simple", rgba)
    assert tuple(image.rgb[0, 0]) == BACKGROUND
    svg = vectorize.convert(image, DEFAULT_PARAMS)
    assert tuple(vectorize.render(svg, 32, 32)[0, 0]) == BACKGROUND
    assert tuple(composite(rgba)[16, 16]) == (200, 30, 30)


def test_a_vtracer_panic_becomes_a_conversion_error(vtopt_images, monkeypatch):
    # color_precision=0 makes the binding raise pyo3's PanicException (a BaseException)
    monkeypatch.setattr(vectorize, "check_params", lambda p: {**DEFAULT_PARAMS, **p})
    with pytest.raises(vectorize.ConversionError, match="PanicException"):
        vectorize.convert(vtopt_images[0], {"color_precision": 0})


def test_render_many_times_is_stable(vtopt_images):
    svg = vectorize.convert(vtopt_images[-1], DEFAULT_PARAMS)
    first = vectorize.render(svg, *vtopt_images[-1].size)
    for _ in range(50):
        assert np.array_equal(vectorize.render(svg, *vtopt_images[-1].size), first)
