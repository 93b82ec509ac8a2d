using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace FairMedFM.Models;

/// <summary>
/// The golden fixtures' formula weights (weights_recipe.json): for tensor NAME, element i (row-major)
/// <c>s = fnv1a64(utf8(NAME)) ^ case_seed; z = splitmix64(s + i); k = z >> 42; v = center + width·(k − 2^21)/2^22</c>,
/// computed in double and cast to float; integer tensors hold their "const".
/// </summary>
public static class RecipeWeights
{
    public sealed record TensorRecipe(string Name, long[] Shape, string DType, double Center, double Width, long? Const,
                                      double[]? First4, double? SumF64);

    public sealed record Recipe(ulong CaseSeed, IReadOnlyList<TensorRecipe> Tensors);

    public static Recipe ReadRecipe(string recipeJsonPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(recipeJsonPath));
        var root = doc.RootElement;
        ulong seed = root.GetProperty("case_seed").GetUInt64();
        var list = new List<TensorRecipe>();
        foreach (var p in root.GetProperty("tensors").EnumerateObject())
        {
            var v = p.Value;
            var shape = v.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            string dtype = v.GetProperty("dtype").GetString()!;
            double Get(string n) => v.TryGetProperty(n, out var e) ? e.GetDouble() : 0;
            long? c = v.TryGetProperty("const", out var ce) ? ce.GetInt64() : null;
            double[]? first4 = v.TryGetProperty("first4", out var f4) ? f4.EnumerateArray().Select(e => e.GetDouble()).ToArray() : null;
            double? sum = v.TryGetProperty("sum_f64", out var se) ? se.GetDouble() : null;
            list.Add(new TensorRecipe(p.Name, shape, dtype, Get("center"), Get("width"), c, first4, sum));
        }
        return new Recipe(seed, list);
    }

    /// <summary>Every tensor of the recipe under its checkpoint name (CPU). The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Generate(string recipeJsonPath)
    {
        var recipe = ReadRecipe(recipeJsonPath);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var r in recipe.Tensors)
        {
            if (r.Const is long c || r.DType is "I64" or "I32")
            {
                var dt = SafeTensors.ToScalarType(r.DType);
                result[r.Name] = full(r.Shape, r.Const ?? 0, dtype: dt);
                continue;
            }
            if (r.DType != "F32") throw new NotSupportedException($"Recipe tensor '{r.Name}' has dtype {r.DType}.");
            var values = Values(r.Name, recipe.CaseSeed, r.Center, r.Width, r.Shape.Aggregate(1L, (a, b) => a * b));
            result[r.Name] = tensor(values, r.Shape);
        }
        return result;
    }

    /// <summary>The float values of one tensor.</summary>
    public static float[] Values(string name, ulong caseSeed, double center, double width, long count)
    {
        ulong s = Fnv1a64(name) ^ caseSeed;
        var v = new float[count];
        for (long i = 0; i < count; i++)
        {
            ulong z = SplitMix64(unchecked(s + (ulong)i));
            long k = (long)(z >> 42);
            v[i] = (float)(center + width * (k - (1L << 21)) / (double)(1L << 22));
        }
        return v;
    }

    public static ulong Fnv1a64(string name)
    {
        ulong h = 0xcbf29ce484222325UL;
        foreach (byte b in Encoding.UTF8.GetBytes(name))
            h = unchecked((h ^ b) * 0x100000001b3UL);
        return h;
    }

    public static ulong SplitMix64(ulong x)
    {
        unchecked
        {
            x += 0x9E3779B97F4A7C15UL;
            ulong z = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }
}
