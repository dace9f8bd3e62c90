using System.Buffers.Binary;

namespace Cloud.Controller.Images;

/// <summary>What the first bytes of an uploaded disk say it is.</summary>
internal sealed record DiskInspection(string? Error, long VirtualSizeBytes);

/// <summary>
/// Checks that an upload is the format it claims, from its header, without running any tool on
/// a tenant's file. A qcow2 must have a qcow2 header (version 2 or 3) that names no backing
/// file and no external data file: either would let the guest's disk read another file of the
/// node. A raw image must not look like any format QEMU probes for: opened as raw it would be
/// safe, but anything that probes formats (an operator's qemu-img, a tool without -f) would
/// follow its references, such as a VMDK descriptor naming a host file as its extent.
/// </summary>
internal static class DiskFormatInspector
{
    /// <summary>Bytes of the head inspected: as many as QEMU reads when it probes a format.</summary>
    public const int HeaderBytes = 2048;

    /// <summary>Bytes of the tail inspected: a VHD's footer.</summary>
    public const int TrailerBytes = 512;

    private const uint Qcow2Magic = 0x514649fb; // "QFI\xfb"
    /// <summary>The fixed part of a qcow2 v3 header, which holds the incompatible feature bits.</summary>
    private const int Qcow2V3HeaderBytes = 104;

    private const ulong ExternalDataFileBit = 1UL << 2;

    private static ReadOnlySpan<byte> LuksMagic => [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xba, 0xbe];

    public static DiskInspection Inspect(string format, ReadOnlySpan<byte> header, ReadOnlySpan<byte> trailer, long fileBytes)
    {
        var isQcow2 = header.Length >= 4 && BinaryPrimitives.ReadUInt32BigEndian(header) == Qcow2Magic;
        if (format == "raw")
        {
            return isQcow2
                ? new DiskInspection("The file is a qcow2 image, not raw; create the image with format qcow2.", 0)
                : ForeignFormat(header, trailer) is { } found
                    ? new DiskInspection($"The file is {found}, not a raw disk; convert it to raw or qcow2 first (qemu-img convert).", 0)
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
        if (version == 3 && (header.Length < Qcow2V3HeaderBytes || (BinaryPrimitives.ReadUInt64BigEndian(header[72..]) & ExternalDataFileBit) != 0))
        {
            return new DiskInspection("A qcow2 image with an external data file is refused.", 0);
        }
        var virtualSize = BinaryPrimitives.ReadUInt64BigEndian(header[24..]);
        return virtualSize is 0 or > long.MaxValue
            ? new DiskInspection("The qcow2 header gives no usable virtual size.", 0)
            : new DiskInspection(null, (long)virtualSize);
    }

    /// <summary>What else than raw the file's head or tail says it is (a format QEMU would probe), or null.</summary>
    internal static string? ForeignFormat(ReadOnlySpan<byte> header, ReadOnlySpan<byte> trailer)
    {
        if (header.StartsWith("KDMV"u8) || header.StartsWith("COWD"u8))
        {
            return "a VMDK image (sparse extent header)";
        }
        if (IsVmdkDescriptor(header))
        {
            return "a VMDK descriptor (a text file naming other files as its extents)";
        }
        if (header.StartsWith("conectix"u8) || trailer.StartsWith("conectix"u8))
        {
            return "a VHD image (conectix footer)";
        }
        if (header.StartsWith("vhdxfile"u8))
        {
            return "a VHDX image";
        }
        if (header.Length >= 0x44 && BinaryPrimitives.ReadUInt32LittleEndian(header[0x40..]) == 0xbeda107f)
        {
            return "a VDI image";
        }
        if (header.StartsWith("QED\0"u8))
        {
            return "a QED image";
        }
        if (header.StartsWith(LuksMagic))
        {
            return "a LUKS encrypted volume";
        }
        if (header.StartsWith("WithoutFreeSpace"u8) || header.StartsWith("WithouFreSpacExt"u8))
        {
            return "a Parallels image";
        }
        if (header.StartsWith("Bochs Virtual HD Image"u8))
        {
            return "a Bochs image";
        }
        return null;
    }

    /// <summary>
    /// A VMDK text descriptor as QEMU's probe sees one: the "# Disk DescriptorFile" comment, or a
    /// first line (after comments and blank lines) that reads version=1, 2 or 3.
    /// </summary>
    private static bool IsVmdkDescriptor(ReadOnlySpan<byte> header)
    {
        if (header.IndexOf("# Disk DescriptorFile"u8) >= 0)
        {
            return true;
        }
        var rest = header;
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf((byte)'\n');
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? [] : rest[(end + 1)..];
            line = line.TrimStart((byte)' ').TrimEnd((byte)'\r');
            if (line.IsEmpty || line[0] == (byte)'#')
            {
                continue;
            }
            return line.SequenceEqual("version=1"u8) || line.SequenceEqual("version=2"u8) || line.SequenceEqual("version=3"u8);
        }
        return false;
    }
}
