using Cloud.Contracts.Trust;

namespace Cloud.Controller.Trust;

/// <summary>
/// Grants one node a read of another's: a VM's snapshots for a move, an image for a copy
/// (<see cref="PeerGrant"/>). Valid as long as the longest transfer may take.
/// </summary>
internal sealed class PeerGrants(ControllerCertificates certificates, TimeProvider time)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(2);

    /// <summary>Node <paramref name="reader"/> may read VM <paramref name="vmId"/>'s snapshots from node <paramref name="holder"/>.</summary>
    public string ForSnapshots(string reader, string holder, Guid vmId)
        => new PeerGrant(reader, holder, PeerGrant.VmKind, vmId.ToString("N"), time.GetUtcNow() + Lifetime).Sign(certificates.Own);

    /// <summary>Node <paramref name="reader"/> may read image <paramref name="imageId"/> from node <paramref name="holder"/>'s store.</summary>
    public string ForImage(string reader, string holder, string imageId)
        => new PeerGrant(reader, holder, PeerGrant.ImageKind, imageId, time.GetUtcNow() + Lifetime).Sign(certificates.Own);
}
