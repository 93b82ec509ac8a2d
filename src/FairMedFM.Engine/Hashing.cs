using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace FairMedFM.Engine;

/// <summary>Content hashes recorded with every result, so a number can always be traced to its exact inputs.</summary>
public static class Hashing
{
    public static string Sha256Hex(string text) => Sha256Hex(Encoding.UTF8.GetBytes(text));

    public static string Sha256Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    public static string FileSha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>Hash of an object's canonical JSON (property order is declaration order, so it is stable).</summary>
    public static string Of<T>(T value) => Sha256Hex(JsonSerializer.Serialize(value, JsonDefaults.Canonical));

    public static string Combine(params string[] parts) => Sha256Hex(string.Join("\n", parts));
}

public static class JsonDefaults
{
    public static readonly JsonSerializerOptions Canonical = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = false,
    };

    public static readonly JsonSerializerOptions Pretty = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}
