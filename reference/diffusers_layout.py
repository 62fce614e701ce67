"""Official DiT weights in the diffusers DiTTransformer2DModel layout.

The mapping of diffusers' scripts/convert_dit_to_diffusers.py: the timestep
and label embedders are copied into every block's norm1.emb, qkv is split
into to_q/to_k/to_v, pos_embed is not stored (diffusers recomputes it).
"""
import torch

DIFFUSERS_VERSION = "0.29.2"  # the version whose loader checked this layout


def diffusers_state_dict(cfg, w):
    """{diffusers key: tensor} from {official key: tensor}."""
    out = {"pos_embed.proj.weight": w["x_embedder.proj.weight"], "pos_embed.proj.bias": w["x_embedder.proj.bias"]}
    shared = {
        "norm1.emb.timestep_embedder.linear_1.": "t_embedder.mlp.0.",
        "norm1.emb.timestep_embedder.linear_2.": "t_embedder.mlp.2.",
        "norm1.linear.": "blocks.{i}.adaLN_modulation.1.",
        "attn1.to_out.0.": "blocks.{i}.attn.proj.",
        "ff.net.0.proj.": "blocks.{i}.mlp.fc1.",
        "ff.net.2.": "blocks.{i}.mlp.fc2.",
    }
    for i in range(cfg.depth):
        b = f"transformer_blocks.{i}."
        for new, old in shared.items():
            for p in ("weight", "bias"):
                out[b + new + p] = w[old.format(i=i) + p]
        out[b + "norm1.emb.class_embedder.embedding_table.weight"] = w["y_embedder.embedding_table.weight"]
        for p in ("weight", "bias"):
            q, k, v = torch.chunk(w[f"blocks.{i}.attn.qkv.{p}"], 3, dim=0)
            out[b + "attn1.to_q." + p], out[b + "attn1.to_k." + p], out[b + "attn1.to_v." + p] = q, k, v
    for p in ("weight", "bias"):
        out["proj_out_1." + p] = w["final_layer.adaLN_modulation.1." + p]
        out["proj_out_2." + p] = w["final_layer.linear." + p]
    return {k: v.contiguous() for k, v in out.items()}


def diffusers_config(cfg):
    """transformer/config.json of a DiTTransformer2DModel with this architecture."""
    return {
        "_class_name": "DiTTransformer2DModel",
        "_diffusers_version": DIFFUSERS_VERSION,
        "activation_fn": "gelu-approximate",
        "attention_bias": True,
        "attention_head_dim": cfg.hidden_size // cfg.num_heads,
        "dropout": 0.0,
        "in_channels": cfg.in_channels,
        "norm_elementwise_affine": False,
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "norm_type": "ada_norm_zero",
        "num_attention_heads": cfg.num_heads,
        "num_embeds_ada_norm": cfg.num_classes,
        "num_layers": cfg.depth,
        "out_channels": cfg.out_channels,
        "patch_size": cfg.patch_size,
        "sample_size": cfg.input_size,
        "upcast_attention": False,
    }
