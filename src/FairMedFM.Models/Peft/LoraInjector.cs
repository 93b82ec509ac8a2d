using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Peft;

/// <summary>LoRA hyper-parameters: rank r, alpha (scale alpha / r), dropout on A's input, target module names.</summary>
public sealed record LoraSettings(IReadOnlyList<string> Targets, int Rank = 8, double Alpha = 8, double Dropout = 0)
{
    public double Scale => Alpha / Rank;

    /// <summary>The card's settings (FairMedFM's lora_targets with PEFT's defaults unless the card says otherwise); null when it names no targets.</summary>
    public static LoraSettings? FromCard(ModelCard card) =>
        card.LoraTargets is { Count: > 0 } t ? new LoraSettings(t.ToList(), card.LoraRank, card.LoraAlpha, card.LoraDropout) : null;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad value.</summary>
    public void Validate()
    {
        if (Targets is null || Targets.Count == 0) throw new ArgumentException("LoRA needs at least one target module name.");
        if (Targets.Any(string.IsNullOrWhiteSpace)) throw new ArgumentException("LoRA target module names must not be empty.");
        if (Rank < 1) throw new ArgumentException($"LoRA rank must be ≥ 1 (got {Rank}).");
        if (!(Alpha > 0) || double.IsInfinity(Alpha)) throw new ArgumentException($"LoRA alpha must be > 0 (got {Alpha}).");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException($"LoRA dropout must be in [0, 1) (got {Dropout}).");
    }

    public bool Equals(LoraSettings? other) =>
        other is not null && Rank == other.Rank && Alpha.Equals(other.Alpha) && Dropout.Equals(other.Dropout) && Targets.SequenceEqual(other.Targets);

    public override int GetHashCode() => HashCode.Combine(Rank, Alpha, Dropout, string.Join("\n", Targets));
}

/// <summary>
/// Applies LoRA to a model the way PEFT's <c>get_peft_model(model, LoraConfig(target_modules=…))</c> does for
/// Linear targets: every module whose full name equals a target or ends with "." + target is replaced by a
/// <see cref="LoraLinear"/>; every other parameter of the model is frozen, so only the LoRA A/B matrices train.
/// The Hugging Face names <c>query</c>, <c>key</c>, <c>value</c>, when the model has no such modules but fused
/// <c>qkv</c> Linears (RAD-DINO loaded into the DINOv2 port), adapt the corresponding third of each qkv with an
/// adapter of its own — the same function as PEFT's separate adapters on the three HF projections.
/// </summary>
public static class LoraInjector
{
    /// <summary>
    /// Wraps the targeted Linear modules of <paramref name="model"/> in place and returns the adapters with their full
    /// names, in module order. A target that matches no module, or matches a module that is not a Linear, is an
    /// error that lists the model's Linear names. A is drawn from a generator seeded with <paramref name="seed"/>.
    /// </summary>
    public static IReadOnlyList<(string Name, LoraLinear Adapter)> Apply(nn.Module model, LoraSettings settings, long seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        var modules = model.named_modules().Where(m => m.name.Length > 0).ToList();
        if (modules.Any(m => m.module is LoraLinear))
            throw new InvalidOperationException($"{model.GetType().Name} already has LoRA adapters; apply LoRA once.");

        // Module name → the Linear and, for query/key/value mapped onto a fused qkv, the output slices to adapt.
        var chosen = new List<(string Name, Linear Layer, List<LoraSlice>? Slices)>();
        foreach (var target in settings.Targets)
        {
            var hits = modules.Where(m => Matches(m.name, target)).ToList();
            if (hits.Count == 0 && FusedQkvIndex(target) is { } third)
            {
                // A Hugging Face name (query/key/value) on a port that fuses them: adapt that third of every qkv.
                foreach (var (name, m) in modules.Where(m => Matches(m.name, "qkv")))
                {
                    if (m is not Linear qkv || qkv.out_features % 3 != 0)
                        throw new ArgumentException($"LoRA target '{target}' would adapt a third of '{name}', which is not a Linear with 3·d outputs");
                    long d = qkv.out_features / 3;
                    var entry = chosen.FirstOrDefault(c => c.Name == name);
                    if (entry.Name is null) chosen.Add(entry = (name, qkv, new List<LoraSlice>()));
                    if (entry.Slices is null)
                        throw new ArgumentException($"LoRA targets adapt '{name}' both whole and by its {target} slice; name either qkv or query/key/value");
                    if (entry.Slices.All(sl => sl.Name != target)) entry.Slices.Add(new LoraSlice(target, third * d, d));
                }
                if (chosen.Any(c => c.Slices?.Any(sl => sl.Name == target) == true)) continue;
            }
            if (hits.Count == 0)
                throw new ArgumentException(
                    $"LoRA target '{target}' matches no module of {model.GetType().Name} " +
                    $"(its Linear modules are named: {string.Join(", ", LinearSuffixes(modules))})");
            foreach (var (name, m) in hits)
            {
                if (m is not Linear lin)
                    throw new ArgumentException($"LoRA target '{target}' matches '{name}', a {m.GetType().Name}; only Linear modules can be adapted");
                var existing = chosen.FirstOrDefault(c => c.Name == name);
                if (existing.Name is null) chosen.Add((name, lin, null));
                else if (existing.Slices is not null)
                    throw new ArgumentException($"LoRA targets adapt '{name}' both whole and by slices; name either qkv or query/key/value");
            }
        }

        // Check every replacement before changing anything, so a refused target leaves the model as it was.
        foreach (var (name, _, _) in chosen)
        {
            int dot = name.LastIndexOf('.');
            var parent = ModuleSurgery.Resolve(model, dot < 0 ? "" : name[..dot]);
            if (ModuleSurgery.WhyNotReplaceable(parent, dot < 0 ? name : name[(dot + 1)..], typeof(LoraLinear)) is { } why)
                throw new InvalidOperationException($"LoRA cannot wrap '{name}': {why}");
        }

        foreach (var p in model.parameters()) p.requires_grad = false;

        // Module order, whatever the order of the targets: the generator's draws then do not depend on how targets are listed.
        var order = modules.Select((m, i) => (m.name, i)).ToDictionary(x => x.name, x => x.i);
        chosen.Sort((a, b) => order[a.Name].CompareTo(order[b.Name]));
        var generator = new Generator((ulong)seed, CPU);
        var adapters = new List<(string, LoraLinear)>();
        foreach (var (name, lin, slices) in chosen)
        {
            int dot = name.LastIndexOf('.');
            var parent = ModuleSurgery.Resolve(model, dot < 0 ? "" : name[..dot]);
            var adapter = new LoraLinear(lin, settings.Rank, settings.Alpha, settings.Dropout, generator, slices);
            ModuleSurgery.ReplaceChild(parent, dot < 0 ? name : name[(dot + 1)..], adapter);
            adapters.Add((name, adapter));
        }
        return adapters;
    }

    /// <summary>The LoRA adapters inside <paramref name="model"/>, with their full names.</summary>
    public static IReadOnlyList<(string Name, LoraLinear Adapter)> Adapters(nn.Module model) =>
        model.named_modules().Where(m => m.module is LoraLinear).Select(m => (m.name, (LoraLinear)m.module)).ToList();

    /// <summary>Installs W + scale·B·A in every adapter (inference with merged weights).</summary>
    public static void Merge(nn.Module model)
    {
        foreach (var (_, a) in Adapters(model)) a.Merge();
    }

    /// <summary>Back to the unmerged adapters.</summary>
    public static void Unmerge(nn.Module model)
    {
        foreach (var (_, a) in Adapters(model)) a.Unmerge();
    }

    /// <summary>
    /// Hugging Face's separate attention projections, which some ports fuse into one <c>qkv</c> Linear (q, k, v thirds
    /// in that order, as the key maps concatenate them): their index, or null for any other name.
    /// </summary>
    public static int? FusedQkvIndex(string target) => target switch { "query" => 0, "key" => 1, "value" => 2, _ => null };

    /// <summary>PEFT's rule for a string target: the full module name equals it or ends with "." + it.</summary>
    public static bool Matches(string moduleName, string target) =>
        moduleName == target || moduleName.EndsWith("." + target, StringComparison.Ordinal);

    private static IEnumerable<string> LinearSuffixes(IEnumerable<(string name, nn.Module module)> modules) =>
        modules.Where(m => m.module is Linear).Select(m => m.name[(m.name.LastIndexOf('.') + 1)..]).Distinct();
}
