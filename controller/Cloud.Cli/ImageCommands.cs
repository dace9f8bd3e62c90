using System.CommandLine;
using System.Security.Cryptography;
using Cloud.Contracts.Compute.V1;
using Spectre.Console;

namespace Cloud.Cli;

/// <summary>cloudctl image create/upload/list/show/delete.</summary>
internal static partial class Commands
{
    private static readonly string[] ImageColumns = ["ID", "NAME", "FORMAT", "STATE", "VISIBILITY", "OWNER", "SIZE_BYTES", "MIN_DISK_GB"];

    private static string[] ImageRow(Image i) => [i.Id, i.Name, i.Format, i.State + (i.Error.Length > 0 ? $" ({i.Error})" : ""), i.Visibility, i.Owner, Str(i.SizeBytes), Str(i.MinDiskGb)];

    private static Command ImageCommands(IAnsiConsole console)
    {
        var image = List<ListImagesResponse, Image>(console, "image", "Disk images VMs boot from", "v1/images", r => r.Images, ImageColumns, ImageRow);
        var id = new Argument<string>("id") { Description = "Image id" };

        var name = new Option<string>("--name") { Description = "Image name", Required = true };
        var format = new Option<string>("--format") { Description = "raw or qcow2", Required = true };
        format.AcceptOnlyFromAmong("raw", "qcow2");
        var sha256 = new Option<string?>("--sha256") { Description = "SHA-256 of the file to upload later (not needed with --file)" };
        var file = new Option<string?>("--file") { Description = "Upload this file right away (its SHA-256 is computed here)" };
        var minDisk = new Option<long>("--min-disk") { Description = "Smallest flavor disk (GB) a VM of this image needs" };
        var visibility = new Option<string>("--visibility") { Description = "private, shared (with the tenants you add) or public (operators only)", DefaultValueFactory = _ => "private" };
        visibility.AcceptOnlyFromAmong("private", "shared", "public");
        var key = new Option<string?>("--idempotency-key") { Description = "Makes a retried create safe" };
        var create = new Command("create", "Create an image (and upload it with --file)") { name, format, sha256, file, minDisk, visibility, key };
        create.SetAction(async (parse, ct) =>
        {
            var path = parse.GetValue(file);
            var digest = parse.GetValue(sha256);
            if ((path is null) == (digest is null))
            {
                throw new CliException("Give --sha256 (upload later) or --file (upload now), one of them.");
            }
            if (path is not null)
            {
                digest = await Sha256OfAsync(path, ct);
            }
            using var api = Api(parse);
            var created = await api.PostAsync<Image>("v1/images", new CreateImageRequest
            {
                Name = parse.GetValue(name)!,
                Format = parse.GetValue(format)!,
                Sha256 = digest!,
                MinDiskGb = parse.GetValue(minDisk),
                Visibility = parse.GetValue(visibility)!,
            }, parse.GetValue(key), ct);
            if (path is not null)
            {
                created = await UploadAsync(console, parse, api, created.Id, path, ct);
            }
            Print(console, parse, created, [created], ImageColumns, ImageRow);
        });

        var source = new Argument<string>("file") { Description = "The image file (raw or qcow2)" };
        var upload = new Command("upload", "Upload an image's file; the image turns ACTIVE once its SHA-256 and format check out") { id, source };
        upload.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var uploaded = await UploadAsync(console, parse, api, parse.GetValue(id)!, parse.GetValue(source)!, ct);
            Print(console, parse, uploaded, [uploaded], ImageColumns, ImageRow);
        });

        var show = new Command("show", "Show an image") { id };
        show.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var shown = await api.GetAsync<Image>($"v1/images/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            Print(console, parse, shown, [shown], [.. ImageColumns, "SHA256"], i => [.. ImageRow(i), i.Sha256]);
        });

        var delete = new Command("delete", "Delete an image no VM uses") { id };
        delete.SetAction(async (parse, ct) =>
        {
            using var api = Api(parse);
            var deleted = await api.DeleteAsync<Image>($"v1/images/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            Print(console, parse, deleted, [deleted], ImageColumns, ImageRow);
        });

        var tenant = new Argument<string>("tenant") { Description = "Tenant id" };
        foreach (var (verb, method, description) in new[]
        {
            ("share", HttpMethod.Put, "Let a tenant use a shared image"),
            ("unshare", HttpMethod.Delete, "Stop letting a tenant use a shared image"),
        })
        {
            var command = new Command(verb, description) { id, tenant };
            command.SetAction(async (parse, ct) =>
            {
                using var api = Api(parse);
                var path = $"v1/images/{Uri.EscapeDataString(parse.GetValue(id)!)}/members/{Uri.EscapeDataString(parse.GetValue(tenant)!)}";
                var changed = method == HttpMethod.Put ? await api.PutAsync<Image>(path, new ImageMemberRequest(), ct) : await api.DeleteAsync<Image>(path, ct);
                Print(console, parse, changed, [changed], [.. ImageColumns, "MEMBERS"], i => [.. ImageRow(i), string.Join(",", i.Members)]);
            });
            image.Subcommands.Add(command);
        }
        image.Subcommands.Add(create);
        image.Subcommands.Add(upload);
        image.Subcommands.Add(show);
        image.Subcommands.Add(delete);
        return image;
    }

    /// <summary>Streams the file up, with a progress bar on a terminal.</summary>
    private static async Task<Image> UploadAsync(IAnsiConsole console, System.CommandLine.ParseResult parse, ApiClient api, string imageId, string path, CancellationToken ct)
    {
        if (!File.Exists(path))
        {
            throw new CliException($"'{path}' does not exist.");
        }
        var url = $"v1/images/{Uri.EscapeDataString(imageId)}/file";
        if (parse.GetValue(OutputOption) == "table" && console.Profile.Capabilities.Interactive)
        {
            return await console.Progress().AutoClear(true).StartAsync(async context =>
            {
                var task = context.AddTask($"upload {Path.GetFileName(path)}", maxValue: Math.Max(1, new FileInfo(path).Length));
                return await api.UploadFileAsync<Image>(url, path, sent => task.Value = sent, ct);
            });
        }
        return await api.UploadFileAsync<Image>(url, path, _ => { }, ct);
    }

    private static async Task<string> Sha256OfAsync(string path, CancellationToken ct)
    {
        if (!File.Exists(path))
        {
            throw new CliException($"'{path}' does not exist.");
        }
        await using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct));
    }
}
