namespace FairMedFM.Metrics.Internal;

/// <summary>Input checks shared by the public entry points. Bad inputs are programming errors and throw, naming the row.</summary>
internal static class Check
{
    internal static void SameLength(int scores, int labels, string what = "labels")
    {
        if (scores != labels)
            throw new ArgumentException($"probs has {scores} elements but {what} has {labels}; they must match one to one.");
    }

    internal static void BinaryLabels(ReadOnlySpan<int> y)
    {
        for (int i = 0; i < y.Length; i++)
            if (y[i] is not (0 or 1))
                throw new ArgumentException($"labels[{i}] = {y[i]}; binary labels must be 0 or 1.", "labels");
    }
}
