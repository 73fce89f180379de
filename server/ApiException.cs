namespace AotFlash.Server;

/// <summary>A request the server answers with an OpenAI-style error object: <c>{"error": {message, type, param, code}}</c>.</summary>
internal sealed class ApiException(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>OpenAI's error type for a status.</summary>
    public string Type => Status switch
    {
        404 => "not_found_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public static ApiException Invalid(string message, string? param = null, string? code = null) => new(400, message, param, code);
}
