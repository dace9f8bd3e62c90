using Cloud.Controller.Api;
using Cloud.Controller.Auth;
using Cloud.Controller.Data;
using Cloud.Controller.Quotas;
using Cloud.Controller.Vms;
using Cloud.Contracts.Compute.V1;
using Grpc.Core;
using Google.Protobuf.WellKnownTypes;
using Microsoft.EntityFrameworkCore;

namespace Cloud.Controller.Tenants;

/// <summary>
/// Tenants, their quotas and their API tokens. Operators create and change them; a tenant's
/// token reads its own tenant (with its usage) and its own tokens, and nothing of others:
/// another tenant answers as if it did not exist.
/// </summary>
internal sealed class TenantService(IDbContextFactory<LedgerDbContext> contexts, IdempotentCreates idempotent, TimeProvider time)
{
    public const int MaxTokenTtlDays = 3650;

    /// <summary>The quota of a tenant created without one.</summary>
    public static Quota DefaultQuota => new() { Instances = 10, Vcpus = 20, MemoryMb = 40_960, DiskGb = 500, Snapshots = 20, Images = 50, ImageGb = 100 };

    public async Task<Tenant> CreateAsync(Caller caller, CreateTenantRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("create tenants");
        VmValidation.RequireName(request.Id, "id");
        if (request.Id == TokenAuthenticator.OperatorProject)
        {
            throw ApiException.Invalid($"id '{request.Id}' is reserved for the operators' own project.");
        }
        RequireDisplayName(request.DisplayName);
        var quota = request.Quota ?? DefaultQuota;
        QuotaRules.Validate(quota);
        return await idempotent.RunAsync(caller, request.IdempotencyKey, IdempotentCreates.TenantCreate, request,
            async (db, ct) =>
            {
                var tenant = new TenantEntity { Id = request.Id, DisplayName = request.DisplayName, CreatedAt = time.GetUtcNow() };
                QuotaRules.Apply(tenant, quota, DefaultQuota);
                db.Tenants.Add(tenant);
                // Shares made to this id before the tenant existed were not made to it: they go, in
                // the same save as the tenant row (ImageService.SetMemberAsync accepts any id).
                db.ImageMembers.RemoveRange(await db.ImageMembers.Where(m => m.TenantId == request.Id).ToListAsync(ct));
                try
                {
                    await db.SaveChangesAsync(ct);
                }
                catch (DbUpdateException e) when (e.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation })
                {
                    throw new ApiException(StatusCode.AlreadyExists, $"Tenant '{request.Id}' already exists.");
                }
                return new IdempotentResult<Tenant>(tenant.Id, ApiMapping.ToProto(tenant), null);
            },
            async (db, id, _, ct) => ApiMapping.ToProto(await db.Tenants.AsNoTracking().SingleAsync(t => t.Id == id, ct)),
            cancellationToken);
    }

    public async Task<Tenant> GetAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var tenant = await Visible(db, caller).SingleOrDefaultAsync(t => t.Id == id, cancellationToken)
            ?? throw ApiException.NotFound("Tenant", Shorten(id));
        return ApiMapping.ToProto(tenant);
    }

    public async Task<ListTenantsResponse> ListAsync(Caller caller, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var tenants = await Visible(db, caller).OrderBy(t => t.Id).ToListAsync(cancellationToken);
        return new ListTenantsResponse { Tenants = { tenants.Select(ApiMapping.ToProto) } };
    }

    /// <summary>
    /// Replaces a tenant's quota. Lowering it below the usage is allowed: nothing is taken away,
    /// the tenant only cannot grow until its usage fits again.
    /// </summary>
    public async Task<Tenant> SetQuotaAsync(Caller caller, SetQuotaRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("change quotas");
        var quota = request.Quota ?? throw ApiException.Invalid("quota is required.");
        QuotaRules.Validate(quota);
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        // Only the max_ columns are written, so a concurrent charge of the usage is never lost.
        var updated = await db.Tenants.Where(t => t.Id == request.Tenant).ExecuteUpdateAsync(s => s
            .SetProperty(t => t.MaxInstances, quota.Instances)
            .SetProperty(t => t.MaxVcpus, quota.Vcpus)
            .SetProperty(t => t.MaxMemoryMb, quota.MemoryMb)
            .SetProperty(t => t.MaxDiskGb, quota.DiskGb)
            .SetProperty(t => t.MaxSnapshots, quota.Snapshots)
            // Left out of the request (an older client): unchanged.
            .SetProperty(t => t.MaxImages, t => quota.HasImages ? quota.Images : t.MaxImages)
            .SetProperty(t => t.MaxImageGb, t => quota.HasImageGb ? quota.ImageGb : t.MaxImageGb), cancellationToken);
        if (updated == 0)
        {
            throw ApiException.NotFound("Tenant", Shorten(request.Tenant));
        }
        return ApiMapping.ToProto(await db.Tenants.AsNoTracking().SingleAsync(t => t.Id == request.Tenant, cancellationToken));
    }

    /// <summary>Issues a token; its secret is in this answer only, the database keeps its hash.</summary>
    public async Task<ApiToken> CreateTokenAsync(Caller caller, CreateTokenRequest request, CancellationToken cancellationToken)
    {
        caller.RequireOperator("issue tokens");
        if (request.Role is not (TokenRoles.Member or TokenRoles.Reader or TokenRoles.Operator))
        {
            throw ApiException.Invalid($"role must be '{TokenRoles.Member}', '{TokenRoles.Reader}' or '{TokenRoles.Operator}'.");
        }
        if (request.Role == TokenRoles.Operator ? request.Tenant.Length > 0 : request.Tenant.Length == 0)
        {
            throw ApiException.Invalid(request.Role == TokenRoles.Operator
                ? "An operator token belongs to no tenant: leave tenant empty."
                : "tenant is required for a member or reader token.");
        }
        VmValidation.RequireName(request.Name, "name");
        if (request.TtlDays is < 0 or > MaxTokenTtlDays)
        {
            throw ApiException.Invalid($"ttl_days must be between 0 (never expires) and {MaxTokenTtlDays}.");
        }
        return await idempotent.RunAsync(caller, request.IdempotencyKey, IdempotentCreates.TokenCreate, request,
            async (db, ct) =>
            {
                if (request.Tenant.Length > 0)
                {
                    var tenant = await db.Tenants.AsNoTracking().Where(t => t.Id == request.Tenant).Select(t => new { t.DeletingSince }).SingleOrDefaultAsync(ct)
                        ?? throw ApiException.NotFound("Tenant", Shorten(request.Tenant));
                    if (tenant.DeletingSince is not null)
                    {
                        // Its deletion revoked its tokens; a new one would outlive nothing but the check.
                        throw new ApiException(StatusCode.FailedPrecondition, $"Tenant '{request.Tenant}' is being deleted; it gets no new tokens.",
                            new Dictionary<string, object?> { ["httpStatus"] = 409, ["reason"] = "TENANT_DELETING" });
                    }
                }
                var now = time.GetUtcNow();
                var secret = TokenAuthenticator.NewSecret();
                var token = new ApiTokenEntity
                {
                    Id = Guid.CreateVersion7(),
                    TenantId = request.Tenant.Length > 0 ? request.Tenant : null,
                    Name = request.Name,
                    Role = request.Role,
                    TokenSha256 = TokenAuthenticator.Sha256Hex(secret),
                    CreatedAt = now,
                    ExpiresAt = request.TtlDays > 0 ? now.AddDays(request.TtlDays) : null,
                };
                db.ApiTokens.Add(token);
                await db.SaveChangesAsync(ct);
                var answer = ApiMapping.ToProto(token);
                answer.Secret = secret;
                return new IdempotentResult<ApiToken>(token.Id.ToString(), answer, secret);
            },
            async (db, id, secret, ct) =>
            {
                var tokenId = Guid.Parse(id);
                var answer = ApiMapping.ToProto(await db.ApiTokens.AsNoTracking().SingleAsync(t => t.Id == tokenId, ct));
                // The sealed secret opens only with the key that sealed it: another replica's, or
                // this one's before a restart, leaves the retry with the token but not its secret.
                answer.Secret = secret ?? throw new ApiException(StatusCode.FailedPrecondition,
                    $"Token {id} was already issued for this Idempotency-Key and its secret cannot be shown again here; revoke it and issue another.",
                    new Dictionary<string, object?> { ["httpStatus"] = 409, ["reason"] = "SECRET_ALREADY_ISSUED", ["token"] = id });
                return answer;
            },
            cancellationToken);
    }

    public async Task<ListTokensResponse> ListTokensAsync(Caller caller, ListTokensRequest request, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var tokens = db.ApiTokens.AsNoTracking();
        if (!caller.IsOperator)
        {
            if (request.Tenant.Length > 0 && request.Tenant != caller.ProjectId)
            {
                throw ApiException.NotFound("Tenant", Shorten(request.Tenant));
            }
            tokens = tokens.Where(t => t.TenantId == caller.ProjectId);
        }
        else if (request.Tenant.Length > 0)
        {
            tokens = tokens.Where(t => t.TenantId == request.Tenant);
        }
        var list = await tokens.OrderBy(t => t.CreatedAt).ToListAsync(cancellationToken);
        return new ListTokensResponse { Tokens = { list.Select(ApiMapping.ToProto) } };
    }

    /// <summary>Revokes a token at once (the next call with it is refused); revoking again changes nothing.</summary>
    public async Task<ApiToken> RevokeTokenAsync(Caller caller, string id, CancellationToken cancellationToken)
    {
        caller.RequireOperator("revoke tokens");
        var guid = VmValidation.RequireId(id, "Token");
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var now = time.GetUtcNow();
        await db.ApiTokens.Where(t => t.Id == guid && t.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, now), cancellationToken);
        var token = await db.ApiTokens.AsNoTracking().SingleOrDefaultAsync(t => t.Id == guid, cancellationToken)
            ?? throw ApiException.NotFound("Token", id);
        return ApiMapping.ToProto(token);
    }

    private static IQueryable<TenantEntity> Visible(LedgerDbContext db, Caller caller)
        => caller.IsOperator ? db.Tenants.AsNoTracking() : db.Tenants.AsNoTracking().Where(t => t.Id == caller.ProjectId);

    private static void RequireDisplayName(string name)
    {
        if (name.Length > 200 || name.Any(char.IsControl))
        {
            throw ApiException.Invalid("display_name must be at most 200 characters, without control characters.");
        }
    }

    private static string Shorten(string value) => value.Length <= 64 ? value : value[..64] + "...";
}
