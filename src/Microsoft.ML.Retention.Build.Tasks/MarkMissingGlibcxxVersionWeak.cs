using Microsoft.Build.Framework;

namespace Microsoft.ML.Retention.Build.Tasks;

/// <summary>
/// TorchSharp 0.107's libLibTorchSharp.so requires GLIBCXX_3.4.32 for one symbol
/// (std::ios_base_library_init) that GCC 13 emits as a link marker and nothing calls.
/// On hosts whose libstdc++ lacks that version (Debian 12, Ubuntu 22.04) the library fails
/// to load. Marking the requirement WEAK in the build-output copy makes glibc's loader
/// accept it; where the version exists, a weak requirement binds as before.
/// The NuGet cache is never touched.
/// </summary>
public sealed class MarkMissingGlibcxxVersionWeak : Microsoft.Build.Utilities.Task
{
    private static readonly string[] LibraryDirectories =
    {
        "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64", "/lib64", "/usr/lib", "/lib",
    };

    /// <summary>Copies of the native library in build or publish output.</summary>
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    /// <summary>The symbol version to mark weak.</summary>
    public string Version { get; set; } = "GLIBCXX_3.4.32";

    /// <summary>Patch even where this build host's libstdc++ has the version (the app will run on another host).</summary>
    public bool Always { get; set; }

    /// <summary>Overrides the host libstdc++ lookup (tests use it).</summary>
    public string? HostLibStdCxx { get; set; }

    /// <inheritdoc/>
    public override bool Execute()
    {
        string? host = HostLibStdCxx ?? FindHostLibStdCxx();
        if (!Always && host is not null && new ElfFile(File.ReadAllBytes(host), host).DefinesVersion(Version))
        {
            Log.LogMessage(MessageImportance.Low, $"{host} defines {Version}; TorchSharp's native library needs no patch.");
            return true;
        }

        foreach (var item in Files)
        {
            string path = item.ItemSpec;
            var elf = new ElfFile(File.ReadAllBytes(path), path);
            if (elf.MarkVersionRequirementWeak(Version) == 0) continue;

            // Write beside, then rename, so an interrupted build never leaves a half-written library, and a
            // hard link into the NuGet cache (should a build make one) is replaced rather than written through.
            string temp = path + ".patching";
            File.WriteAllBytes(temp, elf.Bytes);
            File.Move(temp, path, overwrite: true);
            Log.LogMessage(MessageImportance.Normal, $"Marked {Version} weak in {path} (host libstdc++: {host ?? "not found"}).");
        }
        return !Log.HasLoggedErrors;
    }

    private static string? FindHostLibStdCxx()
    {
        var dirs = (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(LibraryDirectories);
        return dirs.Select(d => Path.Combine(d, "libstdc++.so.6")).FirstOrDefault(File.Exists);
    }
}
