namespace FairMedFM.Data;

/// <summary>
/// Checks, row by row while a CSV is read, that every per-patient attribute (<see cref="AttributeSpec.IsPerPatient"/>:
/// sex, race…) has one group for all of a patient's rows. Two rows of one patient with sex F and M mean a wrong patient
/// id column or a data error; either way the patient's group would be counted under both, so it is an error at load.
/// </summary>
internal sealed class PatientAttributeCheck(IReadOnlyList<AttributeSpec> attributes, string csvPath)
{
    private readonly Dictionary<(int Attr, string Patient), (string Group, string Raw, int Row)> _seen = new();

    public void Add(string patient, int rowNo, string[] fields, int[] attrCols, IReadOnlyDictionary<string, string> groups)
    {
        for (int a = 0; a < attributes.Count; a++)
        {
            var spec = attributes[a];
            if (!spec.IsPerPatient) continue;
            var group = groups[spec.Name];
            var raw = fields[attrCols[a]].Trim();
            if (!_seen.TryGetValue((a, patient), out var first)) { _seen[(a, patient)] = (group, raw, rowNo); continue; }
            if (first.Group != group)
                throw new DataException(
                    $"patient '{patient}' has {spec.Name} '{first.Raw}' in row {first.Row} and '{raw}' in row {rowNo}; " +
                    $"a patient's {spec.Name} must be the same on all their rows (fix the CSV or the patient id column, or set " +
                    $"'per_patient: false' on attribute '{spec.Name}' if it may change between a patient's images)",
                    csvPath, rowNo, spec.Column);
        }
    }
}
