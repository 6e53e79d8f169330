using System.IO.Compression;

namespace Microsoft.ML.Retention.Tests;

/// <summary>Edits inside a saved model.zip, for tests of damaged files.</summary>
internal static class ModelZip
{
    /// <summary>Replaces the entry named <paramref name="entryName"/> with <paramref name="change"/> of its bytes; the zip stays valid.</summary>
    public static void RewriteEntry(string zipPath, string entryName, Func<byte[], byte[]> change)
    {
        using var zip = ZipFile.Open(zipPath, ZipArchiveMode.Update);
        var entry = zip.Entries.Single(e => e.Name == entryName);
        string fullName = entry.FullName;
        byte[] bytes;
        using (var stream = entry.Open())
        using (var memory = new MemoryStream())
        {
            stream.CopyTo(memory);
            bytes = memory.ToArray();
        }
        entry.Delete();
        using var rewritten = zip.CreateEntry(fullName).Open();
        rewritten.Write(change(bytes));
    }
}
