using FairMedFM.Engine;

namespace FairMedFM.Grains;

public sealed class DatasetGrain : Grain, IDatasetGrain
{
    /// <summary>A failure is reported to every caller for this long, then the next request retries (the file may have been fixed).</summary>
    public static readonly TimeSpan FailureHold = TimeSpan.FromSeconds(30);

    private DatasetStatus? _status;
    private Task? _loading;
    private DateTime _failedAt;
    private string? _stamp;

    public Task<DatasetStatus> Prepare()
    {
        var path = this.GetPrimaryKeyString();
        // A loaded status holds while the card and CSV are unchanged; an edited dataset is loaded (and hashed) again.
        if (_status is { Phase: JobPhase.Done } && _stamp == Engine.Segmentation.AnyDataset.Stamp(path)) return Task.FromResult(_status);
        if (_status is { Phase: JobPhase.Failed } && DateTime.UtcNow - _failedAt < FailureHold) return Task.FromResult(_status);
        if (_loading is null || _loading.IsCompleted)
        {
            _stamp = Engine.Segmentation.AnyDataset.Stamp(path);
            _status = new DatasetStatus(path, JobPhase.Running, null, 0, 0, null, Array.Empty<string>(), null);
            _loading = LoadAsync(path);
        }
        return Task.FromResult(_status!);
    }

    private async Task LoadAsync(string path)
    {
        try
        {
            // Either task: classification cards and segmentation cards (task: segmentation) load through their own memo.
            var data = await Task.Run(() => Engine.Segmentation.AnyDataset.Describe(path));
            _status = new DatasetStatus(path, JobPhase.Done, data.Name, data.Samples, data.Patients, data.DataHash, data.AttributeNames.ToList(), null);
        }
        catch (Exception e)
        {
            _failedAt = DateTime.UtcNow;
            _status = new DatasetStatus(path, JobPhase.Failed, null, 0, 0, null, Array.Empty<string>(), Engine.Cells.CellRunner.Describe(e));
        }
    }
}
