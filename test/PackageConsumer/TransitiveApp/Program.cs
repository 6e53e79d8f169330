// Usage: TransitiveApp <model.zip> <image>... Prints one predicted label per image.
foreach (var label in Library.ModelScorer.Predict(args[0], args.Skip(1)))
    Console.WriteLine($"predicted: {label}");
