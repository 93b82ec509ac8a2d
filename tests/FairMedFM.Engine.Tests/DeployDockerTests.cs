using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// deploy/docker, checked without a Docker engine: the Dockerfiles are parsed for the properties the images must have
/// (multi-stage, SDK only in the build stage, non-root user, TorchSharp-compatible base, the CUDA switch, the
/// repository's publish-time libstdc++ patch), and what they copy and run must exist in the repository.
/// </summary>
public class DeployDockerTests
{
    /// <summary>One Dockerfile instruction: keyword (upper case) and its arguments, continuation lines joined.</summary>
    public sealed record Instruction(string Keyword, string Args);

    public sealed record Stage(string Image, string? Name, List<Instruction> Instructions)
    {
        public IEnumerable<string> Args(string keyword) => Instructions.Where(i => i.Keyword == keyword).Select(i => i.Args);
    }

    public static List<Stage> ParseStages(string dockerfile)
    {
        var lines = new List<string>();
        var current = "";
        foreach (var raw in dockerfile.Replace("\r\n", "\n").Split('\n'))
        {
            var line = raw.TrimEnd();
            if (line.TrimStart().StartsWith('#')) continue;           // comments (and the syntax directive)
            if (line.EndsWith('\\')) { current += line[..^1] + " "; continue; }
            current += line;
            if (!string.IsNullOrWhiteSpace(current)) lines.Add(current.Trim());
            current = "";
        }
        var stages = new List<Stage>();
        foreach (var line in lines)
        {
            var m = Regex.Match(line, @"^(\w+)\s+(.*)$");
            Assert.True(m.Success, $"unparsable Dockerfile line: {line}");
            var ins = new Instruction(m.Groups[1].Value.ToUpperInvariant(), Regex.Replace(m.Groups[2].Value, @"\s+", " "));
            if (ins.Keyword == "FROM")
            {
                var f = Regex.Match(ins.Args, @"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", RegexOptions.IgnoreCase);
                Assert.True(f.Success, $"unparsable FROM: {ins.Args}");
                stages.Add(new Stage(f.Groups[1].Value, f.Groups[2].Success ? f.Groups[2].Value : null, new List<Instruction>()));
            }
            else if (stages.Count == 0) Assert.True(ins.Keyword == "ARG", $"{ins.Keyword} before the first FROM");
            else stages[^1].Instructions.Add(ins);
        }
        return stages;
    }

    public static readonly TheoryData<string, string, string> Images = new()
    {
        { "Dockerfile.silo", "src/Silo/FairMedFM.Silo.csproj", "aspnet" },
        { "Dockerfile.client", "src/Client/FairMedFM.Client.csproj", "runtime" },
    };

    private static string DockerDir => Path.Combine(TestPaths.RepoRoot, "deploy", "docker");

    [Theory, MemberData(nameof(Images))]
    public void Dockerfile_is_multi_stage_with_no_sdk_in_the_final_image(string file, string project, string runtimeImage)
    {
        var stages = ParseStages(File.ReadAllText(Path.Combine(DockerDir, file)));
        Assert.True(stages.Count >= 2, $"{file}: not multi-stage");
        var build = stages[0];
        var final = stages[^1];
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.0", build.Image);
        Assert.False(string.IsNullOrEmpty(build.Name));
        Assert.StartsWith($"mcr.microsoft.com/dotnet/{runtimeImage}:10.0", final.Image);
        Assert.DoesNotContain("/sdk", final.Image);
        // Nothing is built or installed in the final stage: it only receives the published app from the build stage.
        Assert.Empty(final.Args("RUN"));
        var copies = final.Args("COPY").ToList();
        Assert.NotEmpty(copies);
        Assert.All(copies, c => Assert.Contains($"--from={build.Name}", c));

        // Build and final stage on the same distribution (the publish-time native patch then targets the runtime's
        // libstdc++); Ubuntu 24.04 "noble" is .NET 10's distribution and suits TorchSharp without the patch.
        static string Distro(string image) => image[(image.IndexOf(':') + 1)..].Split('-', 2) is { Length: 2 } p ? p[1] : "";
        Assert.Equal("noble", Distro(build.Image));
        Assert.Equal(Distro(build.Image), Distro(final.Image));
        _ = project;
    }

    [Theory, MemberData(nameof(Images))]
    public void Final_image_runs_as_a_non_root_user(string file, string project, string runtimeImage)
    {
        var final = ParseStages(File.ReadAllText(Path.Combine(DockerDir, file)))[^1];
        var user = final.Args("USER").LastOrDefault();
        Assert.True(user is not null, $"{file}: the final stage sets no USER (it would run as root)");
        var name = user!.Split(':')[0];
        Assert.DoesNotContain(name, new[] { "root", "0" });
        // A numeric uid lets Kubernetes verify runAsNonRoot; the .NET images define APP_UID=1654 ("app").
        Assert.True(name == "$APP_UID" || name == "${APP_UID}" || (int.TryParse(name, out var uid) && uid > 0), $"{file}: USER {user} is not a numeric non-root uid");
        // The pods run as the same uid (deploy/k8s sets runAsUser: 1654).
        Assert.Contains("runAsUser: 1654", File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "deploy", "k8s", "base", "silo.yaml")));
        _ = (project, runtimeImage);
    }

    [Theory, MemberData(nameof(Images))]
    public void Build_stage_publishes_the_project_with_the_cuda_switch(string file, string project, string runtimeImage)
    {
        var stages = ParseStages(File.ReadAllText(Path.Combine(DockerDir, file)));
        var build = stages[0];
        Assert.True(File.Exists(Path.Combine(TestPaths.RepoRoot, project)), $"{project} does not exist");
        var publish = build.Args("RUN").SingleOrDefault(r => r.Contains("dotnet publish"));
        Assert.True(publish is not null, $"{file}: no `dotnet publish` in the build stage");
        Assert.Contains($"dotnet publish {project}", publish);
        Assert.Contains("-c Release", publish);
        Assert.Contains("-o /app", publish);
        // CPU libtorch by default; --build-arg FAIRMEDFM_CUDA=true gives the CUDA build (-p:FairMedFMCuda=true).
        Assert.Contains("FAIRMEDFM_CUDA=false", build.Args("ARG"));
        Assert.Contains("-p:FairMedFMCuda=${FAIRMEDFM_CUDA}", publish);
        Assert.Contains("FairMedFMCuda", File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "build", "Torch.props")));

        // The publish runs the repository's TorchSharp libstdc++ patch: the targets file is in the build context and
        // hooks Publish.
        Assert.Contains(build.Args("COPY"), c => c.Contains("Directory.Build.targets"));
        var targets = XDocument.Load(Path.Combine(TestPaths.RepoRoot, "Directory.Build.targets"));
        Assert.Contains(targets.Descendants("Target"), t => (string?)t.Attribute("AfterTargets") == "Publish" &&
                                                            t.Descendants("FairMedFMWeakenGlibcxxVersion").Any());

        // Everything the build stage copies exists and is not excluded by .dockerignore.
        var ignored = DockerIgnore();
        foreach (var copy in build.Args("COPY"))
        {
            var parts = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(p => !p.StartsWith("--", StringComparison.Ordinal)).ToList();
            foreach (var src in parts.Take(parts.Count - 1))
            {
                var path = Path.Combine(TestPaths.RepoRoot, src.TrimEnd('/'));
                Assert.True(File.Exists(path) || Directory.Exists(path), $"{file}: COPY source {src} does not exist");
                Assert.DoesNotContain(src.TrimEnd('/') + "/", ignored);
            }
        }
        _ = runtimeImage;
    }

    [Theory, MemberData(nameof(Images))]
    public void Entrypoint_runs_the_published_assembly(string file, string project, string runtimeImage)
    {
        var final = ParseStages(File.ReadAllText(Path.Combine(DockerDir, file)))[^1];
        var csproj = XDocument.Load(Path.Combine(TestPaths.RepoRoot, project));
        var assembly = csproj.Descendants("AssemblyName").Select(e => e.Value).FirstOrDefault() ?? Path.GetFileNameWithoutExtension(project);
        Assert.Equal($"[\"dotnet\", \"{assembly}.dll\"]", final.Args("ENTRYPOINT").Single());
        Assert.Equal("/app", final.Args("WORKDIR").Last());

        // The runtime image must carry the shared frameworks the app needs: ASP.NET Core for a web project.
        var usesAspNet = ProjectClosure(Path.Combine(TestPaths.RepoRoot, project)).Any(p =>
        {
            var x = XDocument.Load(p);
            return ((string?)x.Root?.Attribute("Sdk"))?.Contains("Web") == true ||
                   x.Descendants("FrameworkReference").Any(f => (string?)f.Attribute("Include") == "Microsoft.AspNetCore.App");
        });
        if (usesAspNet) Assert.Equal("aspnet", runtimeImage);
    }

    [Fact]
    public void Silo_image_exposes_the_orleans_and_health_ports()
    {
        var final = ParseStages(File.ReadAllText(Path.Combine(DockerDir, "Dockerfile.silo")))[^1];
        var exposed = final.Args("EXPOSE").SelectMany(a => a.Split(' ')).ToHashSet();
        Assert.Superset(new HashSet<string> { "11111", "30000", "8080" }, exposed);
    }

    [Fact]
    public void Dockerignore_keeps_build_outputs_and_git_out_of_the_context()
    {
        var ignored = DockerIgnore();
        foreach (var pattern in new[] { "**/bin/", "**/obj/", ".git/" })
            Assert.Contains(pattern, ignored);
        foreach (var needed in new[] { "src/", "build/", "Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props" })
            Assert.DoesNotContain(needed, ignored);
    }

    private static List<string> DockerIgnore()
    {
        var path = Path.Combine(TestPaths.RepoRoot, ".dockerignore");
        Assert.True(File.Exists(path), ".dockerignore is missing at the repository root (the build context)");
        return File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
    }

    private static IEnumerable<string> ProjectClosure(string csproj)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>(new[] { Path.GetFullPath(csproj) });
        while (stack.Count > 0)
        {
            var p = stack.Pop();
            if (!seen.Add(p)) continue;
            yield return p;
            foreach (var r in XDocument.Load(p).Descendants("ProjectReference"))
                stack.Push(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(p)!, ((string)r.Attribute("Include")!).Replace('\\', '/'))));
        }
    }

    [Fact]
    public void Parser_joins_continuations_and_splits_stages()
    {
        var stages = ParseStages("# syntax=docker/dockerfile:1\nARG X=1\nFROM a:1 AS build\nRUN echo \\\n  two\n\nFROM b:2\nUSER 1654\n");
        Assert.Equal(2, stages.Count);
        Assert.Equal("build", stages[0].Name);
        Assert.Equal("echo two", stages[0].Args("RUN").Single());
        Assert.Null(stages[1].Name);
        Assert.Equal("1654", stages[1].Args("USER").Single());
    }
}
