using Microsoft.Build.Framework;
using Mono.Cecil;

namespace Retention.Build.Tasks;

/// <summary>
/// Writes a compile-time reference copy of an assembly in which every type, method and field
/// is public. Paired with IgnoresAccessChecksTo in the consuming assembly, this lets the library
/// use ML.NET's internal save/load and mapper plumbing. At run time the real assembly loads.
/// </summary>
public sealed class PublicizeAssembly : Microsoft.Build.Utilities.Task
{
    [Required] public string Source { get; set; } = "";
    [Required] public string Destination { get; set; } = "";

    public override bool Execute()
    {
        var resolver = new DefaultAssemblyResolver();
        resolver.AddSearchDirectory(Path.GetDirectoryName(Source));
        using var assembly = AssemblyDefinition.ReadAssembly(Source, new ReaderParameters { AssemblyResolver = resolver });

        foreach (var type in assembly.Modules.SelectMany(m => m.GetTypes()))
        {
            if (!type.IsNested) type.IsPublic = true;
            else if (!type.IsNestedFamily && !type.IsNestedFamilyOrAssembly) type.IsNestedPublic = true;

            // Protected members stay protected, so overrides in our code keep the accessibility
            // that the real assembly declares.
            foreach (var method in type.Methods.Where(m => !m.IsFamily && !m.IsFamilyOrAssembly))
                method.IsPublic = true;
            // Events are backed by same-named fields; making those public would create ambiguous names.
            var eventNames = new HashSet<string>(type.Events.Select(e => e.Name));
            foreach (var field in type.Fields.Where(f => !f.IsFamily && !f.IsFamilyOrAssembly && !eventNames.Contains(f.Name)))
                field.IsPublic = true;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Destination)!);
        string temp = Destination + ".tmp";
        assembly.Write(temp);
        File.Move(temp, Destination, overwrite: true);
        Log.LogMessage(MessageImportance.Normal, $"Publicized {Source} -> {Destination}");
        return true;
    }
}
