using Microsoft.ML;
using Microsoft.ML.Retention.Models;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// The C# RMT against the PyTorch twin (python -m vir.rmt) on Debian's python3-torch, both ways through safetensors,
/// with MaSAD and MaSA stages, layer scale, and BatchNorm statistics that are not the identity.
/// </summary>
[TestClass]
public sealed class RmtTwinTests
{
    private const string Python = "/usr/bin/python3";

    private static readonly RmtConfig Config = RmtConfig.Mini with
    {
        Stages = RmtConfig.Mini.Stages.Select((s, i) => i == 2 ? s with { LayerScale = true } : s).ToArray(),
    };

    private static Dictionary<string, string> Environment => new()
    {
        ["PYTHONPATH"] = Path.Combine(TestProcess.RepoRoot, "python"),
        ["OMP_NUM_THREADS"] = "1",
    };

    private static string Run(string work, string arguments)
    {
        var result = TestProcess.Run(Python, $"-m vir.rmt {arguments}", work, Environment);
        result.AssertSucceeded($"python -m vir.rmt {arguments}");
        return result.Stdout;
    }

    /// <summary>One image at 224² and two at 40×56, grayscale.</summary>
    private static Dictionary<string, Tensor> Inputs() => new()
    {
        ["square"] = randn(1, 1, 224, 224).DetachFromDisposeScope(),
        ["odd"] = randn(2, 1, 40, 56).DetachFromDisposeScope(),
    };

    private static double Difference(Tensor ours, Tensor theirs) => (ours - theirs).abs().max().ToDouble() / theirs.abs().max().ToDouble();

    [TestMethod]
    public void ACheckpointWrittenHereGivesTheSameLogitsInPyTorch()
    {
        string work = Path.Combine(Path.GetTempPath(), $"rmt-twin-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            using var scope = NewDisposeScope();
            manual_seed(2);
            using var model = new RmtModel(Config);
            using (no_grad())
            {
                foreach (var (name, buffer) in model.named_buffers())
                    if (name.EndsWith("running_mean", StringComparison.Ordinal)) buffer.copy_(randn(buffer.shape) * 0.1);
                    else if (name.EndsWith("running_var", StringComparison.Ordinal)) buffer.copy_(rand(buffer.shape) + 0.5);
                foreach (var (name, parameter) in model.named_parameters())
                    if (name.Contains("gamma_")) parameter.copy_(randn(parameter.shape) * 0.3);
            }
            model.eval();
            RmtCheckpoint.Save(model, Path.Combine(work, "rmt.safetensors"));
            var inputs = Inputs();
            SafeTensors.Write(Path.Combine(work, "inputs.safetensors"), inputs, new Dictionary<string, string>());
            Run(work, "--model rmt.safetensors --inputs inputs.safetensors --out logits.safetensors");
            var (theirs, _) = SafeTensors.Read(Path.Combine(work, "logits.safetensors"));
            using var noGrad = no_grad();
            foreach (var (name, images) in inputs)
            {
                double difference = Difference(model.forward(images), theirs[$"logits.{name}"]);
                Console.WriteLine($"{name} [{string.Join(", ", images.shape)}]: C# against PyTorch {difference:G3} of the largest logit");
                Assert.IsTrue(difference < 1e-4, $"{name}: {difference:G3}");
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [TestMethod]
    public void ACheckpointWrittenByPyTorchLoadsHereWithTheSameLogits()
    {
        string work = Path.Combine(Path.GetTempPath(), $"rmt-twin-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            using var scope = NewDisposeScope();
            manual_seed(3);
            var inputs = Inputs();
            SafeTensors.Write(Path.Combine(work, "inputs.safetensors"), inputs, new Dictionary<string, string>());
            string config = Config.ToJson().Replace("\"", "\\\"");
            Run(work, $"--config \"{config}\" --seed 4 --save rmt.safetensors --inputs inputs.safetensors --out logits.safetensors");
            using var model = RmtCheckpoint.Load(Path.Combine(work, "rmt.safetensors"));
            Assert.AreEqual(Config, model.Config);
            model.eval();
            var (theirs, _) = SafeTensors.Read(Path.Combine(work, "logits.safetensors"));
            using var noGrad = no_grad();
            foreach (var (name, images) in inputs)
            {
                double difference = Difference(model.forward(images), theirs[$"logits.{name}"]);
                Console.WriteLine($"{name}: PyTorch's checkpoint scored here {difference:G3} of the largest logit from PyTorch's logits");
                Assert.IsTrue(difference < 1e-4, $"{name}: {difference:G3}");
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [TestMethod]
    public void ACheckpointOfAnotherShapeIsRefusedNamingTheTensors()
    {
        string path = Path.Combine(Path.GetTempPath(), $"rmt-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var model = new RmtModel(Config)) RmtCheckpoint.Save(model, path);
            var (tensors, metadata) = SafeTensors.Read(path);
            tensors["layers.0.blocks.0.retention.q_proj.weight"] = zeros(32, 31);
            tensors["extra"] = zeros(1);
            SafeTensors.Write(path, tensors, metadata);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => RmtCheckpoint.Load(path));
            StringAssert.Contains(e.Message, "layers.0.blocks.0.retention.q_proj.weight: expected [32, 32], actual [32, 31]");
            StringAssert.Contains(e.Message, "Unexpected: extra");
        }
        finally
        {
            File.Delete(path);
        }
    }

    // Writes checkpoints as the official training script (a DeiT fork) does, a bare state_dict, and a file whose
    // pickle would run a shell command if it were executed; then the logits of the saved weights.
    private const string PyTorchCheckpoints = """
        import argparse, json, os, sys, torch
        from vir import safetensors
        from vir.rmt import Rmt
        config = json.loads(open("config.json").read())
        torch.manual_seed(5)
        model, ema = Rmt(config).eval(), Rmt(config).eval()
        optimizer = torch.optim.AdamW(model.parameters())
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "lr_scheduler": {"last_epoch": 3}, "epoch": 3,
                    "model_ema": ema.state_dict(), "scaler": None, "args": argparse.Namespace(lr=5e-4, model="RMT_T3"), "max_accuracy": 0.5}, "training.pth")
        torch.save(model.state_dict(), "bare.pth")
        class Shell:
            def __reduce__(self):
                return (os.system, ("touch executed.txt",))
        torch.save({"model": Shell()}, "hostile.pth")
        inputs = safetensors.load("inputs.safetensors")[0]
        with torch.no_grad():
            out = {f"model.{n}": model(x) for n, x in inputs.items()}
            out.update({f"ema.{n}": ema(x) for n, x in inputs.items()})
        safetensors.save(out, "logits.safetensors")
        """;

    [TestMethod]
    public void OfficialStylePyTorchCheckpointsLoadThroughPyBridgeAndHostileOnesAreRefused()
    {
        string work = Path.Combine(Path.GetTempPath(), $"rmt-pth-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            using var scope = NewDisposeScope();
            manual_seed(6);
            var inputs = Inputs();
            SafeTensors.Write(Path.Combine(work, "inputs.safetensors"), inputs, new Dictionary<string, string>());
            File.WriteAllText(Path.Combine(work, "config.json"), Config.ToJson());
            File.WriteAllText(Path.Combine(work, "checkpoints.py"), PyTorchCheckpoints);
            TestProcess.Run(Python, "checkpoints.py", work, Environment).AssertSucceeded("writing PyTorch checkpoints");
            var (theirs, _) = SafeTensors.Read(Path.Combine(work, "logits.safetensors"));

            foreach (var (file, ema, prefix) in new[] { ("training.pth", false, "model"), ("training.pth", true, "ema"), ("bare.pth", false, "model") })
            {
                using var model = RmtCheckpoint.LoadPyTorch(Path.Combine(work, file), Config, movingAverage: ema);
                model.eval();
                using var noGrad = no_grad();
                foreach (var (name, images) in inputs)
                {
                    double difference = Difference(model.forward(images), theirs[$"{prefix}.{name}"]);
                    Console.WriteLine($"{file}{(ema ? " (model_ema)" : "")}, {name}: {difference:G3} of the largest logit");
                    Assert.IsTrue(difference < 1e-4, $"{file} {prefix} {name}: {difference:G3}");
                }
            }

            InitialWeightsTakeTheMovingAverageOfATrainingCheckpointWithANewHead(Path.Combine(work, "training.pth"));

            var hostile = Assert.ThrowsExactly<InvalidDataException>(() => RmtCheckpoint.LoadPyTorch(Path.Combine(work, "hostile.pth"), Config));
            Console.WriteLine(hostile.Message);
            StringAssert.Contains(hostile.Message, "hostile.pth");
            Assert.IsFalse(File.Exists(Path.Combine(work, "executed.txt")), "the pickle's command ran");
            var wrongModel = Assert.ThrowsExactly<InvalidDataException>(() => RmtCheckpoint.LoadPyTorch(Path.Combine(work, "bare.pth"), RmtConfig.Mini));
            StringAssert.Contains(wrongModel.Message, "nothing was loaded");
            var notPyTorch = Assert.ThrowsExactly<InvalidDataException>(() => RmtCheckpoint.LoadPyTorch(Path.Combine(work, "inputs.safetensors"), Config));
            StringAssert.Contains(notPyTorch.Message, "is not a PyTorch checkpoint");
            var hostileStart = Assert.ThrowsExactly<InvalidDataException>(() => Fit(Path.Combine(work, "hostile.pth"), new List<string>()));
            StringAssert.Contains(hostileStart.Message, "hostile.pth");
            Assert.IsFalse(File.Exists(Path.Combine(work, "executed.txt")), "the pickle's command ran through InitialWeights");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Fits the twin's config on five Fashion-MNIST classes from <paramref name="initialWeights"/>' model_ema, with a step too small to move a weight.</summary>
    private static ViRImageClassificationTransformer Fit(string initialWeights, List<string> log)
    {
        var ml = new MLContext(seed: 1);
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var classes = FashionMnist.Rows("train", 1).Select(r => r.Label).Take(5).ToHashSet();
        var rows = ml.Data.LoadFromEnumerable(FashionMnist.Interleaved(FashionMnist.Rows("train", 2).Where(r => classes.Contains(r.Label)).ToList()));
        var data = FashionMnist.Preprocess(ml).Fit(rows).Transform(rows);
        var options = RmtTrainerTests.Options();
        options.Architecture = Config;
        options.InitialWeights = initialWeights;
        options.InitialWeightsMovingAverage = true;
        options.LearningRate = 1e-30;
        options.WeightDecay = 0;
        return ml.MulticlassClassification.Trainers.Rmt(options).Fit(data);
    }

    private static void InitialWeightsTakeTheMovingAverageOfATrainingCheckpointWithANewHead(string path)
    {
        var log = new List<string>();
        using var fitted = Fit(path, log);
        Assert.IsTrue(log.Any(m => m.Contains($"Starting from the weights in '{path}', with a new head for 5 classes.")), string.Join("\n", log));
        using var ema = RmtCheckpoint.LoadPyTorch(path, Config, movingAverage: true);
        var expected = ema.named_parameters().ToDictionary(p => p.name, p => p.parameter.data<float>().ToArray());
        foreach (var (name, parameter) in fitted.Model.Module.named_parameters().Where(p => !p.name.StartsWith("head.", StringComparison.Ordinal)))
        {
            double moved = expected[name].Zip(parameter.data<float>().ToArray()).Max(p => Math.Abs(p.First - p.Second));
            Assert.IsTrue(moved < 1e-20, $"{name} differs from model_ema by {moved:G3}");
        }
        Assert.AreEqual(5, fitted.LabelNames.Count);
    }
}
