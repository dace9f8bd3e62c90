namespace Cloud.Controller.Operations;

internal static class OperationStates
{
    public const string Pending = "PENDING";
    public const string Running = "RUNNING";
    public const string Succeeded = "SUCCEEDED";
    public const string Failed = "FAILED";

    public static bool IsFinal(string state) => state is Succeeded or Failed;
}

internal static class OperationKinds
{
    public const string VmCreate = "vm.create";
    public const string VmDelete = "vm.delete";
}
