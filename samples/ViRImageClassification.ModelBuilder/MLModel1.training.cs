using Microsoft.ML;
using Microsoft.ML.Retention;
using Microsoft.ML.Retention.Models;

namespace ViRImageClassification.ModelBuilder;

/// <summary>The training half of Model Builder's generated class, with its members and signatures, training a ViR.</summary>
public partial class MLModel1
{
    /// <summary>Images per label folder: the image files (.png, .jpg, .jpeg, .gif) of each subfolder of <paramref name="folder"/>, labelled with its name.</summary>
    public static IDataView LoadImageFromFolder(MLContext mlContext, string folder)
    {
        var allowedImageExtensions = new[] { ".png", ".jpg", ".jpeg", ".gif" };
        var subDirectories = new DirectoryInfo(folder).GetDirectories().OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
        if (subDirectories.Count == 0)
            throw new DirectoryNotFoundException($"'{folder}' has no subfolders: put each label's images in a subfolder named after the label.");
        var rows = subDirectories.SelectMany(directory => directory.EnumerateFiles()
            .Where(f => allowedImageExtensions.Contains(f.Extension.ToLowerInvariant()))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .Select(f => new ModelInput { Label = directory.Name, ImageSource = File.ReadAllBytes(f.FullName) }));
        return mlContext.Data.LoadFromEnumerable(rows.ToList());
    }

    /// <summary>Trains on the label folders in <paramref name="inputDataFolderPath"/> and saves the model to <paramref name="outputModelPath"/>.</summary>
    public static void Train(string outputModelPath, string inputDataFolderPath)
    {
        var mlContext = new MLContext(seed: 1);
        var data = LoadImageFromFolder(mlContext, inputDataFolderPath);
        var model = RetrainModel(mlContext, data);
        SaveModel(mlContext, model, data, outputModelPath);
    }

    /// <summary>Saves <paramref name="model"/> with <paramref name="data"/>'s schema as an .mlnet file (a model.zip).</summary>
    public static void SaveModel(MLContext mlContext, ITransformer model, IDataView data, string modelSavePath)
    {
        DataViewSchema dataViewSchema = data.Schema;
        using var fs = File.Create(modelSavePath);
        mlContext.Model.Save(model, dataViewSchema, fs);
    }

    /// <summary>Fits <see cref="BuildPipeline"/> on <paramref name="trainData"/>.</summary>
    public static ITransformer RetrainModel(MLContext mlContext, IDataView trainData)
    {
        var pipeline = BuildPipeline(mlContext);
        var model = pipeline.Fit(trainData);
        return model;
    }

    /// <summary>Label to key, the ViR on the encoded images, key back to label: Model Builder's pipeline with ViR(...) as its trainer.</summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext mlContext)
    {
        var pipeline = mlContext.Transforms.Conversion.MapValueToKey(outputColumnName: @"Label", inputColumnName: @"Label", addKeyValueAnnotationsAsText: false)
                                .Append(mlContext.MulticlassClassification.Trainers.ViR(labelColumnName: @"Label", scoreColumnName: @"Score", featureColumnName: @"ImageSource", architecture: ViRConfig.Mini, maxEpoch: 3))
                                .Append(mlContext.Transforms.Conversion.MapKeyToValue(outputColumnName: @"PredictedLabel", inputColumnName: @"PredictedLabel"));
        return pipeline;
    }
}
