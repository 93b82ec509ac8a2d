using static TorchSharp.torch;

namespace FairMedFM.Models.Tests;

public class RecipeWeightsTests
{
    [Theory]
    [InlineData("resnet18")]
    [InlineData("resnet50")]
    public void GeneratedTensorsMatchRecipeChecks(string caseName)
    {
        var recipePath = Path.Combine(TestPaths.Golden(caseName), "weights_recipe.json");
        var recipe = RecipeWeights.ReadRecipe(recipePath);
        var sd = RecipeWeights.Generate(recipePath);
        try
        {
            Assert.Equal(recipe.Tensors.Count, sd.Count);
            int checkedFloat = 0;
            foreach (var r in recipe.Tensors)
            {
                var t = sd[r.Name];
                Assert.Equal(r.Shape, t.shape);
                if (r.Const is long c)
                {
                    Assert.Equal(ScalarType.Int64, t.dtype);
                    Assert.Equal(c, t.item<long>());
                    continue;
                }
                Assert.Equal(ScalarType.Float32, t.dtype);
                var v = t.flatten().data<float>().ToArray();
                for (int i = 0; i < 4; i++) Assert.Equal((float)r.First4![i], v[i]);
                double sum = 0;
                foreach (var x in v) sum += x;
                // The reference summed in a different order (numpy pairwise); values are exact, so only rounding differs.
                Assert.True(Math.Abs(sum - r.SumF64!.Value) <= 1e-9 * Math.Max(1, v.Length), $"{r.Name}: sum {sum} vs {r.SumF64}");
                checkedFloat++;
            }
            Assert.True(checkedFloat > 60);
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    [Theory]
    [InlineData("weights_subset.safetensors")]
    [InlineData("weights_subset.pth")]
    public void GeneratedTensorsAreBitIdenticalToShippedSubset(string file)
    {
        var dir = TestPaths.Golden("resnet18");
        var sd = RecipeWeights.Generate(Path.Combine(dir, "weights_recipe.json"));
        var subset = WeightLoader.ReadStateDict(Path.Combine(dir, file));
        try
        {
            // conv1 + bn1 (6) and layer1: 2 blocks × 2 × (conv + 5 BN tensors) = 30, as case.json lists them.
            using var caseJson = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "case.json")));
            var listed = caseJson.RootElement.GetProperty("weights_keys").EnumerateObject().Select(p => p.Name).Order().ToList();
            Assert.Equal(30, listed.Count);
            Assert.Equal(listed, subset.Keys.Order().ToList());
            foreach (var (name, t) in subset)
            {
                Assert.True(sd.ContainsKey(name), name);
                var g = sd[name];
                Assert.Equal(g.dtype, t.dtype);
                Assert.Equal(g.NumberOfElements, t.NumberOfElements);
                Assert.True(TensorAssert.Same(g.flatten(), t.flatten()), $"{name} differs from {file}");
            }
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
            foreach (var t in subset.Values) t.Dispose();
        }
    }

    [Fact]
    public void HashPrimitivesMatchRecipe()
    {
        // weights_recipe.json lists fnv1a64 per name.
        Assert.Equal(0x69a29a2cee47d254UL, RecipeWeights.Fnv1a64("conv1.weight"));
        Assert.Equal(0x5c52d611251dc092UL, RecipeWeights.Fnv1a64("bn1.weight"));
    }
}
