using System.Runtime.InteropServices;

namespace Microsoft.ML.Retention.Native;

/// <summary>
/// A large buffer written front to back whose start can be given back while its end is still being written: address
/// space for all of it, memory only for the pages touched and not yet released. A decoder that writes a whole image
/// into one buffer (SkiaSharp's incremental PNG decoder) then needs memory for the rows in flight, not for the image.
/// </summary>
internal sealed class ForwardOnlyBuffer : IDisposable
{
    private readonly long _length;
    private long _released; // [0, _released) is given back, a whole number of pages
    private static readonly long Page = Environment.SystemPageSize;

    public ForwardOnlyBuffer(long length)
    {
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), length, $"length must be positive, but it is {length}.");
        _length = (length + Page - 1) / Page * Page;
        Pointer = Reserve(_length);
    }

    /// <summary>The buffer's first byte; bytes before <see cref="Released"/> may no longer be read or written.</summary>
    public IntPtr Pointer { get; private set; }

    public long Released => _released;

    /// <summary>Gives back every whole page before <paramref name="offset"/>; the caller never touches those bytes again.</summary>
    public void ReleaseBefore(long offset)
    {
        long end = Math.Min(offset, _length) / Page * Page;
        if (end <= _released) return;
        if (OperatingSystem.IsWindows()) VirtualFree(Pointer + (nint)_released, (nuint)(end - _released), MEM_DECOMMIT);
        else munmap(Pointer + (nint)_released, (nuint)(end - _released));
        _released = end;
    }

    public void Dispose()
    {
        if (Pointer == IntPtr.Zero) return;
        if (OperatingSystem.IsWindows()) VirtualFree(Pointer, 0, MEM_RELEASE); // the whole reservation, from its base
        else if (_released < _length) munmap(Pointer + (nint)_released, (nuint)(_length - _released));
        Pointer = IntPtr.Zero;
    }

    private static IntPtr Reserve(long length)
    {
        IntPtr pointer;
        if (OperatingSystem.IsWindows())
            // Committed memory costs physical pages only where it is touched.
            pointer = VirtualAlloc(IntPtr.Zero, (nuint)length, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
        else if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            int anonymous = OperatingSystem.IsLinux() ? 0x20 | 0x4000 : 0x1000; // MAP_ANONYMOUS (| MAP_NORESERVE on Linux)
            pointer = mmap(IntPtr.Zero, (nuint)length, PROT_READ | PROT_WRITE, MAP_PRIVATE | anonymous, -1, 0);
            if (pointer == new IntPtr(-1)) pointer = IntPtr.Zero;
        }
        else
            throw new PlatformNotSupportedException($"Reading a PNG row by row needs Linux, macOS or Windows; this is {RuntimeInformation.OSDescription}.");
        if (pointer == IntPtr.Zero)
            throw new OutOfMemoryException($"{length:N0} bytes of address space could not be reserved for decoding (error {Marshal.GetLastPInvokeError()}).");
        return pointer;
    }

    private const int PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2;
    private const uint MEM_COMMIT = 0x1000, MEM_RESERVE = 0x2000, MEM_DECOMMIT = 0x4000, MEM_RELEASE = 0x8000, PAGE_READWRITE = 4;

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr mmap(IntPtr address, nuint length, int protection, int flags, int fd, long offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(IntPtr address, nuint length);

    [DllImport("kernel32", SetLastError = true)]
    private static extern IntPtr VirtualAlloc(IntPtr address, nuint size, uint type, uint protection);

    [DllImport("kernel32", SetLastError = true)]
    private static extern bool VirtualFree(IntPtr address, nuint size, uint type);
}
