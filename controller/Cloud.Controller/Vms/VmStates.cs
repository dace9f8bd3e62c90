namespace Cloud.Controller.Vms;

/// <summary>A VM's state as the API shows it.</summary>
internal static class VmStates
{
    public const string Pending = "PENDING";
    public const string Creating = "CREATING";
    public const string Running = "RUNNING";
    public const string Stopped = "STOPPED";
    public const string Error = "ERROR";
    public const string Deleting = "DELETING";
    public const string Deleted = "DELETED";
}
