namespace Microsoft.ML.Retention.Models;

/// <summary>Writes a file so that it appears whole or not at all, even when several writers target the same path.</summary>
internal static class AtomicFile
{
    /// <summary>
    /// Writes through a temporary file of its own beside <paramref name="path"/>, then moves it over the path. On any
    /// failure the temporary file is deleted and the path is left as it was.
    /// </summary>
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new IOException($"'{path}' is a directory; give the path of a file to write.");
        string temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
                write(file);
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            if (File.Exists(temporary)) File.Delete(temporary); // absent when the file could not even be created
            throw;
        }
    }
}
