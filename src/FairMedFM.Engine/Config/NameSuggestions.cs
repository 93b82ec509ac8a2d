namespace FairMedFM.Engine.Config;

/// <summary>"Did you mean" for names outside grids (silo settings), by the same rule the grid check uses for its keys.</summary>
public static class NameSuggestions
{
    /// <summary>The closest of <paramref name="choices"/> to <paramref name="value"/> ignoring case, or null when none is a likely typo.</summary>
    public static string? Nearest(string value, IEnumerable<string> choices) => GridYamlCheck.NearestName(value, choices);
}
