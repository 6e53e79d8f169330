namespace Microsoft.ML.Retention.Onnx;

/// <summary>What an exported ViR takes as input.</summary>
public enum OnnxImageInput
{
    /// <summary>
    /// One decoded image as it is, at any size: <c>pixels</c> uint8 [height·width·4], its 4-byte pixels row by row in
    /// B, G, R, A order (an <c>MLImage</c>'s <c>Pixels</c> in <c>Bgra32</c> format), with <c>height</c> and <c>width</c>
    /// int64 [1]. The graph applies the model's <see cref="Models.ImagePreprocessing"/> (colour planes, scaling, the
    /// antialiased resize), so it scores as the library does. Needs opset 18 or newer.
    /// </summary>
    Pixels,

    /// <summary>
    /// A batch already preprocessed: <c>images</c> float32 [batch, C, H, W] at the exported resolution, made as
    /// <see cref="Models.ImagePreprocessing"/> says. For apps that batch, and for engines compared on the model alone.
    /// </summary>
    Images,
}
