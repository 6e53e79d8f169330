using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// The packed package in apps outside the repository (test/PackageConsumer): no Directory.Build.props applies, and
/// a nuget.config adds the freshly packed package to the machine's usual source. The class packs, builds the app and
/// runs it once; the tests check what a user of the package gets.
/// </summary>
[TestClass]
public sealed class PackageConsumerTests
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif
    private static string _work = "";
    private static string _properties = "";
    private static string _appOutput = "";
    private static TestProcess.Result _appRun = null!;
    private static string _cachedNativeHashBeforeBuild = "";
    private static string _feed = "", _version = "";

    private static string RepoRoot => TestProcess.RepoRoot;
    private static string CachedNativeLibrary { get; } = Path.Combine(NuGetPackagesFolder, "torchsharp", TorchSharpVersion, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    private static string TorchSharpVersion => typeof(torch).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "";
    private static string NuGetPackagesFolder => Environment.GetEnvironmentVariable("NUGET_PACKAGES")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
    private static string AppDll => Path.Combine(_appOutput, "App.dll");

    [ClassInitialize]
    public static void PackAndBuildTheApp(TestContext _)
    {
        _work = Path.Combine(Path.GetTempPath(), $"vir-consumer-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_work);

        // A version of its own, so that no earlier package of the same version in any NuGet folder can stand in for this one.
        string feed = _feed = Path.Combine(_work, "feed");
        string suffix = $"preview.test{DateTime.UtcNow:yyyyMMddHHmmss}";
        Run("dotnet", $"pack {Quote(Path.Combine(RepoRoot, "src", "Microsoft.ML.Retention"))} -c {Configuration} --no-build -o {Quote(feed)} -p:VersionSuffix={suffix}", RepoRoot).AssertSucceeded("dotnet pack");
        Run("dotnet", $"pack {Quote(Path.Combine(RepoRoot, "src", "Microsoft.ML.Retention.Templates"))} -c {Configuration} --no-build -o {Quote(feed)} -p:VersionSuffix={suffix}", RepoRoot).AssertSucceeded("dotnet pack templates");
        string package = Directory.GetFiles(feed, "Microsoft.ML.Retention.*.nupkg").Single(f => !f.EndsWith(".snupkg", StringComparison.Ordinal) && !f.Contains(".Templates.", StringComparison.Ordinal));
        string version = _version = Path.GetFileNameWithoutExtension(package)["Microsoft.ML.Retention.".Length..];
        _properties = $"-p:MLRetentionVersion={version} -p:TorchSharpVersion={TorchSharpVersion}";

        // The machine's packages folder is read-only here (a fallback), so the test package never lands in it.
        File.WriteAllText(Path.Combine(_work, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <config><add key="globalPackagesFolder" value="{Path.Combine(_work, "packages")}" /></config>
              <packageSources><add key="test-feed" value="{feed}" /></packageSources>
              <fallbackPackageFolders><add key="machine" value="{NuGetPackagesFolder}" /></fallbackPackageFolders>
            </configuration>
            """);
        CopyDirectory(Path.Combine(RepoRoot, "test", "PackageConsumer"), _work);
        File.Copy(Path.Combine(RepoRoot, "samples", "ViRImageClassification.Consume", "ImageClassifier.cs"), Path.Combine(_work, "App", "ImageClassifier.cs"));

        _cachedNativeHashBeforeBuild = Sha256(CachedNativeLibrary);
        Run("dotnet", $"build App -c Release {_properties}", _work).AssertSucceeded("dotnet build App");
        _appOutput = Path.Combine(_work, "App", "bin", "Release", "net10.0");
        _appRun = Run("dotnet", $"{Quote(AppDll)} {Quote(FashionMnist.Root)} {Quote(Path.Combine(_work, "run"))}", _work);
    }

    [ClassCleanup]
    public static void DeleteTheApps()
    {
        if (Directory.Exists(_work)) Directory.Delete(_work, recursive: true);
    }

    [TestMethod]
    public void TheBuiltAppTrainsSavesLoadsAndPredictsInRecurrentForm()
    {
        _appRun.AssertSucceeded("the app");
        AssertAppOutput(_appRun.Stdout);
    }

    [TestMethod]
    public void TheAppsOnnxExportScoresTheSameThroughApplyOnnxModel()
    {
        _appRun.AssertSucceeded("the app");
        string run = Path.Combine(_work, "run");
        var expected = File.ReadAllLines(Path.Combine(run, "scores.txt")).Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => p.Skip(1).Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray());
        // The README's ONNX pipeline: ApplyOnnxModel on each image's pixels (no TorchSharp in it).
        using var classifier = new ViRImageClassification.Onnx.OnnxImageClassifier(new Microsoft.ML.MLContext(), Path.Combine(run, "model.onnx"));
        var paths = expected.Keys.ToList();
        var probabilities = paths.Select(p => classifier.Probabilities(Path.Combine(FashionMnist.Root, p))).ToList();
        double difference = paths.Zip(probabilities).Max(p => expected[p.First].Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
        Console.WriteLine($"ONNX export from the package, through ApplyOnnxModel: max |Δprobability| {difference:G3}");
        Assert.IsTrue(difference < 1e-4, $"{difference:G3}");
    }

    [TestMethod]
    public void ThePublishedAppRuns()
    {
        string publish = Path.Combine(_work, "publish");
        Run("dotnet", $"publish App -c Release -o {Quote(publish)} {_properties}", _work).AssertSucceeded("dotnet publish App");
        var run = Run("dotnet", $"{Quote(Path.Combine(publish, "App.dll"))} {Quote(FashionMnist.Root)} {Quote(Path.Combine(_work, "run-published"))}", _work);
        run.AssertSucceeded("the published app");
        AssertAppOutput(run.Stdout);
    }

    [TestMethod]
    public void AnAppThatReachesThePackageThroughALibraryRuns()
    {
        _appRun.AssertSucceeded("the app that saves the model");
        Run("dotnet", $"build TransitiveApp -c Release {_properties}", _work).AssertSucceeded("dotnet build TransitiveApp");
        var images = FashionMnist.Rows("test", 1).Select(r => Quote(r.ImagePath));
        var run = Run("dotnet", $"{Quote(Path.Combine(_work, "TransitiveApp", "bin", "Release", "net10.0", "TransitiveApp.dll"))} {Quote(Path.Combine(_work, "run", "model.zip"))} {string.Join(' ', images)}", _work);
        run.AssertSucceeded("the app that uses the package through a library");
        var labels = FashionMnist.Rows("test", 1).Select(r => r.Label).ToHashSet();
        var predicted = Regex.Matches(run.Stdout, "^predicted: (.+)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value.Trim()).ToList();
        Assert.AreEqual(10, predicted.Count, run.Stdout);
        Assert.IsTrue(predicted.All(labels.Contains), $"every prediction should be one of the class names: {run.Stdout}");
    }

    [TestMethod]
    public void TheReadmeProgramRunsAsWrittenAndThePackageReadmeShowsTheSame()
    {
        string program = ReadmeProgram(File.ReadAllText(Path.Combine(RepoRoot, "README.md")), "## Use it in your app");
        Assert.AreEqual(program, ReadmeProgram(File.ReadAllText(Path.Combine(RepoRoot, "src", "Microsoft.ML.Retention", "PackageReadme.md")), "## A first pipeline"),
            "the package readme should show the README's program");

        string app = Path.Combine(_work, "ReadmeApp");
        Directory.CreateDirectory(app);
        File.Copy(Path.Combine(_work, "App", "App.csproj"), Path.Combine(app, "ReadmeApp.csproj"));
        File.WriteAllText(Path.Combine(app, "Program.cs"), program);
        Run("dotnet", $"build ReadmeApp -c Release {_properties}", _work).AssertSucceeded("dotnet build ReadmeApp");
        var run = Run("dotnet", $"{Quote(Path.Combine(app, "bin", "Release", "net10.0", "ReadmeApp.dll"))} {Quote(Path.Combine(FashionMnist.Root, "test"))}", app);
        run.AssertSucceeded("the README's program");
        var accuracy = Regex.Match(run.Stdout, @"^Test accuracy: ([0-9.]+) ?%$", RegexOptions.Multiline);
        Assert.IsTrue(accuracy.Success, run.Stdout);
        // 3 epochs on 1,200 images: well above the 10 % of chance.
        Assert.IsTrue(double.Parse(accuracy.Groups[1].Value, CultureInfo.InvariantCulture) > 30, run.Stdout);
        StringAssert.Matches(run.Stdout, new Regex(@"^\S+\.png: \S+ \(true class: \S+\)$", RegexOptions.Multiline));
        Assert.IsTrue(File.Exists(Path.Combine(app, "model.zip")));
    }

    [TestMethod]
    public void AModelBuilderProjectTrainsAViRAfterTheSwapTheReadmeShows()
    {
        // Model Builder's generated image-classification project (test/PackageConsumer/ModelBuilderSwap), changed as the
        // README's "From Model Builder" says and nothing more: the consumption file stays as generated.
        string project = Path.Combine(_work, "ModelBuilderSwap");
        const string trainerLine = "                                    .Append(mlContext.MulticlassClassification.Trainers.ImageClassification(labelColumnName:@\"Label\",scoreColumnName:@\"Score\",featureColumnName:@\"ImageSource\"))";
        const string vision = "using Microsoft.ML.Vision;";
        string ours = trainerLine.Replace("Trainers.ImageClassification(", "Trainers.ViR(", StringComparison.Ordinal);
        string readme = File.ReadAllText(Path.Combine(RepoRoot, "README.md"));
        foreach (var line in new[] { "-" + vision, "-" + trainerLine, "+" + ours })
            StringAssert.Contains(readme, line + "\n", "the README's swap");

        string training = Path.Combine(project, "MLModel1.training.cs");
        var generated = File.ReadAllLines(training);
        Assert.AreEqual(1, generated.Count(l => l == trainerLine), "Model Builder's trainer line");
        File.WriteAllLines(training, generated.Where(l => l != vision).Select(l => l == trainerLine ? ours : l));
        string csproj = Path.Combine(project, "ModelBuilderSwap.csproj");
        File.WriteAllText(csproj, Regex.Replace(File.ReadAllText(csproj),
            @"    <PackageReference Include=""Microsoft.ML.Vision"" Version=""[^""]+"" />\r?\n    <PackageReference Include=""SciSharp.TensorFlow.Redist"" Version=""[^""]+"" />",
            "    <PackageReference Include=\"Microsoft.ML.Retention\" Version=\"$(MLRetentionVersion)\" />\n    <PackageReference Include=\"TorchSharp-cpu\" Version=\"$(TorchSharpVersion)\" />"));
        StringAssert.Contains(File.ReadAllText(csproj), "Microsoft.ML.Retention");
        string consumption = File.ReadAllText(Path.Combine(project, "MLModel1.consumption.cs"));

        string images = LabelFolders("swap-images", 4);
        Run("dotnet", $"build ModelBuilderSwap -c Release {_properties}", _work).AssertSucceeded("dotnet build ModelBuilderSwap");
        var tests = FashionMnist.Rows("test", 1);
        var run = Run("dotnet", $"{Quote(Path.Combine(project, "bin", "Release", "net10.0", "ModelBuilderSwap.dll"))} {Quote(images)} " +
            string.Join(' ', tests.Select(r => Quote(Path.Combine(FashionMnist.Root, r.ImagePath)))), project);
        run.AssertSucceeded("the swapped Model Builder project");
        var labels = tests.Select(r => r.Label).ToHashSet();
        var predicted = Regex.Matches(run.Stdout, @"^\S+\.png: (\S+) \(top of PredictAllLabels: (\S+) ", RegexOptions.Multiline).ToList();
        Assert.AreEqual(10, predicted.Count, run.Stdout);
        Assert.IsTrue(predicted.All(m => labels.Contains(m.Groups[1].Value) && m.Groups[1].Value == m.Groups[2].Value), run.Stdout);
        Assert.IsTrue(File.Exists(Path.Combine(project, "MLModel1.mlnet")));
        Assert.AreEqual(consumption, File.ReadAllText(Path.Combine(project, "MLModel1.consumption.cs")), "the consumption code is Model Builder's, unchanged");
    }

    [TestMethod]
    public void TheTemplateMakesAModelBuilderProjectThatTrainsAndPredicts()
    {
        // As the README says: install the template package, make a project, run it on label folders.
        string hive = Path.Combine(_work, "template-hive"); // a hive of its own: the machine's templates stay as they are
        string templates = Directory.GetFiles(_feed, "Microsoft.ML.Retention.Templates.*.nupkg").Single();
        Run("dotnet", $"new install {Quote(templates)} --debug:custom-hive {Quote(hive)}", _work).AssertSucceeded("dotnet new install");
        Run("dotnet", $"new vir-classifier -n MyModel --backbone vir-mini --debug:custom-hive {Quote(hive)}", _work).AssertSucceeded("dotnet new vir-classifier");
        string project = Path.Combine(_work, "MyModel");
        CollectionAssert.AreEquivalent(new[] { "MLModel1.consumption.cs", "MLModel1.evaluate.cs", "MLModel1.mbconfig", "MLModel1.training.cs", "MyModel.csproj", "Program.cs" },
            Directory.GetFiles(project).Select(Path.GetFileName).ToArray());
        StringAssert.Contains(File.ReadAllText(Path.Combine(project, "MyModel.csproj")), $"<PackageReference Include=\"Microsoft.ML.Retention\" Version=\"{_version}\" />");
        StringAssert.Contains(File.ReadAllText(Path.Combine(project, "MLModel1.training.cs")), "namespace MyModel;");

        Run("dotnet", "build MyModel -c Release", _work).AssertSucceeded("dotnet build MyModel");
        var run = Run("dotnet", $"{Quote(Path.Combine(project, "bin", "Release", "net10.0", "MyModel.dll"))} {Quote(LabelFolders("template-images", 10))}", project);
        run.AssertSucceeded("the project made by the template");
        StringAssert.Matches(run.Stdout, new Regex(@"^Accuracy: \d+\.\d+ %", RegexOptions.Multiline));
        Assert.IsTrue(File.Exists(Path.Combine(project, "MLModel1.mlnet")), run.Stdout);
        Assert.AreEqual(10, Regex.Matches(run.Stdout, @"^\S+\.png: \S+ \(", RegexOptions.Multiline).Count, run.Stdout);
        StringAssert.Contains(run.Stdout, "Max |pooled Predict - single engine|: 0\n");
    }

    /// <summary>The first <paramref name="perClass"/> training images of each class, in label folders under the work folder.</summary>
    private static string LabelFolders(string name, int perClass)
    {
        string images = Path.Combine(_work, name);
        foreach (var dir in Directory.GetDirectories(Path.Combine(FashionMnist.Root, "train")))
        {
            Directory.CreateDirectory(Path.Combine(images, Path.GetFileName(dir)));
            foreach (var file in Directory.GetFiles(dir, "*.png").Order(StringComparer.Ordinal).Take(perClass))
                File.Copy(file, Path.Combine(images, Path.GetFileName(dir), Path.GetFileName(file)));
        }
        return images;
    }

    /// <summary>The first C# block after <paramref name="heading"/>.</summary>
    private static string ReadmeProgram(string markdown, string heading)
    {
        int section = markdown.IndexOf(heading, StringComparison.Ordinal);
        Assert.IsTrue(section >= 0, $"no '{heading}' section");
        var block = Regex.Match(markdown[section..], "```csharp\n(.*?)```", RegexOptions.Singleline);
        Assert.IsTrue(block.Success, $"no C# block after '{heading}'");
        return block.Groups[1].Value;
    }

    [TestMethod]
    public void TheNuGetCacheKeepsTheOriginalNativeLibrary()
    {
        _appRun.AssertSucceeded("the app");
        string built = Path.Combine(_appOutput, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.IsTrue(File.Exists(CachedNativeLibrary), $"expected TorchSharp's package in {CachedNativeLibrary}");
        if (!HostLacksGlibcxx3432)
        {
            CollectionAssert.AreEqual(File.ReadAllBytes(CachedNativeLibrary), File.ReadAllBytes(built), "nothing to patch on this host");
            return;
        }
        var cached = File.ReadAllBytes(CachedNativeLibrary);
        var output = File.ReadAllBytes(built);
        Assert.AreEqual(cached.Length, output.Length, "the patch flips one flag in place");
        int differing = cached.Zip(output).Count(p => p.First != p.Second);
        Assert.AreEqual(1, differing, "the output copy differs from the package's in the one byte that holds the WEAK flag");
        Assert.AreEqual(_cachedNativeHashBeforeBuild, Sha256(CachedNativeLibrary), "building the app must leave the NuGet cache's copy as it was");
    }

    [TestMethod]
    public void AnUnpatchedNativeLibraryFailsWithTheRealCauseAndTheFix()
    {
        if (!HostLacksGlibcxx3432) Assert.Inconclusive("This host's libstdc++ has GLIBCXX_3.4.32, so the unpatched library loads.");
        var run = RunCopyOfTheApp("unpatched", native => File.Copy(CachedNativeLibrary, native));
        Assert.AreNotEqual(0, run.ExitCode, run.Stdout);
        StringAssert.Contains(run.Stderr, "DllNotFoundException");
        StringAssert.Contains(run.Stderr, "version `GLIBCXX_3.4.32' not found");
        StringAssert.Contains(run.Stderr, "MLRetentionPatchTorchSharpNative=always");
        Assert.IsFalse((run.Stdout + run.Stderr).Contains("doesn't contain a reference", StringComparison.Ordinal),
            $"TorchSharp's misleading message should never be reached: {run.Stderr}");
    }

    [TestMethod]
    public void AnAppWithoutABackendIsToldToReferenceOne()
    {
        var run = RunCopyOfTheApp("no-backend", _ => { });
        Assert.AreNotEqual(0, run.ExitCode, run.Stdout);
        StringAssert.Contains(run.Stderr, "No copy of LibTorchSharp was found beside the application");
        StringAssert.Contains(run.Stderr, $"dotnet add package TorchSharp-cpu --version {TorchSharpVersion}");
        Assert.IsFalse((run.Stdout + run.Stderr).Contains("doesn't contain a reference", StringComparison.Ordinal), run.Stderr);
    }

    /// <summary>Runs a hard-linked copy of the built app whose libLibTorchSharp.so was removed, then replaced by <paramref name="replace"/>.</summary>
    private static TestProcess.Result RunCopyOfTheApp(string name, Action<string> replace)
    {
        _appRun.AssertSucceeded("the app");
        string copy = Path.Combine(_work, name);
        Run("cp", $"-al {Quote(_appOutput)} {Quote(copy)}", _work).AssertSucceeded("cp -al");
        string native = Path.Combine(copy, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        File.Delete(native); // unlinks the copy only; the built app keeps its file
        replace(native);
        return Run("dotnet", $"{Quote(Path.Combine(copy, "App.dll"))} {Quote(FashionMnist.Root)} {Quote(Path.Combine(_work, $"run-{name}"))}", _work);
    }

    private static void AssertAppOutput(string stdout)
    {
        string Value(string name)
        {
            var match = Regex.Match(stdout, $"^{Regex.Escape(name)}: (.+)$", RegexOptions.Multiline);
            Assert.IsTrue(match.Success, $"'{name}' is missing from the app's output:\n{stdout}");
            return match.Groups[1].Value.Trim();
        }
        Assert.AreEqual("100 images", Value("trained"));
        Assert.IsTrue(double.Parse(Value("accuracy"), CultureInfo.InvariantCulture) is >= 0 and <= 1);
        Assert.IsTrue(long.Parse(Value("saved").Split(' ')[0], CultureInfo.InvariantCulture) > 100_000, "model.zip should hold the weights");
        Assert.AreEqual("20", Value("recurrent predictions"));
        var classes = Directory.GetDirectories(Path.Combine(FashionMnist.Root, "test")).Select(Path.GetFileName).ToHashSet();
        Assert.IsTrue(Value("labels").Split(',').All(classes.Contains), Value("labels"));
        var sums = Value("score sums").Split("..").Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        Assert.IsTrue(sums.All(s => Math.Abs(s - 1) < 1e-3), $"probabilities should sum to 1: {Value("score sums")}");
        Assert.IsTrue(double.Parse(Value("max |recurrent - parallel|"), CultureInfo.InvariantCulture) <= 1e-4, Value("max |recurrent - parallel|"));
        Assert.IsTrue(long.Parse(Value("onnx").Split(' ')[0], CultureInfo.InvariantCulture) > 100_000, "model.onnx should hold the weights");
        Assert.AreEqual(0.0, double.Parse(Value("max |safetensors - model.zip|"), CultureInfo.InvariantCulture), "the same weights give the same scores");
        Assert.AreEqual("80", Value("consumption predictions"));
        Assert.AreEqual(0.0, double.Parse(Value("max |4 threads - 1 thread|"), CultureInfo.InvariantCulture), "pooled engines over one model give the single-thread scores");
        Assert.AreEqual("10, sorted: True, top matches Predict: True", Value("all labels"));
        Assert.AreEqual("False", Value("allocator tuned"), "an app that never opts in keeps glibc's allocator as it is");
        Assert.AreEqual("RMT", Value("rmt backbone"));
        Assert.AreEqual(0.0, double.Parse(Value("max |rmt loaded - rmt trained|"), CultureInfo.InvariantCulture), "model.zip keeps an RMT exactly");
        Assert.IsTrue(long.Parse(Value("rmt onnx").Split(' ')[0], CultureInfo.InvariantCulture) > 1_000_000, "rmt.onnx should hold the weights");
        Assert.IsTrue(double.Parse(Value("max |streamed path column - parallel|"), CultureInfo.InvariantCulture) <= 1e-4, Value("max |streamed path column - parallel|"));
    }

    private static string Sha256(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static bool HostLacksGlibcxx3432 =>
        new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }
            .FirstOrDefault(File.Exists) is { } libstdcxx
        && File.ReadAllBytes(libstdcxx).AsSpan().IndexOf("GLIBCXX_3.4.32\0"u8) < 0;

    private static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private static TestProcess.Result Run(string file, string arguments, string workingDirectory) => TestProcess.Run(file, arguments, workingDirectory);

    private static string Quote(string arg) => TestProcess.Quote(arg);
}
