// Shared by the generator (which checks a spec's flash.dram_budget) and the runtime (which parses --dram-budget and the
// spec's default), so the two accept the same words. Keep it netstandard2.0-clean.
using System;
using System.Globalization;

namespace AotFlash.Flash
{
    /// <summary>A DRAM budget as specs and the command line write it: a percentage of the model file ("50%") or a size
    /// in bytes with an optional unit ("512MiB", "2G", "3000000"; B, K/KB/KiB, M/MB/MiB, G/GB/GiB, any case).</summary>
    public readonly struct DramBudget
    {
        /// <summary>What the grammar accepts, for error messages.</summary>
        public const string Syntax = "a percentage of the model file (50%) or a size (512MiB, 2G, bytes)";

        private DramBudget(double? percent, long bytes) { Percent = percent; Bytes = bytes; }

        /// <summary>The percentage of the model file, or null for an absolute size.</summary>
        public double? Percent { get; }
        /// <summary>The absolute size; 0 for a percentage.</summary>
        public long Bytes { get; }

        /// <summary>The budget in bytes for a model file of <paramref name="modelBytes"/>.</summary>
        public long Resolve(long modelBytes) => Percent is double p ? (long)(modelBytes * p / 100) : Bytes;

        /// <summary>Parses <paramref name="text"/>; a percentage must be in (0, <paramref name="maxPercent"/>], a size
        /// positive and within a long.</summary>
        public static bool TryParse(string text, double maxPercent, out DramBudget budget)
        {
            budget = default;
            string t = text.Trim();
            if (t.EndsWith("%", StringComparison.Ordinal))
            {
                if (!double.TryParse(t.Substring(0, t.Length - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out double percent)
                    || !(percent > 0 && percent <= maxPercent))
                    return false;
                budget = new DramBudget(percent, 0);
                return true;
            }
            int split = t.Length;
            while (split > 0 && !char.IsDigit(t[split - 1])) split--;
            long unit;
            switch (t.Substring(split).ToUpperInvariant())
            {
                case "": case "B": unit = 1; break;
                case "K": case "KB": case "KIB": unit = 1L << 10; break;
                case "M": case "MB": case "MIB": unit = 1L << 20; break;
                case "G": case "GB": case "GIB": unit = 1L << 30; break;
                default: return false;
            }
            if (!long.TryParse(t.Substring(0, split), NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n <= 0 || n > long.MaxValue / unit)
                return false;
            budget = new DramBudget(null, n * unit);
            return true;
        }
    }
}
