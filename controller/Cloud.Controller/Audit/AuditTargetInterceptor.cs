using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Cloud.Controller.Audit;

/// <summary>
/// Finds the resource a gRPC call names, for the audit trail, where REST has it in its route:
/// the request's <c>id</c> or <c>vm_id</c>; for a method that does not create, also <c>name</c>,
/// <c>image</c>, <c>flavor</c>, <c>aggregate</c> or <c>tenant</c> (a node's, image's, flavor's,
/// aggregate's or tenant's own name is its id). A create names no resource yet, as its REST
/// route does not. Runs only for calls that got past authorization; a refused call has no target.
/// </summary>
internal sealed class AuditTargetInterceptor : Interceptor
{
    private static readonly string[] IdFields = ["id", "vm_id"];
    private static readonly string[] NameFields = ["name", "image", "flavor", "aggregate", "tenant"];

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        if (request is IMessage message && context.GetHttpContext() is { } http && AuditMiddleware.AuditedAction(http) is not null
            && TargetOf(message, context.Method) is { } target)
        {
            http.Features.Set(new AuditTarget(target));
        }
        return continuation(request, context);
    }

    internal static string? TargetOf(IMessage message, string method)
    {
        var creates = method[(method.LastIndexOf('/') + 1)..].StartsWith("Create", StringComparison.Ordinal);
        return First(message, IdFields) ?? (creates ? null : First(message, NameFields));
    }

    private static string? First(IMessage message, string[] names)
    {
        foreach (var name in names)
        {
            if (message.Descriptor.FindFieldByName(name) is { FieldType: FieldType.String, IsRepeated: false } field
                && field.Accessor.GetValue(message) is string { Length: > 0 } value)
            {
                return value;
            }
        }
        return null;
    }
}
