import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from vtopt.config.schema import default_config
from vtopt.env.scoring import build_scorer
from vtopt.plugin.components import Sample
from vtopt.vtracer.images import LogoImage
from vtopt.vtracer.params import DEFAULT_PARAMS
from vtopt.vtracer.vectorize import convert, render


def _pair(image, params):
    svg = convert(image, params)
    return svg, render(svg, *image.size)


@pytest.mark.parametrize("index", range(8))
def test_ssim_agrees_with_scikit_image(vtopt_pm, vtopt_images, index):
    pm = vtopt_pm()
    image = vtopt_images[index]
    svg, rendered = _pair(image, {**DEFAULT_PARAMS, "mode": "polygon", "filter_speckle": 9})
    ssim, ssim_rgb = pm.create("metric", "ssim"), pm.create("metric", "ssim_rgb")
    sample = Sample(image, svg, rendered, defaults=None)
    ours = ssim.compute(sample, ssim.prepare(image))
    assert abs(ours - structural_similarity(image.gray, sample.gray, data_range=255)) < 1e-5
    ours = ssim_rgb.compute(sample, ssim_rgb.prepare(image))
    ref = structural_similarity(image.rgb, sample.rendered, channel_axis=2, data_range=255)
    assert abs(ours - ref) < 1e-5


def test_ssim_on_random_and_identical_images(vtopt_pm):
    pm = vtopt_pm()
    rng = np.random.default_rng(0)
    rgba = np.dstack([rng.integers(0, 256, (40, 50, 3)), np.full((40, 50), 255)]).astype(np.uint8)
    image = LogoImage.from_rgba("noise", "complex", rgba)
    ssim = pm.create("metric", "ssim")
    state = ssim.prepare(image)
    same = Sample(image, "<svg/>", image.rgb, None)
    assert ssim.compute(same, state) == pytest.approx(1.0, abs=1e-6)
    other = np.ascontiguousarray(image.rgb[::-1])
    got = ssim.compute(Sample(image, "<svg/>", other, None), state)
    assert abs(got - structural_similarity(image.gray, Sample(image, "", other, None).gray, data_range=255)) < 1e-5


def test_default_reward_is_ssim_minus_size_term(vtopt_pm, vtopt_images):
    pm = vtopt_pm()
    scorer = build_scorer(pm, default_config(pm))
    image = vtopt_images[3]
    default = scorer.defaults(image)
    assert default.score == pytest.approx(default.ssim)  # size term is 0 for the defaults
    params = {**DEFAULT_PARAMS, "mode": "polygon"}
    out = scorer.evaluate(image, params)
    assert out.ssim == out.metrics["ssim_rgb"]
    expected = out.ssim - 0.02 * math.log2(out.svg_bytes / default.svg_bytes)
    assert out.score == pytest.approx(expected, abs=1e-12)
    assert out.metrics["size"] == pytest.approx(math.log2(out.svg_bytes / default.svg_bytes))


def test_results_are_cached_per_image_and_params(vtopt_pm, vtopt_images, monkeypatch):
    pm = vtopt_pm()
    import vtopt.env.scoring as scoring

    calls = []
    real = scoring.convert
    monkeypatch.setattr(scoring, "convert", lambda im, p: calls.append(p) or real(im, p))
    scorer = build_scorer(pm, default_config(pm))
    image = vtopt_images[0]
    for _ in range(3):
        scorer.defaults(image)
        scorer.evaluate(image, {**DEFAULT_PARAMS, "mode": "polygon"})
    assert len(calls) == 2  # the defaults once, the polygon setting once


def test_paths_mse_psnr(vtopt_pm, vtopt_images):
    pm = vtopt_pm()
    image = vtopt_images[4]
    svg, rendered = _pair(image, DEFAULT_PARAMS)
    default = Sample(image, svg, rendered, None)
    svg2, rendered2 = _pair(image, {**DEFAULT_PARAMS, "filter_speckle": 0})
    sample = Sample(image, svg2, rendered2, default)
    paths = pm.create("metric", "paths")
    assert paths.compute(sample, None) == pytest.approx(math.log2((sample.paths + 1) / (default.paths + 1)))
    mse, psnr = pm.create("metric", "mse"), pm.create("metric", "psnr")
    m = mse.compute(sample, mse.prepare(image))
    assert 0 < m < 0.1
    assert psnr.compute(sample, psnr.prepare(image)) == pytest.approx(10 * math.log10(1 / m), rel=1e-6)


def test_ssim_keeps_one_set_of_scratch_planes_and_none_in_a_pickle(vtopt_pm):
    pm = vtopt_pm()
    import pickle

    rng = np.random.default_rng(1)
    metric = pm.create("metric", "ssim_rgb")
    for shape in ((40, 50), (64, 30), (40, 50)):  # interleaved shapes: fresh results, one set of planes
        rgba = np.dstack([rng.integers(0, 256, (*shape, 3)), np.full(shape, 255)]).astype(np.uint8)
        image = LogoImage.from_rgba("noise", "complex", rgba)
        other = np.ascontiguousarray(image.rgb[::-1])
        state = metric.prepare(image)
        got = [metric.compute(Sample(image, "", other, None), state) for _ in range(2)]
        expected = structural_similarity(image.rgb, other, data_range=255, channel_axis=2)
        assert abs(got[0] - expected) < 1e-5 and got[0] == got[1]  # the prepared state is left as it was
        assert len(metric._buffers) == 6 and metric._buffers[0].shape[:2] == shape
    assert len(pickle.dumps(metric)) < 1000  # the planes are scratch space: never shipped to a worker
    assert pickle.loads(pickle.dumps(metric)).compute(Sample(image, "", other, None), state) == got[0]
