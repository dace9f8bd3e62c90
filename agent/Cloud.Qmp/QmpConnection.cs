using System.Buffers;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Cloud.Qmp;

/// <summary>
/// One connection to QEMU (a socket or a pipe): a reader loop that routes replies to waiting commands by id and events
/// to the client's channel, and serialized writes. Any protocol violation closes the connection
/// and fails every waiting command, because the stream can no longer be trusted.
/// </summary>
internal sealed class QmpConnection : IAsyncDisposable
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    private readonly Stream _stream;
    private readonly QmpEndpoint _endpoint;
    private readonly QmpClientOptions _options;
    private readonly ChannelWriter<QmpEvent> _events;
    private readonly ConcurrentDictionary<long, Pending> _pending = new();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly CancellationTokenSource _shutdown = new();
    private readonly TaskCompletionSource<Exception?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly QmpLineReader _reader;
    private Task? _readLoop;
    private int _closing;

    public QmpConnection(Stream stream, QmpEndpoint endpoint, QmpClientOptions options, ChannelWriter<QmpEvent> events)
    {
        _stream = stream;
        _endpoint = endpoint;
        _options = options;
        _events = events;
        _reader = new QmpLineReader(_stream, options.MaxMessageBytes);
    }

    public QmpGreeting? Greeting { get; private set; }

    public bool IsOpen => _closing == 0;

    public Task<Exception?> Closed => _closed.Task;

    public async Task HandshakeAsync(long id, CancellationToken cancellationToken)
    {
        // QEMU can emit an event (RESUME as the guest starts, for one) between accepting the socket
        // and writing its greeting, so a few events may come first; they are delivered as events.
        for (var skipped = 0; ; skipped++)
        {
            var line = await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new QmpDisconnectedException($"QMP peer at {_endpoint} closed the connection before its greeting.");
            if (skipped < MaxEventsBeforeGreeting && TryParseEarlyEvent(line) is { } early)
            {
                _events.TryWrite(early);
                continue;
            }
            Greeting = ParseGreeting(line);
            break;
        }
        _readLoop = Task.Run(ReadLoopAsync, CancellationToken.None);
        var reply = await ExecuteAsync(id, "qmp_capabilities", null, _options.CommandTimeout, cancellationToken).ConfigureAwait(false);
        if (reply.ValueKind != JsonValueKind.Object)
        {
            throw new QmpProtocolException("qmp_capabilities returned something other than an object.");
        }
    }

    public async Task<JsonElement> ExecuteAsync(long id, string command, JsonObject? arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var pending = new Pending(command);
        _pending[id] = pending;
        try
        {
            if (!IsOpen)
            {
                throw Disconnected(null);
            }
            var request = Serialize(id, command, arguments);
            using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (timeout != Timeout.InfiniteTimeSpan)
            {
                timeoutSource.CancelAfter(timeout);
            }
            try
            {
                await _writeGate.WaitAsync(timeoutSource.Token).ConfigureAwait(false);
                try
                {
                    await _stream.WriteAsync(request, timeoutSource.Token).ConfigureAwait(false);
                }
                finally
                {
                    _writeGate.Release();
                }
                return await pending.Completion.Task.WaitAsync(timeoutSource.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new QmpTimeoutException(command, timeout);
            }
            catch (IOException ex)
            {
                Close(ex);
                throw Disconnected(ex);
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private QmpDisconnectedException Disconnected(Exception? cause)
        => new($"QMP connection to {_endpoint} is closed{(cause is null ? "" : ": " + cause.Message)}.", cause);

    private static byte[] Serialize(long id, string command, JsonObject? arguments)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("execute", command);
            if (arguments is not null)
            {
                writer.WritePropertyName("arguments");
                arguments.WriteTo(writer);
            }
            writer.WriteNumber("id", id);
            writer.WriteEndObject();
        }
        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    private async Task ReadLoopAsync()
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var line = await _reader.ReadLineAsync(_shutdown.Token).ConfigureAwait(false);
                if (line is null)
                {
                    break;
                }
                if (line.Value.Length > 0)
                {
                    Dispatch(line.Value);
                }
            }
        }
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
        }
        catch (QmpProtocolException ex)
        {
            error = ex;
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            // A QEMU that exits with bytes unread by it resets the connection: that is still just "gone".
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            error = _shutdown.IsCancellationRequested ? null : ex;
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException)
        {
            // Defensive: a message shape the checks above did not foresee is still the peer's fault.
            error = new QmpProtocolException("QMP peer sent a message of an unexpected shape: " + ex.Message, ex);
        }
        Close(error);
    }

    private void Dispatch(ReadOnlyMemory<byte> line)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line, DocumentOptions);
        }
        catch (JsonException ex)
        {
            throw new QmpProtocolException($"QMP peer sent a line that is not JSON: {ex.Message}", ex);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new QmpProtocolException($"QMP peer sent a {root.ValueKind} where an object was expected.");
            }
            if (root.TryGetProperty("event", out var name))
            {
                _events.TryWrite(ParseEvent(root, name));
                return;
            }
            var hasReturn = root.TryGetProperty("return", out var result);
            var hasError = root.TryGetProperty("error", out var error);
            if (hasReturn == hasError)
            {
                throw new QmpProtocolException("QMP peer sent an object that is neither an event nor a reply.");
            }
            if (!root.TryGetProperty("id", out var idElement))
            {
                // QEMU answers without an id only when it could not parse the request at all; this
                // client never sends such a request, so the reply cannot be attributed.
                var detail = hasError ? ": " + error.ToString() : "";
                throw new QmpProtocolException("QMP peer sent a reply without an id" + detail);
            }
            if (idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt64(out var id))
            {
                throw new QmpProtocolException($"QMP peer sent a reply whose id is not one this client sent: {idElement}.");
            }
            if (!_pending.TryGetValue(id, out var pending))
            {
                // The command timed out or was cancelled: its late reply has nobody waiting.
                return;
            }
            if (hasReturn)
            {
                pending.Completion.TrySetResult(result.Clone());
            }
            else
            {
                pending.Completion.TrySetException(ParseError(pending.Command, error));
            }
        }
    }

    private static QmpCommandException ParseError(string command, JsonElement error)
    {
        if (error.ValueKind != JsonValueKind.Object
            || !error.TryGetProperty("class", out var errorClass) || errorClass.ValueKind != JsonValueKind.String
            || !error.TryGetProperty("desc", out var desc) || desc.ValueKind != JsonValueKind.String)
        {
            throw new QmpProtocolException($"QMP peer sent a malformed error reply to '{command}': {error}.");
        }
        return new QmpCommandException(command, errorClass.GetString()!, desc.GetString()!);
    }

    private static QmpEvent ParseEvent(JsonElement root, JsonElement name)
    {
        if (name.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(name.GetString()))
        {
            throw new QmpProtocolException("QMP peer sent an event whose name is not a string.");
        }
        var data = root.TryGetProperty("data", out var d) ? d.Clone() : EmptyObject;
        if (data.ValueKind != JsonValueKind.Object)
        {
            throw new QmpProtocolException($"QMP event {name.GetString()} has data that is not an object.");
        }
        var timestamp = DateTimeOffset.UtcNow;
        if (root.TryGetProperty("timestamp", out var ts))
        {
            if (ts.ValueKind != JsonValueKind.Object
                || !ts.TryGetProperty("seconds", out var s) || s.ValueKind != JsonValueKind.Number || !s.TryGetInt64(out var seconds)
                || !ts.TryGetProperty("microseconds", out var us) || us.ValueKind != JsonValueKind.Number || !us.TryGetInt64(out var micros)
                || seconds < 0 || micros is < 0 or >= 1_000_000)
            {
                throw new QmpProtocolException($"QMP event {name.GetString()} has a malformed timestamp: {ts}.");
            }
            // QEMU reports -1/-1 when the clock is unavailable; anything else must be a sane epoch time.
            timestamp = DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(micros * 10);
        }
        return new QmpEvent(name.GetString()!, data, timestamp);
    }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();

    private const int MaxEventsBeforeGreeting = 16;

    /// <summary>The line as an event when it is one (a JSON object with an "event" name), else null.</summary>
    private static QmpEvent? TryParseEarlyEvent(ReadOnlyMemory<byte> line)
    {
        try
        {
            using var document = JsonDocument.Parse(line, DocumentOptions);
            var root = document.RootElement;
            return root.ValueKind == JsonValueKind.Object && !root.TryGetProperty("QMP", out _) && root.TryGetProperty("event", out var name)
                ? ParseEvent(root, name)
                : null;
        }
        catch (Exception ex) when (ex is JsonException or QmpProtocolException)
        {
            return null;
        }
    }

    private QmpGreeting ParseGreeting(ReadOnlyMemory<byte> line)
    {
        try
        {
            using var document = JsonDocument.Parse(line, DocumentOptions);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("QMP", out var qmp) || qmp.ValueKind != JsonValueKind.Object)
            {
                throw new QmpProtocolException($"Peer at {_endpoint} did not greet with a QMP object; is it a QMP socket? It sent: {Excerpt(line)}");
            }
            if (!qmp.TryGetProperty("version", out var version) || version.ValueKind != JsonValueKind.Object
                || !version.TryGetProperty("qemu", out var qemu) || qemu.ValueKind != JsonValueKind.Object
                || !TryGetInt(qemu, "major", out var major) || !TryGetInt(qemu, "minor", out var minor) || !TryGetInt(qemu, "micro", out var micro))
            {
                throw new QmpProtocolException("QMP greeting has no valid version.qemu {major, minor, micro}.");
            }
            var package = version.TryGetProperty("package", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : "";
            var capabilities = new List<string>();
            if (qmp.TryGetProperty("capabilities", out var caps))
            {
                if (caps.ValueKind != JsonValueKind.Array)
                {
                    throw new QmpProtocolException("QMP greeting capabilities is not an array.");
                }
                foreach (var cap in caps.EnumerateArray())
                {
                    capabilities.Add(cap.ValueKind == JsonValueKind.String ? cap.GetString()! : throw new QmpProtocolException("QMP greeting capability is not a string."));
                }
            }
            return new QmpGreeting(major, minor, micro, package, capabilities);
        }
        catch (JsonException ex)
        {
            throw new QmpProtocolException($"Peer at {_endpoint} sent a greeting that is not JSON: {ex.Message}", ex);
        }
    }

    private static string Excerpt(ReadOnlyMemory<byte> line)
    {
        var text = System.Text.Encoding.UTF8.GetString(line.Span[..Math.Min(line.Length, 200)]);
        return line.Length > 200 ? text + "..." : text;
    }

    private static bool TryGetInt(JsonElement element, string name, out int value)
    {
        value = 0;
        return element.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out value) && value >= 0;
    }

    private void Close(Exception? error)
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
        {
            return;
        }
        _shutdown.Cancel();
        if (_stream is NetworkStream network)
        {
            try
            {
                // Wakes the read loop at once, even while another thread is inside a read.
                network.Socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        }
        _stream.Dispose();
        var failure = error as QmpException ?? Disconnected(error);
        foreach (var pending in _pending.Values)
        {
            pending.Completion.TrySetException(failure);
        }
        _closed.TrySetResult(error);
    }

    public async ValueTask DisposeAsync()
    {
        Close(null);
        if (_readLoop is not null)
        {
            await _readLoop.ConfigureAwait(false);
        }
        _shutdown.Dispose();
    }

    private sealed class Pending(string command)
    {
        public string Command { get; } = command;

        public TaskCompletionSource<JsonElement> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
