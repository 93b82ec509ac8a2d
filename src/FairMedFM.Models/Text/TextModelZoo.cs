using static TorchSharp.torch;

namespace FairMedFM.Models.Text;

/// <summary>What is needed to build and load the text tower of a CLIP-style FM.</summary>
public sealed class TextModelCard
{
    public string Id { get; init; } = "";

    /// <summary><see cref="TextModelZoo.FamilyOpenClipHf"/> or <see cref="TextModelZoo.FamilyMedClip"/>.</summary>
    public string Family { get; init; } = "";

    /// <summary>The BERT shapes used when the folder has no config.json.</summary>
    public BertConfig Bert { get; init; } = BertConfig.Base;

    public int EmbeddingDim { get; init; } = 512;
    public int ContextLength { get; init; }
    public BertPadding Padding { get; init; } = BertPadding.Longest;

    /// <summary>Tokenizer switches used when the folder has no tokenizer_config.json.</summary>
    public BertTokenizerOptions Tokenizer { get; init; } = BertTokenizerOptions.Uncased;

    /// <summary>open_clip's HFTokenizer clean='whitespace': collapse whitespace runs to one space and trim.</summary>
    public bool WhitespaceClean { get; init; }

    /// <summary>open_clip pooler type (family open_clip only).</summary>
    public string Pooler { get; init; } = "cls_last_hidden_state_pooler";

    /// <summary>open_clip proj_type (family open_clip only): null, "linear" or "mlp".</summary>
    public string? ProjType { get; init; }

    /// <summary>Sub-folder of the weights dir that holds this model's files.</summary>
    public string Folder { get; init; } = "";

    public string WeightsFile { get; init; } = "";
    public IReadOnlyList<string> WeightsFileAlternatives { get; init; } = [];
    public string VocabFile { get; init; } = "vocab.txt";

    /// <summary>Prefix of the tower's keys in the full checkpoint ("text." for open_clip, "text_model." for MedCLIP).</summary>
    public string CheckpointPrefix { get; init; } = "";

    /// <summary>Keys of the other tower and the logit scale, dropped (reported, not loaded).</summary>
    public IReadOnlyList<string> IgnoredPrefixes { get; init; } = [];

    public string? WeightsUrl { get; init; }
    public string? Source { get; init; }
    public string? License { get; init; }
}

/// <summary>The text towers of FairMedFM's CLIP-style models built on HF BERT.</summary>
public static class TextModelZoo
{
    public const string FamilyOpenClipHf = "openclip-hf-bert";
    public const string FamilyMedClip = "medclip-bert";

    /// <summary>Buffers some transformers versions saved in state dicts; not parameters (positions are 0..L−1).</summary>
    private static readonly string[] BufferSuffixes = ["embeddings.position_ids", "embeddings.token_type_ids"];

    public static IReadOnlyList<TextModelCard> Cards { get; } =
    [
        new TextModelCard
        {
            Id = "biomedclip",
            Family = FamilyOpenClipHf,
            Bert = BertConfig.Base with { AddPoolingLayer = false },
            EmbeddingDim = 512,
            ContextLength = 256,
            Padding = BertPadding.MaxLength,
            Tokenizer = BertTokenizerOptions.Uncased,
            WhitespaceClean = true,
            Pooler = "cls_last_hidden_state_pooler",
            ProjType = "mlp",
            Folder = "biomedclip",
            WeightsFile = "open_clip_pytorch_model.bin",
            WeightsFileAlternatives = ["open_clip_model.safetensors", "open_clip_pytorch_model.safetensors"],
            CheckpointPrefix = "text.",
            IgnoredPrefixes = ["visual.", "logit_scale", "logit_bias"],
            WeightsUrl = "https://huggingface.co/microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 (open_clip_pytorch_model.bin; " +
                         "vocab.txt and optionally config.json / tokenizer_config.json from microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract)",
            Source = "open_clip hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 text tower: HFTextEncoder over " +
                     "PubMedBERT/BiomedBERT-base-uncased-abstract (BERT-base), pooler cls_last_hidden_state_pooler, proj mlp 768→640→512 " +
                     "(no biases, exact GELU); HFTokenizer uncased WordPiece, context 256, padding max_length, truncation",
            License = "MIT (BiomedCLIP), see the model card",
        },
        new TextModelCard
        {
            Id = "medclip-vit",
            Family = FamilyMedClip,
            // Bio_ClinicalBERT (emilyalsentzer/Bio_ClinicalBERT config.json): BERT-base with BioBERT's cased vocabulary.
            Bert = BertConfig.Base with { VocabSize = 28996 },
            EmbeddingDim = 512,
            ContextLength = 77,
            Padding = BertPadding.Longest,
            // The vocabulary is cased, but the hub repository has no tokenizer_config.json, so AutoTokenizer (which
            // MedCLIP and FairMedFM use) builds it with HF's default do_lower_case=True and lowercases
            // (EmilyAlsentzer/clinicalBERT issue #26). A tokenizer_config.json in the folder overrides this.
            Tokenizer = BertTokenizerOptions.Uncased,
            Folder = "medclip-vit",
            WeightsFile = "pytorch_model.bin",
            WeightsFileAlternatives = ["model.safetensors", "medclip-vit.safetensors"],
            CheckpointPrefix = "text_model.",
            IgnoredPrefixes = ["vision_model.", "logit_scale"],
            WeightsUrl = "MedCLIP release medclip-vit-pretrained (pytorch_model.bin; also in FairMedFM's pretrained.zip as medclip-vit/), " +
                         "vocab.txt (and optionally config.json) from https://huggingface.co/emilyalsentzer/Bio_ClinicalBERT",
            Source = "medclip 0.0.3 MedCLIPModel(vision_cls=MedCLIPVisionModelViT).text_model: Bio_ClinicalBERT + projection_head " +
                     "768→512 (no bias); embedding = mean over tokens (padding included) of hidden_states[1], [2] and [-1], averaged; " +
                     "AutoTokenizer(Bio_ClinicalBERT), model_max_length 77, truncation, padding to the longest prompt",
            License = "see RyanWangZf/MedCLIP (weights) and emilyalsentzer/Bio_ClinicalBERT (MIT)",
        },
    ];

    public static TextModelCard GetCard(string id) =>
        Cards.FirstOrDefault(c => string.Equals(c.Id, id, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown text model '{id}'. Known: {string.Join(", ", Cards.Select(c => c.Id))}.", nameof(id));

    /// <summary>The card's folder and the files in it; a FileNotFoundException naming every expected file that is missing.</summary>
    public static (string Folder, string Weights, string Vocab) ResolveFiles(TextModelCard card, string? weightsDir)
    {
        string folder = string.IsNullOrEmpty(weightsDir) ? card.Folder : Path.Combine(weightsDir, card.Folder);
        var weightNames = new[] { card.WeightsFile }.Concat(card.WeightsFileAlternatives).ToList();
        string? weights = string.IsNullOrEmpty(weightsDir) ? null
            : weightNames.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists);
        string vocab = Path.Combine(folder, card.VocabFile);
        var missing = new List<string>();
        if (weights is null) missing.Add($"'{card.WeightsFile}'" + (card.WeightsFileAlternatives.Count > 0 ? $" (or {string.Join(", ", card.WeightsFileAlternatives)})" : ""));
        if (string.IsNullOrEmpty(weightsDir) || !File.Exists(vocab)) missing.Add($"'{card.VocabFile}'");
        if (missing.Count > 0)
        {
            string where = string.IsNullOrEmpty(weightsDir) ? "no weights dir was given" : $"folder '{folder}'";
            throw new FileNotFoundException(
                $"Text model '{card.Id}': {string.Join(" and ", missing)} not found ({where}); optional: config.json, tokenizer_config.json." +
                (card.WeightsUrl is null ? "" : $" Get them from {card.WeightsUrl}."), Path.Combine(folder, card.WeightsFile));
        }
        return (folder, weights!, vocab);
    }

    public static IBertTextEncoder CreateEncoder(string id, string? weightsDir, Device? device = null) =>
        CreateEncoder(GetCard(id), weightsDir, device);

    /// <summary>
    /// Builds and loads a text tower. Files are looked up first (a missing file fails before anything is built); the
    /// folder's config.json and tokenizer_config.json, when present, override the card's BERT shapes and tokenizer
    /// switches. Loading is strict on the tower's keys; the other tower's keys and the logit scale are dropped.
    /// </summary>
    public static IBertTextEncoder CreateEncoder(TextModelCard card, string? weightsDir, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(card);
        var (folder, weights, vocab) = ResolveFiles(card, weightsDir);
        var cfgPath = Path.Combine(folder, "config.json");
        var bert = File.Exists(cfgPath) ? BertConfig.FromHfConfigJson(cfgPath) : card.Bert;
        var tokCfg = Path.Combine(folder, "tokenizer_config.json");
        var tokOptions = File.Exists(tokCfg) ? BertTokenizerOptions.FromTokenizerConfigJson(tokCfg) : card.Tokenizer;
        var tokenizer = BertWordPieceTokenizer.FromVocabFile(vocab, tokOptions);
        if (tokenizer.VocabSize != bert.VocabSize)
            throw new InvalidDataException($"Text model '{card.Id}': '{vocab}' has {tokenizer.VocabSize} tokens but the BERT has vocab_size {bert.VocabSize}.");

        TorchSharp.torch.nn.Module module;
        IBertTextTower tower;
        switch (card.Family)
        {
            case FamilyOpenClipHf:
                var oc = new OpenClipHfTextTower(card.Id, bert, card.EmbeddingDim, card.Pooler, card.ProjType);
                (module, tower) = (oc, oc);
                break;
            case FamilyMedClip:
                var mc = new MedClipTextTower(card.Id, bert, card.EmbeddingDim);
                (module, tower) = (mc, mc);
                break;
            default:
                throw new NotSupportedException($"Text model '{card.Id}': unknown family '{card.Family}'.");
        }
        try
        {
            WeightLoader.Load(module, weights, CheckpointLoadOptions(card));
            var enc = new BertTextEncoder(card.Id, tower, tokenizer, card.ContextLength, card.Padding, WeightLoader.FileSha256(weights), device);
            return card.WhitespaceClean ? new WhitespaceCleaningEncoder(enc) : enc;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>Strict on the tower's keys (prefix stripped), dropping the other tower, the logit scale and saved buffers.</summary>
    public static WeightLoadOptions CheckpointLoadOptions(TextModelCard card) => new()
    {
        Strict = true,
        KeyMap = k =>
        {
            if (card.CheckpointPrefix.Length > 0 && k.StartsWith(card.CheckpointPrefix, StringComparison.Ordinal))
                k = k[card.CheckpointPrefix.Length..];
            else if (card.IgnoredPrefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal)))
                return null;
            return BufferSuffixes.Any(s => k.EndsWith(s, StringComparison.Ordinal)) ? null : k;
        },
    };

    /// <summary>open_clip's whitespace_clean: " ".join(text.split()).strip() (Python whitespace, incl. \x1c–\x1f).</summary>
    public static string WhitespaceClean(string text)
    {
        static bool PyWs(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';
        var sb = new System.Text.StringBuilder(text.Length);
        bool pending = false;
        foreach (var c in text)
        {
            if (PyWs(c)) { pending = sb.Length > 0; continue; }
            if (pending) { sb.Append(' '); pending = false; }
            sb.Append(c);
        }
        return sb.ToString();
    }

    private sealed class WhitespaceCleaningEncoder(BertTextEncoder inner) : IBertTextEncoder
    {
        public string ModelId => inner.ModelId;
        public int EmbeddingDim => inner.EmbeddingDim;
        public int ContextLength => inner.ContextLength;
        public string WeightsHash => inner.WeightsHash;
        public BertWordPieceTokenizer Tokenizer => inner.Tokenizer;
        public Tensor EncodeText(IReadOnlyList<string> texts) => inner.EncodeText(texts.Select(WhitespaceClean).ToList());
        public void Dispose() => inner.Dispose();
    }
}
