using TorchSharp;
using TorchSharp.Modules;
using FairMedFM.Models.Hf;
using FairMedFM.Models.Vit;
using static TorchSharp.torch;

namespace FairMedFM.Models.Swin;

/// <summary>
/// MedCLIP's <c>MedCLIPVisionModelViT</c>: <c>model</c> = HF SwinModel (Swin-T, microsoft/swin-tiny-patch4-window7-224)
/// and <c>projection_head</c> = Linear(768, 512, bias=False). forward = projection_head(pooler_output); a one-channel
/// input is repeated to three channels as MedCLIP does. MedCLIP's encode_image L2-normalises this output; FairMedFM's
/// feature is the unnormalised <c>vision_model(x)</c> (spec §3.1).
/// </summary>
public sealed class MedClipVisionModel : nn.Module<Tensor, Tensor>
{
    private readonly SwinTransformer model;
    private readonly Linear projection_head;

    public int ProjectionDim { get; }

    public MedClipVisionModel(string name, SwinConfig swin, int projectionDim = 512) : base(name)
    {
        if (swin.NumClasses != 0) throw new ArgumentException("MedCLIP's Swin backbone has no classification head (NumClasses 0).");
        ProjectionDim = projectionDim;
        model = new SwinTransformer("model", swin);
        projection_head = nn.Linear(swin.NumFeatures, projectionDim, hasBias: false);
        RegisterComponents();
    }

    public SwinTransformer Backbone => model;

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (x.shape[1] == 1) x = x.repeat(1, 3, 1, 1);
        return projection_head.forward(model.ForwardPooled(x)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// MedCLIP's full checkpoint (<c>pytorch_model.bin</c> with vision_model.* and text_model.*, logit_scale) onto this
    /// module: <c>vision_model.model.*</c> through the HF Swin layout, <c>vision_model.projection_head.weight</c>
    /// renamed, the text tower and logit scale dropped.
    /// </summary>
    public static HfLayout CheckpointLayout(SwinConfig swin) =>
        new("HF SwinModel (MedCLIP vision_model)",
            SwinTransformer.HfSwinLayout(swin, "vision_model.model.", "model.").Rules
                .Append(HfKeyRule.Rename("vision_model.projection_head.weight", "projection_head.weight")),
            k => k.StartsWith("text_model.", StringComparison.Ordinal) || k == "logit_scale" ||
                 k.EndsWith("position_ids", StringComparison.Ordinal));

    /// <summary>
    /// Loads a MedCLIP-layout state dict strictly. The <c>relative_position_index</c> buffers are computed, not learnt:
    /// when a checkpoint lacks them (transformers versions that do not persist the buffer) the module's own are kept;
    /// when it has them they must equal the module's.
    /// </summary>
    public WeightLoadReport LoadCheckpoint(IReadOnlyDictionary<string, Tensor> checkpoint, string source = "<state dict>")
    {
        var mapped = CheckpointLayout(model.Config).FromHf(checkpoint);
        try
        {
            var own = state_dict();
            foreach (var (k, t) in own)
                if (k.EndsWith("relative_position_index", StringComparison.Ordinal))
                {
                    if (!mapped.ContainsKey(k)) mapped[k] = t.alias();
                    else if (!mapped[k].shape.SequenceEqual(t.shape) || !mapped[k].to(int64).eq(t).all().item<bool>())
                        throw new InvalidDataException($"{source}: '{k}' differs from the Swin relative position index.");
                }
            return WeightLoader.LoadStateDict(this, mapped, new WeightLoadOptions { Strict = true }, source);
        }
        finally
        {
            foreach (var t in mapped.Values) t.Dispose();
        }
    }
}

/// <summary>Builds the MedCLIP image encoder (family "swin") of <see cref="ModelZoo"/>.</summary>
public static class SwinModelZoo
{
    public const string FamilySwin = "swin";

    public static bool Handles(ModelCard card) => card.Family == FamilySwin;

    /// <summary>
    /// Finds the weights file first (a missing file fails with its expected name before the module is built), then
    /// builds MedCLIP's vision model and loads <c>vision_model.*</c> strictly; feature = projection (unnormalised).
    /// </summary>
    public static IImageEncoder CreateEncoder(ModelCard card, string? weightsDir, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(card);
        var swin = card.Swin ?? throw new InvalidOperationException($"Card '{card.Id}' has no Swin config.");
        var path = ModelZoo.ResolveWeightsFile(card, weightsDir);
        var model = new MedClipVisionModel(card.Id, swin, card.FeatureDim);
        try
        {
            var sd = WeightLoader.ReadStateDict(path);
            try
            {
                model.LoadCheckpoint(sd, path);
            }
            finally
            {
                foreach (var t in sd.Values) t.Dispose();
            }
            return new VitImageEncoder<MedClipVisionModel>(card.Id, model, (m, x) => m.forward(x), card.FeatureDim,
                                                           WeightLoader.FileSha256(path), device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
