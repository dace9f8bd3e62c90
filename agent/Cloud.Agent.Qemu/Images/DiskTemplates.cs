using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Cloud.Agent.Qemu;

/// <summary>
/// Fresh VM disks (a blank qcow2, or a qcow2 overlay on an image) copied from a template that
/// qemu-img made once for the same size and backing file. A new disk holds no data, only its
/// header and empty tables, so the copy is byte for byte what qemu-img would write, without
/// starting qemu-img for every VM: that process start was most of a create's own cost.
/// </summary>
internal sealed class DiskTemplates(string directory, QemuImg qemuImg)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    public Task CreateBlankAsync(string path, long sizeBytes, CancellationToken cancellationToken)
        => CopyAsync(path, "blank|" + sizeBytes.ToString(CultureInfo.InvariantCulture),
            (template, ct) => qemuImg.CreateBlankAsync(template, sizeBytes, ct), cancellationToken);

    public Task CreateOverlayAsync(string path, string backingPath, string backingFormat, long sizeBytes, CancellationToken cancellationToken)
        => CopyAsync(path, $"overlay|{backingFormat}|{sizeBytes.ToString(CultureInfo.InvariantCulture)}|{backingPath}",
            (template, ct) => qemuImg.CreateOverlayAsync(template, backingPath, backingFormat, sizeBytes, ct), cancellationToken);

    private async Task CopyAsync(string path, string key, Func<string, CancellationToken, Task> make, CancellationToken cancellationToken)
    {
        var template = Path.Combine(directory, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..32] + ".qcow2");
        if (!File.Exists(template))
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (!File.Exists(template))
                {
                    Directory.CreateDirectory(directory);
                    if (!OperatingSystem.IsWindows())
                    {
                        // Templates name the images they overlay: no guest uid lists or reads them.
                        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                    }
                    var staging = template + ".tmp";
                    File.Delete(staging);
                    await make(staging, cancellationToken).ConfigureAwait(false);
                    // Published whole or not at all: a crash never leaves a half-written template.
                    File.Move(staging, template, overwrite: true);
                }
            }
            finally
            {
                _gate.Release();
            }
        }
        File.Copy(template, path, overwrite: false);
    }
}
