using Microsoft.ML.Retention.Models;

namespace Microsoft.ML.Retention;

public sealed partial class ViRImageClassificationTrainer
{
    /// <summary>Everything <see cref="ViRImageClassificationTrainer"/> can be told to train an RMT (<c>Trainers.Rmt</c>).</summary>
    public sealed class RmtOptions : OptionsBase
    {
        // ---- Model ----

        /// <summary>
        /// The model's shape: a preset, with any field changed by <c>with</c>, e.g. <c>RmtConfig.Mini</c> for 28×28 grayscale
        /// images or <c>RmtConfig.Tiny</c> (the default) for 224² photos and the official ImageNet weights. Images are resized
        /// to its resolution. The label's key count sets <see cref="RmtConfig.NumClasses"/>, and a [C, H, W] pixel-vector
        /// column sets <see cref="RmtConfig.Channels"/>.
        /// </summary>
        public RmtConfig Architecture = RmtConfig.Tiny;

        /// <summary>
        /// Reads <see cref="OptionsBase.InitialWeights"/> from the <c>model_ema</c> entry of an official training checkpoint
        /// (the weights of the paper's S, B and L accuracies) instead of <c>model</c>.
        /// </summary>
        public bool InitialWeightsMovingAverage;

        internal override IVisionBackboneConfig? Backbone => Architecture;

        internal override bool InitialWeightsFromMovingAverage => InitialWeightsMovingAverage;
    }
}
