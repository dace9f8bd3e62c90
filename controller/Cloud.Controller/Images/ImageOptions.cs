using Microsoft.Extensions.Options;

namespace Cloud.Controller.Images;

/// <summary>Uploaded images: where their bytes live and how big they may be. Section "Images".</summary>
public sealed class ImageOptions
{
    public const string SectionName = "Images";

    /// <summary>
    /// Folder of the controller's image store. With several controller replicas it must be the
    /// same shared folder on every one (NFS, CephFS, a cloud file share): any replica may take an
    /// upload and any may serve a node's pull. Default .cloud/images under the working directory.
    /// </summary>
    public string StorePath { get; set; } = Path.Combine(".cloud", "images");

    /// <summary>Largest image file accepted, in bytes. Default 20 GiB.</summary>
    public long MaxUploadBytes { get; set; } = 20L * 1024 * 1024 * 1024;

    /// <summary>An upload silent for this long is taken to be dead: another may replace it. Default 1 h.</summary>
    public TimeSpan StaleUploadAfter { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Deadline of a node's pull of an image before a VM is created from it. Default 30 min.</summary>
    public TimeSpan PullTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// How often the nodes' copies of deleted images are asked away (a delete on this replica
    /// asks at once). A node that is down or still uses the image is asked again after this long.
    /// Default 1 min.
    /// </summary>
    public TimeSpan CopyPurgeInterval { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>Every rule names its setting.</summary>
internal sealed class ImageOptionsValidator : IValidateOptions<ImageOptions>
{
    public ValidateOptionsResult Validate(string? name, ImageOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.StorePath))
        {
            failures.Add("Images:StorePath must name a folder.");
        }
        if (options.MaxUploadBytes < 1)
        {
            failures.Add("Images:MaxUploadBytes must be positive.");
        }
        if (options.StaleUploadAfter < TimeSpan.FromMinutes(1))
        {
            failures.Add("Images:StaleUploadAfter must be at least one minute.");
        }
        if (options.PullTimeout < TimeSpan.FromSeconds(10))
        {
            failures.Add("Images:PullTimeout must be at least 10 seconds.");
        }
        if (options.CopyPurgeInterval < TimeSpan.FromSeconds(1))
        {
            failures.Add("Images:CopyPurgeInterval must be at least one second.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
