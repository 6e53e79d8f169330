using ViRImageClassification.Web;

// Serves a model trained on encoded image bytes (the Model Builder sample's MLModel1.mlnet, say):
//   POST /predict  with the image file's bytes as the body  ->  { predictedLabel, scores: [{ label, score }], modelVersion }
//   GET  /health   ->  the loaded model's version
// Replace the model file (write a new one beside it and move it over) and the app loads it, losing no request.
// Usage: ViRImageClassification.Web [--ModelPath MLModel1.mlnet] [--urls http://127.0.0.1:5000]
var builder = WebApplication.CreateBuilder(args);
string modelPath = builder.Configuration["ModelPath"] ?? "MLModel1.mlnet";
builder.Services.AddSingleton(services => new ReloadingClassifier(modelPath, services.GetRequiredService<ILogger<ReloadingClassifier>>()));
var app = builder.Build();
var classifier = app.Services.GetRequiredService<ReloadingClassifier>(); // loaded before the first request

app.MapGet("/health", () => Results.Ok(new { modelVersion = classifier.Version }));
app.MapPost("/predict", async (HttpRequest request) =>
{
    using var body = new MemoryStream();
    await request.Body.CopyToAsync(body);
    if (body.Length == 0) return Results.BadRequest("Send the image file's bytes as the request body.");
    try
    {
        return Results.Ok(classifier.Predict(body.ToArray()));
    }
    catch (InvalidDataException e)
    {
        return Results.BadRequest(e.Message);
    }
});
app.Run();
