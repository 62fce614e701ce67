"""Goldens of the SD-VAE decoder (runtime/vae.c) from diffusers' AutoencoderKL with random weights.

Runs in a venv with Debian's torch 1.13 and diffusers 0.31.0 (newer diffusers need newer torch):

    /usr/bin/python3 -m venv --system-site-packages build/venv-diffusers
    build/venv-diffusers/bin/pip install diffusers==0.31.0 'huggingface-hub<1.0' safetensors filelock regex importlib_metadata
    build/venv-diffusers/bin/python reference/vae_ref.py tests/golden

Writes
- tests/golden/vae_small/{diffusers,legacy/vae,ldm}/: config.json + diffusion_pytorch_model.safetensors of one
  small random decoder (block_out_channels (16, 32), 2 layers, 8 groups) in the three key layouts: diffusers'
  current keys in F32; diffusers' legacy attention names (query/key/value/proj_attn) in F16, inside a pipeline's
  vae/ folder; CompVis/ldm keys (decoder.up.N.block.M, 1×1-conv attention, first_stage_model. prefix, with the
  encoder and quant_conv beside it) in BF16.
- tests/golden/vae_small.h5: z (2, 4, 8, 8), the decoder input (latents already divided by the scale factor),
  and images_<layout> (2, 3, 16, 16): AutoencoderKL.decode(z).sample with the weights rounded to that file's dtype.
- tests/golden/vae_sd.h5: the real sd-vae-ft-ema/-mse configuration with weights from `formula_weights`
  (a hash of the key and the index, which tests/test_vae.c computes too, so no 200 MB file is stored):
  z (1, 4, 8, 8) and images (1, 3, 64, 64).
Deterministic: fixed seeds, one thread; every file written under a temporary name and renamed.
"""
import json
import os
import sys

import h5py
import numpy as np
import torch
from diffusers import AutoencoderKL

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

SMALL = dict(block_out_channels=(16, 32), layers_per_block=2, norm_num_groups=8, latent_channels=4)
SD = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, latent_channels=4)


def make_vae(cfg):
    n = len(cfg["block_out_channels"])
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, sample_size=256, **cfg).eval()


def randomise(vae, gen):
    """Every parameter random (GroupNorm affine too), scaled to keep activations O(1)."""
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p[0].numel()))
            elif "norm" in name:
                p.copy_((1.0 + 0.2 * torch.randn(p.shape, generator=gen)) if name.endswith("weight")
                        else 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def splitmix_uniform(seed, n):
    """u (n) in [0, 1) with 24 bits: splitmix64 of seed + i·golden, top 24 bits (as tests/test_vae.c)."""
    m = np.uint64(0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = (z ^ (z >> np.uint64(31))) & m
    return ((z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)


def fnv1a(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def formula_tensor(name, shape):
    """The value tests/test_vae.c gives parameter `name`: v = 2u − 1 (exact in float32), then weights
    v·sqrt(3 / fan_in), GroupNorm weights 1 + 0.2·v, GroupNorm biases 0.2·v, other biases 0.1·v."""
    n = int(np.prod(shape))
    v = np.float32(2.0) * splitmix_uniform(fnv1a(name), n) - np.float32(1.0)
    if len(shape) > 1:
        out = v * np.float32(np.sqrt(3.0 / (n // shape[0])))
    elif "norm" in name:
        out = (np.float32(1.0) + np.float32(0.2) * v) if name.endswith("weight") else np.float32(0.2) * v
    else:
        out = np.float32(0.1) * v
    return torch.from_numpy(out.astype(np.float32).reshape(shape))


def legacy_key(k):
    for new, old in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")):
        if ".mid_block.attentions.0" in k:
            k = k.replace(new, old)
    return k


def ldm_key(k, n_blocks):
    """diffusers key → CompVis/ldm key (decoder side; other keys unchanged)."""
    fixed = [("decoder.mid_block.resnets.0.", "decoder.mid.block_1."), ("decoder.mid_block.resnets.1.", "decoder.mid.block_2."),
             ("decoder.mid_block.attentions.0.group_norm.", "decoder.mid.attn_1.norm."),
             ("decoder.mid_block.attentions.0.to_q.", "decoder.mid.attn_1.q."),
             ("decoder.mid_block.attentions.0.to_k.", "decoder.mid.attn_1.k."),
             ("decoder.mid_block.attentions.0.to_v.", "decoder.mid.attn_1.v."),
             ("decoder.mid_block.attentions.0.to_out.0.", "decoder.mid.attn_1.proj_out."),
             ("decoder.conv_norm_out.", "decoder.norm_out.")]
    for a, b in fixed:
        if k.startswith(a):
            return b + k[len(a):]
    parts = k.split(".")
    if k.startswith("decoder.up_blocks."):
        i = n_blocks - 1 - int(parts[2])
        if parts[3] == "resnets":
            leaf = ".".join(parts[5:]).replace("conv_shortcut.", "nin_shortcut.")
            return f"decoder.up.{i}.block.{parts[4]}.{leaf}"
        if parts[3] == "upsamplers":
            return f"decoder.up.{i}.upsample.conv.{parts[-1]}"
    return k


def write_config(folder, vae):
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(vae.config).items() if not k.startswith("_")}
    cfg = {"_class_name": "AutoencoderKL", "_diffusers_version": "0.31.0", **cfg}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json.tmp"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    os.replace(os.path.join(folder, "config.json.tmp"), os.path.join(folder, "config.json"))


def decoder_state(vae):
    return {k: v for k, v in vae.state_dict().items() if k.startswith(("decoder.", "post_quant_conv."))}


def decode_rounded(vae, z, dtype):
    """decode(z) with every parameter rounded to dtype (as a file of that dtype stores them)."""
    saved = {k: v.clone() for k, v in vae.state_dict().items()}
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
        out = vae.decode(z).sample
    vae.load_state_dict(saved)
    return out


def write_h5(path, arrays):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main(out_dir):
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20261207)
    vae = make_vae(SMALL)
    randomise(vae, gen)
    z = torch.randn(2, 4, 8, 8, generator=gen)
    n_blocks = len(SMALL["block_out_channels"])
    base = os.path.join(out_dir, "vae_small")
    dec = decoder_state(vae)
    layouts = {
        "diffusers": (os.path.join(base, "diffusers"), torch.float32, dec),
        "legacy": (os.path.join(base, "legacy", "vae"), torch.float16, {legacy_key(k): v for k, v in dec.items()}),
    }
    ldm = {}
    for k, v in vae.state_dict().items():  # the whole autoencoder, as a CompVis checkpoint holds it
        key = ldm_key(k, n_blocks)
        if key.startswith("decoder.mid.attn_1.") and key.endswith("weight") and v.dim() == 2:
            v = v[:, :, None, None]
        ldm["first_stage_model." + key] = v
    layouts["ldm"] = (os.path.join(base, "ldm"), torch.bfloat16, ldm)
    arrays = {"z": z.numpy()}
    for name, (folder, dtype, tensors) in layouts.items():
        write_config(folder, vae)
        st_io.save(os.path.join(folder, "diffusion_pytorch_model.safetensors"),
                   {k: v.to(dtype).contiguous() for k, v in tensors.items()})
        arrays[f"images_{name}"] = decode_rounded(vae, z, dtype).numpy()
    write_h5(os.path.join(out_dir, "vae_small.h5"), arrays)

    sd = make_vae(SD)
    with torch.no_grad():
        for k, p in sd.named_parameters():
            if k.startswith(("decoder.", "post_quant_conv.")):
                p.copy_(formula_tensor(k, tuple(p.shape)))
        z = torch.randn(1, 4, 8, 8, generator=gen)
        images = sd.decode(z).sample
    write_h5(os.path.join(out_dir, "vae_sd.h5"), {"z": z.numpy(), "images": images.numpy()})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden")
