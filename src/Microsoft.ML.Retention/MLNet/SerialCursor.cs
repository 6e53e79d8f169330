using Microsoft.ML.Data;

namespace Microsoft.ML.Retention;

/// <summary>
/// Opens one cursor that reads the rows in order on the calling thread. ML.NET's <c>GetRowCursor</c> may read
/// cacheable columns (encoded image bytes among them) on worker threads, and then an upstream failure, such as a
/// missing file, surfaces from <c>MoveNext</c> as "Splitter/consolidator worker encountered exception", detached
/// from its row. Read serially, the failure comes from the getter of the row it belongs to, so it can be named,
/// or the row skipped.
/// </summary>
internal static class SerialCursor
{
    public static DataViewRowCursor Open(IDataView view, IEnumerable<DataViewSchema.Column> columns)
    {
        var cursors = view.GetRowCursorSet(columns, n: 1);
        if (cursors.Length == 1) return cursors[0];
        foreach (var cursor in cursors) cursor.Dispose();
        return view.GetRowCursor(columns);
    }
}
