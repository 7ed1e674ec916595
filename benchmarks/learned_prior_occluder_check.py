"""CPU check of the occluder-aware anchor extraction (session 8) on the synthetic human-object scene of the anchor test.

    python benchmarks/learned_prior_occluder_check.py [--margins none,0.05,0.1,0.2]

The scene (tests/composition/scenes.hoi_scene: box-part human, a crate in front of the left leg) is fitted as
the "coarse" NeRF from 10 views, then the anchor NeRF is extracted from 8 alignment views with the visible-human
masks, once per occluder margin (none = the paper's 2D-masked rays), and compared at 4 held-out views with the
human's full silhouette (occluded parts included): IoU, human recall (the occluded leg behind the crate is what
2D-masked rays erase), and the fraction of object-only pixels the anchor still covers (object debris).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anchorhoi_jax.render.volume import render_nerf_views  # noqa: E402
from anchorhoi_jax.stages import anchor as an  # noqa: E402
from tests.composition.scenes import fitted_hoi_scene  # noqa: E402

S = 40


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--margins", default="none,0.05,0.1,0.2")
    args = ap.parse_args(argv)
    f = fitted_hoi_scene(S)
    align, evalc, scene, human, fcfg, rcfg = (f[k] for k in ("align", "evalc", "scene", "human", "fcfg", "rcfg"))
    visible_human, n_t, n_a = f["visible_human"], f["n_t"], f["n_a"]
    coarse_params = f["coarse"]
    o = jax.jit(lambda p, c: render_nerf_views(p, fcfg, c, None, render_cfg=rcfg, background=0.0))(coarse_params, align)
    update = jax.jit(an.make_update(fcfg, an.AnchorConfig(steps_per_call=50, n_rays=512, render=rcfg)))
    render = jax.jit(lambda p, c: an.render_views(p, fcfg, c, None, rcfg))
    hum = human["alpha"] > 0.5
    obj = (scene["alpha"][n_t + n_a:] > 0.5) & ~hum
    _, coarse_eval = render(coarse_params, evalc)
    print(f"coarse: IoU with the full human {float(an.mask_iou(coarse_eval, human['alpha'])):.3f}")
    for part in args.margins.split(","):
        m = None if part == "none" else float(part)
        t0 = time.perf_counter()
        kw = {} if m is None else dict(depth=o["depth"], occluder_margin=m)
        rays = an.alignment_rays(align, o["rgb"], o["alpha"], visible_human[n_t:n_t + n_a], **kw)
        state, _ = update(an.init(jax.random.key(1), coarse_params), rays, an.AnchorWeights.default())
        _, a_eval = render(state.params, evalc)
        iou = float(an.mask_iou(a_eval, human["alpha"]))
        recall = float(jnp.sum((a_eval > 0.5) & hum) / jnp.sum(hum))
        debris = float(jnp.sum((a_eval > 0.5) & obj) / jnp.sum(obj))
        print(f"occluder margin {m}: IoU {iou:.3f}, human recall {recall:.3f}, object pixels covered {debris:.3f} "
              f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
