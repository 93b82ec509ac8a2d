#!/usr/bin/python3
"""Golden fixture for the TorchSharp Swin Transformer: a tiny torchvision (0.14.1) SwinTransformer v1.

Run with Debian's python3-torchvision / torch 1.13:  /usr/bin/python3 make_swin_fixture.py
Writes weights.safetensors (torchvision state_dict keys), io.safetensors and case.json next to this script.
The config exercises shifted windows with padding (10x11 tokens, window 4), patch merging of odd sizes
(5x6 -> 3x3) and a stage whose padded size equals the window (shift switched off, as torchvision does).
safetensors is written by hand: 8-byte LE header length, JSON header padded with spaces to 8, raw LE data.
"""
import hashlib
import json
import os
import struct

import torch
import torchvision
from torchvision.models.swin_transformer import SwinTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240611
CONFIG = dict(patch_size=[4, 4], embed_dim=8, depths=[2, 2, 2], num_heads=[1, 2, 4], window_size=[4, 4],
              mlp_ratio=4.0, stochastic_depth_prob=0.0, num_classes=5)
INPUT_SHAPE = [2, 3, 40, 44]

DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    torch.manual_seed(SEED)
    model = SwinTransformer(**CONFIG)
    # Randomise every parameter so that each one matters (LayerNorm affine, biases, bias tables included).
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "relative_position_bias_table" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.dim() == 1 and name.endswith("weight"):  # LayerNorm gamma
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
    model.eval()
    x = torch.randn(INPUT_SHAPE, generator=g)

    io = {"input": x}
    with torch.no_grad():
        h = x
        for i, f in enumerate(model.features):
            h = f(h)
            io[f"features_{i}"] = h  # NHWC
        normed = model.norm(h)
        io["norm_out"] = normed
        pooled = model.flatten(model.avgpool(model.permute(normed)))
        io["pooled"] = pooled
        out = model(x)
        io["output"] = out
        assert torch.equal(model.head(pooled), out)

    sd = model.state_dict()
    save_safetensors(os.path.join(HERE, "weights.safetensors"), sd)
    save_safetensors(os.path.join(HERE, "io.safetensors"), io)

    def sha(p):
        return hashlib.sha256(open(os.path.join(HERE, p), "rb").read()).hexdigest()

    case = {
        "reference": "torchvision.models.swin_transformer.SwinTransformer (Swin v1)",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "config": CONFIG,
        "seed": SEED,
        "init": "torch.manual_seed(seed) for construction; then Generator(seed+1): bias tables N(0,1), LayerNorm "
                "weights 1+0.3N, biases 0.2N, other weights N(0,1)/sqrt(fan_in); input N(0,1) from the same generator",
        "mode": "eval, torch.no_grad",
        "input_shape": INPUT_SHAPE,
        "calls": {
            "features_i": "model.features[:i+1](input), NHWC (0: patch embed, odd: stages, even>0: PatchMerging)",
            "norm_out": "model.norm(features_5)",
            "pooled": "model.flatten(model.avgpool(model.permute(norm_out)))",
            "output": "model(input) = model.head(pooled)",
        },
        "tolerance": {"all": "max|diff| <= 1e-4 * max(1, max|ref|)"},
        "files": {p: {"bytes": os.path.getsize(os.path.join(HERE, p)), "sha256": sha(p)}
                  for p in ["weights.safetensors", "io.safetensors"]},
        "weights_keys": {k: {"dtype": DTYPES[v.dtype], "shape": list(v.shape)} for k, v in sd.items()},
        "io": {k: {"shape": list(v.shape), "min": v.min().item(), "max": v.max().item()} for k, v in io.items()},
    }
    with open(os.path.join(HERE, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
