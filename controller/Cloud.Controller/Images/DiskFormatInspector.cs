using System.Buffers.Binary;

namespace Cloud.Controller.Images;

/// <summary>What the first bytes of an uploaded disk say it is.</summary>
internal sealed record DiskInspection(string? Error, long VirtualSizeBytes);

/// <summary>
/// Checks that an upload is the format it claims, from its header, without running any tool on
/// a tenant's file. A qcow2 must have a qcow2 header (version 2 or 3) that names no backing
/// file and no external data file: either would let the guest's disk read another file of the
/// node. A raw image must not start with a qcow2 header: QEMU told to open it as raw would be
/// safe, but anything that probes formats (an operator's qemu-img) would follow its references.
/// </summary>
internal static class DiskFormatInspector
{
    /// <summary>Bytes of the header inspected: the fixed part of a qcow2 v3 header.</summary>
    public const int HeaderBytes = 104;

    private const uint Qcow2Magic = 0x514649fb; // "QFI\xfb"
    private const ulong ExternalDataFileBit = 1UL << 2;

    public static DiskInspection Inspect(string format, ReadOnlySpan<byte> header, long fileBytes)
    {
        var isQcow2 = header.Length >= 4 && BinaryPrimitives.ReadUInt32BigEndian(header) == Qcow2Magic;
        if (format == "raw")
        {
            return isQcow2
                ? new DiskInspection("The file is a qcow2 image, not raw; create the image with format qcow2.", 0)
                : new DiskInspection(null, fileBytes);
        }
        if (!isQcow2 || header.Length < 72)
        {
            return new DiskInspection("The file is not a qcow2 image (no qcow2 header).", 0);
        }
        var version = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        if (version is not (2 or 3))
        {
            return new DiskInspection($"qcow2 version {version} is not supported.", 0);
        }
        if (BinaryPrimitives.ReadUInt64BigEndian(header[8..]) != 0)
        {
            return new DiskInspection("A qcow2 image with a backing file is refused; flatten it first (qemu-img convert).", 0);
        }
        if (version == 3 && (header.Length < HeaderBytes || (BinaryPrimitives.ReadUInt64BigEndian(header[72..]) & ExternalDataFileBit) != 0))
        {
            return new DiskInspection("A qcow2 image with an external data file is refused.", 0);
        }
        var virtualSize = BinaryPrimitives.ReadUInt64BigEndian(header[24..]);
        return virtualSize is 0 or > long.MaxValue
            ? new DiskInspection("The qcow2 header gives no usable virtual size.", 0)
            : new DiskInspection(null, (long)virtualSize);
    }
}
