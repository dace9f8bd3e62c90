using System.Text.Json;
using System.Text.Json.Nodes;
using Cloud.Agent.Hypervisor;
using Cloud.Contracts.Agent.V1;
using Cloud.Qmp;

namespace Cloud.Agent.Qemu;

public sealed partial class QemuHypervisor
{
    public async Task<Vm> ResizeVmAsync(string vmId, VmShape shape, bool allowCold, CancellationToken cancellationToken)
    {
        VmSpecValidator.ValidateShape(shape);
        await EnsureInitializedAsync(cancellationToken).ConfigureAwait(false);
        var (vm, scope) = await LockAsync(vmId, cancellationToken).ConfigureAwait(false);
        using (scope)
        {
            var current = vm.Spec.Shape;
            var target = new VmShape
            {
                Vcpus = shape.Vcpus,
                MemoryMb = shape.MemoryMb,
                DiskGb = shape.DiskGb,
                // 0 keeps the current bound, raised if the new size needs it.
                MaxVcpus = shape.MaxVcpus != 0 ? shape.MaxVcpus : Math.Max(current.MaxVcpus, shape.Vcpus),
                MaxMemoryMb = shape.MaxMemoryMb != 0 ? shape.MaxMemoryMb : Math.Max(current.MaxMemoryMb, shape.MemoryMb),
            };
            if (target.DiskGb < current.DiskGb)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"The disk of VM {vmId} cannot shrink from {current.DiskGb} GB to {target.DiskGb} GB.");
            }
            if (vm.State is VmState.Incoming or VmState.Migrating or VmState.Stopping or VmState.Starting)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition, $"Cannot resize VM {vmId} while it is {vm.State}.");
            }
            if (vm.Process is not { } process)
            {
                // Not running: the new shape simply applies at the next start.
                await GrowDiskFileAsync(vm, target, cancellationToken).ConfigureAwait(false);
                SaveSpec(vm, target);
                PublishEvent(vm, "resized");
                return Describe(vm, withUsage: false);
            }
            var refusals = WhyNotLive(current, target, process.Runtime);
            if (refusals.Count == 0)
            {
                await ResizeLiveAsync(vm, process, current, target, cancellationToken).ConfigureAwait(false);
                PublishEvent(vm, "resized live");
                return Describe(vm, withUsage: false);
            }
            if (!allowCold)
            {
                throw new HypervisorException(HypervisorError.FailedPrecondition,
                    $"VM {vmId} cannot be resized live: {string.Join("; ", refusals)}. Allow a cold resize (restart) to apply it.");
            }
            await StopProcessAsync(vm, force: false, _options.ColdResizeStopTimeout, cancellationToken).ConfigureAwait(false);
            await GrowDiskFileAsync(vm, target, cancellationToken).ConfigureAwait(false);
            SaveSpec(vm, target);
            await LaunchAsync(vm, incoming: false, cancellationToken).ConfigureAwait(false);
            PublishEvent(vm, "resized cold");
            return Describe(vm, withUsage: false);
        }
    }

    /// <summary>What in the change needs a restart; empty when all of it can be done on the running guest.</summary>
    internal List<string> WhyNotLive(VmShape current, VmShape target, RuntimeRecord runtime)
    {
        var reasons = new List<string>();
        if (target.MaxVcpus != current.MaxVcpus)
        {
            reasons.Add($"max_vcpus is fixed at {current.MaxVcpus} while running");
        }
        if (target.MaxMemoryMb != current.MaxMemoryMb)
        {
            reasons.Add($"max_memory_mb is fixed at {current.MaxMemoryMb} while running");
        }
        if (target.Vcpus < current.Vcpus)
        {
            reasons.Add("vCPUs cannot be removed from a running guest");
        }
        var plugged = runtime.BootMemoryMb + runtime.Dimms.Sum(d => d.SizeMb);
        if (target.MemoryMb > plugged)
        {
            if (current.MaxMemoryMb <= runtime.BootMemoryMb)
            {
                reasons.Add("the VM was started without memory hotplug slots (max_memory_mb equal to memory_mb)");
            }
            else if (runtime.Dimms.Count >= _options.MemorySlots)
            {
                reasons.Add($"all {_options.MemorySlots} memory hotplug slots are used");
            }
        }
        return reasons;
    }

    private async Task ResizeLiveAsync(QemuVm vm, QemuProcess process, VmShape current, VmShape target, CancellationToken cancellationToken)
    {
        var qmp = process.Qmp;
        var runtime = process.Runtime;
        try
        {
            if (target.Vcpus > current.Vcpus)
            {
                await HotplugCpusAsync(qmp, runtime, target.Vcpus, cancellationToken).ConfigureAwait(false);
            }
            var plugged = runtime.BootMemoryMb + runtime.Dimms.Sum(d => d.SizeMb);
            if (target.MemoryMb > plugged)
            {
                var index = runtime.Dimms.Count == 0 ? 0 : runtime.Dimms.Max(d => int.Parse(d.Id["dimm".Length..], System.Globalization.CultureInfo.InvariantCulture)) + 1;
                var id = "dimm" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var size = target.MemoryMb - plugged;
                await qmp.ExecuteAsync("object-add", new JsonObject
                {
                    ["qom-type"] = "memory-backend-ram",
                    ["id"] = "mem-" + id,
                    ["size"] = size * 1024 * 1024,
                }, cancellationToken).ConfigureAwait(false);
                try
                {
                    await qmp.ExecuteAsync("device_add", new JsonObject { ["driver"] = "pc-dimm", ["id"] = id, ["memdev"] = "mem-" + id }, cancellationToken).ConfigureAwait(false);
                }
                catch (QmpCommandException)
                {
                    await qmp.ExecuteAsync("object-del", new JsonObject { ["id"] = "mem-" + id }, cancellationToken).ConfigureAwait(false);
                    throw;
                }
                runtime.Dimms.Add(new DimmRecord { Id = id, SizeMb = size });
                plugged += size;
            }
            if (target.MemoryMb != runtime.BalloonTargetMb || target.MemoryMb < plugged)
            {
                // Below what is plugged, the balloon takes the difference back from the guest; at or
                // above it, the balloon is let out completely.
                await qmp.ExecuteAsync("balloon", new JsonObject { ["value"] = Math.Min(target.MemoryMb, plugged) * 1024 * 1024 }, cancellationToken).ConfigureAwait(false);
                runtime.BalloonTargetMb = target.MemoryMb;
            }
            if (target.DiskGb > current.DiskGb && File.Exists(vm.Paths.DiskFile))
            {
                await qmp.ExecuteAsync("block_resize", new JsonObject { ["node-name"] = QemuCommandLine.DiskNode, ["size"] = target.DiskGb * 1024L * 1024 * 1024 }, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (QmpCommandException ex)
        {
            SaveRuntime(vm, runtime);
            throw new HypervisorException(HypervisorError.FailedPrecondition, $"QEMU refused the live resize of VM {vm.Id}: {ex.Description}", ex);
        }
        SaveRuntime(vm, runtime);
        SaveSpec(vm, target);
    }

    private static async Task HotplugCpusAsync(QmpClient qmp, RuntimeRecord runtime, int targetVcpus, CancellationToken cancellationToken)
    {
        var reply = await qmp.ExecuteAsync("query-hotpluggable-cpus", null, cancellationToken).ConfigureAwait(false);
        if (reply.ValueKind != JsonValueKind.Array)
        {
            throw new HypervisorException(HypervisorError.Internal, "query-hotpluggable-cpus did not return a list.");
        }
        var present = 0;
        var free = new List<(string Type, JsonElement Props, long Socket, long Core, long Thread)>();
        foreach (var slot in reply.EnumerateArray())
        {
            if (slot.TryGetProperty("qom-path", out _))
            {
                present++;
                continue;
            }
            if (!slot.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String
                || !slot.TryGetProperty("props", out var props) || props.ValueKind != JsonValueKind.Object)
            {
                throw new HypervisorException(HypervisorError.Internal, $"query-hotpluggable-cpus returned a malformed slot: {slot}");
            }
            free.Add((type.GetString()!, props, Prop(props, "socket-id"), Prop(props, "core-id"), Prop(props, "thread-id")));
        }
        var needed = targetVcpus - present;
        if (needed > free.Count)
        {
            throw new HypervisorException(HypervisorError.FailedPrecondition, $"Only {free.Count} vCPU slots are free; {needed} are needed.");
        }
        foreach (var slot in free.OrderBy(s => s.Socket).ThenBy(s => s.Core).ThenBy(s => s.Thread).Take(Math.Max(needed, 0)))
        {
            var id = FormattableString.Invariant($"vcpu-s{slot.Socket}-c{slot.Core}-t{slot.Thread}");
            var args = new JsonObject { ["driver"] = slot.Type, ["id"] = id };
            foreach (var prop in slot.Props.EnumerateObject())
            {
                args[prop.Name] = JsonNode.Parse(prop.Value.GetRawText());
            }
            await qmp.ExecuteAsync("device_add", args, cancellationToken).ConfigureAwait(false);
            runtime.HotpluggedCpus.Add(id);
        }
    }

    private static long Prop(JsonElement props, string name)
        => props.TryGetProperty(name, out var value) && value.TryGetInt64(out var n) ? n : 0;

    private async Task GrowDiskFileAsync(QemuVm vm, VmShape target, CancellationToken cancellationToken)
    {
        if (target.DiskGb > vm.Spec.Shape.DiskGb && File.Exists(vm.Paths.DiskFile))
        {
            try
            {
                var info = await _qemuImg.InfoAsync(vm.Paths.DiskFile, "qcow2", forceShare: false, cancellationToken).ConfigureAwait(false);
                var bytes = target.DiskGb * 1024L * 1024 * 1024;
                if (bytes > info.VirtualSize)
                {
                    await _qemuImg.ResizeAsync(vm.Paths.DiskFile, "qcow2", bytes, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (HypervisorToolException ex)
            {
                throw new HypervisorException(HypervisorError.Internal, $"Cannot grow the disk of VM {vm.Id}: {ex.Message}", ex);
            }
        }
    }

    private static void SaveSpec(QemuVm vm, VmShape shape)
    {
        var spec = vm.Spec.Clone();
        spec.Shape = shape;
        WriteAtomically(vm.Paths.SpecFile, SpecFormatter.Format(spec));
        lock (vm.StateLock)
        {
            vm.Spec = spec;
        }
    }
}
