using System.Diagnostics;
using Microsoft.ML.Data;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using ViRImageClassification.ModelBuilder;
using ViRImageClassification.Web;

namespace Microsoft.ML.Retention.Tests;

/// <summary>
/// The ASP.NET Core sample over loopback HTTP: concurrent requests get the single-thread scores, and replacing the
/// model file while requests run loses none of them; each answer is the old or the new model's, exactly.
/// </summary>
[TestClass]
public sealed class WebSampleTests
{
    [TestMethod]
    public async Task TheWebSampleServesConcurrentRequestsAndReloadsTheModelWithoutLosingOne()
    {
        string work = Path.Combine(Path.GetTempPath(), $"vir-web-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        Process? server = null;
        try
        {
            // Two models, trained on different images, in Model Builder's shape (the sample's MLModel1).
            var ml = new MLContext(seed: 1);
            var all = MLModel1.LoadImageFromFolder(ml, Path.Combine(FashionMnist.Root, "train"));
            var first = ml.Data.TakeRows(ml.Data.ShuffleRows(all, seed: 1), 200);
            var second = ml.Data.TakeRows(ml.Data.ShuffleRows(all, seed: 2), 200);
            string modelPath = Path.Combine(work, "MLModel1.mlnet"), nextPath = Path.Combine(work, "next.mlnet");
            MLModel1.SaveModel(ml, MLModel1.RetrainModel(ml, first), first, modelPath);
            MLModel1.SaveModel(ml, MLModel1.RetrainModel(ml, second), second, nextPath);
            var images = FashionMnist.Rows("test", 2).Select(r => File.ReadAllBytes(Path.Combine(FashionMnist.Root, r.ImagePath))).ToList();
            var expected = new[] { Scores(modelPath, images), Scores(nextPath, images) };

            int port = FreePort();
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet") { WorkingDirectory = work, RedirectStandardOutput = true };
            foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "ViRImageClassification.Web.dll"), "--ModelPath", modelPath, "--urls", $"http://127.0.0.1:{port}" })
                start.ArgumentList.Add(arg);
            server = Process.Start(start)!;
            _ = server.StandardOutput.ReadToEndAsync(); // keeps the pipe from filling
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilUp(http, server);

            // Eight clients at once: every answer is the single-thread one.
            var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(client => Task.Run(async () =>
            {
                var mine = new List<(int Image, Prediction Answer)>();
                for (int i = 0; i < 10; i++)
                {
                    int image = (client * 10 + i) % images.Count;
                    mine.Add((image, await Predict(http, images[image])));
                }
                return mine;
            })));
            var concurrent = answers.SelectMany(a => a).ToList();
            Assert.AreEqual(80, concurrent.Count);
            Assert.AreEqual(0.0, concurrent.Max(a => Difference(a.Answer, expected[0][a.Image])), "concurrent answers are the single-thread scores");

            // The model file replaced (moved over) while four clients keep asking: none fails, each gets one model's scores.
            using var stop = new CancellationTokenSource();
            var during = Enumerable.Range(0, 4).Select(client => Task.Run(async () =>
            {
                var mine = new List<(int Image, Prediction Answer)>();
                for (int i = 0; !stop.IsCancellationRequested || mine.Count(a => a.Answer.ModelVersion == 2) < 5; i++)
                {
                    int image = (client + i) % images.Count;
                    mine.Add((image, await Predict(http, images[image])));
                }
                return mine;
            })).ToList();
            await Task.Delay(500);
            File.Move(nextPath, modelPath, overwrite: true);
            var reloaded = DateTime.UtcNow;
            while ((await http.GetFromJsonAsync<Health>("/health"))!.ModelVersion < 2)
            {
                Assert.IsTrue(DateTime.UtcNow - reloaded < TimeSpan.FromSeconds(60), "the replaced model was not loaded within a minute");
                await Task.Delay(100);
            }
            stop.Cancel();
            var served = (await Task.WhenAll(during)).SelectMany(a => a).ToList();
            var byVersion = served.GroupBy(a => a.Answer.ModelVersion).ToDictionary(g => g.Key, g => g.Count());
            Console.WriteLine($"80 concurrent requests; during the reload {served.Count} requests: {string.Join(", ", byVersion.Select(p => $"{p.Value} by version {p.Key}"))}");
            CollectionAssert.IsSubsetOf(byVersion.Keys.ToList(), new[] { 1, 2 });
            Assert.IsTrue(byVersion.GetValueOrDefault(1) > 0 && byVersion.GetValueOrDefault(2) > 0, "requests were served before and after the reload");
            Assert.AreEqual(0.0, served.Max(a => Difference(a.Answer, expected[a.Answer.ModelVersion - 1][a.Image])), "each answer is exactly its model's");
        }
        finally
        {
            if (server is { HasExited: false }) server.Kill(entireProcessTree: true);
            server?.WaitForExit();
            Directory.Delete(work, recursive: true);
        }
    }

    private sealed record Health(int ModelVersion);

    private static async Task<Prediction> Predict(HttpClient http, byte[] image)
    {
        using var response = await http.PostAsync("/predict", new ByteArrayContent(image));
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<Prediction>())!;
    }

    // The single-thread scores of a model file, by label, for each image.
    private static List<Dictionary<string, float>> Scores(string model, List<byte[]> images)
    {
        var ml = new MLContext();
        var loaded = ml.Model.Load(model, out _);
        using var engine = ml.Model.CreatePredictionEngine<MLModel1.ModelInput, MLModel1.ModelOutput>(loaded);
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        engine.OutputSchema["Score"].GetSlotNames(ref names);
        var labels = names.DenseValues().Select(n => n.ToString()).ToList();
        return images.Select(image => labels.Zip(engine.Predict(new MLModel1.ModelInput { ImageSource = image }).Score).ToDictionary(p => p.First, p => p.Second)).ToList();
    }

    private static double Difference(Prediction answer, Dictionary<string, float> expected) =>
        answer.Scores.Length == expected.Count ? answer.Scores.Max(s => Math.Abs(s.Score - expected[s.Label])) : double.PositiveInfinity;

    private static async Task WaitUntilUp(HttpClient http, Process server)
    {
        var started = DateTime.UtcNow;
        while (true)
        {
            Assert.IsFalse(server.HasExited, $"the web app exited with {(server.HasExited ? server.ExitCode : 0)}");
            try
            {
                using var response = await http.GetAsync("/health");
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            Assert.IsTrue(DateTime.UtcNow - started < TimeSpan.FromSeconds(60), "the web app did not answer within a minute");
            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
