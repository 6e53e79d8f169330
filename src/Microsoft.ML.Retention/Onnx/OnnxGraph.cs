namespace Microsoft.ML.Retention.Onnx;

/// <summary>
/// An ONNX graph under construction: float and int64 constants (initializers), and nodes whose outputs get fresh
/// names. <see cref="ToModel"/> writes the ModelProto (onnx.proto field numbers in the comments).
/// </summary>
internal sealed class OnnxGraph
{
    /// <summary>TensorProto element types.</summary>
    public const int FloatType = 1, UInt8Type = 2, Int64Type = 7;
    private readonly List<Protobuf> _nodes = new();
    private readonly List<Protobuf> _initializers = new();
    private readonly HashSet<string> _names = new();
    private int _next;

    /// <summary>A float32 constant.</summary>
    public string Floats(string name, float[] values, params long[] dims)
    {
        if (values.Length != dims.Aggregate(1L, (a, b) => a * b))
            throw new InvalidOperationException($"Constant '{name}' has {values.Length} values for shape [{string.Join(", ", dims)}].");
        return Initializer(name, FloatType, dims, values.SelectMany(BitConverter.GetBytes).ToArray());
    }

    /// <summary>An int64 constant: 1-D, or a scalar when <paramref name="scalar"/> (one value).</summary>
    public string Ints(string name, long[] values, bool scalar = false) =>
        Initializer(name, Int64Type, scalar ? Array.Empty<long>() : new long[] { values.Length }, values.SelectMany(BitConverter.GetBytes).ToArray());

    /// <summary>A node with one output; attributes are int, long, float or long[].</summary>
    public string Op(string opType, string[] inputs, params (string Name, object Value)[] attributes) =>
        Op(opType, inputs, 1, attributes)[0];

    public string[] Op(string opType, string[] inputs, int outputs, params (string Name, object Value)[] attributes)
    {
        var names = Enumerable.Range(0, outputs).Select(_ => Unique($"{opType}_{_next++}")).ToArray();
        var node = new Protobuf();
        foreach (var input in inputs) node.String(1, input);                  // NodeProto.input
        foreach (var output in names) node.String(2, output);                 // NodeProto.output
        node.String(3, names[0]).String(4, opType);                           // name, op_type
        foreach (var (name, value) in attributes) node.Message(5, Attribute(name, value));
        _nodes.Add(node);
        return names;
    }

    /// <summary>Renames a node output by an Identity node, for the graph's named outputs.</summary>
    public string Output(string value, string name)
    {
        var node = new Protobuf().String(1, value).String(2, Unique(name)).String(3, name).String(4, "Identity");
        _nodes.Add(node);
        return name;
    }

    /// <summary>
    /// The ModelProto. Inputs and outputs have an element type and dims: a number is a fixed size, a string names a
    /// dynamic one.
    /// </summary>
    public byte[] ToModel(int opset, IEnumerable<(string Name, int Type, object[] Dims)> inputs, IEnumerable<(string Name, int Type, object[] Dims)> outputs,
        IReadOnlyDictionary<string, string> metadata, string producerVersion)
    {
        var graph = new Protobuf();
        foreach (var node in _nodes) graph.Message(1, node);                  // GraphProto.node
        graph.String(2, "vir");                                               // name
        foreach (var initializer in _initializers) graph.Message(5, initializer);
        foreach (var (name, type, dims) in inputs) graph.Message(11, ValueInfo(name, type, dims));
        foreach (var (name, type, dims) in outputs) graph.Message(12, ValueInfo(name, type, dims));

        var model = new Protobuf()
            .Int(1, opset <= 17 ? 8 : opset <= 19 ? 9 : 10)                   // ir_version: the one of the opset's ONNX release
            .String(2, "Microsoft.ML.Retention").String(3, producerVersion)   // producer_name, producer_version
            .Message(7, graph)
            .Message(8, new Protobuf().String(1, "").Int(2, opset));          // opset_import: the default domain
        foreach (var (key, value) in metadata) model.Message(14, new Protobuf().String(1, key).String(2, value));
        return model.ToArray();
    }

    private string Initializer(string name, int type, long[] dims, byte[] data)
    {
        name = Unique(name);
        _initializers.Add(new Protobuf().PackedInts(1, dims).Int(2, type).String(8, name).Bytes(9, data)); // dims, data_type, name, raw_data
        return name;
    }

    private string Unique(string name)
    {
        if (!_names.Add(name)) throw new InvalidOperationException($"The ONNX graph already has a value named '{name}'.");
        return name;
    }

    private static Protobuf Attribute(string name, object value)
    {
        var attribute = new Protobuf().String(1, name);
        return value switch
        {
            float f => attribute.Float(2, f).Int(20, 1),                      // f, type FLOAT
            int i => attribute.Int(3, i).Int(20, 2),                          // i, type INT
            long l => attribute.Int(3, l).Int(20, 2),
            long[] ints => attribute.PackedInts(8, ints).Int(20, 7),          // ints, type INTS
            string s => attribute.String(4, s).Int(20, 3),                    // s, type STRING
            _ => throw new ArgumentException($"Attribute '{name}' has type {value.GetType().Name}, which the ONNX writer does not write."),
        };
    }

    private static Protobuf ValueInfo(string name, int type, object[] dims)
    {
        var shape = new Protobuf();
        foreach (var dim in dims)
            shape.Message(1, dim switch                                       // TensorShapeProto.dim
            {
                long size => new Protobuf().Int(1, size),                     // dim_value
                int size => new Protobuf().Int(1, size),
                string dynamic => new Protobuf().String(2, dynamic),          // dim_param
                _ => throw new ArgumentException($"Dimension {dim} of '{name}' is neither a size nor a name."),
            });
        var tensorType = new Protobuf().Int(1, type).Message(2, shape);       // elem_type, shape
        return new Protobuf().String(1, name).Message(2, new Protobuf().Message(1, tensorType)); // name, type.tensor_type
    }
}
