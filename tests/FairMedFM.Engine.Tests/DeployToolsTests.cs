using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using k8s;
using k8s.Models;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// Runs the offline Kubernetes tools the deploy tests need (kubectl, yamllint). A missing tool fails the test with
/// the command that installs it, never skips it.
/// </summary>
internal static class DeployTools
{
    public static readonly Dictionary<string, string> InstallHints = new()
    {
        ["kubectl"] = "apt-get update && apt-get install -y kubectl",
        ["yamllint"] = "apt-get update && apt-get install -y yamllint",
    };

    public static (int ExitCode, string StdOut, string StdErr) Run(string tool, IEnumerable<string> args, int timeoutSeconds = 120)
    {
        var hint = InstallHints.TryGetValue(tool, out var h) ? h : $"install {tool}";
        var psi = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = TestPaths.RepoRoot,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {tool}");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"{tool} is not installed ({e.Message}); the deploy tests check deploy/ offline with it. Install it with " +
                        $"`{hint}` (as root; .ci/run does this when it is missing).");
            throw; // unreachable
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeoutSeconds * 1000))
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                Assert.Fail($"{tool} {string.Join(' ', args)} did not finish in {timeoutSeconds} s");
            }
            p.WaitForExit();
            return (p.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
        }
    }
}

/// <summary>The overlays under deploy/k8s, rendered with `kubectl kustomize` and loaded with KubernetesClient's strict YAML.</summary>
internal static class DeployManifests
{
    public const string Namespace = "fairmedfm";
    public static string K8sDir => Path.Combine(TestPaths.RepoRoot, "deploy", "k8s");

    private static readonly ConcurrentDictionary<string, Lazy<string>> RenderedYaml = new();
    private static readonly ConcurrentDictionary<string, Lazy<IReadOnlyList<object>>> LoadedObjects = new();

    /// <summary>`kubectl kustomize deploy/k8s/overlays/&lt;overlay&gt;` (offline), once per test run.</summary>
    public static string Render(string overlay) =>
        RenderedYaml.GetOrAdd(overlay, o => new Lazy<string>(() => Kustomize(Path.Combine(K8sDir, "overlays", o)))).Value;

    public static string Kustomize(string dir)
    {
        var (rc, stdout, stderr) = DeployTools.Run("kubectl", new[] { "kustomize", dir });
        Assert.True(rc == 0, $"kubectl kustomize {dir} failed (exit {rc}):\n{stderr}");
        return stdout;
    }

    /// <summary>Every rendered object, deserialised strictly (an unknown or misspelled field throws).</summary>
    public static IReadOnlyList<object> Objects(string overlay) =>
        LoadedObjects.GetOrAdd(overlay, o => new Lazy<IReadOnlyList<object>>(() => KubernetesYaml.LoadAllFromString(Render(o), strict: true))).Value;

    public static IEnumerable<T> All<T>(string overlay) => Objects(overlay).OfType<T>();

    public static T One<T>(string overlay, string name) where T : IKubernetesObject<V1ObjectMeta>
    {
        var matches = All<T>(overlay).Where(o => o.Metadata.Name == name).ToList();
        Assert.True(matches.Count == 1, $"{overlay}: expected one {typeof(T).Name} named {name}, found {matches.Count}");
        return matches[0];
    }

    public static V1Deployment Silo(string overlay) => One<V1Deployment>(overlay, "fairmedfm-silo");
    public static V1Job ClientJob(string overlay) => One<V1Job>(overlay, "fairmedfm-submit");
    public static V1StatefulSet Redis(string overlay) => One<V1StatefulSet>(overlay, "redis");

    public static V1Container Container(V1PodTemplateSpec pod, string name) =>
        pod.Spec.Containers.SingleOrDefault(c => c.Name == name) ?? throw new Xunit.Sdk.XunitException($"no container '{name}' in the pod template");

    /// <summary>Every pod template of the workloads (Deployments, StatefulSets, Jobs), by "Kind/name".</summary>
    public static IEnumerable<(string Workload, V1PodTemplateSpec Pod)> PodTemplates(string overlay)
    {
        foreach (var d in All<V1Deployment>(overlay)) yield return ($"Deployment/{d.Metadata.Name}", d.Spec.Template);
        foreach (var s in All<V1StatefulSet>(overlay)) yield return ($"StatefulSet/{s.Metadata.Name}", s.Spec.Template);
        foreach (var j in All<V1Job>(overlay)) yield return ($"Job/{j.Metadata.Name}", j.Spec.Template);
    }

    public static V1EnvVar Env(V1Container c, string name) =>
        c.Env?.SingleOrDefault(e => e.Name == name) ?? throw new Xunit.Sdk.XunitException($"container '{c.Name}' has no env {name}");

    public static int EnvIndex(V1Container c, string name) => c.Env!.ToList().FindIndex(e => e.Name == name);

    /// <summary>A literal env value, or the pod label a downward-API fieldRef points at.</summary>
    public static string? EffectiveEnv(V1PodTemplateSpec pod, V1Container c, string name)
    {
        var e = Env(c, name);
        if (e.Value is not null) return e.Value;
        var path = e.ValueFrom?.FieldRef?.FieldPath;
        if (path is not null && path.StartsWith("metadata.labels['", StringComparison.Ordinal) && path.EndsWith("']", StringComparison.Ordinal))
        {
            var label = path["metadata.labels['".Length..^2];
            return pod.Metadata.Labels is { } l && l.TryGetValue(label, out var v) ? v : null;
        }
        return null;
    }

    /// <summary>Kubernetes label-selector semantics (matchLabels AND every matchExpression).</summary>
    public static bool Matches(V1LabelSelector? selector, IDictionary<string, string>? labels)
    {
        if (selector is null) return false;
        labels ??= new Dictionary<string, string>();
        if (selector.MatchLabels is { } ml && ml.Any(kv => !labels.TryGetValue(kv.Key, out var v) || v != kv.Value)) return false;
        foreach (var r in selector.MatchExpressions ?? new List<V1LabelSelectorRequirement>())
        {
            var has = labels.TryGetValue(r.Key, out var v);
            var ok = r.OperatorProperty switch
            {
                "In" => has && r.Values.Contains(v!),
                "NotIn" => !has || !r.Values.Contains(v!),
                "Exists" => has,
                "DoesNotExist" => !has,
                _ => throw new Xunit.Sdk.XunitException($"unknown selector operator {r.OperatorProperty}"),
            };
            if (!ok) return false;
        }
        return true;
    }

    public static bool Matches(IDictionary<string, string>? serviceSelector, IDictionary<string, string>? labels) =>
        serviceSelector is { Count: > 0 } && labels is not null && serviceSelector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    /// <summary>The container port an IntOrString port refers to (a number, or the name of one of the container's ports).</summary>
    public static int PortNumber(V1Container c, IntOrString port)
    {
        var s = port.Value;
        if (int.TryParse(s, out var n)) return n;
        return c.Ports?.SingleOrDefault(p => p.Name == s)?.ContainerPort
               ?? throw new Xunit.Sdk.XunitException($"container '{c.Name}' has no port named '{s}'");
    }
}

public class DeployToolsTests
{
    [Fact]
    public void Label_selector_semantics_match_kubernetes()
    {
        var labels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "fairmedfm-silo", ["tier"] = "x" };
        Assert.True(DeployManifests.Matches(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["tier"] = "x" } }, labels));
        Assert.False(DeployManifests.Matches(new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["tier"] = "y" } }, labels));
        var expr = new V1LabelSelector
        {
            MatchExpressions = new List<V1LabelSelectorRequirement>
            {
                new() { Key = "app.kubernetes.io/name", OperatorProperty = "In", Values = new List<string> { "fairmedfm-silo", "fairmedfm-client" } },
                new() { Key = "gone", OperatorProperty = "DoesNotExist" },
            },
        };
        Assert.True(DeployManifests.Matches(expr, labels));
        Assert.False(DeployManifests.Matches(expr, new Dictionary<string, string> { ["app.kubernetes.io/name"] = "otel-collector" }));
        Assert.False(DeployManifests.Matches((V1LabelSelector?)null, labels));
    }
}
