using Cloud.Controller.Api;
using Cloud.Contracts.Compute.V1;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Cloud.Controller.Images;

/// <summary>REST for images under /v1/images; the upload (PUT .../file) is REST only.</summary>
internal static class ImageRestApi
{
    private const long KestrelSlackBytes = 1024 * 1024;

    public static void MapImages(this RouteGroupBuilder v1)
    {
        v1.MapPost("/images", async (HttpContext http, ImageService images, CancellationToken ct) =>
        {
            var request = await ProtoJson.ReadAsync<CreateImageRequest>(http.Request, ct);
            request.IdempotencyKey = RestApi.IdempotencyKey(http, request.IdempotencyKey);
            var image = await images.CreateAsync(RestApi.CallerOf(http), request, ct);
            return ProtoJson.Result(image, StatusCodes.Status201Created, $"/v1/images/{image.Id}");
        });
        v1.MapGet("/images", async (HttpContext http, ImageService images, CancellationToken ct) =>
            ProtoJson.Result(await images.ListAsync(RestApi.CallerOf(http), ct)));
        v1.MapGet("/images/{id}", async (HttpContext http, ImageService images, string id, CancellationToken ct) =>
            ProtoJson.Result(await images.GetAsync(RestApi.CallerOf(http), id, ct)));
        v1.MapDelete("/images/{id}", async (HttpContext http, ImageService images, string id, CancellationToken ct) =>
            ProtoJson.Result(await images.DeleteAsync(RestApi.CallerOf(http), id, ct)));
        v1.MapPut("/images/{id}/members/{tenant}", async (HttpContext http, ImageService images, string id, string tenant, CancellationToken ct) =>
            ProtoJson.Result(await images.SetMemberAsync(RestApi.CallerOf(http), new ImageMemberRequest { Image = id, Tenant = tenant }, member: true, ct)));
        v1.MapDelete("/images/{id}/members/{tenant}", async (HttpContext http, ImageService images, string id, string tenant, CancellationToken ct) =>
            ProtoJson.Result(await images.SetMemberAsync(RestApi.CallerOf(http), new ImageMemberRequest { Image = id, Tenant = tenant }, member: false, ct)));
        v1.MapPut("/images/{id}/file", async (HttpContext http, ImageService images, IOptions<ImageOptions> options, string id, CancellationToken ct) =>
        {
            if (http.Request.ContentType is not null && !http.Request.ContentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase))
            {
                throw new ApiException(Grpc.Core.StatusCode.InvalidArgument, "The image file is sent as application/octet-stream.", new Dictionary<string, object?> { ["httpStatus"] = 415 });
            }
            // The server-wide body limit is for JSON; an image may be as large as the setting allows.
            // Kestrel's limit sits a little above it, so that the service itself sees an oversized
            // upload and answers it with the one error shape (and cleans up after it).
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            {
                limit.MaxRequestBodySize = options.Value.MaxUploadBytes + KestrelSlackBytes;
            }
            return ProtoJson.Result(await images.UploadAsync(RestApi.CallerOf(http), id, http.Request.Body, http.Request.ContentLength, ct));
        });
    }
}
