using System.Reflection;
using System.Runtime.InteropServices;

namespace AkkaVna.Codecs;

/// <summary>
/// Finds the field's codec libraries as Debian installs them (the runtime package's versioned name first, the -dev
/// package's link second). A missing library is a <see cref="CodecException"/> that names the package to install.
/// </summary>
internal static class NativeLibraries
{
    /// <summary>Library names used in DllImport, with the files to try and the Debian package that has them.</summary>
    private static readonly Dictionary<string, (string[] Files, string Package)> Known = new(StringComparer.Ordinal)
    {
        ["charls"] = (["libcharls.so.2", "libcharls.so"], "libcharls2"),
        ["openjp2"] = (["libopenjp2.so.7", "libopenjp2.so"], "libopenjp2-7"),
        ["turbojpeg"] = (["libturbojpeg.so.0", "libturbojpeg.so"], "libturbojpeg0"),
        // AkkaVna's C face for OpenJPH, built beside this assembly when the project is built with OpenJPH's headers.
        [HtJ2k.Library] = (["libakkavna_openjph.so"], "libopenjph0.9, and libopenjph-dev and g++ when AkkaVna is built"),
    };

    /// <summary>The resolver, installed once per process for this assembly (the runtime allows one).</summary>
    private static readonly Lazy<bool> Registered = new(() =>
    {
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        return true;
    });

    public static void Register() => _ = Registered.Value;

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (!Known.TryGetValue(name, out var known)) return IntPtr.Zero;
        foreach (var file in known.Files)
        {
            if (NativeLibrary.TryLoad(file, assembly, path, out var handle)) return handle;
            string beside = Path.Combine(Path.GetDirectoryName(assembly.Location) is { Length: > 0 } dir ? dir : AppContext.BaseDirectory, file);
            if (File.Exists(beside) && NativeLibrary.TryLoad(beside, out handle)) return handle;
        }
        return IntPtr.Zero;
    }

    /// <summary>Runs a native call, turning a missing library into a refusal that names its package.</summary>
    public static T Call<T>(string library, Func<T> call)
    {
        Register();
        try
        {
            return call();
        }
        catch (DllNotFoundException)
        {
            throw new CodecException($"the {library} library is not installed (Debian package {Known[library].Package})");
        }
        catch (EntryPointNotFoundException e)
        {
            throw new CodecException($"the {library} library installed is not the version this build needs (Debian package {Known[library].Package}): {e.Message}");
        }
    }
}
