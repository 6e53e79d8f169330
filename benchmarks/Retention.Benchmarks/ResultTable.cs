using System.Text;
using System.Text.Json;
using Retention.Plots;

namespace Retention.Benchmarks;

/// <summary>One benchmark table: printed as markdown, saved as JSON.</summary>
public sealed class ResultTable
{
    public ResultTable(string name, string title, params string[] columns)
    {
        Name = name;
        Title = title;
        Columns = columns;
    }

    public string Name { get; }
    public string Title { get; }
    public string[] Columns { get; }
    public List<string[]> Rows { get; } = new();
    public List<string> Notes { get; } = new();

    /// <summary>PNG figures of this table's measurements, drawn by the plot helper.</summary>
    internal List<Figure> Figures { get; } = new();

    public void Add(params object[] cells) => Rows.Add(cells.Select(Format).ToArray());

    public string ToMarkdown()
    {
        var md = new StringBuilder();
        md.AppendLine($"### {Title}").AppendLine();
        md.AppendLine("| " + string.Join(" | ", Columns) + " |");
        md.AppendLine("|" + string.Concat(Columns.Select(_ => "---|")));
        foreach (var row in Rows) md.AppendLine("| " + string.Join(" | ", row) + " |");
        foreach (var note in Notes) md.AppendLine().AppendLine(note);
        return md.AppendLine().ToString();
    }

    public static void Save(string folder, IReadOnlyList<ResultTable> tables, string header)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "results.md"), header + string.Concat(tables.Select(t => t.ToMarkdown())));
        File.WriteAllText(Path.Combine(folder, "results.json"), JsonSerializer.Serialize(
            tables.Select(t => new { t.Name, t.Title, t.Columns, t.Rows, t.Notes }), new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string Format(object cell) => cell switch
    {
        double d when double.IsNaN(d) => "–",
        double d => d >= 100 ? d.ToString("F0") : d >= 10 ? d.ToString("F1") : d.ToString("F3"),
        float f => Format((double)f),
        _ => cell.ToString() ?? "",
    };
}
