using FairMedFM.Models;
using FairMedFM.Models.Peft;

namespace FairMedFM.Engine.Config;

/// <summary>
/// The grid's optional <c>lora:</c> block: any of rank, alpha, dropout and targets, overriding the model card's
/// lora_targets / LoraRank / LoraAlpha / LoraDropout for every <c>lora</c> cell. In a cell it is stored resolved
/// (every field filled from the card), so the cell id changes when the effective LoRA settings do.
/// </summary>
public sealed record LoraConfig
{
    public int? Rank { get; init; }
    public double? Alpha { get; init; }
    public double? Dropout { get; init; }
    public List<string>? Targets { get; init; }

    public void Validate()
    {
        if (Rank is < 1) throw new ConfigException($"lora.rank must be ≥ 1 (got {Rank})");
        if (Alpha is { } a && !(a > 0 && !double.IsInfinity(a))) throw new ConfigException($"lora.alpha must be > 0 (got {a})");
        if (Dropout is { } d && !(d >= 0 && d < 1)) throw new ConfigException($"lora.dropout must be in [0, 1) (got {d})");
        if (Targets is not null && (Targets.Count == 0 || Targets.Any(string.IsNullOrWhiteSpace)))
            throw new ConfigException("lora.targets must list at least one module name (or be left out to use the model card's lora_targets)");
    }

    /// <summary>
    /// The settings a LoRA cell of <paramref name="card"/> uses: this block over the card's. A card without
    /// lora_targets is not LoRA-eligible, whatever the grid says (FairMedFM: "not a ViT-based model or not supported").
    /// </summary>
    public static LoraSettings Resolve(ModelCard card, LoraConfig? grid)
    {
        var fromCard = LoraSettings.FromCard(card)
            ?? throw new ConfigException($"model '{card.Id}' is not LoRA-eligible: its card names no lora_targets " +
                                         "(FairMedFM: only ViT-based models with a qkv or query/key/value Linear are; CLIP-style and ResNet models are not)");
        grid?.Validate();
        var s = new LoraSettings(grid?.Targets?.ToList() ?? fromCard.Targets.ToList(), grid?.Rank ?? fromCard.Rank,
                                 grid?.Alpha ?? fromCard.Alpha, grid?.Dropout ?? fromCard.Dropout);
        try { s.Validate(); }
        catch (ArgumentException e) { throw new ConfigException($"model card '{card.Id}': {e.Message}"); }
        return s;
    }

    /// <summary>The fully filled block of resolved settings (what a cell stores).</summary>
    public static LoraConfig From(LoraSettings s) =>
        new() { Rank = s.Rank, Alpha = s.Alpha, Dropout = s.Dropout, Targets = s.Targets.ToList() };

    public bool Equals(LoraConfig? other) =>
        other is not null && Rank == other.Rank && Nullable.Equals(Alpha, other.Alpha) && Nullable.Equals(Dropout, other.Dropout) &&
        (Targets is null ? other.Targets is null : other.Targets is not null && Targets.SequenceEqual(other.Targets));

    public override int GetHashCode() => HashCode.Combine(Rank, Alpha, Dropout, Targets is null ? null : string.Join("\n", Targets));
}
