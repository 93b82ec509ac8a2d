#!/usr/bin/python3
"""Reference fixture for the TorchSharp SigLIP text tower and the SigLIP tokenizer.

THIS IS AN INDEPENDENT RE-IMPLEMENTATION CHECK, NOT THE ORIGINAL CODE. No `transformers` can be installed here, so
the forward pass below was written from torch primitives (torch 1.13, Debian's python3-torch) following the
semantics of transformers' SiglipTextModel as published (modeling_siglip.py): token + position embeddings, pre-LN
encoder layers (q/k/v/out projections, softmax(q k^T / sqrt(d_head) + padding mask) in float32, tanh GELU MLP),
final_layer_norm, pooled output = the LAST position, `head` Linear. The tokenizer follows transformers'
SiglipTokenizer: lowercase, "\u2581" + text, canonicalize_text (string.punctuation removed, whitespace runs
collapsed, stripped), SentencePiece with add_dummy_prefix switched off and the "<unk>" prefix trick, then "</s>".
SentencePiece itself is the real library (Debian python3-sentencepiece 0.1.97); the tiny Unigram model is trained
here on the corpus below (pad 0, </s> 1, <unk> 2, no <s>, as google/siglip-*'s spiece.model).

Run:  /usr/bin/python3 make_siglip_text_fixture.py   (writes spiece.model, weights.safetensors, io.safetensors, case.json)
"""
import json
import os
import re
import string
import struct
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb2
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20250801
CONFIG = dict(vocab_size=None, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=16, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh", pad_token_id=1, eos_token_id=1)

CORPUS = """a chest x-ray of a diseased patient
a chest x-ray of a normal patient
a photo of a benign lesion
a photo of a malignant lesion
a fundus image of a normal eye
a fundus image of a glaucoma eye
a scanning laser ophthalmoscope fundus image of a normal retina
a photo of a glaucoma
a fundus image of a retinopathy
a computed tomography of a normal chest
a computed tomography of a pneumonia
a brain mri of a normal brain
a brain mri of alzheimers disease
the lungs are clear and there is no pleural effusion
cardiomegaly with mild pulmonary edema
small left pleural effusion and atelectasis
no acute cardiopulmonary abnormality
melanoma nevus keratosis dermatofibroma basal cell carcinoma
optic disc cupping and retinal nerve fiber layer thinning
diabetic retinopathy with microaneurysms and hemorrhages
ground glass opacities in both lower lobes
hippocampal atrophy and enlarged ventricles
""" * 3

TEXTS = [
    "a chest X-ray of a diseased",
    "a chest X-ray of a normal",
    "a photo of a benign lesion",
    "a fundus image of a glaucoma",
    "a brain MRI of Alzheimer's disease",
    "A Computed-Tomography of a PNEUMONIA!!",
    "  leading and   trailing   spaces  ",
    "tabs\tand\nnewlines",
    "punctuation: (a), [b]; {c}... \"quoted\" 'single' ~tilde~ back`tick",
    "unseen words zebra quokka xylophone",
    "digits 12345 and 2.5 mm",
    "caf\u00e9 na\u00efve \u00e5ngstr\u00f6m",
    "a very long prompt that goes on and on about the chest x-ray of a patient with a normal heart and clear lungs",
    "",
    "!!!",
    "under\u2581score\u2581sign",
]

DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def train_spiece(path_prefix):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(CORPUS)
        corpus = f.name
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=path_prefix, model_type="unigram", vocab_size=150,
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, num_threads=1,
                                   normalization_rule_name="nmt_nfkc", minloglevel=2)
    os.unlink(corpus)


class HfStyleSiglipTokenizer:
    """transformers SiglipTokenizer semantics (see the module docstring), on the real sentencepiece library."""

    def __init__(self, model_file):
        with open(model_file, "rb") as f:
            proto = pb2.ModelProto.FromString(f.read())
        ns = pb2.NormalizerSpec()
        ns.add_dummy_prefix = False
        proto.normalizer_spec.MergeFrom(ns)
        self.sp = spm.SentencePieceProcessor()
        self.sp.LoadFromSerializedProto(proto.SerializeToString())
        self.unk_len = len(self.sp.encode("<unk>", out_type=str))

    @staticmethod
    def canonicalize(text):
        text = text.translate(str.maketrans("", "", string.punctuation))
        text = re.sub(r"\s+", " ", text)
        return text.strip()

    def encode(self, text):
        text = "\u2581" + text.replace("\u2581", " ")
        text = text.lower()
        text = self.canonicalize(text)
        pieces = self.sp.encode("<unk>" + text, out_type=str)
        pieces = pieces[self.unk_len:] if len(pieces) >= self.unk_len else pieces
        return [self.sp.piece_to_id(p) for p in pieces] + [CONFIG["eos_token_id"]]

    def batch(self, texts, max_length, pad_to_max):
        rows = []
        for t in texts:
            ids = self.encode(t)
            if len(ids) > max_length:
                ids = ids[:max_length - 1] + [CONFIG["eos_token_id"]]
            rows.append(ids)
        n = max_length if pad_to_max else max(len(r) for r in rows)
        ids = torch.tensor([r + [CONFIG["pad_token_id"]] * (n - len(r)) for r in rows], dtype=torch.int64)
        mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows], dtype=torch.int64)
        return ids, mask


def siglip_text_forward(w, ids, mask, cfg):
    """SiglipTextModel.forward → (last_hidden_state, pooler_output), written from torch primitives."""
    p = "text_model."
    d, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // heads
    eps = cfg["layer_norm_eps"]
    b, l = ids.shape
    x = w[p + "embeddings.token_embedding.weight"][ids] + w[p + "embeddings.position_embedding.weight"][torch.arange(l)][None]
    add = None
    if mask is not None:
        inv = 1.0 - mask[:, None, None, :].expand(b, 1, l, l).to(torch.float32)
        add = inv.masked_fill(inv.to(torch.bool), torch.finfo(torch.float32).min)
    for i in range(cfg["num_hidden_layers"]):
        q = f"{p}encoder.layers.{i}."
        r = x
        h = F.layer_norm(x, (d,), w[q + "layer_norm1.weight"], w[q + "layer_norm1.bias"], eps)

        def proj(name, t):
            return F.linear(t, w[q + f"self_attn.{name}.weight"], w[q + f"self_attn.{name}.bias"])

        def split(t):
            return t.view(b, l, heads, hd).transpose(1, 2)

        qs, ks, vs = split(proj("q_proj", h)), split(proj("k_proj", h)), split(proj("v_proj", h))
        a = torch.matmul(qs, ks.transpose(2, 3)) * hd ** -0.5
        if add is not None:
            a = a + add
        a = torch.softmax(a, dim=-1, dtype=torch.float32)
        h = torch.matmul(a, vs).transpose(1, 2).reshape(b, l, d)
        h = proj("out_proj", h)
        x = r + h
        r = x
        h = F.layer_norm(x, (d,), w[q + "layer_norm2.weight"], w[q + "layer_norm2.bias"], eps)
        h = F.linear(h, w[q + "mlp.fc1.weight"], w[q + "mlp.fc1.bias"])
        h = F.gelu(h, approximate="tanh")
        h = F.linear(h, w[q + "mlp.fc2.weight"], w[q + "mlp.fc2.bias"])
        x = r + h
    x = F.layer_norm(x, (d,), w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"], eps)
    pooled = F.linear(x[:, -1, :], w[p + "head.weight"], w[p + "head.bias"])
    return x, pooled


def random_weights(cfg, g):
    d, f, v, m = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["max_position_embeddings"]
    shapes = {"text_model.embeddings.token_embedding.weight": (v, d), "text_model.embeddings.position_embedding.weight": (m, d)}
    for i in range(cfg["num_hidden_layers"]):
        q = f"text_model.encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[q + f"self_attn.{n}.weight"] = (d, d)
            shapes[q + f"self_attn.{n}.bias"] = (d,)
        for n in ("layer_norm1", "layer_norm2"):
            shapes[q + f"{n}.weight"] = (d,)
            shapes[q + f"{n}.bias"] = (d,)
        shapes[q + "mlp.fc1.weight"], shapes[q + "mlp.fc1.bias"] = (f, d), (f,)
        shapes[q + "mlp.fc2.weight"], shapes[q + "mlp.fc2.bias"] = (d, f), (d,)
    shapes["text_model.final_layer_norm.weight"] = (d,)
    shapes["text_model.final_layer_norm.bias"] = (d,)
    shapes["text_model.head.weight"], shapes["text_model.head.bias"] = (d, d), (d,)
    w = {}
    for name, shape in shapes.items():
        if "norm" in name and name.endswith("weight"):
            w[name] = 1.0 + 0.3 * torch.randn(shape, generator=g)
        elif name.endswith("bias"):
            w[name] = 0.2 * torch.randn(shape, generator=g)
        elif "embedding" in name:
            w[name] = torch.randn(shape, generator=g)
        else:
            w[name] = torch.randn(shape, generator=g) / shape[1] ** 0.5
    return w


def main():
    prefix = os.path.join(HERE, "spiece")
    train_spiece(prefix)
    os.unlink(prefix + ".vocab")
    tok = HfStyleSiglipTokenizer(prefix + ".model")
    cfg = dict(CONFIG, vocab_size=tok.sp.get_piece_size())
    g = torch.Generator().manual_seed(SEED)
    w = random_weights(cfg, g)
    # What a full SiglipModel checkpoint also holds: the logit constants, a saved position_ids buffer, a vision key.
    extra = {
        "logit_scale": torch.tensor([2.302585]),
        "logit_bias": torch.tensor([-10.0]),
        "text_model.embeddings.position_ids": torch.arange(cfg["max_position_embeddings"])[None],
        "vision_model.post_layernorm.weight": torch.ones(8),
    }
    save_safetensors(os.path.join(HERE, "weights.safetensors"), {**w, **extra})

    ids_max, mask_max = tok.batch(TEXTS, cfg["max_position_embeddings"], pad_to_max=True)
    ids_long, mask_long = tok.batch(TEXTS[:6], cfg["max_position_embeddings"], pad_to_max=False)
    with torch.no_grad():
        last_max, pooled_max = siglip_text_forward(w, ids_max, None, cfg)
        _, pooled_max_masked = siglip_text_forward(w, ids_max, mask_max, cfg)
        _, pooled_long_masked = siglip_text_forward(w, ids_long, mask_long, cfg)
    save_safetensors(os.path.join(HERE, "io.safetensors"), {
        "ids_max": ids_max, "mask_max": mask_max, "ids_longest": ids_long, "mask_longest": mask_long,
        "last_hidden_state_max": last_max, "pooled_max": pooled_max,
        "pooled_max_masked": pooled_max_masked, "pooled_longest_masked": pooled_long_masked,
    })
    case = {
        "note": "independent re-implementation of transformers SiglipTextModel/SiglipTokenizer semantics (not the original code); "
                "sentencepiece 0.1.97 is the real library",
        "torch": torch.__version__, "sentencepiece": spm.__version__,
        "text_config": cfg, "texts": TEXTS,
        "token_ids": [tok.encode(t) for t in TEXTS],
        "pieces": [tok.sp.encode("<unk>" + HfStyleSiglipTokenizer.canonicalize(("\u2581" + t.replace("\u2581", " ")).lower()), out_type=str)[tok.unk_len:] for t in TEXTS],
    }
    with open(os.path.join(HERE, "case.json"), "w", encoding="utf-8") as f:
        json.dump(case, f, indent=1, ensure_ascii=False)
    with open(os.path.join(HERE, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"model_type": "siglip", "text_config": cfg, "vision_config": {}}, f, indent=1)


if __name__ == "__main__":
    main()
