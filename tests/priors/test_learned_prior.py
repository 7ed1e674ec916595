"""The learned prior of issue 7 (benchmarks/train_prior.py): a tiny version trains on CPU, saves in the
DeepFloyd-IF stage-I layout and loads through the production loaders with the same eps prediction."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as onp
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import train_prior as tp  # noqa: E402

from anchorhoi_jax.priors.guidance import load_if_prior  # noqa: E402
from anchorhoi_jax.priors.image import IFPrior  # noqa: E402
from anchorhoi_jax.priors.manifest import MissingWeightsError  # noqa: E402


def _data(n=24, res=16, seed=0):
    rng = onp.random.default_rng(seed)
    cls = rng.integers(0, len(tp.CLASSES), n)
    # class-dependent mean colour so a few steps have something to fit
    img = (rng.random((n, res, res, 3)) * 60 + (cls[:, None, None, None] * 60)).astype(onp.uint8)
    return dict(image=img, cls=cls, tag=rng.integers(0, len(tp.VIEW_TAGS), n))


@pytest.fixture(scope="module")
def trained():
    data = _data()
    unet, te, tok, sched, info = tp.train_prior(data, unet_config=tp.TINY_UNET_CONFIG, steps=6, batch=4, lr=1e-3,
                                                device="cpu", log_every=3, log=lambda *_: None)
    return unet, te, tok, sched, info


def test_tokenizer_is_word_level_over_the_prompts():
    tok = tp.build_tokenizer()
    vocab = dict(tp.vocabulary())
    for p in tp.all_prompts():
        ids = tok(p).input_ids
        assert ids[-1] == 1  # </s>
        assert 2 not in ids  # no <unk>: every word of every training prompt is in the vocabulary
    # the view tag and the class are separate tokens: prompts differ exactly where the words differ
    a = tok("a person sitting on a box, front view").input_ids
    b = tok("a person sitting on a box, back view").input_ids
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
    assert len(tok) == len(vocab)


def test_spiece_model_encodes_the_same_vocabulary():
    pb = pytest.importorskip("transformers.utils.sentencepiece_model_pb2_new")
    m = pb.ModelProto()
    m.ParseFromString(tp.spiece_model_bytes(tp.vocabulary()))
    assert [(p.piece, p.score) for p in m.pieces] == [(p, pytest.approx(s)) for p, s in tp.vocabulary()]
    assert m.trainer_spec.model_type == 1 and m.trainer_spec.eos_id == 1 and m.trainer_spec.bos_id == -1
    assert [p.type for p in m.pieces[:3]] == [3, 3, 2]


def test_training_reduces_nothing_to_nan_and_reports_steps(trained):
    *_, info = trained
    assert info["steps_done"] == 6
    assert all(onp.isfinite(h["loss"]) for h in info["history"])
    assert len(info["history"]) == 2


def test_save_reload_roundtrip_through_production_loaders(trained, tmp_path):
    unet, te, tok, sched, _ = trained
    out = tp.save_prior(tmp_path / "prior", unet, te, tok, sched, fp16=False)
    for rel in ("unet/config.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                "tokenizer/spiece.model", "tokenizer/tokenizer.json", "model_index.json"):
        assert (out / rel).exists(), rel
    prompts = ["a person lifting a box, side view", ""]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        emb_ref = tp.encode_prompts(te, tok, prompts, "cpu")
        eps_ref = unet(z, t, encoder_hidden_states=emb_ref, return_dict=False)[0][:, :3]
    for prior in (IFPrior.from_pretrained(out, device="cpu", dtype=torch.float32),
                  load_if_prior(str(out), device="cpu", dtype=torch.float32)):
        emb = prior.embed(prompts)
        assert emb.shape == (2, tp.MAX_LENGTH, tp.TINY_UNET_CONFIG["encoder_hid_dim"])
        eps = prior.predict_eps(z, t, emb)
        torch.testing.assert_close(eps, eps_ref, rtol=1e-5, atol=1e-5)
    # the conditioning matters: another class gives another prediction
    other = prior.predict_eps(z, t, prior.embed(["a person pushing a crate, side view", ""]))
    assert not torch.allclose(other[0], eps_ref[0])


def test_fp16_variant_files_and_size(trained, tmp_path):
    unet, te, tok, sched, _ = trained
    out = tp.save_prior(tmp_path / "p16", unet, te, tok, sched, fp16=True)
    assert (out / "unet" / "diffusion_pytorch_model.fp16.safetensors").exists()
    assert (out / "text_encoder" / "model.fp16.safetensors").exists()
    prior = IFPrior.from_pretrained(out, device="cpu", dtype=torch.float16, load_text_encoder=False)
    assert next(prior.unet.parameters()).dtype == torch.float16


def test_full_size_unet_fits_the_budget():
    unet = tp.build_unet(tp.UNET_CONFIG)
    n = tp.count_params(unet)
    assert n <= 10_000_000, n  # fp16 weights <= 20 MB
    # IF's block types: ResNet down/up-sampling blocks at high resolution, text cross-attention below
    assert unet.config.down_block_types[0] == "ResnetDownsampleBlock2D"
    assert unet.config.down_block_types[-1] == "SimpleCrossAttnDownBlock2D"
    assert unet.config.up_block_types[0] == "SimpleCrossAttnUpBlock2D"
    assert unet.config.addition_embed_type == "text" and unet.config.encoder_hid_dim_type == "text_proj"


def test_missing_tokenizer_is_a_one_line_error(trained, tmp_path):
    unet, te, tok, sched, _ = trained
    out = tp.save_prior(tmp_path / "broken", unet, te, tok, sched, fp16=False)
    (out / "tokenizer" / "spiece.model").unlink()
    with pytest.raises(MissingWeightsError, match=r"missing weights for 'if-i-xl'.*tokenizer") as e:
        IFPrior.from_pretrained(out, device="cpu", dtype=torch.float32)
    assert "\n" not in str(e.value)


def test_detector_heatmap_decoding_recovers_peaks():
    H = W = 16
    kp = torch.tensor([[[3.5, 4.5], [10.2, 7.5]] + [[8.0, 8.0]] * 16])
    hm = tp._heatmap_targets(kp, torch.ones(1, 18), H, W)
    logits = torch.logit(hm.clamp(1e-4, 1 - 1e-4))
    out, conf = tp.decode_heatmaps(torch.cat([logits, torch.zeros(1, 3, H, W)], 1))
    torch.testing.assert_close(out[0, :2], kp[0, :2], atol=0.35, rtol=0)
    assert conf.min() > 0.85  # a peak on a pixel corner reads exp(-0.5 / 4.5) ~ 0.89


def test_lr_factor_warms_up_then_decays_to_zero():
    f = [tp.lr_factor(s, 10, 100) for s in range(101)]
    assert f[0] == pytest.approx(0.1 * 0.5 * (1 + onp.cos(0.0)))
    assert f[9] == pytest.approx(0.5 * (1 + onp.cos(onp.pi * 9 / 100)))
    assert max(f) <= 1.0 and f[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))


def test_cuda_graph_flag_is_eager_and_identical_on_cpu():
    data = _data(n=12)
    kw = dict(unet_config=tp.TINY_UNET_CONFIG, steps=3, batch=4, lr=1e-3, device="cpu", log=lambda *_: None)
    u0, *_, i0 = tp.train_prior(data, **kw)
    u1, *_, i1 = tp.train_prior(data, cuda_graph=True, **kw)
    assert i0["mode"] == i1["mode"] == "eager" and i1["steps_done"] == 3
    for a, b in zip(u0.parameters(), u1.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_pack_dir_pieces_rejoin_to_the_same_files(tmp_path):
    import tarfile

    src = tmp_path / "model"
    (src / "unet").mkdir(parents=True)
    blob = onp.random.default_rng(0).bytes(2500)
    (src / "unet" / "w.bin").write_bytes(blob)
    (src / "model_index.json").write_text("{}")
    parts = tp.pack_dir(src, tmp_path / "out", piece=1000)
    assert len(parts) >= 4 and all(p.stat().st_size <= 1000 for p in parts)
    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in sorted(parts)))
    with tarfile.open(joined) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert (tmp_path / "x" / "model" / "unet" / "w.bin").read_bytes() == blob
    assert (tmp_path / "x" / "model" / "model_index.json").read_text() == "{}"
