using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using AotFlash.Interop;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Interop;

/// <summary>aotflash.h against the exports of the runtime assembly: the same functions with the same parameter types,
/// the same struct layouts and constants, and a header that compiles as strict C99.</summary>
public sealed partial class HeaderTests
{
    private static readonly string Header = Path.Combine(TestPaths.RepoRoot, "runtime", "Interop", "aotflash.h");

    /// <summary>The C structs and the C# structs that mirror them.</summary>
    private static readonly (string C, Type Managed)[] Structs =
    [
        ("aotflash_params", typeof(NativeParams)),
        ("aotflash_model_desc", typeof(NativeModelDesc)),
        ("aotflash_session_stats", typeof(NativeSessionStats)),
        ("aotflash_chat_message", typeof(NativeChatMessage)),
    ];

    /// <summary>The C enum constants' prefixes and the C# enums that mirror them.</summary>
    private static readonly (Type Managed, string Prefix)[] Enums =
    [
        (typeof(Status), "AOTFLASH_ERR_"),
        (typeof(NativeMode), "AOTFLASH_MODE_"),
        (typeof(NativeStopReason), "AOTFLASH_STOP_"),
    ];

    private sealed record Function(string Name, string Return, string[] Parameters);

    [Fact]
    public void EveryExportIsDeclaredWithTheSameTypes()
    {
        var declared = ParseFunctions(File.ReadAllText(Header)).ToDictionary(f => f.Name);
        var exported = typeof(Exports).GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<UnmanagedCallersOnlyAttribute>()))
            .Where(e => e.Attribute is not null)
            .ToDictionary(e => e.Attribute!.EntryPoint!, e => e.Method);
        Assert.Equal(declared.Keys.Order(), exported.Keys.Order());
        foreach (var (name, method) in exported)
        {
            var function = declared[name];
            Assert.True(Kind(method.ReturnType) == CKind(function.Return), $"{name} returns {function.Return} in the header, {method.ReturnType} in C#");
            var parameters = method.GetParameters();
            Assert.True(parameters.Length == function.Parameters.Length,
                        $"{name} has {function.Parameters.Length} parameters in the header, {parameters.Length} in C#");
            for (int i = 0; i < parameters.Length; i++)
                Assert.True(Kind(parameters[i].ParameterType) == CKind(function.Parameters[i]),
                            $"{name} parameter {i}: '{function.Parameters[i]}' in the header, {parameters[i].ParameterType} in C#");
        }
    }

    [Fact]
    public void StructsAndConstantsMatchTheRuntime()
    {
        // A C program prints sizeof and every field's offset and size, and every constant; C# must agree.
        var program = new StringBuilder("#include <stddef.h>\n#include <stdio.h>\n#include \"aotflash.h\"\nint main(void) {\n");
        var expected = new StringBuilder();
        foreach (var (c, managed) in Structs)
        {
            program.Append($"    printf(\"{c} %zu\\n\", sizeof({c}));\n");
            expected.Append($"{c} {Marshal.SizeOf(managed)}\n");
            foreach (var field in managed.GetFields())
            {
                string name = SnakeCase(field.Name);
                program.Append($"    printf(\"{c}.{name} %zu %zu\\n\", offsetof({c}, {name}), sizeof((({c} *)0)->{name}));\n");
                expected.Append($"{c}.{name} {Marshal.OffsetOf(managed, field.Name)} {FieldSize(field.FieldType)}\n");
            }
        }
        foreach (var (managed, prefix) in Enums)
        {
            foreach (var value in Enum.GetValues(managed))
            {
                string name = value.ToString() == "Ok" ? "AOTFLASH_OK" : prefix + SnakeCase(value.ToString()!).ToUpperInvariant();
                program.Append($"    printf(\"{name} %d\\n\", (int){name});\n");
                expected.Append($"{name} {(int)value}\n");
            }
        }
        program.Append("    printf(\"AOTFLASH_VERSION %s\\n\", AOTFLASH_VERSION);\n    return 0;\n}\n");
        expected.Append($"AOTFLASH_VERSION {AotFlash.ProductVersion.Text}\n");

        string dir = Published.TempDirectory();
        string source = Path.Combine(dir, "layout.c"), exe = Path.Combine(dir, "layout");
        File.WriteAllText(source, program.ToString());
        var build = ProcessRunner.Run("cc", ["-std=c99", "-Wall", "-Werror", "-pedantic", "-I", Path.GetDirectoryName(Header)!, "-o", exe, source]);
        Assert.True(build.ExitCode == 0, build.Stderr);
        var run = ProcessRunner.Run(exe, []);
        Assert.Equal(expected.ToString(), run.Stdout);

        // Every constant of the header is one of those.
        var constants = ConstantRegex().Matches(File.ReadAllText(Header)).Select(m => m.Groups[1].Value);
        Assert.All(constants, name => Assert.Contains(name + " ", expected.ToString()));
    }

    [Fact]
    public void HeaderCompilesAsStrictC99()
    {
        var c = ProcessRunner.Run("cc", ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-x", "c", Header]);
        Assert.True(c.ExitCode == 0, c.Stderr);
    }

    /// <summary>Function declarations: comments and preprocessor lines removed, one statement per ';'.</summary>
    private static IEnumerable<Function> ParseFunctions(string header)
    {
        string code = CommentRegex().Replace(header, " ");
        code = string.Join('\n', code.Split('\n').Where(l => !l.TrimStart().StartsWith('#')));
        foreach (string statement in code.Split(';'))
        {
            var m = FunctionRegex().Match(statement);
            if (!m.Success) continue;
            string parameters = m.Groups["params"].Value.Trim();
            string[] list = parameters == "void" ? [] : parameters.Split(',').Select(p => p.Trim()).ToArray();
            yield return new Function(m.Groups["name"].Value, m.Groups["ret"].Value.Trim(), list);
        }
    }

    /// <summary>What a C type is at the ABI: a pointer, a struct by value, or a scalar of a size and kind.</summary>
    private static string CKind(string declaration)
    {
        if (declaration.Contains('*') || declaration.Contains("_fn ")) return "pointer";
        string type = Regex.Replace(declaration, @"\bconst\b", "").Trim();
        type = Regex.Replace(type, @"\s+\w+$", "").Trim(); // the parameter's name
        return type switch
        {
            "int32_t" or "aotflash_status" or "aotflash_mode" or "aotflash_stop_reason" => "int32",
            "uint32_t" => "uint32",
            "int64_t" => "int64",
            "uint64_t" => "uint64",
            "size_t" => "size",
            "float" => "float",
            "double" => "double",
            "void" => "void",
            _ when Structs.Any(s => s.C == type) => "struct " + type,
            _ => "unknown C type " + type,
        };
    }

    private static string Kind(Type type)
    {
        if (type.IsPointer || type.IsFunctionPointer || type == typeof(nint)) return "pointer";
        if (type.IsEnum) type = Enum.GetUnderlyingType(type);
        if (Structs.FirstOrDefault(s => s.Managed == type) is { C: not null } mirrored) return "struct " + mirrored.C;
        return type switch
        {
            _ when type == typeof(int) => "int32",
            _ when type == typeof(uint) => "uint32",
            _ when type == typeof(long) => "int64",
            _ when type == typeof(ulong) => "uint64",
            _ when type == typeof(nuint) => "size",
            _ when type == typeof(float) => "float",
            _ when type == typeof(double) => "double",
            _ when type == typeof(void) => "void",
            _ => "unknown C# type " + type,
        };
    }

    private static int FieldSize(Type type) =>
        type.IsPointer || type.IsFunctionPointer ? IntPtr.Size : Marshal.SizeOf(type.IsEnum ? Enum.GetUnderlyingType(type) : type);

    /// <summary>TopK → top_k, ODirect → o_direct, SpecHash → spec_hash.</summary>
    private static string SnakeCase(string name) => SnakeBoundary().Replace(name, "_").ToLowerInvariant();

    [GeneratedRegex(@"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")]
    private static partial Regex SnakeBoundary();

    [GeneratedRegex(@"/\*.*?\*/", RegexOptions.Singleline)]
    private static partial Regex CommentRegex();

    [GeneratedRegex(@"^\s*(?<ret>[^(){}]*?)\b(?<name>aotflash_\w+)\s*\((?<params>[^()]*)\)\s*$", RegexOptions.Singleline)]
    private static partial Regex FunctionRegex();

    [GeneratedRegex(@"\b(AOTFLASH_[A-Z_]+)\s*=")]
    private static partial Regex ConstantRegex();
}
