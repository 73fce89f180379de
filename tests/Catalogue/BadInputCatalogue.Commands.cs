using System.Diagnostics;
using System.Text;
using AotFlash.Tests.Support;

namespace AotFlash.Tests.Catalogue;

// Group 7: prompts and prompt files, model paths that cannot be a model file, and the misuse of convert, calibrate,
// pack, bench, perplexity, export and info (missing or surplus arguments, outputs that exist, that are inputs or that cannot be written).
public sealed partial class BadInputCatalogue
{
    private static string Fifo(string dir)
    {
        string path = Path.Combine(dir, "pipe");
        using var mkfifo = Process.Start("mkfifo", path)!;
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
        return path;
    }

    private static IEnumerable<(string, Case)> CommandCases()
    {
        // Prompts.
        string[] Run(params string[] extra) => ["run", "--model", AfmPath(), "--mode", "dense", "-n", "1", .. extra];
        yield return C("prompt: -p and -f", "give the prompt with -p or -f, not both", dir => Run("-p", "x", "-f", Put(dir, "prompt.txt", "x")));
        yield return C("prompt: file missing", "cannot read prompt file", dir => Run("-f", Path.Combine(dir, "missing.txt")));
        yield return C("prompt: file is a directory", "is a directory, not a prompt file", dir => Run("-f", dir));
        yield return C("prompt: file path empty", "option '-f' needs a FILE, not an empty string", _ => Run("-f", ""));
        yield return C("prompt: file is /dev/zero", "/dev/zero: is a character device, not a prompt file", _ => Run("-f", "/dev/zero"));
        yield return C("prompt: file is a FIFO", "is a FIFO (named pipe), not a prompt file", dir => Run("-f", Fifo(dir)));
        yield return C("prompt: -p over the context in bytes", "the prompt is 1048576 bytes, more than the model's context of 512 tokens can hold",
            _ => Run("-p", new string('a', 1 << 20)));
        yield return C("prompt: -p over the context in tokens", "the prompt is 802 tokens, longer than the model's context of 512",
            _ => Run("-p", string.Concat(Enumerable.Repeat("7 ", 400))));
        yield return C("prompt: file over the context in bytes", "the prompt is more than", dir => Run("-f", Put(dir, "prompt.txt", new byte[1 << 20])));
        yield return C("prompt: file over the context in tokens", "tokens, longer than the model's context of 512",
            dir => Run("-f", Put(dir, "prompt.txt", string.Concat(Enumerable.Repeat("7 ", 400)))));
        yield return C("prompt: standard input over the context", "standard input: the prompt is more than", _ => Run("-f", "-"), stdin: new byte[1 << 20]);

        // Model paths that cannot be a model file (run, info, bench).
        yield return C("run: model missing", "cannot open model file", dir => Run("--model", Path.Combine(dir, "missing.afm")));
        yield return C("run: model path empty", "option '--model' needs a FILE, not an empty string", _ => Run("--model", ""));
        yield return C("run: model is a directory", "is a directory, not a model file", dir => Run("--model", dir));
        yield return C("run: model is /dev/zero", "/dev/zero: is a character device, not a model file", _ => Run("--model", "/dev/zero"));
        yield return C("run: model is a FIFO", "is a FIFO (named pipe), not a model file", dir => Run("--model", Fifo(dir)));
        yield return C("run: model is a llama2.c checkpoint", "not an AotFlash model file (bad magic)", _ => Run("--model", ModelSource.Of(Relu).Weights));
        yield return C("run: model of another spec", "model file is for 'stories260K'", _ => Run("--model", AfmPath(Silu)));
        yield return C("run: model of another family", "model file is for 'stories260K-relu'",
            _ => ["run", "--model", AfmPath(), "-p", "x", "-n", "1"], "opt-tiny");
        yield return C("run: no model packed and no --model", "no model: this executable carries no model file", _ => ["run", "-p", "x"]);
        yield return C("info: model missing", "cannot open model file", dir => ["info", "--model", Path.Combine(dir, "missing.afm")]);
        yield return C("info: model is a llama2.c checkpoint", "not an AotFlash model file (bad magic)", _ => ["info", "--model", ModelSource.Of(Relu).Weights]);
        yield return C("bench: no model packed and no --model", "no model: this executable carries no model file", _ => ["bench", "--modes", "dense"]);
        yield return C("bench: model missing", "cannot open model file", dir => ["bench", "--model", Path.Combine(dir, "missing.afm"), "--modes", "dense"]);
        // bench prints an I/O probe and each mode's progress as it goes: these are refused before any of it.
        yield return C("bench: model of another spec", "model file is for 'stories260K'", _ => ["bench", "--model", AfmPath(Silu), "--modes", "dense"]);
        yield return C("bench: resident bit flipped", "resident section is corrupt (checksum mismatch)", dir =>
        {
            byte[] b = AfmBytes();
            return ["bench", "--model", Put(dir, "flipped.afm", Flip(b, SectionOf(b, AotFlash.Flash.SectionKind.Resident).Offset + 100)), "--modes", "naive"];
        });
        yield return C("bench: --probe-only with --no-probe", "--probe-only and --no-probe leave nothing to do",
            _ => ["bench", "--model", AfmPath(), "--probe-only", "--no-probe"]);
        yield return C("bench: -p over the context in bytes", "the prompt is 1048576 bytes, more than the model's context of 512 tokens can hold",
            _ => ["bench", "--model", AfmPath(), "--modes", "dense", "-p", new string('a', 1 << 20)]);
        yield return C("bench: -p over the context in tokens", "the prompt is 802 tokens, longer than the model's context of 512",
            _ => ["bench", "--model", AfmPath(), "--modes", "dense", "-p", string.Concat(Enumerable.Repeat("7 ", 400))]);
        string[] Bench(params string[] extra) => ["bench", "--model", AfmPath(), "--modes", "dense", "--no-probe", .. extra];
        yield return C("bench: -p and -f", "give the prompt with -p or -f, not both", dir => Bench("-p", "x", "-f", Put(dir, "prompt.txt", "x")));
        yield return C("bench: prompt file missing", "cannot read prompt file", dir => Bench("-f", Path.Combine(dir, "missing.txt")));
        yield return C("bench: prompt file is a FIFO", "is a FIFO (named pipe), not a prompt file", dir => Bench("-f", Fifo(dir)));
        yield return C("bench: prompt file over the context in bytes", "the prompt is more than",
            dir => Bench("-f", Put(dir, "prompt.txt", new byte[1 << 20])));
        yield return C("bench: --prompt-tokens over the text", "--prompt-tokens 6: the prompt is 5 tokens (BOS included)",
            _ => Bench("--prompt-tokens", "6"));
        yield return C("bench: --prompt-tokens over a file's text", "--prompt-tokens 100: the prompt is",
            dir => Bench("-f", Put(dir, "prompt.txt", "Once upon a time"), "--prompt-tokens", "100"));
        yield return C("bench: -n past the context", "-n 509 is more tokens than fit after a prompt of 5 tokens in the model's context of 512 (at most 508)",
            _ => Bench("-n", "509"));
        yield return C("bench: -n past the context (--prompt-tokens)", "-n 2 is more tokens than fit after a prompt of 512 tokens in the model's context of 512 (at most 1)",
            _ => Bench("-p", string.Concat(Enumerable.Repeat("7 ", 400)), "--prompt-tokens", "512", "-n", "2"));

        // perplexity (a text, its base files, the modes; everything refused before the first mode runs)
        string Text(string dir) => Put(dir, "story.txt", Inference.PerplexityTests.Story);
        string[] Perplexity(string dir, params string[] extra) => ["perplexity", "--model", AfmPath(), "-f", Text(dir), "--tokens", "40", "-c", "32", .. extra];
        // A base file of the story's first 40 tokens in chunks of 32, written by the command itself.
        byte[] KlBase(string dir)
        {
            string path = Path.Combine(dir, "saved.klbase");
            var r = InProcess.Run(Relu, Perplexity(dir, "--modes", "dense", "--save-kl-base", path));
            Assert.True(r.ExitCode == 0, r.Stderr);
            byte[] b = File.ReadAllBytes(path);
            File.Delete(path);
            return b;
        }
        string[] AgainstBase(string dir, byte[] klBase, params string[] extra) => Perplexity(dir, ["--kl-base", Put(dir, "base.klbase", klBase), .. extra]);
        yield return C("perplexity: no -f", "perplexity needs -f FILE, the text to score", _ => ["perplexity", "--model", AfmPath()]);
        yield return C("perplexity: text missing", "cannot read text", dir => ["perplexity", "--model", AfmPath(), "-f", Path.Combine(dir, "missing.txt")]);
        yield return C("perplexity: text is a directory", "is a directory, not a text file", dir => ["perplexity", "--model", AfmPath(), "-f", dir]);
        yield return C("perplexity: text is /dev/zero", "/dev/zero: is a character device, not a text file", _ => ["perplexity", "--model", AfmPath(), "-f", "/dev/zero"]);
        yield return C("perplexity: text is a FIFO", "is a FIFO (named pipe), not a text file", dir => ["perplexity", "--model", AfmPath(), "-f", Fifo(dir)]);
        yield return C("perplexity: empty text", "the text holds 0 tokens; perplexity needs at least 2",
            dir => ["perplexity", "--model", AfmPath(), "-f", Put(dir, "empty.txt", "")]);
        yield return C("perplexity: one-token text", "the text holds 1 token; perplexity needs at least 2",
            dir => ["perplexity", "--model", AfmPath(), "-f", Put(dir, "one.txt", "a")]);
        yield return C("perplexity: text not UTF-8", "not UTF-8 text (an invalid byte sequence at byte 5)",
            dir => ["perplexity", "--model", AfmPath(), "-f", Put(dir, "latin1.txt", [.. "Once "u8, 0xE9, .. " upon"u8])]);
        yield return C("perplexity: --context over the model's", "--context 513 is more than the model's context of 512", dir => Perplexity(dir, "-c", "513"));
        yield return C("perplexity: --context 1", "option '--context' must be an integer >= 2", dir => Perplexity(dir, "-c", "1"));
        yield return C("perplexity: --tokens 0", "option '--tokens' must be an integer in [1, 1048576]", dir => Perplexity(dir, "--tokens", "0"));
        yield return C("perplexity: unknown mode", "unknown mode 'fast' in --modes", dir => Perplexity(dir, "--modes", "dense,fast"));
        yield return C("perplexity: --modes empty", "--modes names no mode", dir => Perplexity(dir, "--modes", ","));
        yield return C("perplexity: flash without predictors", "has no activation predictors, which flash mode needs", dir => Perplexity(dir, "--modes", "dense,flash"));
        yield return C("perplexity: bad --dram-budget", "bad DRAM budget '12XB'", dir => Perplexity(dir, "--dram-budget", "12XB"));
        yield return C("perplexity: flash over the budget", "the DRAM budget of 1.0 KiB is too small",
            dir => ["perplexity", "--model", CalibratedPath(), "-f", Text(dir), "--dram-budget", "1KiB"]);
        yield return C("perplexity: model of another spec", "model file is for 'stories260K'", dir => ["perplexity", "--model", AfmPath(Silu), "-f", Text(dir)]);
        yield return C("perplexity: no model packed", "no model: this executable carries no model file", dir => ["perplexity", "-f", Text(dir)]);
        yield return C("perplexity: --kl-base missing", "cannot read KL base file", dir => Perplexity(dir, "--kl-base", Path.Combine(dir, "missing.klbase")));
        yield return C("perplexity: --kl-base is a directory", "is a directory, not a KL base file", dir => Perplexity(dir, "--kl-base", dir));
        yield return C("perplexity: --kl-base is a model file", "not a KL base file (bad magic", dir => Perplexity(dir, "--kl-base", AfmPath()));
        yield return C("perplexity: --kl-base empty", "not a KL base file (bad magic", dir => AgainstBase(dir, []));
        yield return C("perplexity: --kl-base cut in its header", "truncated KL base file (20 bytes)", dir => AgainstBase(dir, Cut(KlBase(dir), 20)));
        yield return C("perplexity: --kl-base cut in its logits", "truncated KL base file (", dir => AgainstBase(dir, Cut(KlBase(dir), 5000)));
        yield return C("perplexity: --kl-base without its checksum", "truncated KL base file (", dir =>
        {
            byte[] b = KlBase(dir);
            return AgainstBase(dir, Cut(b, b.Length - 4));
        });
        yield return C("perplexity: --kl-base with bytes after it", "KL base file has 7 bytes after its end", dir => AgainstBase(dir, Append(KlBase(dir), 7)));
        yield return C("perplexity: --kl-base bit flipped", "KL base file is corrupt (checksum mismatch)", dir => AgainstBase(dir, Flip(KlBase(dir), 3000)));
        yield return C("perplexity: --kl-base of version 2", "KL base file version 2; this build reads version 1", dir => AgainstBase(dir, I32(KlBase(dir), 8, 2)));
        yield return C("perplexity: --kl-base of another vocabulary", "the KL base is of a vocabulary of 32000 tokens; this model's has 512",
            dir => AgainstBase(dir, I32(KlBase(dir), 12, 32000)));
        yield return C("perplexity: --kl-base header lies", "KL base file header is invalid (0 positions", dir => AgainstBase(dir, I32(KlBase(dir), 20, 0)));
        yield return C("perplexity: --kl-base of another context", "the KL base was scored in chunks of 32 positions, this run in chunks of 16",
            dir => AgainstBase(dir, KlBase(dir), "-c", "16"));
        yield return C("perplexity: --kl-base of fewer tokens", "the KL base scored 40 tokens, this run scores 41",
            dir => AgainstBase(dir, KlBase(dir), "--tokens", "41"));
        yield return C("perplexity: --kl-base of another text", "the KL base scored other tokens (token 0 is", dir =>
        {
            byte[] b = KlBase(dir);
            return ["perplexity", "--model", AfmPath(), "-f", Put(dir, "other.txt", Inference.PerplexityTests.Story.Replace("Once upon a time", "One sunny morning")),
                    "--tokens", "40", "-c", "32", "--kl-base", Put(dir, "base.klbase", b)];
        });
        yield return C("perplexity: --save-kl-base exists", "already exists (use --force to overwrite it)",
            dir => Perplexity(dir, "--save-kl-base", Put(dir, "saved.klbase", "old")));
        yield return C("perplexity: --save-kl-base is the text", "is this command's input", dir =>
        {
            string[] args = Perplexity(dir, "--force");
            return [.. args, "--save-kl-base", args[4]];
        });
        yield return C("perplexity: --save-kl-base is the model", "is this command's input",
            dir => ["perplexity", "--model", Put(dir, "model.afm", AfmBytes()), "-f", Text(dir), "--force", "--save-kl-base", Path.Combine(dir, "model.afm")]);
        yield return C("perplexity: --save-kl-base in a missing folder", "does not exist",
            dir => Perplexity(dir, "--save-kl-base", Path.Combine(dir, "no", "saved.klbase")));
        yield return C("perplexity: --save-kl-base is a directory", "is a directory; refusing to replace it", dir => Perplexity(dir, "--save-kl-base", dir, "--force"));

        // convert
        string W() => ModelSource.Of(Relu).Weights;
        string T() => ModelSource.Of(Relu).Tokenizer;
        string Out(string dir) => Path.Combine(dir, "out.afm");
        const string OneSource = "convert needs one of --weights CKPT, --hf DIR, --gguf FILE and --synthetic SEED";
        yield return C("convert: neither --weights nor --hf", OneSource, dir => ["convert", "-o", Out(dir)]);
        yield return C("convert: both --weights and --hf", OneSource,
            dir => ["convert", "-w", W(), "--hf", HfFolder("stories260K-relu-hf"), "-k", T(), "-o", Out(dir)]);
        yield return C("convert: both --weights and --synthetic", OneSource, dir => ["convert", "-w", W(), "--synthetic", "1", "-k", T(), "-o", Out(dir)]);
        yield return C("convert: --synthetic not a number", "--synthetic -3: the seed is a whole number",
            dir => ["convert", "--synthetic", "-3", "-k", T(), "-o", Out(dir)]);
        yield return C("convert: --synthetic without --tokenizer", "convert --synthetic needs --tokenizer TOK", dir => ["convert", "--synthetic", "1", "-o", Out(dir)]);
        yield return C("convert: no -o", "convert needs -o MODEL.afm", _ => ["convert", "-w", W(), "-k", T()]);
        yield return C("convert: no --tokenizer", "convert needs --tokenizer TOK", dir => ["convert", "-w", W(), "-o", Out(dir)]);
        yield return C("convert: --dtype f16 for an f32 spec", "this binary's spec 'stories260K-relu' stores f32 weights",
            dir => ["convert", "-w", W(), "-k", T(), "-o", Out(dir), "--dtype", "f16"]);
        yield return C("convert: --dtype q7", "convert --dtype q7: unknown weight type (f32, f16, q8 or q4)",
            dir => ["convert", "-w", W(), "-k", T(), "-o", Out(dir), "--dtype", "q7"]);
        yield return C("convert: --emit-spec without --hf", "--emit-spec needs --hf DIR",
            dir => ["convert", "-w", W(), "--emit-spec", Path.Combine(dir, "spec.yaml")]);
        yield return C("convert: output exists", "already exists (use --force to overwrite it)",
            dir => ["convert", "-w", W(), "-k", T(), "-o", Put(dir, "out.afm", "old")]);
        yield return C("convert: output is its own checkpoint", "is this command's input", dir =>
        {
            string copy = Put(dir, "model.bin", Checkpoint());
            return ["convert", "-w", copy, "-k", T(), "-o", copy, "--force"];
        });
        yield return C("convert: output is its own tokenizer", "is this command's input", dir =>
        {
            string copy = Put(dir, "tok.bin", Tokenizer());
            return ["convert", "-w", W(), "-k", copy, "-o", copy, "--force"];
        });
        yield return C("convert: output in a missing folder", "does not exist", dir => ["convert", "-w", W(), "-k", T(), "-o", Path.Combine(dir, "no", "out.afm")]);
        yield return C("convert: output is a directory", "is a directory; refusing to replace it", dir =>
        {
            Directory.CreateDirectory(Path.Combine(dir, "sub"));
            return ["convert", "-w", W(), "-k", T(), "-o", Path.Combine(dir, "sub"), "--force"];
        });
        yield return C("convert: output path empty", "option '-o' needs a FILE, not an empty string", _ => ["convert", "-w", W(), "-k", T(), "-o", ""]);

        // export
        string Gguf(string dir) => Path.Combine(dir, "out.gguf");
        yield return C("export: an OPT model", "llama.cpp has no OPT architecture", dir => ["export", "-o", Gguf(dir)], "opt-tiny");
        yield return C("export: a Falcon model", "'falcon-tiny' is of the falcon family", dir => ["export", "-o", Gguf(dir)], "falcon-tiny");
        yield return C("export: no -o", "export needs -o OUT.gguf", _ => ["export", "--model", AfmPath()]);
        yield return C("export: no model packed and no --model", "no model: this executable carries no model file", dir => ["export", "-o", Gguf(dir)]);
        yield return C("export: model of another spec", "model file is for 'stories260K'", dir => ["export", "--model", AfmPath(Silu), "-o", Gguf(dir)]);
        yield return C("export: model is a llama2.c checkpoint", "not an AotFlash model file (bad magic)",
            dir => ["export", "--model", ModelSource.Of(Relu).Weights, "-o", Gguf(dir)]);
        yield return C("export: output exists", "already exists (use --force to overwrite it)",
            dir => ["export", "--model", AfmPath(), "-o", Put(dir, "out.gguf", "old")]);
        yield return C("export: output is the model file", "is this command's input", dir =>
        {
            string copy = Put(dir, "model.afm", AfmBytes());
            return ["export", "--model", copy, "-o", copy, "--force"];
        });
        yield return C("export: output in a missing folder", "does not exist", dir => ["export", "--model", AfmPath(), "-o", Path.Combine(dir, "no", "out.gguf")]);
        yield return C("export: output is a directory", "is a directory; refusing to replace it", dir =>
        {
            Directory.CreateDirectory(Path.Combine(dir, "sub"));
            return ["export", "--model", AfmPath(), "-o", Path.Combine(dir, "sub"), "--force"];
        });
        yield return C("export: output path empty", "option '-o' needs a FILE, not an empty string", _ => ["export", "--model", AfmPath(), "-o", ""]);
        yield return C("export: a positional argument", "unexpected argument 'extra' for 'export'", dir => ["export", "--model", AfmPath(), "-o", Gguf(dir), "extra"]);
        yield return C("export: resident bit flipped", "resident section is corrupt (checksum mismatch)", dir =>
        {
            byte[] b = AfmBytes();
            return ["export", "--model", Put(dir, "flipped.afm", Flip(b, SectionOf(b, AotFlash.Flash.SectionKind.Resident).Offset + 100)), "-o", Gguf(dir)];
        });
        yield return C("export: flash bit flipped", "flash section is corrupt: layer 0, neuron 0 does not match its checksum", dir =>
        {
            byte[] b = AfmBytes();
            return ["export", "--model", Put(dir, "flipped.afm", Flip(b, SectionOf(b, AotFlash.Flash.SectionKind.Flash).Offset + 100)), "-o", Gguf(dir)];
        });
        yield return C("export: tokenizer bit flipped", "tokenizer section is corrupt (checksum mismatch)", dir =>
        {
            byte[] b = AfmBytes();
            return ["export", "--model", Put(dir, "flipped.afm", Flip(b, SectionOf(b, AotFlash.Flash.SectionKind.Tokenizer).Offset + 10)), "-o", Gguf(dir)];
        });

        // calibrate
        string[] Calibrate(string dir, params string[] extra) => ["calibrate", "--model", AfmPath(), "-o", Out(dir), .. extra];
        yield return C("calibrate: a silu model", "calibrate needs a ReLU-family activation (relu or fatrelu(t)); 'stories260K' uses",
            dir => ["calibrate", "--model", AfmPath(Silu), "-o", Out(dir)], Silu);
        yield return C("calibrate: empty --text", "the calibration text holds no tokens", dir => Calibrate(dir, "--text", Put(dir, "text.txt", "")));
        yield return C("calibrate: --text missing", "cannot read calibration text", dir => Calibrate(dir, "--text", Path.Combine(dir, "missing.txt")));
        yield return C("calibrate: --text a directory", "is a directory, not a calibration text file", dir => Calibrate(dir, "--text", dir));
        yield return C("calibrate: output in a missing folder", "does not exist",
            dir => ["calibrate", "--model", AfmPath(), "-o", Path.Combine(dir, "no", "out.afm"), "--tokens", "16"]);
        yield return C("calibrate: output is a directory", "is a directory; refusing to replace it", dir =>
        {
            Directory.CreateDirectory(Path.Combine(dir, "sub"));
            return ["calibrate", "--model", AfmPath(), "-o", Path.Combine(dir, "sub"), "--force", "--tokens", "16"];
        });
        yield return C("calibrate: output exists", "already exists (use --force to overwrite it)",
            dir => ["calibrate", "--model", AfmPath(), "-o", Put(dir, "out.afm", "old")]);
        yield return C("calibrate: neither --model nor -o", "calibrate needs --model FILE", _ => ["calibrate"]);
        yield return C("calibrate: -o without --model or a packed model", "no model: this executable carries no model file",
            dir => ["calibrate", "-o", Out(dir)]);
        yield return C("calibrate: model of another spec", "model file is for 'stories260K'", dir => ["calibrate", "--model", AfmPath(Silu), "-o", Out(dir)]);
        yield return C("calibrate: model missing", "cannot open model file", dir => ["calibrate", "--model", Path.Combine(dir, "missing.afm"), "-o", Out(dir)]);

        // pack (in-process there is no executable to copy: --binary names one)
        string Binary(string dir) => Put(dir, "binary", new byte[12345]);
        string Packed(string dir) => Path.Combine(dir, "packed");
        yield return C("pack: no model", "pack needs exactly one model file", dir => ["pack", "-o", Packed(dir), "--binary", Binary(dir)]);
        yield return C("pack: two models", "pack needs exactly one model file", dir => ["pack", AfmPath(), AfmPath(), "-o", Packed(dir), "--binary", Binary(dir)]);
        yield return C("pack: no -o", "pack needs -o OUTPUT", dir => ["pack", AfmPath(), "--binary", Binary(dir)]);
        yield return C("pack: no executable to copy", "pack works only from the published executable", dir => ["pack", AfmPath(), "-o", Packed(dir)]);
        yield return C("pack: --binary missing", "no such file", dir => ["pack", AfmPath(), "-o", Packed(dir), "--binary", Path.Combine(dir, "missing")]);
        yield return C("pack: model missing", "cannot open model file", dir => ["pack", Path.Combine(dir, "missing.afm"), "-o", Packed(dir), "--binary", Binary(dir)]);
        yield return C("pack: a truncated model", "truncated model file (",
            dir => ["pack", Put(dir, "cut.afm", Cut(AfmBytes(), 100_000)), "-o", Packed(dir), "--binary", Binary(dir)]);
        yield return C("pack: model of another spec", "model file is for 'stories260K'", dir => ["pack", AfmPath(Silu), "-o", Packed(dir), "--binary", Binary(dir)]);
        yield return C("pack: output exists", "already exists (use --force to overwrite it)",
            dir => ["pack", AfmPath(), "-o", Put(dir, "packed", "old"), "--binary", Binary(dir)]);
        yield return C("pack: output is its model", "is this command's input", dir =>
        {
            string model = Put(dir, "model.afm", AfmBytes());
            return ["pack", model, "-o", model, "--binary", Binary(dir), "--force"];
        });
        yield return C("pack: output is its binary", "is this command's input", dir =>
        {
            string binary = Binary(dir);
            return ["pack", AfmPath(), "-o", binary, "--binary", binary, "--force"];
        });
        yield return C("pack: output in a missing folder", "does not exist", dir => ["pack", AfmPath(), "-o", Path.Combine(dir, "no", "packed"), "--binary", Binary(dir)]);
        yield return C("pack: binary with a corrupt payload trailer", "the model payload trailer is corrupt",
            dir => ["pack", AfmPath(), "-o", Packed(dir), "--binary", Put(dir, "binary", [.. new byte[1000], .. "AOTFLPAY"u8, .. new byte[24]])]);
    }
}
