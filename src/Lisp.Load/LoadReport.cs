using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Serialization;

namespace Lisp.Load;

/// <summary>Counts of one run (or one rate step); summed over threads.</summary>
public sealed record StepResult
{
    /// <summary>Messages/s asked for; 0 = unpaced.</summary>
    public double OfferedRate { get; init; }
    public double SendSeconds { get; init; }
    public long Sent { get; init; }
    public long SentRegisters { get; init; }
    public long SentRequests { get; init; }
    public double SentRate { get; init; }
    public long SendErrors { get; init; }
    /// <summary>Unique answers (Map-Notifies + Map-Replies matched by nonce).</summary>
    public long Replies { get; init; }
    /// <summary>Replies per second from the first send to the last reply.</summary>
    public double ReplyRate { get; init; }
    /// <summary>Unique Map-Notifies with a good HMAC: accepted registrations (messages).</summary>
    public long Accepted { get; init; }
    public double AcceptedRate { get; init; }
    public long Lost { get; init; }
    public double LossPercent { get; init; }
    public long TimedOut { get; init; }
    public long Late { get; init; }
    public long Duplicate { get; init; }
    public long Unmatched { get; init; }
    public long Malformed { get; init; }
    public long OtherType { get; init; }
    public long Positive { get; init; }
    public long Negative { get; init; }
    public long WrongEid { get; init; }
    public long RlocMismatch { get; init; }
    public long AuthBad { get; init; }
    public long RecordMismatch { get; init; }
    public long AcksSent { get; init; }
    public long LatencySamples { get; init; }
    public double P50Us { get; init; }
    public double P90Us { get; init; }
    public double P99Us { get; init; }
    public double P999Us { get; init; }
    public double MaxUs { get; init; }
    public double MeanUs { get; init; }
    /// <summary>Kernel receive-queue drops of the target's socket during the step (null: not visible from here).</summary>
    public long? TargetKernelDrops { get; init; }
    public long? OwnKernelDrops { get; init; }
}

public sealed record LoadReport
{
    public string Scenario { get; init; } = "";
    public string Target { get; init; } = "";
    public string Bind { get; init; } = "";
    public int Threads { get; init; }
    public int Batch { get; init; }
    public int Window { get; init; }
    public int Eids { get; init; }
    public int RecordsPerRegister { get; init; }
    public string Algorithm { get; init; } = "";
    public double DurationSeconds { get; init; }
    public bool SelfTest { get; init; }
    public List<StepResult> Steps { get; init; } = [];
    /// <summary>The built-in sink's own counts (self-test only).</summary>
    public SinkReport? Sink { get; init; }
}

/// <summary>Source-generated JSON metadata (native AOT: no reflection-based serialization).</summary>
[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(LoadReport))]
[JsonSerializable(typeof(SinkReport))]
public sealed partial class LoadJsonContext : JsonSerializerContext
{
}

/// <summary>The human table and the self-contained HTML page of a <see cref="LoadReport"/>.</summary>
public static class LoadReportFormat
{
    private static string F(double v, string fmt = "0.0") => v.ToString(fmt, CultureInfo.InvariantCulture);
    private static string D(long? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "n/a";

    public static string Text(LoadReport r)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"scenario {r.Scenario}  target {r.Target}  bind {r.Bind}  threads {r.Threads}  batch {r.Batch}  window {r.Window}  eids {r.Eids}  records/register {r.RecordsPerRegister}  {r.Algorithm}{(r.SelfTest ? "  (self-test against the built-in sink)" : "")}");
        foreach (var s in r.Steps)
        {
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"offered rate    {(s.OfferedRate > 0 ? F(s.OfferedRate, "0") + "/s" : "unpaced")}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"sent            {s.Sent} in {F(s.SendSeconds, "0.000")} s = {F(s.SentRate)}/s  (registers {s.SentRegisters}, requests {s.SentRequests}, send errors {s.SendErrors})");
            sb.AppendLine(CultureInfo.InvariantCulture, $"replies         {s.Replies} = {F(s.ReplyRate)}/s (unique nonces, first send to last reply)");
            if (s.SentRegisters > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"accepted        {s.Accepted} = {F(s.AcceptedRate)}/s (unique Map-Notifies, HMAC good)  auth bad {s.AuthBad}, record-count mismatch {s.RecordMismatch}, acks sent {s.AcksSent}");
            }
            if (s.SentRequests > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"map-replies     positive {s.Positive}, negative {s.Negative}, wrong EID {s.WrongEid}, RLOC mismatch {s.RlocMismatch}");
            }
            sb.AppendLine(CultureInfo.InvariantCulture, $"lost            {s.Lost} ({F(s.LossPercent, "0.000")}%), of which timed out {s.TimedOut}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"other           late {s.Late}, duplicate {s.Duplicate}, unmatched {s.Unmatched}, malformed {s.Malformed}, other type {s.OtherType}");
            sb.AppendLine(CultureInfo.InvariantCulture, $"latency us      p50 {F(s.P50Us)}  p90 {F(s.P90Us)}  p99 {F(s.P99Us)}  p99.9 {F(s.P999Us)}  max {F(s.MaxUs)}  mean {F(s.MeanUs)}  (n {s.LatencySamples})");
            sb.AppendLine(CultureInfo.InvariantCulture, $"kernel drops    target socket {D(s.TargetKernelDrops)}, own sockets {D(s.OwnKernelDrops)}  (/proc/net/udp)");
        }
        if (r.Sink is { } k)
        {
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"sink            received {k.Received} ({F(k.ReceivedRate)}/s): requests {k.MapRequests}, registers {k.MapRegisters}, acks {k.MapNotifyAcks}, other {k.Other}, malformed {k.Malformed}; replies sent {k.RepliesSent}; kernel drops {D(k.KernelDrops)}");
        }
        if (r.Steps.Count > 1)
        {
            sb.AppendLine();
            sb.AppendLine("   offered/s      sent/s   replies/s    lost%    p50 us    p99 us  p99.9 us");
            foreach (var s in r.Steps)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"{F(s.OfferedRate, "0"),12}{F(s.SentRate, "0"),12}{F(s.ReplyRate, "0"),12}{F(s.LossPercent, "0.00"),9}{F(s.P50Us),10}{F(s.P99Us),10}{F(s.P999Us),10}");
            }
        }
        return sb.ToString();
    }

    /// <summary>A self-contained page: the table and, for step runs, inline SVG charts (latency and achieved rate against offered rate).</summary>
    public static string Html(LoadReport r)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>lisp-decent load: ").Append(WebUtility.HtmlEncode(r.Scenario)).Append("</title>\n");
        sb.Append("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px;text-align:right}th{background:#eee}pre{background:#f6f6f6;padding:1em}</style></head><body>\n");
        sb.Append("<h1>lisp-decent load ").Append(WebUtility.HtmlEncode(r.Scenario)).Append(" &rarr; ").Append(WebUtility.HtmlEncode(r.Target)).Append("</h1>\n");
        sb.Append("<p>threads ").Append(r.Threads).Append(", batch ").Append(r.Batch).Append(", window ").Append(r.Window).Append(", EIDs ").Append(r.Eids)
          .Append(", ").Append(WebUtility.HtmlEncode(r.Algorithm)).Append(r.SelfTest ? ", self-test against the built-in sink" : "").Append("</p>\n");
        sb.Append(Chart(r.Steps, "Latency against offered rate (us, log scale)", [("p50", "#1f77b4", s => s.P50Us), ("p99", "#d62728", s => s.P99Us)], logY: true));
        sb.Append(Chart(r.Steps, "Achieved against offered rate (messages/s)", [("replies/s", "#2ca02c", s => s.ReplyRate), ("sent/s", "#ff7f0e", s => s.SentRate), ("offered", "#7f7f7f", s => s.OfferedRate)]));
        sb.Append("<table><tr><th>offered/s</th><th>sent</th><th>sent/s</th><th>replies</th><th>replies/s</th><th>accepted</th><th>positive</th><th>negative</th><th>lost</th><th>late</th><th>dup</th><th>unmatched</th><th>malformed</th><th>p50 us</th><th>p90 us</th><th>p99 us</th><th>p99.9 us</th><th>max us</th><th>target drops</th><th>own drops</th></tr>\n");
        foreach (var s in r.Steps)
        {
            sb.Append("<tr>");
            foreach (var cell in new[] { F(s.OfferedRate, "0"), s.Sent.ToString(CultureInfo.InvariantCulture), F(s.SentRate, "0"), s.Replies.ToString(CultureInfo.InvariantCulture), F(s.ReplyRate, "0"),
                s.Accepted.ToString(CultureInfo.InvariantCulture), s.Positive.ToString(CultureInfo.InvariantCulture), s.Negative.ToString(CultureInfo.InvariantCulture), s.Lost.ToString(CultureInfo.InvariantCulture),
                s.Late.ToString(CultureInfo.InvariantCulture), s.Duplicate.ToString(CultureInfo.InvariantCulture), s.Unmatched.ToString(CultureInfo.InvariantCulture), s.Malformed.ToString(CultureInfo.InvariantCulture),
                F(s.P50Us), F(s.P90Us), F(s.P99Us), F(s.P999Us), F(s.MaxUs), D(s.TargetKernelDrops), D(s.OwnKernelDrops) })
            {
                sb.Append("<td>").Append(cell).Append("</td>");
            }
            sb.Append("</tr>\n");
        }
        sb.Append("</table>\n<pre>").Append(WebUtility.HtmlEncode(Text(r))).Append("</pre>\n</body></html>\n");
        return sb.ToString();
    }

    private static string Chart(IReadOnlyList<StepResult> steps, string title, (string Name, string Color, Func<StepResult, double> Value)[] series, bool logY = false)
    {
        const int W = 640, H = 320, L = 70, R = 120, T = 30, B = 40;
        if (steps.Count == 0) return "<p>(no step finished: nothing to chart)</p>\n";   // e.g. Ctrl-C before the first step ended
        double xmax = Math.Max(1, steps.Max(s => Math.Max(s.OfferedRate, s.SentRate)));
        double ymax = Math.Max(1, steps.Max(s => series.Max(x => x.Value(s))));
        double ymin = 0;
        if (logY)
        {
            // Decades around the data: latencies span 100 us to seconds across a knee.
            double lo = steps.SelectMany(s => series.Select(x => x.Value(s))).Where(v => v > 0).DefaultIfEmpty(1).Min();
            ymin = Math.Pow(10, Math.Floor(Math.Log10(Math.Max(lo, 1e-3))));
            ymax = Math.Pow(10, Math.Ceiling(Math.Log10(ymax)));
            if (ymax <= ymin) ymax = ymin * 10;
        }
        double X(double v) => L + v / xmax * (W - L - R);
        double Y(double v) => logY
            ? H - B - (Math.Log10(Math.Max(v, ymin)) - Math.Log10(ymin)) / (Math.Log10(ymax) - Math.Log10(ymin)) * (H - T - B)
            : H - B - v / ymax * (H - T - B);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{L}\" y=\"18\" font-size=\"14\">{WebUtility.HtmlEncode(title)}</text>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" y1=\"{H - B}\" x2=\"{W - R}\" y2=\"{H - B}\" stroke=\"black\"/><line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{H - B}\" stroke=\"black\"/>\n");
        for (int i = 0; i <= 4; i++)
        {
            double xv = xmax * i / 4;
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(X(xv))}\" y=\"{H - B + 15}\" font-size=\"10\" text-anchor=\"middle\">{F(xv, "0")}</text>\n");
        }
        var yticks = new List<double>();
        if (logY) for (double v = ymin; v <= ymax * 1.0001; v *= 10) yticks.Add(v);
        else for (int i = 0; i <= 4; i++) yticks.Add(ymax * i / 4);
        foreach (double yv in yticks)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{L - 4}\" y=\"{F(Y(yv) + 3)}\" font-size=\"10\" text-anchor=\"end\">{F(yv, yv < 1 ? "0.###" : "0")}</text>");
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{L}\" y1=\"{F(Y(yv))}\" x2=\"{W - R}\" y2=\"{F(Y(yv))}\" stroke=\"#ddd\"/>\n");
        }
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{(L + W - R) / 2}\" y=\"{H - 5}\" font-size=\"11\" text-anchor=\"middle\">offered rate (messages/s)</text>\n");
        for (int k = 0; k < series.Length; k++)
        {
            var (name, color, value) = series[k];
            var pts = string.Join(" ", steps.Select(s => F(X(s.OfferedRate > 0 ? s.OfferedRate : s.SentRate)) + "," + F(Y(value(s)))));
            sb.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{pts}\"/>\n");
            foreach (var s in steps)
            {
                sb.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{F(X(s.OfferedRate > 0 ? s.OfferedRate : s.SentRate))}\" cy=\"{F(Y(value(s)))}\" r=\"3\" fill=\"{color}\"/>");
            }
            sb.Append(CultureInfo.InvariantCulture, $"\n<text x=\"{W - R + 8}\" y=\"{T + 15 + 16 * k}\" font-size=\"12\" fill=\"{color}\">{WebUtility.HtmlEncode(name)}</text>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }
}
