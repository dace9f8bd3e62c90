using System.Buffers.Binary;
using System.Collections.Concurrent;
using Cloud.Contracts.Agent.V1;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Cloud.Controller.Tests.Support;

/// <summary>
/// Two fake nodes whose agents stand in for the part of the contract the fake backend does not
/// serve yet: a PullImage with <c>source_node</c> (an image taken from another node's store, as
/// a snapshot's export is) is recorded and answered here, or refused on a node the test names;
/// every other call reaches the agent. Its own collection, since tests cordon its nodes.
/// </summary>
public sealed class SnapshotCloudFixture : CloudFixture
{
    /// <summary>Every PullImage from another node, with the node (1-based) it was asked of.</summary>
    public ConcurrentQueue<(int Node, PullImageRequest Request)> NodePulls { get; } = new();

    /// <summary>Nodes (1-based) whose pulls from another node fail UNAVAILABLE.</summary>
    public ConcurrentDictionary<int, bool> RefusePulls { get; } = new();

    protected override void ConfigureAgent(WebApplicationBuilder agent, int n)
        => agent.Services.AddSingleton<IStartupFilter>(new PullStandIn(this, n));

    private sealed class PullStandIn(SnapshotCloudFixture cloud, int node) : IStartupFilter
    {
        private const string Path = "/cloud.agent.v1.NodeAgent/PullImage";

        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, proceed) =>
            {
                if (context.Request.Path != Path)
                {
                    await proceed();
                    return;
                }
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body);
                var bytes = body.ToArray();
                var request = PullImageRequest.Parser.ParseFrom(bytes.AsSpan(5));
                if (request.SourceNode.Length == 0)
                {
                    context.Request.Body = new MemoryStream(bytes);
                    await proceed();
                    return;
                }
                cloud.NodePulls.Enqueue((node, request));
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/grpc";
                if (cloud.RefusePulls.ContainsKey(node))
                {
                    // Trailers-only: the status comes in the headers, with no message.
                    context.Response.Headers["grpc-status"] = "14";
                    context.Response.Headers["grpc-message"] = "source node unreachable";
                    return;
                }
                var payload = new PullImageResponse { ImageId = request.ImageId, Transferred = true }.ToByteArray();
                var frame = new byte[5 + payload.Length];
                BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)payload.Length);
                payload.CopyTo(frame, 5);
                await context.Response.Body.WriteAsync(frame);
                context.Response.AppendTrailer("grpc-status", "0");
            });
            next(app);
        };
    }
}

[CollectionDefinition(Name)]
public sealed class SnapshotCloudCollection : ICollectionFixture<SnapshotCloudFixture>
{
    public const string Name = "snapshot-cloud";
}
