using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Cloud.Controller.Data.Migrations;

/// <summary>
/// Images as part of each tenant's quota (docs/design/007-tenancy-and-quotas.md): how many
/// images it may own and how many GiB their files may take, next to the other quotas and
/// charged the same way. Existing tenants get 50 images (what the one setting for all tenants,
/// Images:MaxImagesPerTenant, allowed by default) and 100 GiB, and their usage as it stands.
/// Written by hand (docs/design/002).
/// </summary>
[DbContext(typeof(LedgerDbContext))]
[Migration("2026112360000_TenantImageQuota")]
internal sealed class TenantImageQuota : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            ALTER TABLE tenants
                ADD COLUMN max_images integer NOT NULL DEFAULT 50,
                ADD COLUMN max_image_gb bigint NOT NULL DEFAULT 100,
                ADD COLUMN used_images integer NOT NULL DEFAULT 0,
                ADD COLUMN used_image_gb bigint NOT NULL DEFAULT 0;
            ALTER TABLE tenants
                ALTER COLUMN max_images DROP DEFAULT,
                ALTER COLUMN max_image_gb DROP DEFAULT,
                ALTER COLUMN used_images DROP DEFAULT,
                ALTER COLUMN used_image_gb DROP DEFAULT;

            UPDATE tenants AS t
               SET used_images = u.images, used_image_gb = u.image_gb
              FROM (SELECT project_id, count(*) AS images,
                           coalesce(sum(CASE WHEN stored THEN (size_bytes + 1073741823) / 1073741824 ELSE 0 END), 0) AS image_gb
                      FROM images WHERE state <> 'DELETED' GROUP BY project_id) AS u
             WHERE u.project_id = t.id;

            ALTER TABLE tenants DROP CONSTRAINT ck_tenants_max;
            ALTER TABLE tenants ADD CONSTRAINT ck_tenants_max CHECK (max_instances >= 0 AND max_vcpus >= 0 AND max_memory_mb >= 0 AND max_disk_gb >= 0 AND max_snapshots >= 0 AND max_images >= 0 AND max_image_gb >= 0);
            ALTER TABLE tenants DROP CONSTRAINT ck_tenants_used;
            ALTER TABLE tenants ADD CONSTRAINT ck_tenants_used CHECK (used_instances >= 0 AND used_vcpus >= 0 AND used_memory_mb >= 0 AND used_disk_gb >= 0 AND used_snapshots >= 0 AND used_images >= 0 AND used_image_gb >= 0);
            """);

    protected override void Down(MigrationBuilder migrationBuilder)
        => migrationBuilder.Sql("""
            ALTER TABLE tenants DROP CONSTRAINT ck_tenants_used;
            ALTER TABLE tenants ADD CONSTRAINT ck_tenants_used CHECK (used_instances >= 0 AND used_vcpus >= 0 AND used_memory_mb >= 0 AND used_disk_gb >= 0 AND used_snapshots >= 0);
            ALTER TABLE tenants DROP CONSTRAINT ck_tenants_max;
            ALTER TABLE tenants ADD CONSTRAINT ck_tenants_max CHECK (max_instances >= 0 AND max_vcpus >= 0 AND max_memory_mb >= 0 AND max_disk_gb >= 0 AND max_snapshots >= 0);
            ALTER TABLE tenants DROP COLUMN used_image_gb, DROP COLUMN used_images, DROP COLUMN max_image_gb, DROP COLUMN max_images;
            """);
}
