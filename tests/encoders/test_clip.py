"""CLIP image encoder: forward parity with transformers, strict loading of both on-disk formats,
clear errors for bad weights, the real architectures' shapes, hub loading through a local cache."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPVisionModelWithProjection

from model.encoders import registry
from model.encoders.clip import (
    Checkpoint,
    ClipImageEncoder,
    apply_checkpoint_config,
    architecture,
    build_random_checkpoint,
    hf_vision_config,
    load_checkpoint_into,
    map_state_dict,
    random_state_dict,
    read_checkpoint,
    to_open_clip,
)

TINY = "clip-tiny-random"
REAL = ("metaclip-bigg14-quickgelu", "dfn5b-h14-384")
TOL = 1e-5


# ---- helpers written from the two libraries' layouts, independent of clip.py's mapping tables ----

def hf_twin(arch, seed: int) -> CLIPVisionModelWithProjection:
    """transformers' own model with transformers' init, LayerNorms jittered (so a swap shows)."""
    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(hf_vision_config(arch)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "layrnorm" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith("class_embedding"):
                p.normal_(0, 0.5)
    return model


def hf_to_open_clip(sd: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """transformers names → open_clip names, as open_clip's VisionTransformer stores them
    (conv1 without bias, in_proj = [q; k; v], proj = visual_projection transposed)."""
    v, e = "vision_model.", "vision_model.embeddings."
    out = {
        "visual.conv1.weight": sd[e + "patch_embedding.weight"],
        "visual.class_embedding": sd[e + "class_embedding"],
        "visual.positional_embedding": sd[e + "position_embedding.weight"],
        "visual.proj": sd["visual_projection.weight"].t().contiguous(),
    }
    for ours, theirs in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for wb in ("weight", "bias"):
            out[f"visual.{ours}.{wb}"] = sd[f"{v}{theirs}.{wb}"]
    for i in range(layers):
        src, dst = f"{v}encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        out[dst + "attn.in_proj_weight"] = torch.cat([sd[f"{src}self_attn.{p}_proj.weight"] for p in "qkv"])
        out[dst + "attn.in_proj_bias"] = torch.cat([sd[f"{src}self_attn.{p}_proj.bias"] for p in "qkv"])
        for ours, theirs in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            for wb in ("weight", "bias"):
                out[f"{dst}{ours}.{wb}"] = sd[f"{src}{theirs}.{wb}"]
    return {k: t.clone() for k, t in out.items()}


def open_clip_visual_names(layers: int) -> set[str]:
    """Hand list of open_clip's visual tower names (open_clip/transformer.py VisionTransformer,
    ResidualAttentionBlock with nn.MultiheadAttention)."""
    names = {"visual.class_embedding", "visual.positional_embedding", "visual.proj", "visual.conv1.weight",
             "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias"}
    for i in range(layers):
        r = f"visual.transformer.resblocks.{i}."
        names |= {r + "attn.in_proj_weight", r + "attn.in_proj_bias", r + "attn.out_proj.weight",
                  r + "attn.out_proj.bias"}
        for m in ("ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            names |= {f"{r}{m}.weight", f"{r}{m}.bias"}
    return names


def pixels(arch, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, arch.image_size, arch.image_size, generator=torch.Generator().manual_seed(seed))


def run(enc: ClipImageEncoder, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return enc(x)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """A transformers-initialised tiny twin saved with save_pretrained, and its reference outputs."""
    arch = architecture(TINY)
    model = hf_twin(arch, seed=3)
    d = tmp_path_factory.mktemp("tiny") / "hf"
    model.save_pretrained(d)
    x = pixels(arch)
    with torch.no_grad():
        ref = model(pixel_values=x).image_embeds
    return {"model": model, "dir": d, "x": x, "ref": ref, "arch": arch}


# ---- forward parity and the two formats ------------------------------------------------------------

def test_transformers_dir_loads_and_equals_transformers_image_embeds(tiny_hf):
    enc = ClipImageEncoder.load(TINY, tiny_hf["dir"])
    out = run(enc, tiny_hf["x"])
    assert out.shape == (2, registry.feature_spec(TINY).dim)
    assert torch.allclose(out, tiny_hf["ref"], atol=TOL, rtol=0), (out - tiny_hf["ref"]).abs().max()
    assert enc.identity.startswith(f"{TINY}@sha256:") and len(enc.identity.split(":")[-1]) == 12
    assert enc.patch_embed.weight.dtype == torch.float32 and not enc.training


def test_transformers_bin_and_clipmodel_layout(tiny_hf, tmp_path):
    """pytorch_model.bin (safe_serialization=False) and a full CLIPModel-style file (text tower
    tensors present, nested vision_config) loads too."""
    d = tmp_path / "bin"  # the older transformers layout (transformers 5 only writes safetensors)
    d.mkdir()
    torch.save(tiny_hf["model"].state_dict(), d / "pytorch_model.bin")
    (d / "config.json").write_text((tiny_hf["dir"] / "config.json").read_text())
    assert torch.allclose(run(ClipImageEncoder.load(TINY, d), tiny_hf["x"]), tiny_hf["ref"], atol=TOL)
    full = tmp_path / "clipmodel"
    full.mkdir()
    sd = dict(tiny_hf["model"].state_dict())
    sd["text_model.embeddings.token_embedding.weight"] = torch.zeros(10, 8)
    sd["text_projection.weight"] = torch.zeros(8, 8)
    sd["logit_scale"] = torch.tensor(2.0)
    from safetensors.torch import save_file

    save_file(sd, str(full / "model.safetensors"))
    vision = json.loads((tiny_hf["dir"] / "config.json").read_text())
    (full / "config.json").write_text(json.dumps({"model_type": "clip", "projection_dim": vision["projection_dim"],
                                                  "vision_config": vision}))
    assert torch.allclose(run(ClipImageEncoder.load(TINY, full), tiny_hf["x"]), tiny_hf["ref"], atol=TOL)


def test_sharded_transformers_checkpoint(tiny_hf, tmp_path):
    """A large checkpoint is saved in shards with an index (bigG is): all shards are read."""
    d = tmp_path / "sharded"
    tiny_hf["model"].save_pretrained(d, max_shard_size="100KB")
    assert (d / "model.safetensors.index.json").is_file() and len(list(d.glob("model-*.safetensors"))) > 1
    assert torch.allclose(run(ClipImageEncoder.load(TINY, d), tiny_hf["x"]), tiny_hf["ref"], atol=TOL)


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_open_clip_state_dict_loads_and_equals_transformers(tiny_hf, tmp_path, suffix):
    sd = hf_to_open_clip(tiny_hf["model"].state_dict(), tiny_hf["arch"].layers)
    # a full open_clip CLIP file also holds the text tower: recognised and skipped
    sd |= {"token_embedding.weight": torch.zeros(10, 8), "positional_embedding": torch.zeros(77, 8),
           "transformer.resblocks.0.ln_1.weight": torch.ones(8), "ln_final.weight": torch.ones(8),
           "text_projection": torch.zeros(8, 8), "logit_scale": torch.tensor(4.6)}
    path = tmp_path / f"open_clip_pytorch_model{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save(sd, path)
    enc = ClipImageEncoder.load(TINY, path)
    assert torch.allclose(run(enc, tiny_hf["x"]), tiny_hf["ref"], atol=TOL, rtol=0)


def test_open_clip_training_checkpoint_wrapper(tiny_hf, tmp_path):
    """open_clip's own loader accepts {"state_dict": {"module.visual...": ...}}; so do we."""
    sd = hf_to_open_clip(tiny_hf["model"].state_dict(), tiny_hf["arch"].layers)
    path = tmp_path / "epoch_32.pt"
    torch.save({"epoch": 32, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    assert torch.allclose(run(ClipImageEncoder.load(TINY, path), tiny_hf["x"]), tiny_hf["ref"], atol=TOL)


def test_open_clip_names_are_open_clips(tmp_path):
    """The open_clip twin has exactly open_clip's names and shapes (hand list from open_clip's code)."""
    arch = architecture(TINY)
    sd = torch.load(build_random_checkpoint(TINY, tmp_path / "oc.bin", seed=1), weights_only=True)
    assert set(sd) == open_clip_visual_names(arch.layers)
    w, p = arch.width, arch.patch_size
    assert sd["visual.conv1.weight"].shape == (w, 3, p, p)
    assert sd["visual.positional_embedding"].shape == ((arch.image_size // p) ** 2 + 1, w)
    assert sd["visual.proj"].shape == (w, arch.output_dim)
    assert sd["visual.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * w, w)
    assert sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape == (arch.mlp_dim, w)


def test_both_twin_formats_give_the_same_encoder(tmp_path):
    """build_random_checkpoint: the same seed in both formats → the same features; encode is unit
    length [T, dim] float32 (MMAudio normalises its CLIP features)."""
    a = ClipImageEncoder.load(TINY, build_random_checkpoint(TINY, tmp_path / "a.safetensors", seed=5))
    b = ClipImageEncoder.load(TINY, build_random_checkpoint(TINY, tmp_path / "b", seed=5, fmt="transformers"))
    c = ClipImageEncoder.load(TINY, build_random_checkpoint(TINY, tmp_path / "c.bin", seed=6))
    frames = np.random.default_rng(0).integers(0, 256, (3, 120, 200, 3), dtype=np.uint8)
    fa, fb, fc = a.encode(frames), b.encode(frames), c.encode(frames)
    assert fa.shape == (3, 64) and fa.dtype == torch.float32
    assert torch.allclose(fa, fb, atol=TOL)
    assert not torch.allclose(fa, fc, atol=1e-3)
    assert torch.allclose(fa.norm(dim=-1), torch.ones(3), atol=1e-5)
    raw = run(a, a.preprocess(frames))
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=-1), fa, atol=1e-6)


def test_tiny_without_weights_is_seeded_and_deterministic():
    a, b = ClipImageEncoder.load(TINY), registry.load_encoder(TINY)
    assert a.identity == b.identity == f"{TINY}@random-seed0"
    frames = np.full((2, 64, 64, 3), 90, dtype=np.uint8)
    assert torch.equal(a.encode(frames), b.encode(frames))


@pytest.mark.parametrize("name", REAL)
def test_real_width_tower_equals_transformers(name, tmp_path):
    """Each real entry at its real width, heads, MLP, patch, frame size and activation (one block
    instead of 32/48, to stay small): transformers' model saved to disk, loaded here, same output."""
    arch = replace(architecture(name), layers=1)
    model = hf_twin(arch, seed=11)
    model.save_pretrained(tmp_path / "hf")
    x = pixels(arch, n=1)
    with torch.no_grad():
        ref = model(pixel_values=x).image_embeds
    ckpt = read_checkpoint(tmp_path / "hf")
    enc = ClipImageEncoder(name, apply_checkpoint_config(arch, ckpt))
    load_checkpoint_into(enc, ckpt)
    out = run(enc.eval(), x)
    assert out.shape == (1, registry.feature_spec(name).dim)
    assert torch.allclose(out, ref, atol=TOL, rtol=0), (out - ref).abs().max()


# ---- the full-size architectures (meta device: shapes only, no memory) ------------------------------

# open_clip model configs (src/open_clip/model_configs/*.json), vision part and embed_dim
OPEN_CLIP_CONFIGS = {
    "metaclip-bigg14-quickgelu": {"embed_dim": 1280, "quick_gelu": True, "vision_cfg": {
        "image_size": 224, "layers": 48, "width": 1664, "head_width": 104, "mlp_ratio": 4.9231, "patch_size": 14}},
    "dfn5b-h14-384": {"embed_dim": 1024, "quick_gelu": True, "vision_cfg": {
        "image_size": 378, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14}},
}


@pytest.mark.parametrize("name", REAL)
def test_full_size_tower_matches_transformers_and_open_clip_configs(name):
    arch = architecture(name)
    spec = registry.feature_spec(name)
    assert (arch.output_dim, arch.image_size) == (spec.dim, spec.frame_size)
    with torch.device("meta"):
        ours = ClipImageEncoder(name).state_dict()
        hf = CLIPVisionModelWithProjection(hf_vision_config(arch)).state_dict()
    mapped = map_state_dict(dict(hf), "transformers", arch.layers, f"<{name} meta>")
    assert set(mapped) == set(ours)
    assert all(mapped[k].shape == ours[k].shape for k in ours)
    # open_clip's config for the release says the same (the DFN5B grid: 384 // 14 = 378 // 14 = 27)
    cfg = OPEN_CLIP_CONFIGS[name]
    ckpt = Checkpoint("open_clip", {}, "<cfg>", "x", config={"model_cfg": cfg}, config_file=f"{name}/open_clip_config.json")
    assert apply_checkpoint_config(arch, ckpt) == arch
    params = sum(t.numel() for t in ours.values())
    assert params > (1.8e9 if name.startswith("metaclip") else 6.3e8)


def test_every_clip_registry_entry_has_a_tower():
    for name, entry in registry.ENCODERS.items():
        if entry.spec.kind == "clip":
            assert architecture(name).output_dim == entry.spec.dim
            assert entry.impl == "model.encoders.clip:ClipImageEncoder"
    assert architecture(registry.PAPER_ENCODERS["clip"]).width == 1664


# ---- strictness and bad files ----------------------------------------------------------------------

def test_missing_tensor_is_named(tiny_hf, tmp_path):
    sd = hf_to_open_clip(tiny_hf["model"].state_dict(), 2)
    del sd["visual.transformer.resblocks.1.mlp.c_fc.bias"]
    path = tmp_path / "m.bin"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"m\.bin.*1 missing tensor\(s\): visual\.transformer\.resblocks\.1\.mlp\.c_fc\.bias"):
        ClipImageEncoder.load(TINY, path)


def test_unexpected_tensor_is_named(tiny_hf, tmp_path):
    sd = hf_to_open_clip(tiny_hf["model"].state_dict(), 2)
    sd["visual.transformer.resblocks.2.ln_1.weight"] = torch.ones(64)  # a third block
    sd["visual.attn_pool.query"] = torch.zeros(4, 64)
    path = tmp_path / "u.safetensors"
    from safetensors.torch import save_file

    save_file(sd, str(path))
    with pytest.raises(ValueError, match=r"u\.safetensors.*2 unexpected tensor\(s\): visual\.attn_pool\.query, "
                                         r"visual\.transformer\.resblocks\.2\.ln_1\.weight"):
        ClipImageEncoder.load(TINY, path)


def test_transformers_missing_tensor_is_named(tiny_hf, tmp_path):
    from safetensors.torch import save_file

    d = tmp_path / "hf"
    d.mkdir()
    sd = dict(tiny_hf["model"].state_dict())
    del sd["vision_model.encoder.layers.0.self_attn.k_proj.weight"]
    save_file(sd, str(d / "model.safetensors"))
    (d / "config.json").write_text((tiny_hf["dir"] / "config.json").read_text())
    with pytest.raises(ValueError, match=r"missing tensor\(s\): vision_model\.encoder\.layers\.0\.self_attn\.k_proj\.weight"):
        ClipImageEncoder.load(TINY, d)


def test_wrong_shape_is_named(tmp_path):
    """DFN5B's names but the tiny shapes: every tensor is there, the shapes say it is the wrong file."""
    arch = architecture(TINY)
    sd = to_open_clip(random_state_dict(TINY, arch))
    sd["visual.proj"] = torch.zeros(64, 32)
    path = tmp_path / "s.bin"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"s\.bin.*projection\.weight \(ours \(64, 64\), file gives \(32, 64\)\)"):
        ClipImageEncoder.load(TINY, path)
    with pytest.raises(ValueError, match=r"s\.bin.*missing tensor"):  # 2 blocks where DFN5B has 32
        ClipImageEncoder.load("dfn5b-h14-384", path)


def test_config_mismatch_is_named(tiny_hf, tmp_path):
    d = tmp_path / "hf"
    tiny_hf["model"].save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_attention_heads"] = 8
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json.*heads=8 \(registry tower: 4\)"):
        ClipImageEncoder.load(TINY, d)


def test_checkpoint_config_sets_activation_and_mean_std(tiny_hf, tmp_path):
    """A transformers checkpoint that says GELU runs GELU (what transformers would run), and its
    preprocessor_config.json's mean/std are used."""
    d = tmp_path / "hf"
    tiny_hf["model"].save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["hidden_act"] = "gelu"
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.25] * 3}))
    enc = ClipImageEncoder.load(TINY, d)
    assert enc.arch.quick_gelu is False and enc.arch.mean == (0.5,) * 3 and enc.arch.std == (0.25,) * 3
    gelu = CLIPVisionModelWithProjection.from_pretrained(d).eval()
    with torch.no_grad():
        ref = gelu(pixel_values=tiny_hf["x"]).image_embeds
    assert torch.allclose(run(enc, tiny_hf["x"]), ref, atol=TOL)
    assert not torch.allclose(ref, tiny_hf["ref"], atol=1e-4)
    frames = np.full((1, 224, 224, 3), 255, dtype=np.uint8)
    assert torch.allclose(enc.preprocess(frames), torch.full((1, 3, 224, 224), 2.0))


def test_missing_weights_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.bin: CLIP weights not found"):
        ClipImageEncoder.load(TINY, tmp_path / "nope.bin")
    with pytest.raises(FileNotFoundError, match="not found"):
        ClipImageEncoder.load(TINY, "./relative/dir/weights.pt")


def test_unreadable_weights_named(tmp_path):
    bad = tmp_path / "open_clip_pytorch_model.bin"
    bad.write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(ValueError, match=r"open_clip_pytorch_model\.bin: cannot read CLIP weights"):
        ClipImageEncoder.load(TINY, bad)
    bad_st = tmp_path / "x.safetensors"
    bad_st.write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match=r"x\.safetensors: cannot read CLIP weights"):
        ClipImageEncoder.load(TINY, bad_st)
    pickled = tmp_path / "evil.pt"
    torch.save({"visual.proj": object()}, pickled)  # not loadable with weights_only
    with pytest.raises(ValueError, match=r"evil\.pt: cannot read CLIP weights"):
        ClipImageEncoder.load(TINY, pickled)


def test_unknown_layout_named(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save({"layer1.0.conv1.weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match=r"resnet\.pth: unknown CLIP weights layout.*layer1\.0\.conv1\.weight"):
        ClipImageEncoder.load(TINY, other)
    notdict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], notdict)
    with pytest.raises(ValueError, match=r"list\.pt: unknown CLIP weights layout"):
        ClipImageEncoder.load(TINY, notdict)
    d = tmp_path / "somedir"
    d.mkdir()
    (d / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"somedir: unknown CLIP checkpoint layout.*readme\.txt"):
        ClipImageEncoder.load(TINY, d)
    txt = tmp_path / "weights.txt"
    txt.write_text("x")
    with pytest.raises(ValueError, match=r"weights\.txt: unknown CLIP weights file type"):
        ClipImageEncoder.load(TINY, txt)


# ---- hub ids (through a local hub cache, offline) ---------------------------------------------------

def _fake_hub_cache(cache: Path, repo: str, commit: str, files: dict[str, Path]) -> None:
    base = cache / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    for name, src in files.items():
        (snap / name).write_bytes(src.read_bytes())


def test_hub_id_open_clip_repo_from_cache(tiny_hf, tmp_path):
    sd = hf_to_open_clip(tiny_hf["model"].state_dict(), 2)
    torch.save(sd, tmp_path / "w.bin")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model_cfg": {"embed_dim": 64, "quick_gelu": True, "vision_cfg": {
        "image_size": 224, "layers": 2, "width": 64, "head_width": 16, "patch_size": 32, "mlp_ratio": 4.0}},
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                           "interpolation": "bicubic", "resize_mode": "squash"}}))
    commit = "a" * 40
    _fake_hub_cache(tmp_path / "hub", "someorg/tiny-clip", commit,
                    {"open_clip_pytorch_model.bin": tmp_path / "w.bin", "open_clip_config.json": cfg})
    enc = ClipImageEncoder.load(TINY, "someorg/tiny-clip", cache_dir=tmp_path / "hub", local_files_only=True)
    assert enc.identity == f"{TINY}@{commit}"
    assert torch.allclose(run(enc, tiny_hf["x"]), tiny_hf["ref"], atol=TOL)
    with pytest.raises(FileNotFoundError, match=r"someorg/other-clip@main.*no CLIP checkpoint found"):
        ClipImageEncoder.load(TINY, "someorg/other-clip", cache_dir=tmp_path / "hub", local_files_only=True)


def test_hub_id_transformers_repo_from_cache(tiny_hf, tmp_path):
    commit = "b" * 40
    _fake_hub_cache(tmp_path / "hub", "someorg/tiny-hf", commit,
                    {"config.json": tiny_hf["dir"] / "config.json",
                     "model.safetensors": tiny_hf["dir"] / "model.safetensors"})
    enc = ClipImageEncoder.load(TINY, "someorg/tiny-hf", cache_dir=tmp_path / "hub", local_files_only=True)
    assert enc.identity == f"{TINY}@{commit}"
    assert torch.allclose(run(enc, tiny_hf["x"]), tiny_hf["ref"], atol=TOL)
