using System.Text.Json.Serialization;
using Lisp.Appliance.Cli;

namespace Lisp.Appliance;

/// <summary>Source-generated JSON metadata: the appliance never uses reflection-based serialization (native AOT).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(List<DecodedMessage>))]
[JsonSerializable(typeof(LigResult))]
internal sealed partial class ApplianceJsonContext : JsonSerializerContext
{
}
