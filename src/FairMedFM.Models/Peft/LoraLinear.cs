using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Models.Peft;

/// <summary>
/// LoRA around a frozen Linear layer (PEFT 0.11.1's <c>lora.Linear</c>, bias="none"):
/// <c>y = base(x) + scale · B(A(dropout(x)))</c> with A [r, in] Kaiming-uniform(a=√5), i.e. U(−1/√in, 1/√in),
/// B [out, r] zeros and scale = alpha / r. Because B starts at zero the wrapped layer computes exactly what the base
/// layer computes until B is trained. The base weight and bias never receive gradients and are never modified:
/// <see cref="Merge"/> keeps the merged weight W + scale·B·A beside them for inference.
/// State-dict keys: <c>base_layer.weight</c>, <c>base_layer.bias</c>, <c>lora_A</c>, <c>lora_B</c>.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Linear base_layer;
    private readonly Parameter lora_A;
    private readonly Parameter lora_B;
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

    /// <summary>A, [r, in].</summary>
    public Parameter A => lora_A;

    /// <summary>B, [out, r].</summary>
    public Parameter B => lora_B;

    /// <summary>True after <see cref="Merge"/>: forward is one matrix product with W + scale·B·A.</summary>
    public bool IsMerged => _state.Weight is not null;

    /// <param name="baseLayer">The Linear to adapt; its parameters are frozen (requires_grad = false).</param>
    /// <param name="rank">r ≥ 1.</param>
    /// <param name="alpha">alpha &gt; 0; the update is scaled by alpha / r.</param>
    /// <param name="dropout">Dropout probability on the input of A, in [0, 1).</param>
    /// <param name="generator">Draws A (so LoRA's initialisation never consumes the global torch generator); null: the global one.</param>
    public LoraLinear(Linear baseLayer, int rank, double alpha, double dropout = 0, Generator? generator = null, string name = "LoraLinear")
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
        foreach (var p in base_layer.parameters()) p.requires_grad = false;

        var w = base_layer.weight!;
        long inF = base_layer.in_features, outF = base_layer.out_features;
        // kaiming_uniform_(a=√5) on a [r, in] weight: gain = √(2 / (1 + 5)), bound = gain · √(3 / fan_in) = 1 / √in.
        double bound = 1.0 / Math.Sqrt(inF);
        using (no_grad())
        {
            var a = rand(new long[] { rank, inF }, dtype: w.dtype, generator: generator).mul_(2 * bound).sub_(bound).to(w.device);
            lora_A = new Parameter(a, requires_grad: true);
            lora_B = new Parameter(zeros(new long[] { outF, rank }, dtype: w.dtype, device: w.device), requires_grad: true);
        }
        // The adapter outlives whatever dispose scope it was created in: it becomes part of the model.
        lora_A.DetachFromDisposeScope();
        lora_B.DetachFromDisposeScope();
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (_state.Weight is { } merged) return nn.functional.linear(x, merged, base_layer.bias);
        using var scope = NewDisposeScope();
        var y = base_layer.forward(x);
        var h = Dropout > 0 ? nn.functional.dropout(x, Dropout, training) : x;
        var delta = nn.functional.linear(nn.functional.linear(h, lora_A), lora_B);
        return y.add(delta.mul(Scale)).MoveToOuterDisposeScope();
    }

    /// <summary>The merged weight W + scale · B · A, computed from the current A and B (not installed).</summary>
    public Tensor MergedWeight()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var w = base_layer.weight!.detach().add(lora_B.detach().matmul(lora_A.detach()).mul(Scale));
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
