using Lisp.Fuzz;

// dotnet Lisp.Fuzz.dll TARGET                 under afl-fuzz (SharpFuzz out-of-process: a StackOverflow or a
//                                             crash of the runtime is reported too, not just exceptions)
// dotnet Lisp.Fuzz.dll TARGET FILE|DIR...     runs the files through the target in-process, no afl; prints each
//                                             exception with its stack (for triage and afl-tmin-ed crashes)
if (args.Length == 0 || Array.IndexOf(FuzzTargets.Names, args[0]) < 0)
{
    Console.Error.WriteLine($"usage: Lisp.Fuzz TARGET [FILE|DIR...]   TARGET: {string.Join(" | ", FuzzTargets.Names)}");
    return 2;
}
var target = FuzzTargets.Get(args[0]);
if (args.Length == 1)
{
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        using var ms = new MemoryStream();
        stream.CopyTo(ms);
        target(ms.ToArray());
    });
    return 0;
}
int failed = 0, ran = 0;
foreach (var arg in args.Skip(1))
{
    var files = Directory.Exists(arg) ? Directory.GetFiles(arg, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal) : (IEnumerable<string>)[arg];
    foreach (var f in files)
    {
        ran++;
        try
        {
            target(File.ReadAllBytes(f));
        }
        catch (Exception e)
        {
            failed++;
            Console.WriteLine($"{f}: {e}");
        }
    }
}
Console.WriteLine($"{ran} inputs, {failed} threw");
return failed == 0 ? 0 : 1;
