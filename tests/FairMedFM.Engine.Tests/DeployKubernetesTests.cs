using System.Text;
using FairMedFM.Data;
using FairMedFM.Engine.Config;
using k8s;
using k8s.Models;
using static FairMedFM.Engine.Tests.DeployManifests;

namespace FairMedFM.Engine.Tests;

/// <summary>
/// deploy/k8s, checked offline: each overlay renders with `kubectl kustomize`, every object deserialises strictly with
/// KubernetesClient, and what Orleans' Kubernetes hosting, Redis, the GPU nodes and the client need is in place.
/// </summary>
public class DeployKubernetesTests
{
    public static readonly TheoryData<string> Overlays = new() { "cpu", "gpu" };

    [Theory, MemberData(nameof(Overlays))]
    public void Overlay_renders_and_every_object_deserialises_strictly(string overlay)
    {
        var objects = Objects(overlay);
        var kinds = objects.Select(o => ((IKubernetesObject)o).Kind).ToList();
        foreach (var kind in new[] { "Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap", "Service", "PersistentVolumeClaim",
                     "Deployment", "StatefulSet", "Job", "PodDisruptionBudget", "NetworkPolicy" })
            Assert.True(kinds.Contains(kind), $"{overlay}: no {kind} rendered (kinds: {string.Join(", ", kinds.Distinct())})");
        Assert.Equal(2, All<V1Deployment>(overlay).Count());   // silos + OpenTelemetry collector
        Assert.Equal(3, All<V1PersistentVolumeClaim>(overlay).Count());

        // Every object is typed (the default type map knew its apiVersion/kind) and lives in the overlay's namespace.
        foreach (var o in objects.Cast<IKubernetesObject<V1ObjectMeta>>())
        {
            Assert.Equal("k8s.Models", o.GetType().Namespace);
            if (o is V1Namespace ns) { Assert.Equal(Namespace, ns.Metadata.Name); continue; }
            Assert.True(o.Metadata.NamespaceProperty == Namespace, $"{o.Kind}/{o.Metadata.Name} is in namespace '{o.Metadata.NamespaceProperty}', not {Namespace}");
            Assert.Equal("fairmedfm", o.Metadata.Labels?["app.kubernetes.io/part-of"]);
        }
    }

    [Fact]
    public void Base_is_namespace_agnostic()
    {
        var objects = KubernetesYaml.LoadAllFromString(Kustomize(Path.Combine(K8sDir, "base")), strict: true);
        Assert.DoesNotContain(objects, o => o is V1Namespace);
        Assert.All(objects.Cast<IKubernetesObject<V1ObjectMeta>>(), o => Assert.Null(o.Metadata.NamespaceProperty));
    }

    [Theory]
    [InlineData("  replicas: 2\n", "  replica: 2\n")]                         // a misspelled spec field
    [InlineData("readinessProbe:", "readynessProbe:")]                       // a misspelled nested container field
    [InlineData("        - containerPort: 11111", "        - containerport: 11111")]
    public void Strict_loading_rejects_a_misspelled_field(string field, string misspelled)
    {
        var yaml = Render("cpu");
        Assert.Contains(field, yaml);
        var broken = ReplaceFirst(yaml, field, misspelled);
        // Lenient loading would silently drop the field; strict loading names it.
        _ = KubernetesYaml.LoadAllFromString(broken, strict: false);
        var e = Assert.ThrowsAny<Exception>(() => KubernetesYaml.LoadAllFromString(broken, strict: true));
        Assert.Contains(misspelled.Trim().TrimStart('-', ' ').Split(':')[0], e.ToString());
    }

    private static string ReplaceFirst(string s, string what, string with)
    {
        var i = s.IndexOf(what, StringComparison.Ordinal);
        return s[..i] + with + s[(i + what.Length)..];
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Silo_pods_carry_what_orleans_kubernetes_hosting_needs(string overlay)
    {
        var silo = Silo(overlay);
        var pod = silo.Spec.Template;
        var c = Container(pod, "silo");
        var labels = pod.Metadata.Labels;
        Assert.False(string.IsNullOrWhiteSpace(labels["orleans/serviceId"]));
        Assert.False(string.IsNullOrWhiteSpace(labels["orleans/clusterId"]));

        // The downward API gives Orleans its pod's name, namespace and IP.
        Assert.Equal("metadata.name", Env(c, "POD_NAME").ValueFrom?.FieldRef?.FieldPath);
        Assert.Equal("metadata.namespace", Env(c, "POD_NAMESPACE").ValueFrom?.FieldRef?.FieldPath);
        Assert.Equal("status.podIP", Env(c, "POD_IP").ValueFrom?.FieldRef?.FieldPath);
        // The ids Orleans joins with are the ids on the labels it selects pods by.
        Assert.Equal(labels["orleans/serviceId"], EffectiveEnv(pod, c, "ORLEANS_SERVICE_ID"));
        Assert.Equal(labels["orleans/clusterId"], EffectiveEnv(pod, c, "ORLEANS_CLUSTER_ID"));
        Assert.Equal(labels["orleans/clusterId"], EffectiveEnv(pod, c, "FAIRMEDFM_ClusterId"));
        Assert.Equal("kubernetes", Env(c, "FAIRMEDFM_CLUSTERING").Value);

        // Orleans talks to the API server with the pod's service-account token.
        Assert.False(string.IsNullOrEmpty(pod.Spec.ServiceAccountName));
        Assert.NotEqual(false, pod.Spec.AutomountServiceAccountToken);
        One<V1ServiceAccount>(overlay, pod.Spec.ServiceAccountName);

        var ports = c.Ports.ToDictionary(p => p.Name, p => p.ContainerPort);
        Assert.Equal(11111, ports["silo"]);
        Assert.Equal(30000, ports["gateway"]);
        Assert.Equal(8080, ports["health"]);
        // Orleans' own labels are not in the Deployment's selector: Orleans may patch them on a running pod.
        Assert.DoesNotContain(silo.Spec.Selector.MatchLabels.Keys, k => k.StartsWith("orleans/", StringComparison.Ordinal));
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Role_grants_the_pod_verbs_orleans_uses(string overlay)
    {
        var pod = Silo(overlay).Spec.Template;
        var binding = All<V1RoleBinding>(overlay).Single(b => b.Subjects.Any(s => s.Kind == "ServiceAccount" && s.Name == pod.Spec.ServiceAccountName));
        var subject = binding.Subjects.Single(s => s.Name == pod.Spec.ServiceAccountName);
        Assert.Equal(Namespace, subject.NamespaceProperty);
        Assert.Equal("Role", binding.RoleRef.Kind);
        Assert.Equal("rbac.authorization.k8s.io", binding.RoleRef.ApiGroup);
        var role = One<V1Role>(overlay, binding.RoleRef.Name);
        var podVerbs = role.Rules.Where(r => r.ApiGroups.Contains("") && r.Resources.Contains("pods")).SelectMany(r => r.Verbs).ToHashSet();
        foreach (var verb in new[] { "get", "list", "watch", "delete", "patch" })
            Assert.True(podVerbs.Contains(verb), $"{overlay}: Role {role.Metadata.Name} lacks '{verb}' on pods (has {string.Join(", ", podVerbs)})");
        Assert.DoesNotContain("*", podVerbs);
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Redis_password_comes_from_the_secret(string overlay)
    {
        var secret = All<V1Secret>(overlay).Single(s => s.Metadata.Name.StartsWith("redis-auth", StringComparison.Ordinal));
        var password = Encoding.UTF8.GetString(secret.Data["password"]).Trim();
        Assert.Matches("^[A-Za-z0-9-]+$", password);   // spliced into a connection string: no ',' or '='

        var redisService = One<V1Service>(overlay, "redis");
        var redisPort = redisService.Spec.Ports.Single(p => p.Name == "redis").Port;
        var consumers = new[] { (Pod: Silo(overlay).Spec.Template, Name: "silo"), (Pod: ClientJob(overlay).Spec.Template, Name: "client") };
        foreach (var (pod, name) in consumers)
        {
            var c = Container(pod, name);
            var pw = Env(c, "REDIS_PASSWORD").ValueFrom?.SecretKeyRef;
            Assert.NotNull(pw);
            Assert.Equal(secret.Metadata.Name, pw!.Name);
            Assert.Equal("password", pw.Key);
            var conn = Env(c, "FAIRMEDFM_REDIS").Value;
            Assert.StartsWith($"{redisService.Metadata.Name}:{redisPort},", conn);
            Assert.Contains("password=$(REDIS_PASSWORD)", conn);
            // $(VAR) only expands variables defined earlier in the list.
            Assert.True(EnvIndex(c, "REDIS_PASSWORD") < EnvIndex(c, "FAIRMEDFM_REDIS"), $"{name}: REDIS_PASSWORD must precede FAIRMEDFM_REDIS");
        }

        var redis = Container(Redis(overlay).Spec.Template, "redis");
        Assert.Equal(secret.Metadata.Name, Env(redis, "REDIS_PASSWORD").ValueFrom?.SecretKeyRef?.Name);
        var args = redis.Args.ToList();
        Assert.Equal("$(REDIS_PASSWORD)", args[args.IndexOf("--requirepass") + 1]);
        Assert.Contains(Redis(overlay).Spec.VolumeClaimTemplates, t => redis.VolumeMounts.Any(m => m.Name == t.Metadata.Name && m.MountPath == "/data"));
        Assert.True(Matches(redisService.Spec.Selector, Redis(overlay).Spec.Template.Metadata.Labels));
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Only_silos_and_clients_reach_redis(string overlay)
    {
        var redisLabels = Redis(overlay).Spec.Template.Metadata.Labels;
        var policies = All<V1NetworkPolicy>(overlay).Where(p => Matches(p.Spec.PodSelector, redisLabels)).ToList();
        var policy = Assert.Single(policies);
        Assert.Contains("Ingress", policy.Spec.PolicyTypes);
        var peers = policy.Spec.Ingress.SelectMany(r => r.FromProperty ?? new List<V1NetworkPolicyPeer>()).ToList();
        Assert.NotEmpty(peers);
        Assert.All(policy.Spec.Ingress, r => Assert.NotEmpty(r.FromProperty ?? new List<V1NetworkPolicyPeer>()));   // no "from anywhere" rule
        Assert.All(peers, p => { Assert.NotNull(p.PodSelector); Assert.Null(p.NamespaceSelector); Assert.Null(p.IpBlock); });
        Assert.All(policy.Spec.Ingress.SelectMany(r => r.Ports), p => Assert.Equal("6379", p.Port.Value));

        var allowed = PodTemplates(overlay).Where(w => peers.Any(p => Matches(p.PodSelector, w.Pod.Metadata.Labels))).Select(w => w.Workload).Order().ToList();
        Assert.Equal(new[] { "Deployment/fairmedfm-silo", "Job/fairmedfm-submit" }, allowed);
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Gpu_overlay_puts_one_silo_on_each_gpu_and_cpu_has_none(string overlay)
    {
        var silo = Silo(overlay);
        var spec = silo.Spec.Template.Spec;
        var c = Container(silo.Spec.Template, "silo");
        if (overlay == "gpu")
        {
            Assert.Equal("1", c.Resources.Limits["nvidia.com/gpu"].ToString());
            Assert.Equal("cuda:0", Env(c, "FAIRMEDFM_Devices").Value);
            Assert.Contains(spec.Tolerations, t => t.Key == "nvidia.com/gpu" && t.Effect == "NoSchedule");
            Assert.Equal("true", spec.NodeSelector["nvidia.com/gpu.present"]);
            Assert.EndsWith("-cuda", c.Image);
            Assert.Equal("0", silo.Spec.Strategy.RollingUpdate.MaxSurge.Value);   // no spare GPU to surge onto
            Assert.True(silo.Spec.Replicas >= 1);
        }
        else
        {
            Assert.DoesNotContain(PodTemplates(overlay).SelectMany(w => w.Pod.Spec.Containers), x => x.Resources?.Limits?.ContainsKey("nvidia.com/gpu") == true);
            Assert.Equal("cpu", Env(c, "FAIRMEDFM_Devices").Value);
            Assert.DoesNotContain("cuda", c.Image);
            Assert.Null(spec.Tolerations);
        }
        Assert.True(int.Parse(Env(c, "FAIRMEDFM_TrainingSlots").Value) >= 1);
        Assert.DoesNotContain("cuda", Container(ClientJob(overlay).Spec.Template, "client").Image);
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Pods_have_readiness_and_liveness_probes(string overlay)
    {
        var silo = Container(Silo(overlay).Spec.Template, "silo");
        Assert.Equal("/ready", silo.ReadinessProbe?.HttpGet?.Path);
        Assert.Equal("/healthz", silo.LivenessProbe?.HttpGet?.Path);
        Assert.Equal("/healthz", silo.StartupProbe?.HttpGet?.Path);
        Assert.Equal(8080, PortNumber(silo, silo.ReadinessProbe!.HttpGet.Port));
        Assert.Equal(8080, PortNumber(silo, silo.LivenessProbe!.HttpGet.Port));

        foreach (var (workload, pod) in PodTemplates(overlay).Where(w => !w.Workload.StartsWith("Job/", StringComparison.Ordinal)))
        foreach (var c in pod.Spec.Containers)
        {
            Assert.True(c.ReadinessProbe is not null, $"{workload}/{c.Name} has no readiness probe");
            Assert.True(c.LivenessProbe is not null, $"{workload}/{c.Name} has no liveness probe");
            foreach (var probe in new[] { c.ReadinessProbe, c.LivenessProbe, c.StartupProbe }.Where(p => p?.HttpGet is not null))
                PortNumber(c, probe!.HttpGet.Port);   // a named port that exists
        }
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Silo_disruption_budget_covers_the_silos(string overlay)
    {
        var pdb = Assert.Single(All<V1PodDisruptionBudget>(overlay));
        Assert.True(Matches(pdb.Spec.Selector, Silo(overlay).Spec.Template.Metadata.Labels));
        Assert.True(pdb.Spec.MaxUnavailable is not null || pdb.Spec.MinAvailable is not null);
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Every_container_runs_as_non_root_without_privilege_escalation(string overlay)
    {
        foreach (var (workload, pod) in PodTemplates(overlay))
        foreach (var c in pod.Spec.Containers.Concat(pod.Spec.InitContainers ?? new List<V1Container>()))
        {
            var where = $"{overlay}: {workload}/{c.Name}";
            var sc = c.SecurityContext;
            Assert.True((sc?.RunAsNonRoot ?? pod.Spec.SecurityContext?.RunAsNonRoot) == true, $"{where}: runAsNonRoot is not true");
            var uid = sc?.RunAsUser ?? pod.Spec.SecurityContext?.RunAsUser;
            Assert.True(uid is null or > 0, $"{where}: runs as uid {uid}");
            Assert.True(sc?.AllowPrivilegeEscalation == false, $"{where}: allowPrivilegeEscalation is not false");
            Assert.NotEqual(true, sc?.Privileged);
            Assert.Contains("ALL", sc?.Capabilities?.Drop ?? new List<string>());
            Assert.Equal("RuntimeDefault", pod.Spec.SecurityContext?.SeccompProfile?.Type);
        }
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Volumes_and_paths_are_shared_as_documented(string overlay)
    {
        var claims = All<V1PersistentVolumeClaim>(overlay).ToDictionary(c => c.Metadata.Name);
        Assert.Equal(new[] { "ReadWriteMany" }, claims["fairmedfm-cache"].Spec.AccessModes);
        Assert.Equal(new[] { "ReadOnlyMany" }, claims["fairmedfm-weights"].Spec.AccessModes);
        Assert.Equal(new[] { "ReadOnlyMany" }, claims["fairmedfm-data"].Spec.AccessModes);

        var configMaps = All<V1ConfigMap>(overlay).Select(c => c.Metadata.Name).ToHashSet();
        foreach (var (workload, pod) in PodTemplates(overlay))
        foreach (var v in pod.Spec.Volumes ?? new List<V1Volume>())
        {
            if (v.PersistentVolumeClaim is { } pvc) Assert.True(claims.ContainsKey(pvc.ClaimName), $"{workload}: claim {pvc.ClaimName} is not rendered");
            if (v.ConfigMap is { } cm) Assert.True(configMaps.Contains(cm.Name), $"{workload}: ConfigMap {cm.Name} is not rendered");
        }

        // The silo's settings point at its mounts; what it may only read is mounted read-only.
        var siloPod = Silo(overlay).Spec.Template;
        var silo = Container(siloPod, "silo");
        string ClaimAt(V1PodTemplateSpec pod, V1Container c, string path, out V1VolumeMount mount)
        {
            mount = c.VolumeMounts.Single(m => m.MountPath == path);
            var name = mount.Name;
            return pod.Spec.Volumes.Single(v => v.Name == name).PersistentVolumeClaim.ClaimName;
        }
        Assert.Equal("fairmedfm-cache", ClaimAt(siloPod, silo, Env(silo, "FAIRMEDFM_CACHE").Value, out var cacheMount));
        Assert.NotEqual(true, cacheMount.ReadOnlyProperty);
        Assert.Equal("fairmedfm-weights", ClaimAt(siloPod, silo, Env(silo, "FAIRMEDFM_WEIGHTS").Value, out var weightsMount));
        Assert.True(weightsMount.ReadOnlyProperty);
        Assert.Equal("fairmedfm-data", ClaimAt(siloPod, silo, Env(silo, "FAIRMEDFM_DATA_ROOTS").Value, out var dataMount));
        Assert.True(dataMount.ReadOnlyProperty);

        // The client reads what the silos wrote by the silos' paths: the same volumes at the same places.
        var clientPod = ClientJob(overlay).Spec.Template;
        var client = Container(clientPod, "client");
        foreach (var env in new[] { "FAIRMEDFM_CACHE", "FAIRMEDFM_DATA_ROOTS" })
        {
            Assert.Equal(Env(silo, env).Value, Env(client, env).Value);
            Assert.Equal(ClaimAt(siloPod, silo, Env(silo, env).Value, out _), ClaimAt(clientPod, client, Env(client, env).Value, out _));
        }

        // A read-only root file system needs a writable /tmp.
        foreach (var (workload, pod) in new[] { ("silo", siloPod), ("client", clientPod) })
        {
            var c = pod.Spec.Containers[0];
            Assert.True(c.SecurityContext.ReadOnlyRootFilesystem);
            var tmp = c.VolumeMounts.Single(m => m.MountPath == "/tmp");
            Assert.NotNull(pod.Spec.Volumes.Single(v => v.Name == tmp.Name).EmptyDir);
        }
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Client_job_submits_the_mounted_grid_to_the_silos_cluster(string overlay)
    {
        var job = ClientJob(overlay);
        var pod = job.Spec.Template;
        var client = Container(pod, "client");
        var args = client.Args.ToList();
        Assert.Equal("run", args[0]);
        string Arg(string name) { var i = args.IndexOf(name); Assert.True(i >= 0 && i + 1 < args.Count, $"client args lack {name}"); return args[i + 1]; }
        Assert.Equal("$(FAIRMEDFM_REDIS)", Arg("--redis"));
        Assert.StartsWith("/data/results/", Arg("--out"));
        Assert.Contains(client.VolumeMounts, m => m.MountPath == "/data/results");
        Assert.Equal("Never", pod.Spec.RestartPolicy);
        Assert.True(job.Spec.BackoffLimit >= 6, "the Job must retry while the silos start");
        // The CLI exits 3 when it cannot reach the cluster (yet): that must be retried, never end the Job.
        var failJobCodes = job.Spec.PodFailurePolicy?.Rules.Where(r => r.Action == "FailJob" && r.OnExitCodes?.OperatorProperty == "In")
            .SelectMany(r => r.OnExitCodes.Values).ToList() ?? new List<int>();
        Assert.DoesNotContain(3, failJobCodes);
        Assert.DoesNotContain(0, failJobCodes);

        // The grid comes from a ConfigMap mounted at the same path in the silos (they read the dataset card by path).
        var grid = Arg("--grid");
        var gridDir = Path.GetDirectoryName(grid)!.Replace('\\', '/');
        var mount = client.VolumeMounts.Single(m => m.MountPath == gridDir);
        var cmName = pod.Spec.Volumes.Single(v => v.Name == mount.Name).ConfigMap.Name;
        var cm = One<V1ConfigMap>(overlay, cmName);
        var siloPod = Silo(overlay).Spec.Template;
        var siloMount = Container(siloPod, "silo").VolumeMounts.Single(m => m.MountPath == gridDir);
        Assert.Equal(cmName, siloPod.Spec.Volumes.Single(v => v.Name == siloMount.Name).ConfigMap.Name);

        // The grid and its dataset cards load with the real loaders, and the data lies under the silos' FAIRMEDFM_DATA_ROOTS (which they enforce).
        using var tmp = new TempDir();
        foreach (var (file, text) in cm.Data) File.WriteAllText(tmp.File(file), text);
        var spec = GridSpec.Load(tmp.File(Path.GetFileName(grid)));
        var dataRoot = Env(Container(siloPod, "silo"), "FAIRMEDFM_DATA_ROOTS").Value.TrimEnd('/') + "/";
        foreach (var d in spec.Datasets)
        {
            Assert.True(cm.Data.ContainsKey(d), $"the grid names dataset card {d}, which is not in ConfigMap {cmName}");
            var card = DatasetCard.Load(tmp.File(d));
            Assert.StartsWith(dataRoot, card.MetadataCsv);
            Assert.StartsWith(dataRoot, card.ImageRoot);
        }

        // Same Orleans cluster as the silos; no orleans/* labels on the client (Orleans would take it for a silo pod).
        Assert.Equal(siloPod.Metadata.Labels["orleans/serviceId"], Env(client, "ORLEANS_SERVICE_ID").Value);
        Assert.Equal(siloPod.Metadata.Labels["orleans/clusterId"], Env(client, "ORLEANS_CLUSTER_ID").Value);
        Assert.Equal(siloPod.Metadata.Labels["orleans/clusterId"], Env(client, "FAIRMEDFM_ClusterId").Value);
        Assert.DoesNotContain(pod.Metadata.Labels.Keys, k => k.StartsWith("orleans/", StringComparison.Ordinal));
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Telemetry_goes_to_the_collector(string overlay)
    {
        var collector = One<V1Deployment>(overlay, "otel-collector");
        var service = All<V1Service>(overlay).Single(s => Matches(s.Spec.Selector, collector.Spec.Template.Metadata.Labels));
        var grpc = service.Spec.Ports.Single(p => p.Port == 4317);
        Assert.Equal(4317, PortNumber(collector.Spec.Template.Spec.Containers[0], grpc.TargetPort));
        foreach (var (pod, name, serviceName) in new[] { (Silo(overlay).Spec.Template, "silo", "fairmedfm-silo"), (ClientJob(overlay).Spec.Template, "client", "fairmedfm-client") })
        {
            var c = Container(pod, name);
            Assert.Equal($"http://{service.Metadata.Name}:4317", Env(c, "OTEL_EXPORTER_OTLP_ENDPOINT").Value);
            Assert.Equal(serviceName, Env(c, "OTEL_SERVICE_NAME").Value);
            Assert.False(string.IsNullOrEmpty(Env(c, "OTEL_RESOURCE_ATTRIBUTES").Value));
        }
        // The collector listens on all interfaces (since collector 0.104 the OTLP receiver defaults to localhost).
        var config = All<V1ConfigMap>(overlay).Single(c => c.Metadata.Name.StartsWith("otel-collector-config", StringComparison.Ordinal));
        var text = Assert.Single(config.Data.Values);
        Assert.Contains("endpoint: 0.0.0.0:4317", text);
        var arg = Assert.Single(collector.Spec.Template.Spec.Containers[0].Args);
        var mount = collector.Spec.Template.Spec.Containers[0].VolumeMounts.Single();
        Assert.Equal($"--config={mount.MountPath}/{config.Data.Keys.Single()}", arg);
    }

    [Theory, MemberData(nameof(Overlays))]
    public void Services_select_pods_and_name_their_ports(string overlay)
    {
        foreach (var s in All<V1Service>(overlay))
        {
            var pods = PodTemplates(overlay).Where(w => Matches(s.Spec.Selector, w.Pod.Metadata.Labels)).ToList();
            Assert.True(pods.Count == 1, $"Service {s.Metadata.Name} selects {pods.Count} workloads");
            foreach (var p in s.Spec.Ports)
                PortNumber(pods[0].Pod.Spec.Containers[0], p.TargetPort ?? (IntOrString)p.Port.ToString());
        }
    }

    [Fact]
    public void Readme_explains_the_gpu_deploy()
    {
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var i = readme.IndexOf("## Deploy on Kubernetes", StringComparison.Ordinal);
        Assert.True(i >= 0, "README has no '## Deploy on Kubernetes' section");
        var section = readme[i..];
        var end = section.IndexOf("\n## ", 3, StringComparison.Ordinal);
        if (end > 0) section = section[..end];
        foreach (var step in new[] { "docker build", "-f deploy/docker/Dockerfile.silo", "FAIRMEDFM_CUDA=true", "redis-auth.env",
                     "kubectl apply -k deploy/k8s/overlays/gpu", "job/fairmedfm-submit", "deploy/otel-collector" })
            Assert.Contains(step, section);
    }
}
