using System.Reflection;

namespace FairMedFM.Models;

/// <summary>
/// Locates the ImageNet ResNet ONNX files of Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0 (MIT). Search order:
/// env FAIRMEDFM_DNN_MODELS_DIR; DnnImageModels/ next to this assembly or the app base (copied by the build);
/// the package folder recorded at build time; the NuGet cache (NUGET_PACKAGES or ~/.nuget/packages).
/// </summary>
public static class PackagedModels
{
    public const string PackageId = "microsoft.ml.dnnimagefeaturizer.resnet18";
    public const string PackageVersion = "0.24.0";
    private const string ResNet18Rel = "ResNet18Onnx/ResNet18.onnx";
    private const string PreprocessRel = "ResNetPrepOnnx/ResNetPreprocess.onnx";

    /// <summary>The CNTK ImageNet ResNet-18 ONNX (Input247 [1,3,224,224] → Pooling395_Output_0 [1,512,1,1]).</summary>
    public static string ResNet18OnnxPath => Find(ResNet18Rel);

    /// <summary>Its preprocessing graph: RGB → BGR, then minus a 3×224×224 mean image (input in 0–255).</summary>
    public static string ResNetPreprocessOnnxPath => Find(PreprocessRel);

    /// <summary>The folders searched, in order (for error messages and diagnostics).</summary>
    public static IReadOnlyList<string> SearchDirs()
    {
        var dirs = new List<string>();
        var env = Environment.GetEnvironmentVariable("FAIRMEDFM_DNN_MODELS_DIR");
        if (!string.IsNullOrEmpty(env)) dirs.Add(env);
        var asmDir = Path.GetDirectoryName(typeof(PackagedModels).Assembly.Location);
        if (!string.IsNullOrEmpty(asmDir)) dirs.Add(Path.Combine(asmDir, "DnnImageModels"));
        dirs.Add(Path.Combine(AppContext.BaseDirectory, "DnnImageModels"));
        var built = typeof(PackagedModels).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "FairMedFM.DnnImageModelsDir")?.Value;
        if (!string.IsNullOrEmpty(built)) dirs.Add(built);
        var nuget = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(nuget))
            nuget = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        dirs.Add(Path.Combine(nuget, PackageId, PackageVersion, "tools", "DnnImageModels"));
        return dirs.Distinct().ToList();
    }

    private static string Find(string rel)
    {
        var dirs = SearchDirs();
        foreach (var d in dirs)
        {
            var p = Path.Combine(d, rel);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException(
            $"'{rel}' of NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 {PackageVersion} was not found. Searched: " +
            string.Join("; ", dirs) + ". Restore/build FairMedFM.Models (it copies the file to the output) or set FAIRMEDFM_DNN_MODELS_DIR.");
    }
}
