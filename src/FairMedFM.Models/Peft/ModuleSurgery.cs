using System.Reflection;
using static TorchSharp.torch;

namespace FairMedFM.Models.Peft;

/// <summary>
/// Replacing a child module in place, as PyTorch's <c>setattr(parent, name, new)</c> does. A TorchSharp module calls
/// its children through its own fields, so both the registration (what state_dict, parameters and named_modules see)
/// and the field (what forward calls) must change. The field must be declared with a type the replacement fits,
/// e.g. <c>nn.Module&lt;Tensor, Tensor&gt;</c> rather than <c>Linear</c>.
/// </summary>
public static class ModuleSurgery
{
    /// <summary>The module at a dotted path of child names ("" = <paramref name="root"/>).</summary>
    public static nn.Module Resolve(nn.Module root, string path)
    {
        var m = root;
        if (path.Length == 0) return m;
        foreach (var part in path.Split('.'))
        {
            var next = m.named_children().FirstOrDefault(c => c.name == part).module
                       ?? throw new ArgumentException($"no child module '{part}' under {m.GetType().Name} (path '{path}')");
            m = next;
        }
        return m;
    }

    /// <summary>
    /// Replaces <paramref name="parent"/>'s child <paramref name="childName"/> by <paramref name="replacement"/>:
    /// the registration keeps the name (so state-dict keys stay under it) and the field that held the old child
    /// now holds the new one. Throws when the child is not held in a field or the field's type does not admit the
    /// replacement.
    /// </summary>
    public static void ReplaceChild(nn.Module parent, string childName, nn.Module replacement)
    {
        ArgumentNullException.ThrowIfNull(parent);
        ArgumentNullException.ThrowIfNull(replacement);
        var (field, why) = Locate(parent, childName, replacement.GetType());
        if (field is null) throw new InvalidOperationException(why);
        parent.register_module(childName, null!);       // TorchSharp: a null module unregisters the name
        parent.register_module(childName, replacement);
        field.SetValue(parent, replacement);
    }

    /// <summary>Why <see cref="ReplaceChild"/> would refuse to put a <paramref name="replacementType"/> there; null when it would not.</summary>
    public static string? WhyNotReplaceable(nn.Module parent, string childName, Type replacementType) =>
        Locate(parent, childName, replacementType).Why;

    private static (FieldInfo? Field, string? Why) Locate(nn.Module parent, string childName, Type replacementType)
    {
        var current = parent.named_children().FirstOrDefault(c => c.name == childName).module;
        if (current is null) return (null, $"{parent.GetType().Name} has no child module '{childName}'");
        var field = FindField(parent, childName, current);
        if (field is null)
            return (null, $"{parent.GetType().Name}.{childName} is not held in a field of its own (a list or sequential entry?), so it cannot be replaced");
        if (!field.FieldType.IsAssignableFrom(replacementType))
            return (null, $"{parent.GetType().Name}.{field.Name} is declared as {field.FieldType.Name}; declare it as nn.Module<Tensor, Tensor> " +
                          $"so that a {replacementType.Name} can replace it");
        return (field, null);
    }

    private static FieldInfo? FindField(nn.Module parent, string childName, nn.Module current)
    {
        for (var t = parent.GetType(); t is not null && t != typeof(nn.Module); t = t.BaseType)
            foreach (var f in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if (ComponentName(f) == childName && ReferenceEquals(f.GetValue(parent), current))
                    return f;
        return null;
    }

    /// <summary>The name TorchSharp registers a field under: its [ComponentName(Name = …)] if any, else the field name.</summary>
    private static string ComponentName(FieldInfo f)
    {
        foreach (var a in f.GetCustomAttributes(inherit: false))
            if (a.GetType().Name == "ComponentNameAttribute" && a.GetType().GetProperty("Name")?.GetValue(a) is string { Length: > 0 } n)
                return n;
        return f.Name;
    }
}
