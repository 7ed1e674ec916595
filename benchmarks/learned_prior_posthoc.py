"""CPU diagnostic (not a result): re-detect and re-fit an evaluation's saved renders with other keypoint sources.

    python benchmarks/learned_prior_posthoc.py --arrays .cache/prior/s8/eval_arrays.npz --sources anchor,both

Reads `eval_arrays.npz` written by learned_prior.py (coarse and anchor renders, true classes), detects keypoints with
the keypoint net for each source of learned_prior.KEYPOINT_SOURCES, fits Eq. 2 (PoseFitConfig()) and prints the pose
class accuracy (no relation check: the coarse depths are not saved). ~16 min per source on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax.numpy as jnp  # noqa: E402
import numpy as onp  # noqa: E402

import learned_prior as lp  # noqa: E402
import learned_prior_data as lpd  # noqa: E402
import train_prior as tp  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arrays", required=True)
    ap.add_argument("--sources", default="anchor,fused,both,coarse")
    ap.add_argument("--artifacts", default=".cache/prior/s5", help="anny-frozen-f1.npz, detector.pt, classes.json")
    ap.add_argument("--out", default=None, help="optional JSON of the results")
    args = ap.parse_args(argv)
    art = Path(args.artifacts)
    body = lpd.load_frozen_anny(art / "anny-frozen-f1.npz")
    setup, fbody = lp.pf.make_setup(body)
    betas = jnp.zeros((1,), jnp.float32)
    det = tp.load_detector(art / "detector.pt", "cpu")
    means = onp.asarray(json.loads((art / "classes.json").read_text())["mean"], onp.float32)
    a = onp.load(args.arrays)
    true = a["true"]
    res = a["coarse_rgb"].shape[-2]
    cams4, cams8 = (lp.pf.canonical_cameras(lp.canonical_views(n, res)) for n in (4, 8))
    a_rgb8, a_al8 = jnp.asarray(a["anchor_rgb8"], jnp.float32), jnp.asarray(a["anchor_alpha8"], jnp.float32)
    cimg = lp.over_white(jnp.asarray(a["coarse_rgb"], jnp.float32), jnp.asarray(a["coarse_alpha"], jnp.float32))
    out = {}
    for src in args.sources.split(","):
        t0 = time.perf_counter()
        kp, conf = lp.anchor_keypoints(det, a_rgb8, a_al8, 4, False, src, cimg)
        _, kp3d, _ = lp.fit_keypoints(fbody, setup, betas, kp, conf, lp.keypoint_cameras(cams4, cams8, 4, src), res,
                                      lp.pf.PoseFitConfig())
        pred = lp.classify(onp.asarray(lpd.pose_features(jnp.asarray(kp3d))), means)
        ok = pred == true
        out[src] = dict(accuracy_pose=float(ok.mean()), correct_per_class=[int(ok[true == c].sum()) for c in range(lp.NC)],
                        pred=pred.tolist())
        print(src, json.dumps(out[src]), f"{time.perf_counter() - t0:.0f} s", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
