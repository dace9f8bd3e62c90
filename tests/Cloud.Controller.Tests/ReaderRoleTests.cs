using System.Net;
using Cloud.Contracts.Compute.V1;
using Cloud.Controller.Tests.Support;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Cloud.Controller.Tests;

/// <summary>
/// A reader's token reads and never writes: every mutating REST route and every mutating gRPC
/// method refuses it with PERMISSION_DENIED, from the authorization layer (before any lookup),
/// and leaves the database as it was.
/// </summary>
[Collection(CloudCollection.Name)]
public sealed class ReaderRoleTests(CloudFixture cloud) : IDisposable
{
    /// <summary>What the authorization layer answers; a handler's own refusal words it differently.</summary>
    private const string PolicyRefusal = "This token may not call this endpoint.";

    /// <summary>gRPC methods that only read (or only compute an answer): a reader may call them.</summary>
    private static readonly string[] ReadOnlyPrefixes = ["Get", "List", "Watch", "DryRun", "Plan"];

    /// <summary>gRPC methods that change something. A new method must be added here or match a read-only prefix.</summary>
    private static readonly HashSet<string> MutatingMethods =
    [
        "Compute/CreateVm", "Compute/CreateVms", "Compute/DeleteVm", "Compute/StartVm", "Compute/StopVm", "Compute/RebootVm",
        "Compute/ResizeVm", "Compute/MigrateVm", "Compute/CreateSnapshot", "Compute/RestoreSnapshot", "Compute/DeleteSnapshot",
        "Compute/CreateImage", "Compute/DeleteImage", "Compute/AddImageMember", "Compute/RemoveImageMember",
        "Compute/SetNodeSchedulable", "Compute/DrainNode", "Compute/CreateJoinToken", "Compute/DeleteNode", "Compute/AddFlavorAccess", "Compute/RemoveFlavorAccess",
        "Compute/CancelOperation", "Compute/CreateTenant", "Compute/SetQuota", "Compute/CreateToken", "Compute/RevokeToken",
        "Compute/DeleteTenant",
        "Placement/CreateServerGroup", "Placement/DeleteServerGroup", "Placement/CreateAggregate", "Placement/AddAggregateNode",
        "Placement/RemoveAggregateNode", "Placement/DeleteAggregate",
    ];

    private static readonly string[] CountedTables =
    [
        "vms", "operations", "snapshots", "images", "image_members", "image_copies", "server_groups", "server_group_members",
        "aggregates", "aggregate_nodes", "allocations", "consumers", "placement_decisions", "flavors", "flavor_access",
        "tenants", "api_tokens", "idempotency_records", "nodes",
    ];

    private readonly GrpcChannel _channel = cloud.NewGrpcChannel();

    [Fact]
    public void Every_grpc_method_is_either_read_only_or_listed_as_mutating()
    {
        var methods = GrpcMethods().Select(m => $"{m.Service.Name}/{m.Name}").ToList();
        var unclassified = methods.Where(m => !MutatingMethods.Contains(m) && !IsReadOnly(m)).ToList();
        var both = methods.Where(m => MutatingMethods.Contains(m) && IsReadOnly(m)).ToList();
        var stale = MutatingMethods.Except(methods).ToList();

        Assert.True(unclassified.Count == 0, "Classify as read-only or mutating: " + string.Join(", ", unclassified));
        Assert.Empty(both);
        Assert.Empty(stale);
    }

    [Fact]
    public async Task A_reader_is_refused_every_mutating_rest_route_and_changes_nothing()
    {
        using var tenant = await cloud.CreateTenantAsync("rdrest");
        var ids = await ResourcesAsync(tenant);
        var routes = cloud.ControllerServices.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/v1/", StringComparison.Ordinal) == true)
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? []).Select(method => (Method: method, Pattern: e.RoutePattern)))
            .Where(r => r.Method is "POST" or "PUT" or "PATCH" or "DELETE")
            .ToList();
        Assert.Contains(routes, r => r.Method == "DELETE" && r.Pattern.RawText == "/v1/server-groups/{id}");
        Assert.Contains(routes, r => r.Method == "POST" && r.Pattern.RawText == "/v1/server-groups");
        var before = await SnapshotAsync();

        var refusals = new List<string>();
        foreach (var (method, pattern) in routes)
        {
            var path = "/" + string.Join("/", pattern.PathSegments.Select(segment => string.Concat(segment.Parts.Select(part => part switch
            {
                Microsoft.AspNetCore.Routing.Patterns.RoutePatternLiteralPart literal => literal.Content,
                Microsoft.AspNetCore.Routing.Patterns.RoutePatternParameterPart parameter => Uri.EscapeDataString(ids.For(pattern.RawText!, parameter.Name)),
                _ => throw new InvalidOperationException($"Unexpected route part in {pattern.RawText}."),
            }))));
            var (status, problem) = await tenant.Reader.SendAsync(new HttpMethod(method), path, "{}");
            if (status != HttpStatusCode.Forbidden || problem.Str("code") != "PERMISSION_DENIED" || problem.Str("detail") != PolicyRefusal)
            {
                refusals.Add($"{method} {path}: {(int)status} {problem}");
            }
        }

        Assert.True(refusals.Count == 0, "Not refused as a reader's write: " + string.Join("\n", refusals));
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task A_reader_is_refused_every_mutating_grpc_method_and_changes_nothing()
    {
        using var tenant = await cloud.CreateTenantAsync("rdgrpc");
        var ids = await ResourcesAsync(tenant);
        var mutating = GrpcMethods().Where(m => MutatingMethods.Contains($"{m.Service.Name}/{m.Name}")).ToList();
        Assert.Equal(MutatingMethods.Count, mutating.Count);
        var before = await SnapshotAsync();

        var refusals = new List<string>();
        foreach (var method in mutating)
        {
            var request = RequestFor(method, ids);
            var call = new Method<byte[], byte[]>(
                method.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary,
                method.Service.FullName, method.Name, Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
            var error = await Record.ExceptionAsync(async () =>
            {
                if (method.IsServerStreaming)
                {
                    using var stream = _channel.CreateCallInvoker().AsyncServerStreamingCall(call, null, Tenancy.Bearer(tenant.ReaderToken), request.ToByteArray());
                    await stream.ResponseStream.MoveNext();
                }
                else
                {
                    await _channel.CreateCallInvoker().AsyncUnaryCall(call, null, Tenancy.Bearer(tenant.ReaderToken), request.ToByteArray());
                }
            });
            if (error is not RpcException { StatusCode: StatusCode.PermissionDenied } rpc || rpc.Status.Detail != PolicyRefusal)
            {
                refusals.Add($"{method.FullName}: {error?.Message ?? "succeeded"}");
            }
        }

        Assert.True(refusals.Count == 0, "Not refused as a reader's write: " + string.Join("\n", refusals));
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task A_reader_still_reads_on_both_wires()
    {
        using var tenant = await cloud.CreateTenantAsync("rdread");

        Assert.Equal(HttpStatusCode.OK, (await tenant.Reader.GetJsonAsync("/v1/server-groups")).Status);
        Assert.Equal(HttpStatusCode.OK, (await tenant.Reader.GetJsonAsync("/v1/vms")).Status);
        await new Cloud.Contracts.Compute.V1.Placement.PlacementClient(_channel).ListServerGroupsAsync(new ListServerGroupsRequest(), Tenancy.Bearer(tenant.ReaderToken));
        await new Compute.ComputeClient(_channel).ListVmsAsync(new ListVmsRequest(), Tenancy.Bearer(tenant.ReaderToken));
    }

    private static IEnumerable<MethodDescriptor> GrpcMethods()
        => Compute.Descriptor.Methods.Concat(Cloud.Contracts.Compute.V1.Placement.Descriptor.Methods);

    private static bool IsReadOnly(string serviceAndMethod)
        => ReadOnlyPrefixes.Any(p => serviceAndMethod[(serviceAndMethod.IndexOf('/', StringComparison.Ordinal) + 1)..].StartsWith(p, StringComparison.Ordinal));

    /// <summary>A request whose string fields name the tenant's real resources where the method's subject has one.</summary>
    private static IMessage RequestFor(MethodDescriptor method, Resources ids)
    {
        var request = method.InputType.Parser.ParseFrom(ByteString.Empty);
        foreach (var field in method.InputType.Fields.InDeclarationOrder().Where(f => f.FieldType == FieldType.String && !f.IsRepeated))
        {
            field.Accessor.SetValue(request, field.Name switch
            {
                "id" or "vm_id" => ids.ForSubject(method.Name),
                "tenant" => ids.TenantId,
                "image" => ids.ImageId,
                "flavor" => Tenancy.Nano,
                "node" => "test-node-1",
                "idempotency_key" => "reader-" + method.Name,
                _ => method.Name.Contains("Node", StringComparison.Ordinal) ? "test-node-1" : "reader-" + field.Name.Replace('_', '-'),
            });
        }
        return request;
    }

    /// <summary>The tenant's own VM, server group, image, operation: what a reader would aim at.</summary>
    private async Task<Resources> ResourcesAsync(TestTenant tenant)
    {
        var vmId = await tenant.Member.CreateRunningVmAsync("reader-target");
        var (_, group) = await tenant.Member.PostAsync("/v1/server-groups", """{"name":"reader-group","policy":"anti-affinity"}""");
        var (_, image) = await tenant.Member.PostAsync("/v1/images", $$"""{"name":"reader-image","format":"raw","visibility":"shared","sha256":"{{new string('0', 64)}}"}""");
        var operationId = await cloud.ScalarAsync("SELECT count(*) FROM operations WHERE project_id = @p", ("p", tenant.Id)) > 0
            ? (string)(await cloud.QueryAsync("SELECT id::text FROM operations WHERE project_id = @p LIMIT 1", ("p", tenant.Id)))!
            : Guid.NewGuid().ToString();
        return new Resources(tenant.Id, vmId, group.Str("id"), image.Str("id"), operationId);
    }

    /// <summary>Row counts of the main tables, with the flags a refused write could flip.</summary>
    private async Task<string> SnapshotAsync()
    {
        var counts = new List<string>();
        foreach (var table in CountedTables)
        {
            counts.Add($"{table}={await cloud.ScalarAsync($"SELECT count(*) FROM {table}")}");
        }
        counts.Add($"live-tokens={await cloud.ScalarAsync("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")}");
        counts.Add($"schedulable-nodes={await cloud.ScalarAsync("SELECT count(*) FROM nodes WHERE schedulable")}");
        counts.Add($"running-vms={await cloud.ScalarAsync("SELECT count(*) FROM vms WHERE state = 'RUNNING'")}");
        return string.Join(", ", counts);
    }

    private sealed record Resources(string TenantId, string VmId, string GroupId, string ImageId, string OperationId)
    {
        public string ForSubject(string what)
            => what.Contains("ServerGroup", StringComparison.Ordinal) ? GroupId
                : what.Contains("Image", StringComparison.Ordinal) ? ImageId
                : what.Contains("Operation", StringComparison.Ordinal) ? OperationId
                : what.Contains("Tenant", StringComparison.Ordinal) || what.Contains("Quota", StringComparison.Ordinal) ? TenantId
                : what.Contains("Snapshot", StringComparison.Ordinal) && !what.Contains("CreateSnapshot", StringComparison.Ordinal) ? Guid.NewGuid().ToString()
                : what.Contains("Token", StringComparison.Ordinal) ? Guid.NewGuid().ToString()
                : VmId;

        public string For(string route, string parameter)
            => parameter switch
            {
                "tenant" => TenantId,
                "node" => "test-node-1",
                "name" when route.StartsWith("/v1/nodes/", StringComparison.Ordinal) => "test-node-1",
                "name" when route.StartsWith("/v1/flavors/", StringComparison.Ordinal) => Tenancy.Nano,
                "name" => "reader-aggregate",
                _ => ForSubject(route switch
                {
                    _ when route.StartsWith("/v1/server-groups", StringComparison.Ordinal) => "ServerGroup",
                    _ when route.StartsWith("/v1/images", StringComparison.Ordinal) => "Image",
                    _ when route.StartsWith("/v1/operations", StringComparison.Ordinal) => "Operation",
                    _ when route.StartsWith("/v1/tenants", StringComparison.Ordinal) => "Tenant",
                    _ when route.StartsWith("/v1/snapshots", StringComparison.Ordinal) => "Snapshot",
                    _ when route.StartsWith("/v1/tokens", StringComparison.Ordinal) => "Token",
                    _ => "Vm",
                }),
            };
    }

    public void Dispose() => _channel.Dispose();
}
