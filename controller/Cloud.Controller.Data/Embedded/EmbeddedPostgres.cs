using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Cloud.Controller.Data.Embedded;

/// <summary>What an embedded cluster is for: a developer's persistent database, or a throwaway one for tests.</summary>
internal sealed class EmbeddedPostgresOptions
{
    /// <summary>The cluster's folder; created when missing, and initialized once.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>Database to create and connect to; null connects to "postgres" and creates nothing.</summary>
    public string? Database { get; init; } = "cloud";

    /// <summary>False trades crash safety for speed (fsync, full-page writes and synchronous commit off): for throwaway clusters only.</summary>
    public bool Durable { get; init; } = true;

    /// <summary>Deletes <see cref="DataDirectory"/> when the cluster stops.</summary>
    public bool DeleteOnStop { get; init; }

    /// <summary>
    /// A process whose death stops the cluster (and deletes it, with <see cref="DeleteOnStop"/>),
    /// even when that process is killed without a chance to clean up. Null: no watch.
    /// </summary>
    public int? WatchProcessId { get; init; } = Environment.ProcessId;

    public int MaxConnections { get; init; } = 200;

    /// <summary>Lines added to the cluster's settings at every start (postgresql.conf syntax), after the ones above.</summary>
    public IReadOnlyList<string> ExtraSettings { get; init; } = [];
}

/// <summary>
/// A private PostgreSQL cluster run from the machine's PostgreSQL installation: initialized once
/// in its own folder, started on a free loopback port, stopped with this object. It is the
/// controller's database when none is configured (docs/design/002 and the README), and the
/// tests' throwaway server.
/// </summary>
/// <remarks>
/// The cluster accepts connections on 127.0.0.1 only, with a password generated at
/// initialization and kept in the folder, readable by its owner alone. When the process runs as
/// root the server runs as the <c>postgres</c> user, which PostgreSQL requires.
/// </remarks>
public sealed partial class EmbeddedPostgres : IAsyncDisposable
{
    private const string SuperUser = "cloud";
    private const int StartAttempts = 5;

    private readonly EmbeddedPostgresOptions _options;
    private readonly PostgresTools _tools;
    private readonly ILogger _logger;
    private int _stopped;

    private EmbeddedPostgres(EmbeddedPostgresOptions options, PostgresTools tools, ILogger logger, int port, string connectionString)
    {
        _options = options;
        _tools = tools;
        _logger = logger;
        Port = port;
        ConnectionString = connectionString;
    }

    /// <summary>A connection string for the database, as the cluster's superuser.</summary>
    public string ConnectionString { get; }

    /// <summary>The loopback port the server listens on; a new free one at every start.</summary>
    public int Port { get; }

    /// <summary>The cluster's folder.</summary>
    public string DataDirectory => _options.DataDirectory;

    private string ClusterDirectory => Path.Combine(DataDirectory, "pgdata");

    private string PasswordFile => Path.Combine(DataDirectory, "password");

    private string SettingsFile => Path.Combine(DataDirectory, "postgresql.cloud.conf");

    private string LogFile => Path.Combine(DataDirectory, "postgres.log");

    /// <summary>
    /// Starts the cluster in <paramref name="dataDirectory"/> (initializing it the first time),
    /// waits until it accepts connections, and creates the database "cloud" if missing.
    /// </summary>
    /// <exception cref="InvalidOperationException">PostgreSQL is not installed, or the server would not start; the message says why.</exception>
    public static Task<EmbeddedPostgres> StartAsync(string dataDirectory, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        return StartAsync(new EmbeddedPostgresOptions { DataDirectory = Path.GetFullPath(dataDirectory) }, logger, cancellationToken);
    }

    internal static async Task<EmbeddedPostgres> StartAsync(EmbeddedPostgresOptions options, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        if (!Path.IsPathFullyQualified(options.DataDirectory))
        {
            throw new ArgumentException($"The data directory '{options.DataDirectory}' must be an absolute path.", nameof(options));
        }
        var tools = PostgresTools.Find();
        Directory.CreateDirectory(options.DataDirectory);
        await PostgresTools.GiveToServiceUserAsync(options.DataDirectory, cancellationToken).ConfigureAwait(false);
        if (PostgresTools.RunsAsServiceUser)
        {
            var access = await tools.RunAsync("test", ["-w", options.DataDirectory, "-a", "-x", options.DataDirectory], "/", cancellationToken).ConfigureAwait(false);
            if (!access.Succeeded)
            {
                throw new InvalidOperationException(
                    $"The {PostgresTools.ServiceUser} user, which runs the server, cannot reach {options.DataDirectory}: every folder above it must be searchable by others (chmod o+x), or choose another folder.");
            }
        }

        var probe = new EmbeddedPostgres(options, tools, logger, 0, "");
        var password = await probe.InitializeOnceAsync(cancellationToken).ConfigureAwait(false);
        await probe.StopStaleServerAsync(cancellationToken).ConfigureAwait(false);
        var port = await probe.StartServerAsync(cancellationToken).ConfigureAwait(false);

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = IPAddress.Loopback.ToString(),
            Port = port,
            Username = SuperUser,
            Password = password,
            Database = options.Database ?? "postgres",
        };
        var server = new EmbeddedPostgres(options, tools, logger, port, builder.ConnectionString);
        try
        {
            if (options.WatchProcessId is { } owner)
            {
                server.StartWatchdog(owner);
            }
            if (options.Database is { } database)
            {
                await server.CreateDatabaseAsync(builder, database, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            await server.StopAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        Log.Started(logger, port, options.DataDirectory);
        return server;
    }

    /// <summary>Creates the cluster the first time; returns the superuser's password.</summary>
    private async Task<string> InitializeOnceAsync(CancellationToken cancellationToken)
    {
        if (File.Exists(Path.Combine(ClusterDirectory, "PG_VERSION")))
        {
            return File.Exists(PasswordFile)
                ? (await File.ReadAllTextAsync(PasswordFile, cancellationToken).ConfigureAwait(false)).Trim()
                : throw new InvalidOperationException($"The cluster in {ClusterDirectory} has no password file {PasswordFile}; delete {DataDirectory} to start afresh.");
        }
        if (Directory.Exists(ClusterDirectory))
        {
            // A first initialization that was interrupted: initdb wants an empty folder.
            Directory.Delete(ClusterDirectory, recursive: true);
        }
        Log.Initializing(_logger, ClusterDirectory);

        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_');
        // initdb reads the password from a file, which the server's user must be able to read;
        // it is deleted as soon as initdb is done. The copy we keep is readable by its owner only.
        var initPassword = Path.Combine(DataDirectory, "initdb-password");
        await WritePrivateAsync(initPassword, password, cancellationToken).ConfigureAwait(false);
        try
        {
            await PostgresTools.GiveToServiceUserAsync(initPassword, cancellationToken).ConfigureAwait(false);
            List<string> arguments =
            [
                "-D", ClusterDirectory, "-U", SuperUser, $"--pwfile={initPassword}",
                "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions",
            ];
            if (!_options.Durable)
            {
                arguments.Add("--no-sync");
            }
            var result = await _tools.RunAsync(_tools.InitDb, arguments, DataDirectory, cancellationToken).ConfigureAwait(false);
            result.ThrowIfFailed($"initdb of {ClusterDirectory}");
        }
        finally
        {
            File.Delete(initPassword);
        }

        if (File.Exists(PasswordFile))
        {
            File.Delete(PasswordFile);
        }
        await WritePrivateAsync(PasswordFile, password, cancellationToken).ConfigureAwait(false);
        // The settings that change at every start (the port) live in a file of our own, included
        // by the cluster's postgresql.conf.
        await File.AppendAllTextAsync(
            Path.Combine(ClusterDirectory, "postgresql.conf"),
            $"\n# Settings of the embedded cluster, rewritten at every start.\ninclude_if_exists = '{SettingsFile.Replace("'", "''", StringComparison.Ordinal)}'\n",
            cancellationToken).ConfigureAwait(false);
        return password;
    }

    /// <summary>A server left running by a process that was killed would hold the folder; stop it.</summary>
    private async Task StopStaleServerAsync(CancellationToken cancellationToken)
    {
        var status = await _tools.RunAsync(_tools.PgCtl, ["status", "-D", ClusterDirectory], DataDirectory, cancellationToken).ConfigureAwait(false);
        if (status.Succeeded)
        {
            Log.StaleServer(_logger, ClusterDirectory);
            var stop = await _tools.RunAsync(_tools.PgCtl, ["stop", "-D", ClusterDirectory, "-m", "fast", "-w", "-t", "60"], DataDirectory, cancellationToken).ConfigureAwait(false);
            stop.ThrowIfFailed($"stopping the server left running in {ClusterDirectory}");
        }
    }

    /// <summary>Starts on a free port, trying another if some other process takes it first.</summary>
    private async Task<int> StartServerAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreeLoopbackPort();
            await File.WriteAllTextAsync(SettingsFile, Settings(port), cancellationToken).ConfigureAwait(false);
            if (!OperatingSystem.IsWindows())
            {
                // Read by the server's user whatever this process's umask; it holds no secret.
                File.SetUnixFileMode(SettingsFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            }
            var logLength = File.Exists(LogFile) ? new FileInfo(LogFile).Length : 0;
            var result = await _tools.RunAsync(
                _tools.PgCtl, ["start", "-D", ClusterDirectory, "-l", LogFile, "-w", "-t", "120", "-s"], DataDirectory, cancellationToken).ConfigureAwait(false);
            if (result.Succeeded)
            {
                return port;
            }
            var log = ReadLogFrom(logLength);
            if (attempt < StartAttempts && log.Contains("could not bind", StringComparison.OrdinalIgnoreCase))
            {
                Log.PortTaken(_logger, port);
                continue;
            }
            throw new InvalidOperationException($"PostgreSQL in {ClusterDirectory} did not start (pg_ctl exit code {result.ExitCode}). {result.Output.Trim()}\n{log}");
        }
    }

    private string Settings(int port)
    {
        // A Unix socket path is limited to about 100 bytes; a deep folder gets TCP only.
        var socketDirectory = Encoding.UTF8.GetByteCount(DataDirectory) <= 80 ? DataDirectory : "";
        var settings = new StringBuilder()
            .AppendLine("listen_addresses = '127.0.0.1'")
            .AppendLine(CultureInfo.InvariantCulture, $"port = {port}")
            .AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{socketDirectory.Replace("'", "''", StringComparison.Ordinal)}'")
            .AppendLine(CultureInfo.InvariantCulture, $"max_connections = {_options.MaxConnections}");
        if (!_options.Durable)
        {
            settings.AppendLine("fsync = off").AppendLine("full_page_writes = off").AppendLine("synchronous_commit = off");
        }
        foreach (var line in _options.ExtraSettings)
        {
            settings.AppendLine(line);
        }
        return settings.ToString();
    }

    private string ReadLogFrom(long offset)
    {
        try
        {
            using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            stream.Seek(Math.Min(offset, stream.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            var text = reader.ReadToEnd();
            return text.Length > 4000 ? text[^4000..] : text;
        }
        catch (IOException)
        {
            return "";
        }
    }

    private async Task CreateDatabaseAsync(NpgsqlConnectionStringBuilder builder, string database, CancellationToken cancellationToken)
    {
        var admin = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Database = "postgres", Pooling = false };
        await using var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection) { Parameters = { new() { Value = database } } };
        if (await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is null)
        {
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"", connection);
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A small shell loop, in its own session and as the server's user, that stops the cluster
    /// when the owning process is gone (killed, crashed), so that nothing outlives it. A
    /// throwaway cluster's folder is removed too: the watchdog waits for the owner to be gone or
    /// the folder deleted, because a test host may be killed between stopping the server and
    /// deleting the folder. A persistent cluster's watchdog ends once the server is stopped.
    /// </summary>
    private void StartWatchdog(int ownerProcessId)
    {
        const string Script = """
            exec >/dev/null 2>&1 </dev/null
            owner="$1"; pg_ctl="$2"; pgdata="$3"; mode="$4"; remove="$5"
            if [ -n "$remove" ]; then
              while [ -e "/proc/$owner" ] && [ -d "$remove" ]; do sleep 1; done
            else
              while [ -e "/proc/$owner" ] && [ -f "$pgdata/postmaster.pid" ]; do sleep 1; done
              [ -e "/proc/$owner" ] && exit 0
            fi
            [ -f "$pgdata/postmaster.pid" ] && "$pg_ctl" -D "$pgdata" stop -m "$mode" -w -t 60
            [ -n "$remove" ] && rm -rf -- "$remove"
            exit 0
            """;
        _tools.StartDetached("sh",
            ["-c", Script, "cloud-postgres-watchdog", ownerProcessId.ToString(CultureInfo.InvariantCulture), _tools.PgCtl, ClusterDirectory,
             _options.Durable ? "fast" : "immediate", _options.DeleteOnStop ? DataDirectory : ""],
            DataDirectory);
    }

    /// <summary>Stops the server (pg_ctl stop) and, for a throwaway cluster, deletes its folder.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }
        var result = await _tools.RunAsync(_tools.PgCtl, StopArguments(), DataDirectory, cancellationToken).ConfigureAwait(false);
        Finish(result);
    }

    /// <summary>Stops at once, synchronously: for process-exit handlers, where nothing can be awaited.</summary>
    internal void Stop()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }
        Finish(_tools.Run(_tools.PgCtl, StopArguments(), DataDirectory, TimeSpan.FromSeconds(60)));
    }

    private string[] StopArguments() => ["stop", "-D", ClusterDirectory, "-m", _options.Durable ? "fast" : "immediate", "-w", "-t", "60"];

    private void Finish(ToolResult stop)
    {
        Log.Stopped(_logger, DataDirectory, stop.ExitCode);
        if (_options.DeleteOnStop && Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task WritePrivateAsync(string path, string content, CancellationToken cancellationToken)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        await using var stream = new FileStream(path, options);
        await stream.WriteAsync(Encoding.UTF8.GetBytes(content), cancellationToken).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = DataEventIds.EmbeddedInitializing, Level = LogLevel.Information, Message = "Initializing an embedded PostgreSQL cluster in {Directory}")]
        public static partial void Initializing(ILogger logger, string directory);

        [LoggerMessage(EventId = DataEventIds.EmbeddedStarted, Level = LogLevel.Information, Message = "Embedded PostgreSQL listening on 127.0.0.1:{Port} (data in {Directory})")]
        public static partial void Started(ILogger logger, int port, string directory);

        [LoggerMessage(EventId = DataEventIds.EmbeddedStopped, Level = LogLevel.Information, Message = "Embedded PostgreSQL in {Directory} stopped (pg_ctl exit code {ExitCode})")]
        public static partial void Stopped(ILogger logger, string directory, int exitCode);

        [LoggerMessage(EventId = DataEventIds.EmbeddedStaleServer, Level = LogLevel.Warning, Message = "A PostgreSQL server left running in {Directory} is stopped before starting afresh")]
        public static partial void StaleServer(ILogger logger, string directory);

        [LoggerMessage(EventId = DataEventIds.EmbeddedPortTaken, Level = LogLevel.Debug, Message = "Port {Port} was taken before PostgreSQL could bind it; trying another")]
        public static partial void PortTaken(ILogger logger, int port);
    }
}
