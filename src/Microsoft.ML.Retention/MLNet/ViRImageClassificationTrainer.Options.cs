using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention;

public sealed partial class ViRImageClassificationTrainer
{
    /// <summary>Everything <see cref="ViRImageClassificationTrainer"/> can be told to train a ViR.</summary>
    public sealed class Options : OptionsBase
    {
        // ---- Model ----

        /// <summary>
        /// The model's shape: a preset, with any field changed by <c>with</c>, e.g. <c>ViRConfig.Mini with { Dim = 128 }</c>.
        /// Images are resized to its resolution. The label's key count sets <see cref="ViRConfig.NumClasses"/>, and a
        /// [C, H, W] pixel-vector column sets <see cref="ViRConfig.Channels"/>.
        /// </summary>
        public ViRConfig Architecture = ViRConfig.Tiny;

        // ---- Retention ----

        /// <summary>How retention is computed in training: Parallel or Chunkwise (their gradients agree).</summary>
        public RetentionSettings TrainingRetention = new(RetentionMode.Parallel);

        /// <summary>How the trained transformer computes retention when it predicts (change it later with WithRetentionMode).</summary>
        public RetentionSettings PredictionRetention = new(RetentionMode.Parallel);

        internal override IVisionBackboneConfig? Backbone => Architecture;

        internal override RetentionSettings TrainingForm => TrainingRetention;

        internal override RetentionSettings PredictionForm => PredictionRetention;
    }
}
