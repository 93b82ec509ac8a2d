using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FairMedFM.Engine.Training;

/// <summary>
/// Module initialisation from a generator of its own, so that a seeded head is the same whatever other threads draw
/// from torch's global generator meanwhile (tests and silos run cells in parallel).
/// </summary>
public static class SeededInit
{
    /// <summary>
    /// nn.Linear(inFeatures, outFeatures) with PyTorch's default initialisation drawn from a fresh generator seeded with
    /// <paramref name="seed"/>: weight U(−b, b) with b = √3 · √(2/(1+5)) / √fan_in (kaiming_uniform_, a = √5), then
    /// bias U(−1/√fan_in, 1/√fan_in) — the same draws, in the same order, as torch.manual_seed(seed); nn.Linear(…).
    /// </summary>
    public static Linear Linear(int inFeatures, int outFeatures, long seed)
    {
        var lin = nn.Linear(inFeatures, outFeatures);
        var g = new Generator((ulong)seed, CPU);
        double std = Math.Sqrt(2.0 / (1 + 5.0)) / Math.Sqrt(inFeatures);
        double bound = Math.Sqrt(3.0) * std;
        double biasBound = inFeatures > 0 ? 1 / Math.Sqrt(inFeatures) : 0;
        using (no_grad())
        {
            lin.weight!.uniform_(-bound, bound, g);
            lin.bias!.uniform_(-biasBound, biasBound, g);
        }
        return lin;
    }
}
