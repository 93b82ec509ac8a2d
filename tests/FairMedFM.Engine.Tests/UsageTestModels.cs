using System.Text.Json.Nodes;
using FairMedFM.Models;
using FairMedFM.Models.Clip;
using FairMedFM.Models.Vit;
using TorchSharp;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// Test-only model cards registered with <see cref="ModelCatalog.Register"/>: the golden tiny CLIP (openai/CLIP code,
/// random weights, 32 px) under two zero-shot scales, and a tiny timm ViT with seeded random weights for LoRA.
/// </summary>
internal static class UsageTestModels
{
    public const string Clip = "test-clip-vit-tiny";
    public const string ClipLearnedScale = "test-clip-vit-tiny-learned-scale";
    public const string Vit = "test-timm-vit-tiny";

    public static string ClipDir => Path.Combine(TestPaths.Shared, "golden", "clip_vit");

    public static ClipConfig ClipConfig =>
        Models.Clip.ClipConfig.FromJson(JsonNode.Parse(File.ReadAllText(Path.Combine(ClipDir, "case.json")))!["config"]!);

    /// <summary>The golden fixture's weights and inputs (image [2,3,32,32], text ids [3,77], outputs).</summary>
    public static Dictionary<string, Tensor> ClipIo() => WeightLoader.ReadStateDict(Path.Combine(ClipDir, "io.safetensors"))
        .ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>The zero_shot block of FairMedFM's CXP card: its prompts are the fixture's first two strings.</summary>
    public const string CxpZeroShot = """
        zero_shot:
          text_template: "a chest X-ray of a {}"
          class_names: ["diseased", "normal"]
        """;

    /// <summary>A workspace whose weights folder is the golden CLIP folder (read only).</summary>
    public static Workspace ClipWorkspace(TempDir tmp) => new(tmp.Sub("cache"), ClipDir);

    public static VitConfig VitConfig { get; } = new() { ImgSize = 32, PatchSize = 8, EmbedDim = 64, Depth = 2, NumHeads = 4, NumClasses = 0 };

    public static ModelCard VitCard { get; } = new()
    {
        Id = Vit, Family = VitModelZoo.FamilyTimmVit, Vit = VitConfig, FeatureDim = 64, ImageSize = 32,
        NormalizationKind = "dataset", LoraTargets = ["qkv"], Source = "tiny timm VisionTransformer, seeded random weights",
    };

    private static readonly Lazy<bool> Registered = new(() =>
    {
        var cfg = ClipConfig;
        ModelCard ClipCard(string id, ZeroShotLogitScale scale) => new()
        {
            Id = id, Family = "clip", Clip = cfg, FeatureDim = cfg.EmbedDim, ImageSize = cfg.ImageResolution,
            WeightsFile = "weights.safetensors", NormalizationKind = "meanstd", Mean = ModelZoo.ClipMean, Std = ModelZoo.ClipStd,
            ZeroShotLogitScale = scale, Source = "golden clip_vit fixture (openai/CLIP a1d0717, random weights)",
        };
        ModelCatalog.Register(ClipCard(Clip, new ZeroShotLogitScale(100.0, 1.0, "as clip-vit-b32: fixed 100")));
        ModelCatalog.Register(ClipCard(ClipLearnedScale, new ZeroShotLogitScale(null, 1.0, "exp(logit_scale) of the weights, as CLIP.forward")));
        ModelCatalog.Register(VitCard, _ => TinyVitEncoder());
        return true;
    });

    /// <summary>Registers the test cards (once per process).</summary>
    public static void Register() => _ = Registered.Value;

    /// <summary>A tiny timm ViT (img 32, patch 8, width 64, depth 2) with weights drawn from its own generator: the same every time.</summary>
    public static VitImageEncoder<VisionTransformer> TinyVitEncoder(ulong seed = 1234)
    {
        var model = new VisionTransformer(Vit, VitConfig);
        Randomize(model, seed);
        return new VitImageEncoder<VisionTransformer>(Vit, model, (m, x) => m.ForwardPooled(x), VitConfig.EmbedDim, $"random-init-seed-{seed}");
    }

    /// <summary>Every parameter N(0, 0.05²) from a generator of its own (never the global one).</summary>
    public static void Randomize(nn.Module m, ulong seed)
    {
        var g = new Generator(seed, CPU);
        using var _ = no_grad();
        foreach (var (_, p) in m.named_parameters())
            using (var r = randn(p.shape, generator: g).mul_(0.05)) p.copy_(r);
    }

    public static bool BitEqual(float[] a, float[] b) =>
        a.Length == b.Length && a.Select(BitConverter.SingleToInt32Bits).SequenceEqual(b.Select(BitConverter.SingleToInt32Bits));

    public static float[] Floats(Tensor t)
    {
        using var c = t.detach().to(float32).cpu().contiguous();
        return c.data<float>().ToArray();
    }
}
