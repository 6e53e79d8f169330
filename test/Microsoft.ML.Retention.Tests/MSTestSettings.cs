// TorchSharp's thread pool and dispose scopes are per process; tests run one at a time.
[assembly: DoNotParallelize]
