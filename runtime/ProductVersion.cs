namespace AotFlash;

/// <summary>The version the CLI, the C library (aotflash_version) and aotflash.h report.</summary>
public static class ProductVersion
{
    public const string Text = "0.1.0";
}
