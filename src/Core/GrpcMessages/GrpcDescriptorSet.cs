using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;

namespace SpIstio.Core.GrpcMessages;

/// <summary>
/// The services and messages of one or more descriptor set files (<c>protoc --descriptor_set_out
/// --include_imports</c>), so captured gRPC messages can be shown with field names.
/// </summary>
public sealed class GrpcDescriptorSet
{
    // The well-known types a set may import without including them (protoc leaves them out when
    // --include_imports is forgotten); the runtime carries their descriptors.
    private static readonly FileDescriptor[] WellKnownFiles =
    [
        AnyReflection.Descriptor, DurationReflection.Descriptor, EmptyReflection.Descriptor,
        FieldMaskReflection.Descriptor, StructReflection.Descriptor, TimestampReflection.Descriptor,
        WrappersReflection.Descriptor,
    ];

    private readonly Dictionary<string, MessageDescriptor> _messages = new(StringComparer.Ordinal);
    private readonly Dictionary<string, MethodDescriptor> _methods = new(StringComparer.Ordinal);

    private GrpcDescriptorSet()
    {
    }

    /// <summary>An empty set: every message is shown schema-less.</summary>
    public static GrpcDescriptorSet Empty { get; } = new();

    /// <summary>Number of services known.</summary>
    public int ServiceCount { get; private set; }

    /// <summary>
    /// Builds a set from the bytes of descriptor set files. Files may come in any order and repeat
    /// across sets; a dependency none of them holds is an error naming the file that needs it.
    /// </summary>
    /// <exception cref="InvalidDataException">A set does not parse, or a file's imports are missing.</exception>
    public static GrpcDescriptorSet Load(IEnumerable<(string Source, byte[] Bytes)> sets)
    {
        ArgumentNullException.ThrowIfNull(sets);
        var protos = new Dictionary<string, FileDescriptorProto>(StringComparer.Ordinal);
        var origin = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (source, bytes) in sets)
        {
            FileDescriptorSet set;
            try
            {
                set = FileDescriptorSet.Parser.ParseFrom(bytes);
            }
            catch (InvalidProtocolBufferException ex)
            {
                throw new InvalidDataException($"{source}: not a protobuf FileDescriptorSet ({ex.Message}); produce it with protoc --descriptor_set_out=FILE --include_imports", ex);
            }

            foreach (var file in set.File)
            {
                if (protos.TryAdd(file.Name, file))
                {
                    origin[file.Name] = source;
                }
            }
        }

        var known = WellKnownFiles.ToDictionary(f => f.Name, StringComparer.Ordinal);
        foreach (var name in known.Keys)
        {
            protos.Remove(name);
        }

        // BuildFromByteStrings wants dependencies first: order the files topologically.
        var ordered = new List<ByteString>();
        var state = new Dictionary<string, bool>(StringComparer.Ordinal);
        var usedWellKnown = new List<FileDescriptor>();
        void Visit(string name, string neededBy)
        {
            if (state.TryGetValue(name, out var done))
            {
                if (!done)
                {
                    throw new InvalidDataException($"{origin[name]}: {name} imports itself through {neededBy}");
                }

                return;
            }

            if (known.TryGetValue(name, out var wellKnown))
            {
                state[name] = true;
                usedWellKnown.Add(wellKnown);
                return;
            }

            if (!protos.TryGetValue(name, out var proto))
            {
                throw new InvalidDataException($"{origin[neededBy]}: {neededBy} imports {name}, which no descriptor set holds; produce the sets with protoc --include_imports");
            }

            state[name] = false;
            foreach (var dependency in proto.Dependency)
            {
                Visit(dependency, name);
            }

            state[name] = true;
            ordered.Add(proto.ToByteString());
        }

        foreach (var name in protos.Keys.Order(StringComparer.Ordinal))
        {
            Visit(name, name);
        }

        var result = new GrpcDescriptorSet();
        IReadOnlyList<FileDescriptor> files;
        try
        {
            files = FileDescriptor.BuildFromByteStrings(usedWellKnown.Select(f => f.SerializedData).Concat(ordered));
        }
        catch (DescriptorValidationException ex)
        {
            throw new InvalidDataException($"{string.Join(", ", origin.Values.Distinct())}: {ex.Message}", ex);
        }

        foreach (var file in files.Concat(WellKnownFiles))
        {
            foreach (var message in file.MessageTypes)
            {
                result.AddMessage(message);
            }

            foreach (var service in file.Services)
            {
                result.ServiceCount++;
                foreach (var method in service.Methods)
                {
                    result._methods[$"/{service.FullName}/{method.Name}"] = method;
                }
            }
        }

        return result;
    }

    /// <summary>Reads and loads descriptor set files (<c>capture.grpc.descriptor_sets</c>); an empty list gives <see cref="Empty"/>.</summary>
    /// <exception cref="InvalidDataException">A file cannot be read, does not parse, or imports are missing.</exception>
    public static GrpcDescriptorSet LoadFiles(IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0)
        {
            return Empty;
        }

        var sets = new List<(string Source, byte[] Bytes)>(paths.Count);
        foreach (var path in paths)
        {
            if (TryReadFile(path, out var bytes) is { } problem)
            {
                throw new InvalidDataException($"{path}: {problem}");
            }

            sets.Add((path, bytes));
        }

        return Load(sets);
    }

    /// <summary>
    /// Reads one descriptor set file and checks that it parses; returns what is wrong with it
    /// (for a configuration error), or null with its bytes.
    /// </summary>
    public static string? TryReadFile(string path, out byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(path);
        bytes = [];
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return "cannot be read: " + ex.Message;
        }

        try
        {
            var set = FileDescriptorSet.Parser.ParseFrom(bytes);
            return set.File.Count == 0 ? "holds no files: produce it with protoc --descriptor_set_out=FILE --include_imports" : null;
        }
        catch (InvalidProtocolBufferException ex)
        {
            return $"is not a protobuf FileDescriptorSet ({ex.Message}): produce it with protoc --descriptor_set_out=FILE --include_imports";
        }
    }

    /// <summary>The method a request path (<c>/package.Service/Method</c>) names, if known.</summary>
    public MethodDescriptor? FindMethod(string path) => _methods.GetValueOrDefault(path);

    /// <summary>A message type by its full name (<c>package.Message</c>), if known.</summary>
    public MessageDescriptor? FindMessage(string fullName) => _messages.GetValueOrDefault(fullName);

    private void AddMessage(MessageDescriptor message)
    {
        _messages.TryAdd(message.FullName, message);
        foreach (var nested in message.NestedTypes)
        {
            AddMessage(nested);
        }
    }
}
