using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using System.Threading.Channels;

namespace Cloud.Qmp;

/// <summary>
/// A client of one QEMU monitor. Commands may run concurrently: each carries an id and its
/// reply is matched by that id. Events flow into <see cref="Events"/>, which outlives
/// reconnections so that a consumer reads one stream for the life of the client.
/// </summary>
public sealed partial class QmpClient : IAsyncDisposable
{
    private readonly QmpClientOptions _options;
    private readonly Channel<QmpEvent> _events;
    private readonly SemaphoreSlim _connectGate = new(1, 1);
    private QmpConnection? _connection;
    private long _nextId;
    private bool _disposed;

    private QmpClient(QmpEndpoint endpoint, QmpClientOptions options)
    {
        Endpoint = endpoint;
        _options = options;
        _events = Channel.CreateBounded<QmpEvent>(new BoundedChannelOptions(options.EventCapacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleWriter = true,
        });
    }

    public QmpEndpoint Endpoint { get; }

    /// <summary>The greeting of the current (or last) connection.</summary>
    public QmpGreeting Greeting => _connection?.Greeting ?? throw new InvalidOperationException("The client has not connected.");

    public bool IsConnected => _connection is { IsOpen: true };

    /// <summary>Events from every connection of this client, in arrival order; completes on dispose.</summary>
    public ChannelReader<QmpEvent> Events => _events.Reader;

    /// <summary>
    /// Completes when the current connection ends, with the reason: null when the peer closed it
    /// in an orderly way (QEMU exited), otherwise the error that broke it.
    /// </summary>
    public Task<Exception?> Disconnected => _connection?.Closed ?? Task.FromResult<Exception?>(null);

    /// <summary>
    /// Connects, reads the greeting and leaves negotiation mode. A socket that does not exist yet
    /// or refuses connections is retried until <see cref="QmpClientOptions.ConnectTimeout"/>, since
    /// a QEMU that was just started may not be listening yet.
    /// </summary>
    public static async Task<QmpClient> ConnectAsync(QmpEndpoint endpoint, QmpClientOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        options ??= new QmpClientOptions();
        options.Validate();
        var client = new QmpClient(endpoint, options);
        try
        {
            await client.ReconnectAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Drops the current connection, if any, and opens a new one to the same endpoint.</summary>
    public async Task ReconnectAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _connectGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_connection is { } old)
            {
                await old.DisposeAsync().ConfigureAwait(false);
            }
            _connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _connectGate.Release();
        }
    }

    /// <summary>Runs a command with the default timeout and returns its "return" value.</summary>
    public Task<JsonElement> ExecuteAsync(string command, JsonObject? arguments, CancellationToken cancellationToken)
        => ExecuteAsync(command, arguments, _options.CommandTimeout, cancellationToken);

    /// <summary>
    /// Runs a command and returns its "return" value. Throws <see cref="QmpCommandException"/> for
    /// an error reply, <see cref="QmpTimeoutException"/> when no reply comes in time,
    /// <see cref="QmpDisconnectedException"/> when the connection is or becomes closed.
    /// </summary>
    public async Task<JsonElement> ExecuteAsync(string command, JsonObject? arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (string.IsNullOrEmpty(command) || !CommandName().IsMatch(command))
        {
            throw new ArgumentException($"'{command}' is not a QMP command name.", nameof(command));
        }
        var connection = _connection;
        if (connection is not { IsOpen: true })
        {
            if (!_options.ReconnectOnDemand)
            {
                throw new QmpDisconnectedException($"QMP connection to {Endpoint} is closed.");
            }
            await ReconnectAsync(cancellationToken).ConfigureAwait(false);
            connection = _connection!;
        }
        var id = Interlocked.Increment(ref _nextId);
        using var span = QmpTelemetry.Source.StartActivity("qmp " + command, ActivityKind.Client);
        span?.SetTag("rpc.system", "qmp").SetTag("rpc.method", command).SetTag("qmp.endpoint", Endpoint.ToString());
        var started = Stopwatch.GetTimestamp();
        try
        {
            var reply = await connection.ExecuteAsync(id, command, arguments, timeout, cancellationToken).ConfigureAwait(false);
            QmpTelemetry.CommandDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("qmp.command", command));
            return reply;
        }
        catch (Exception e)
        {
            var error = QmpTelemetry.ErrorType(e);
            QmpTelemetry.CommandDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds,
                new KeyValuePair<string, object?>("qmp.command", command), new KeyValuePair<string, object?>("error.type", error));
            span?.SetStatus(ActivityStatusCode.Error, e.Message).SetTag("error.type", error);
            throw;
        }
    }

    private async Task<QmpConnection> OpenAsync(CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.ConnectTimeout);
        // QEMU opens its monitor within a few hundred milliseconds of starting: short retries keep a
        // VM's start from waiting on a back-off step (a unix connect attempt costs microseconds).
        var delay = TimeSpan.FromMilliseconds(5);
        while (true)
        {
            Stream stream;
            try
            {
                stream = await Endpoint.ConnectAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (SocketException ex) when (IsRetryable(ex))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (deadline.IsCancellationRequested)
                {
                    // The last attempt failed after the time ran out: that is the timeout, not another error.
                    throw new QmpDisconnectedException($"Could not connect to QMP at {Endpoint} within {_options.ConnectTimeout.TotalSeconds:0.#} s: {ex.Message}", ex);
                }
                try
                {
                    await Task.Delay(delay, deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new QmpDisconnectedException($"Could not connect to QMP at {Endpoint} within {_options.ConnectTimeout.TotalSeconds:0.#} s: {ex.Message}", ex);
                }
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 40));
                continue;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new QmpDisconnectedException($"Could not connect to QMP at {Endpoint} within {_options.ConnectTimeout.TotalSeconds:0.#} s.");
            }
            catch (Exception ex) when (ex is SocketException or IOException or UnauthorizedAccessException)
            {
                throw new QmpDisconnectedException($"Could not connect to QMP at {Endpoint}: {ex.Message}", ex);
            }

            var connection = new QmpConnection(stream, Endpoint, _options, _events.Writer);
            try
            {
                await connection.HandshakeAsync(Interlocked.Increment(ref _nextId), deadline.Token).ConfigureAwait(false);
                return connection;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw new QmpTimeoutException("qmp_capabilities", _options.ConnectTimeout);
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    // Refused, or a unix socket path that does not exist yet (ENOENT surfaces as AddressNotAvailable).
    private static bool IsRetryable(SocketException ex)
        => ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable or SocketError.TryAgain
        || ex.NativeErrorCode == 2;

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        await _connectGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_connection is { } connection)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _connectGate.Release();
        }
        _events.Writer.TryComplete();
    }

    // Command names in QEMU's schema: letters, digits, '-' and '_' (x- and underscore forms included).
    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_-]{0,127}$")]
    private static partial Regex CommandName();
}
