namespace AotFlash;

/// <summary>Input the user can fix (usage, a file, a prompt): reported as one line, exit code 2.</summary>
public sealed class BadInputException(string message) : Exception(message);
