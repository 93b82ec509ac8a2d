using FairMedFM.Engine;

namespace FairMedFM.Grains;

public sealed class DatasetGrain : Grain, IDatasetGrain
{
    private DatasetStatus? _status;
    private Task? _loading;

    public Task<DatasetStatus> Prepare()
    {
        var path = this.GetPrimaryKeyString();
        if (_status is { Phase: JobPhase.Done }) return Task.FromResult(_status);
        if (_loading is null || _loading.IsCompleted)
        {
            // A failed load is retried on the next request: the user may have fixed the file in between.
            _status = new DatasetStatus(path, JobPhase.Running, null, 0, 0, null, Array.Empty<string>(), null);
            _loading = LoadAsync(path);
        }
        return Task.FromResult(_status!);
    }

    private async Task LoadAsync(string path)
    {
        try
        {
            var data = await Task.Run(() => DatasetCatalog.Get(path));
            _status = new DatasetStatus(path, JobPhase.Done, data.Card.Name, data.Samples.Count,
                data.Samples.Select(s => s.PatientId).Distinct().Count(), data.DataHash, data.AttributeNames.ToList(), null);
        }
        catch (Exception e)
        {
            _status = new DatasetStatus(path, JobPhase.Failed, null, 0, 0, null, Array.Empty<string>(), Engine.Cells.CellRunner.Describe(e));
        }
    }
}
