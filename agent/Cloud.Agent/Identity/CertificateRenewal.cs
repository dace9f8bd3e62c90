using System.Net;
using Cloud.Contracts.Node.V1;
using Cloud.Contracts.Trust;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace Cloud.Agent.Identity;

/// <summary>
/// Gets this node its certificates and keeps them valid. At start, before the agent listens: the
/// saved certificate if it is still good, otherwise a join with the node's join token (retried
/// while the controller cannot be reached, refused at once for a bad token). Then a renewal at
/// two thirds of the certificate's life, retried until it succeeds; a node whose certificate
/// expired anyway (it was off for a day, say) joins again if it is given a new join token, and
/// says so in its log and its readiness until then.
/// </summary>
internal sealed partial class CertificateRenewal(
    NodeIdentity identity,
    IOptions<AgentOptions> options,
    IConfiguration configuration,
    TimeProvider time,
    ILogger<CertificateRenewal> logger) : BackgroundService
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(30);

    /// <summary>Why the node has no valid certificate, for readiness; null when it has one.</summary>
    public string? Problem { get; private set; }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (identity.LoadSaved() is { } saved)
        {
            identity.Use(saved);
            Log.Loaded(logger, identity.NodeName, saved.NotAfter.ToUniversalTime());
        }
        else
        {
            await JoinWithRetriesAsync(cancellationToken);
        }
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromSeconds(1);
        while (!stoppingToken.IsCancellationRequested)
        {
            var current = identity.Certificate!;
            var wait = CertificateAuthority.RenewalTime(current) - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time, stoppingToken);
            }
            try
            {
                if (identity.Certificate!.NotAfter.ToUniversalTime() <= time.GetUtcNow().UtcDateTime)
                {
                    await JoinAsync(stoppingToken);
                }
                else
                {
                    await RenewAsync(stoppingToken);
                }
                delay = TimeSpan.FromSeconds(1);
                Problem = null;
            }
            catch (Exception e) when (e is RpcException or HttpRequestException or InvalidDataException or JoinTokenMissingException)
            {
                var expired = identity.Certificate!.NotAfter.ToUniversalTime() <= time.GetUtcNow().UtcDateTime;
                Problem = expired
                    ? $"The node certificate expired at {identity.Certificate.NotAfter.ToUniversalTime():u} and could not be replaced: {e.Message} Give the node a new join token (cloudctl node join-token {identity.NodeName}, Agent:JoinTokenFile)."
                    : $"Renewing the node certificate failed: {e.Message}";
                Log.RenewalFailed(logger, Problem);
                await Task.Delay(delay, time, stoppingToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
            }
        }
    }

    private async Task JoinWithRetriesAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (true)
        {
            try
            {
                await JoinAsync(cancellationToken);
                return;
            }
            catch (Exception e) when (e is HttpRequestException || e is RpcException { StatusCode: StatusCode.Unavailable or StatusCode.DeadlineExceeded })
            {
                // The controller is not up yet: a node may start first.
                Log.JoinRetry(logger, e.Message);
                await Task.Delay(delay, time, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
            }
        }
    }

    private async Task JoinAsync(CancellationToken cancellationToken)
    {
        var token = JoinToken() ?? throw new JoinTokenMissingException(
            $"Node {identity.NodeName} has no valid certificate in {options.Value.TlsDirectory} and no join token: make one (cloudctl node join-token {identity.NodeName}) and set Agent:JoinToken or Agent:JoinTokenFile.");
        using var keys = NodeIdentity.NewKeys(Addresses());
        using var channel = NewChannel();
        var issued = await new NodeTrust.NodeTrustClient(channel).JoinAsync(
            new JoinRequest { NodeName = identity.NodeName, JoinToken = token, Requests = keys.Requests }, Deadline(cancellationToken));
        var certificate = identity.Save(issued, keys);
        Log.Joined(logger, identity.NodeName, certificate.NotAfter.ToUniversalTime());
    }

    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        using var keys = NodeIdentity.NewKeys(Addresses());
        using var channel = NewChannel();
        var issued = await new NodeTrust.NodeTrustClient(channel).RenewAsync(new RenewRequest { Requests = keys.Requests }, Deadline(cancellationToken));
        var certificate = identity.Save(issued, keys);
        Log.Renewed(logger, identity.NodeName, certificate.NotAfter.ToUniversalTime());
    }

    private string? JoinToken()
    {
        if (options.Value.JoinTokenFile is { Length: > 0 } file && File.Exists(file))
        {
            return File.ReadAllText(file).Trim();
        }
        return options.Value.JoinToken is { Length: > 0 } token ? token : null;
    }

    /// <summary>
    /// The node's own addresses: where its agent listens and where QEMU takes migrations. An
    /// agent listening on every address (0.0.0.0, [::]) names none by it: the controller refuses
    /// an unspecified address in a certificate request, so such a node names its migration address.
    /// </summary>
    private List<string> Addresses()
    {
        var addresses = new List<string>();
        var listen = AgentExtensions.ParseListen(options.Value.Listen).Address;
        if (!listen.Equals(IPAddress.Any) && !listen.Equals(IPAddress.IPv6Any))
        {
            addresses.Add(listen.ToString());
        }
        if (configuration["Agent:Qemu:ListenAddress"] is { Length: > 0 } migration && IPAddress.TryParse(migration, out var address)
            && !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any) && !addresses.Contains(address.ToString()))
        {
            addresses.Add(address.ToString());
        }
        return addresses;
    }

    /// <summary>
    /// A channel of its own for each join or renewal, so that the TLS connection presents the
    /// certificate the node holds now (none before it joins), never one pooled from before.
    /// </summary>
    private GrpcChannel NewChannel()
        => GrpcChannel.ForAddress(options.Value.ControllerUrl, new GrpcChannelOptions { HttpHandler = identity.NewHandler(CloudIdentity.IsController) });

    private CallOptions Deadline(CancellationToken cancellationToken)
        => new(deadline: time.GetUtcNow().UtcDateTime + CallTimeout, cancellationToken: cancellationToken);

    private sealed class JoinTokenMissingException(string message) : Exception(message);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "Node {NodeName} uses its saved certificate, valid until {NotAfter:u}")]
        public static partial void Loaded(ILogger logger, string nodeName, DateTime notAfter);

        [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Node {NodeName} joined; certificate valid until {NotAfter:u}")]
        public static partial void Joined(ILogger logger, string nodeName, DateTime notAfter);

        [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Node {NodeName} renewed its certificate; valid until {NotAfter:u}")]
        public static partial void Renewed(ILogger logger, string nodeName, DateTime notAfter);

        [LoggerMessage(EventId = 1104, Level = LogLevel.Error, Message = "{Problem}")]
        public static partial void RenewalFailed(ILogger logger, string problem);

        [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "Cannot reach the controller to join yet: {Error}")]
        public static partial void JoinRetry(ILogger logger, string error);
    }
}
