using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Cloud.Agent.Qemu.Tests.Support;

/// <summary>
/// A tiny Linux guest: Debian's kernel, taken out of its .deb, and an initramfs of busybox-static
/// whose /init prints "tick=N cpus=C memtotal_kb=M" to ttyS0 every half second. Built once and
/// cached in a temp folder shared by every test (and later runs). The virtio modules of the same
/// .deb go in too, so that the guest has a balloon and a disk driver (Debian builds virtio as
/// modules); the guest writes its tick into the first sector of its disk as well.
/// </summary>
internal static partial class LinuxGuest
{
    // Bump when the init script changes, so a stale cache is rebuilt.
    private const string Version = "7";

    private static readonly SemaphoreSlim Gate = new(1, 1);

    public static string CacheDirectory { get; } = Path.Combine(Path.GetTempPath(), "cloud-qemu-test-guest");

    /// <summary>The modules /init loads, in dependency order, under kernel/drivers of the kernel package.</summary>
    private static readonly string[] ModulePaths =
        ["virtio/virtio_ring", "virtio/virtio", "virtio/virtio_pci_modern_dev", "virtio/virtio_pci_legacy_dev", "virtio/virtio_pci", "virtio/virtio_balloon", "block/virtio_blk"];

    private static readonly string[] Modules = [.. ModulePaths.Select(Path.GetFileName).OfType<string>()];

    private static string ModulesDirectory => Path.Combine(CacheDirectory, "modules");

    /// <summary>The kernel command line: serial console, hotplugged memory onlined by the kernel.</summary>
    public const string Append = "console=ttyS0 quiet panic=-1 memhp_default_state=online";

    private static readonly string InitScript = $$"""
        #!/bin/busybox sh
        /bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin
        /bin/busybox --install -s
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        mount -t devtmpfs devtmpfs /dev
        exec </dev/ttyS0 >/dev/ttyS0 2>&1
        for m in {{string.Join(' ', Modules)}}; do
          insmod /modules/$m.ko || echo "module $m failed"
        done
        stop_after=$(sed -n 's/.*cloud.poweroff_after=\([0-9]*\).*/\1/p' /proc/cmdline)
        # cloud.fill_mb=N: N MiB of the guest's RAM filled with random bytes (kept in a tmpfs), so
        # that its memory state is as large as a busy guest's rather than mostly zero pages.
        fill_mb=$(sed -n 's/.*cloud.fill_mb=\([0-9]*\).*/\1/p' /proc/cmdline)
        if [ -n "$fill_mb" ]; then
          mkdir -p /fill && mount -t tmpfs -o size=$((fill_mb + 1))m tmpfs /fill
          dd if=/dev/urandom of=/fill/blob bs=1M count=$fill_mb 2>/dev/null
        fi
        n=0
        while true; do
          # Hotplugged vCPUs and memory arrive offline unless someone onlines them (udev, normally).
          for c in /sys/devices/system/cpu/cpu*/online; do [ "$(cat $c)" = 0 ] && echo 1 > $c; done
          for m in /sys/devices/system/memory/memory*/state; do [ "$(cat $m)" = offline ] && echo online > $m; done
          cpus=$(grep -c ^processor /proc/cpuinfo)
          mem=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
          echo "tick=$n cpus=$cpus memtotal_kb=$mem"
          # The disk's first sector holds the last tick too, so tests can tell which writes reached it.
          [ -b /dev/vda ] && echo "cloud-disk tick=$n end" | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null
          if [ -n "$stop_after" ] && [ "$n" -ge "$stop_after" ]; then poweroff -f; fi
          n=$((n+1))
          sleep 0.5
        done
        """;

    public static async Task<(string Kernel, string Initrd)> EnsureAsync()
    {
        await Gate.WaitAsync();
        try
        {
            var kernel = Path.Combine(CacheDirectory, "vmlinuz");
            var initrd = Path.Combine(CacheDirectory, "initrd-" + Version + ".img");
            Directory.CreateDirectory(CacheDirectory);
            if (!File.Exists(kernel) || Modules.Any(m => !File.Exists(Path.Combine(ModulesDirectory, m + ".ko"))))
            {
                await ExtractKernelAsync(kernel);
            }
            if (!File.Exists(initrd))
            {
                await BuildInitramfsAsync(initrd);
            }
            return (kernel, initrd);
        }
        finally
        {
            Gate.Release();
        }
    }

    private static async Task ExtractKernelAsync(string target)
    {
        var work = Path.Combine(CacheDirectory, "kernel-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            // linux-image-amd64 is the metapackage; it depends on the current linux-image-6.1.0-NN-amd64.
            var depends = await RunAsync("apt-cache", work, "depends", "linux-image-amd64");
            var package = KernelPackage().Match(depends).Groups[1].Value;
            if (string.IsNullOrEmpty(package))
            {
                throw new InvalidOperationException("apt-cache knows no linux-image-6.1 package; run apt-get update: " + depends);
            }
            await RunAsync("apt-get", work, "download", package);
            var deb = Directory.GetFiles(work, "*.deb").Single();
            await RunAsync("dpkg", work, "-x", deb, Path.Combine(work, "root"));
            var vmlinuz = Directory.GetFiles(Path.Combine(work, "root", "boot"), "vmlinuz-*").Single();
            Directory.CreateDirectory(ModulesDirectory);
            var virtio = Directory.GetDirectories(Path.Combine(work, "root", "lib", "modules")).Single();
            foreach (var module in ModulePaths)
            {
                File.Copy(Path.Combine(virtio, "kernel", "drivers", module + ".ko"), Path.Combine(ModulesDirectory, Path.GetFileName(module) + ".ko"), overwrite: true);
            }
            File.Copy(vmlinuz, target + ".tmp", overwrite: true);
            File.Move(target + ".tmp", target, overwrite: true);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static async Task BuildInitramfsAsync(string target)
    {
        var root = Path.Combine(CacheDirectory, "initramfs-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "bin"));
            foreach (var dir in new[] { "proc", "sys", "dev" })
            {
                Directory.CreateDirectory(Path.Combine(root, dir));
            }
            File.Copy("/bin/busybox", Path.Combine(root, "bin", "busybox"));
            Directory.CreateDirectory(Path.Combine(root, "modules"));
            foreach (var module in Modules)
            {
                File.Copy(Path.Combine(ModulesDirectory, module + ".ko"), Path.Combine(root, "modules", module + ".ko"));
            }
            var init = Path.Combine(root, "init");
            await File.WriteAllTextAsync(init, InitScript.Replace("\r\n", "\n") + "\n");
            // The guest is built on Linux (cpio, busybox): the init must be executable there.
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(init, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            }
            await RunAsync("/bin/sh", root, "-c", $"find . | cpio -o -H newc --quiet | gzip -1 > '{target}.tmp'");
            File.Move(target + ".tmp", target, overwrite: true);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task<string> RunAsync(string file, string workingDirectory, params string[] args)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0 ? await stdout : throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {await stderr}");
    }

    [GeneratedRegex(@"Depends: (linux-image-6\.1\.0-\d+-amd64)\b")]
    private static partial Regex KernelPackage();
}
