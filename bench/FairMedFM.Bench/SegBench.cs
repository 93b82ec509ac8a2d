using System.Diagnostics;
using FairMedFM.Engine.Segmentation;
using FairMedFM.Models.Sam;
using TorchSharp;

/// <summary>
/// <c>seg</c>: masks/s of SAM-family models at their real sizes (random weights: speed does not depend on them), per mask
/// WITHOUT the per-image embedding cache (image encoder + prompt encoder + mask decoder, as a run that re-encodes the
/// image for every prompt) and WITH it (the embedding read from <see cref="SegEmbeddingStore"/> — the same TryLoad the
/// segmentation cells call — then prompt encoder + decoder). Both paths end as the cells do: best-of-3 mask logits at
/// S×S copied to managed memory. Models: SAM ViT-B and MobileSAM (TinyViT) at 1024², SAM-Med2D (ViT-B + adapters) at 256².
/// </summary>
static class SegBench
{
    /// <summary>Images (≥ 1), masks (≥ 1) and the model ids, each a segmentation card of this build.</summary>
    public static (int Images, int Masks, string[] Ids) Check(string[] a)
    {
        int images = BenchOpts.Int(a, "--images", 2, 1);
        int masks = BenchOpts.Int(a, "--masks", 20, 1);
        var only = BenchOpts.Opt(a, "--models")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (only is { Length: 0 }) throw new BenchUsageException("--models lists no model");
        var ids = only ?? ["sam-vit-b", "mobilesam", "sam-med2d-vit-b"];
        foreach (var id in ids)
            if (!SegModelZoo.Cards.Any(c => string.Equals(c.Id, id, StringComparison.OrdinalIgnoreCase)))
                throw new BenchUsageException($"--models: '{id}' is not a segmentation model of this build (known: {string.Join(", ", SegModelZoo.Cards.Select(c => c.Id))})");
        return (images, masks, ids);
    }

    public static void Run(string[] a)
    {
        var (images, masks, ids) = Check(a);
        Console.WriteLine($"# Segmentation masks/s, CPU, {Environment.ProcessorCount} cores, torch threads {torch.get_num_threads()}, random weights at real sizes, box prompt, " +
                          $"multimask + argmax IoU, masks at S×S; uncached: {images} timed image(s) after 1 warm-up, one mask each; cached: {masks} timed masks over those images' store entries");
        Console.WriteLine("| model | input | parameters | uncached masks/s (encoder + prompt encoder + decoder) | cached masks/s (store read + prompt encoder + decoder) | cached/uncached |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var dir = Path.Combine(Path.GetTempPath(), "fairmedfm-bench-seg-" + Guid.NewGuid().ToString("N")[..8]);
        var store = new SegEmbeddingStore(dir);
        try
        {
            foreach (var id in ids)
            {
                var card = SegModelZoo.GetCard(id);
                using var model = SegModelZoo.Build(card);
                model.eval();
                foreach (var p in model.parameters()) p.requires_grad = false;
                long parameters = model.parameters().Sum(p => p.numel());
                int s = card.ImageSize, channels = card.Sam.PromptEmbedDim, grid = card.Sam.ImageEmbeddingSize;
                using var _ = torch.inference_mode();

                // Uncached: every mask pays for its image's encoder forward.
                var keys = new List<string>();
                using (torch.NewDisposeScope()) Mask(model, Encode(model, s, seed: -1), s); // warm-up (allocator, kernels)
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < images; i++)
                {
                    using var scope = torch.NewDisposeScope();
                    var emb = Encode(model, s, seed: i);
                    Mask(model, emb, s);
                    // Filling the store is not part of the uncached path: the clock stops for it.
                    sw.Stop();
                    var key = SegEmbeddingStore.KeyFor($"bench-image-{i}", id, "random-weights", s, "bench");
                    store.Put(key, emb.to(torch.float32).contiguous().data<float>().ToArray(), channels, grid);
                    keys.Add(key);
                    sw.Start();
                }
                double uncached = images / sw.Elapsed.TotalSeconds;

                // Cached: the cells' path — TryLoad the per-image entry, wrap it, prompt encoder + decoder.
                sw.Restart();
                for (int m = 0; m < masks; m++)
                {
                    using var scope = torch.NewDisposeScope();
                    var values = store.TryLoad(keys[m % keys.Count], channels, grid) ?? throw new InvalidOperationException("bench entry missing from the store");
                    Mask(model, torch.tensor(values, new long[] { 1, channels, grid, grid }), s);
                }
                double cached = masks / sw.Elapsed.TotalSeconds;
                Console.WriteLine($"| {id} | {s}² | {parameters / 1e6:0.0} M | {uncached:0.000} ({1000 / uncached:0} ms/mask) | {cached:0.0} ({1000 / cached:0} ms/mask) | ×{cached / uncached:0} |");
            }
            var entryBytes = Directory.EnumerateFiles(dir, "*.f32", SearchOption.AllDirectories).Select(f => new FileInfo(f).Length).Distinct().Order();
            Console.WriteLine($"cache entries: {string.Join(", ", entryBytes.Select(b => $"{b / 1048576.0:0.00} MiB"))} per image (header + C×h×w float32)");
            Console.WriteLine($"load average during the run: {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>A random normalised S×S image through the image encoder → [1, C, S/16, S/16].</summary>
    static torch.Tensor Encode(SamModel model, int s, int seed)
    {
        var g = new torch.Generator((ulong)(seed + 2));
        return model.EmbedImage(torch.randn(new long[] { 1, 3, s, s }, generator: g));
    }

    /// <summary>One box prompt through the prompt encoder and decoder, best mask's logits to managed memory (as the cells do).</summary>
    static float[] Mask(SamModel model, torch.Tensor embedding, int s)
    {
        using var scope = torch.NewDisposeScope();
        var box = torch.tensor(new float[] { s * 0.3f, s * 0.35f, s * 0.6f, s * 0.7f }, new long[] { 1, 4 });
        using var o = model.Predict(embedding, new SamPrompt(Boxes: box), multimaskOutput: true, (s, s), (s, s));
        return o.BestMaskLogits().contiguous().data<float>().ToArray();
    }
}
