using System.Security.Cryptography;

namespace Microsoft.ML.Retention;

/// <summary>Passes reads or writes through to another stream and keeps a SHA-256 of every byte that passed.</summary>
internal sealed class HashingStream(Stream inner) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    /// <summary>The SHA-256 of the bytes so far.</summary>
    public byte[] Hash() => _hash.GetCurrentHash();

    /// <summary>Reads (and hashes) whatever the reader left, so the hash covers the whole stream.</summary>
    public void ReadToEnd()
    {
        var buffer = new byte[81920];
        while (Read(buffer, 0, buffer.Length) > 0) { }
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        int read = inner.Read(buffer, offset, count);
        _hash.AppendData(buffer, offset, read);
        return read;
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        inner.Write(buffer, offset, count);
        _hash.AppendData(buffer, offset, count);
    }

    public override bool CanRead => inner.CanRead;
    public override bool CanWrite => inner.CanWrite;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}
