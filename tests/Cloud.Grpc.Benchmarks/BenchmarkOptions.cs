using System.Globalization;

namespace Cloud.Grpc.Benchmarks;

/// <summary>The command line: <c>--label current --calls 20000 --warmup 2000 --callers 8 --rounds 5 --vms 50 --image-mb 256 --stream-mb 2048</c>.</summary>
internal sealed class BenchmarkOptions
{
    /// <summary>Names the build in every figure, "metric [label]: value unit". Default current.</summary>
    public string Label { get; private set; } = "current";

    /// <summary>Unary calls measured, sequentially and again spread over <see cref="Callers"/>. Default 20,000.</summary>
    public int Calls { get; private set; } = 20_000;

    /// <summary>Unary calls made and not counted before each unary measurement. Default 2,000.</summary>
    public int Warmup { get; private set; } = 2_000;

    /// <summary>Concurrent callers on the one channel in the concurrent unary variant. Default 8.</summary>
    public int Callers { get; private set; } = 8;

    /// <summary>Rounds the unary calls are split into; calls/s is the median of the rounds' rates. Default 5.</summary>
    public int Rounds { get; private set; } = 5;

    /// <summary>VMs created on the fake backend before its RSS is read. Default 50.</summary>
    public int Vms { get; private set; } = 50;

    /// <summary>Size of the image streamed by ReadImage, in MiB. Default 256.</summary>
    public int ImageMb { get; private set; } = 256;

    /// <summary>MiB streamed and counted, in whole images timed one by one (the median image is reported; one more is streamed first, not counted). Default 2048.</summary>
    public int StreamMb { get; private set; } = 2048;

    public static BenchmarkOptions Parse(string[] args)
    {
        var options = new BenchmarkOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--label": options.Label = value; break;
                case "--calls": options.Calls = Positive(args[i], value); break;
                case "--warmup": options.Warmup = Positive(args[i], value); break;
                case "--callers": options.Callers = Positive(args[i], value); break;
                case "--rounds": options.Rounds = Positive(args[i], value); break;
                case "--vms": options.Vms = Positive(args[i], value); break;
                case "--image-mb": options.ImageMb = Positive(args[i], value); break;
                case "--stream-mb": options.StreamMb = Positive(args[i], value); break;
                default: throw new ArgumentException($"Unknown option {args[i]}: use --label, --calls, --warmup, --callers, --rounds, --vms, --image-mb, --stream-mb.");
            }
            i++;
        }
        return options;
    }

    private static int Positive(string name, string value)
        => int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and <= 10_000_000
            ? n
            : throw new ArgumentException($"{name} must be a whole number from 1 to 10,000,000, not '{value}'.");
}
