using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace FairMedFM.Models.Hf;

/// <summary>
/// A relation between Hugging Face checkpoint tensors and this port's module tensors. "{i}" stands for a layer index.
/// The HF tensors, concatenated along dim 0, equal the module tensors concatenated along dim 0; each list is split by
/// its relative row parts (q/k/v ↔ fused qkv: [1,1,1] ↔ [3]; MultiheadAttention in_proj ↔ q + kv: [3] ↔ [1,2]).
/// <paramref name="ToOurs"/>/<paramref name="ToHf"/> reshape a single tensor (e.g. HF position embeddings
/// [N, D] ↔ timm pos_embed [1, N, D]).
/// </summary>
public sealed record HfKeyRule(string[] Hf, int[] HfParts, string[] Ours, int[] OurParts,
                               Func<Tensor, Tensor>? ToOurs = null, Func<Tensor, Tensor>? ToHf = null)
{
    public static HfKeyRule Rename(string hf, string ours, Func<Tensor, Tensor>? toOurs = null, Func<Tensor, Tensor>? toHf = null) =>
        new([hf], [1], [ours], [1], toOurs, toHf);

    /// <summary>HF [N, D] ↔ a leading batch axis [1, N, D] (position embeddings).</summary>
    public static HfKeyRule AddBatchAxis(string hf, string ours) => Rename(hf, ours, t => t.unsqueeze(0), t => t.squeeze(0));

    /// <summary>Weight and bias of a Linear/LayerNorm/Conv under two prefixes.</summary>
    public static IEnumerable<HfKeyRule> Module(string hf, string ours, bool bias = true) =>
        bias ? new[] { Rename(hf + ".weight", ours + ".weight"), Rename(hf + ".bias", ours + ".bias") } : new[] { Rename(hf + ".weight", ours + ".weight") };

    /// <summary>Separate q/k/v Linears ↔ one fused qkv Linear (weight and bias).</summary>
    public static IEnumerable<HfKeyRule> FuseQkv(string q, string k, string v, string qkv) =>
        new[] { "weight", "bias" }.Select(p => new HfKeyRule([$"{q}.{p}", $"{k}.{p}", $"{v}.{p}"], [1, 1, 1], [$"{qkv}.{p}"], [1]));
}

/// <summary>
/// One HF checkpoint layout: the rules, the keys the module does not need (buffers, the other tower of a
/// two-tower model), and conversion both ways. Keys neither mapped nor dropped pass through unchanged, so a strict
/// load reports them as unexpected (and the module keys they should have fed as missing).
/// </summary>
public sealed class HfLayout
{
    public string Name { get; }
    public IReadOnlyList<HfKeyRule> Rules { get; }
    private readonly Func<string, bool> _drop;
    private readonly IReadOnlyList<string> _stripPrefixes;

    public HfLayout(string name, IEnumerable<HfKeyRule> rules, Func<string, bool> drop, IReadOnlyList<string>? stripPrefixes = null)
    {
        Name = name;
        Rules = rules.ToList();
        _drop = drop;
        _stripPrefixes = stripPrefixes ?? [];
    }

    private static readonly Regex Index = new(@"(?<=\.)\d+(?=\.)", RegexOptions.Compiled);

    /// <summary>HF checkpoint → module keys and layouts. The result holds new tensors (views or concatenations) the caller disposes.</summary>
    public Dictionary<string, Tensor> FromHf(IReadOnlyDictionary<string, Tensor> hf)
    {
        var src = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in hf)
        {
            var key = k;
            foreach (var p in _stripPrefixes)
                if (key.StartsWith(p, StringComparison.Ordinal)) { key = key[p.Length..]; break; }
            if (_drop(key)) continue;
            src[key] = t;
        }
        return Convert(src, r => r.Hf, r => r.HfParts, r => r.Ours, r => r.OurParts, r => r.ToOurs);
    }

    /// <summary>Module state dict → the HF checkpoint's keys and layouts (new tensors the caller disposes).</summary>
    public Dictionary<string, Tensor> ToHf(IReadOnlyDictionary<string, Tensor> ours) =>
        Convert(ours, r => r.Ours, r => r.OurParts, r => r.Hf, r => r.HfParts, r => r.ToHf);

    private Dictionary<string, Tensor> Convert(IReadOnlyDictionary<string, Tensor> src, Func<HfKeyRule, string[]> from,
        Func<HfKeyRule, int[]> fromParts, Func<HfKeyRule, string[]> to, Func<HfKeyRule, int[]> toParts, Func<HfKeyRule, Func<Tensor, Tensor>?> reshape)
    {
        var indices = src.Keys.SelectMany(k => Index.Matches(k).Select(m => m.Value)).Distinct().ToList();
        var used = new HashSet<string>(StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var rule in Rules)
            {
                bool indexed = from(rule).Any(s => s.Contains("{i}"));
                foreach (var i in indexed ? indices : [""])
                {
                    var names = from(rule).Select(s => s.Replace("{i}", i)).ToArray();
                    if (!names.All(src.ContainsKey)) continue;
                    var targets = to(rule).Select(s => s.Replace("{i}", i)).ToArray();
                    foreach (var n in names) used.Add(n);
                    using var scope = NewDisposeScope();
                    var whole = names.Length == 1 ? src[names[0]].detach() : cat(names.Select(n => src[n].detach()).ToArray(), 0);
                    if (names.Length == 1 && targets.Length == 1)
                    {
                        // A plain rename (scalars such as logit_scale included): no row arithmetic.
                        var single = reshape(rule) is { } g ? g(whole) : whole;
                        if (result.ContainsKey(targets[0])) throw new InvalidDataException($"{Name}: two sources map to '{targets[0]}'.");
                        result[targets[0]] = single.alias().MoveToOuterDisposeScope();
                        continue;
                    }
                    var parts = toParts(rule);
                    long total = whole.shape[0], unit = total / parts.Sum();
                    if (unit * parts.Sum() != total)
                        throw new InvalidDataException($"{Name}: '{names[0]}' has {total} rows, not divisible into parts [{string.Join(",", parts)}].");
                    long offset = 0;
                    for (int j = 0; j < targets.Length; j++)
                    {
                        var piece = targets.Length == 1 ? whole : whole.narrow(0, offset, unit * parts[j]);
                        offset += unit * parts[j];
                        if (reshape(rule) is { } f) piece = f(piece);
                        if (result.ContainsKey(targets[j])) throw new InvalidDataException($"{Name}: two sources map to '{targets[j]}'.");
                        result[targets[j]] = piece.alias().MoveToOuterDisposeScope();
                    }
                }
            }
            foreach (var (k, t) in src)
                if (!used.Contains(k) && !result.ContainsKey(k)) result[k] = t.detach().alias(); // reported by a strict load
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }
}

/// <summary>The HF layouts of the vision towers FairMedFM uses, mapped onto the modules already ported.</summary>
public static class HfKeyMaps
{
    private static bool IsBuffer(string k) => k.EndsWith(".position_ids", StringComparison.Ordinal) || k == "position_ids";

    /// <summary>
    /// transformers <c>Dinov2Model</c> (microsoft/rad-dino, facebook/dinov2-*) ↔ <see cref="Vit.DinoVisionTransformer"/>:
    /// separate query/key/value → fused qkv, layer_scale{1,2}.lambda1 → ls{1,2}.gamma, layernorm → norm. A "dinov2."
    /// prefix (Dinov2For* heads) is stripped.
    /// </summary>
    public static HfLayout Dinov2 { get; } = new("HF Dinov2Model",
        new[]
        {
            HfKeyRule.Rename("embeddings.cls_token", "cls_token"),
            HfKeyRule.Rename("embeddings.mask_token", "mask_token"),
            HfKeyRule.Rename("embeddings.position_embeddings", "pos_embed"),
            HfKeyRule.Rename("embeddings.register_tokens", "register_tokens"),
        }
        .Concat(HfKeyRule.Module("embeddings.patch_embeddings.projection", "patch_embed.proj"))
        .Concat(HfKeyRule.Module("encoder.layer.{i}.norm1", "blocks.{i}.norm1"))
        .Concat(HfKeyRule.FuseQkv("encoder.layer.{i}.attention.attention.query", "encoder.layer.{i}.attention.attention.key",
                                  "encoder.layer.{i}.attention.attention.value", "blocks.{i}.attn.qkv"))
        .Concat(HfKeyRule.Module("encoder.layer.{i}.attention.output.dense", "blocks.{i}.attn.proj"))
        .Append(HfKeyRule.Rename("encoder.layer.{i}.layer_scale1.lambda1", "blocks.{i}.ls1.gamma"))
        .Concat(HfKeyRule.Module("encoder.layer.{i}.norm2", "blocks.{i}.norm2"))
        .Concat(HfKeyRule.Module("encoder.layer.{i}.mlp.fc1", "blocks.{i}.mlp.fc1"))
        .Concat(HfKeyRule.Module("encoder.layer.{i}.mlp.fc2", "blocks.{i}.mlp.fc2"))
        .Append(HfKeyRule.Rename("encoder.layer.{i}.layer_scale2.lambda1", "blocks.{i}.ls2.gamma"))
        .Concat(HfKeyRule.Module("layernorm", "norm")),
        IsBuffer, ["dinov2."]);

    private static IEnumerable<HfKeyRule> ClipStyleEncoder(string p) =>
        HfKeyRule.Module($"{p}encoder.layers.{{i}}.layer_norm1", "blocks.{i}.norm1")
            .Concat(HfKeyRule.FuseQkv($"{p}encoder.layers.{{i}}.self_attn.q_proj", $"{p}encoder.layers.{{i}}.self_attn.k_proj",
                                      $"{p}encoder.layers.{{i}}.self_attn.v_proj", "blocks.{i}.attn.qkv"))
            .Concat(HfKeyRule.Module($"{p}encoder.layers.{{i}}.self_attn.out_proj", "blocks.{i}.attn.proj"))
            .Concat(HfKeyRule.Module($"{p}encoder.layers.{{i}}.layer_norm2", "blocks.{i}.norm2"))
            .Concat(HfKeyRule.Module($"{p}encoder.layers.{{i}}.mlp.fc1", "blocks.{i}.mlp.fc1"))
            .Concat(HfKeyRule.Module($"{p}encoder.layers.{{i}}.mlp.fc2", "blocks.{i}.mlp.fc2"))
            .Concat(HfKeyRule.Module($"{p}post_layernorm", "norm"));

    /// <summary>
    /// transformers <c>SiglipVisionModel</c> (also the vision tower inside <c>SiglipModel</c>: google/siglip-*,
    /// google/medsiglip-448) ↔ timm <see cref="Vit.VisionTransformer"/> without class token, global_pool 'map':
    /// patch_embedding → patch_embed.proj, position_embedding [N, D] → pos_embed [1, N, D], q/k/v_proj → qkv,
    /// post_layernorm → norm, head.probe → attn_pool.latent, head.attention.in_proj (q; k, v rows) → attn_pool.q and
    /// attn_pool.kv, head.attention.out_proj → attn_pool.proj, head.layernorm → attn_pool.norm, head.mlp → attn_pool.mlp.
    /// The text tower and logit scale/bias of a full SiglipModel are dropped.
    /// </summary>
    public static HfLayout SiglipVision { get; } = new("HF SiglipVisionModel",
        HfKeyRule.Module("vision_model.embeddings.patch_embedding", "patch_embed.proj")
            .Append(HfKeyRule.AddBatchAxis("vision_model.embeddings.position_embedding.weight", "pos_embed"))
            .Concat(ClipStyleEncoder("vision_model."))
            .Append(HfKeyRule.Rename("vision_model.head.probe", "attn_pool.latent"))
            .Append(new HfKeyRule(["vision_model.head.attention.in_proj_weight"], [3], ["attn_pool.q.weight", "attn_pool.kv.weight"], [1, 2]))
            .Append(new HfKeyRule(["vision_model.head.attention.in_proj_bias"], [3], ["attn_pool.q.bias", "attn_pool.kv.bias"], [1, 2]))
            .Concat(HfKeyRule.Module("vision_model.head.attention.out_proj", "attn_pool.proj"))
            .Concat(HfKeyRule.Module("vision_model.head.layernorm", "attn_pool.norm"))
            .Concat(HfKeyRule.Module("vision_model.head.mlp.fc1", "attn_pool.mlp.fc1"))
            .Concat(HfKeyRule.Module("vision_model.head.mlp.fc2", "attn_pool.mlp.fc2")),
        k => IsBuffer(k) || k.StartsWith("text_model.", StringComparison.Ordinal) || k is "logit_scale" or "logit_bias");

    /// <summary>
    /// transformers <c>CLIPVisionModelWithProjection</c> / the vision half of <c>CLIPModel</c> (vinid/plip, openai/clip-*)
    /// ↔ timm <see cref="Vit.VisionTransformer"/> with pre_norm, class token, 'token' pooling and a bias-free head:
    /// class_embedding [D] → cls_token [1, 1, D], patch_embedding (no bias) → patch_embed.proj, position_embedding
    /// [N+1, D] → pos_embed, pre_layrnorm (sic) → norm_pre, q/k/v_proj → qkv, post_layernorm → norm,
    /// visual_projection → head. The text tower, text_projection and logit_scale are dropped.
    /// </summary>
    public static HfLayout ClipVision { get; } = new("HF CLIPVisionModelWithProjection",
        HfKeyRule.Module("vision_model.embeddings.patch_embedding", "patch_embed.proj", bias: false)
            .Append(HfKeyRule.Rename("vision_model.embeddings.class_embedding", "cls_token", t => t.view(1, 1, -1), t => t.view(-1)))
            .Append(HfKeyRule.AddBatchAxis("vision_model.embeddings.position_embedding.weight", "pos_embed"))
            .Concat(HfKeyRule.Module("vision_model.pre_layrnorm", "norm_pre"))
            .Concat(ClipStyleEncoder("vision_model."))
            .Append(HfKeyRule.Rename("visual_projection.weight", "head.weight")),
        k => IsBuffer(k) || k.StartsWith("text_model.", StringComparison.Ordinal) || k is "logit_scale" or "text_projection.weight");
}
