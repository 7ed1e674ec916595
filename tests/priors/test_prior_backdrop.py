"""train_prior.recomposite: white-backdrop renders moved onto other backdrop colours (random backdrops)."""

import sys
from pathlib import Path

import numpy as onp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import train_prior as tp  # noqa: E402


def test_recomposite_equals_rendering_over_the_new_backdrop():
    g = torch.Generator().manual_seed(0)
    fg = torch.rand((4, 3, 8, 8), generator=g)
    alpha = torch.rand((4, 1, 8, 8), generator=g)
    bg = torch.rand((4, 3, 1, 1), generator=g)
    white = fg * alpha + (1 - alpha)                  # as learned_prior_data renders ([0, 1] range)
    ref = fg * alpha + (1 - alpha) * bg
    onp.testing.assert_allclose(tp.recomposite(white, alpha, bg).numpy(), ref.numpy(), atol=1e-6)
    # model range [-1, 1]: white = 1
    onp.testing.assert_allclose(tp.recomposite(2 * white - 1, alpha, 2 * bg - 1).numpy(), (2 * ref - 1).numpy(), atol=1e-6)


def test_opaque_pixels_keep_their_colour():
    img = torch.full((1, 3, 2, 2), 0.3)
    out = tp.recomposite(img, torch.ones((1, 1, 2, 2)), torch.zeros((1, 3, 1, 1)))
    assert torch.equal(out, img)


def test_training_with_random_backdrops_runs_and_is_seeded():
    rng = onp.random.default_rng(0)
    data = dict(image=rng.integers(0, 255, (8, 16, 16, 3), dtype=onp.uint8),
                human=rng.integers(0, 255, (8, 16, 16), dtype=onp.uint8),
                obj=rng.integers(0, 255, (8, 16, 16), dtype=onp.uint8), cls=onp.arange(8) % 4, tag=onp.arange(8) % 4)
    runs = [tp.train_prior(data, unet_config=tp.TINY_UNET_CONFIG, steps=2, batch=4, device="cpu", log=lambda *_: None,
                           random_backdrop=0.9)[0] for _ in range(2)]
    for a, b in zip(runs[0].parameters(), runs[1].parameters()):
        assert torch.equal(a, b)
