using FairMedFM.Models.Peft;
using FairMedFM.Models.Vit;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

/// <summary>
/// LoRA (FairMedFM's intended PEFT usage): the wrapper equals its base layer while B = 0, only A/B train, merged
/// weights give the unmerged output, targets select exactly the named Linear modules, rank/alpha/dropout are honoured.
/// Tiny ViTs of the three families that have a fused <c>qkv</c> Linear, with seeded random weights.
/// </summary>
public class LoraTests
{
    /// <summary>Every parameter drawn from N(0, 0.1²) with its own generator (the global one is left alone).</summary>
    internal static void Randomize(nn.Module m, ulong seed)
    {
        var g = new Generator(seed, CPU);
        using var _ = no_grad();
        foreach (var (_, p) in m.named_parameters())
            using (var r = randn(p.shape, generator: g).mul_(0.1)) p.copy_(r);
    }

    public static TheoryData<string> Families => new() { "timm", "dinov2", "sam" };

    /// <summary>A tiny model of the family with random weights, its input size and its feature function.</summary>
    internal static (nn.Module Model, int Img, Func<Tensor, Tensor> Features, int Depth) Tiny(string family)
    {
        switch (family)
        {
            case "timm":
            {
                var m = new VisionTransformer("timm", new VitConfig { ImgSize = 32, PatchSize = 8, EmbedDim = 64, Depth = 2, NumHeads = 4, NumClasses = 0 });
                Randomize(m, 11);
                return (m, 32, x => m.ForwardPooled(x), 2);
            }
            case "dinov2":
            {
                var m = new DinoVisionTransformer("dino", new DinoV2Config { ImgSize = 28, PatchSize = 14, EmbedDim = 32, Depth = 2, NumHeads = 2 });
                Randomize(m, 12);
                return (m, 28, x => m.forward(x), 2);
            }
            case "sam":
            {
                var m = new SamImageEncoderViT("sam", new SamVitConfig
                {
                    ImgSize = 32, PatchSize = 8, EmbedDim = 32, Depth = 3, NumHeads = 2, OutChans = 16, WindowSize = 2, GlobalAttnIndexes = [1],
                });
                Randomize(m, 13);
                return (m, 32, x => m.ForwardPooled(x), 3);
            }
            default: throw new ArgumentException(family);
        }
    }

    private static Tensor Images(int n, int img, ulong seed) => randn(new long[] { n, 3, img, img }, generator: new Generator(seed, CPU));

    private static Tensor Eval(nn.Module m, Func<Tensor, Tensor> f, Tensor x)
    {
        m.eval();
        using var _ = no_grad();
        return f(x).detach().clone();
    }

    internal static double MaxDiff(Tensor a, Tensor b)
    {
        using var d = (a - b).abs().max();
        return d.item<float>();
    }

    /// <summary>Puts seeded random values into every B (as training would), so the adapters change the output.</summary>
    internal static void RandomB(IEnumerable<LoraLinear> adapters, ulong seed)
    {
        var g = new Generator(seed, CPU);
        using var _ = no_grad();
        foreach (var a in adapters)
            using (var r = randn(a.B.shape, generator: g).mul_(0.05)) a.B.copy_(r);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void With_B_zero_the_adapted_model_equals_the_base_model(string family)
    {
        var (m, img, f, depth) = Tiny(family);
        using var _m = m;
        var x = Images(3, img, 5);
        var before = Eval(m, f, x);
        var adapters = LoraInjector.Apply(m, new LoraSettings(["qkv"]), seed: 0);
        Assert.Equal(depth, adapters.Count);
        Assert.All(adapters, a => Assert.Equal(0f, a.Adapter.B.abs().max().item<float>()));
        Assert.All(adapters, a => Assert.NotEqual(0f, a.Adapter.A.abs().max().item<float>()));
        var after = Eval(m, f, x);
        Assert.True(TensorAssert.Same(before, after), $"{family}: max|diff| {MaxDiff(before, after):E2} with B = 0");
        // Train mode (dropout 0) is the same function.
        m.train();
        using (no_grad()) Assert.True(TensorAssert.Same(before, f(x)));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Merged_weights_give_the_unmerged_output_and_leave_the_base_untouched(string family)
    {
        var (m, img, f, _) = Tiny(family);
        using var _m = m;
        var x = Images(2, img, 6);
        var baseOut = Eval(m, f, x);
        var adapters = LoraInjector.Apply(m, new LoraSettings(["qkv"], Rank: 4, Alpha: 8), seed: 1).Select(a => a.Adapter).ToList();
        RandomB(adapters, 7);
        var baseWeights = adapters.Select(a => a.Base.weight!.detach().clone()).ToList();

        var unmerged = Eval(m, f, x);
        Assert.True(MaxDiff(unmerged, baseOut) > 1e-4, "random B did not change the output; the merge check would be vacuous");
        LoraInjector.Merge(m);
        Assert.All(adapters, a => Assert.True(a.IsMerged));
        var merged = Eval(m, f, x);
        Assert.True(MaxDiff(unmerged, merged) <= 1e-5, $"{family}: merged vs unmerged max|diff| {MaxDiff(unmerged, merged):E2}");
        for (int i = 0; i < adapters.Count; i++)
        {
            Assert.True(TensorAssert.Same(baseWeights[i], adapters[i].Base.weight!), "merging changed a base weight");
            // The installed weight is W + (alpha/r)·B·A.
            using var expected = baseWeights[i] + adapters[i].B.detach().matmul(adapters[i].A.detach()) * 2.0;
            Assert.True(MaxDiff(expected, adapters[i].MergedWeight()) <= 1e-6);
        }
        LoraInjector.Unmerge(m);
        Assert.True(TensorAssert.Same(unmerged, Eval(m, f, x)), "unmerge did not restore the adapter path");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Only_the_LoRA_matrices_require_and_receive_gradients(string family)
    {
        var (m, img, f, depth) = Tiny(family);
        using var _m = m;
        var adapters = LoraInjector.Apply(m, new LoraSettings(["qkv"]), seed: 2);
        var trainable = m.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.Equal(2 * depth, trainable.Count);
        Assert.All(trainable, n => Assert.True(n.EndsWith(".lora_A") || n.EndsWith(".lora_B"), n));
        // State-dict keys: the base layer sits under base_layer; the original key is gone.
        var keys = m.state_dict().Keys.ToList();
        Assert.Contains(adapters[0].Name + ".base_layer.weight", keys);
        Assert.Contains(adapters[0].Name + ".lora_A", keys);
        Assert.DoesNotContain(adapters[0].Name + ".weight", keys);

        RandomB(adapters.Select(a => a.Adapter), 3); // with B = 0, A gets no gradient on the first step
        m.train();
        var loss = f(Images(2, img, 8)).pow(2).sum();
        loss.backward();
        foreach (var (name, p) in m.named_parameters())
        {
            if (name.EndsWith(".lora_A") || name.EndsWith(".lora_B"))
            {
                Assert.NotNull(p.grad);
                Assert.True(p.grad!.abs().max().item<float>() > 0, $"{name} got a zero gradient");
            }
            else Assert.True(p.grad is null, $"frozen {name} received a gradient");
        }
    }

    [Theory]
    [InlineData("timm", new[] { "qkv" }, new[] { "blocks.0.attn.qkv", "blocks.1.attn.qkv" })]
    [InlineData("timm", new[] { "attn.qkv" }, new[] { "blocks.0.attn.qkv", "blocks.1.attn.qkv" })]
    [InlineData("timm", new[] { "blocks.1.attn.qkv" }, new[] { "blocks.1.attn.qkv" })]
    [InlineData("dinov2", new[] { "qkv" }, new[] { "blocks.0.attn.qkv", "blocks.1.attn.qkv" })]
    [InlineData("sam", new[] { "qkv" }, new[] { "blocks.0.attn.qkv", "blocks.1.attn.qkv", "blocks.2.attn.qkv" })]
    public void Targets_wrap_exactly_the_named_modules(string family, string[] targets, string[] expected)
    {
        var (m, _, _, _) = Tiny(family);
        using var _m = m;
        int linearsBefore = m.named_modules().Count(x => x.module is Linear);
        var adapters = LoraInjector.Apply(m, new LoraSettings(targets), seed: 0);
        Assert.Equal(expected, adapters.Select(a => a.Name));
        Assert.Equal(expected, LoraInjector.Adapters(m).Select(a => a.Name));
        Assert.Equal(expected.Length, m.named_modules().Count(x => x.module is LoraLinear));
        // Every other Linear is still a plain Linear (the wrapped ones now sit inside the adapters as base_layer).
        Assert.Equal(linearsBefore, m.named_modules().Count(x => x.module is Linear));
        Assert.Equal(expected.Select(n => n + ".base_layer"), m.named_modules().Where(x => x.module is Linear && x.name.EndsWith(".base_layer")).Select(x => x.name));
    }

    [Fact]
    public void Unknown_or_unwrappable_targets_are_clear_errors_and_change_nothing()
    {
        var (m, img, f, _) = Tiny("timm");
        using var _m = m;
        var x = Images(1, img, 9);
        var before = Eval(m, f, x);

        var e = Assert.Throws<ArgumentException>(() => LoraInjector.Apply(m, new LoraSettings(["out_proj"]), 0));
        Assert.Contains("'out_proj' matches no module", e.Message);
        Assert.Contains("qkv", e.Message); // lists what is there

        // patch_embed.proj is a Conv2d: not a Linear.
        var conv = Assert.Throws<ArgumentException>(() => LoraInjector.Apply(m, new LoraSettings(["patch_embed.proj"]), 0));
        Assert.Contains("Conv2d", conv.Message);

        // mlp.fc1 is a Linear held in a Linear-typed field: refused before anything is replaced, even with a valid target first.
        var field = Assert.Throws<InvalidOperationException>(() => LoraInjector.Apply(m, new LoraSettings(["qkv", "fc1"]), 0));
        Assert.Contains("fc1", field.Message);
        Assert.Contains("declared as Linear", field.Message);

        Assert.Empty(LoraInjector.Adapters(m));
        Assert.All(m.parameters(), p => Assert.True(p.requires_grad));
        Assert.True(TensorAssert.Same(before, Eval(m, f, x)));

        LoraInjector.Apply(m, new LoraSettings(["qkv"]), 0);
        Assert.Contains("already has LoRA", Assert.Throws<InvalidOperationException>(() => LoraInjector.Apply(m, new LoraSettings(["qkv"]), 0)).Message);
    }

    [Fact]
    public void Query_key_value_targets_adapt_the_thirds_of_a_fused_qkv_like_separate_adapters()
    {
        // RAD-DINO's FairMedFM targets on the DINOv2 port, whose attention fuses q, k, v into one qkv Linear.
        var (m, img, f, depth) = Tiny("dinov2");
        using var _m = m;
        var x = Images(2, img, 41);
        var baseOut = Eval(m, f, x);
        var adapters = LoraInjector.Apply(m, new LoraSettings(["query", "key", "value"], Rank: 2, Alpha: 4), seed: 3);
        Assert.Equal(depth, adapters.Count);
        Assert.All(adapters, a => Assert.Equal(new[] { "query", "key", "value" }, a.Adapter.Slices.Select(sl => sl.Name)));
        var trainable = m.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.name[(p.name.LastIndexOf('.') + 1)..]).Distinct().Order();
        Assert.Equal(new[] { "lora_A_key", "lora_A_query", "lora_A_value", "lora_B_key", "lora_B_query", "lora_B_value" }, trainable);
        Assert.True(TensorAssert.Same(baseOut, Eval(m, f, x)), "B = 0 must leave the model unchanged");

        // One fused adapter with three slices computes what three separate adapters on q, k and v compute.
        var fused = adapters[0].Adapter;
        long d = fused.OutFeatures / 3;
        var g = new Generator(42, CPU);
        using (no_grad())
            foreach (var (_, _, b) in fused.Pairs())
                using (var r = randn(b.shape, generator: g).mul_(0.1)) b.copy_(r);
        var h = randn(new long[] { 5, fused.InFeatures }, generator: g);
        fused.eval();
        using var _ = no_grad();
        var joint = fused.forward(h);
        var parts = new List<Tensor>();
        foreach (var (slice, a, b) in fused.Pairs())
        {
            var lin = nn.Linear(fused.InFeatures, d);
            lin.weight!.copy_(fused.Base.weight!.narrow(0, slice.Start, d));
            lin.bias!.copy_(fused.Base.bias!.narrow(0, slice.Start, d));
            var single = new LoraLinear(lin, rank: 2, alpha: 4);
            single.A.copy_(a);
            single.B.copy_(b);
            single.eval();
            parts.Add(single.forward(h));
        }
        Assert.True(MaxDiff(cat(parts, -1), joint) <= 1e-6, $"fused slices vs separate adapters: {MaxDiff(cat(parts, -1), joint):E2}");

        // Merged = unmerged for the sliced adapters too (block 0's B are non-zero now).
        var unmerged = Eval(m, f, x);
        Assert.True(MaxDiff(unmerged, baseOut) > 1e-5, "the non-zero B did not change the output");
        LoraInjector.Merge(m);
        Assert.True(MaxDiff(unmerged, Eval(m, f, x)) <= 1e-5);
    }

    [Fact]
    public void A_subset_of_query_key_value_leaves_the_other_thirds_as_the_base_computes_them()
    {
        var (m, _, _, depth) = Tiny("dinov2");
        using var _m = m;
        var adapters = LoraInjector.Apply(m, new LoraSettings(["value", "query"]), seed: 0);
        Assert.Equal(depth, adapters.Count);
        var a = adapters[0].Adapter;
        Assert.Equal(new[] { "query", "value" }, a.Slices.Select(sl => sl.Name));
        long d = a.OutFeatures / 3;
        var g = new Generator(5, CPU);
        using var _ = no_grad();
        foreach (var (_, _, b) in a.Pairs())
            using (var r = randn(b.shape, generator: g)) b.copy_(r);
        var h = randn(new long[] { 3, a.InFeatures }, generator: g);
        a.eval();
        var y = a.forward(h);
        var y0 = a.Base.forward(h);
        Assert.True(TensorAssert.Same(y0.narrow(1, d, d), y.narrow(1, d, d)), "the key third must be the base layer's");
        Assert.True(MaxDiff(y0.narrow(1, 0, d), y.narrow(1, 0, d)) > 1e-3);
        Assert.True(MaxDiff(y0.narrow(1, 2 * d, d), y.narrow(1, 2 * d, d)) > 1e-3);

        var (m2, _, _, _) = Tiny("dinov2");
        using var _m2 = m2;
        Assert.Contains("both whole and by", Assert.Throws<ArgumentException>(() => LoraInjector.Apply(m2, new LoraSettings(["qkv", "query"]), 0)).Message);
        var (t, _, _, _) = Tiny("sam");
        using var _t = t;
        Assert.Equal(3, LoraInjector.Apply(t, new LoraSettings(["key"]), 0).Count);
        Assert.Equal(new[] { "query", "key", "value" }, ModelZoo.GetCard("rad-dino").LoraTargets);
    }

    [Fact]
    public void Rank_alpha_and_scale_are_honoured()
    {
        using var lin = nn.Linear(12, 6);
        Randomize(lin, 21);
        var a = new LoraLinear(lin, rank: 4, alpha: 16);
        Assert.Equal(4.0, a.Scale);
        Assert.Equal(new long[] { 4, 12 }, a.A.shape);
        Assert.Equal(new long[] { 6, 4 }, a.B.shape);
        // Kaiming-uniform(a=√5) on [r, in]: U(−1/√in, 1/√in).
        double bound = 1 / Math.Sqrt(12);
        Assert.True(a.A.abs().max().item<float>() <= bound);
        Assert.True(a.A.abs().max().item<float>() > 0.5 * bound);
        Assert.Equal(0f, a.B.abs().max().item<float>());
        Assert.False(lin.weight!.requires_grad);
        Assert.False(lin.bias!.requires_grad);

        RandomB([a], 22);
        var x = randn(new long[] { 5, 12 }, generator: new Generator(23, CPU));
        a.eval();
        using var _ = no_grad();
        var y = a.forward(x);
        var expected = lin.forward(x) + x.matmul(a.A.t()).matmul(a.B.t()) * 4.0;
        Assert.True(MaxDiff(expected, y) <= 1e-6);

        // The defaults are PEFT's: r = 8, alpha = 8 → scale 1, dropout 0.
        var d = new LoraSettings(["qkv"]);
        Assert.Equal((8, 8.0, 0.0, 1.0), (d.Rank, d.Alpha, d.Dropout, d.Scale));
        var card = ModelZoo.GetCard("medmae-vitb16");
        Assert.Equal(new LoraSettings(["qkv"]), LoraSettings.FromCard(card));
        Assert.Null(LoraSettings.FromCard(ModelZoo.GetCard("clip-vit-b32")));

        Assert.Throws<ArgumentException>(() => new LoraLinear(lin, rank: 0, alpha: 8));
        Assert.Throws<ArgumentException>(() => new LoraLinear(lin, rank: 4, alpha: 0));
        Assert.Throws<ArgumentException>(() => new LoraLinear(lin, rank: 4, alpha: 8, dropout: 1));
    }

    [Fact]
    public void ModuleSurgery_refuses_fields_of_a_narrower_type()
    {
        var (m, _, _, _) = Tiny("timm");
        using var _m = m;
        var mlp = ModuleSurgery.Resolve(m, "blocks.0.mlp");
        var fc1 = (Linear)ModuleSurgery.Resolve(m, "blocks.0.mlp.fc1");
        var e = Assert.Throws<InvalidOperationException>(() => ModuleSurgery.ReplaceChild(mlp, "fc1", new LoraLinear(fc1, 2, 2)));
        Assert.Contains("Mlp.fc1 is declared as Linear", e.Message);
        Assert.Throws<ArgumentException>(() => ModuleSurgery.Resolve(m, "blocks.9"));
    }
}

/// <summary>Tests that use torch's global generator: run alone, so no other test draws from it in between.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalTorchRngCollection
{
    public const string Name = "global torch generator";
}

[Collection(GlobalTorchRngCollection.Name)]
public class LoraRngTests
{
    [Fact]
    public void Dropout_acts_on_the_input_of_A_in_training_only()
    {
        using var lin = nn.Linear(16, 8);
        LoraTests.Randomize(lin, 31);
        var a = new LoraLinear(lin, rank: 2, alpha: 2, dropout: 0.5);
        LoraTests.RandomB([a], 32);
        var x = randn(new long[] { 64, 16 }, generator: new Generator(33, CPU));
        using var _ = no_grad();
        var noDrop = lin.forward(x) + x.matmul(a.A.t()).matmul(a.B.t());
        a.eval();
        Assert.True(LoraTests.MaxDiff(noDrop, a.forward(x)) <= 1e-6, "eval mode must not drop");
        a.train();
        manual_seed(1);
        var t1 = a.forward(x);
        Assert.True(LoraTests.MaxDiff(noDrop, t1) > 1e-3, "train mode with dropout 0.5 changed nothing");
        // The base path never sees dropout: y − base(x) is exactly the LoRA branch on the dropped-out input.
        manual_seed(1);
        var mask = nn.functional.dropout(ones_like(x), 0.5, true);
        var branch = (x * mask).matmul(a.A.t()).matmul(a.B.t());
        Assert.True(LoraTests.MaxDiff(lin.forward(x) + branch, t1) <= 1e-5);
    }

    [Fact]
    public void A_is_seeded_and_leaves_the_global_generator_alone()
    {
        var (m1, _, _, _) = LoraTests.Tiny("timm");
        var (m2, _, _, _) = LoraTests.Tiny("timm");
        var (m3, _, _, _) = LoraTests.Tiny("timm");
        using var _1 = m1; using var _2 = m2; using var _3 = m3;
        manual_seed(42);
        var r1 = rand(4);
        manual_seed(42);
        var a1 = LoraInjector.Apply(m1, new LoraSettings(["qkv"]), seed: 5);
        var r2 = rand(4);
        Assert.True(TensorAssert.Same(r1, r2), "LoRA initialisation consumed the global torch generator");
        var a2 = LoraInjector.Apply(m2, new LoraSettings(["qkv"]), seed: 5);
        var a3 = LoraInjector.Apply(m3, new LoraSettings(["qkv"]), seed: 6);
        Assert.True(TensorAssert.Same(a1[1].Adapter.A, a2[1].Adapter.A));
        Assert.False(TensorAssert.Same(a1[1].Adapter.A, a3[1].Adapter.A));
    }
}
