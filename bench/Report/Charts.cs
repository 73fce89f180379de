using System.Text.Json.Nodes;
using OxyPlot;
using OxyPlot.Axes;
using OxyPlot.Legends;
using OxyPlot.Series;

namespace AotFlash.Bench.Report;

/// <summary>The report's charts as SVG, drawn by OxyPlot from the same rows as the tables.</summary>
public static class Charts
{
    public static void Write(JsonObject r, string dir)
    {
        // Only the charts whose stage ran.
        if (r["io_probe"] is not null) Save(IoProbe(r), Path.Combine(dir, "io_probe.svg"));
        if (r["paper"] is not null) Save(Breakdown(r), Path.Combine(dir, "breakdown.svg"));
        if (r["budget_sweep"] is not null) Save(Budget(r), Path.Combine(dir, "budget.svg"));
        if (r["window_sweep"] is not null) Save(Window(r), Path.Combine(dir, "window.svg"));
        if (r["dense"] is not null) Save(Dense(r), Path.Combine(dir, "dense.svg"));
    }

    private static PlotModel IoProbe(JsonObject r)
    {
        var m = Model("Random O_DIRECT reads: MB/s by request size and queue depth");
        m.Axes.Add(new LogarithmicAxis { Position = AxisPosition.Bottom, Base = 2, Title = "request (KiB)" });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "MB/s", Minimum = 0 });
        foreach (var group in r["io_probe"]!.AsArray().GroupBy(p => Row.Number(p, "queue_depth")))
        {
            var s = new LineSeries { Title = $"depth {group.Key}", MarkerType = MarkerType.Circle };
            foreach (var p in group) s.Points.Add(new DataPoint(Row.Number(p, "chunk_bytes")!.Value / 1024, Row.Number(p, "mb_per_s") ?? 0));
            m.Series.Add(s);
        }
        return m;
    }

    private static PlotModel Breakdown(JsonObject r)
    {
        var rows = Markdown.Rows(r, "paper");
        var m = Model("Decode ms/token at 50% of the model's size (dense: all of it, no limit): where the time goes");
        var labels = rows.Select(x => Markdown.Str(x, "mode") + (x["window"] is { } w ? $" w{w}" : "")).ToArray();
        m.Axes.Add(new CategoryAxis { Position = AxisPosition.Left, ItemsSource = labels, Key = "c" });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "ms/token", Minimum = 0 });
        foreach (var (key, title) in new[] { ("decode_io_ms_per_token", "I/O"), ("decode_mem_ms_per_token", "memory management"), ("decode_compute_ms_per_token", "compute") })
        {
            var s = new BarSeries { Title = title, IsStacked = true, YAxisKey = "c" };
            foreach (var x in rows) s.Items.Add(new BarItem(Row.Number(x, key) ?? 0));
            m.Series.Add(s);
        }
        return m;
    }

    private static PlotModel Budget(JsonObject r)
    {
        var m = Model("Decode ms/token by memory limit (budget = cgroup limit)");
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "limit (% of the model file)" });
        m.Axes.Add(new LogarithmicAxis { Position = AxisPosition.Left, Title = "ms/token" });
        var models = r["models"]!.AsArray();
        foreach (var group in Markdown.Rows(r, "budget_sweep").GroupBy(x => $"{Markdown.Str(x, "engine")} {Markdown.Str(x, "mode")}"))
        {
            var s = new LineSeries { Title = group.Key, MarkerType = MarkerType.Circle };
            foreach (var x in group.Where(x => Row.Number(x, "decode_ms_per_token") is not null))
            {
                double file = models.Where(mm => Markdown.Str(mm, "name") == Markdown.Str(x, "model")).Select(mm => Row.Number(mm, "file_bytes")).First()!.Value;
                s.Points.Add(new DataPoint(Math.Round(100 * Row.Number(x, "limit_bytes")!.Value / file), Row.Number(x, "decode_ms_per_token")!.Value));
            }
            m.Series.Add(s);
        }
        return m;
    }

    private static PlotModel Window(JsonObject r)
    {
        var m = Model("Window: DRAM held vs bytes read per token (50%)");
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "window (tokens)" });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = "MiB read per token", Key = "read", Minimum = 0 });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Right, Title = "accounted peak DRAM (MiB)", Key = "dram" });
        var read = new LineSeries { Title = "read per token", YAxisKey = "read", MarkerType = MarkerType.Circle };
        var dram = new LineSeries { Title = "accounted peak DRAM", YAxisKey = "dram", MarkerType = MarkerType.Square };
        foreach (var x in Markdown.Rows(r, "window_sweep").Where(x => Row.Number(x, "decode_bytes_read_per_token") is not null))
        {
            double w = Row.Number(x, "window")!.Value;
            read.Points.Add(new DataPoint(w, Row.Number(x, "decode_bytes_read_per_token")!.Value / (1 << 20)));
            dram.Points.Add(new DataPoint(w, (Row.Number(x, "accounted_peak_bytes") ?? 0) / (1 << 20)));
        }
        m.Series.Add(read);
        m.Series.Add(dram);
        return m;
    }

    private static PlotModel Dense(JsonObject r)
    {
        var rows = Markdown.Rows(r, "dense").Where(x => Row.Number(x, "threads") == 2).ToList();
        var m = Model("Dense decode tokens/s, 2 threads (110M shape)");
        var types = rows.Select(x => Markdown.Str(x, "model")).Distinct().ToArray();
        m.Axes.Add(new CategoryAxis { Position = AxisPosition.Left, ItemsSource = types, Key = "c" });
        m.Axes.Add(new LinearAxis { Position = AxisPosition.Bottom, Title = "tokens/s", Minimum = 0 });
        foreach (var engine in rows.Select(x => Markdown.Str(x, "engine")).Distinct())
        {
            var s = new BarSeries { Title = engine, YAxisKey = "c" };
            foreach (var t in types)
            {
                double? ms = rows.Where(x => Markdown.Str(x, "engine") == engine && Markdown.Str(x, "model") == t).Select(x => Row.Number(x, "decode_ms_per_token")).FirstOrDefault();
                s.Items.Add(new BarItem(ms is > 0 ? 1000 / ms.Value : 0));
            }
            m.Series.Add(s);
        }
        return m;
    }

    private static PlotModel Model(string title)
    {
        var m = new PlotModel { Title = title, TitleFontSize = 13 };
        m.Legends.Add(new Legend { LegendPosition = LegendPosition.TopRight, LegendPlacement = LegendPlacement.Outside });
        return m;
    }

    private static void Save(PlotModel model, string path)
    {
        using var file = File.Create(path);
        new SvgExporter { Width = 760, Height = 400 }.Export(model, file);
    }
}
