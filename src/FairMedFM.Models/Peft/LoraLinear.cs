using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Peft;

/// <summary>
/// Rows [Start, Start + Length) of a wrapped layer's output that get an adapter of their own: how PEFT's separate
/// <c>query</c>/<c>key</c>/<c>value</c> adapters of a Hugging Face model are reproduced on a port whose attention
/// fuses the three projections into one <c>qkv</c> Linear.
/// </summary>
public sealed record LoraSlice(string Name, long Start, long Length);

/// <summary>
/// LoRA around a frozen Linear layer (PEFT 0.11.1's <c>lora.Linear</c>, bias="none"):
/// <c>y = base(x) + scale · B(A(dropout(x)))</c> with A [r, in] Kaiming-uniform(a=√5), i.e. U(−1/√in, 1/√in),
/// B [out, r] zeros and scale = alpha / r. Because B starts at zero the wrapped layer computes exactly what the base
/// layer computes until B is trained. The base weight and bias never receive gradients and are never modified:
/// <see cref="Merge"/> keeps the merged weight W + scale·B·A beside them for inference.
/// With <see cref="Slices"/>, each slice of the output rows has its own A [r, in] and B [length, r] (separate
/// adapters on q, k and v of a fused qkv); rows outside every slice are the base layer's.
/// State-dict keys: <c>base_layer.weight</c>, <c>base_layer.bias</c>, <c>lora_A</c>, <c>lora_B</c> (sliced:
/// <c>lora_A_{slice}</c>, <c>lora_B_{slice}</c>).
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Linear base_layer;
    // A/B are registered by name and looked up at use, so a device move (which re-registers parameters) is followed.
    private readonly List<(LoraSlice Slice, string AName, string BName)> _adapters = new();
    // Held outside a Tensor-typed field: TorchSharp treats Tensor fields as buffers when a module moves devices.
    private readonly MergedState _state = new();

    public int Rank { get; }
    public double Alpha { get; }
    public double Dropout { get; }

    /// <summary>alpha / r, the factor on B·A.</summary>
    public double Scale => Alpha / Rank;

    public long InFeatures => base_layer.in_features;
    public long OutFeatures => base_layer.out_features;

    /// <summary>The wrapped layer (frozen).</summary>
    public Linear Base => base_layer;

    /// <summary>The adapted output slices (one covering every row when the adapter is not sliced).</summary>
    public IReadOnlyList<LoraSlice> Slices => _adapters.Select(a => a.Slice).ToList();

    /// <summary>True when the adapter was built with explicit slices.</summary>
    public bool IsSliced { get; }

    /// <summary>A, [r, in] (unsliced adapter).</summary>
    public Parameter A => IsSliced ? throw new InvalidOperationException("a sliced adapter has one A per slice: use SliceA") : get_parameter("lora_A")!;

    /// <summary>B, [out, r] (unsliced adapter).</summary>
    public Parameter B => IsSliced ? throw new InvalidOperationException("a sliced adapter has one B per slice: use SliceB") : get_parameter("lora_B")!;

    /// <summary>A of a slice, [r, in].</summary>
    public Parameter SliceA(string slice) => get_parameter(_adapters.Single(a => a.Slice.Name == slice).AName)!;

    /// <summary>B of a slice, [length, r].</summary>
    public Parameter SliceB(string slice) => get_parameter(_adapters.Single(a => a.Slice.Name == slice).BName)!;

    /// <summary>Every (A, B) pair with its slice.</summary>
    public IEnumerable<(LoraSlice Slice, Parameter A, Parameter B)> Pairs() =>
        _adapters.Select(a => (a.Slice, get_parameter(a.AName)!, get_parameter(a.BName)!));

    /// <summary>True after <see cref="Merge"/>: forward is one matrix product with W + scale·B·A.</summary>
    public bool IsMerged => _state.Weight is not null;

    /// <param name="baseLayer">The Linear to adapt; its parameters are frozen (requires_grad = false).</param>
    /// <param name="rank">r ≥ 1.</param>
    /// <param name="alpha">alpha &gt; 0; the update is scaled by alpha / r.</param>
    /// <param name="dropout">Dropout probability on the input of A, in [0, 1).</param>
    /// <param name="generator">Draws A (so LoRA's initialisation never consumes the global torch generator); null: the global one.</param>
    /// <param name="slices">Output rows with adapters of their own (disjoint, in range); null: one adapter over all rows.</param>
    public LoraLinear(Linear baseLayer, int rank, double alpha, double dropout = 0, Generator? generator = null,
        IReadOnlyList<LoraSlice>? slices = null, string name = "LoraLinear")
        : base(name)
    {
        ArgumentNullException.ThrowIfNull(baseLayer);
        if (rank < 1) throw new ArgumentException($"LoRA rank must be ≥ 1 (got {rank}).", nameof(rank));
        if (!(alpha > 0) || double.IsInfinity(alpha)) throw new ArgumentException($"LoRA alpha must be > 0 (got {alpha}).", nameof(alpha));
        if (!(dropout >= 0 && dropout < 1)) throw new ArgumentException($"LoRA dropout must be in [0, 1) (got {dropout}).", nameof(dropout));
        Rank = rank;
        Alpha = alpha;
        Dropout = dropout;
        base_layer = baseLayer;
        long inF = base_layer.in_features, outF = base_layer.out_features;
        IsSliced = slices is not null;
        var parts = (slices ?? [new LoraSlice("", 0, outF)]).OrderBy(s => s.Start).ToList();
        if (parts.Count == 0) throw new ArgumentException("LoRA slices must not be empty.", nameof(slices));
        long end = 0;
        foreach (var s in parts)
        {
            if (s.Length < 1 || s.Start < end || s.Start + s.Length > outF)
                throw new ArgumentException($"LoRA slice {s} overlaps another or lies outside the {outF} output rows.", nameof(slices));
            if (IsSliced && (string.IsNullOrEmpty(s.Name) || parts.Count(p => p.Name == s.Name) > 1))
                throw new ArgumentException("LoRA slices need distinct, non-empty names.", nameof(slices));
            end = s.Start + s.Length;
        }
        foreach (var p in base_layer.parameters()) p.requires_grad = false;
        RegisterComponents();

        var w = base_layer.weight!;
        // kaiming_uniform_(a=√5) on a [r, in] weight: gain = √(2 / (1 + 5)), bound = gain · √(3 / fan_in) = 1 / √in.
        double bound = 1.0 / Math.Sqrt(inF);
        foreach (var s in parts)
        {
            string suffix = IsSliced ? "_" + s.Name : "";
            Parameter a, b;
            using (no_grad())
            {
                a = new Parameter(rand(new long[] { rank, inF }, dtype: w.dtype, generator: generator).mul_(2 * bound).sub_(bound).to(w.device), requires_grad: true);
                b = new Parameter(zeros(new long[] { s.Length, rank }, dtype: w.dtype, device: w.device), requires_grad: true);
            }
            // The adapter outlives whatever dispose scope it was created in: it becomes part of the model.
            a.DetachFromDisposeScope();
            b.DetachFromDisposeScope();
            register_parameter("lora_A" + suffix, a);
            register_parameter("lora_B" + suffix, b);
            _adapters.Add((s, "lora_A" + suffix, "lora_B" + suffix));
        }
    }

    public override Tensor forward(Tensor x)
    {
        if (_state.Weight is { } merged) return nn.functional.linear(x, merged, base_layer.bias);
        using var scope = NewDisposeScope();
        var y = base_layer.forward(x);
        var h = Dropout > 0 ? nn.functional.dropout(x, Dropout, training) : x;
        Tensor delta;
        if (!IsSliced)
            delta = nn.functional.linear(nn.functional.linear(h, get_parameter("lora_A")!), get_parameter("lora_B")!);
        else
        {
            // The slices' updates in row order, zeros for rows no slice covers.
            var pieces = new List<Tensor>();
            long pos = 0;
            foreach (var (s, a, b) in Pairs())
            {
                if (s.Start > pos) pieces.Add(Zeros(y, s.Start - pos));
                pieces.Add(nn.functional.linear(nn.functional.linear(h, a), b));
                pos = s.Start + s.Length;
            }
            if (pos < OutFeatures) pieces.Add(Zeros(y, OutFeatures - pos));
            delta = cat(pieces, -1);
        }
        return y.add(delta.mul(Scale)).MoveToOuterDisposeScope();
    }

    private static Tensor Zeros(Tensor like, long width)
    {
        var shape = like.shape.ToArray();
        shape[^1] = width;
        return zeros(shape, dtype: like.dtype, device: like.device);
    }

    /// <summary>The merged weight W + scale · B · A (per slice: its rows), computed from the current A and B (not installed).</summary>
    public Tensor MergedWeight()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var w = base_layer.weight!.detach().clone();
        foreach (var (s, a, b) in Pairs())
            w.narrow(0, s.Start, s.Length).add_(b.detach().matmul(a.detach()).mul(Scale));
        return w.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Installs the merged weight for inference (forward becomes base_layer's product with W + scale·B·A and the
    /// base bias) and returns it. The base weight itself is left untouched; <see cref="Unmerge"/> goes back.
    /// Merge again after A or B change.
    /// </summary>
    public Tensor Merge()
    {
        _state.Weight?.Dispose();
        _state.Weight = MergedWeight().DetachFromDisposeScope();
        return _state.Weight;
    }

    /// <summary>Drops the merged weight: forward is base + scale·B·A again (for further training).</summary>
    public void Unmerge()
    {
        _state.Weight?.Dispose();
        _state.Weight = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Unmerge();
        base.Dispose(disposing);
    }

    private sealed class MergedState
    {
        public Tensor? Weight;
    }
}
