namespace FairMedFM.Engine.Training;

/// <summary>FairMedFM's per-epoch schedule (utils/lr_sched.py): linear warm-up, then half-cosine down to min_lr,
/// evaluated once before each epoch with e = epoch + 1.</summary>
public static class LrSchedule
{
    public static double At(int epoch, int totalEpochs, int warmupEpochs, double blr, double minLr, bool fixedLr = false)
    {
        double e = epoch + 1;
        if (e < warmupEpochs) return blr * e / warmupEpochs;
        if (fixedLr) return blr;
        return minLr + (blr - minLr) * 0.5 * (1 + Math.Cos(Math.PI * (e - warmupEpochs) / (totalEpochs - warmupEpochs)));
    }
}
