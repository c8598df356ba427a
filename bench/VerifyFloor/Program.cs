using System.Diagnostics;
using Iced.Intel;
using Retpoline;
using Retpoline.Elf;
using Retpoline.Patching;

// The floor under "patch + verify <= 5 % of link": on one linked binary, in one warm process (every method at tier 1,
// file in the page cache), the best time of
//   read      reading the file's bytes, nothing else;
//   decode    Iced decoding every byte of every executable section once, one core, nothing done per instruction;
//   engine    what the build runs after link: Patcher.PatchThenVerify (Generic: the thunks are already in form, so
//             nothing is written), sweep on both cores.
// decode is what "decode every executable byte with Iced" costs at the least; the build's figure is further up, since
// an MSBuild node runs our code ReadyToRun-compiled or at tier 0, not at tier 1.
// Usage: VerifyFloor FILE [LINK_MS]  (LINK_MS: the link time to compare with, from the build log)
if (args.Length < 1 || !File.Exists(args[0])) { Console.Error.WriteLine("usage: VerifyFloor ELF-FILE [LINK_MS]"); return 2; }
string copy = Path.Combine(Directory.CreateTempSubdirectory("retpoline-floor-").FullName, Path.GetFileName(args[0]));
File.Copy(args[0], copy); // PatchThenVerify may write: never the caller's file
double? linkMs = args.Length > 1 && double.TryParse(args[1], System.Globalization.CultureInfo.InvariantCulture, out var l) ? l : null;

var elf = ElfFile.Load(copy);
var code = elf.Sections.Where(s => s.IsExecutable && s.HasFileBytes).ToList();
long codeBytes = code.Sum(s => s.Size);

static double Best(int rounds, Action work)
{
    for (int i = 0; i < 60; i++) work(); // past tier 0 and OSR: call counts, then the background recompile
    Thread.Sleep(300);
    double best = double.MaxValue;
    for (int i = 0; i < rounds; i++)
    {
        var sw = Stopwatch.StartNew();
        work();
        best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
    }
    return best;
}

long instructions = 0;
double read = Best(100, () => File.ReadAllBytes(copy));
double decode = Best(100, () =>
{
    long n = 0;
    foreach (var s in code)
    {
        var reader = new ByteArrayCodeReader(elf.Data, (int)s.FileOffset, (int)s.Size);
        var decoder = Decoder.Create(64, reader, s.Address, DecoderOptions.None);
        while (reader.CanReadByte) { decoder.Decode(out _); n++; }
    }
    instructions = n;
});
int branches = 0;
double engine = Best(100, () =>
{
    var (patch, report, _, _) = Patcher.PatchThenVerify(copy, Vendor.Generic, CallSiteMode.Thunk, new VerifyOptions());
    if (patch.NeedsWrite) throw new InvalidOperationException("the Generic patch should write nothing here");
    branches = report.Findings.Count;
});
Directory.Delete(Path.GetDirectoryName(copy)!, true);

string Pct(double ms) => linkMs is { } link ? $"{100 * ms / link,6:F1} % of link" : "";
Console.WriteLine($"{Path.GetFileName(args[0])}: {new FileInfo(args[0]).Length:N0} bytes, {codeBytes:N0} bytes of code, {instructions:N0} instructions, {elf.Symbols.Count:N0} symbols, {branches} finding(s)");
Console.WriteLine($"  read the file             {read,7:F2} ms  {Pct(read)}");
Console.WriteLine($"  Iced decode, one core     {decode,7:F2} ms  {Pct(decode)}   ({codeBytes / decode / 1000:F0} MB/s)");
Console.WriteLine($"  patch+verify (engine)     {engine,7:F2} ms  {Pct(engine)}   ({engine / decode:F1}x Iced decode)");
if (linkMs is { } lm) Console.WriteLine($"  5 % of the {lm:F1} ms link   {lm * 0.05,7:F2} ms");
return 0;
