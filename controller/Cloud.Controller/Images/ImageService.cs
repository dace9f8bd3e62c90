using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Quotas;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cloud.Controller.Images;

/// <summary>
/// Images tenants own: the record (create, get, list, delete) and the upload of its bytes, which
/// turns it ACTIVE only once size, SHA-256 and format checked out. Another tenant's private image
/// answers exactly like one that does not exist.
/// </summary>
internal sealed partial class ImageService(
    IDbContextFactory<LedgerDbContext> contexts,
    NpgsqlDataSource dataSource,
    ImageFiles files,
    ImageCopyPurger copies,
    IOptions<ImageOptions> options,
    TimeProvider time,
    ILogger<ImageService> logger)
{
    private const long GiB = 1024L * 1024 * 1024;
    private const int MaxNameLength = 255;

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Hex();

    public async Task<Image> CreateAsync(Caller caller, CreateImageRequest request, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        Validate(request);
        var visibility = request.Visibility.Length == 0 ? ImageVisibilities.Private : request.Visibility;
        if (visibility == ImageVisibilities.Public && !caller.IsOperator)
        {
            throw new ApiException(StatusCode.PermissionDenied, "Only operators publish images; create it private.");
        }
        var key = request.IdempotencyKey.Length == 0 ? null : request.IdempotencyKey;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        if (key is not null && await FindRetryAsync(db, caller, key, request, visibility, cancellationToken) is { } earlier)
        {
            return earlier;
        }
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await ChargeAsync((NpgsqlTransaction)transaction.GetDbTransaction(), caller.ProjectId, QuotaUsage.OneImage, cancellationToken);
        var now = time.GetUtcNow();
        var image = new ImageEntity
        {
            Id = "img-" + Guid.CreateVersion7().ToString("N"),
            ProjectId = caller.ProjectId,
            Name = request.Name,
            Format = request.Format,
            Sha256 = request.Sha256,
            MinDiskGb = request.MinDiskGb,
            Visibility = visibility,
            State = ImageStates.Queued,
            IdempotencyKey = key,
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.Images.Add(image);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (key is not null && e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            // A retry raced the first request: answer what the first one made.
            await using var again = await contexts.CreateDbContextAsync(cancellationToken);
            return await FindRetryAsync(again, caller, key, request, visibility, cancellationToken)
                ?? throw new ApiException(StatusCode.Aborted, "A concurrent create with this Idempotency-Key failed; retry.");
        }
        return ApiMapping.ToProto(image);
    }

    public async Task<Image> GetAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        return await WithMembersAsync(db, caller, await FindVisibleAsync(db, caller, id, cancellationToken), cancellationToken);
    }

    /// <summary>The owner of a shared image lets a tenant use it (or stops); doing it twice changes nothing.</summary>
    public async Task<Image> SetMemberAsync(Caller caller, ImageMemberRequest request, bool member, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        VmValidation.RequireName(request.Tenant, "tenant");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var image = await FindVisibleAsync(db, caller, request.Image, cancellationToken);
        RequireOwner(caller, image, "share");
        if (image.Visibility != ImageVisibilities.Shared)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Image '{image.Id}' is {image.Visibility}; only a shared image has members.");
        }
        if (member)
        {
            // Whether the tenant exists is not checked: the answer would tell the caller which
            // tenant ids exist. A member that names no tenant grants nothing, and creating a tenant
            // drops the memberships its id had before.
            await db.Database.ExecuteSqlAsync(
                $"INSERT INTO image_members (image_id, tenant_id) VALUES ({image.Id}, {request.Tenant}) ON CONFLICT DO NOTHING", cancellationToken);
        }
        else
        {
            await db.ImageMembers.Where(m => m.ImageId == image.Id && m.TenantId == request.Tenant).ExecuteDeleteAsync(cancellationToken);
        }
        return await WithMembersAsync(db, caller, image, cancellationToken);
    }

    /// <summary>The image; its members too for its owner and operators (members do not see each other).</summary>
    private static async Task<Image> WithMembersAsync(LedgerDbContext db, Caller caller, ImageEntity image, CancellationToken cancellationToken)
    {
        var message = ApiMapping.ToProto(image);
        if (image.Visibility == ImageVisibilities.Shared && (caller.IsOperator || caller.ProjectId == image.ProjectId))
        {
            message.Members.AddRange(await db.ImageMembers.Where(m => m.ImageId == image.Id).OrderBy(m => m.TenantId).Select(m => m.TenantId).ToListAsync(cancellationToken));
        }
        return message;
    }

    /// <summary>What the caller may see: its own images, public ACTIVE ones; operators every image.</summary>
    public async Task<ListImagesResponse> ListAsync(Caller caller, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var images = await Visible(db, caller).OrderBy(i => i.Name).ThenBy(i => i.Id).ToListAsync(cancellationToken);
        return new ListImagesResponse { Images = { images.Select(ApiMapping.ToProto) } };
    }

    /// <summary>
    /// Deleting an image a VM still uses is refused (FAILED_PRECONDITION), not deferred: the
    /// node's copy backs the VM's disk, and a refusal tells the owner what still depends on it.
    /// The nodes' copies go next (<see cref="ImageCopyPurger"/>).
    /// </summary>
    public async Task<Image> DeleteAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var image = await LockAsync(db, caller, id, exclusive: true, cancellationToken);
        RequireOwner(caller, image, "delete");
        var users = await db.Vms.CountAsync(v => v.ImageId == image.Id && v.State != VmStates.Deleted, cancellationToken);
        if (users > 0)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Image '{id}' is used by {users} VM(s); delete them first.");
        }
        await QuotaLedger.ReleaseAsync((NpgsqlTransaction)transaction.GetDbTransaction(), image.ProjectId,
            QuotaUsage.OneImage with { ImageGb = image.Stored ? QuotaUsage.ImageFile(image.SizeBytes).ImageGb : 0 }, cancellationToken);
        image.State = ImageStates.Deleted;
        image.Stored = false;
        image.UploadId = null;
        image.UpdatedAt = time.GetUtcNow();
        db.Images.Update(image);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        files.Delete(image.Id);
        copies.Wake();
        return ApiMapping.ToProto(image);
    }

    /// <summary>
    /// Streams an upload into the store. The image is SAVING meanwhile (one upload at a time); the
    /// bytes land in a staging file that becomes the image's file only once size, SHA-256 and
    /// format are right. A refusal puts the image in ERROR (with the reason) and keeps no byte;
    /// a new upload may follow.
    /// </summary>
    public async Task<Image> UploadAsync(Caller caller, string id, Stream body, long? contentLength, CancellationToken cancellationToken)
    {
        caller.RequireWrite();
        var max = options.Value.MaxUploadBytes;
        if (contentLength > max)
        {
            throw TooLarge(max);
        }
        if (contentLength == 0)
        {
            throw ApiException.Invalid("The upload is empty.");
        }
        ImageEntity image;
        await using (var db = await contexts.CreateDbContextAsync(cancellationToken))
        {
            image = await FindVisibleAsync(db, caller, id, cancellationToken);
        }
        RequireOwner(caller, image, "upload");
        var uploadId = Guid.NewGuid();
        if (!await ClaimUploadAsync(image.Id, uploadId, cancellationToken))
        {
            throw new ApiException(StatusCode.FailedPrecondition, image.State == ImageStates.Saving
                ? $"Image '{id}' is being uploaded already."
                : $"Image '{id}' is {image.State}; only a QUEUED or ERROR image takes an upload.");
        }
        var staging = files.StagingPath(image.Id, uploadId);
        try
        {
            var received = await files.ReceiveAsync(staging, body, image.Format, max, cancellationToken);
            var refusal = received.TooLarge ? $"The upload is larger than {max} bytes."
                : received.Sha256 != image.Sha256 ? $"The upload's SHA-256 is {received.Sha256}, not the expected {image.Sha256}."
                : received.Inspection.Error;
            if (refusal is not null)
            {
                await FailUploadAsync(image.Id, uploadId, refusal, CancellationToken.None);
                var failure = received.TooLarge ? TooLarge(max) : ApiException.Invalid(refusal);
                throw failure;
            }
            var (finished, overQuota) = await FinishUploadAsync(image, uploadId, received.Bytes, received.Inspection.VirtualSizeBytes, staging, cancellationToken);
            if (overQuota is not null)
            {
                await FailUploadAsync(image.Id, uploadId, overQuota.Message, CancellationToken.None);
                throw overQuota.ToApi();
            }
            if (!finished)
            {
                // Deleted (or taken over) meanwhile: the file is not the image's any more.
                files.DeleteUnlessActive(image.Id, await StateAsync(image.Id, CancellationToken.None));
                throw new ApiException(StatusCode.Aborted, $"Image '{id}' changed while it was being uploaded.");
            }
            Log.Uploaded(logger, image.Id, caller.ProjectId, received.Bytes);
        }
        catch (Exception e) when (e is not ApiException)
        {
            // The client went away, or the disk failed: nothing of the upload stays.
            await FailUploadAsync(image.Id, uploadId, "The upload was interrupted: " + e.Message, CancellationToken.None);
            throw;
        }
        finally
        {
            File.Delete(staging);
        }
        await using var read = await contexts.CreateDbContextAsync(cancellationToken);
        return ApiMapping.ToProto(await read.Images.AsNoTracking().SingleAsync(i => i.Id == image.Id, cancellationToken));
    }

    /// <summary>
    /// Checks, in a VM create's transaction, that the caller may boot <paramref name="imageId"/>
    /// with a disk of <paramref name="diskGb"/>; the share lock keeps the image from being deleted
    /// before that transaction commits the VM that uses it.
    /// </summary>
    public static async Task RequireUsableAsync(LedgerDbContext db, Caller caller, string imageId, long diskGb, CancellationToken cancellationToken)
    {
        var image = await LockAsync(db, caller, imageId, exclusive: false, cancellationToken);
        if (image.State != ImageStates.Active)
        {
            throw new ApiException(StatusCode.FailedPrecondition, $"Image '{imageId}' is {image.State}; only an ACTIVE image can be booted.");
        }
        var needed = Math.Max(image.MinDiskGb * GiB, image.VirtualSizeBytes);
        if (diskGb * GiB < needed)
        {
            throw ApiException.Invalid($"Image '{imageId}' needs a disk of at least {(needed + GiB - 1) / GiB} GB; the flavor has {diskGb}.");
        }
    }

    /// <summary>
    /// What the caller may see: its own images, public ACTIVE ones, ACTIVE ones shared with its
    /// tenant; operators every image. Anything else does not exist for the caller.
    /// </summary>
    internal static IQueryable<ImageEntity> Visible(LedgerDbContext db, Caller caller)
    {
        var images = db.Images.AsNoTracking().Where(i => i.State != ImageStates.Deleted);
        return caller.IsOperator
            ? images
            : images.Where(i => i.ProjectId == caller.ProjectId
                || (i.State == ImageStates.Active && (i.Visibility == ImageVisibilities.Public
                    || (i.Visibility == ImageVisibilities.Shared && db.ImageMembers.Any(m => m.ImageId == i.Id && m.TenantId == caller.ProjectId)))));
    }

    private static async Task<ImageEntity> FindVisibleAsync(LedgerDbContext db, Caller caller, string id, CancellationToken cancellationToken)
        => IsSafeId(id) ? await Visible(db, caller).SingleOrDefaultAsync(i => i.Id == id, cancellationToken) ?? throw NotFound(id) : throw NotFound(id);

    /// <summary>The row, locked, if the caller may see it; the same NOT_FOUND as for no row otherwise.</summary>
    private static async Task<ImageEntity> LockAsync(LedgerDbContext db, Caller caller, string id, bool exclusive, CancellationToken cancellationToken)
    {
        if (!IsSafeId(id))
        {
            throw NotFound(id);
        }
        var query = exclusive
            ? db.Images.FromSql($"SELECT * FROM images WHERE id = {id} FOR UPDATE")
            : db.Images.FromSql($"SELECT * FROM images WHERE id = {id} FOR SHARE");
        var rows = await query.AsNoTracking().ToListAsync(cancellationToken);
        // The same rule as Visible, on the row just locked.
        return rows is [var image] && await Visible(db, caller).AnyAsync(i => i.Id == image.Id, cancellationToken) ? image : throw NotFound(id);
    }

    private static bool IsSafeId(string id) => id.Length is > 0 and <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    private static ApiException NotFound(string id) => ApiException.NotFound("Image", id.Length <= 64 ? id : id[..64] + "...");

    /// <summary>A public image is visible to every tenant, but only its owner (or an operator) changes it.</summary>
    private static void RequireOwner(Caller caller, ImageEntity image, string verb)
    {
        if (!caller.IsOperator && image.ProjectId != caller.ProjectId)
        {
            throw new ApiException(StatusCode.PermissionDenied, $"Only the owner of image '{image.Id}' may {verb} it.");
        }
    }

    private static ApiException TooLarge(long max)
        => new(StatusCode.InvalidArgument, $"The upload is larger than Images:MaxUploadBytes ({max} bytes).", new Dictionary<string, object?> { ["httpStatus"] = 413 });

    private static void Validate(CreateImageRequest request)
    {
        if (request.Name.Length is 0 or > MaxNameLength || request.Name.Any(char.IsControl))
        {
            throw ApiException.Invalid($"name is required: 1-{MaxNameLength} characters, no control characters.");
        }
        if (request.Format is not ("raw" or "qcow2"))
        {
            throw ApiException.Invalid($"format '{Truncate(request.Format)}' is not supported: use raw or qcow2.");
        }
        if (!Sha256Hex().IsMatch(request.Sha256))
        {
            throw ApiException.Invalid("sha256 must be 64 lowercase hexadecimal digits: the SHA-256 of the file to upload.");
        }
        if (request.MinDiskGb is < 0 or > Catalog.CatalogService.MaxDiskGb)
        {
            throw ApiException.Invalid($"min_disk_gb must be between 0 and {Catalog.CatalogService.MaxDiskGb}, not {request.MinDiskGb}.");
        }
        if (request.Visibility is not ("" or ImageVisibilities.Private or ImageVisibilities.Shared or ImageVisibilities.Public))
        {
            throw ApiException.Invalid($"visibility '{Truncate(request.Visibility)}' is not one of private, shared, public.");
        }
        VmValidation.RequireIdempotencyKey(request.IdempotencyKey.Length == 0 ? null : request.IdempotencyKey);
    }

    private static string Truncate(string value) => value.Length <= 32 ? value : value[..32] + "...";

    private static async Task<Image?> FindRetryAsync(LedgerDbContext db, Caller caller, string key, CreateImageRequest request, string visibility, CancellationToken cancellationToken)
    {
        var earlier = await db.Images.AsNoTracking().SingleOrDefaultAsync(i => i.ProjectId == caller.ProjectId && i.IdempotencyKey == key, cancellationToken);
        if (earlier is null)
        {
            return null;
        }
        if (earlier.Name != request.Name || earlier.Format != request.Format || earlier.Sha256 != request.Sha256
            || earlier.MinDiskGb != request.MinDiskGb || earlier.Visibility != visibility)
        {
            throw new ApiException(StatusCode.FailedPrecondition, "This Idempotency-Key was used for another image create.", new Dictionary<string, object?> { ["httpStatus"] = 409 });
        }
        return ApiMapping.ToProto(earlier);
    }

    private async Task<bool> ClaimUploadAsync(string id, Guid uploadId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            UPDATE images SET state = 'SAVING', upload_id = $2, error = NULL, updated_at = $3
             WHERE id = $1 AND (state IN ('QUEUED', 'ERROR') OR (state = 'SAVING' AND updated_at < $4))
            """);
        var now = time.GetUtcNow();
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = uploadId });
        command.Parameters.Add(new NpgsqlParameter { Value = now });
        command.Parameters.Add(new NpgsqlParameter { Value = now - options.Value.StaleUploadAfter });
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>
    /// Makes the upload the image's, ACTIVE, and charges its file to the tenant's image_gb quota,
    /// in one transaction. Not finished when the image was deleted or taken over meanwhile; the
    /// refusal when the quota does not allow the file (nothing then changes).
    /// </summary>
    private async Task<(bool Finished, QuotaExceededException? OverQuota)> FinishUploadAsync(ImageEntity image, Guid uploadId, long bytes, long virtualSize, string staging, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            """
            UPDATE images SET state = 'ACTIVE', stored = true, upload_id = NULL, error = NULL,
                   size_bytes = $3, virtual_size_bytes = $4, updated_at = $5
             WHERE id = $1 AND state = 'SAVING' AND upload_id = $2
            """, connection, transaction);
        command.Parameters.Add(new NpgsqlParameter { Value = image.Id });
        command.Parameters.Add(new NpgsqlParameter { Value = uploadId });
        command.Parameters.Add(new NpgsqlParameter { Value = bytes });
        command.Parameters.Add(new NpgsqlParameter { Value = virtualSize });
        command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
        if (await command.ExecuteNonQueryAsync(cancellationToken) != 1)
        {
            return (false, null);
        }
        try
        {
            await QuotaLedger.ChargeAsync(transaction, image.ProjectId, QuotaUsage.ImageFile(bytes), cancellationToken);
        }
        catch (QuotaExceededException e)
        {
            return (false, e);
        }
        // The file takes the image's name before the row says ACTIVE: a pull never finds an
        // ACTIVE image without its file.
        files.Publish(staging, image.Id);
        await transaction.CommitAsync(cancellationToken);
        return (true, null);
    }

    private static async Task ChargeAsync(NpgsqlTransaction transaction, string projectId, QuotaUsage usage, CancellationToken cancellationToken)
    {
        try
        {
            await QuotaLedger.ChargeAsync(transaction, projectId, usage, cancellationToken);
        }
        catch (QuotaExceededException e)
        {
            throw e.ToApi();
        }
    }

    private async Task FailUploadAsync(string id, Guid uploadId, string error, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "UPDATE images SET state = 'ERROR', upload_id = NULL, error = $3, updated_at = $4 WHERE id = $1 AND state = 'SAVING' AND upload_id = $2");
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        command.Parameters.Add(new NpgsqlParameter { Value = uploadId });
        command.Parameters.Add(new NpgsqlParameter { Value = error });
        command.Parameters.Add(new NpgsqlParameter { Value = time.GetUtcNow() });
        await command.ExecuteNonQueryAsync(cancellationToken);
        Log.UploadRefused(logger, id, error);
    }

    private async Task<string?> StateAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT state FROM images WHERE id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 7001, Level = LogLevel.Information, Message = "Image {ImageId} of {ProjectId} uploaded: {Bytes} bytes")]
        public static partial void Uploaded(ILogger logger, string imageId, string projectId, long bytes);

        [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Upload of image {ImageId} refused: {Reason}")]
        public static partial void UploadRefused(ILogger logger, string imageId, string reason);
    }
}
