using System.Diagnostics;
using FairMedFM.Grains;
using Microsoft.Extensions.Logging;

namespace FairMedFM.Engine.Tests;

/// <summary>Log lines written inside a span carry that span's trace id (so logs and traces can be joined).</summary>
public sealed class LoggingTests
{
    private sealed class CapturingProvider : ILoggerProvider, ISupportExternalScope
    {
        public readonly List<(string Message, Dictionary<string, object?> Scope)> Lines = new();
        private IExternalScopeProvider? _scopes;
        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;
        public ILogger CreateLogger(string categoryName) => new Logger(this);
        public void Dispose() { }

        private sealed class Logger(CapturingProvider p) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => p._scopes?.Push(state);
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var scope = new Dictionary<string, object?>();
                p._scopes?.ForEachScope((s, acc) =>
                {
                    if (s is IEnumerable<KeyValuePair<string, object?>> kvs) foreach (var kv in kvs) acc[kv.Key] = kv.Value;
                }, scope);
                lock (p.Lines) p.Lines.Add((formatter(state, exception), scope));
            }
        }
    }

    [Fact]
    public void A_log_line_written_in_a_span_carries_its_trace_id()
    {
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == Telemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        var capture = new CapturingProvider();
        using var factory = LoggerFactory.Create(b => { b.AddFairMedFMLogging(); b.AddProvider(capture); });
        var log = factory.CreateLogger("test");

        using (var span = Telemetry.Source.StartActivity("cell"))
        {
            Assert.NotNull(span);
            log.LogInformation("inside");
            var line = Assert.Single(capture.Lines, l => l.Message == "inside");
            Assert.Equal(span!.TraceId.ToString(), line.Scope["TraceId"]?.ToString());
            Assert.Equal(span.SpanId.ToString(), line.Scope["SpanId"]?.ToString());
        }
        log.LogInformation("outside");
        Assert.False(capture.Lines.Single(l => l.Message == "outside").Scope.ContainsKey("TraceId"));
    }
}
