using System.Collections.Concurrent;
using FairMedFM.Data;
using FairMedFM.Engine.Config;
using FairMedFM.Models;

namespace FairMedFM.Engine;

/// <summary>
/// Process-wide memo of loaded datasets, keyed by card path and the card/CSV modification times, so every grain of a
/// silo shares one parsed copy (large tables never travel in grain messages).
/// </summary>
public static class DatasetCatalog
{
    private static readonly ConcurrentDictionary<string, Lazy<LoadedDataset>> Cache = new();

    public static LoadedDataset Get(string cardPath)
    {
        cardPath = Path.GetFullPath(cardPath);
        if (!File.Exists(cardPath)) throw new DataException($"dataset card not found: {cardPath}");
        var card = DatasetCard.Load(cardPath);
        var key = Key(cardPath, card);
        var lazy = Cache.GetOrAdd(key, _ => new Lazy<LoadedDataset>(() => LoadedDataset.Load(card), LazyThreadSafetyMode.ExecutionAndPublication));
        try { return lazy.Value; }
        catch { Cache.TryRemove(key, out _); throw; } // a failed load (bad row, missing image) is retried after the user fixes it
    }

    /// <summary>
    /// What <see cref="Get"/> is keyed by (card path, card and CSV modification times), without loading the data. Grains
    /// that keep a dataset's status compare stamps to notice that the user edited the card or CSV. Never throws.
    /// </summary>
    public static string Stamp(string cardPath)
    {
        cardPath = Path.GetFullPath(cardPath);
        try { return Key(cardPath, DatasetCard.Load(cardPath)); }
        catch (Exception e) when (e is DataException or IOException or UnauthorizedAccessException)
        {
            return $"{cardPath}|unreadable|{(File.Exists(cardPath) ? File.GetLastWriteTimeUtc(cardPath).Ticks : 0)}";
        }
    }

    private static string Key(string cardPath, DatasetCard card)
    {
        var csvStamp = File.Exists(card.MetadataCsv) ? File.GetLastWriteTimeUtc(card.MetadataCsv).Ticks : 0;
        return $"{cardPath}|{File.GetLastWriteTimeUtc(cardPath).Ticks}|{csvStamp}";
    }
}

/// <summary>
/// Resolves a model id to its card, its encoder, its weights identity and its pre-processing: the zoo's cards plus
/// any registered in code (<see cref="Register"/>: a local variant, a small configuration for tests).
/// </summary>
public static class ModelCatalog
{
    private static readonly ConcurrentDictionary<string, string> WeightsHashes = new();
    private static readonly ConcurrentDictionary<string, (ModelCard Card, Func<Workspace, IImageEncoder>? Factory)> Registered = new();

    /// <summary>
    /// Makes <paramref name="card"/> usable by id in cells and grids, in this process. Its encoder comes from
    /// <paramref name="factory"/> when given, else from <see cref="ModelZoo.CreateEncoder(ModelCard, string?, string, TorchSharp.torch.Device?)"/>
    /// (its family's builder and weights file in the workspace's weights folder). A zoo id cannot be registered;
    /// registering an id again replaces it.
    /// </summary>
    public static void Register(ModelCard card, Func<Workspace, IImageEncoder>? factory = null)
    {
        ArgumentNullException.ThrowIfNull(card);
        if (string.IsNullOrWhiteSpace(card.Id)) throw new ArgumentException("a registered model card needs an id");
        if (ModelZoo.Cards.Any(c => string.Equals(c.Id, card.Id, StringComparison.OrdinalIgnoreCase)))
            throw new ArgumentException($"'{card.Id}' is a zoo model; register the card under another id");
        Registered[card.Id] = (card, factory);
        foreach (var k in WeightsHashes.Keys.Where(k => k.StartsWith(card.Id + "|", StringComparison.Ordinal))) WeightsHashes.TryRemove(k, out _);
    }

    private static readonly System.Text.Json.JsonSerializerOptions CardFileJson = new()
    {
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>
    /// Registers the model cards of a JSON file (one card object, or an array of them) in this process, as <see cref="Register"/>
    /// does: a local variant of a supported family (a smaller ViT, a ResNet with other weights) that has no built-in card. Keys are
    /// <see cref="ModelCard"/>'s properties in snake_case (<c>id</c>, <c>family</c>, <c>vit: {img_size, patch_size, …}</c>,
    /// <c>feature_dim</c>, <c>image_size</c>, <c>weights_file</c> relative to the weights folder, <c>normalization_kind</c>,
    /// <c>mean</c>, <c>std</c>, <c>source</c>, …); an unknown key is an error, so is a zoo id. Silos load such a file at start
    /// (<c>--ModelCards</c> / <c>FAIRMEDFM_MODELCARDS</c>) so every silo knows the same cards. Returns the ids registered.
    /// </summary>
    public static IReadOnlyList<string> RegisterFile(string path)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"model card file not found: {path}", path);
        List<ModelCard> cards;
        try
        {
            var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path),
                documentOptions: new System.Text.Json.JsonDocumentOptions { CommentHandling = System.Text.Json.JsonCommentHandling.Skip, AllowTrailingCommas = true });
            cards = node switch
            {
                System.Text.Json.Nodes.JsonArray a => a.Select((c, i) => System.Text.Json.JsonSerializer.Deserialize<ModelCard>(c, CardFileJson)
                    ?? throw new System.Text.Json.JsonException($"entry {i} is null")).ToList(),
                System.Text.Json.Nodes.JsonObject o => [System.Text.Json.JsonSerializer.Deserialize<ModelCard>(o, CardFileJson)!],
                _ => throw new System.Text.Json.JsonException("expected a card object or an array of cards"),
            };
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"model card file {path}: {e.Message}", e);
        }
        foreach (var c in cards)
        {
            if (string.IsNullOrWhiteSpace(c.Id) || string.IsNullOrWhiteSpace(c.Family) && c.ResNet is null)
                throw new InvalidDataException($"model card file {path}: every card needs an id and a family (card '{c.Id}')");
            if (c.FeatureDim <= 0 || c.ImageSize <= 0)
                throw new InvalidDataException($"model card file {path}: card '{c.Id}' needs feature_dim and image_size > 0");
        }
        foreach (var c in cards)
        {
            try { Register(c); }
            catch (ArgumentException e) { throw new InvalidDataException($"model card file {path}: {e.Message}", e); }
        }
        return cards.Select(c => c.Id).ToList();
    }

    /// <summary>Removes a card added by <see cref="Register"/>; false when there was none.</summary>
    public static bool Unregister(string modelId)
    {
        foreach (var k in WeightsHashes.Keys.Where(k => k.StartsWith(modelId + "|", StringComparison.Ordinal))) WeightsHashes.TryRemove(k, out _);
        return Registered.TryRemove(modelId, out _);
    }

    public static ModelCard? TryCard(string modelId) =>
        Registered.TryGetValue(modelId, out var r) ? r.Card : ModelZoo.Cards.FirstOrDefault(c => c.Id == modelId);

    /// <summary>
    /// A card registered in code (<see cref="Register"/>), else a built-in card, else (with a workspace) a user's ONNX
    /// card <c>&lt;weights&gt;/&lt;id&gt;/onnx-card.json</c> for an FM exported to ONNX that has no port here.
    /// </summary>
    public static ModelCard Card(string modelId, Workspace? ws = null)
    {
        var card = TryCard(modelId);
        if (card is not null) return card;
        if (ws?.WeightsDir is { Length: > 0 } wd && modelId.IndexOfAny(['/', '\\']) < 0 &&
            File.Exists(Path.Combine(wd, modelId, FairMedFM.Models.Onnx.OnnxImageEncoder.CardFileName)))
            return ModelZoo.ResolveCard(modelId, wd);
        // Ids `models list` shows but that this task cannot use: say what they are rather than "unknown".
        if (Segmentation.SegModelCatalog.IsSegmentationModel(modelId))
            throw new ArgumentException($"'{modelId}' is a segmentation model; use it with seg-* usages");
        if (FairMedFM.Models.ModelStatus.NotYetAvailable.FirstOrDefault(n => n.Id == modelId) is { Id: not null } na)
            throw new ArgumentException($"'{modelId}' is not available yet: {na.Reason}");
        if (FairMedFM.Models.Sam.SegModelZoo.NotYetAvailable.FirstOrDefault(n => n.Id == modelId) is { Id: not null } sna)
            throw new ArgumentException($"'{modelId}' is a segmentation model, and not available yet: {sna.Reason}");
        var known = ModelZoo.Cards.Select(c => c.Id).Concat(Registered.Keys.Order()).ToList();
        var near = Config.NameSuggestions.Nearest(modelId, known) is { } n ? $"did you mean '{n}'? " : "";
        throw new ArgumentException($"unknown model '{modelId}' ({near}known: {string.Join(", ", known)}; " +
                                    $"or declare an ONNX model in <weights>/{modelId}/{FairMedFM.Models.Onnx.OnnxImageEncoder.CardFileName})");
    }

    /// <summary>Hash of the weights the encoder will load, memoised per process (hashing a checkpoint is not free).</summary>
    public static string WeightsHash(string modelId, Workspace ws)
    {
        return WeightsHashes.GetOrAdd($"{modelId}|{ws.WeightsDir}", _ =>
        {
            using var enc = CreateEncoder(modelId, ws);
            return enc.WeightsHash;
        });
    }

    public static IImageEncoder CreateEncoder(string modelId, Workspace ws) =>
        Registered.TryGetValue(modelId, out var r)
            ? r.Factory?.Invoke(ws) ?? ModelZoo.CreateEncoder(r.Card, ws.WeightsDir, ws.ModelsCacheDir)
            : ModelZoo.CreateEncoder(modelId, ws.WeightsDir, ws.ModelsCacheDir);

    /// <summary>
    /// "model": the FM's own normalisation (the packaged CNTK ResNet wants BGR 0–255 minus its mean image);
    /// "dataset": FairMedFM's reference behaviour, the dataset card's mean/std whatever the model.
    /// </summary>
    public static INormalization Normalization(ModelCard card, DatasetCard dataset, string choice)
    {
        if (choice == "dataset")
        {
            var n = dataset.Normalization ?? throw new ConfigException($"dataset card {dataset.SourceFile} has no normalization block but normalization: dataset was asked for");
            return new MeanStdNormalization(n.Mean.ToArray(), n.Std.ToArray());
        }
        return card.NormalizationKind switch
        {
            "model-mean-image" => new MeanImageNormalization(OnnxResNetImporter.ReadPreprocessMeanImage(PackagedModels.ResNetPreprocessOnnxPath), card.ImageSize, card.ImageSize),
            "meanstd" => new MeanStdNormalization(card.Mean ?? throw new ConfigException($"model card {card.Id} lacks mean"), card.Std ?? throw new ConfigException($"model card {card.Id} lacks std")),
            "dataset" => Normalization(card, dataset, "dataset"),
            var k => throw new ConfigException($"model card {card.Id}: unknown normalization kind '{k}'"),
        };
    }

    public static PreprocessingSpec Preprocessing(ModelCard card) => new(card.ImageSize, card.ImageSize);
}
