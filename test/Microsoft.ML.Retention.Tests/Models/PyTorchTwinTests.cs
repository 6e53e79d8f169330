using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Retention.Models;
using Microsoft.ML.Retention.RetentionMath;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// The PyTorch twin (python/vir) on Debian's python3-torch: trained under torchrun with DDP, loaded here with the same
/// logits in every form; a model trained here loaded there; a ViT checkpoint starting a ViR. build/get-python-torch.sh
/// installs python3-torch.
/// </summary>
[TestClass]
public sealed class PyTorchTwinTests
{
    private const string Python = "/usr/bin/python3";
    private static string _work = "";
    private static readonly RetentionMode[] Modes = { RetentionMode.Parallel, RetentionMode.Chunkwise, RetentionMode.Recurrent };

    /// <summary>A small ViR, written by the library as JSON and read by the twin as its --config.</summary>
    private static readonly ViRConfig Small = ViRConfig.Mini with { Dim = 48, Depth = 2 };

    private static Dictionary<string, string> Environment => new()
    {
        ["PYTHONPATH"] = Path.Combine(TestProcess.RepoRoot, "python"),
        ["OMP_NUM_THREADS"] = "1",
    };

    [ClassInitialize]
    public static void CreateWorkFolder(TestContext _)
    {
        _work = Path.Combine(Path.GetTempPath(), $"vir-twin-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_work);
        var check = TestProcess.Run(Python, "-c \"import torch, PIL; print(torch.__version__)\"", _work);
        check.AssertSucceeded("importing torch in /usr/bin/python3 (run build/get-python-torch.sh)");
        Console.WriteLine($"PyTorch {check.Stdout.Trim()}");
    }

    [ClassCleanup]
    public static void RemoveWorkFolder()
    {
        if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
    }

    private static TestProcess.Result Twin(string module, string arguments, string what)
    {
        var result = TestProcess.Run(Python, $"-m {module} {arguments}", _work, Environment);
        result.AssertSucceeded(what);
        return result;
    }

    /// <summary>
    /// torchrun with 2 processes on this machine's cores (DDP over gloo). torchrun 1.13 under Python 3.11 cannot parse
    /// its own default redirect setting (0), so the test sets one it can parse (docs/scale-out.md).
    /// </summary>
    private static string TrainWithTorchrun(string arch, string output)
    {
        string config = Small.ToJson().Replace("\"", "\\\"");
        var run = TestProcess.Run("/usr/bin/torchrun",
            $"--standalone --nproc_per_node=2 --redirects 2 --tee 2 -m vir.train --arch {arch} --data {TestProcess.Quote(FashionMnist.Root)} --config \"{config}\" " +
            $"--max-images-per-class 16 --epochs 1 --max-steps 4 --batch-size 8 --out {TestProcess.Quote(output)}", _work, Environment);
        run.AssertSucceeded($"torchrun training of a {arch}");
        Console.WriteLine(run.Stdout);
        StringAssert.Contains(run.Stdout, "2 processes");
        return output;
    }

    private static double RelativeDifference(Tensor actual, Tensor expected) =>
        (actual - expected).abs().max().ToDouble() / expected.abs().max().ToDouble();

    [TestMethod]
    public void ACheckpointTrainedWithTorchrunScoresTheSameHereInEveryForm()
    {
        using var scope = NewDisposeScope();
        string checkpoint = TrainWithTorchrun("ViR", Path.Combine(_work, "twin.safetensors"));
        var images = FashionMnist.Rows("test", 1).Select(r => Path.Combine(FashionMnist.Root, r.ImagePath)).ToList();
        string logitsFile = Path.Combine(_work, "twin-logits.safetensors");
        Twin("vir.logits", $"--model {TestProcess.Quote(checkpoint)} --images {string.Join(' ', images.Select(TestProcess.Quote))} --out {TestProcess.Quote(logitsFile)}", "vir.logits");
        var (expected, _) = SafeTensors.Read(logitsFile);

        using var model = ViRCheckpoint.Load(checkpoint, out var labels);
        model.eval();
        Assert.AreEqual(Small with { NumClasses = 10 }, model.Config);
        CollectionAssert.AreEqual(FashionMnist.Rows("test", 1).Select(r => r.Label).ToArray(), labels!.ToArray());
        using (no_grad())
            foreach (var mode in Modes)
            {
                double difference = RelativeDifference(model.forward(expected["images"], new RetentionSettings(mode)), expected[$"logits.{mode}"]);
                Console.WriteLine($"{mode}: logits differ from PyTorch's by {difference:G3} of their largest magnitude");
                Assert.IsTrue(difference < 1e-4, $"{mode}: {difference:G3}");
            }

        // ML.NET: the checkpoint as a transformer, from the image files, in recurrent form, through a PredictionEngine and model.zip.
        var ml = new MLContext(seed: 1);
        using var vir = ml.Model.LoadViRWeights(checkpoint, featureColumnName: "Image").WithRetentionMode(RetentionMode.Recurrent);
        var rows = ml.Data.LoadFromEnumerable(images.Select(f => new FashionMnist.ImageRow { ImagePath = f }));
        var loadImages = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(rows);
        string zip = Path.Combine(_work, "twin-model.zip");
        ml.Model.Save(loadImages.Append(vir), rows.Schema, zip);
        var loaded = ml.Model.Load(zip, out _);
        using var engine = ml.Model.CreatePredictionEngine<FashionMnist.ImageRow, FashionMnist.ScoreRow>(loaded);
        var probabilities = nn.functional.softmax(expected["logits.Recurrent"], 1);
        for (int i = 0; i < images.Count; i++)
        {
            var score = engine.Predict(new FashionMnist.ImageRow { ImagePath = images[i] }).Score;
            double difference = (tensor(score) - probabilities[i]).abs().max().ToDouble();
            Assert.IsTrue(difference < 1e-4, $"{images[i]}: ML.NET's probabilities differ from PyTorch's by {difference:G3}");
        }
        foreach (var t in expected.Values) t.Dispose();
    }

    [TestMethod]
    public void AModelTrainedInMLNetScoresTheSameInThePyTorchTwin()
    {
        using var scope = NewDisposeScope();
        var ml = new MLContext(seed: 1);
        using var trained = TinyFit.Fit(ml, TinyFit.Images(ml), o => { o.Architecture = Small; o.MaxEpoch = 2; });
        string weights = Path.Combine(_work, "mlnet.safetensors"), inputs = Path.Combine(_work, "inputs.safetensors"), logitsFile = Path.Combine(_work, "mlnet-logits.safetensors");
        trained.SaveWeights(weights);
        manual_seed(2);
        var images = rand(6, 1, 28, 28) * 2 - 1;
        SafeTensors.Write(inputs, new Dictionary<string, Tensor> { ["images"] = images }, new Dictionary<string, string>());
        Twin("vir.logits", $"--model {TestProcess.Quote(weights)} --inputs {TestProcess.Quote(inputs)} --chunk-size 16 --out {TestProcess.Quote(logitsFile)}", "vir.logits");
        var (twin, metadata) = SafeTensors.Read(logitsFile);
        Assert.AreEqual(string.Join(',', trained.LabelNames), metadata["labels"]);
        using (no_grad())
            foreach (var mode in Modes)
            {
                double difference = RelativeDifference(twin[$"logits.{mode}"], trained.Model.forward(images, new RetentionSettings(mode, 16)));
                Console.WriteLine($"{mode}: PyTorch's logits differ from ML.NET's by {difference:G3} of their largest magnitude");
                Assert.IsTrue(difference < 1e-4, $"{mode}: {difference:G3}");
            }
        foreach (var t in twin.Values) t.Dispose();
    }

    [TestMethod]
    public void AViTCheckpointStartsAViRThatFineTunes()
    {
        using var scope = NewDisposeScope();
        string vit = TrainWithTorchrun("ViT", Path.Combine(_work, "vit.safetensors"));
        var (checkpoint, _) = SafeTensors.Read(vit);
        Assert.AreEqual(Small.PatchCount + 1, checkpoint["pos_embed"].shape[1], "timm's layout: a position for the [class] token");

        using var vir = ViRCheckpoint.LoadVisionTransformer(vit, Small with { NumClasses = 10 }, out bool headReplaced);
        Assert.IsFalse(headReplaced);
        string converted = Path.Combine(_work, "vit-as-vir.safetensors");
        ViRCheckpoint.Save(vir, converted);
        var (weights, _) = SafeTensors.Read(converted);
        foreach (var (name, value) in checkpoint)
        {
            if (name is "pos_embed" or "cls_token") continue;
            Assert.IsTrue(weights[name].equal(value).all().ToBoolean(), $"{name} differs from the ViT's");
        }
        Assert.IsTrue(weights["pos_embed"].equal(checkpoint["pos_embed"].narrow(1, 1, Small.PatchCount)).all().ToBoolean(), "the patch positions");
        Assert.IsTrue(weights["cls_token"].allclose(checkpoint["cls_token"] + checkpoint["pos_embed"].narrow(1, 0, 1)), "the class token with its position folded in");

        // Fine-tune from the ViT checkpoint directly, as a trainer's InitialWeights, for a head of 10 classes.
        var ml = new MLContext(seed: 1);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        using var tuned = TinyFit.Fit(ml, TinyFit.Images(ml, 30), o => { o.Architecture = Small; o.InitialWeights = vit; o.MaxEpoch = 3; });
        Assert.IsTrue(log.Any(l => l.Contains($"Starting from the weights in '{vit}'")), "the log names the starting weights");
        var test = FashionMnist.Preprocess(ml).Fit(FashionMnist.Load(ml, "train", 4)).Transform(FashionMnist.Load(ml, "test", 20));
        double accuracy = ml.MulticlassClassification.Evaluate(tuned.Transform(test)).MicroAccuracy;
        Console.WriteLine($"ViR fine-tuned from the ViT checkpoint for 3 epochs on 300 images: {accuracy:P1} on 200 test images (chance 10 %)");
        Assert.IsTrue(accuracy > 0.3, $"{accuracy:P1}");
        foreach (var t in checkpoint.Values.Concat(weights.Values)) t.Dispose();
    }

    [TestMethod]
    public void TheTwinsPresetsAreTheLibrarys()
    {
        var run = Twin("vir.config", "", "printing the twin's presets");
        var presets = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(run.Stdout)!;
        CollectionAssert.AreEquivalent(ViRConfig.Presets.Keys.ToArray(), presets.Keys.ToArray());
        foreach (var (name, json) in presets)
            Assert.AreEqual(ViRConfig.Presets[name], ViRConfig.FromJson(json.GetRawText()), name);
    }
}
