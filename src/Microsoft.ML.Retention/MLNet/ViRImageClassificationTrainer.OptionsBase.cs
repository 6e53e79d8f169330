using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;
using Microsoft.ML.Retention.Training;

namespace Microsoft.ML.Retention;

public sealed partial class ViRImageClassificationTrainer
{
    /// <summary>
    /// What every backbone's options share: columns, optimisation, augmentation, precision, validation, reporting, data
    /// and runtime. <see cref="Options"/> adds a ViR's shape and retention forms, <see cref="RmtOptions"/> an RMT's shape.
    /// </summary>
    public abstract class OptionsBase
    {
        private protected OptionsBase()
        {
        }

        /// <summary>The image column every entry point reads by default: ML.NET's "Features".</summary>
        internal const string DefaultFeatureColumnName = "Features";

        // ---- Columns ----

        /// <summary>The label: a key column (use MapValueToKey). The class count is its key count.</summary>
        public string LabelColumnName = "Label";

        /// <summary>The images: an MLImage column (LoadImages), encoded bytes (LoadRawImageBytes or byte[]), or a float vector [C, H, W] (ExtractPixels).</summary>
        public string FeatureColumnName = DefaultFeatureColumnName;

        /// <summary>Output: class probabilities.</summary>
        public string ScoreColumnName = "Score";

        /// <summary>Output: the most probable class, as a key with the label's names.</summary>
        public string PredictedLabelColumnName = "PredictedLabel";

        /// <summary>
        /// Optional output: the representation the head reads, a float vector (a ViR's final [class] token, Dim values; an
        /// RMT's pooled features, Projection values). Null for none.
        /// </summary>
        public string? EmbeddingColumnName;

        // ---- Optimisation ----

        /// <summary>Passes over the training data.</summary>
        public int MaxEpoch = 10;

        /// <summary>Images per optimizer step (and per scoring batch).</summary>
        public int BatchSize = 32;

        /// <summary>Peak AdamW learning rate, reached after warmup; at most 1e30.</summary>
        public double LearningRate = 1e-3;

        /// <summary>AdamW weight decay (not applied to biases, norms and embeddings).</summary>
        public double WeightDecay = 0.05;

        /// <summary>Epochs of linear warmup before the cosine decay (fractions allowed).</summary>
        public double WarmupEpochs = 1;

        /// <summary>Label smoothing of the cross-entropy loss.</summary>
        public double LabelSmoothing = 0.1;

        /// <summary>Clips the global gradient norm to this value; 0 turns clipping off.</summary>
        public double GradientClipNorm = 1.0;

        /// <summary>
        /// A checkpoint to start from instead of random weights. For a ViR: a safetensors file written by
        /// <see cref="ViRImageClassificationTransformer.SaveWeights"/> or the PyTorch twin, or a timm ViT checkpoint
        /// (<see cref="ViRCheckpoint"/>). For an RMT: the official <c>.pth</c> files, a bare state_dict, or safetensors
        /// (<see cref="RmtCheckpoint"/>). The architecture must describe its model. Every tensor is loaded, except a head
        /// whose class count differs from the label's, which is newly initialised (the log says so).
        /// </summary>
        public string? InitialWeights;

        // ---- Augmentation ----

        /// <summary>
        /// Random resized crop, random translation and horizontal flip during training. Off by default: it pays off
        /// over many epochs, but in runs of about ten epochs it cost accuracy on Fashion-MNIST (docs/training.md).
        /// </summary>
        public bool Augment;

        /// <summary>Smallest crop area, as a fraction of the image, for the random resized crop.</summary>
        public double MinCropScale = 0.35;

        /// <summary>
        /// Largest random shift, as a fraction of the image side, in each direction; edges are repeated to fill.
        /// Shifts suit small images, where a resized crop loses too much detail; 0 turns it off.
        /// </summary>
        public double MaxTranslation;

        /// <summary>Flips half the training images horizontally (when <see cref="Augment"/> is on).</summary>
        public bool HorizontalFlip = true;

        /// <summary>
        /// The fraction of training images in which a random rectangle (2–33 % of the area) is replaced by noise, after
        /// the other augmentations (when <see cref="Augment"/> is on); 0 turns it off.
        /// </summary>
        public double RandomErasing;

        // ---- Precision ----

        /// <summary>The number format the trained transformer scores in (change it later with WithPrecision).</summary>
        public ViRPrecision PredictionPrecision = ViRPrecision.Float32;

        /// <summary>
        /// The number format of training's forward and backward passes. BFloat16 is mixed precision: a bfloat16 copy of
        /// the weights computes, while the fp32 weights and the AdamW state take the updates. Devices without native
        /// bfloat16 train in Float32, with a warning.
        /// </summary>
        public ViRPrecision TrainingPrecision = ViRPrecision.Float32;

        // ---- Validation ----

        /// <summary>
        /// Data scored after every epoch, with the columns the trainer sees: its label must be a key with the training
        /// label's classes in the same order (map both with one fitted MapValueToKey), or Fit throws.
        /// </summary>
        public IDataView? ValidationSet;

        /// <summary>Without a ValidationSet, holds out this fraction of the training rows for validation (0 for none).</summary>
        public double ValidationSetFraction;

        /// <summary>Stops when validation stops improving; needs validation data.</summary>
        public EarlyStoppingOptions? EarlyStopping;

        // ---- Reporting ----

        /// <summary>Called after every epoch with its metrics.</summary>
        public Action<ViREpochMetrics>? MetricsCallback;

        /// <summary>Called after every optimizer step (for progress bars).</summary>
        public Action<ViRStepProgress>? ProgressCallback;

        // ---- Data ----

        /// <summary>
        /// Skips rows whose image cannot be read (a missing, empty or undecodable file, whatever loader read it, or
        /// non-finite pixels), with a logged warning naming the row and a count, instead of failing with an
        /// <see cref="InvalidDataException"/> that names them.
        /// </summary>
        public bool SkipBadImages;

        /// <summary>
        /// Decoded training images are kept in memory (as float32 [N, C, H, W]) when they fit in this many bytes;
        /// larger data sets are streamed from the IDataView every epoch through a shuffle buffer.
        /// </summary>
        public long InMemoryBudgetBytes = 2L << 30;

        // ---- Runtime ----

        /// <summary>Seed for initialisation, shuffling, augmentation and dropout; default: the MLContext's seed, else 1.</summary>
        public int? Seed;

        /// <summary>Where to train and score.</summary>
        public ViRDevice Device = ViRDevice.Auto;

        /// <summary>With Device = Cuda and no CUDA, train on the CPU with a warning instead of failing.</summary>
        public bool FallbackToCpu;

        /// <summary>libtorch intra-op threads; default: libtorch's choice.</summary>
        public int? ThreadCount;

        /// <summary>The architecture to train (null when the options leave it unset).</summary>
        internal abstract IVisionBackboneConfig? Backbone { get; }

        /// <summary>How retention is computed in training and by the trained transformer (RMT has one form).</summary>
        internal virtual RetentionSettings TrainingForm => default;

        /// <inheritdoc cref="TrainingForm"/>
        internal virtual RetentionSettings PredictionForm => default;

        /// <summary>Whether <see cref="InitialWeights"/> is read from a training checkpoint's moving average.</summary>
        internal virtual bool InitialWeightsFromMovingAverage => false;
    }
}
