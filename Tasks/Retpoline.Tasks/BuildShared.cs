using Microsoft.Build.Framework;

namespace Retpoline.Tasks;

/// <summary>
/// Results shared by the projects of one build (IBuildEngine4.RegisterTaskObject, lifetime Build): every project of a
/// solution probes the same compiler and verifies the same copied `.so`, and each such answer needs computing once
/// per MSBuild node. Keys carry this assembly's module version id, so two versions of the package in one build never
/// see each other's objects; a value of an unexpected type is a miss.
/// </summary>
static class BuildShared
{
    static readonly string Scope = "Retpoline.Sdk/" + typeof(BuildShared).Assembly.ManifestModule.ModuleVersionId + "/";

    public static T? Get<T>(IBuildEngine engine, string kind, string key) where T : class
        => (engine as IBuildEngine4)?.GetRegisteredTaskObject(Scope + kind + "/" + key, RegisteredTaskObjectLifetime.Build) as T;

    public static void Set<T>(IBuildEngine engine, string kind, string key, T value) where T : class
        => (engine as IBuildEngine4)?.RegisterTaskObject(Scope + kind + "/" + key, value, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
}
