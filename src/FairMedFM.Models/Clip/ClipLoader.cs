using static TorchSharp.torch;

namespace FairMedFM.Models.Clip;

/// <summary>Builds <see cref="ClipModel"/>s from openai/CLIP-format state dicts (.safetensors, torch.save .pth/.pt/.bin).</summary>
public static class ClipLoader
{
    /// <summary>
    /// Reads <paramref name="path"/> (a bare state dict or one wrapped under "state_dict"/"model", as PubMedCLIP's
    /// checkpoint), builds the model from <paramref name="config"/> — or, when null, from the config
    /// <c>build_model</c> would infer (text heads = width // 64 unless <paramref name="transformerHeads"/> is given) —
    /// and loads it strictly. Eval mode. TorchScript archives (OpenAI's original .pt downloads) are refused with the
    /// one-line conversion to run.
    /// </summary>
    public static ClipModel Load(string path, ClipConfig? config = null, int? transformerHeads = null)
    {
        var sd = WeightLoader.ReadStateDict(path);
        try
        {
            config ??= ClipConfig.InferFromStateDict(sd.ToDictionary(kv => kv.Key, kv => kv.Value.shape), transformerHeads);
            var model = new ClipModel(config);
            try
            {
                LoadStateDict(model, sd, path);
                model.WeightsHash = WeightLoader.FileSha256(path);
                model.eval();
                return model;
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Strict load of an openai/CLIP state dict; the non-weight entries real checkpoints may carry
    /// (input_resolution, context_length, vocab_size — build_model deletes them) are dropped. Half-precision
    /// checkpoints are converted to the module's dtype.
    /// </summary>
    public static WeightLoadReport LoadStateDict(ClipModel model, IReadOnlyDictionary<string, Tensor> stateDict, string source = "<state dict>")
        => WeightLoader.LoadStateDict(model, stateDict, new WeightLoadOptions
        {
            Strict = true,
            KeyMap = k => ClipConfig.NonWeightKeys.Contains(k) ? null : k,
        }, source);
}
