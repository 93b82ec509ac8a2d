using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Contrastive;

/// <summary>
/// open_clip's <c>TimmModel</c> image tower as BiomedCLIP's <c>open_clip_config.json</c> builds it
/// (<c>timm_model_name: vit_base_patch16_224</c>, <c>timm_pool: ""</c>, <c>timm_proj: "linear"</c>, no proj bias):
/// <c>visual.trunk</c> = timm <c>VisionTransformer</c> with its classifier removed (reset_classifier(0), the default
/// 'token' pooling and final norm kept), <c>visual.head</c> = Sequential(drop, proj = Linear(768, 512, bias=False)).
/// Mapped onto this port's timm <see cref="VisionTransformer"/> built with NumClasses = 512 and a bias-free head, so
/// <c>forward</c> is open_clip's <c>model.visual(x)</c>: <c>visual.trunk.K</c> ↔ <c>K</c>, <c>visual.head.proj.weight</c>
/// ↔ <c>head.weight</c> (and <c>.bias</c> ↔ <c>head.bias</c> for a proj_bias checkpoint). The text tower
/// (<c>text.*</c>) and <c>logit_scale</c>/<c>logit_bias</c> are dropped; anything else passes through unchanged, so a
/// strict load names it.
/// </summary>
public static class OpenClipTimmLayout
{
    public const string Name = "open_clip TimmModel (visual.trunk.*, visual.head.proj) → timm VisionTransformer";
    public const string TrunkPrefix = "visual.trunk.";
    public const string ProjPrefix = "visual.head.proj.";

    /// <summary>Checkpoint key → module key, or null when the key belongs to the other tower or the logit constants.</summary>
    public static string? ToModule(string key)
    {
        if (key.StartsWith(ProjPrefix, StringComparison.Ordinal)) return "head." + key[ProjPrefix.Length..];
        if (key.StartsWith(TrunkPrefix, StringComparison.Ordinal)) return key[TrunkPrefix.Length..];
        if (key.StartsWith("text.", StringComparison.Ordinal) || key is "logit_scale" or "logit_bias") return null;
        return key;
    }

    /// <summary>Module key → open_clip checkpoint key (the inverse of <see cref="ToModule"/> on the module's keys).</summary>
    public static string ToCheckpoint(string moduleKey) =>
        moduleKey.StartsWith("head.", StringComparison.Ordinal) ? ProjPrefix + moduleKey["head.".Length..] : TrunkPrefix + moduleKey;

    /// <summary>BiomedCLIP's image tower: timm ViT-B/16 at 224, 'token' pooling, final norm, Linear(768, 512, bias=False).</summary>
    public static VitConfig BiomedClipVit { get; } = VitConfig.VitBase16 with { NumClasses = 512, HeadBias = false };

    /// <summary>Strict load of the image tower from a full open_clip state dict (.bin or .safetensors).</summary>
    public static WeightLoadReport Load(VisionTransformer module, IReadOnlyDictionary<string, Tensor> checkpoint, string source) =>
        WeightLoader.LoadStateDict(module, checkpoint, new WeightLoadOptions { Strict = true, KeyMap = ToModule },
                                   $"{source} [key map: {Name}]");

    /// <summary>The module's state dict under open_clip's names (aliases the caller disposes).</summary>
    public static Dictionary<string, Tensor> Export(VisionTransformer module) =>
        module.state_dict().ToDictionary(kv => ToCheckpoint(kv.Key), kv => kv.Value.detach().alias(), StringComparer.Ordinal);
}
